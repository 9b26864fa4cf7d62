/**
 * An smux stream: a {@link Conn}. Reads drain buffered PSH payloads; writes are split into
 * frames of at most `maxFrameSize` and, in v2, wait for the peer's window (UPD).
 *
 * smux has no half-close on the wire: `closeWrite` sends FIN, which old peers (xtaci/smux up to
 * 1.5.x, GOST) take as the end of the whole stream. A FIN we receive ends our reads only; we
 * may still write (newer smux semantics), so a Burrow peer gets true half-close.
 *
 * Nor has smux a reset, so a writer cannot tell a peer that stopped writing from one that left:
 * its writes wait for a window that never comes. Burrow says which (docs/smux.md §2.4): after a
 * half-close it sends a window update (v2: "still reading"), and closing a stream the peer may
 * still write to sends FIN twice ("gone": the writer's writes fail). A FIN from a peer that says
 * neither (xtaci) lets a v2 write wait for the window `peerCloseGrace` ms, then fail.
 * (Newer xtaci's own half-close sends FIN alone and updates only after half a window is read: a
 * reader paused for the whole grace is taken for gone. So the grace is long, 30 s.)
 * @module
 */
import { ChunkQueue } from "../../core/chunk_queue.ts";
import { ConnBase, type NetAddr } from "../../core/conn.ts";
import { ClosedError, ProtocolError } from "../../core/errors.ts";
import { PEER_CLOSE_GRACE, type SmuxConfig } from "./config.ts";
import { CMD_FIN, CMD_PSH } from "./frame.ts";
import type { Outgoing } from "./session.ts";

/** What a stream needs from its session. */
export interface StreamHost {
  readonly config: SmuxConfig;
  readonly isClosed: boolean;
  readonly error: Error | undefined;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  schedule(s: SmuxStream): void;
  sendUpd(id: number, consumed: number, window: number): void;
  /** The v2 receive window a stream should advertise now. */
  streamWindow(): number;
  returnTokens(n: number): void;
  forget(id: number): void;
  /** Takes back a frame payload the stream has finished with (its memory may be reused). */
  recycle(c: Uint8Array): void;
  /** The carrier's {@link Conn.maxChunk}, which every stream inherits. */
  readonly maxChunk: number | undefined;
}

/** Initial peer window of a v2 stream, fixed by the protocol. */
const INITIAL_PEER_WINDOW = 262144;
const EMPTY = new Uint8Array(0);

/** One smux stream: a Conn inside a session (closeWrite sends FIN). */
export class SmuxStream extends ConnBase {
  /** The stream id (odd from the client, even from the server). */
  readonly id: number;
  readonly #host: StreamHost;
  /**
   * Outgoing frames, from {@link pendingHead} on; the session's write loop takes them with
   * {@link takePending}.
   * @internal
   */
  pending: Outgoing[] = [];
  /**
   * The next frame to send in {@link pending}: an index, not `shift()`, which copies the array
   * once it is large (a big write with small frames was quadratic).
   * @internal
   */
  pendingHead = 0;
  /** In the session's ready list. */
  queued = false;

  readonly #rq: ChunkQueue;
  #finReceived = false;
  /** A window update came after the peer's FIN: it half-closed and still reads. */
  #peerReads = false;
  /** The peer sent a second FIN: it closed the whole stream, nothing we write is read. */
  #peerGone = false;
  #finSent = false;
  #closed = false;
  /**
   * Settles when the stream is closed; made by the first write. A write waits for its frames to
   * leave or for this: frames the session writer holds wait on the carrier, and a carrier whose
   * peer stopped reading would hold a closed stream's writer (and a relay, and a shutdown that
   * waits for the relay) forever (xtaci/smux's Write returns on its stream's close too).
   */
  #closedWait: PromiseWithResolvers<void> | null = null;

  // v2 flow control
  #numWritten = 0;
  #peerConsumed = 0;
  #peerWindow = INITIAL_PEER_WINDOW;
  #windowWake: (() => void) | null = null;
  #numRead = 0;
  #incr = 0;
  /** The receive window the peer believes in (v2), and the largest it was ever given. */
  #window = INITIAL_PEER_WINDOW;
  #windowHigh = INITIAL_PEER_WINDOW;

  /**
   * @internal
   */
  constructor(host: StreamHost, id: number) {
    super();
    this.#host = host;
    this.#rq = new ChunkQueue((c) => host.recycle(c));
    this.id = id;
  }

  /** The session carrier's local address, transport `smux`. */
  get localAddr(): NetAddr {
    return { ...this.#host.localAddr, transport: "smux" };
  }

  /** The session carrier's remote address, transport `smux`. */
  get remoteAddr(): NetAddr {
    return { ...this.#host.remoteAddr, transport: "smux" };
  }

  /** Unread bytes held by this stream. */
  get buffered(): number {
    return this.#rq.bytes;
  }

  // ---------------------------------------------------------------- from the session

  /** Accepts a PSH payload; false if the stream no longer takes data. */
  onData(p: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#rq.push(p);
    return true;
  }

  /**
   * The peer sent FIN.
   * @internal
   */
  onFin(): void {
    if (this.#finReceived) {
      this.#peerGone = true;
    } else {
      this.#finReceived = true;
      this.#rq.wake();
      if (this.#finSent) this.#host.forget(this.id);
    }
    // A write waiting for the window looks again (see the module note).
    const w = this.#windowWake;
    this.#windowWake = null;
    w?.();
  }

  /**
   * The peer sent a v2 window update.
   * @internal
   */
  onUpd(consumed: number, window: number): void {
    if (this.#finReceived) this.#peerReads = true;
    this.#peerConsumed = consumed;
    this.#peerWindow = window;
    const w = this.#windowWake;
    this.#windowWake = null;
    w?.();
  }

  /**
   * The session ended.
   * @internal
   */
  onSessionClosed(): void {
    this.#closed = true;
    this.#rq.wake();
    const err = this.#host.error ?? new ClosedError("smux: session closed");
    for (let i = this.pendingHead; i < this.pending.length; i++) this.pending[i]!.reject?.(err);
    this.pending = [];
    this.pendingHead = 0;
    const w = this.#windowWake;
    this.#windowWake = null;
    w?.();
  }

  // ---------------------------------------------------------------- Conn

  readonly #ended = (): boolean => this.#finReceived || this.#closed;

  /** Reads stream data; `null` after the peer's FIN. */
  read(p: Uint8Array): Promise<number | null> {
    // A promise reaction, not a suspended async function, waits with an idle stream's read.
    return this.#rq.read(p, this.#ended).then(this.#afterRead);
  }

  /** The carrier's (see {@link Conn.maxChunk}). */
  get maxChunk(): number | undefined {
    return this.#host.maxChunk;
  }

  /** Resolves once a read would not wait (see {@link Conn.waitReadable}). */
  waitReadable(): Promise<void> {
    return this.#rq.ready(this.#ended);
  }

  /** Hands read tokens back and updates the peer's view of our window (v2). */
  readonly #afterRead = (n: number | null): number | null => {
    if (n === null) return null;
    this.#host.returnTokens(n);
    if (this.#host.config.version === 2 && !this.#closed) {
      this.#numRead = (this.#numRead + n) >>> 0;
      this.#incr += n;
      // Update when half of what the peer believes our window is has been consumed (not half
      // of the window we would grant now: that can be larger and would never be reached), on
      // the first read, and at once when our window may grow.
      const sb = this.#host.streamWindow();
      if (this.#incr >= this.#window / 2 || this.#numRead === n || sb > this.#window) {
        this.advertise(sb);
      }
    }
    return n;
  };

  /** The receive window last advertised to the peer (v2). */
  get window(): number {
    return this.#window;
  }

  /**
   * Most unread bytes a peer that honours our windows can make us hold (v2): data sent under
   * an older, larger window may still be in flight when a smaller one is advertised.
   */
  get receiveLimit(): number {
    return this.#windowHigh + this.#host.config.maxFrameSize;
  }

  /** Tells the peer (v2 UPD) what we consumed and how much more it may send. */
  advertise(window: number): void {
    if (this.#closed) return;
    this.#window = window;
    if (window > this.#windowHigh) this.#windowHigh = window;
    this.#incr = 0;
    this.#host.sendUpd(this.id, this.#numRead, window);
  }

  /**
   * Drops the frame at {@link pendingHead} (the session's writer sent it); true if more wait.
   * @internal
   */
  takePending(): boolean {
    const q = this.pending;
    if (++this.pendingHead === q.length) {
      q.length = 0;
      this.pendingHead = 0;
      return false;
    }
    if (this.pendingHead >= 1024 && this.pendingHead * 2 >= q.length) {
      // Sent frames are dropped in bulk, so the array does not keep them.
      q.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
    return true;
  }

  #enqueue(frames: Outgoing[]): Promise<void> {
    const last = frames[frames.length - 1]!;
    const p = new Promise<void>((resolve, reject) => {
      last.resolve = resolve;
      last.reject = reject;
    });
    // Earlier frames of this write fail with the last one; only the last carries callbacks.
    // A loop, not `push(...frames)`: a big write with a tiny mux.maxFrameSize is over 100k
    // frames, and spread arguments that many overflow the stack.
    for (const f of frames) this.pending.push(f);
    if (!this.queued) {
      this.queued = true;
      this.#host.schedule(this);
    }
    return p;
  }

  /** Writes `p` as PSH frames, waiting for the peer's window (v2). */
  async write(p: Uint8Array): Promise<number> {
    const cfg = this.#host.config;
    const max = cfg.maxFrameSize;
    let off = 0;
    while (off < p.length) {
      if (this.#closed || this.#host.isClosed) {
        throw this.#host.error ?? new ClosedError("smux: stream closed");
      }
      if (this.#finSent) throw new ClosedError("smux: write after closeWrite");
      if (this.#peerGone) throw new ClosedError("smux: the peer closed the stream");
      let allowed = p.length - off;
      if (cfg.version === 2) {
        const inflight = (this.#numWritten - this.#peerConsumed) | 0;
        if (inflight < 0) throw new ProtocolError("smux: peer consumed more than sent");
        const win = (this.#peerWindow | 0) - inflight;
        if (win <= 0) {
          if (this.#finReceived && !this.#peerReads) {
            // A FIN that no window update followed: the peer may have closed the whole stream.
            if (!(await this.#windowWithin(cfg.peerCloseGrace ?? PEER_CLOSE_GRACE))) {
              throw new ClosedError("smux: the peer closed the stream (no window after its FIN)");
            }
          } else await new Promise<void>((r) => (this.#windowWake = r));
          continue;
        }
        allowed = Math.min(allowed, win);
      }
      const end = off + allowed;
      const frames: Outgoing[] = [];
      for (let i = off; i < end; i += max) {
        frames.push({ cmd: CMD_PSH, data: p.subarray(i, Math.min(i + max, end)) });
      }
      this.#numWritten = (this.#numWritten + allowed) >>> 0;
      this.#closedWait ??= Promise.withResolvers<void>();
      await Promise.race([this.#enqueue(frames), this.#closedWait.promise]);
      if (this.#closed) throw new ClosedError("smux: stream closed");
      off = end;
    }
    return p.length;
  }

  /** Waits for a window update, a FIN or a close; false if `ms` passed first. */
  #windowWithin(ms: number): Promise<boolean> {
    return new Promise<boolean>((r) => {
      const wake = () => {
        clearTimeout(t);
        r(true);
      };
      const t = setTimeout(() => {
        if (this.#windowWake === wake) this.#windowWake = null;
        r(false);
      }, ms);
      this.#windowWake = wake;
    });
  }

  /** Sends FIN (see the module note on half-close), then in v2 a window update: "still reading". */
  async closeWrite(): Promise<void> {
    if (this.#finSent || this.#closed || this.#host.isClosed) return;
    this.#finSent = true;
    if (this.#finReceived) this.#host.forget(this.id);
    await this.#enqueue([{ cmd: CMD_FIN, data: EMPTY }]).catch(() => {});
    // After the FIN has gone (control frames may pass data frames), so the peer sees it second.
    if (this.#host.config.version === 2 && !this.#finReceived) this.advertise(this.#window);
  }

  /** Closes the stream (FIN if not sent yet); unread data is dropped. */
  close(): void {
    if (this.#closed) return;
    if (!this.#host.isClosed) {
      // FIN, and a second one while the peer may still write: "gone" (see the module note).
      const fins: Outgoing[] = [];
      if (!this.#finSent) fins.push({ cmd: CMD_FIN, data: EMPTY });
      if (!this.#finReceived) fins.push({ cmd: CMD_FIN, data: EMPTY });
      this.#finSent = true;
      if (fins.length > 0) this.#enqueue(fins).catch(() => {});
    }
    this.#closed = true;
    this.#host.forget(this.id);
    // Unread bytes go back to the session, so one abandoned stream cannot starve the rest.
    this.#host.returnTokens(this.#rq.clear());
    const w = this.#windowWake;
    this.#windowWake = null;
    w?.();
    this.#closedWait?.resolve();
  }
}
