/**
 * KCP sessions over UDP (docs/kcp.md §3): a session is a {@link Conn}; a listener
 * demultiplexes one socket by remote address; a client session owns its own socket.
 * The engine is driven by a timer at the engine's own pace (≤ interval) plus immediate flushes
 * on writes and on acknowledgement progress.
 * @module
 */
import { ChunkQueue } from "../core/chunk_queue.ts";
import { type Conn, ConnBase, type NetAddr } from "../core/conn.ts";
import { Backoff } from "../core/backoff.ts";
import { ClosedError, errorText } from "../core/errors.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { AsyncQueue } from "../core/queue.ts";
import { listenHost, splitHostPort } from "../core/addr.ts";
import type { Listener } from "../core/types.ts";
import { OrderedSender, udpSocketFor } from "../core/udp.ts";
import { DATAGRAM_POOL } from "../core/buffer_pool.ts";
import { setUdpBuffers } from "../core/sockbuf.ts";
import { ReceiveLoop } from "../core/udp_drain.ts";
import { Kcp } from "./arq.ts";
import type { KcpConfig } from "./config.ts";
import { createCrypt, deriveKey } from "./crypt/mod.ts";
import { convOf, Envelope, type Opened, snOf } from "./envelope.ts";

const t0 = performance.now();
const clock = () => Math.floor(performance.now() - t0) >>> 0;

/** What a session needs from its socket owner. */
interface Transmit {
  send(d: Uint8Array): void;
  closed(s: KcpSession): void;
}

/** The {@link KcpSession.maxChunk} of every session. */
export const KCP_MAX_CHUNK = 64 * 1024;

/** One KCP session (kcp-go compatible: crypt, FEC, ARQ) as a Conn; data is raw KCP stream bytes (kcptun puts snappy and smux on top). */
export class KcpSession extends ConnBase {
  /**
   * The ARQ engine.
   * @internal
   */
  readonly kcp: Kcp;
  /** The UDP socket's address, transport `kcp`. */
  readonly localAddr: NetAddr;
  /** The peer's UDP address, transport `kcp`. */
  readonly remoteAddr: NetAddr;
  readonly #env: Envelope;
  readonly #tx: Transmit;
  readonly #ackNoDelay: boolean;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;
  #writeWake: (() => void) | null = null;
  readonly #rq = new ChunkQueue((c) => DATAGRAM_POOL.give(c));

  /**
   * See {@link Conn.maxChunk}: relays into and out of this session's streams move 64 KiB at a
   * time, not 256 (a kcp server's peak RSS was ~40 MiB higher with 256 KiB; docs/performance.md).
   */
  get maxChunk(): number {
    return KCP_MAX_CHUNK;
  }

  /**
   * @internal
   */
  constructor(
    conv: number,
    cfg: KcpConfig,
    env: Envelope,
    tx: Transmit,
    local: NetAddr,
    remote: NetAddr,
  ) {
    super();
    this.#env = env;
    this.#tx = tx;
    this.#ackNoDelay = cfg.acknodelay;
    this.localAddr = { ...local, transport: "kcp" };
    this.remoteAddr = { ...remote, transport: "kcp" };
    this.kcp = new Kcp(conv, (d) => this.#output(d), clock);
    this.kcp.setMtu(cfg.mtu, env.overhead);
    this.kcp.setNoDelay(cfg.nodelay, cfg.interval, cfg.resend, cfg.nc);
    this.kcp.setWindow(cfg.sndwnd, cfg.rcvwnd);
    this.kcp.stream = true;
    this.#schedule(this.kcp.interval);
  }

  /** The conversation id both sides share. */
  get conv(): number {
    return this.kcp.conv;
  }

  /** Packets this session rebuilt from FEC parity. */
  get fecRecovered(): number {
    return this.#env.fecRecovered;
  }

  #output(d: Uint8Array): void {
    // The engine leaves `reserved` bytes in front: the envelope fills them in place.
    for (const pkt of this.#env.seal(d)) this.#tx.send(pkt);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      const next = this.kcp.flush(false);
      this.#wakeWriter();
      this.#schedule(Math.max(1, next));
    }, ms);
  }

  /**
   * Feeds an opened datagram.
   * @internal
   */
  input(o: Opened): void {
    if (this.#closed) return;
    if (o.kcp) this.kcp.input(o.kcp, true, this.#ackNoDelay);
    for (const r of o.recovered) this.kcp.input(r, false, this.#ackNoDelay);
    if (this.kcp.rcvQueue.length > 0) this.#wakeReader();
    this.#wakeWriter();
  }

  #wakeReader(): void {
    this.#rq.wake();
  }
  #wakeWriter(): void {
    const w = this.#writeWake;
    this.#writeWake = null;
    w?.();
  }

  #want = 0;
  /** Pulls what the ARQ engine has reassembled into the queue; true once closed. */
  readonly #pull = (): boolean => {
    if (this.#closed) return true;
    for (const m of this.kcp.recv(Math.max(this.#want, this.kcp.mss))) this.#rq.push(m);
    return false;
  };

  /** Reads reassembled stream bytes; `null` once closed. */
  read(p: Uint8Array): Promise<number | null> {
    this.#want = p.length;
    return this.#rq.read(p, this.#pull);
  }

  /** Queues `p` for sending, waiting while the send window is full. */
  async write(p: Uint8Array): Promise<number> {
    let off = 0;
    while (off < p.length) {
      if (this.#closed) throw new ClosedError("kcp: session closed");
      // Back-pressure: wait while the send window is full (kcp-go's WaitSnd rule).
      const limit = Math.min(this.kcp.sndWnd, this.kcp.rmtWnd || 1);
      if (this.kcp.waitSnd >= limit) {
        await new Promise<void>((r) => (this.#writeWake = r));
        continue;
      }
      const n = Math.min(p.length - off, this.kcp.mss * Math.max(1, limit - this.kcp.waitSnd));
      this.kcp.send(p.subarray(off, off + n));
      off += n;
      this.kcp.flush(false);
    }
    return p.length;
  }

  /** KCP has no half-close; the layer above (smux) carries FIN. */
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  /** Closes the session (no further packets are sent or accepted). */
  close(): void {
    if (this.#closed) return;
    this.kcp.flush(false);
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wakeReader();
    this.#wakeWriter();
    this.#tx.closed(this);
  }
}

function envelopeFor(cfg: KcpConfig, key32: Uint8Array): Envelope {
  return new Envelope(createCrypt(cfg.crypt, key32), cfg.datashard, cfg.parityshard);
}

/** Accepts KCP sessions on one UDP socket. */
export class KcpListener implements Listener {
  readonly addr: NetAddr;
  readonly #sock: Deno.DatagramConn;
  readonly #cfg: KcpConfig;
  readonly #key: Uint8Array;
  readonly #env: Envelope;
  readonly #sessions = new Map<string, { session: KcpSession; env: Envelope }>();
  readonly #accepts: AsyncQueue<KcpSession>;
  readonly #loop: Promise<void>;
  readonly #log: Logger;
  /** The receive buffer the kernel granted (0: left at the system default). */
  readonly sockbuf: number;
  #closed = false;
  #out!: OrderedSender;

  /** Listens on UDP `addr` (`host:port`, port 0 picks one). */
  constructor(addr: string, cfg: KcpConfig, log: Logger = silentLogger, backlog = 128) {
    const { host, port } = splitHostPort(addr);
    this.#sock = Deno.listenDatagram({ transport: "udp", hostname: listenHost(host), port });
    // kcptun's sockbuf: without it a kcp-go sender's window bursts overflow the default buffer.
    this.sockbuf = setUdpBuffers(this.#sock, cfg.sockbuf);
    this.#out = new OrderedSender(this.#sock);
    const a = this.#sock.addr as Deno.NetAddr;
    this.addr = { transport: "udp", hostname: a.hostname, port: a.port };
    this.#cfg = cfg;
    this.#key = deriveKey(cfg.key);
    // Opening is stateless except for FEC, which is per session: the listener only decrypts.
    this.#env = new Envelope(createCrypt(cfg.crypt, this.#key), 0, 0);
    this.#log = log;
    this.#accepts = new AsyncQueue(backlog);
    this.#loop = this.#receive();
  }

  async #receive(): Promise<void> {
    const buf = new Uint8Array(2048);
    const backoff = new Backoff();
    const loop = new ReceiveLoop(this.#sock);
    const sink = (d: Uint8Array, hostname: string, port: number) =>
      this.#datagram(d, hostname, port);
    const stop = () => this.#closed;
    while (!this.#closed) {
      let d: Uint8Array, from: Deno.NetAddr;
      try {
        const [x, f] = await this.#sock.receive(buf);
        d = x;
        from = f as Deno.NetAddr;
      } catch (e) {
        if (this.#closed) return;
        await backoff.fail();
        this.#log.warn(`kcp: receive failed: ${errorText(e)} (retrying in ${backoff.delay} ms)`);
        continue;
      }
      backoff.ok();
      this.#datagram(d, from.hostname, from.port, from);
      // What else the burst queued, without an op each (docs/performance.md).
      const turn = loop.after(buf, sink, stop);
      if (turn) await turn;
    }
  }

  /** One datagram from `hostname:port` (`from` when the socket gave one: a new session keeps it). */
  #datagram(d: Uint8Array, hostname: string, port: number, from?: Deno.NetAddr): void {
    const key = `${hostname}:${port}`;
    let s = this.#sessions.get(key);
    const o = (s ? s.env : this.#env).open(d);
    if (!o) return; // wrong key or garbage: dropped silently, as kcp-go does
    const conv = convOf(o);
    if (s && conv !== undefined && conv !== s.session.conv) {
      // A restarted client on the same port (sn 0) replaces its old session.
      if (o.kcp && snOf(o.kcp) === 0) {
        s.session.close();
        s = undefined;
      } else return;
    }
    if (!s) {
      if (conv === undefined) return;
      const peer: Deno.NetAddr = from ?? { transport: "udp", hostname, port };
      const env = envelopeFor(this.#cfg, this.#key);
      const session = new KcpSession(
        conv,
        this.#cfg,
        env,
        {
          send: (pkt) => this.#send(pkt, peer),
          closed: () => this.#sessions.delete(key),
        },
        this.addr,
        { transport: "udp", hostname, port },
      );
      if (!this.#accepts.push(session)) {
        this.#log.warn("kcp: accept backlog full, session dropped", { remote: key });
        session.close();
        return;
      }
      s = { session, env };
      this.#sessions.set(key, s);
      // The first datagram was opened with the listener's envelope (no FEC state): feed it.
      // Sessions keep their own envelope: FEC decoder state is per session.
    }
    s.session.input(o);
  }

  accept(): Promise<Conn | null> {
    return this.#accepts.shift();
  }

  /** Sessions alive now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** In order; `close` lets the last ones (a closing session's FINs) go out. */
  #send(pkt: Uint8Array, to: Deno.NetAddr): void {
    this.#out.send(pkt, to);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#accepts.close()) s.close();
    for (const s of [...this.#sessions.values()]) s.session.close();
    await this.#out.idle();
    try {
      this.#sock.close();
    } catch { /* closed */ }
    await this.#loop;
  }

  /** Closes the listener and its sessions (`await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens a client session to `addr` on a fresh UDP socket. */
export async function dialKcp(
  addr: string,
  cfg: KcpConfig,
  key32: Uint8Array = deriveKey(cfg.key),
): Promise<KcpSession> {
  const { sock, peer: remote } = await udpSocketFor(addr);
  const { hostname: ip, port } = remote;
  setUdpBuffers(sock, cfg.sockbuf);
  const env = envelopeFor(cfg, key32);
  const conv = crypto.getRandomValues(new Uint32Array(1))[0]!;
  const out = new OrderedSender(sock);
  const la = sock.addr as Deno.NetAddr;
  let closed = false;
  const session = new KcpSession(
    conv,
    cfg,
    env,
    {
      send: (pkt) => out.send(pkt, remote),
      closed: () => {
        closed = true;
        // The last datagrams (a FIN) still go out before the socket closes.
        void out.idle().finally(() => {
          try {
            sock.close();
          } catch { /* closed */ }
        });
      },
    },
    { transport: "udp", hostname: la.hostname, port: la.port },
    { transport: "udp", hostname: ip, port },
  );
  const loop = new ReceiveLoop(sock);
  // Only the server's datagrams count; anything else on this socket is dropped.
  const sink = (d: Uint8Array, hostname: string, srcPort: number) => {
    if (srcPort !== port || hostname !== ip) return;
    const o = env.open(d);
    if (o) session.input(o);
  };
  const stop = () => closed;
  (async () => {
    const buf = new Uint8Array(2048);
    while (!closed) {
      let d: Uint8Array, from: Deno.NetAddr;
      try {
        const [x, f] = await sock.receive(buf);
        d = x;
        from = f as Deno.NetAddr;
      } catch {
        break;
      }
      sink(d, from.hostname, from.port);
      // What else the burst queued, without an op each (docs/performance.md).
      const turn = loop.after(buf, sink, stop);
      if (turn) await turn;
    }
  })();
  return session;
}
