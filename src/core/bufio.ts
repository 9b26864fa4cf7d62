/**
 * A small buffered reader over a {@link Conn} for parsing handshakes (HTTP heads, SOCKS and relay
 * requests). When parsing is done, {@link BufReader.conn} hands back a Conn that replays whatever
 * was read ahead, so no byte is lost to the parser.
 * @module
 */
import { type Conn, PrefixedConn, UnexpectedEofError } from "./conn.ts";
import { ProtocolError } from "./errors.ts";
import { bulkOverBudget, dropBulk, giveBulk, IDLE_POOL, takeBulk } from "./buffer_pool.ts";

/** The buffer of a parked reader ({@link BufReader.park}); bytes come in a pooled one. */
const NONE = new Uint8Array(0);

export class BufReader {
  readonly #conn: Conn;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  /** The buffer {@link reserve} replaced, kept for {@link release}. */
  #small: Uint8Array | null = null;
  /** What the last fill read, and the room it offered. */
  #lastRead = 0;
  #lastRoom = 0;
  /** The room the fill in flight offered. */
  #pendingRoom = 0;
  /** {@link dispose}d: no more bulk buffers are taken. */
  #disposed = false;

  constructor(conn: Conn, size = 4096) {
    this.#conn = conn;
    this.#buf = new Uint8Array(size);
  }

  /** Size of the read-ahead buffer. */
  get capacity(): number {
    return this.#buf.length;
  }

  /** Bytes read ahead and not consumed yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Reads more into the buffer; false at EOF. Not `async`: an idle WebSocket waits in this fill,
   * and a promise reaction keeps less than a suspended async function (docs/performance.md).
   */
  #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buf.length === 0) this.#buf = IDLE_POOL.take(IDLE_POOL.size); // parked
    else if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf.subarray(0, this.#end));
        if (this.#small !== null) dropBulk(this.#buf); // a bulk buffer outgrown: not pooled
        this.#buf = bigger;
      }
    }
    this.#pendingRoom = this.#buf.length - this.#end;
    return this.#conn.read(this.#buf.subarray(this.#end)).then(this.#filled);
  }

  readonly #filled = (n: number | null): boolean => {
    if (n === null) return false;
    this.#end += n;
    this.#lastRead = n;
    this.#lastRoom = this.#pendingRoom;
    return true;
  };

  /** Waits until at least `n` bytes are buffered; returns a view (valid until the next read). */
  async peek(n: number): Promise<Uint8Array> {
    while (this.buffered < n) {
      if (!(await this.#fill())) throw new UnexpectedEofError(this.buffered, n);
    }
    return this.#buf.subarray(this.#start, this.#start + n);
  }

  /** Reads exactly `n` bytes into a new array. */
  async readN(n: number): Promise<Uint8Array> {
    const v = (await this.peek(n)).slice();
    this.#start += n;
    return v;
  }

  async readByte(): Promise<number> {
    const v = (await this.peek(1))[0]!;
    this.#start += 1;
    return v;
  }

  async readU16(): Promise<number> {
    const v = await this.peek(2);
    this.#start += 2;
    return (v[0]! << 8) | v[1]!;
  }

  /**
   * Reads through the next `\r\n\r\n` (an HTTP head) and returns it as text, without the
   * blank line. Refuses heads longer than `max` bytes.
   */
  async readHead(max = 64 * 1024): Promise<string | null> {
    const raw = await this.readHeadBytes(max);
    return raw === null ? null : new TextDecoder("latin1").decode(raw.subarray(0, raw.length - 4));
  }

  /**
   * Reads through the next `\r\n\r\n` and returns the bytes as they came, blank line included
   * (to replay a head byte-exact). Refuses heads longer than `max` bytes.
   */
  async readHeadBytes(max = 64 * 1024): Promise<Uint8Array | null> {
    let scanned = 0;
    for (;;) {
      const view = this.#buf.subarray(this.#start, this.#end);
      for (let i = Math.max(0, scanned - 3); i + 3 < view.length; i++) {
        if (view[i] === 13 && view[i + 1] === 10 && view[i + 2] === 13 && view[i + 3] === 10) {
          const raw = view.slice(0, i + 4);
          this.#start += i + 4;
          return raw;
        }
      }
      scanned = view.length;
      if (scanned > max) throw new ProtocolError(`header larger than ${max} bytes`);
      if (!(await this.#fill())) {
        if (this.buffered === 0) return null;
        throw new UnexpectedEofError(this.buffered, this.buffered + 1);
      }
    }
  }

  /** Reads one `\n`-terminated line (CR stripped). */
  async readLine(max = 8192): Promise<string> {
    let scanned = 0;
    for (;;) {
      const view = this.#buf.subarray(this.#start, this.#end);
      const i = view.indexOf(10, scanned);
      if (i >= 0) {
        const end = i > 0 && view[i - 1] === 13 ? i - 1 : i;
        const text = new TextDecoder("latin1").decode(view.subarray(0, end));
        this.#start += i + 1;
        return text;
      }
      scanned = view.length;
      if (scanned > max) throw new ProtocolError(`line longer than ${max} bytes`);
      if (!(await this.#fill())) throw new UnexpectedEofError(this.buffered, this.buffered + 1);
    }
  }

  /** Takes up to `p.length` bytes: buffered ones first, else one read from the conn. */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.buffered === 0) return await this.#conn.read(p);
    const n = Math.min(p.length, this.buffered);
    p.set(this.#buf.subarray(this.#start, this.#start + n));
    this.#start += n;
    return n;
  }

  /** The read-ahead bytes, without consuming them (valid until the next read). */
  view(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /** Consumes `n` read-ahead bytes (at most {@link buffered}). */
  consume(n: number): void {
    this.#start += Math.min(n, this.buffered);
  }

  /** Reads whatever the conn has next into the buffer; false at EOF. */
  fill(): Promise<boolean> {
    return this.#fill();
  }

  /**
   * Gives the (small) buffer up while nothing is buffered: the caller is about to wait for bytes
   * in a buffer of its own and hand them over with {@link load}. A quiet conn's pending read then
   * pins one buffer, not two (docs/performance.md). False, and nothing changes, when bytes are
   * buffered or the buffer is a grown one.
   */
  park(): boolean {
    if (this.#small !== null || this.#disposed || this.buffered > 0) return false;
    if (this.#buf.length > 0) {
      IDLE_POOL.give(this.#buf);
      this.#buf = NONE;
    }
    this.#start = this.#end = 0;
    // (A handshake's last fill says nothing about the stream; a parked read's comes with load.)
    this.#lastRead = this.#lastRoom = 0;
    return true;
  }

  /**
   * Takes bytes the caller read from the conn itself into `room` bytes of its own (after
   * {@link park}): they become the read-ahead, and count as a fill for {@link adapt}.
   */
  load(bytes: Uint8Array, room: number): void {
    if (this.buffered > 0) throw new Error("BufReader.load: bytes are buffered");
    this.#start = this.#end = 0;
    if (this.#buf.length < bytes.length) {
      if (this.#buf.length > 0) IDLE_POOL.give(this.#buf);
      this.#buf = IDLE_POOL.take(Math.max(IDLE_POOL.size, bytes.length));
    }
    this.#buf.set(bytes);
    this.#end = bytes.length;
    this.#lastRead = bytes.length;
    this.#lastRoom = room;
  }

  /**
   * Grows the buffer to at least `size` bytes (from the bulk pool), so one read can bring many
   * small records at once (a stream of WebSocket frames). {@link release} goes back.
   */
  reserve(size: number): void {
    if (this.#buf.length >= size || this.#disposed) return;
    const bigger = takeBulk(size);
    bigger.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    if (this.#small === null) this.#small = this.#buf;
    else giveBulk(this.#buf);
    this.#buf = bigger;
  }

  /**
   * Goes back to the buffer {@link reserve} replaced, when what is buffered fits in it, and hands
   * the big one to the pool: a read waiting on a quiet conn then pins only the small one.
   */
  release(): void {
    const small = this.#small;
    if (small === null || this.buffered > small.length) return;
    small.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    giveBulk(this.#buf);
    this.#buf = small;
    this.#small = null;
  }

  /**
   * Swaps the buffer for one of `size` bytes when what is buffered fits: a handshake needs room
   * for an HTTP head, the connection after it mostly waits.
   */
  shrink(size: number): void {
    if (this.#small !== null || this.#buf.length <= size || this.buffered > size) return;
    const b = new Uint8Array(size);
    b.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buf = b;
    this.#lastRead = this.#lastRoom = 0; // the handshake's fills say nothing about the stream
  }

  /**
   * Sizes the buffer for the next fill by the last one: a fill that came back full grows it to
   * `big` ({@link reserve}); one that left room means the conn ran dry, and
   * when conns hold more than `BULK_KEEP_BUDGET` the buffer goes back to the small one
   * ({@link release}), so a read that waits pins little.
   */
  adapt(big: number): void {
    if (this.#disposed) return;
    const cap = this.#buf.length;
    if (cap >= big) {
      if (this.#lastRead < this.#lastRoom && bulkOverBudget()) this.release();
    } else if (this.#lastRoom > 0 && this.#lastRead === this.#lastRoom) {
      // Only a fill that came back full: more is likely waiting. A message that merely filled
      // half the buffer is as likely the last for a while, and the next fill is the read that
      // waits (in whatever buffer it gets).
      this.reserve(big);
    }
  }

  /** The conn is closed: a bulk buffer a read may still be filling is left to the GC. */
  dispose(): void {
    if (this.#small !== null && !this.#disposed) dropBulk(this.#buf);
    this.#disposed = true;
  }

  /** The conn with the read-ahead bytes put back in front. */
  conn(): Conn {
    if (this.buffered === 0) return this.#conn;
    const rest = this.#buf.slice(this.#start, this.#end);
    this.#start = this.#end = 0;
    return new PrefixedConn(this.#conn, rest);
  }
}
