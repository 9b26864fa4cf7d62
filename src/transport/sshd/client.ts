/**
 * The client side of `sshd` (docs/gost-proxies.md "sshd"): GOST's forwarding through a standard
 * SSH server. The dialer keeps one SSH session per node (ssh2 npm package over the node conn, so
 * it can ride earlier hops); the connector opens a `direct-tcpip` channel to each target, which
 * is what `ssh -L`/`-D` do. Authentication: the node's user and password, `privateKeyFile` (with
 * `passphrase`), and the agent at `$SSH_AUTH_SOCK` when there is one. As in GOST, the server's
 * host key is not checked.
 * @module
 */
// @ts-types="@types/ssh2"
import type { Client } from "ssh2";
import { type Conn, ConnBase, type NetAddr } from "../../core/conn.ts";
import { ConfigError, TimeoutError, TunnelError, UnsupportedError } from "../../core/errors.ts";
import { splitHostPort } from "../../core/addr.ts";
import type {
  ConnectContext,
  Connector,
  DialContext,
  Dialer,
  DialerOptions,
  Network,
} from "../../core/types.ts";
import { ChannelConn, conn2duplex } from "./streams.ts";
import { SSH2 } from "./ssh2.ts";

/** An established SSH session, handed from the dialer to the connector as a Conn. */
export class SshSessionConn extends ConnBase {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  constructor(readonly client: Client, local: NetAddr, remote: NetAddr) {
    super();
    this.localAddr = local;
    this.remoteAddr = remote;
  }
  read(): Promise<number | null> {
    return Promise.reject(new UnsupportedError("sshd: use the sshd connector on an sshd node"));
  }
  write(): Promise<number> {
    return Promise.reject(new UnsupportedError("sshd: use the sshd connector on an sshd node"));
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  /** The session stays for the next dial; the dialer closes it. */
  close(): void {}
}

/** One SSH connection to a node. */
export interface Session {
  client: Client;
  conn: Conn;
  closed: boolean;
}

/** Keeps one SSH session per node address. */
export class SshdDialer implements Dialer {
  readonly #o: DialerOptions;
  readonly #sessions = new Map<string, Promise<Session>>();
  readonly #key?: string;
  readonly #passphrase?: string;
  readonly #handshakeMs: number;
  readonly #keepaliveMs: number;
  readonly #keepaliveCount: number;

  /** The transport's name in messages: `sshd`, or `ssh` for GOST's tunnel channels. */
  readonly #kind: string;

  constructor(o: DialerOptions, kind = "sshd") {
    this.#o = o;
    this.#kind = kind;
    const md = o.metadata;
    const file = md.string("privateKeyFile");
    if (file) {
      try {
        this.#key = Deno.readTextFileSync(file.replace(/^~(?=\/)/, Deno.env.get("HOME") ?? "~"));
      } catch (e) {
        throw new ConfigError(`${md.path}.privateKeyFile`, `cannot read ${file}: ${e}`);
      }
    }
    const pp = md.string("passphrase");
    if (pp) this.#passphrase = pp;
    this.#handshakeMs = md.duration("handshakeTimeout", 30_000);
    const keepalive = md.bool("keepalive");
    this.#keepaliveMs = keepalive ? md.duration(["ttl", "keepalive.interval"], 30_000) : 0;
    // ssh2 counts unanswered keep-alives: GOST's `keepalive.timeout` becomes that many intervals
    // (when `keepalive.retries` does not say).
    const timeout = md.duration("keepalive.timeout", 0);
    const retries = md.has("keepalive.retries")
      ? md.int("keepalive.retries", 3)
      : timeout > 0 && this.#keepaliveMs > 0
      ? Math.max(1, Math.ceil(timeout / this.#keepaliveMs))
      : 3;
    this.#keepaliveCount = keepalive ? retries : 0;
  }

  async dial(addr: string, ctx: DialContext): Promise<Conn> {
    const s = await this.session(addr, ctx);
    return new SshSessionConn(s.client, s.conn.localAddr, s.conn.remoteAddr);
  }

  /** The live SSH session to `addr`, opened (through `ctx`'s earlier hops) when there is none. */
  async session(addr: string, ctx: DialContext): Promise<Session> {
    let p = this.#sessions.get(addr);
    if (p) {
      const s = await p.catch(() => null);
      if (!s || s.closed) {
        this.#sessions.delete(addr);
        p = undefined;
      }
    }
    if (!p) {
      p = this.#open(addr, ctx);
      this.#sessions.set(addr, p);
      p.catch(() => this.#sessions.delete(addr));
    }
    return await p;
  }

  /** Ends the session to `addr` and forgets it, so the next dial opens a new one. */
  drop(addr: string, s: Session): void {
    const cur = this.#sessions.get(addr);
    cur?.then(
      (c) => c === s && this.#sessions.get(addr) === cur && this.#sessions.delete(addr),
      () => {},
    );
    s.closed = true;
    s.client.end();
    s.conn.close();
  }

  async #open(addr: string, ctx: DialContext): Promise<Session> {
    const { Client } = await SSH2.load();
    const conn = await ctx.netDial(addr);
    const client = new Client();
    // An EventEmitter without an "error" listener throws: one is always there.
    let onError = (_e: Error) => {};
    client.on("error", (e: Error) => onError(e));
    const s: Session = { client, conn, closed: false };
    const done = () => {
      s.closed = true;
      conn.close();
    };
    const signal = ctx.signal;
    let onAbort = () => {};
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new TimeoutError(`${this.#kind}: ${addr}: handshake not done in time`)),
          this.#handshakeMs,
        );
        onAbort = () => {
          clearTimeout(timer);
          reject(signal?.reason ?? new TimeoutError(`${this.#kind}: ${addr}: aborted`));
        };
        if (signal?.aborted) onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        client.once("ready", () => (clearTimeout(timer), resolve()));
        onError = (e: Error) => {
          clearTimeout(timer);
          reject(new TunnelError(`${this.#kind}: ${addr}: ${e.message}`, { cause: e }));
        };
        const agent = Deno.env.get("SSH_AUTH_SOCK");
        // The server gone without an SSH goodbye (killed, TCP closed) must end the session: ssh2
        // emits "end" but never "close" for a socket whose writable side it did not finish, so
        // its channels would wait forever and the next dial would reuse a dead session.
        const sock = conn2duplex(conn);
        sock.on("end", () => sock.destroy());
        sock.on("error", () => sock.destroy());
        client.connect({
          sock,
          username: this.#o.auth?.username ?? Deno.env.get("USER") ?? "root",
          ...(this.#o.auth?.password ? { password: this.#o.auth.password } : {}),
          ...(this.#key ? { privateKey: this.#key } : {}),
          ...(this.#passphrase ? { passphrase: this.#passphrase } : {}),
          ...(agent ? { agent } : {}),
          readyTimeout: this.#handshakeMs,
          keepaliveInterval: this.#keepaliveMs,
          keepaliveCountMax: this.#keepaliveCount,
          hostVerifier: () => true, // GOST ignores host keys too (docs)
        });
      });
    } catch (e) {
      onError = () => {};
      client.end();
      done();
      throw e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    client.on("close", done);
    client.on("end", done);
    onError = (e: Error) => {
      ctx.log.warn(`${this.#kind}: ${addr}: ${e.message}`);
      done();
    };
    return s;
  }

  async close(): Promise<void> {
    for (const p of this.#sessions.values()) {
      const s = await p.catch(() => null);
      s?.client.end();
      s?.conn.close();
    }
    this.#sessions.clear();
  }
}

/** Opens a direct-tcpip channel per target on the node's SSH session. */
export class SshdConnector implements Connector {
  async connect(
    conn: Conn,
    network: Network,
    address: string,
    ctx: ConnectContext,
  ): Promise<Conn> {
    if (!(conn instanceof SshSessionConn)) {
      throw new UnsupportedError("the sshd connector needs the sshd dialer (-F sshd://...)");
    }
    if (network !== "tcp") throw new UnsupportedError("sshd: SSH forwards TCP only");
    const { host, port } = splitHostPort(address);
    const signal = ctx.signal;
    let onAbort = () => {};
    const ch = await new Promise<unknown>((resolve, reject) => {
      // A server that never answers the channel request must not hold the dial past its signal.
      onAbort = () => reject(signal?.reason ?? new TunnelError(`sshd: ${address}: aborted`));
      if (signal?.aborted) onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      conn.client.forwardOut("127.0.0.1", 0, host, port, (err, ch) => {
        if (err) reject(new TunnelError(`sshd: ${address}: ${err.message}`, { cause: err }));
        else if (signal?.aborted) ch.close();
        else resolve(ch);
      });
    }).finally(() => signal?.removeEventListener("abort", onAbort));
    return new ChannelConn(
      ch as ConstructorParameters<typeof ChannelConn>[0],
      conn.localAddr,
      { transport: "ssh", hostname: host, port },
    );
  }
}
