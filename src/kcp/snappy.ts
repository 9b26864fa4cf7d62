/**
 * Snappy (docs/kcp.md §7): the raw block format (a greedy LZ77 compressor and a strict
 * decompressor) and the framing format as a {@link Conn} wrapper — what kcptun puts between
 * smux and KCP unless `nocomp`. The writer emits one chunk per write (Go's writer flushes every
 * write), so each smux frame travels as one chunk.
 * @module
 */
import { type Conn, UnexpectedEofError, WrappedConn } from "../core/conn.ts";
import { ProtocolError } from "../core/errors.ts";
import { crc32c } from "../core/crc32.ts";

/** The framing format's masked checksum. */
export function maskedCrc(b: Uint8Array): number {
  const c = crc32c(b);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

// ------------------------------------------------------------------ block format

function emitLiteral(dst: Uint8Array, d: number, src: Uint8Array, s: number, e: number): number {
  const n = e - s - 1;
  if (n < 60) dst[d++] = n << 2;
  else if (n < 256) dst[d++] = 60 << 2, dst[d++] = n;
  else dst[d++] = 61 << 2, dst[d++] = n & 0xff, dst[d++] = n >>> 8;
  dst.set(src.subarray(s, e), d);
  return d + e - s;
}

function emitCopy(dst: Uint8Array, d: number, offset: number, length: number): number {
  while (length >= 68) {
    dst[d++] = (63 << 2) | 2, dst[d++] = offset & 0xff, dst[d++] = offset >>> 8;
    length -= 64;
  }
  if (length > 64) {
    dst[d++] = (59 << 2) | 2, dst[d++] = offset & 0xff, dst[d++] = offset >>> 8;
    length -= 60;
  }
  if (length >= 12 || offset >= 2048) {
    dst[d++] = ((length - 1) << 2) | 2, dst[d++] = offset & 0xff, dst[d++] = offset >>> 8;
  } else {
    dst[d++] = ((offset >>> 8) << 5) | ((length - 4) << 2) | 1, dst[d++] = offset & 0xff;
  }
  return d;
}

function load32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

const table = new Uint16Array(1 << 14);

/** Compresses one block (≤ 64 KiB) to snappy's raw format, in `scratch` if it is large enough. */
export function compressBlock(src: Uint8Array, scratch?: Uint8Array): Uint8Array {
  const n = src.length;
  const need = 32 + n + Math.floor(n / 6);
  const dst = scratch && scratch.length >= need ? scratch : new Uint8Array(need);
  let d = 0;
  for (let v = n;; v = Math.floor(v / 128)) {
    dst[d++] = v >= 128 ? (v & 0x7f) | 0x80 : v;
    if (v < 128) break;
  }
  if (n < 17) return n ? dst.subarray(0, emitLiteral(dst, d, src, 0, n)) : dst.subarray(0, d);
  let bits = 8;
  while ((1 << bits) < n && bits < 14) bits++;
  const shift = 32 - bits;
  table.fill(0, 0, 1 << bits);
  const hash = (u: number) => Math.imul(u, 0x1e35a7bd) >>> shift;
  const limit = n - 15;
  let lit = 0;
  let s = 1;
  let nextHash = hash(load32(src, s));
  let done = false;
  while (!done) {
    // Find a 4-byte match, stepping faster the longer nothing matches.
    let skip = 32;
    let next = s;
    let cand = 0;
    for (;;) {
      s = next;
      next = s + (skip++ >>> 5);
      if (next > limit) {
        done = true;
        break;
      }
      cand = table[nextHash]!;
      table[nextHash] = s;
      nextHash = hash(load32(src, next));
      if (load32(src, s) === load32(src, cand)) break;
    }
    if (done) break;
    d = emitLiteral(dst, d, src, lit, s);
    // Emit copies while the next position matches immediately too.
    for (;;) {
      const base = s;
      s += 4;
      let i = cand + 4;
      while (s < n && src[i] === src[s]) i++, s++;
      d = emitCopy(dst, d, base - cand, s - base);
      lit = s;
      if (s >= limit) {
        done = true;
        break;
      }
      table[hash(load32(src, s - 1))] = s - 1;
      const h = hash(load32(src, s));
      cand = table[h]!;
      table[h] = s;
      if (load32(src, s) !== load32(src, cand)) {
        nextHash = hash(load32(src, ++s));
        break;
      }
    }
  }
  if (lit < n) d = emitLiteral(dst, d, src, lit, n);
  return dst.subarray(0, d);
}

/**
 * Decompresses one raw block, into `into` if it is large enough; throws ProtocolError on corrupt
 * input or > `max` bytes.
 */
export function decompressBlock(src: Uint8Array, max = 65536, into?: Uint8Array): Uint8Array {
  let s = 0;
  let len = 0;
  for (let shift = 0;; shift += 7) {
    if (s >= src.length || shift > 28) throw new ProtocolError("snappy: bad length");
    const b = src[s++]!;
    len += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  if (len > max) throw new ProtocolError("snappy: block too large");
  const dst = into && into.length >= len ? into.subarray(0, len) : new Uint8Array(len);
  let d = 0;
  while (s < src.length) {
    const tag = src[s++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let n = tag >>> 2;
      if (n >= 60) {
        const k = n - 59;
        if (s + k > src.length) throw new ProtocolError("snappy: corrupt literal");
        n = 0;
        for (let i = 0; i < k; i++) n |= src[s + i]! << (8 * i);
        n >>>= 0;
        s += k;
      }
      n += 1;
      if (s + n > src.length || d + n > len) throw new ProtocolError("snappy: corrupt literal");
      dst.set(src.subarray(s, s + n), d);
      s += n;
      d += n;
      continue;
    }
    let length: number, offset: number;
    if (kind === 1) {
      if (s >= src.length) throw new ProtocolError("snappy: corrupt copy");
      length = 4 + ((tag >>> 2) & 7);
      offset = ((tag >>> 5) << 8) | src[s++]!;
    } else if (kind === 2) {
      if (s + 2 > src.length) throw new ProtocolError("snappy: corrupt copy");
      length = 1 + (tag >>> 2);
      offset = src[s]! | (src[s + 1]! << 8);
      s += 2;
    } else {
      if (s + 4 > src.length) throw new ProtocolError("snappy: corrupt copy");
      length = 1 + (tag >>> 2);
      offset = load32(src, s);
      s += 4;
    }
    if (offset <= 0 || offset > d || d + length > len) {
      throw new ProtocolError("snappy: corrupt copy");
    }
    if (offset >= length) dst.copyWithin(d, d - offset, d - offset + length);
    else for (let i = 0; i < length; i++) dst[d + i] = dst[d - offset + i]!;
    d += length;
  }
  if (d !== len) throw new ProtocolError("snappy: length mismatch");
  return dst;
}

// ------------------------------------------------------------------ framing

const STREAM_ID = new Uint8Array([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
const MAX_CHUNK = 65536;

/** Where every chunk is compressed before it is framed (encoding is synchronous). */
const SCRATCH = new Uint8Array(32 + MAX_CHUNK + Math.floor(MAX_CHUNK / 6));

/**
 * One framed chunk for `data` (≤ 64 KiB): compressed unless that saves less than 1/8. Built in
 * `outBuf` when it is large enough (a view of it is returned), else in a new array.
 */
export function encodeChunk(data: Uint8Array, outBuf?: Uint8Array): Uint8Array {
  const c = compressBlock(data, SCRATCH);
  const compressed = c.length < data.length - Math.floor(data.length / 8);
  const body = compressed ? c : data;
  const out = outBuf && outBuf.length >= 8 + body.length
    ? outBuf.subarray(0, 8 + body.length)
    : new Uint8Array(8 + body.length);
  const len = 4 + body.length;
  out[0] = compressed ? 0x00 : 0x01;
  out[1] = len & 0xff;
  out[2] = (len >>> 8) & 0xff;
  out[3] = len >>> 16;
  const crc = maskedCrc(data);
  out[4] = crc, out[5] = crc >>> 8, out[6] = crc >>> 16, out[7] = crc >>> 24;
  out.set(body, 8);
  return out;
}

/** Snappy framing over a Conn: writes compress, reads decompress and verify. */
export class SnappyConn extends WrappedConn {
  #sentId = false;
  #sawId = false;
  #rbuf = new Uint8Array(0);
  #out: Uint8Array | null = null;
  #outOff = 0;
  #hdr = new Uint8Array(4);
  /**
   * Per conn, made on first use and reused: each chunk used to be two or three new 64 KiB arrays,
   * which under load kept tens of MiB of garbage waiting for the collector (docs/performance.md,
   * "KCP's peak memory"). Reuse is safe because one loop writes (the smux session's) and the
   * KCP session copies what it is given before its write resolves; the reader hands out bytes
   * of a chunk before it decodes the next.
   */
  #wbuf: Uint8Array | null = null;
  #dbuf: Uint8Array | null = null;

  /** Wraps `inner`; the first write sends the stream identifier. */
  constructor(inner: Conn) {
    super(inner);
  }

  /** Compresses `p` into snappy frames and writes them. */
  override async write(p: Uint8Array): Promise<number> {
    for (let off = 0; off < p.length || (p.length === 0 && off === 0); off += MAX_CHUNK) {
      let chunk = encodeChunk(
        p.subarray(off, off + MAX_CHUNK),
        this.#wbuf ??= new Uint8Array(8 + MAX_CHUNK),
      );
      if (!this.#sentId) {
        // The stream identifier goes out glued to the first chunk, as Go's writer does.
        const both = new Uint8Array(STREAM_ID.length + chunk.length);
        both.set(STREAM_ID);
        both.set(chunk, STREAM_ID.length);
        chunk = both;
        this.#sentId = true;
      }
      await this.inner.write(chunk);
      if (p.length === 0) break;
    }
    return p.length;
  }

  async #readFull(b: Uint8Array): Promise<boolean> {
    let off = 0;
    while (off < b.length) {
      const n = await this.inner.read(b.subarray(off));
      if (n === null) {
        if (off === 0) return false;
        throw new UnexpectedEofError(off, b.length);
      }
      off += n;
    }
    return true;
  }

  /** Reads and decompresses; a bad checksum or frame is a ProtocolError. */
  override async read(p: Uint8Array): Promise<number | null> {
    while (!this.#out || this.#outOff >= this.#out.length) {
      if (!(await this.#readFull(this.#hdr))) return null;
      const type = this.#hdr[0]!;
      const len = this.#hdr[1]! | (this.#hdr[2]! << 8) | (this.#hdr[3]! << 16);
      if (len > 76494) throw new ProtocolError("snappy: chunk too large");
      if (this.#rbuf.length < len) this.#rbuf = new Uint8Array(Math.max(len, 1024));
      const body = this.#rbuf.subarray(0, len);
      if (!(await this.#readFull(body)) && len > 0) throw new UnexpectedEofError(0, len);
      if (type === 0xff) {
        if (len !== 6 || new TextDecoder().decode(body) !== "sNaPpY") {
          throw new ProtocolError("snappy: bad stream identifier");
        }
        this.#sawId = true;
        continue;
      }
      if (!this.#sawId) throw new ProtocolError("snappy: missing stream identifier");
      if (type === 0x00 || type === 0x01) {
        if (len < 4) throw new ProtocolError("snappy: short chunk");
        const crc = (body[0]! | (body[1]! << 8) | (body[2]! << 16) | (body[3]! << 24)) >>> 0;
        const data = type === 0x00
          ? decompressBlock(body.subarray(4), MAX_CHUNK, this.#dbuf ??= new Uint8Array(MAX_CHUNK))
          : body.subarray(4);
        if (data.length > MAX_CHUNK) throw new ProtocolError("snappy: chunk too large");
        if (maskedCrc(data) !== crc) throw new ProtocolError("snappy: checksum mismatch");
        this.#out = data;
        this.#outOff = 0;
        continue;
      }
      if (type < 0x80) throw new ProtocolError(`snappy: unskippable chunk type ${type}`);
      // 0x80–0xFE: skippable (padding included)
    }
    const n = Math.min(p.length, this.#out.length - this.#outOff);
    p.set(this.#out.subarray(this.#outOff, this.#outOff + n));
    this.#outOff += n;
    return n;
  }
}
