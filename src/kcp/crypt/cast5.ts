/**
 * CAST-128 (RFC 2144) for 128-bit keys: 16 rounds, 8-byte blocks, big-endian halves.
 * kcp-go's `cast5` crypt runs it in CFB-64 with key32[0:16].
 * @module
 */
import type { BlockFn } from "./cfb.ts";
import { CAST5_SBOX_HEX } from "./cast5_sboxes.ts";

let sbox: Uint32Array | undefined;

/** S1..S8 as one array: S(n) starts at (n-1)*256. */
function sboxes(): Uint32Array {
  if (sbox) return sbox;
  sbox = new Uint32Array(2048);
  for (let i = 0; i < 2048; i++) sbox[i] = parseInt(CAST5_SBOX_HEX.slice(i * 8, i * 8 + 8), 16);
  return sbox;
}

// Key schedule (RFC 2144 §2.4). Each half-step rebuilds one 16-byte register from the other:
// word w of the new register = a word of the old one ^ four S5..S8 lookups on the register being
// built (or the old one, for the first word) ^ one more lookup on the old register.
// Row w: [old register's word, S5..S8 byte indices, S-box number of the fifth lookup, its byte
// index in the old register].
type Mix = readonly [number, readonly [number, number, number, number], number, number];
const Z_FROM_X: readonly Mix[] = [
  [0, [0xd, 0xf, 0xc, 0xe], 7, 0x8],
  [2, [0x0, 0x2, 0x1, 0x3], 8, 0xa],
  [3, [0x7, 0x6, 0x5, 0x4], 5, 0x9],
  [1, [0xa, 0x9, 0xb, 0x8], 6, 0xb],
];
const X_FROM_Z: readonly Mix[] = [
  [2, [0x5, 0x7, 0x4, 0x6], 7, 0x0],
  [0, [0x0, 0x2, 0x1, 0x3], 8, 0x2],
  [1, [0x7, 0x6, 0x5, 0x4], 5, 0x1],
  [3, [0xa, 0x9, 0xb, 0x8], 6, 0x3],
];
// Four subkeys per extraction: S5..S8 on four bytes of the register, then S(5+k) on a fifth.
const K_ROUNDS: readonly (readonly number[][])[] = [
  [[8, 9, 7, 6, 2], [0xa, 0xb, 5, 4, 6], [0xc, 0xd, 3, 2, 9], [0xe, 0xf, 1, 0, 0xc]],
  [[3, 2, 0xc, 0xd, 8], [1, 0, 0xe, 0xf, 0xd], [7, 6, 8, 9, 3], [5, 4, 0xa, 0xb, 7]],
  [[3, 2, 0xc, 0xd, 9], [1, 0, 0xe, 0xf, 0xc], [7, 6, 8, 9, 2], [5, 4, 0xa, 0xb, 6]],
  [[8, 9, 7, 6, 3], [0xa, 0xb, 5, 4, 7], [0xc, 0xd, 3, 2, 8], [0xe, 0xf, 1, 0, 0xd]],
];

function mix(S: Uint32Array, from: Uint8Array, to: Uint8Array, rows: readonly Mix[]): void {
  const dv = new DataView(to.buffer, to.byteOffset, 16);
  for (let w = 0; w < 4; w++) {
    const [src, [a, b, c, d], box, e] = rows[w]!;
    // The first word's lookups read the old register; later words read the new one.
    const r = w === 0 ? from : to;
    const v = ((from[src * 4]! << 24) | (from[src * 4 + 1]! << 16) | (from[src * 4 + 2]! << 8) |
      from[src * 4 + 3]!) ^
      S[1024 + r[a]!]! ^ S[1280 + r[b]!]! ^ S[1536 + r[c]!]! ^
      S[1792 + r[d]!]! ^ S[(box - 1) * 256 + from[e]!]!;
    dv.setUint32(w * 4, v >>> 0);
  }
}

function extract(S: Uint32Array, r: Uint8Array, rows: readonly number[][], out: number[]): void {
  for (let k = 0; k < 4; k++) {
    const [a, b, c, d, e] = rows[k]!;
    out.push(
      (S[1024 + r[a!]!]! ^ S[1280 + r[b!]!]! ^ S[1536 + r[c!]!]! ^ S[1792 + r[d!]!]! ^
        S[(4 + k) * 256 + r[e!]!]!) >>> 0,
    );
  }
}

/** The 32 subkey words (Km1..16, then Kr1..16 before masking) of a 16-byte key. */
function schedule(S: Uint32Array, key: Uint8Array): number[] {
  const x = Uint8Array.from(key.subarray(0, 16));
  const z = new Uint8Array(16);
  const out: number[] = [];
  for (let half = 0; half < 2; half++) {
    mix(S, x, z, Z_FROM_X);
    extract(S, z, K_ROUNDS[0]!, out);
    mix(S, z, x, X_FROM_Z);
    extract(S, x, K_ROUNDS[1]!, out);
    mix(S, x, z, Z_FROM_X);
    extract(S, z, K_ROUNDS[2]!, out);
    mix(S, z, x, X_FROM_Z);
    extract(S, x, K_ROUNDS[3]!, out);
  }
  return out;
}

/** A keyed CAST-128 block encryptor (key ≥ 16 bytes; the first 16 are used). */
export function cast5Block(key: Uint8Array): BlockFn {
  const S = sboxes();
  const k = schedule(S, key);
  const km = Uint32Array.from(k.slice(0, 16));
  const kr = Uint8Array.from(k.slice(16), (v) => v & 31);
  const rot = (v: number, n: number) => (v << n) | (v >>> (32 - n));
  return (src, so, dst, dOff) => {
    let l = ((src[so]! << 24) | (src[so + 1]! << 16) | (src[so + 2]! << 8) | src[so + 3]!) >>> 0;
    let r = ((src[so + 4]! << 24) | (src[so + 5]! << 16) | (src[so + 6]! << 8) | src[so + 7]!) >>>
      0;
    for (let i = 0; i < 16; i++) {
      let I: number;
      let f: number;
      // Rounds cycle through the three round-function types of RFC 2144 §2.2.
      switch (i % 3) {
        case 0:
          I = rot((km[i]! + r) >>> 0, kr[i]!);
          f = ((S[I >>> 24]! ^ S[256 + ((I >>> 16) & 255)]!) - S[512 + ((I >>> 8) & 255)]! +
            S[768 + (I & 255)]!) >>> 0;
          break;
        case 1:
          I = rot(km[i]! ^ r, kr[i]!);
          f = ((S[I >>> 24]! - S[256 + ((I >>> 16) & 255)]! + S[512 + ((I >>> 8) & 255)]!) ^
            S[768 + (I & 255)]!) >>> 0;
          break;
        default:
          I = rot((km[i]! - r) >>> 0, kr[i]!);
          f = (((S[I >>> 24]! + S[256 + ((I >>> 16) & 255)]!) ^ S[512 + ((I >>> 8) & 255)]!) -
            S[768 + (I & 255)]!) >>> 0;
      }
      const t = (l ^ f) >>> 0;
      l = r;
      r = t;
    }
    // Output is R16 || L16.
    dst[dOff] = r >>> 24;
    dst[dOff + 1] = r >>> 16;
    dst[dOff + 2] = r >>> 8;
    dst[dOff + 3] = r;
    dst[dOff + 4] = l >>> 24;
    dst[dOff + 5] = l >>> 16;
    dst[dOff + 6] = l >>> 8;
    dst[dOff + 7] = l;
  };
}
