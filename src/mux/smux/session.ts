/**
 * An smux session over any {@link Conn}, wire-compatible with xtaci/smux v1 and v2
 * (docs/smux.md). One receive loop parses frames in place from a reused buffer; one write
 * loop sends control frames first, then data frames round-robin across streams, packing
 * whole frames into one underlying write (a frame is never split across writes).
 * @module
 */
import type { MuxFactory, MuxSession } from "../../core/mux.ts";
import type { Conn } from "../../core/conn.ts";
import { ClosedError, errorText, ProtocolError } from "../../core/errors.ts";
import { type Logger, silentLogger } from "../../core/log.ts";
import { AsyncQueue } from "../../core/queue.ts";
import { DEFAULT_CONFIG, type SmuxConfig, verifyConfig } from "./config.ts";
import {
  CMD_FIN,
  CMD_NOP,
  CMD_PSH,
  CMD_SYN,
  CMD_UPD,
  encodeFrame,
  encodeUpd,
  HEADER_SIZE,
  putHeader,
  readU16LE,
  readU32LE,
  UPD_SIZE,
} from "./frame.ts";
import { SmuxStream } from "./stream.ts";

const ACCEPT_BACKLOG = 1024;
const BATCH_TARGET = 128 * 1024;
const RECV_BUFFER = 256 * 1024;
const RECV_START = 16 * 1024;
/**
 * Frame payloads of 16–32 KiB are copied into pooled buffers that streams hand back once read
 * (xtaci's default frame is 32 KiB): a copy per frame, but no allocation, so the garbage that
 * drove GC and peak memory under bulk traffic is gone (docs/performance.md). Smaller payloads get
 * an exact copy, so unread data never pins more than twice its size.
 */
const POOL_CHUNK = 32 * 1024;
/** Pooled payload buffers kept per session (1 MiB). */
const POOL_MAX = 32;
const SMALL_CHUNK = 4 * 1024;
const SMALL_MAX = 64;

/** Options of {@link clientSession} and {@link serverSession} besides the config. */
export interface SessionOptions {
  /** Where the session logs (default: silent). */
  log?: Logger;
}

/** A queued data or FIN frame of one stream. */
export interface Outgoing {
  cmd: number;
  data: Uint8Array;
  resolve?: () => void;
  reject?: (e: Error) => void;
}

/** Smallest v2 window we advertise, however many streams share the session. */
const MIN_WINDOW = 4096;

/** An smux session (xtaci/smux v1 or v2) over one Conn: open and accept streams that are Conns. */
export class SmuxSession implements AsyncDisposable, MuxSession {
  /** The session's settings. */
  readonly config: SmuxConfig;
  /** True on the side that dialed (odd stream ids). */
  readonly client: boolean;
  readonly #conn: Conn;
  readonly #log: Logger;
  #nextId: number;
  #goAway = false;
  readonly #streams = new Map<number, SmuxStream>();
  readonly #accepts = new AsyncQueue<SmuxStream>(ACCEPT_BACKLOG);
  /** Free payload buffers (POOL_CHUNK bytes each). */
  readonly #pool: ArrayBuffer[] = [];
  readonly #small: ArrayBuffer[] = [];

  #bucket: number;
  #bucketWake: (() => void) | null = null;
  #dataReady = false;

  #ctrl: Uint8Array[] = [];
  #ready: SmuxStream[] = [];
  #writerWake: (() => void) | null = null;
  #shutdown?: Promise<void>;
  /** A batch is being written to the carrier. */
  #writing = false;
  /** Allocated on the first write: an idle session holds no write buffer. */
  #batch: Uint8Array | null = null;
  /** Streams refused for `maxStreams` (warned about once per session). */
  refusedStreams = 0;

  #closed = false;
  #error?: Error;
  readonly #done = Promise.withResolvers<void>();
  #timers: ReturnType<typeof setInterval>[] = [];
  readonly #loops: Promise<void>[];

  /** Starts a session over `conn`; prefer {@link clientSession}/{@link serverSession}. */
  constructor(
    conn: Conn,
    client: boolean,
    config: Partial<SmuxConfig> = {},
    opts: SessionOptions = {},
  ) {
    this.config = verifyConfig({ ...DEFAULT_CONFIG, ...config });
    this.client = client;
    this.#conn = conn;
    this.#log = opts.log ?? silentLogger;
    this.#nextId = client ? 1 : 0;
    this.#bucket = this.config.maxReceiveBuffer;
    this.#loops = [this.#recvLoop(), this.#writeLoop()];
    if (!this.config.keepAliveDisabled) {
      this.#timers.push(setInterval(() => {
        if (this.#ctrl.length < 16) this.#sendCtrl(encodeFrame(this.config.version, CMD_NOP, 0));
      }, this.config.keepAliveInterval));
      this.#timers.push(setInterval(() => {
        // Silence is only a dead peer if we are not the ones refusing to read (full bucket).
        if (!this.#dataReady && this.#bucket > 0) {
          this.#fail(new ProtocolError("smux: keepalive timeout"));
        }
        this.#dataReady = false;
      }, this.config.keepAliveTimeout));
    }
  }

  /** The smux protocol version, 1 or 2. */
  get version(): number {
    return this.config.version;
  }

  /** The carrier's {@link Conn.maxChunk}: its streams say the same. */
  get maxChunk(): number | undefined {
    return this.#conn.maxChunk;
  }

  /** True once the session is closed. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Resolves when the session has closed (for any reason). */
  get closed(): Promise<void> {
    return this.#done.promise;
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Streams this session takes at once (`mux.maxStreams`). */
  get maxStreams(): number {
    return this.config.maxStreams;
  }

  /** The carrier's local address. */
  get localAddr(): Conn["localAddr"] {
    return this.#conn.localAddr;
  }

  /** The carrier's remote address. */
  get remoteAddr(): Conn["remoteAddr"] {
    return this.#conn.remoteAddr;
  }

  /** Opens a new stream (SYN is sent; no acknowledgement exists in smux). */
  openStream(): Promise<SmuxStream> {
    if (this.#closed) return Promise.reject(this.#error ?? new ClosedError("smux: session closed"));
    if (this.#goAway) {
      return Promise.reject(new ClosedError("smux: stream ids exhausted (go away)"));
    }
    this.#nextId += 2;
    const id = this.#nextId;
    if (id > 0xffffffff) {
      this.#goAway = true;
      return Promise.reject(new ClosedError("smux: stream ids exhausted (go away)"));
    }
    const s = new SmuxStream(this, id);
    this.#streams.set(id, s);
    this.#sendCtrl(encodeFrame(this.config.version, CMD_SYN, id));
    this.#rebalance(s);
    return Promise.resolve(s);
  }

  /** The next stream the peer opened, or `null` once the session is closed. */
  acceptStream(): Promise<SmuxStream | null> {
    return this.#accepts.shift();
  }

  // ------------------------------------------------------------ StreamHost (for streams)

  /** Queues a stream that has outgoing frames. */
  schedule(s: SmuxStream): void {
    this.#ready.push(s);
    this.#wakeWriter();
  }

  /**
   * v2 receive window per stream: `maxStreamBuffer`, shrunk (in powers of two) as streams are
   * added so that all windows together stay within half of `maxReceiveBuffer`: memory stays
   * bounded although a v2 session never stops reading.
   */
  streamWindow(): number {
    const share = this.config.maxReceiveBuffer / (2 * Math.max(1, this.#streams.size));
    let w = MIN_WINDOW;
    while (w * 2 <= share) w *= 2;
    return Math.min(this.config.maxStreamBuffer, w);
  }

  /** A stream was added: give it its window and shrink any window above the new share. */
  #rebalance(added: SmuxStream): void {
    if (this.config.version !== 2) return;
    const w = this.streamWindow();
    for (const s of this.#streams.values()) {
      if (s === added || s.window > w) s.advertise(w);
    }
  }

  /**
   * Sends a v2 window update for stream `id` (called by the stream).
   * @internal
   */
  sendUpd(id: number, consumed: number, window: number): void {
    this.#sendCtrl(encodeFrame(this.config.version, CMD_UPD, id, encodeUpd(consumed, window)));
  }

  /** Bytes the application consumed (or dropped) go back to the session bucket. */
  returnTokens(n: number): void {
    this.#bucket += n;
    if (this.#bucket > 0 && this.#bucketWake) {
      const w = this.#bucketWake;
      this.#bucketWake = null;
      w();
    }
  }

  /**
   * Drops a finished stream (called by the stream).
   * @internal
   */
  forget(id: number): void {
    this.#streams.delete(id);
  }

  /**
   * Takes back a payload buffer a stream has finished with.
   * @internal
   */
  recycle(c: Uint8Array): void {
    const ab = c.buffer;
    if (ab.byteLength === POOL_CHUNK && this.#pool.length < POOL_MAX && ab instanceof ArrayBuffer) {
      this.#pool.push(ab);
    } else if (
      ab.byteLength === SMALL_CHUNK && this.#small.length < SMALL_MAX && ab instanceof ArrayBuffer
    ) {
      this.#small.push(ab);
    }
  }

  /** The error that closed the session, if any. */
  get error(): Error | undefined {
    return this.#error;
  }

  // ------------------------------------------------------------ internals

  #sendCtrl(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#ctrl.push(frame);
    this.#wakeWriter();
  }

  #wakeWriter(): void {
    const w = this.#writerWake;
    if (w) {
      this.#writerWake = null;
      w();
    }
  }

  async #writeLoop(): Promise<void> {
    let batch = this.#batch;
    const ver = this.config.version;
    const room = this.#conn.writeInPlace ? this.#conn.writeRoom ?? 0 : 0;
    const done: (() => void)[] = [];
    const fails: ((e: Error) => void)[] = [];
    while (!this.#closed) {
      if (this.#ctrl.length === 0 && this.#ready.length === 0) {
        await new Promise<void>((r) => (this.#writerWake = r));
        continue;
      }
      // A carrier that frames its writes (WebSocket) puts its header in the room left in front.
      batch ??= this.#batch = new Uint8Array(room + BATCH_TARGET + 2 * (HEADER_SIZE + 65535));
      let n = room;
      while (this.#ctrl.length > 0 && n + this.#ctrl[0]!.length <= batch.length) {
        const f = this.#ctrl.shift()!;
        batch.set(f, n);
        n += f.length;
      }
      while (this.#ready.length > 0 && n < room + BATCH_TARGET) {
        const s = this.#ready[0]!;
        const e = s.pending[s.pendingHead];
        if (!e) {
          this.#ready.shift();
          s.queued = false;
          continue;
        }
        if (n + HEADER_SIZE + e.data.length > batch.length) break;
        this.#ready.shift();
        const more = s.takePending();
        putHeader(batch, n, ver, e.cmd, e.data.length, s.id);
        batch.set(e.data, n + HEADER_SIZE);
        n += HEADER_SIZE + e.data.length;
        if (e.resolve) done.push(e.resolve), fails.push(e.reject!);
        // One frame per turn: streams take turns (round-robin fairness).
        if (more) this.#ready.push(s);
        else s.queued = false;
      }
      this.#writing = true;
      try {
        if (room > 0) await this.#conn.writeInPlace!(batch.subarray(0, n));
        else await this.#conn.write(batch.subarray(0, n));
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        for (const f of fails) f(err);
        this.#fail(err);
        return;
      } finally {
        this.#writing = false;
      }
      for (const d of done) d();
      done.length = 0;
      fails.length = 0;
    }
  }

  async #recvLoop(): Promise<void> {
    // Starts small (an idle session holds little) and doubles up to RECV_BUFFER while reads
    // fill it; frames are parsed in place from it.
    let buf = new Uint8Array(RECV_START);
    let start = 0;
    let end = 0;
    const ensure = async (n: number): Promise<boolean> => {
      while (end - start < n) {
        if (buf.length - start < n) {
          if (n > buf.length) {
            const bigger = new Uint8Array(Math.min(RECV_BUFFER, Math.max(buf.length * 2, n)));
            bigger.set(buf.subarray(start, end));
            buf = bigger;
          } else buf.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        const k = await this.#conn.read(buf.subarray(end));
        if (k === null) return false;
        end += k;
        if (end === buf.length && buf.length < RECV_BUFFER) {
          // A read filled the buffer: traffic is flowing, give it room.
          const bigger = new Uint8Array(Math.min(RECV_BUFFER, buf.length * 2));
          bigger.set(buf.subarray(start, end));
          buf = bigger;
          end -= start;
          start = 0;
        }
      }
      return true;
    };
    const ver = this.config.version;
    try {
      for (;;) {
        // v1 has no flow control: a full session buffer stops reading (as in xtaci/smux). v2
        // never stops: per-stream windows bound memory, and stopping would also hold back the
        // UPD frames our own blocked writers wait for — a deadlock once windows outgrow it.
        while (ver === 1 && this.#bucket <= 0 && !this.#closed) {
          await new Promise<void>((r) => (this.#bucketWake = r));
        }
        if (this.#closed) return;
        // (The await only when bytes are missing: most frames are already buffered.)
        if (end - start < HEADER_SIZE && !(await ensure(HEADER_SIZE))) {
          this.#fail(new ClosedError("smux: peer closed the connection"));
          return;
        }
        const v = buf[start]!;
        const cmd = buf[start + 1]!;
        const len = readU16LE(buf, start + 2);
        const sid = readU32LE(buf, start + 4);
        start += HEADER_SIZE;
        this.#dataReady = true;
        if (v !== ver) throw new ProtocolError(`smux: frame version ${v}, session version ${ver}`);
        switch (cmd) {
          case CMD_NOP:
          case CMD_SYN:
          case CMD_FIN:
            if (len !== 0) {
              throw new ProtocolError(
                `smux: ${cmd === CMD_NOP ? "NOP" : cmd === CMD_SYN ? "SYN" : "FIN"} with a payload`,
              );
            }
            if (cmd === CMD_SYN) this.#onSyn(sid);
            else if (cmd === CMD_FIN) this.#streams.get(sid)?.onFin();
            break;
          case CMD_PSH: {
            if (end - start < len && !(await ensure(len))) {
              this.#fail(new ClosedError("smux: peer closed mid-frame"));
              return;
            }
            const s = this.#streams.get(sid);
            if (s && ver === 2 && s.buffered + len > s.receiveLimit) {
              throw new ProtocolError(`smux: stream ${sid} sent past its window`);
            }
            // Data for an unknown or closed stream is dropped, as smux does.
            if (s && len > 0) {
              let chunk: Uint8Array;
              // Only frames of at least half a pool buffer use one: a pooled buffer held by an
              // unread 1-byte frame would let a peer pin 32 KiB per byte of its budget.
              if (len <= POOL_CHUNK && len >= POOL_CHUNK / 2) {
                const ab = this.#pool.pop() ?? new ArrayBuffer(POOL_CHUNK);
                chunk = new Uint8Array(ab, 0, len);
                chunk.set(buf.subarray(start, start + len));
              } else if (len <= SMALL_CHUNK && len >= SMALL_CHUNK / 2) {
                const ab = this.#small.pop() ?? new ArrayBuffer(SMALL_CHUNK);
                chunk = new Uint8Array(ab, 0, len);
                chunk.set(buf.subarray(start, start + len));
              } else chunk = buf.slice(start, start + len);
              if (s.onData(chunk)) this.#bucket -= len;
              else this.recycle(chunk);
            }
            start += len;
            break;
          }
          case CMD_UPD: {
            if (len !== UPD_SIZE) throw new ProtocolError(`smux: UPD with ${len} payload bytes`);
            if (end - start < UPD_SIZE && !(await ensure(UPD_SIZE))) {
              this.#fail(new ClosedError("smux: peer closed mid-frame"));
              return;
            }
            this.#streams.get(sid)?.onUpd(readU32LE(buf, start), readU32LE(buf, start + 4));
            start += UPD_SIZE;
            break;
          }
          default:
            throw new ProtocolError(`smux: unknown command ${cmd}`);
        }
        if (start === end) start = end = 0;
      }
    } catch (e) {
      if (!this.#closed) {
        const err = e instanceof Error ? e : new Error(String(e));
        if (err instanceof ProtocolError) this.#log.warn(errorText(err), { kind: "mux" });
        this.#fail(err);
      }
    }
  }

  #onSyn(sid: number): void {
    if (this.#streams.has(sid)) return;
    if (this.#streams.size >= this.config.maxStreams) {
      // Refused with a FIN: the peer's stream ends at once, nothing is held for it.
      if (this.refusedStreams++ === 0) {
        this.#log.warn(
          `smux: more than ${this.config.maxStreams} streams open in one session; refusing new ones (mux.maxStreams)`,
          { kind: "mux" },
        );
      }
      // Twice: a Burrow peer's writes fail at once ("gone", docs/smux.md §2.4).
      const fin = encodeFrame(this.config.version, CMD_FIN, sid);
      this.#sendCtrl(fin);
      this.#sendCtrl(fin);
      return;
    }
    const s = new SmuxStream(this, sid);
    this.#streams.set(sid, s);
    if (!this.#accepts.push(s)) {
      this.#log.warn("smux: accept backlog full, stream refused", { kind: "mux", sid });
      s.close();
      return;
    }
    this.#rebalance(s);
  }

  #fail(e: Error): void {
    if (this.#closed) return;
    this.#error = e;
    this.#log.debug(`smux session closed: ${errorText(e)}`, { kind: "mux" });
    this.close();
  }

  /** Closes the session, its transport and every stream. Idempotent. */
  /**
   * Ends the session cleanly: every open stream (and any not yet accepted) gets a FIN, so the
   * peer reads EOF instead of waiting for its keepalive to notice (over KCP there is no
   * connection close to see); waits up to `ms` for them to be written, then closes.
   */
  shutdown(ms = 1000): Promise<void> {
    return this.#shutdown ??= this.#drain(ms);
  }

  async #drain(ms: number): Promise<void> {
    if (this.#closed) return;
    for (const s of this.#accepts.close()) s.close();
    for (const s of [...this.#streams.values()]) s.close();
    const until = Date.now() + ms;
    while (!this.#closed && (this.#ctrl.length > 0 || this.#ready.length > 0 || this.#writing)) {
      if (Date.now() >= until) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#conn.close();
    for (const s of this.#accepts.close()) s.onSessionClosed();
    // A stream already forgotten (FIN sent and received, or closed) may still have its FIN
    // queued in #ready: settle that too, or its closeWrite() waits forever.
    for (const s of new Set([...this.#streams.values(), ...this.#ready])) s.onSessionClosed();
    this.#streams.clear();
    this.#ctrl = [];
    for (const s of this.#ready) s.queued = false;
    this.#ready = [];
    this.#wakeWriter();
    this.returnTokens(0);
    const w = this.#bucketWake;
    this.#bucketWake = null;
    w?.();
    Promise.all(this.#loops).finally(() => this.#done.resolve());
  }

  /** Closes the session (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }
}

/** A client session (stream ids 3, 5, 7, ...). */
export function clientSession(
  conn: Conn,
  config: Partial<SmuxConfig> = {},
  opts: SessionOptions = {},
): SmuxSession {
  return new SmuxSession(conn, true, config, opts);
}

/** A server session (stream ids 2, 4, 6, ...). */
export function serverSession(
  conn: Conn,
  config: Partial<SmuxConfig> = {},
  opts: SessionOptions = {},
): SmuxSession {
  return new SmuxSession(conn, false, config, opts);
}

/** smux as a transport's {@link MuxFactory}: one config for both ends. */
export function smuxFactory(config: Partial<SmuxConfig>, opts: SessionOptions = {}): MuxFactory {
  return (carrier, role) => new SmuxSession(carrier, role === "client", config, opts);
}
