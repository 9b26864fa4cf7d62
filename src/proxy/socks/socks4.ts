/**
 * SOCKS4 and SOCKS4a (docs/gost-proxies.md §5) — handler and connector. Request
 * `04 CD PORT(2) IP(4) USERID NUL [HOST NUL]`; reply `00 CD 0000 00000000` with CD 90 granted,
 * 91 failed, 92 rejected, 93 user id rejected. BIND works when `bind=true` (GOST refuses it).
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import type { Conn } from "../../core/conn.ts";
import { isIPv4, joinHostPort, splitHostPort } from "../../core/addr.ts";
import {
  AuthError,
  errorText,
  ProtocolError,
  TunnelError,
  UnsupportedError,
} from "../../core/errors.ts";
import type {
  ConnectContext,
  Connector,
  ConnectorOptions,
  HandleContext,
  Handler,
  HandlerOptions,
  Network,
} from "../../core/types.ts";
import { acceptWhileWatching, classifyDialError, pipeLogged } from "../common.ts";
import { withDeadline } from "../../core/deadline.ts";
import { SocketConn } from "../../core/socket.ts";

export const GRANTED = 90;
export const FAILED = 91;
export const REJECTED = 92;
export const REJECTED_USERID = 93;

function reply(cd: number, ip = "0.0.0.0", port = 0): Uint8Array {
  const b = new Uint8Array([0, cd, port >> 8, port & 0xff, 0, 0, 0, 0]);
  if (isIPv4(ip)) b.set(ip.split(".").map(Number), 4);
  return b;
}

async function readCString(br: BufReader, max = 255): Promise<string> {
  const bytes: number[] = [];
  for (;;) {
    const b = await br.readByte();
    if (b === 0) break;
    if (bytes.length >= max) throw new ProtocolError("socks4: string too long");
    bytes.push(b);
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** The SOCKS4/4a server side. */
export class Socks4Handler implements Handler {
  readonly #o: HandlerOptions;
  readonly #readTimeout: number;
  readonly #bindOn: boolean;
  constructor(opts: HandlerOptions) {
    this.#o = opts;
    this.#readTimeout = opts.metadata.duration("readTimeout", 15_000);
    this.#bindOn = opts.metadata.bool("bind");
  }

  /**
   * BIND (needs `bind=true`, like socks5): listen on the control conn's local address, reply
   * with it, reply again with the peer when one connects, then relay. (GOST refuses BIND.)
   */
  async #bind(conn: Conn, ctx: HandleContext): Promise<void> {
    if (!this.#bindOn) {
      await conn.write(reply(REJECTED));
      throw new UnsupportedError("socks4: BIND not enabled (bind=true)");
    }
    let l: Deno.Listener;
    try {
      l = Deno.listen({ hostname: conn.localAddr.hostname || "0.0.0.0", port: 0 });
    } catch (e) {
      await conn.write(reply(FAILED));
      throw new TunnelError(`socks4: bind: ${errorText(e)}`);
    }
    const la = l.addr as Deno.NetAddr;
    await conn.write(reply(GRANTED, la.hostname, la.port));
    const got = await acceptWhileWatching(l, conn);
    if (!got) return;
    const pc = new SocketConn(got.peer);
    await conn.write(reply(GRANTED, pc.remoteAddr.hostname, pc.remoteAddr.port));
    await pipeLogged(got.client, pc, `${pc.remoteAddr.hostname}:${pc.remoteAddr.port}`, ctx);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const br = new BufReader(conn, 512);
    const req = await withDeadline(conn, this.#readTimeout, async () => {
      const h = await br.readN(8);
      if (h[0] !== 4) throw new ProtocolError("socks4: bad version");
      const port = (h[2]! << 8) | h[3]!;
      let host = `${h[4]}.${h[5]}.${h[6]}.${h[7]}`;
      const user = await readCString(br);
      // 0.0.0.x with x != 0: SOCKS4a, the host name follows.
      if (h[4] === 0 && h[5] === 0 && h[6] === 0 && h[7] !== 0) host = await readCString(br);
      return { cmd: h[1]!, addr: joinHostPort(host, port), user };
    });
    if (this.#o.auther && !this.#o.auther.authenticate(req.user, "")) {
      await conn.write(reply(REJECTED_USERID));
      throw new AuthError(`socks4: user id ${JSON.stringify(req.user)} rejected`);
    }
    if (req.cmd === 2) return await this.#bind(conn, ctx);
    if (req.cmd !== 1) {
      await conn.write(reply(FAILED));
      throw new UnsupportedError(`socks4: command ${req.cmd} not supported`);
    }
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", req.addr, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      const code = classifyDialError(e) === "forbidden" ? REJECTED : FAILED;
      await conn.write(reply(code)).catch(() => {});
      ctx.log.error(`socks4: connect ${req.addr}: ${errorText(e)}`, { dst: req.addr });
      return;
    }
    await conn.write(reply(GRANTED));
    return pipeLogged(br.conn(), up, req.addr, ctx); // returned, not awaited: as socks5
  }
}

/** The SOCKS4a client side (`disable4a=true` sends resolved IPv4 only). */
export class Socks4Connector implements Connector {
  readonly #user: string;
  readonly #no4a: boolean;
  constructor(opts: ConnectorOptions) {
    this.#user = opts.auth?.username ?? "";
    this.#no4a = opts.metadata.bool("disable4a");
  }

  async connect(
    conn: Conn,
    network: Network,
    address: string,
    _ctx: ConnectContext,
  ): Promise<Conn> {
    if (network !== "tcp") throw new UnsupportedError("socks4: only tcp");
    const { host, port } = splitHostPort(address);
    const h = host === "" ? "127.0.0.1" : host;
    let ip = h;
    let name = "";
    if (!isIPv4(h)) {
      if (this.#no4a) {
        const [a] = await Deno.resolveDns(h, "A");
        if (!a) throw new TunnelError(`socks4: cannot resolve ${h}`);
        ip = a;
      } else {
        ip = "0.0.0.1";
        name = h;
      }
    }
    const enc = new TextEncoder();
    const user = enc.encode(this.#user);
    const nameB = enc.encode(name);
    const req = new Uint8Array(8 + user.length + 1 + (name ? nameB.length + 1 : 0));
    req.set([4, 1, port >> 8, port & 0xff, ...ip.split(".").map(Number)]);
    req.set(user, 8);
    if (name) req.set(nameB, 9 + user.length);
    await conn.write(req);
    const br = new BufReader(conn, 64);
    const r = await br.readN(8);
    if (r[1] !== GRANTED) throw new TunnelError(`socks4: server replied ${r[1]} for ${address}`);
    return br.conn();
  }
}
