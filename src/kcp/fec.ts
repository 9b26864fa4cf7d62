/**
 * kcp-go's forward error correction (docs/kcp.md §5): Reed–Solomon over GF(2^8) with
 * klauspost/reedsolomon's systematic Vandermonde-derived matrix (parity byte-identical), an
 * encoder that frames data packets and emits parity after every `ds` data packets, and a
 * bounded decoder that recovers missing data packets.
 * @module
 */
import { kcpSnmp } from "./snmp.ts";
import { DATAGRAM_POOL } from "../core/buffer_pool.ts";

export const FEC_HEADER = 8;
export const FLAG_DATA = 0xf1;
export const FLAG_PARITY = 0xf2;

const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
const MUL = new Uint8Array(65536);
(function init() {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;
  for (let a = 1; a < 256; a++) {
    for (let b = 1; b < 256; b++) MUL[(a << 8) | b] = EXP[LOG[a]! + LOG[b]!]!;
  }
})();

function gmul(a: number, b: number): number {
  return MUL[(a << 8) | b]!;
}
function ginv(a: number): number {
  return EXP[(255 - LOG[a]!) % 255]!;
}
function gpow(a: number, n: number): number {
  if (n === 0) return 1;
  if (a === 0) return 0;
  return EXP[(LOG[a]! * n) % 255]!;
}

type Matrix = Uint8Array[];

function invert(m: Matrix): Matrix {
  const n = m.length;
  const a = m.map((r, i) => {
    const row = new Uint8Array(2 * n);
    row.set(r);
    row[n + i] = 1;
    return row;
  });
  for (let c = 0; c < n; c++) {
    if (a[c]![c] === 0) {
      const r = a.findIndex((row, i) => i > c && row[c] !== 0);
      if (r < 0) throw new Error("fec: singular matrix");
      [a[c], a[r]] = [a[r]!, a[c]!];
    }
    const inv = ginv(a[c]![c]!);
    for (let j = 0; j < 2 * n; j++) a[c]![j] = gmul(a[c]![j]!, inv);
    for (let r = 0; r < n; r++) {
      if (r === c || a[r]![c] === 0) continue;
      const f = a[r]![c]!;
      for (let j = 0; j < 2 * n; j++) a[r]![j] ^= gmul(f, a[c]![j]!);
    }
  }
  return a.map((row) => row.slice(n));
}

function multiply(x: Matrix, y: Matrix): Matrix {
  return x.map((row) => {
    const out = new Uint8Array(y[0]!.length);
    for (let j = 0; j < out.length; j++) {
      let s = 0;
      for (let k = 0; k < row.length; k++) s ^= gmul(row[k]!, y[k]![j]!);
      out[j] = s;
    }
    return out;
  });
}

/** Reed–Solomon with `ds` data and `ps` parity shards. */
export class ReedSolomon {
  /**
   * The encoding matrix (klauspost/reedsolomon's Vandermonde construction).
   * @internal
   */
  readonly matrix: Matrix;
  /** `ds` data shards (1…256) and `ps` parity shards (ds + ps ≤ 256). */
  constructor(readonly ds: number, readonly ps: number) {
    if (ds < 1 || ps < 0 || ds + ps > 256) throw new RangeError("fec: bad shard counts");
    const v: Matrix = [];
    for (let r = 0; r < ds + ps; r++) {
      const row = new Uint8Array(ds);
      for (let c = 0; c < ds; c++) row[c] = gpow(r, c);
      v.push(row);
    }
    this.matrix = multiply(v, invert(v.slice(0, ds)));
  }

  /** Parity shards for `data` (all the same length). */
  encode(data: Uint8Array[]): Uint8Array[] {
    const len = data[0]!.length;
    const out: Uint8Array[] = [];
    for (let p = 0; p < this.ps; p++) {
      const row = this.matrix[this.ds + p]!;
      const par = new Uint8Array(len);
      for (let j = 0; j < this.ds; j++) mulAdd(row[j]!, data[j]!, par);
      out.push(par);
    }
    return out;
  }

  /** Fills the missing (null) data shards from any `ds` present shards; all present equal length. */
  reconstructData(shards: (Uint8Array | null)[]): void {
    const present: number[] = [];
    for (let i = 0; i < shards.length && present.length < this.ds; i++) {
      if (shards[i]) present.push(i);
    }
    if (present.length < this.ds) throw new Error("fec: too few shards");
    const len = shards[present[0]!]!.length;
    const dec = invert(present.map((i) => this.matrix[i]!));
    for (let d = 0; d < this.ds; d++) {
      if (shards[d]) continue;
      const out = new Uint8Array(len);
      for (let k = 0; k < this.ds; k++) mulAdd(dec[d]![k]!, shards[present[k]!]!, out);
      shards[d] = out;
    }
  }
}

/** dst ^= c·src over GF(2^8). Four bytes per step when both are 4-byte aligned (the hot case). */
function mulAdd(c: number, src: Uint8Array, dst: Uint8Array): void {
  if (c === 0) return;
  const n = src.length;
  let i = 0;
  if (((src.byteOffset | dst.byteOffset) & 3) === 0 && n >= 4) {
    const words = n >>> 2;
    const s32 = new Int32Array(src.buffer, src.byteOffset, words);
    const d32 = new Int32Array(dst.buffer, dst.byteOffset, words);
    if (c === 1) {
      for (let w = 0; w < words; w++) d32[w] ^= s32[w]!;
    } else {
      const row = MUL.subarray(c << 8, (c << 8) + 256);
      for (let w = 0; w < words; w++) {
        const v = s32[w]!;
        d32[w] ^= row[v & 0xff]! | (row[(v >>> 8) & 0xff]! << 8) |
          (row[(v >>> 16) & 0xff]! << 16) | (row[v >>> 24]! << 24);
      }
    }
    i = words << 2;
  }
  const base = c << 8;
  for (; i < n; i++) dst[i] ^= MUL[base | src[i]!]!;
}

/**
 * d32[0..words) ^= c·s32[0..words) over GF(2^8), on whole words: the encoder's form, with no view
 * made per call (the views were 40% of a KCP sender's JavaScript allocation).
 */
function mulAdd32(c: number, s32: Int32Array, d32: Int32Array, words: number): void {
  if (c === 0) return;
  if (c === 1) {
    for (let w = 0; w < words; w++) d32[w] ^= s32[w]!;
    return;
  }
  const base = c << 8;
  for (let w = 0; w < words; w++) {
    const v = s32[w]!;
    d32[w] ^= MUL[base | (v & 0xff)]! | (MUL[base | ((v >>> 8) & 0xff)]! << 8) |
      (MUL[base | ((v >>> 16) & 0xff)]! << 16) | (MUL[base | (v >>> 24)]! << 24);
  }
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** Frames outgoing KCP datagrams and produces parity packets. */
export class FecEncoder {
  readonly #rs: ReedSolomon;
  readonly #paws: number;
  #next = 0;
  /** This group's shards (size ‖ KCP bytes), copied: the datagram is encrypted in place. */
  readonly #cache: Uint8Array[] = [];
  /** The same rows as words (each row's length is a multiple of 4). */
  readonly #cache32: Int32Array[] = [];
  /** Where each parity shard is accumulated before it is copied into its packet. */
  #par = new Int32Array(0);
  readonly #lens: number[] = [];
  #count = 0;
  #maxLen = 0;

  /** kcp-go's FEC with `ds` data and `ps` parity shards per group. */
  constructor(readonly ds: number, readonly ps: number) {
    this.#rs = new ReedSolomon(ds, ps);
    this.#paws = Math.floor(0xffffffff / (ds + ps)) * (ds + ps);
  }

  /** (Re)makes cache row `k` for at least `size` bytes, keeping what it holds. */
  #row(k: number, size: number): void {
    const old = this.#cache[k];
    const row = new Uint8Array((Math.max(size, 1536) + 3) & ~3);
    if (old) row.set(old.subarray(0, Math.min(old.length, row.length)));
    this.#cache[k] = row;
    this.#cache32[k] = new Int32Array(row.buffer);
  }

  /** Returns the data packet for `kcp`, followed by parity packets when a group completes. */
  encode(kcp: Uint8Array): Uint8Array[] {
    const pkt = new Uint8Array(FEC_HEADER + kcp.length);
    pkt.set(kcp, FEC_HEADER);
    return [pkt, ...this.encodeInPlace(pkt, 0)];
  }

  /**
   * Writes the FEC header at `d[at..at+8)` in front of the KCP bytes that follow it, and
   * returns the parity packets (each with `at` bytes of headroom) when this completes a group.
   */
  encodeInPlace(d: Uint8Array, at: number): Uint8Array[] {
    const size = d.length - at - FEC_HEADER + 2;
    putU32(d, at, this.#next);
    d[at + 4] = FLAG_DATA;
    d[at + 5] = 0;
    d[at + 6] = size & 0xff;
    d[at + 7] = size >>> 8;
    this.#next = (this.#next + 1) % this.#paws;
    if (this.ps === 0) return [];
    const k = this.#count++;
    let row = this.#cache[k];
    if (!row || row.length < size) this.#row(k, size);
    row = this.#cache[k]!;
    row.set(d.subarray(at + 6));
    this.#lens[k] = size;
    if (size > this.#maxLen) this.#maxLen = size;
    if (this.#count < this.ds) return [];

    const len = this.#maxLen;
    const words = (len + 3) >>> 2;
    for (let j = 0; j < this.ds; j++) {
      if (this.#cache[j]!.length < words << 2) this.#row(j, len);
      this.#cache[j]!.fill(0, this.#lens[j]!, words << 2);
    }
    if (this.#par.length < words) this.#par = new Int32Array(Math.max(words, 384));
    const par = this.#par;
    const par8 = new Uint8Array(par.buffer, 0, len);
    const out: Uint8Array[] = [];
    for (let p = 0; p < this.ps; p++) {
      par.fill(0, 0, words);
      const coef = this.#rs.matrix[this.ds + p]!;
      for (let j = 0; j < this.ds; j++) mulAdd32(coef[j]!, this.#cache32[j]!, par, words);
      // Pooled (the sender hands it back); zeroed so the headroom and header start clean.
      const pkt = DATAGRAM_POOL.take(at + 6 + len).fill(0, 0, at + 6);
      putU32(pkt, at, this.#next);
      pkt[at + 4] = FLAG_PARITY;
      pkt.set(par8, at + 6);
      out.push(pkt);
      this.#next = (this.#next + 1) % this.#paws;
    }
    this.#count = 0;
    this.#maxLen = 0;
    return out;
  }
}

interface Group {
  shards: (Uint8Array | null)[];
  data: number;
  total: number;
  done: boolean;
  at: number;
}

/** Ends a group: its pooled shards go back. */
function release(g: Group): void {
  for (const s of g.shards) if (s) DATAGRAM_POOL.give(s);
  g.done = true;
  g.shards = [];
}

/** Collects FEC packets; returns KCP payloads recovered from parity. */
export class FecDecoder {
  readonly #rs: ReedSolomon;
  readonly #groups = new Map<number, Group>();
  readonly #n: number;
  /** Packets that could not help (stale, malformed). */
  errors = 0;
  /** KCP payloads rebuilt from parity so far. */
  recovered = 0;

  /** kcp-go's FEC with `ds` data and `ps` parity shards per group (as the sender's). */
  constructor(readonly ds: number, readonly ps: number) {
    this.#rs = new ReedSolomon(ds, Math.max(ps, 1));
    this.#n = ds + ps;
  }

  /** Feeds one FEC packet (header included); returns recovered KCP payloads (maybe none). */
  decode(pkt: Uint8Array, now: number = Date.now()): Uint8Array[] {
    if (pkt.length < FEC_HEADER - 2) {
      this.errors++;
      return [];
    }
    const seq = (pkt[0]! | (pkt[1]! << 8) | (pkt[2]! << 16) | (pkt[3]! << 24)) >>> 0;
    const flag = pkt[4]! | (pkt[5]! << 8);
    const base = seq - (seq % this.#n);
    const pos = seq - base;
    if ((flag === FLAG_DATA) !== (pos < this.ds)) {
      this.errors++;
      return [];
    }
    let g = this.#groups.get(base);
    if (!g) {
      this.#expire(now);
      g = { shards: new Array(this.#n).fill(null), data: 0, total: 0, done: false, at: now };
      this.#groups.set(base, g);
    }
    if (g.done || g.shards[pos]) return [];
    // size ‖ KCP (data) or parity bytes, in a pooled copy handed back when the group ends.
    const shard = DATAGRAM_POOL.take(pkt.length - 6);
    shard.set(pkt.subarray(6));
    g.shards[pos] = shard;
    g.total++;
    if (pos < this.ds) g.data++;
    if (g.data === this.ds) {
      release(g);
      return [];
    }
    if (g.total < this.ds) return [];
    // Enough shards: rebuild the missing data ones.
    const maxLen = Math.max(...g.shards.map((s) => s?.length ?? 0));
    const shards = g.shards.map((s) => {
      if (!s) return null;
      if (s.length === maxLen) return s;
      const p = new Uint8Array(maxLen);
      p.set(s);
      return p;
    });
    const missing = shards.map((s, i) => (i < this.ds && !s ? i : -1)).filter((i) => i >= 0);
    try {
      this.#rs.reconstructData(shards);
    } catch {
      this.errors++;
      return [];
    }
    release(g); // the rebuilt shards are fresh arrays, not the pooled ones
    const out: Uint8Array[] = [];
    for (const i of missing) {
      const r = shards[i]!;
      const sz = r.length >= 2 ? r[0]! | (r[1]! << 8) : 0;
      if (sz >= 2 && sz <= r.length) {
        out.push(r.subarray(2, sz));
        this.recovered++;
        kcpSnmp.fecRecovered++;
      } else {
        this.errors++;
        kcpSnmp.fecErrors++;
      }
    }
    return out;
  }

  #expire(now: number): void {
    // Bounded memory: at most a few groups in flight, none older than 60 s.
    for (const [k, g] of this.#groups) {
      if (this.#groups.size > 3 || now - g.at > 60_000) {
        release(g);
        this.#groups.delete(k);
      } else break;
    }
  }
}
