/**
 * A Shadowsocks AEAD stream (SIP004) over a Conn: `salt ‖ {len(2)+tag}{payload+tag}...` per
 * direction, payload at most 0x3FFF bytes a chunk.
 * @module
 */
import { dropBulk, giveBulk, takeBulk } from "../../core/buffer_pool.ts";
import { type Conn, readFull, UnexpectedEofError, WrappedConn } from "../../core/conn.ts";
import { ProtocolError } from "../../core/errors.ts";
import { type AeadSession, MAX_PAYLOAD, type SsCipher, TAG } from "../../protocol/ss_aead.ts";

/** Salts seen recently by this process (replay protection, bounded). */
export class SaltFilter {
  readonly #seen = new Set<string>();
  /** Salts in the order they came, as a ring once full (`shift()` on 64k entries copied 512 KB). */
  readonly #order: string[] = [];
  /** Where the ring's oldest salt is. */
  #oldest = 0;
  constructor(readonly max = 65536) {}
  /** False if the salt was already used. */
  add(salt: Uint8Array): boolean {
    const k = Array.from(salt, (b) => b.toString(16).padStart(2, "0")).join("");
    if (this.#seen.has(k)) return false;
    this.#seen.add(k);
    if (this.#order.length < this.max) this.#order.push(k);
    else {
      this.#seen.delete(this.#order[this.#oldest]!);
      this.#order[this.#oldest] = k;
      this.#oldest = (this.#oldest + 1) % this.max;
    }
    return true;
  }
}

/** What sealing adds to a chunk's payload: the length box and two tags. */
const OVERHEAD = 2 + TAG + TAG;
/** A whole sealed chunk at most. */
const MAX_SEALED = MAX_PAYLOAD + OVERHEAD;
/**
 * Chunks sealed per underlying write at most: 15 fill a 256 KiB pooled buffer (246,255 bytes), so
 * a relay's 256 KiB write is two socket writes.
 */
const CHUNKS_PER_WRITE = 15;

/**
 * Reads land in the caller's buffer and chunks are opened there, several per read: one socket
 * read and one relay write per buffer-full, not two reads and a write per 16 KiB chunk. Only the
 * tail of a chunk that did not fit is kept here (a pooled buffer, given back once it is drained),
 * and writes seal into a pooled buffer taken per write, so an idle conn holds no buffer of its
 * own (docs/performance.md, "Shadowsocks").
 */
export class SsConn extends WrappedConn {
  readonly #cipher: SsCipher;
  readonly #filter?: SaltFilter;
  #enc?: AeadSession;
  #dec?: AeadSession;
  /** Opened plaintext the caller's buffer had no room for. */
  #out: Uint8Array | null = null;
  #outOff = 0;
  /** Sealed bytes not yet opened (a chunk's start), in a pooled buffer. */
  #pend: Uint8Array | null = null;
  #pendLen = 0;
  /** The current chunk's payload length once its length box is open; -1 before. */
  #need = -1;
  #closed = false;
  /** What ended the stream (a bad tag, a cut-off chunk): every later read throws it. */
  #failed: unknown = null;
  /** What failed a write: every later write throws it. */
  #writeFailed: unknown = null;

  constructor(inner: Conn, cipher: SsCipher, filter?: SaltFilter) {
    super(inner);
    this.#cipher = cipher;
    this.#filter = filter;
  }

  override async write(p: Uint8Array): Promise<number> {
    // After a failed write the peer's view of the stream is unknown (chunks sealed, some sent):
    // nothing more is sealed on it.
    if (this.#writeFailed) throw this.#writeFailed;
    try {
      return await this.#write(p);
    } catch (e) {
      this.#writeFailed = e;
      throw e;
    }
  }

  async #write(p: Uint8Array): Promise<number> {
    if (!this.#enc) {
      const salt = crypto.getRandomValues(new Uint8Array(this.#cipher.saltLen));
      this.#enc = this.#cipher.session(salt);
      await this.inner.write(salt);
    }
    // Sealed into a pooled buffer that fits this write (up to CHUNKS_PER_WRITE chunks a batch).
    const chunks = Math.min(Math.ceil(p.length / MAX_PAYLOAD) || 1, CHUNKS_PER_WRITE);
    const wbuf = takeBulk(Math.min(p.length, chunks * MAX_PAYLOAD) + chunks * OVERHEAD);
    let sent = false;
    try {
      const len = new Uint8Array(2);
      let off = 0;
      let w = 0;
      do {
        const n = Math.min(MAX_PAYLOAD, p.length - off);
        len[0] = n >>> 8;
        len[1] = n & 0xff;
        w = this.#enc.seal(len, wbuf, w);
        w = this.#enc.seal(p.subarray(off, off + n), wbuf, w);
        off += n;
        const next = Math.min(MAX_PAYLOAD, p.length - off) + OVERHEAD;
        if (off >= p.length || w + next > wbuf.length) {
          await this.inner.write(wbuf.subarray(0, w));
          w = 0;
        }
      } while (off < p.length);
      sent = true;
    } finally {
      // A failed write may still refer to the buffer: left to the garbage collector then.
      if (sent) giveBulk(wbuf);
      else dropBulk(wbuf);
    }
    return p.length;
  }

  /** Reads the peer's salt (once); false at a clean end before it. */
  async #readSalt(): Promise<boolean> {
    const salt = new Uint8Array(this.#cipher.saltLen);
    const first = await this.inner.read(salt);
    if (first === null) return false;
    try {
      await readFull(this.inner, salt.subarray(first));
    } catch (e) {
      if (e instanceof UnexpectedEofError) throw new ProtocolError("ss: truncated salt");
      throw e;
    }
    if (this.#filter && !this.#filter.add(salt)) throw new ProtocolError("ss: replayed salt");
    this.#dec = this.#cipher.session(salt);
    return true;
  }

  /**
   * Not an `async` function: an idle conn's read waits here, and a suspended async function costs
   * a few hundred bytes more than a promise reaction (docs/performance.md).
   */
  override read(p: Uint8Array): Promise<number | null> {
    if (p.length === 0) return Promise.resolve(0);
    if (this.#out) return Promise.resolve(this.#serveOut(p)); // (opened before any failure)
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.resolve(null);
    const r = this.#dec
      ? this.#readChunks(p)
      : this.#readSalt().then((ok) => ok ? this.#readChunks(p) : null);
    return r.catch(this.#fail);
  }

  /** The stream is over: every later read fails alike, and nothing stays held. */
  readonly #fail = (e: unknown): never => {
    this.#failed = e;
    this.#releasePend();
    throw e;
  };

  #readChunks(p: Uint8Array): Promise<number | null> {
    // Sealed bytes are opened where they are: in the caller's buffer when what is pending fits
    // it with room to read more, else in the pending buffer (a chunk bigger than the reads).
    const w = this.#pendLen;
    let buf = p;
    if (w >= p.length) buf = this.#pend!;
    else if (w > 0) {
      p.set(this.#pend!.subarray(0, w));
      this.#releasePend();
    }
    return this.#step(p, buf, w);
  }

  /**
   * Opens what `buf[0, w)` holds into `p`, or reads more and comes back: promise reactions, not a
   * suspended async function, wait with an idle conn's read.
   */
  #step(p: Uint8Array, buf: Uint8Array, w: number): Promise<number | null> {
    try {
      if (w > 0) {
        const o = this.#open(buf, w, p);
        const r = this.#used;
        if (o > 0 || this.#out) {
          this.#keep(buf, r, w);
          return Promise.resolve(o > 0 ? o : this.#serveOut(p));
        }
        if (r > 0) buf.copyWithin(0, r, w);
        w -= r;
        if (w === 0 && buf !== p) {
          // (Zero-length chunks emptied the pending buffer: the next read waits in p.)
          this.#releasePend();
          buf = p;
        }
      }
      if (buf === p && w === p.length) {
        // A chunk bigger than the caller's buffer: it completes in the pending buffer.
        this.#keep(p, 0, w);
        buf = this.#pend!;
      }
    } catch (e) {
      return Promise.reject(e);
    }
    if (buf !== p) this.#pendLen = w;
    return this.inner.read(buf.subarray(w)).then((k) => {
      if (this.#closed) return null; // (close gave up the pending buffer)
      if (k === null) {
        if (w > 0 || this.#need >= 0) throw new ProtocolError("ss: truncated chunk");
        return null;
      }
      return this.#step(p, buf, w + k);
    });
  }

  /** Sealed bytes the last {@link #open} consumed. */
  #used = 0;

  /**
   * Opens the whole chunks in `buf[0, end)` into `p` (in place when `buf` is `p`: a chunk's
   * plaintext never overtakes its own sealed bytes) while they fit. A first chunk bigger than
   * `p` is opened into {@link #out}. Returns the plaintext bytes put in `p`; {@link #used} says
   * how much of `buf` was consumed (a length box whose payload has not all come counts).
   */
  #open(buf: Uint8Array, end: number, p: Uint8Array): number {
    try {
      this.#used = this.#openLoop(this.#dec!, buf, end, p);
    } catch (e) {
      // A chunk that fails after good ones: the good plaintext is read first, the error next.
      if (this.#opened === 0) throw e;
      this.#failed = e;
      this.#used = end;
    }
    return this.#opened;
  }

  /** Plaintext bytes {@link #openLoop} has put in `p` so far. */
  #opened = 0;

  /** {@link #open}'s loop; returns the sealed bytes consumed. */
  #openLoop(dec: AeadSession, buf: Uint8Array, end: number, p: Uint8Array): number {
    let r = 0;
    let o = 0;
    this.#opened = 0;
    for (;;) {
      if (this.#need < 0) {
        if (end - r < 2 + TAG) break;
        const l = dec.open(buf.subarray(r, r + 2 + TAG));
        this.#need = ((l[0]! << 8) | l[1]!) & MAX_PAYLOAD;
        r += 2 + TAG;
      }
      const n = this.#need;
      if (end - r < n + TAG) break;
      if (o + n > p.length) {
        if (o > 0) break; // left for the next read
        this.#out = dec.open(buf.subarray(r, r + n + TAG));
        this.#outOff = 0;
        this.#need = -1;
        r += n + TAG;
        break;
      }
      dec.openTo(buf.subarray(r, r + n + TAG), p, o);
      this.#need = -1;
      o += n;
      this.#opened = o;
      r += n + TAG;
    }
    return r;
  }

  /** Keeps `buf[from, end)` as the pending sealed bytes. */
  #keep(buf: Uint8Array, from: number, end: number): void {
    const n = end - from;
    if (n === 0) return this.#releasePend();
    if (buf === this.#pend) {
      buf.copyWithin(0, from, end);
    } else {
      // Room for at least a whole chunk: a partial one completes here.
      if (this.#pend && this.#pend.length < n) this.#releasePend();
      this.#pend ??= takeBulk(Math.max(n, MAX_SEALED));
      this.#pend.set(buf.subarray(from, end));
    }
    this.#pendLen = n;
  }

  #releasePend(): void {
    this.#pendLen = 0;
    if (this.#pend && !this.#closed) giveBulk(this.#pend);
    this.#pend = null;
  }

  #serveOut(p: Uint8Array): number {
    const out = this.#out!;
    const n = Math.min(p.length, out.length - this.#outOff);
    p.set(out.subarray(this.#outOff, this.#outOff + n));
    this.#outOff += n;
    if (this.#outOff >= out.length) this.#out = null;
    return n;
  }

  override close(): void {
    // A read may still be filling the pending buffer: it is left to the garbage collector.
    this.#closed = true;
    if (this.#pend) dropBulk(this.#pend);
    this.#pend = null;
    this.#pendLen = 0;
    super.close();
  }
}
