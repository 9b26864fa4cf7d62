/**
 * DES and 3DES-EDE (FIPS 46-3) block encryption, for kcp-go's `3des` crypt: node:crypto in Deno
 * offers 3DES only as CBC, one call per 8-byte block (~4 MB/s); this runs in typed arrays.
 * The S-boxes and P are merged into eight 64-entry tables, E is read straight off the rotated
 * right half, and IP/FP are byte-wise table lookups. In 3DES the FP/IP pairs between the three
 * stages cancel, so only the outer ones run.
 * @module
 */
import type { BlockFn } from "./cfb.ts";
import { P, PC1, PC2, SBOX_HEX } from "./des_tables.ts";

/** Applies a 1-based bit permutation (bit 1 = MSB of `bits[0]`) to a big-endian bit array. */
function permuteBits(bits: Uint8Array, table: readonly number[]): Uint8Array {
  return Uint8Array.from(table, (t) => bits[t - 1]!);
}

function toBits(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length * 8);
  for (let i = 0; i < out.length; i++) out[i] = (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
}

/** IP: output bit i comes from input bit IP[i]; rows go 58,50,..,2 / 60,..,4 / ... / 63,..,7. */
const IP = Array.from({ length: 64 }, (_, i) => {
  const row = i >> 3, col = i & 7;
  const start = row < 4 ? 58 + 2 * row : 57 + 2 * (row - 4);
  return start - 8 * col;
});
const FP = (() => {
  const fp = new Array<number>(64);
  IP.forEach((src, i) => (fp[src - 1] = i + 1));
  return fp;
})();

/**
 * A 64-bit permutation as 8 byte-indexed tables: for input byte k with value v, the output
 * words (hi, lo) to OR in. Eight lookups instead of 64 bit moves.
 */
function byteTables(table: readonly number[]): Int32Array {
  const t = new Int32Array(8 * 256 * 2);
  for (let k = 0; k < 8; k++) {
    for (let v = 0; v < 256; v++) {
      let hi = 0, lo = 0;
      for (let i = 0; i < 64; i++) {
        const src = table[i]! - 1;
        if ((src >> 3) !== k || ((v >> (7 - (src & 7))) & 1) === 0) continue;
        if (i < 32) hi |= 1 << (31 - i);
        else lo |= 1 << (63 - i);
      }
      t[(k * 256 + v) * 2] = hi;
      t[(k * 256 + v) * 2 + 1] = lo;
    }
  }
  return t;
}

let tables: { ip: Int32Array; fp: Int32Array; sp: Int32Array } | undefined;

function desTables(): { ip: Int32Array; fp: Int32Array; sp: Int32Array } {
  if (tables) return tables;
  // SP[i][x]: S-box i on the 6-bit input x, its 4 output bits at nibble i, then P.
  const sp = new Int32Array(8 * 64);
  for (let i = 0; i < 8; i++) {
    for (let x = 0; x < 64; x++) {
      const row = ((x >> 4) & 2) | (x & 1);
      const col = (x >> 1) & 15;
      const s = parseInt(SBOX_HEX[i * 64 + row * 16 + col]!, 16);
      let out = 0;
      for (let b = 0; b < 32; b++) {
        const src = P[b]! - 1; // bit of the S-box layer feeding output bit b
        if ((src >> 2) === i && ((s >> (3 - (src & 3))) & 1)) out |= 1 << (31 - b);
      }
      sp[i * 64 + x] = out;
    }
  }
  tables = { ip: byteTables(IP), fp: byteTables(FP), sp };
  return tables;
}

/** 16 round subkeys, each as eight 6-bit chunks (128 numbers). */
function subkeys(key: Uint8Array): Int32Array {
  const cd = permuteBits(toBits(key.subarray(0, 8)), PC1);
  const c = Array.from(cd.subarray(0, 28)), d = Array.from(cd.subarray(28));
  const out = new Int32Array(128);
  const shifts = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
  for (let r = 0; r < 16; r++) {
    for (let s = 0; s < shifts[r]!; s++) {
      c.push(c.shift()!);
      d.push(d.shift()!);
    }
    const k = permuteBits(Uint8Array.from([...c, ...d]), PC2);
    for (let j = 0; j < 8; j++) {
      let v = 0;
      for (let b = 0; b < 6; b++) v = (v << 1) | k[j * 6 + b]!;
      out[r * 8 + j] = v;
    }
  }
  return out;
}

/** 16 rounds on (l, r); writes the swapped result (R16, L16) to `io`. */
function rounds(io: Int32Array, sp: Int32Array, k: Int32Array, decrypt: boolean): void {
  let l = io[0]!, r = io[1]!;
  for (let n = 0; n < 16; n++) {
    const kk = (decrypt ? 15 - n : n) * 8;
    // E(R) in six-bit chunks: chunk i is bits 4i..4i+5 of R rotated right by one.
    const x = (r >>> 1) | (r << 31);
    const f = sp[((x >>> 26) ^ k[kk]!) & 63]! |
      sp[64 + (((x >>> 22) ^ k[kk + 1]!) & 63)]! |
      sp[128 + (((x >>> 18) ^ k[kk + 2]!) & 63)]! |
      sp[192 + (((x >>> 14) ^ k[kk + 3]!) & 63)]! |
      sp[256 + (((x >>> 10) ^ k[kk + 4]!) & 63)]! |
      sp[320 + (((x >>> 6) ^ k[kk + 5]!) & 63)]! |
      sp[384 + (((x >>> 2) ^ k[kk + 6]!) & 63)]! |
      sp[448 + ((((x << 2) | (x >>> 30)) ^ k[kk + 7]!) & 63)]!;
    const t = l ^ f;
    l = r;
    r = t;
  }
  io[0] = r;
  io[1] = l;
}

function permute(t: Int32Array, src: Uint8Array, so: number, io: Int32Array): void {
  let hi = 0, lo = 0;
  for (let k = 0; k < 8; k++) {
    const o = (k * 256 + src[so + k]!) * 2;
    hi |= t[o]!;
    lo |= t[o + 1]!;
  }
  io[0] = hi;
  io[1] = lo;
}

/**
 * A keyed block encryptor: 3DES-EDE with a 24-byte key (k1 ‖ k2 ‖ k3: encrypt k1, decrypt k2,
 * encrypt k3), or single DES with an 8-byte key.
 */
export function desBlock(key: Uint8Array): BlockFn {
  const { ip, fp, sp } = desTables();
  const stages = key.length >= 24
    ? [subkeys(key.subarray(0, 8)), subkeys(key.subarray(8, 16)), subkeys(key.subarray(16, 24))]
    : [subkeys(key)];
  const io = new Int32Array(2);
  const bytes = new Uint8Array(8);
  return (src, so, dst, dOff) => {
    permute(ip, src, so, io);
    // Between stages FP and IP cancel: a stage's pre-output is the next one's (L0, R0).
    for (let s = 0; s < stages.length; s++) rounds(io, sp, stages[s]!, s === 1);
    const hi = io[0]!, lo = io[1]!;
    for (let i = 0; i < 4; i++) {
      bytes[i] = hi >>> (24 - 8 * i);
      bytes[4 + i] = lo >>> (24 - 8 * i);
    }
    permute(fp, bytes, 0, io);
    const a = io[0]!, b = io[1]!;
    for (let i = 0; i < 4; i++) {
      dst[dOff + i] = a >>> (24 - 8 * i);
      dst[dOff + 4 + i] = b >>> (24 - 8 * i);
    }
  };
}
