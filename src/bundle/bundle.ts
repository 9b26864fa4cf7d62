/**
 * A bundle: N links (any Conns) carrying ONE reliable ordered byte stream (docs/bundle.md §3, "stripe"
 * mode). Data is cut into sequenced frames and striped over the links by a scheduler; the far
 * end reorders within a bounded window and acknowledges cumulatively. When a link dies its
 * unacknowledged frames are re-sent on the others, so no byte is lost while `minLinks` remain.
 * @module
 */
import { ChunkQueue } from "../core/chunk_queue.ts";
import { BufReader } from "../core/bufio.ts";
import { type Conn, ConnBase, type NetAddr } from "../core/conn.ts";
import { ClosedError, errorText, ProtocolError, TimeoutError } from "../core/errors.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import {
  encodeFrame,
  HEADER,
  MAX_PAYLOAD,
  putU32,
  seqLess,
  T_ACK,
  T_DATA,
  T_FIN,
  T_LINK_CLOSE,
  T_PING,
  T_PONG,
  u32,
} from "./wire.ts";

/** How the sender picks a link for the next frame. */
export type Scheduler = "lowest-rtt" | "round-robin";

/** Settings of one bundle (docs/bundle.md). */
export interface BundleOptions {
  /** Receive window in frames (of up to 16 KiB): bounds reorder and unread memory. */
  windowFrames: number;
  /** Ping each link this often (ms). */
  keepaliveInterval: number;
  /** A link silent this long (ms) is dead. */
  keepaliveTimeout: number;
  /** The bundle closes when fewer links than this are alive. */
  minLinks: number;
  /** How frames are spread over links. */
  scheduler: Scheduler;
  /** Where the bundle logs (default: silent). */
  log?: Logger;
  /**
   * Missing-frame timeout (ms): a hole in the sequence that outlives it makes the receiver ask
   * for that frame again; a hole that outlives three of them fails the bundle.
   */
  timeout: number;
  /** Told when a link dies (the dialing side re-dials it). */
  onLinkDead?: (index: number) => void;
}

export const DEFAULT_BUNDLE: BundleOptions = {
  windowFrames: 256,
  keepaliveInterval: 10_000,
  keepaliveTimeout: 30_000,
  minLinks: 1,
  scheduler: "lowest-rtt",
  timeout: 5_000,
};

/** Bytes a link may have queued before the scheduler looks elsewhere. */
const LINK_CAP = 64 * 1024;
/** ACK flag: the frame at `ack` is missing, send it again. */
const HOLE = 1;
/** How far (bytes in flight) a link may run ahead of the least-loaded one. */
const INFLIGHT_SLACK = 256 * 1024;
/** A frame missing this long (at least; 4 RTTs if more) is asked for, and its link suspected. */
const SUSPECT_AFTER = 300;

class Link {
  alive = true;
  queued = 0;
  /** Bytes sent on this link and not yet acknowledged by the peer (true in-flight). */
  inflight = 0;
  srtt = 0;
  lastRecv = Date.now();
  /**
   * The frame the peer waits for went out here and stays missing while the peer keeps
   * acknowledging (a black hole: no RST, just silence): new frames avoid this link and its
   * unacknowledged ones went out again elsewhere.
   * A PONG clears it; the keepalive timeout still declares it dead.
   */
  suspect = false;
  chain: Promise<void> = Promise.resolve();
  timer?: ReturnType<typeof setInterval>;
  constructor(readonly index: number, readonly conn: Conn) {}
}

/** Links a frame may go on (module-level: the per-frame pick allocates nothing). */
const usableAny = (l: Link) => l.alive && l.queued < LINK_CAP;
const usableSound = (l: Link) => usableAny(l) && !l.suspect;

interface Unacked {
  frame: Uint8Array;
  link: number;
}

/** Every bundle open in this process, for the metrics endpoint (`burrow_bundle_links_up`). */
export const liveBundles: Set<Bundle> = new Set();

/** One byte stream striped over several links (mtmux): frames carry sequence numbers, the receiver reorders and asks again for holes, and a dead link's unacknowledged frames move to the others. */
export class Bundle extends ConnBase {
  /** The first link's local address. */
  readonly localAddr: NetAddr;
  /** The first link's remote address. */
  readonly remoteAddr: NetAddr;
  readonly #o: BundleOptions;
  readonly #log: Logger;
  readonly #links = new Map<number, Link>();
  #rr = 0;
  #closed = false;
  #error?: Error;
  readonly #done = Promise.withResolvers<void>();
  readonly #tasks = new Set<Promise<void>>();

  // send side
  #nextSeq = 0;
  #peerLimit: number;
  readonly #unacked = new Map<number, Unacked>();
  /** The last frame the peer asked for, and when (its ask arrives once per link). */
  #holeSeq = -1;
  #holeAt = 0;

  #wake: (() => void)[] = [];

  // receive side
  #expected = 0;
  readonly #ooo = new Map<number, { type: number; payload: Uint8Array }>();
  /** In-order payloads waiting for `read`. */
  readonly #rq = new ChunkQueue();
  #finReceived = false;
  #ackDebt = 0;
  #holeSince = 0;
  #holeAsked = 0;
  #ackTimer?: ReturnType<typeof setInterval>;

  /** A bundle between `local` and `remote`; links are added with {@link Bundle.addLink}. */
  constructor(
    local: NetAddr,
    remote: NetAddr,
    opts: Partial<BundleOptions> = {},
    peerWindowFrames = 64,
  ) {
    super();
    this.#o = { ...DEFAULT_BUNDLE, ...opts };
    this.#log = this.#o.log ?? silentLogger;
    this.localAddr = { ...local, transport: "mtmux" };
    this.remoteAddr = { ...remote, transport: "mtmux" };
    this.#peerLimit = peerWindowFrames;
    liveBundles.add(this);
  }

  /**
   * Acks also go out on a short timer so a sender waiting at the window edge never stalls, and
   * holes are chased on it; it runs only while there is something to ack or a hole to fill.
   */
  #armAckTimer(): void {
    if (this.#ackTimer !== undefined || this.#closed) return;
    this.#ackTimer = setInterval(() => {
      this.#checkHole();
      if (this.#ackDebt > 0) this.#sendAck();
      if (this.#ackDebt === 0 && this.#ooo.size === 0) {
        clearInterval(this.#ackTimer);
        this.#ackTimer = undefined;
      }
    }, 10);
  }

  /** True once the bundle is closed. */
  get isClosed(): boolean {
    return this.#closed;
  }
  /** Resolves when the bundle has closed. */
  get closed(): Promise<void> {
    return this.#done.promise;
  }
  /** Links alive now. */
  get aliveLinks(): number {
    let n = 0;
    for (const l of this.#links.values()) if (l.alive) n++;
    return n;
  }
  /** Bytes held for the reader (reordered or unread): bounded by the window. */
  get bufferedBytes(): number {
    let n = 0;
    n += this.#rq.bytes;
    for (const f of this.#ooo.values()) n += f.payload.length;
    return n;
  }
  /** The error that closed the bundle, if any. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Adds (or replaces) link `index` and starts reading it. */
  addLink(index: number, conn: Conn): void {
    if (this.#closed) {
      conn.close();
      return;
    }
    const old = this.#links.get(index);
    if (old?.alive) this.#linkDead(old, new ClosedError("replaced"), false);
    const l = new Link(index, conn);
    this.#links.set(index, l);
    l.timer = setInterval(() => {
      if (Date.now() - l.lastRecv > this.#o.keepaliveTimeout) {
        this.#linkDead(l, new TimeoutError("mtmux: link keepalive timeout"));
        return;
      }
      const ts = new Uint8Array(8);
      putU32(ts, 4, Date.now() >>> 0);
      this.#linkWrite(l, encodeFrame(T_PING, 0, ts));
    }, this.#o.keepaliveInterval);
    const t = this.#readLink(l);
    this.#tasks.add(t);
    t.finally(() => this.#tasks.delete(t));
    // Frames that were waiting for any live link can go now.
    this.#notify();
  }

  // ---------------------------------------------------------------- links

  #linkWrite(l: Link, frame: Uint8Array): void {
    l.queued += frame.length;
    l.chain = l.chain.then(() => l.conn.write(frame)).then(
      () => {
        l.queued -= frame.length;
        this.#notify();
      },
      (e) => {
        l.queued -= frame.length;
        this.#linkDead(l, e);
      },
    );
  }

  /**
   * The link for the next frame, among live links with room (`queued < LINK_CAP`). Round-robin
   * among links that are not behind: a link whose unacknowledged bytes exceed the least-loaded
   * link's by more than a slack is skipped until it drains (kernel buffers hide a slow link from
   * `queued`; in-flight bytes do not). Equal links stay round-robin, which keeps the receiver's
   * reorder distance short. Called per frame, so it allocates nothing.
   */
  #pickLink(): Link | undefined {
    return this.#pick(false) ?? this.#pick(true);
  }

  /** One pick among usable links; suspect ones only when `withSuspects` (none else is left). */
  #pick(withSuspects: boolean): Link | undefined {
    const usable = withSuspects ? usableAny : usableSound;
    let min = Infinity;
    for (const l of this.#links.values()) if (usable(l) && l.inflight < min) min = l.inflight;
    if (min === Infinity) return undefined;
    const limit = this.#o.scheduler === "round-robin" ? Infinity : min + INFLIGHT_SLACK;
    let n = 0;
    for (const l of this.#links.values()) if (usable(l) && l.inflight <= limit) n++;
    let k = this.#rr++ % n;
    for (const l of this.#links.values()) {
      if (usable(l) && l.inflight <= limit && k-- === 0) return l;
    }
    return undefined;
  }

  async #send(seq: number): Promise<void> {
    for (;;) {
      const u = this.#unacked.get(seq);
      if (!u) return; // acked meanwhile
      if (this.#closed) throw this.#error ?? new ClosedError("mtmux: bundle closed");
      const l = this.#pickLink();
      if (l) {
        u.link = l.index;
        l.inflight += u.frame.length;
        this.#linkWrite(l, u.frame);
        return;
      }
      await new Promise<void>((r) => this.#wake.push(r));
    }
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  #linkDead(l: Link, e: unknown, report = true): void {
    if (!l.alive) return;
    l.alive = false;
    clearInterval(l.timer);
    l.conn.close();
    if (this.#closed) return;
    this.#log.debug(`mtmux: link ${l.index} down: ${errorText(e)}`, { kind: "mtmux" });
    // Re-inject what that link carried but the peer has not acknowledged: nothing is lost.
    const lost = [...this.#unacked.entries()].filter(([, u]) => u.link === l.index).map(([s]) => s);
    for (const s of lost) this.#unacked.get(s)!.link = -1;
    l.inflight = 0;
    if (this.aliveLinks < this.#o.minLinks) {
      this.#fail(new ClosedError(`mtmux: fewer than ${this.#o.minLinks} links alive`));
      return;
    }
    const t = (async () => {
      for (const s of lost) await this.#send(s).catch(() => {});
    })();
    this.#tasks.add(t);
    t.finally(() => this.#tasks.delete(t));
    if (report) this.#o.onLinkDead?.(l.index);
    this.#notify();
  }

  async #readLink(l: Link): Promise<void> {
    // Room for one whole frame; an idle link holds no more.
    const br = new BufReader(l.conn, HEADER + MAX_PAYLOAD);
    try {
      for (;;) {
        // Frames already buffered are taken without an await: a reader woken by one finds the
        // others queued too, and its relay writes them at once (docs/performance.md,
        // "Throughput, twelfth session", as smux's receive loop).
        if (br.buffered < HEADER) {
          try {
            await br.peek(HEADER);
          } catch {
            break; // EOF: the link ended
          }
        }
        const h = br.view();
        const type = h[0]!;
        const flags = h[1]!;
        const len = (h[2]! << 8) | h[3]!;
        const seq = u32(h, 4);
        if (len > MAX_PAYLOAD) throw new ProtocolError(`mtmux: frame of ${len} bytes`);
        const f = br.buffered < HEADER + len ? await br.peek(HEADER + len) : br.view();
        const payload = f.slice(HEADER, HEADER + len);
        br.consume(HEADER + len);
        l.lastRecv = Date.now();
        switch (type) {
          case T_DATA:
          case T_FIN:
            this.#onData(seq, type, payload);
            break;
          case T_ACK:
            if (len < 8) throw new ProtocolError("mtmux: short ACK");
            this.#onAck(u32(payload, 0), u32(payload, 4), flags);
            break;
          case T_PING:
            this.#linkWrite(l, encodeFrame(T_PONG, 0, payload));
            break;
          case T_PONG: {
            if (len < 8) throw new ProtocolError("mtmux: short PONG");
            const rtt = ((Date.now() >>> 0) - u32(payload, 4)) >>> 0;
            if (rtt < 600_000) l.srtt = l.srtt === 0 ? rtt : (7 * l.srtt + rtt) / 8;
            if (l.suspect) {
              // A round trip again: the link works.
              l.suspect = false;
              this.#notify();
            }
            break;
          }
          case T_LINK_CLOSE:
            throw new ClosedError("peer closed the link");
          default:
            throw new ProtocolError(`mtmux: unknown frame type ${type}`);
        }
      }
      this.#linkDead(l, new ClosedError("link ended"));
    } catch (e) {
      this.#linkDead(l, e);
    }
  }

  // ---------------------------------------------------------------- receive side

  #limit(): number {
    return (this.#expected + this.#o.windowFrames - this.#rq.length) >>> 0;
  }

  #onData(seq: number, type: number, payload: Uint8Array): void {
    if (seqLess(seq, this.#expected) || this.#ooo.has(seq)) {
      this.#ackDebt++; // a duplicate (re-injection): make sure the sender hears we have it
      this.#armAckTimer();
      return;
    }
    // A peer that ignores our window could make us buffer without bound: refuse.
    if (!seqLess(seq, (this.#expected + 2 * this.#o.windowFrames) >>> 0)) {
      this.#fail(new ProtocolError("mtmux: peer overran the window"));
      return;
    }
    this.#ooo.set(seq, { type, payload });
    this.#armAckTimer();
    let moved = false;
    for (;;) {
      const f = this.#ooo.get(this.#expected);
      if (!f) break;
      this.#ooo.delete(this.#expected);
      this.#expected = (this.#expected + 1) >>> 0;
      if (f.type === T_FIN) this.#finReceived = true;
      else this.#rq.push(f.payload);
      this.#ackDebt++;
      moved = true;
    }
    if (moved) {
      this.#holeSince = 0; // progress: a remaining hole gets its own full time
      if (this.#finReceived) this.#rq.wake();
      if (this.#ackDebt >= Math.max(1, this.#o.windowFrames >> 3)) this.#sendAck();
    }
  }

  /** A frame missing while later ones arrive: ask again, and give up after three timeouts. */
  /**
   * When to ask for a missing frame: the first time soon (SUSPECT_AFTER, or 4 RTTs) — striping
   * reorders by far less, so a longer gap means a lost frame or a silent link —, then every
   * `timeout`.
   */
  #askAfter(): number {
    if (this.#holeAsked !== this.#holeSince) return this.#o.timeout;
    let rtt = 0;
    for (const l of this.#links.values()) if (l.alive && l.srtt > rtt) rtt = l.srtt;
    return Math.min(this.#o.timeout, Math.max(SUSPECT_AFTER, 4 * rtt));
  }

  #checkHole(): void {
    if (this.#ooo.size === 0) {
      this.#holeSince = 0;
      return;
    }
    const now = Date.now();
    if (this.#holeSince === 0) {
      this.#holeSince = now;
      this.#holeAsked = now;
      return;
    }
    if (now - this.#holeSince > 3 * this.#o.timeout) {
      this.#fail(
        new TimeoutError(`mtmux: frame ${this.#expected} missing for ${now - this.#holeSince} ms`),
      );
    } else if (now - this.#holeAsked > this.#askAfter()) {
      this.#holeAsked = now;
      this.#log.debug(`mtmux: frame ${this.#expected} missing, asking again`, { kind: "mtmux" });
      this.#sendAck(HOLE);
    }
  }

  /**
   * Acks are cumulative, so they take turns over the live links (a lost one is repaired by the
   * next, even if one link silently drops everything); a re-request (HOLE) goes on every link.
   */
  #sendAck(flags = 0): void {
    this.#ackDebt = 0;
    const p = new Uint8Array(8);
    putU32(p, 0, this.#expected);
    putU32(p, 4, this.#limit());
    const frame = encodeFrame(T_ACK, 0, p, flags);
    if (flags & HOLE) {
      for (const l of this.#links.values()) if (l.alive) this.#linkWrite(l, frame);
      return;
    }
    const l = this.#pickLink() ?? [...this.#links.values()].find((x) => x.alive);
    if (l) this.#linkWrite(l, frame);
  }

  #onAck(ack: number, limit: number, flags = 0): void {
    if (flags & HOLE) this.#onHole(ack);
    for (const [s, u] of this.#unacked) {
      if (!seqLess(s, ack)) continue;
      const l = this.#links.get(u.link);
      if (l) l.inflight -= u.frame.length;
      this.#unacked.delete(s);
    }
    if (seqLess(this.#peerLimit, limit)) this.#peerLimit = limit;
    this.#notify();
  }

  /**
   * The peer asks for frame `ack`: the link it went out on may be silently dropping everything
   * (a black hole: no RST). That link becomes suspect — new frames avoid it, and all its
   * unacknowledged frames go out again on the others at once, instead of one re-request per
   * missing-frame timeout, which could not beat the bundle's gap limit. A PONG clears it; the
   * keepalive timeout still declares it dead.
   */
  #onHole(ack: number): void {
    // The ask comes on every link: act on its first copy only (a later ask, after `timeout`,
    // is a new one).
    const now = Date.now();
    if (ack === this.#holeSeq && now - this.#holeAt < this.#o.timeout / 2) return;
    this.#holeSeq = ack;
    this.#holeAt = now;
    const u = this.#unacked.get(ack);
    const l = u && u.link >= 0 ? this.#links.get(u.link) : undefined;
    let others = 0;
    for (const x of this.#links.values()) if (x.alive && !x.suspect && x !== l) others++;
    if (!l || !l.alive || l.suspect || others === 0) {
      this.#resendOnOtherLink(ack);
      return;
    }
    l.suspect = true;
    this.#log.debug(`mtmux: frame ${ack} sent on link ${l.index} is missing; link suspect`, {
      kind: "mtmux",
    });
    const lost: number[] = [];
    for (const [seq, x] of this.#unacked) {
      if (x.link === l.index) {
        x.link = -1;
        lost.push(seq);
      }
    }
    l.inflight = 0;
    // Probe it now rather than at the next keepalive: a PONG clears the suspicion.
    const ts = new Uint8Array(8);
    putU32(ts, 4, Date.now() >>> 0);
    this.#linkWrite(l, encodeFrame(T_PING, 0, ts));
    const t = (async () => {
      for (const seq of lost) await this.#send(seq).catch(() => {});
    })();
    this.#tasks.add(t);
    t.finally(() => this.#tasks.delete(t));
  }

  #resendOnOtherLink(seq: number): void {
    const u = this.#unacked.get(seq);
    if (!u) return;
    const other = [...this.#links.values()].filter((l) => l.alive && l.index !== u.link)[0] ??
      this.#links.get(u.link);
    if (!other?.alive) return;
    if (other.index !== u.link) {
      // The copy on `other` is what the ack will account for now.
      const from = this.#links.get(u.link);
      if (from) from.inflight -= u.frame.length;
      other.inflight += u.frame.length;
      u.link = other.index;
    }
    this.#linkWrite(other, u.frame);
  }

  // ---------------------------------------------------------------- Conn

  readonly #ended = (): boolean => this.#finReceived || this.#closed;

  /** Reads in-order bytes; `null` after the peer's FIN. */
  async read(p: Uint8Array): Promise<number | null> {
    const before = this.#rq.chunksTaken;
    const n = await this.#rq.read(p, this.#ended);
    if (n === null) return null;
    this.#ackDebt += this.#rq.chunksTaken - before;
    if (this.#ackDebt > 0) this.#armAckTimer();
    if (this.#ackDebt >= Math.max(1, this.#o.windowFrames >> 3)) this.#sendAck();
    return n;
  }

  async #sendFrame(type: number, payload?: Uint8Array): Promise<void> {
    while (!this.#closed && !seqLess(this.#nextSeq, this.#peerLimit)) {
      await new Promise<void>((r) => this.#wake.push(r));
    }
    if (this.#closed) throw this.#error ?? new ClosedError("mtmux: bundle closed");
    const seq = this.#nextSeq;
    this.#nextSeq = (seq + 1) >>> 0;
    this.#unacked.set(seq, { frame: encodeFrame(type, seq, payload), link: -1 });
    await this.#send(seq);
  }

  /** Writes `p` as frames over the links, waiting for the peer's window. */
  async write(p: Uint8Array): Promise<number> {
    for (let off = 0; off < p.length; off += MAX_PAYLOAD) {
      await this.#sendFrame(T_DATA, p.subarray(off, off + MAX_PAYLOAD));
    }
    return p.length;
  }

  /** Sends a sequenced FIN: the peer reads EOF after the last byte. */
  async closeWrite(): Promise<void> {
    await this.#sendFrame(T_FIN).catch(() => {});
  }

  #fail(e: Error): void {
    if (this.#closed) return;
    this.#error = e;
    this.close();
  }

  /** Closes the bundle and every link. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    liveBundles.delete(this);
    clearInterval(this.#ackTimer);
    for (const l of this.#links.values()) {
      if (l.alive) {
        l.alive = false;
        clearInterval(l.timer);
        l.conn.close();
      }
    }
    this.#notify();
    this.#rq.wake();
    Promise.all(this.#tasks).finally(() => this.#done.resolve());
  }
}
