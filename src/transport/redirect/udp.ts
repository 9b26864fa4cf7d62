/**
 * `redu`: GOST's transparent UDP proxy listener (Linux TPROXY; docs/gost-proxies.md §8c2). Deno's
 * datagram sockets cannot deliver a datagram's original destination, so the sockets here are
 * libc's, over FFI:
 * - the listening socket has `IP_TRANSPARENT` and `IP_RECVORIGDSTADDR`; `recvmsg` returns each
 *   datagram with the address the client sent it to (an `IP_ORIGDSTADDR` control message);
 * - each client ⇄ destination pair becomes a session with its own transparent socket bound to the
 *   destination and connected to the client (as GOST does), so replies leave from the address the
 *   client expects and the kernel hands that pair's later datagrams to it.
 * All sockets are non-blocking and waited on by one `poll(2)` on Deno's blocking pool, at most
 * {@link POLL_MS} at a time; a descriptor is closed only between polls. An IPv4 listen address
 * serves IPv4, an IPv6 one (`[::]:port`) IPv6 only (`IPV6_V6ONLY`): run one service for each.
 * @module
 */
import { ConnBase, type NetAddr } from "../../core/conn.ts";
import { AsyncQueue } from "../../core/queue.ts";
import { ConfigError, UnsupportedError } from "../../core/errors.ts";
import { errno, errnoText, type Libc, libc } from "../../core/libc.ts";
import { isIPv4, isIPv6, listenHost, splitHostPort } from "../../core/addr.ts";
import { formatIp, parseIp } from "../../core/ip.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import type { Logger } from "../../core/log.ts";
import { addressedToListener } from "./self.ts";

const AF_INET = 2, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_REUSEADDR = 2, SOL_IP = 0, IP_TRANSPARENT = 19;
const IP_RECVORIGDSTADDR = 20, IP_ORIGDSTADDR = 20;
const AF_INET6 = 10, SOL_IPV6 = 41, IPV6_V6ONLY = 26, IPV6_TRANSPARENT = 75;
const IPV6_RECVORIGDSTADDR = 74, IPV6_ORIGDSTADDR = 74;
/** sockaddr_in6's size, the larger of the two. */
const SOCKADDR_MAX = 28;
const POLLIN = 1, EINTR = 4, MSG_TRUNC = 0x20;
/** Datagrams read from one socket per wake-up (poll reports it again while more are queued). */
const READS_PER_WAKE = 64;
const POLL_MS = 200;
/** GOST's session idle time (`ttl`). */
export const DEFAULT_TTL_MS = 30_000;
/** Client ⇄ destination pairs served at once (each holds a socket). */
const MAX_SESSIONS = 1024;
/** Datagrams a session queues before the handler reads them; beyond, they are dropped. */
const SESSION_QUEUE = 128;

function fail(c: Libc, what: string): never {
  const n = errno(c);
  throw new UnsupportedError(
    `redu: ${what}: ${errnoText(c, n)}` +
      (n === 1 ? " (IP_TRANSPARENT needs CAP_NET_ADMIN or CAP_NET_RAW)" : ""),
  );
}

/** `sockaddr_in` (16 bytes) or `sockaddr_in6` (28) for an IP literal and port. */
function sockaddr(host: string, port: number): Uint8Array {
  const ip = parseIp(host);
  const v6 = host.includes(":") && ip?.length === 16;
  const a = new Uint8Array(v6 ? 28 : 16);
  const v = new DataView(a.buffer);
  v.setUint16(0, v6 ? AF_INET6 : AF_INET, true);
  v.setUint16(2, port, false);
  if (ip) a.set(ip, v6 ? 8 : 4);
  return a;
}

function fromSockaddr(a: Uint8Array): NetAddr {
  const port = (a[2]! << 8) | a[3]!;
  const family = a[0]! | (a[1]! << 8);
  const hostname = family === AF_INET6 ? formatIp(a.subarray(8, 24)) : a.subarray(4, 8).join(".");
  return { transport: "udp", hostname, port };
}

const ONE = new Uint8Array(new Int32Array([1]).buffer);

/**
 * A non-blocking, transparent UDP socket; throws a clear error when the kernel refuses. Only
 * session sockets share their address (`reuse`): the listener's must not, or a second listener on
 * its port would start without a word.
 */
function transparentSocket(c: Libc, reuse: boolean, v6: boolean): number {
  const fd = c.socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(c, "socket");
  if (
    (reuse && c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, ONE, 4) < 0) ||
    (v6 && c.setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, ONE, 4) < 0) ||
    c.setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, ONE, 4) < 0
  ) {
    try {
      fail(c, "setsockopt");
    } finally {
      c.close(fd);
    }
  }
  return fd;
}

/**
 * One `poll` over every registered socket; callbacks run when theirs is readable. An eventfd in
 * the set wakes a poll in progress when a socket is added (a new session's next datagram must not
 * wait out the poll).
 */
class Poller {
  readonly #c: Libc;
  readonly #ready = new Map<number, () => void>();
  readonly #closeAfterPoll: number[] = [];
  readonly #wake: number;
  readonly #eight = new Uint8Array(8);
  #polling = false;
  #stopped = false;
  readonly done: Promise<void>;

  constructor(c: Libc) {
    this.#c = c;
    this.#wake = c.eventfd(0, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (this.#wake < 0) fail(c, "eventfd"); // (the caller closes what it opened)
    this.#ready.set(this.#wake, () => void c.read(this.#wake, this.#eight, 8n));
    this.done = this.#loop();
  }

  watch(fd: number, onReadable: () => void): void {
    this.#ready.set(fd, onReadable);
    if (this.#polling) {
      new DataView(this.#eight.buffer).setBigUint64(0, 1n, true);
      this.#c.write(this.#wake, this.#eight, 8n);
    }
  }

  /** Stops watching `fd` and closes it once no poll can be looking at it. */
  release(fd: number): void {
    this.#ready.delete(fd);
    if (this.#polling) this.#closeAfterPoll.push(fd);
    else this.#c.close(fd);
  }

  stop(): void {
    this.#stopped = true;
    this.release(this.#wake);
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const fds = [...this.#ready.keys()];
      const set = new Uint8Array(8 * Math.max(1, fds.length));
      const v = new DataView(set.buffer);
      fds.forEach((fd, i) => (v.setInt32(8 * i, fd, true), v.setInt16(8 * i + 4, POLLIN, true)));
      this.#polling = true;
      try {
        await this.#c.poll(set, BigInt(fds.length), POLL_MS);
      } finally {
        this.#polling = false;
        for (const fd of this.#closeAfterPoll.splice(0)) this.#c.close(fd);
      }
      for (let i = 0; i < fds.length; i++) {
        if (v.getInt16(8 * i + 6, true) === 0) continue;
        this.#ready.get(fds[i]!)?.();
      }
    }
  }
}

/** Receives one datagram into `buf` with its sender and original destination, or null if none. */
class MsgReader {
  readonly #c: Libc;
  readonly buf: Uint8Array;
  readonly #name = new Uint8Array(SOCKADDR_MAX);
  readonly #control = new Uint8Array(256);
  readonly #iov = new Uint8Array(16);
  readonly #msg = new Uint8Array(56);

  constructor(c: Libc, size: number) {
    this.#c = c;
    this.buf = new Uint8Array(size);
    const iov = new DataView(this.#iov.buffer);
    iov.setBigUint64(0, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.buf))), true);
    iov.setBigUint64(8, BigInt(size), true);
  }

  /** Datagrams longer than the buffer (dropped: a cut datagram is a corrupt one). */
  truncated = 0;

  read(fd: number): { n: number; from: NetAddr; dst: NetAddr | null } | null {
    const m = new DataView(this.#msg.buffer);
    const ptr = (b: Uint8Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
    m.setBigUint64(0, ptr(this.#name), true);
    m.setBigUint64(16, ptr(this.#iov), true);
    m.setBigUint64(24, 1n, true);
    m.setBigUint64(32, ptr(this.#control), true);
    for (;;) {
      // recvmsg shrinks the name and control lengths to what it wrote: reset them each time.
      m.setUint32(8, SOCKADDR_MAX, true);
      m.setBigUint64(40, BigInt(this.#control.length), true);
      m.setInt32(48, 0, true);
      const n = Number(this.#c.recvmsg(fd, this.#msg, 0));
      if (n >= 0) {
        if (m.getInt32(48, true) & MSG_TRUNC) {
          this.truncated++;
          continue;
        }
        const clen = Number(m.getBigUint64(40, true));
        let dst: NetAddr | null = null;
        const cv = new DataView(this.#control.buffer);
        for (let o = 0; o + 16 <= clen;) {
          const len = Number(cv.getBigUint64(o, true));
          const level = cv.getInt32(o + 8, true), type = cv.getInt32(o + 12, true);
          if (len < 16) break;
          if (
            level === SOL_IP && type === IP_ORIGDSTADDR && len >= 32 &&
            cv.getUint16(o + 16, true) === AF_INET
          ) {
            dst = fromSockaddr(this.#control.subarray(o + 16, o + 32));
          } else if (
            level === SOL_IPV6 && type === IPV6_ORIGDSTADDR && len >= 44 &&
            cv.getUint16(o + 16, true) === AF_INET6
          ) {
            dst = fromSockaddr(this.#control.subarray(o + 16, o + 44));
          }
          o += (len + 7) & ~7;
        }
        return { n, from: fromSockaddr(this.#name), dst };
      }
      const e = errno(this.#c);
      if (e === EINTR) continue;
      return null; // EAGAIN: drained (other errors: ICMP reports on a connected socket; skip)
    }
  }
}

/** One client ⇄ original destination pair (its conn: local = the destination, remote = client). */
export class ReduConn extends ConnBase {
  readonly datagram = true;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly #q = new AsyncQueue<Uint8Array>(SESSION_QUEUE);
  readonly #c: Libc;
  readonly #fd: number;
  readonly #onClose: () => void;
  #closed = false;
  /** Datagrams dropped because the handler fell behind. */
  dropped = 0;
  /** When a datagram last went either way (the listener ends sessions idle for `ttl`). */
  lastActive = Date.now();

  constructor(c: Libc, fd: number, dst: NetAddr, client: NetAddr, onClose: () => void) {
    super();
    this.#c = c;
    this.#fd = fd;
    this.localAddr = { ...dst, transport: "udp" };
    this.remoteAddr = { ...client, transport: "udp" };
    this.#onClose = onClose;
  }

  /** @internal A datagram from the client. */
  deliver(d: Uint8Array): void {
    this.lastActive = Date.now();
    if (!this.#q.push(d)) this.dropped++;
  }

  async read(p: Uint8Array): Promise<number | null> {
    const d = await this.#q.shift();
    if (d === null) return null;
    const n = Math.min(d.length, p.length);
    p.set(d.subarray(0, n));
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.resolve(p.length);
    this.lastActive = Date.now();
    for (;;) {
      const n = Number(this.#c.send(this.#fd, p, BigInt(p.length), 0));
      if (n >= 0 || errno(this.#c) !== EINTR) break; // EAGAIN: dropped, as a full socket would
    }
    return Promise.resolve(p.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#q.close();
    this.#onClose();
  }
}

/** The redu listener: sessions per client ⇄ destination pair. */
export class ReduListener implements Listener {
  readonly addr: NetAddr;
  readonly #c: Libc;
  readonly #fd: number;
  readonly #poller: Poller;
  readonly #reader: MsgReader;
  readonly #sessionReader: MsgReader;
  readonly #accepts = new AsyncQueue<ReduConn>(128);
  readonly #sessions = new Map<string, { conn: ReduConn; fd: number }>();
  readonly #log: Logger;
  readonly #ttl: number;
  readonly #v6: boolean;
  #warned = 0;
  readonly #sweep: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(addr: string, readBufferSize: number, ttlMs: number, log: Logger) {
    const c = libc("redu (TPROXY)");
    this.#c = c;
    this.#log = log;
    this.#ttl = ttlMs;
    const { host, port } = splitHostPort(addr);
    const h = listenHost(host);
    const v6 = isIPv6(h);
    if (!v6 && !isIPv4(h)) throw new UnsupportedError(`redu: "${h}" is not an IP address`);
    this.#v6 = v6;
    const fd = transparentSocket(c, false, v6);
    const recv = v6
      ? c.setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, ONE, 4)
      : c.setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, ONE, 4);
    if (recv < 0) {
      c.close(fd);
      fail(c, "IP_RECVORIGDSTADDR");
    }
    const me = sockaddr(h, port);
    if (c.bind(fd, me, me.length) < 0) {
      c.close(fd);
      fail(c, `bind ${addr}`);
    }
    // The bound port (port 0 in the config is the real one here).
    const name = new Uint8Array(SOCKADDR_MAX), len = new Uint32Array([SOCKADDR_MAX]);
    c.getsockname(fd, name, new Uint8Array(len.buffer));
    this.addr = fromSockaddr(name);
    this.#fd = fd;
    this.#reader = new MsgReader(c, readBufferSize);
    this.#sessionReader = new MsgReader(c, readBufferSize);
    try {
      this.#poller = new Poller(c);
    } catch (e) {
      c.close(fd);
      throw e;
    }
    this.#poller.watch(fd, () => this.#drain());
    // Sessions idle for `ttl` end (GOST's read/write deadline per datagram).
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const { conn } of [...this.#sessions.values()]) {
        if (now - conn.lastActive > this.#ttl) conn.close();
      }
    }, Math.min(1000, this.#ttl));
    Deno.unrefTimer(this.#sweep as unknown as number);
  }

  #drain(): void {
    for (let i = 0; i < READS_PER_WAKE; i++) {
      const r = this.#reader.read(this.#fd);
      if (!r) break;
      // Sent to the listener itself (not diverted): its destination is us, and sending it there
      // would loop, through a chain past the router's own check too.
      if (!r.dst || addressedToListener(r.dst, this.addr)) continue;
      const d = this.#reader.buf.slice(0, r.n);
      const key = `${r.from.hostname}:${r.from.port}>${r.dst.hostname}:${r.dst.port}`;
      const known = this.#sessions.get(key);
      if (known) {
        known.conn.deliver(d);
        continue;
      }
      if (this.#sessions.size >= MAX_SESSIONS) {
        // Full: the session idle longest goes, so new clients are not locked out for a ttl.
        let oldest: ReduConn | undefined;
        for (const { conn } of this.#sessions.values()) {
          if (!oldest || conn.lastActive < oldest.lastActive) oldest = conn;
        }
        oldest?.close();
        const now = Date.now();
        if (now - this.#warned > 10_000) {
          this.#warned = now;
          this.#log.warn(`redu: ${MAX_SESSIONS} sessions open: the longest idle are closed early`);
        }
      }
      this.#open(key, r.from, r.dst, d);
    }
    this.#reportTruncated();
  }

  #truncatedSeen = 0;
  #reportTruncated(): void {
    const n = this.#reader.truncated + this.#sessionReader.truncated;
    const now = Date.now();
    if (n === this.#truncatedSeen || now - this.#warned < 10_000) return;
    this.#warned = now;
    this.#log.warn(
      `redu: ${
        n - this.#truncatedSeen
      } datagrams longer than readBufferSize (${this.#reader.buf.length}) dropped`,
    );
    this.#truncatedSeen = n;
  }

  #open(key: string, client: NetAddr, dst: NetAddr, first: Uint8Array): void {
    const c = this.#c;
    let fd: number;
    try {
      fd = transparentSocket(c, true, this.#v6);
    } catch (e) {
      this.#log.warn(String(e instanceof Error ? e.message : e));
      return;
    }
    // Bound to the destination, connected to the client: replies leave from where the client
    // sent to, and the kernel hands this pair's next datagrams to this socket.
    const to = sockaddr(dst.hostname, dst.port), from = sockaddr(client.hostname, client.port);
    if (c.bind(fd, to, to.length) < 0 || c.connect(fd, from, from.length) < 0) {
      const e = errno(c);
      c.close(fd);
      this.#log.warn(`redu: cannot answer ${key} from its destination (errno ${e})`);
      return;
    }
    const conn = new ReduConn(c, fd, dst, client, () => {
      this.#sessions.delete(key);
      this.#poller.release(fd);
    });
    // One reader serves every session: each datagram is copied out at once.
    const reader = this.#sessionReader;
    this.#poller.watch(fd, () => {
      for (let i = 0; i < READS_PER_WAKE; i++) {
        const r = reader.read(fd);
        if (!r) break;
        conn.deliver(reader.buf.slice(0, r.n));
      }
      this.#reportTruncated();
    });
    this.#sessions.set(key, { conn, fd });
    conn.deliver(first);
    if (!this.#accepts.push(conn)) conn.close();
  }

  accept(): Promise<ReduConn | null> {
    return this.#accepts.shift();
  }

  /** Sessions open now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const s of this.#accepts.close()) s.close();
    for (const { conn } of [...this.#sessions.values()]) conn.close();
    this.#poller.release(this.#fd);
    this.#poller.stop();
    await this.#poller.done;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Builds the redu listener: `ttl` (session idle time, 30 s) and `readBufferSize` (4096), as GOST. */
export function createReduListener(o: ListenerOptions): Promise<Listener> {
  const ttl = o.metadata.duration("ttl", DEFAULT_TTL_MS) || DEFAULT_TTL_MS;
  const size = o.metadata.int("readBufferSize", 4096);
  if (size <= 0 || size > 65535) {
    throw new ConfigError(`${o.metadata.path}.readBufferSize`, `${size} is out of range`);
  }
  try {
    return Promise.resolve(new ReduListener(o.addr, size, ttl, o.log));
  } catch (e) {
    return Promise.reject(
      e instanceof UnsupportedError ? new ConfigError(o.metadata.path, e.message) : e,
    );
  }
}
