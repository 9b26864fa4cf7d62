/**
 * A WebSocket connection as a byte stream, the way GOST uses it (docs/websocket.md §3): each
 * write is one binary message; reads concatenate data messages of any type. Pings are answered;
 * a client may ping on an interval and give up when nothing arrives for two intervals.
 * closeWrite sends a close frame (the peer reads end of stream); close drops the transport
 * without one, as gorilla does.
 * @module
 */
import { dropBulk, giveBulk, takeBulk } from "../../core/buffer_pool.ts";
import type { BufReader } from "../../core/bufio.ts";
import { type Conn, ConnBase, type NetAddr, UnexpectedEofError } from "../../core/conn.ts";
import { ClosedError, ProtocolError } from "../../core/errors.ts";
import {
  encodeFrame,
  headerSize,
  keyWord,
  mask,
  maskWord,
  OP_BINARY,
  OP_CLOSE,
  OP_CONT,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  putHeader,
} from "./frame.ts";

/**
 * Read-ahead buffer once data flows: one socket read can bring this much (many frames). 256 KiB
 * rather than 64 took a quarter to two thirds of the socket reads per MB off (docs/performance.md).
 * It grows as soon as a fill comes back full (not after 256 KiB of 4 KiB reads: 64 reads and 64
 * writes per connection), and, once the process's conns hold more than their budget of such
 * buffers, goes back to the pool when a fill finds the socket dry, so a read waiting on a quiet
 * conn pins 1 KiB, not 256 (docs/performance.md, "Idle after use").
 */
const READ_BUFFER = 256 * 1024;
/** Room for the largest frame header in front of a payload (see {@link WsConn.writeInPlace}). */
const WRITE_ROOM = 14;
/** Most a read on a quiet conn asks of the socket: what the small read-ahead would have. */
const PARKED_READ = 1024;

export interface WsConnOptions {
  /** Client side: mask outgoing frames, expect unmasked ones. */
  client: boolean;
  /** Client keepalive: ping every `pingInterval` ms (0 = off). */
  pingInterval?: number;
  /** Largest accepted frame payload. */
  maxFrame?: number;
}

export class WsConn extends ConnBase {
  readonly #raw: Conn;
  readonly #br: BufReader;
  readonly #client: boolean;
  readonly #maxFrame: number;
  #left = 0;
  /** The current frame's mask key ({@link keyWord}), when it is masked (server side). */
  #maskKey = 0;
  #masked = false;
  #maskPos = 0;
  #inMessage = false;
  #gotClose = false;
  #sentClose = false;
  #closed = false;
  #writing: Promise<unknown> = Promise.resolve();
  #timer?: ReturnType<typeof setInterval>;
  #lastSeen = Date.now();
  /** An error met after bytes were already copied: thrown by the next read. */
  #failed?: unknown;

  constructor(raw: Conn, br: BufReader, o: WsConnOptions) {
    super();
    this.#raw = raw;
    this.#br = br;
    // The handshake's 4 KiB read-ahead goes (a read waiting on a quiet conn waits in the caller's
    // buffer), or, with bytes behind the handshake, shrinks to 1 KiB; a full 1 KiB read is enough
    // to grow to READ_BUFFER once data flows.
    if (!br.park()) br.shrink(1024);
    this.#client = o.client;
    this.#maxFrame = o.maxFrame ?? 64 << 20;
    const iv = o.pingInterval ?? 0;
    if (iv > 0) {
      this.#timer = setInterval(() => {
        if (Date.now() - this.#lastSeen > 2 * iv) {
          this.close(); // no pong or data for two intervals: the peer is gone
          return;
        }
        this.#control(OP_PING, new Uint8Array(0)).catch(() => this.close());
      }, iv);
    }
  }

  get localAddr(): NetAddr {
    return { ...this.#raw.localAddr, transport: "ws" };
  }
  get remoteAddr(): NetAddr {
    return { ...this.#raw.remoteAddr, transport: "ws" };
  }

  #serialWrite(b: Uint8Array): Promise<void> {
    const p = this.#writing.then(() => this.#raw.write(b));
    this.#writing = p.catch(() => {});
    return p.then(() => {});
  }

  #control(op: number, payload: Uint8Array): Promise<void> {
    const key = this.#client ? crypto.getRandomValues(new Uint8Array(4)) : undefined;
    return this.#serialWrite(encodeFrame(op, payload, key));
  }

  /**
   * Reads frame headers until a data frame with payload is current; false at end, null when a
   * control frame left nothing buffered.
   */
  async #nextFrame(): Promise<boolean | null> {
    for (;;) {
      let h: Uint8Array;
      try {
        h = await this.#br.peek(2);
      } catch (e) {
        if (e instanceof UnexpectedEofError) return false;
        throw e;
      }
      const b0 = h[0]!, b1 = h[1]!;
      const fin = (b0 & 0x80) !== 0;
      const op = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      const extra = len === 126 ? 2 : len === 127 ? 8 : 0;
      const head = await this.#br.readN(2 + extra + (masked ? 4 : 0));
      if (len === 126) len = (head[2]! << 8) | head[3]!;
      else if (len === 127) {
        if (head[2]! | head[3]! | head[4]! | (head[5]! & 0xe0)) {
          throw new ProtocolError("ws: frame too large");
        }
        // (the low word in brackets: `>>>` binds looser than `+`, and would drop head[5])
        len = head[5]! * 2 ** 32 +
          (((head[6]! << 24) | (head[7]! << 16) | (head[8]! << 8) | head[9]!) >>> 0);
      }
      this.#lastSeen = Date.now();
      if (b0 & 0x70) throw new ProtocolError("ws: reserved bits set");
      // Servers must get masked frames, clients unmasked ones (RFC 6455 §5.1).
      if (masked === this.#client) {
        throw new ProtocolError(`ws: bad MASK from ${this.#client ? "server" : "client"}`);
      }
      const key = masked ? head.subarray(head.length - 4) : null;
      if (op >= 0x8) {
        if (!fin || len > 125) throw new ProtocolError("ws: bad control frame");
        const payload = len > 0 ? await this.#br.readN(len) : new Uint8Array(0);
        if (key) mask(payload, key);
        if (op === OP_PING) await this.#control(OP_PONG, payload).catch(() => {});
        else if (op === OP_CLOSE) {
          // The peer is done sending. Our own close frame goes out with our closeWrite, so
          // a Burrow peer gets true half-close; GOST peers close the TCP connection anyway.
          this.#gotClose = true;
          return false;
        } else if (op !== OP_PONG) throw new ProtocolError(`ws: unknown opcode ${op}`);
        // Nothing more here yet (a keepalive between messages): the caller waits parked.
        if (this.#br.buffered === 0) return null;
        continue;
      }
      if (op === OP_CONT) {
        if (!this.#inMessage) throw new ProtocolError("ws: continuation without a message");
      } else if (op === OP_TEXT || op === OP_BINARY) {
        if (this.#inMessage) throw new ProtocolError("ws: new message inside a fragmented one");
      } else {
        throw new ProtocolError(`ws: unknown opcode ${op}`);
      }
      if (len > this.#maxFrame) {
        throw new ProtocolError(`ws: frame of ${len} bytes exceeds ${this.#maxFrame}`);
      }
      this.#inMessage = !fin;
      if (len === 0) continue;
      this.#left = len;
      this.#masked = key !== null;
      this.#maskKey = key ? keyWord(key) : 0;
      this.#maskPos = 0;
      return true;
    }
  }

  /**
   * Fills `p` from as many data frames as have already arrived: a peer that writes through a
   * small buffer (gorilla: 4 KiB frames) costs one socket read and one delivery per batch, not
   * per frame. It waits only when nothing has been copied yet.
   */
  read(p: Uint8Array): Promise<number | null> {
    // A stream that broke after delivering its last good bytes stays broken: parsing on after a
    // protocol error would read whatever follows as frames.
    if (this.#failed !== undefined && !this.#closed) return Promise.reject(this.#failed);
    // Between frames with nothing buffered, the common idle state: the wait for bytes is a
    // reaction, not a suspended async frame (~400 bytes less per idle conn, docs/performance.md).
    if (
      p.length > 0 && !this.#closed && this.#left === 0 && !this.#gotClose &&
      this.#br.buffered === 0
    ) {
      try {
        const parked = this.#parkedRead(p);
        if (parked) {
          return parked.then(
            (n) => n === null ? this.#ended() : (this.#loadParked(p, n), this.#read(p)),
            this.#readFailed,
          );
        }
        return this.#br.fill().then(
          (ok) => ok ? this.#read(p) : this.#ended(),
          this.#readFailed,
        );
      } catch (e) {
        return this.#closed ? Promise.resolve(null) : Promise.reject(e);
      }
    }
    return this.#read(p);
  }

  /**
   * Between frames with nothing buffered: sizes the read-ahead by the last fill and, unless it is
   * grown, parks it and reads from the socket into the caller's buffer (pinned by this read
   * anyway), at most what the small read-ahead would take, so a burst grows it just as a fill
   * would. A quiet conn then holds no read-ahead of its own (docs/performance.md). Null: not
   * parked, fill the read-ahead instead.
   */
  #parkedRead(p: Uint8Array): Promise<number | null> | null {
    this.#br.adapt(READ_BUFFER);
    if (!this.#br.park()) return null;
    return this.#raw.read(p.length > PARKED_READ ? p.subarray(0, PARKED_READ) : p);
  }

  /** The `n` bytes a parked read brought to the front of `p` become the read-ahead. */
  #loadParked(p: Uint8Array, n: number): void {
    // The room is the read-ahead's: a caller's buffer under 1 KiB that filled says nothing about
    // a burst.
    this.#br.load(p.subarray(0, n), PARKED_READ);
  }

  /** Waits for more bytes between frames, parked when it can be (see read()); false at EOF. */
  #wait(p: Uint8Array): Promise<boolean> {
    const parked = this.#parkedRead(p);
    if (!parked) return this.#br.fill();
    return parked.then((n) => n !== null && (this.#loadParked(p, n), true));
  }

  /** A socket read failed: the stream is broken for good (null once we closed it ourselves). */
  readonly #readFailed = (e: unknown): Promise<never> | null => {
    if (this.#closed) return null;
    this.#failed = e;
    return Promise.reject(e);
  };

  /** A read that found the stream over: the error that ended it, else EOF. */
  #ended(): null {
    if (this.#failed) throw this.#failed;
    return null;
  }

  async #read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) return null;
    let off = 0;
    try {
      while (off < p.length) {
        if (this.#left === 0) {
          if (this.#gotClose) break;
          // A data-frame header already buffered is parsed in place, without an await; anything
          // else (control frames, partial headers, errors) takes the slow path, and past the
          // first bytes waits for the next read.
          if (!this.#takeDataHeader()) {
            if (off > 0) break;
            // Between frames with nothing buffered (after a control frame, say): wait parked, in
            // the caller's buffer, and go on in this frame. (Not `return this.read(p)`: a peer
            // sending only pings would chain one promise per ping until data came.)
            const r = this.#br.buffered > 0 ? await this.#nextFrame() : null;
            if (r === null) {
              if (!(await this.#wait(p))) break;
              continue;
            }
            if (!r) break;
          }
        }
        let v = this.#br.view();
        if (v.length === 0) {
          if (off > 0) break;
          this.#br.adapt(READ_BUFFER);
          if (!(await this.#br.fill())) throw new UnexpectedEofError(0, this.#left);
          v = this.#br.view();
        }
        const k = Math.min(v.length, this.#left, p.length - off);
        const chunk = p.subarray(off, off + k);
        chunk.set(v.subarray(0, k));
        this.#br.consume(k);
        if (this.#masked) {
          maskWord(chunk, this.#maskKey, this.#maskPos);
          this.#maskPos = (this.#maskPos + k) & 3;
        }
        this.#left -= k;
        off += k;
      }
    } catch (e) {
      if (this.#closed) return off > 0 ? off : null;
      if (e instanceof ProtocolError) {
        await this.#control(OP_CLOSE, new Uint8Array([0x03, 0xea])).catch(() => {});
      }
      // Broken from here on: every later read gets this error. What arrived first is delivered;
      // the error comes with the next read.
      this.#failed = e;
      if (off > 0) return off;
      throw e;
    }
    if (off === 0) return this.#ended();
    this.#lastSeen = Date.now(); // once per read, not per frame (the keepalive only needs "recent")
    return off;
  }

  /**
   * Takes a wholly buffered, well-formed data-frame header with payload (gorilla's 4 KiB frames:
   * the common case) synchronously; false leaves everything, errors included, to #nextFrame.
   */
  #takeDataHeader(): boolean {
    const v = this.#br.view();
    if (v.length < 2) return false;
    const b0 = v[0]!, b1 = v[1]!;
    const op = b0 & 0x0f;
    if (op > OP_BINARY || (b0 & 0x70) !== 0) return false; // control, reserved: slow path
    const masked = (b1 & 0x80) !== 0;
    if (masked === this.#client) return false;
    let len = b1 & 0x7f;
    if (len === 0) return false;
    // 64-bit lengths too: gorilla sends a 64 KiB copy buffer as one frame (len 65536 > 65535).
    const hl = (len === 126 ? 4 : len === 127 ? 10 : 2) + (masked ? 4 : 0);
    if (v.length < hl) return false;
    if (len === 126) len = (v[2]! << 8) | v[3]!;
    else if (len === 127) {
      if (v[2]! | v[3]! | v[4]! | v[5]!) return false; // ≥ 4 GiB: the slow path refuses it
      len = ((v[6]! << 24) | (v[7]! << 16) | (v[8]! << 8) | v[9]!) >>> 0;
    }
    if (op === OP_CONT ? !this.#inMessage : this.#inMessage) return false;
    if (len > this.#maxFrame) return false;
    this.#inMessage = (b0 & 0x80) === 0;
    this.#masked = masked;
    this.#maskKey = masked ? keyWord(v, hl - 4) : 0;
    this.#br.consume(hl);
    this.#left = len;
    this.#maskPos = 0;
    return true;
  }

  /** The carrier's {@link Conn.maxChunk} (a WebSocket over a KCP stream moves what KCP takes). */
  get maxChunk(): number | undefined {
    return this.#raw.maxChunk;
  }

  /** See {@link Conn.writeRoom}: room for the largest header (64-bit length and a mask key). */
  get writeRoom(): number {
    return WRITE_ROOM;
  }

  /** One binary message, header and payload in one underlying write. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed || this.#sentClose) return Promise.reject(new ClosedError("ws: closed"));
    return this.#queue(p, true);
  }

  /** {@link write} with the header put into the first {@link writeRoom} bytes of `p`. */
  writeInPlace(p: Uint8Array): Promise<number> {
    if (this.#closed || this.#sentClose) return Promise.reject(new ClosedError("ws: closed"));
    if (p.length < WRITE_ROOM) {
      return Promise.reject(new RangeError(`ws: writeInPlace needs ${WRITE_ROOM} bytes of room`));
    }
    return this.#queue(p, false);
  }

  /** Queues one message: `p` itself (room in front), or a copy of `p` framed in a pooled buffer. */
  #queue(p: Uint8Array, copy: boolean): Promise<number> {
    const n = copy ? p.length : p.length - WRITE_ROOM;
    const run = async () => {
      // From the bulk pool and back, so a conn between writes holds no frame buffer.
      const buf = copy ? takeBulk(WRITE_ROOM + n) : p;
      let sent = false;
      try {
        if (copy) buf.set(p, WRITE_ROOM);
        await this.#raw.write(this.#frame(buf, n));
        sent = true;
      } finally {
        // After a failed write the carrier may still refer to the buffer: not pooled then.
        if (copy) {
          if (sent) giveBulk(buf);
          else dropBulk(buf);
        }
      }
    };
    const done = this.#writing.then(run);
    this.#writing = done.catch(() => {});
    return done.then(() => n);
  }

  /** Frames the `n`-byte payload at `buf[WRITE_ROOM]`: header just before it, masked if ours. */
  #frame(buf: Uint8Array, n: number): Uint8Array {
    const at = WRITE_ROOM - headerSize(n, this.#client);
    const key = this.#client ? crypto.getRandomValues(new Uint8Array(4)) : undefined;
    putHeader(buf.subarray(at, WRITE_ROOM), OP_BINARY, n, key);
    if (key) mask(buf.subarray(WRITE_ROOM, WRITE_ROOM + n), key);
    return buf.subarray(at, WRITE_ROOM + n);
  }

  async closeWrite(): Promise<void> {
    if (this.#sentClose || this.#closed) return;
    this.#sentClose = true;
    await this.#control(OP_CLOSE, new Uint8Array([0x03, 0xe8])).catch(() => {});
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#raw.close();
    this.#br.dispose();
  }
}
