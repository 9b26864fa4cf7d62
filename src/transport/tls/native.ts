/**
 * TLS listeners on Deno's own TLS (`Deno.listenTls`): an idle conn costs ~16 KiB there against
 * 34-42 through node:tls over the accepted TCP conn, and records are sealed and opened without a
 * JavaScript stream in between (docs/performance.md, "TLS servers").
 *
 * One thing Deno cannot do: closing an accepted conn whose handshake is still pending cancels the
 * handshake but leaves the socket open until the client leaves, so a handshake deadline alone
 * would let silent clients hold descriptors. A conn closed before its handshake finished is first
 * shut down (`shutdown(2)` on its descriptor, found through /proc as `ss -p` does), which ends the
 * pending handshake and frees the socket. Where that cannot be done (no FFI permission, no /proc,
 * not Linux), and where client certificates are required (Deno cannot ask for them), the listener
 * keeps node:tls ({@link nativeTlsUsable}).
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { fdsOfInodes, libc, libcUnavailable } from "../../core/libc.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import { SocketConn } from "../../core/socket.ts";
import { TunnelError } from "../../core/errors.ts";
import { parseIp } from "../../core/ip.ts";
import { TcpListener } from "../tcp/listener.ts";

const SHUT_RDWR = 2;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

/** Whether a conn with a pending handshake can be shut down here (see the module comment). */
export function nativeTlsUsable(): boolean {
  if (libcUnavailable("shutting down a TLS handshake")) return false;
  try {
    return Deno.permissions.querySync({ name: "read", path: "/proc" }).state === "granted" &&
      Deno.statSync("/proc/self/fd").isDirectory;
  } catch {
    return false;
  }
}

const hex = (n: number, digits: number) => n.toString(16).toUpperCase().padStart(digits, "0");

/**
 * An address as /proc/net/tcp{,6} prints it: the address's bytes as 32-bit words, each in host
 * (little-endian) order, then ":PORT" in hex; 127.0.0.1:443 is 0100007F:01BB. IPv4 has two forms:
 * alone (tcp) and as ::ffff:a.b.c.d (tcp6, a dual-stack listener, where Deno reports the peer as
 * "::ffff:127.0.0.1"). Empty if the address does not parse.
 */
function procForms(a: NetAddr): string[] {
  const ip = parseIp(a.hostname.replace(/%.*$/, ""));
  if (!ip) return [];
  const words: string[] = [];
  for (let i = 0; i < ip.length; i += 4) {
    words.push(hex(ip[i + 3]!, 2) + hex(ip[i + 2]!, 2) + hex(ip[i + 1]!, 2) + hex(ip[i]!, 2));
  }
  const port = ":" + hex(a.port, 4);
  return ip.length === 4
    ? [words[0]! + port, "0000000000000000FFFF0000" + words[0]! + port]
    : [words.join("") + port];
}

/**
 * Inodes of this host's TCP sockets by "local remote" (/proc's forms), for lines whose local
 * address ends in one of `ports` (a cheap test before a line is split): listening sockets (state
 * 0A) with `listening`, connections without. Lines of sockets that no process holds (TIME_WAIT,
 * orphans) have inode 0 and are left out.
 */
function socketsByPair(ports: Set<string>, listening = false): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(f);
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const colon = line.indexOf(":", line.indexOf(":") + 1); // the local address's port
      if (colon < 0 || !ports.has(line.slice(colon, colon + 5))) continue;
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[9] === "0" || (cols[3] === "0A") !== listening) continue;
      const key = cols[1] + " " + cols[2];
      const list = out.get(key);
      if (list) list.push(cols[9]!);
      else out.set(key, [cols[9]!]);
    }
  }
  return out;
}

/** Conns closed mid-handshake whose sockets are to be shut down at the next sweep. */
const toShut: [NetAddr, NetAddr][] = [];
/** Sweeps are at least this far apart, so a flood of timeouts costs one /proc read per spell. */
const SWEEP_EVERY_MS = 100;
let lastSweep = -Infinity;

/**
 * Shuts down, both ways, the sockets of every conn queued since the last sweep: one read of
 * /proc/net (only the lines of the listeners' ports are split) and one pass over /proc/self/fd
 * for all of them. A socket is touched only when exactly one live socket has its two addresses.
 */
function sweep(): void {
  lastSweep = performance.now();
  const batch = toShut.splice(0);
  try {
    const ports = new Set(batch.map(([l]) => ":" + hex(l.port, 4)));
    const pairs = socketsByPair(ports);
    const inodes: string[] = [];
    for (const [l, r] of batch) {
      const found = new Set<string>();
      for (const lf of procForms(l)) {
        for (const rf of procForms(r)) for (const i of pairs.get(lf + " " + rf) ?? []) found.add(i);
      }
      if (found.size === 1) inodes.push(...found);
    }
    const c = libc("shutting down a TLS handshake");
    for (const fd of fdsOfInodes(inodes).values()) c.shutdown(fd, SHUT_RDWR);
  } catch { /* /proc or libc went away: nothing more can be done */ }
}

/** Queues the socket between `local` and `remote` for the next {@link sweep}. */
function shutDownSoon(local: NetAddr, remote: NetAddr): void {
  if (toShut.push([local, remote]) === 1) {
    setTimeout(sweep, Math.max(0, lastSweep + SWEEP_EVERY_MS - performance.now()));
  }
}

/** An accepted native TLS conn: its handshake runs in {@link handshake}. */
export class NativeTlsConn extends SocketConn {
  /** The protocol ALPN settled on, if any (DoH reads it). */
  alpn?: string;
  #pending = true;

  constructor(c: Deno.TlsConn) {
    super(c);
    // As node:tls conns say: the transport is TLS, not the TCP underneath.
    Object.assign(this, {
      localAddr: { ...this.localAddr, transport: "tls" },
      remoteAddr: { ...this.remoteAddr, transport: "tls" },
    });
  }

  /** Runs the server handshake; resolves this conn once it is done. */
  async handshake(): Promise<Conn> {
    try {
      const info = await (this.inner as Deno.TlsConn).handshake();
      if (info.alpnProtocol) this.alpn = info.alpnProtocol;
    } catch (e) {
      throw new TunnelError(`tls handshake: ${e instanceof Error ? e.message : e}`, { cause: e });
    } finally {
      this.#pending = false;
    }
    return this;
  }

  override close(): void {
    // Closing alone would leave the socket open while the handshake waits (module comment). The
    // socket keeps its inode until it is shut down, so the sweep finds it after the close.
    if (this.#pending) {
      this.#pending = false;
      shutDownSoon(this.localAddr, this.remoteAddr);
    }
    super.close();
  }
}

/**
 * Sets TCP_NODELAY on this process's listening sockets on `port`, which accepted sockets inherit:
 * a `Deno.TlsConn` has no `setNoDelay`, and node:tls conns had it (small writes of interactive
 * traffic would otherwise wait out Nagle and the peer's delayed ACK, ~40 ms).
 */
function noDelayOnListener(port: number): void {
  try {
    const inodes = [...socketsByPair(new Set([":" + hex(port, 4)]), true).values()].flat();
    const c = libc("setting TCP_NODELAY");
    const one = new Uint8Array(new Int32Array([1]).buffer);
    for (const fd of fdsOfInodes(inodes).values()) {
      c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
    }
  } catch { /* best effort: conns then run with Nagle's algorithm */ }
}

/** Accepts TLS conns on `addr` with Deno's TLS; each conn's handshake is left to the caller. */
export function nativeTlsListener(
  addr: string,
  cert: string,
  key: string,
  alpn?: string[],
): TcpListener {
  const { host, port } = splitHostPort(addr);
  const l = Deno.listenTls({
    hostname: listenHost(host),
    port,
    transport: "tcp",
    cert,
    key,
    ...(alpn ? { alpnProtocols: alpn } : {}),
  });
  noDelayOnListener(l.addr.port);
  return new TcpListener(l, (c) => new NativeTlsConn(c as Deno.TlsConn));
}
