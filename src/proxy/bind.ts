/**
 * Remote port forwarding over a proxy conn (docs/reverse.md): the server listens on the
 * client's behalf and multiplexes every inbound peer onto the client's conn as one smux stream
 * that starts with a header naming the peer (SOCKS5 MUXBIND 0xF2, relay BIND). GOST's roles:
 * the server is the smux client (it opens the streams), the client the smux server, smux v1
 * unless `mux.version` says otherwise.
 * @module
 */
import { BufReader } from "../core/bufio.ts";
import { type Conn, formatAddr, type NetAddr, WrappedConn } from "../core/conn.ts";
import { errorText, TunnelError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Metadata } from "../core/metadata.ts";
import { withDeadline } from "../core/deadline.ts";
import { joinHostPort, listenHost, splitHostPort } from "../core/addr.ts";
import { PacketDemux, type PacketDemuxOptions } from "../core/packet_demux.ts";
import { encodeUdpFrame, readUdpFrame } from "../protocol/udp_frame.ts";
import { LengthFramedConn } from "../protocol/length_framed.ts";
import { SocketConn } from "../core/socket.ts";
import { chunkLimit, copy } from "../core/relay.ts";
import { AsyncQueue } from "../core/queue.ts";
import type { Listener } from "../core/types.ts";
import {
  clientSession,
  serverSession,
  type SmuxConfig,
  smuxConfigFromMetadata,
  type SmuxSession,
} from "../mux/smux/mod.ts";

/** GOST's rudp session defaults (ttl 5 s, queues of 1,024, backlog 128; always keepalive). */
export const RUDP: PacketDemuxOptions = {
  keepalive: true,
  ttl: 5000,
  readQueueSize: 1024,
  backlog: 128,
  maxSessions: 1024,
};

/** The port of `host:port`, or 0 when there is none. */
export function portOf(addr: string): number {
  try {
    return splitHostPort(addr || ":0").port;
  } catch {
    return 0;
  }
}

/** How long a peer stream may take to deliver its header. */
const HEADER_TIMEOUT = 15_000;

/** A bind request's smux settings (`mux.*` metadata; version 1 as GOST's bind). */
export function bindMuxConfig(md: Metadata): SmuxConfig {
  return smuxConfigFromMetadata(md, 1);
}

/**
 * Which ports a server lets clients bind: `bind.ports` (Burrow) as `2222,10000-10100`; empty
 * allows every port. GOST has only `bind=true`.
 */
export class BindPolicy {
  readonly #ranges: [number, number][] = [];

  constructor(readonly enabled: boolean, ports: string | undefined, path = "bind.ports") {
    for (const part of (ports ?? "").split(",").map((p) => p.trim()).filter((p) => p)) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(part);
      const lo = m ? Number(m[1]) : NaN;
      const hi = m ? Number(m[2] ?? m[1]) : NaN;
      if (!(lo >= 1 && hi <= 65535 && lo <= hi)) {
        throw new TunnelError(`${path}: bad port range ${JSON.stringify(part)}`);
      }
      this.#ranges.push([lo, hi]);
    }
  }

  /** From handler metadata (`bind`, `bind.ports`). */
  static from(md: Metadata): BindPolicy {
    return new BindPolicy(md.bool("bind"), md.string("bind.ports"));
  }

  /** Why binding `port` is refused, or null when it may. */
  refusal(port: number): string | null {
    if (!this.enabled) return "binding is not enabled on this server (bind=true)";
    if (this.#ranges.length === 0) return null;
    if (port === 0) return "port 0 is not allowed: bind.ports lists the allowed ports";
    return this.#ranges.some(([lo, hi]) => port >= lo && port <= hi)
      ? null
      : `port ${port} is outside bind.ports`;
  }
}

/** How a protocol answers a bind request (SOCKS5 replies, relay responses). */
export interface BindAnswers {
  /** Refused by policy (SOCKS5 2, relay 3). */
  refused: Uint8Array;
  /** Could not listen (SOCKS5 1, relay 5). */
  failed: Uint8Array;
  /** Granted; `bound` is the listening address. */
  ok(bound: Deno.NetAddr): Uint8Array;
  /** The protocol, for messages (`socks5`, `relay`). */
  name: string;
}

/**
 * Checks a bind request against `policy`, listens (`listen`), and answers: refused, failed or
 * OK. Returns the socket once the OK is sent; it is closed on any failure before that.
 */
export async function grantBind<L extends { readonly addr: Deno.Addr; close(): void }>(
  conn: Conn,
  addr: string,
  policy: BindPolicy,
  answers: BindAnswers,
  listen: (addr: string) => L,
  log: Logger,
): Promise<L> {
  const why = policy.refusal(portOf(addr));
  if (why) {
    await conn.write(answers.refused);
    throw new TunnelError(`${answers.name}: bind ${addr} refused: ${why}`);
  }
  let l: L;
  try {
    l = listen(addr || ":0");
  } catch (e) {
    await conn.write(answers.failed);
    throw new TunnelError(`${answers.name}: bind ${addr}: ${errorText(e)}`);
  }
  const a = l.addr as Deno.NetAddr;
  try {
    await conn.write(answers.ok(a));
  } catch (e) {
    l.close(); // nobody owns it yet
    throw e;
  }
  log.info(
    `${answers.name}: bound ${joinHostPort(a.hostname, a.port)}/${a.transport} for ${
      formatAddr(conn.remoteAddr)
    }`,
  );
  return l;
}

/** Listens where a bind request asks: an empty or unspecified host means every interface. */
export function listenForBind(addr: string): Deno.TcpListener {
  const { host, port } = splitHostPort(addr);
  const h = host === "" || host === "0.0.0.0" ? listenHost("") : host;
  return Deno.listen({ hostname: h === "::" ? "::" : h, port, transport: "tcp" });
}

/** Peers one bind carries at once; more are closed at once (the client sees nothing of them). */
export const MAX_BIND_PEERS = 1024;

/** Accept errors that concern one peer (it reset before we took it), not the listener. */
function peerAcceptError(e: unknown): boolean {
  return e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.ConnectionAborted ||
    e instanceof Deno.errors.NotConnected;
}

/**
 * Relays a peer and its stream. The stream's end (the client closed or refused it) ends the peer
 * too, as GOST does: a bind stream has no half-close.
 */
async function pumpPeer(peer: Conn, stream: Conn): Promise<void> {
  // As relay() does: an end that says how much to move at once (a KCP stream) caps the buffers.
  const max = chunkLimit(peer, stream);
  const up = copy(peer, stream, undefined, undefined, max).then(() => stream.closeWrite(), () => {})
    .catch(() => {});
  await copy(stream, peer, undefined, undefined, max).catch(() => {});
  peer.close();
  stream.close();
  await up;
}

/**
 * The server side once the bind is granted: runs a smux client session over `conn`, opens one
 * stream per peer accepted on `listener`, writes `header(peer)` first and relays. Ends (and
 * closes the listener and every peer) when the conn or the session ends, or `signal` aborts.
 * A client that opens a stream itself breaks the protocol and ends the bind.
 */
export async function serveMuxBind(
  conn: Conn,
  listener: Deno.TcpListener,
  o: {
    header: (peer: string) => Uint8Array;
    mux: SmuxConfig;
    log: Logger;
    signal?: AbortSignal;
  },
): Promise<void> {
  const session = clientSession(conn, o.mux, { log: o.log });
  let done = false;
  const stop = () => {
    done = true;
    try {
      listener.close();
    } catch { /* closed */ }
  };
  o.signal?.addEventListener("abort", stop, { once: true });
  session.closed.then(stop);
  const watch = (async () => {
    const s = await session.acceptStream().catch(() => null);
    if (s) {
      o.log.warn("bind: the client opened a stream (not part of the protocol); bind ended");
      s.close();
      session.close();
    }
  })();
  const peers = new Set<Conn>();
  const tasks = new Set<Promise<void>>();
  let delay = 0;
  try {
    while (!done) {
      let raw: Deno.TcpConn;
      try {
        raw = await listener.accept();
        delay = 0;
      } catch (e) {
        if (done || e instanceof Deno.errors.BadResource) break;
        if (peerAcceptError(e)) continue;
        // Out of descriptors and the like: wait, the bind itself is fine.
        delay = Math.min(delay ? delay * 2 : 10, 1000);
        o.log.warn(`bind: accept: ${errorText(e)}; retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      const peer = new SocketConn(raw);
      if (peers.size >= MAX_BIND_PEERS) {
        peer.close();
        continue;
      }
      peer.setNoDelay(true);
      peers.add(peer);
      const t = (async () => {
        let stream: Conn | undefined;
        try {
          stream = await session.openStream();
          await stream.write(o.header(formatAddr(peer.remoteAddr)));
          await pumpPeer(peer, stream);
        } catch (e) {
          o.log.debug(`bind: peer ${formatAddr(peer.remoteAddr)}: ${errorText(e)}`);
        } finally {
          peer.close();
          stream?.close();
          peers.delete(peer);
        }
      })();
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    }
  } finally {
    o.signal?.removeEventListener("abort", stop);
    stop();
    session.close();
    // Idle peers would wait forever for bytes: the bind is over, so are they.
    for (const p of peers) p.close();
    await Promise.all([watch, ...tasks]);
  }
}

/** Datagrams from peers a UDP bind remembers (the only ones the client may answer). */
const MAX_UDP_PEERS = 4096;

/**
 * The server side of a UDP bind (relay BIND 0x82, SOCKS5 UDP-TUN with a port): datagrams that
 * arrive on `sock` go to the client as UDP-over-TCP frames naming their source; frames from the
 * client go out to the peer they name — only to peers that have sent to us, so a bind is not an
 * open UDP relay. Ends when the conn ends or `signal` aborts.
 */
export async function serveUdpBind(
  br: BufReader,
  conn: Conn,
  sock: Deno.DatagramConn,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const peers = new Set<string>();
  const stop = () => {
    try {
      sock.close();
    } catch { /* closed */ }
  };
  signal?.addEventListener("abort", stop, { once: true });
  // One datagram at a time: the frame is written before the buffer is reused.
  const inbound = (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      let data: Uint8Array, from: Deno.NetAddr;
      try {
        const [d, f] = await sock.receive(buf);
        data = d;
        from = f as Deno.NetAddr;
      } catch {
        return;
      }
      const peer = joinHostPort(from.hostname, from.port);
      if (!peers.has(peer)) {
        if (peers.size >= MAX_UDP_PEERS) peers.delete(peers.values().next().value!);
        peers.add(peer);
      }
      try {
        await conn.write(encodeUdpFrame(peer, data));
      } catch {
        conn.close(); // the client is gone: the frame loop below ends the bind
        return;
      }
    }
  })();
  try {
    for (;;) {
      const f = await readUdpFrame(br).catch(() => null);
      if (!f) break;
      if (!peers.has(f.addr)) {
        log.debug(`udp bind: a datagram to ${f.addr}, which never sent to us, was dropped`);
        continue;
      }
      const { host, port } = splitHostPort(f.addr);
      await sock.send(f.data, { transport: "udp", hostname: host, port }).catch(() => {});
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
    conn.close();
    await inbound;
  }
}

/**
 * The client side of a UDP bind: UDP-over-TCP frames from the server, split into one datagram
 * session per peer (rudp's `ttl`, `readQueueSize`, `backlog`); answers go back as frames.
 */
export class PacketBindListener implements Listener {
  readonly addr: NetAddr;
  readonly #conn: Conn;
  readonly #demux: PacketDemux;
  readonly #loop: Promise<void>;

  constructor(conn: Conn, br: BufReader, bound: string, opts: PacketDemuxOptions, log: Logger) {
    this.#conn = conn;
    let host = "", port = 0;
    try {
      ({ host, port } = splitHostPort(bound));
    } catch { /* no usable address */ }
    this.addr = { transport: "udp", hostname: host, port };
    let writing = Promise.resolve();
    const demux = new PacketDemux(this.addr, opts, (data, peer) => {
      const frame = encodeUdpFrame(joinHostPort(peer.hostname, peer.port), data);
      writing = writing.then(() => conn.write(frame).then(() => {}));
      return writing;
    }, log);
    this.#demux = demux;
    this.#loop = (async () => {
      try {
        for (;;) {
          const f = await readUdpFrame(br);
          if (!f) break;
          const p = splitHostPort(f.addr);
          demux.deliver(f.data, { transport: "udp", hostname: p.host, port: p.port });
        }
      } catch (e) {
        log.debug(`udp bind: ${errorText(e)}`);
      } finally {
        demux.close();
        conn.close();
      }
    })();
  }

  accept(): Promise<Conn | null> {
    return this.#demux.accept();
  }

  async close(): Promise<void> {
    this.#conn.close();
    this.#demux.close();
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Binds a UDP socket where a bind request asks (empty or unspecified host: every interface). */
export function listenUdpForBind(addr: string): Deno.DatagramConn {
  const { host, port } = splitHostPort(addr);
  const h = host === "" || host === "0.0.0.0" ? listenHost("") : host;
  return Deno.listenDatagram({ transport: "udp", hostname: h, port });
}

/** A peer stream whose remote address is the peer's (from its header). */
class PeerConn extends WrappedConn {
  readonly #remote: NetAddr;
  constructor(inner: Conn, peer: string, transport = "tcp") {
    super(inner);
    let host = "", port = 0;
    try {
      ({ host, port } = splitHostPort(peer));
    } catch { /* keep the empty address */ }
    this.#remote = { transport, hostname: host, port };
  }
  override get remoteAddr(): NetAddr {
    return this.#remote;
  }
}

/**
 * The client side once the server granted the bind: a listener over a smux server session whose
 * streams each start with a header naming the peer (`readPeer`). Headers are read concurrently,
 * so a stream that never sends one holds up nobody; one with a bad header is dropped alone (GOST
 * tears the whole bind down). The listener ends when the session does.
 */
export class MuxBindListener implements Listener {
  readonly addr: NetAddr;
  readonly #session: SmuxSession;
  readonly #ready: AsyncQueue<Conn>;
  readonly #loop: Promise<void>;

  /** With `datagrams`, each stream is one datagram conn (`LEN(2) | payload`, UDP tunnels). */
  constructor(
    conn: Conn,
    bound: string,
    mux: SmuxConfig,
    readPeer: (br: BufReader) => Promise<string>,
    log: Logger,
    datagrams = false,
  ) {
    const session = serverSession(conn, mux, { log });
    this.#session = session;
    const ready = new AsyncQueue<Conn>(128);
    this.#ready = ready;
    let host = "", port = 0;
    try {
      ({ host, port } = splitHostPort(bound));
    } catch { /* the server sent no usable address */ }
    this.addr = { transport: "tcp", hostname: host, port };
    this.#loop = (async () => {
      const pending = new Set<Promise<void>>();
      for (;;) {
        const s = await session.acceptStream().catch(() => null);
        if (!s) break;
        const t = (async () => {
          const br = new BufReader(s, 512);
          try {
            const peer = await withDeadline(s, HEADER_TIMEOUT, () => readPeer(br));
            const pc = new PeerConn(br.conn(), peer, datagrams ? "udp" : "tcp");
            const c = datagrams ? new LengthFramedConn(pc, new BufReader(pc, 4096)) : pc;
            if (!ready.push(c)) c.close(); // backlog full or listener closed
          } catch (e) {
            log.warn(`bind: a peer stream without a valid header was dropped: ${errorText(e)}`);
            s.close();
          }
        })();
        pending.add(t);
        t.finally(() => pending.delete(t));
      }
      await Promise.all(pending);
      for (const c of ready.close()) c.close();
    })();
  }

  accept(): Promise<Conn | null> {
    return this.#ready.shift();
  }

  /** Resolves when the bind is over (the server or the link went away). */
  get closed(): Promise<void> {
    return this.#session.closed;
  }

  async close(): Promise<void> {
    this.#session.close();
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
