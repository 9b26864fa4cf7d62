/**
 * AES block encryption (FIPS-197) with 32-bit T-tables, for CFB's sequential encryption path:
 * Deno's node:crypto has no CFB, and one `update()` per 16-byte block runs at ~11 MB/s.
 * Only the forward cipher is needed (CFB decrypts with it too).
 * @module
 */

import { WASM_CFB_MAX, wasmCfbEncryptor } from "./aes_wasm.ts";

const SBOX = new Uint8Array(256);
// Int32Array, not Uint32Array: values ≥ 2^31 would leave V8's int32 fast path.
const T0 = new Int32Array(256);
const T1 = new Int32Array(256);
const T2 = new Int32Array(256);
const T3 = new Int32Array(256);

(function init() {
  // Build the S-box from the GF(2^8) inverse and the affine map.
  const exp = new Uint8Array(256);
  const log = new Uint8Array(256);
  let x = 1;
  for (let i = 0; i < 255; i++) {
    exp[i] = x;
    log[x] = i;
    x ^= (x << 1) ^ ((x & 0x80) ? 0x1b : 0);
    x &= 0xff;
  }
  for (let i = 0; i < 256; i++) {
    const inv = i === 0 ? 0 : exp[(255 - log[i]!) % 255]!;
    let s = inv;
    for (let k = 1; k < 5; k++) s ^= ((inv << k) | (inv >>> (8 - k))) & 0xff;
    SBOX[i] = s ^ 0x63;
  }
  for (let i = 0; i < 256; i++) {
    const s = SBOX[i]!;
    const s2 = ((s << 1) ^ ((s & 0x80) ? 0x1b : 0)) & 0xff;
    const s3 = s2 ^ s;
    const t = ((s2 << 24) | (s << 16) | (s << 8) | s3) >>> 0;
    T0[i] = t;
    T1[i] = ((t >>> 8) | (t << 24)) >>> 0;
    T2[i] = ((t >>> 16) | (t << 16)) >>> 0;
    T3[i] = ((t >>> 24) | (t << 8)) >>> 0;
  }
})();

/** An expanded AES encryption key. */
export class Aes {
  readonly #rk: Int32Array;
  readonly #rounds: number;
  readonly #st = new Int32Array(4);
  readonly #wasmCfb: ((buf: Uint8Array, iv: Uint8Array) => void) | null;

  /** `useWasm` false forces the JavaScript path (tests compare the two). */
  constructor(key: Uint8Array, useWasm = true) {
    const nk = key.length / 4;
    if (![4, 6, 8].includes(nk)) throw new RangeError("AES key must be 16, 24 or 32 bytes");
    this.#rounds = nk + 6;
    const total = 4 * (this.#rounds + 1);
    const w = new Uint32Array(total);
    for (let i = 0; i < nk; i++) {
      w[i] = ((key[4 * i]! << 24) | (key[4 * i + 1]! << 16) | (key[4 * i + 2]! << 8) |
        key[4 * i + 3]!) >>> 0;
    }
    let rcon = 1;
    for (let i = nk; i < total; i++) {
      let t = w[i - 1]!;
      if (i % nk === 0) {
        t = ((t << 8) | (t >>> 24)) >>> 0;
        t = ((SBOX[t >>> 24]! << 24) | (SBOX[(t >>> 16) & 0xff]! << 16) |
          (SBOX[(t >>> 8) & 0xff]! << 8) | SBOX[t & 0xff]!) >>> 0;
        t = (t ^ (rcon << 24)) >>> 0;
        rcon = ((rcon << 1) ^ ((rcon & 0x80) ? 0x1b : 0)) & 0xff;
      } else if (nk > 6 && i % nk === 4) {
        t = ((SBOX[t >>> 24]! << 24) | (SBOX[(t >>> 16) & 0xff]! << 16) |
          (SBOX[(t >>> 8) & 0xff]! << 8) | SBOX[t & 0xff]!) >>> 0;
      }
      w[i] = (w[i - nk]! ^ t) >>> 0;
    }
    this.#rk = new Int32Array(w.buffer);
    this.#wasmCfb = useWasm
      ? wasmCfbEncryptor([T0, T1, T2, T3], SBOX, this.#rk, this.#rounds)
      : null;
  }

  /** Encrypts the four big-endian words in `st` in place. */
  encryptWords(st: Int32Array): void {
    const rk = this.#rk;
    const t0 = T0, t1 = T1, t2 = T2, t3 = T3;
    let s0 = st[0]! ^ rk[0]!;
    let s1 = st[1]! ^ rk[1]!;
    let s2 = st[2]! ^ rk[2]!;
    let s3 = st[3]! ^ rk[3]!;
    let k = 4;
    for (let r = this.#rounds - 1; r > 0; r--) {
      const a0 = t0[s0 >>> 24]! ^ t1[(s1 >>> 16) & 0xff]! ^ t2[(s2 >>> 8) & 0xff]! ^
        t3[s3 & 0xff]! ^ rk[k]!;
      const a1 = t0[s1 >>> 24]! ^ t1[(s2 >>> 16) & 0xff]! ^ t2[(s3 >>> 8) & 0xff]! ^
        t3[s0 & 0xff]! ^ rk[k + 1]!;
      const a2 = t0[s2 >>> 24]! ^ t1[(s3 >>> 16) & 0xff]! ^ t2[(s0 >>> 8) & 0xff]! ^
        t3[s1 & 0xff]! ^ rk[k + 2]!;
      s3 = t0[s3 >>> 24]! ^ t1[(s0 >>> 16) & 0xff]! ^ t2[(s1 >>> 8) & 0xff]! ^
        t3[s2 & 0xff]! ^ rk[k + 3]!;
      s0 = a0;
      s1 = a1;
      s2 = a2;
      k += 4;
    }
    const S = SBOX;
    st[0] = ((S[s0 >>> 24]! << 24) | (S[(s1 >>> 16) & 0xff]! << 16) |
      (S[(s2 >>> 8) & 0xff]! << 8) | S[s3 & 0xff]!) ^ rk[k]!;
    st[1] = ((S[s1 >>> 24]! << 24) | (S[(s2 >>> 16) & 0xff]! << 16) |
      (S[(s3 >>> 8) & 0xff]! << 8) | S[s0 & 0xff]!) ^ rk[k + 1]!;
    st[2] = ((S[s2 >>> 24]! << 24) | (S[(s3 >>> 16) & 0xff]! << 16) |
      (S[(s0 >>> 8) & 0xff]! << 8) | S[s1 & 0xff]!) ^ rk[k + 2]!;
    st[3] = ((S[s3 >>> 24]! << 24) | (S[(s0 >>> 16) & 0xff]! << 16) |
      (S[(s1 >>> 8) & 0xff]! << 8) | S[s2 & 0xff]!) ^ rk[k + 3]!;
  }

  /** Encrypts the 16-byte block at `src[so..]` into `dst[do..]` (may overlap exactly). */
  encryptBlock(src: Uint8Array, so: number, dst: Uint8Array, dOff: number): void {
    const st = this.#st;
    for (let w = 0; w < 4; w++) {
      const o = so + 4 * w;
      st[w] = (src[o]! << 24) | (src[o + 1]! << 16) | (src[o + 2]! << 8) | src[o + 3]!;
    }
    this.encryptWords(st);
    for (let w = 0; w < 4; w++) {
      const v = st[w]!, o = dOff + 4 * w;
      dst[o] = v >>> 24;
      dst[o + 1] = v >>> 16;
      dst[o + 2] = v >>> 8;
      dst[o + 3] = v;
    }
  }

  /**
   * kcp-go's CFB encryption of `buf` in place with the 16-byte `iv`. Fused: each ciphertext
   * block stays in registers as the next cipher input instead of a round trip through bytes.
   */
  cfbEncrypt(buf: Uint8Array, iv: Uint8Array): void {
    if (this.#wasmCfb && buf.length <= WASM_CFB_MAX) return this.#wasmCfb(buf, iv);
    const st = this.#st;
    for (let w = 0; w < 4; w++) {
      st[w] = (iv[4 * w]! << 24) | (iv[4 * w + 1]! << 16) | (iv[4 * w + 2]! << 8) | iv[4 * w + 3]!;
    }
    this.encryptWords(st);
    const n = buf.length;
    let i = 0;
    for (; i + 16 <= n; i += 16) {
      for (let w = 0; w < 4; w++) {
        const o = i + 4 * w;
        const c = ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) ^
          st[w]!;
        buf[o] = c >>> 24;
        buf[o + 1] = c >>> 16;
        buf[o + 2] = c >>> 8;
        buf[o + 3] = c;
        st[w] = c;
      }
      if (i + 16 < n) this.encryptWords(st);
    }
    for (let j = 0; i + j < n; j++) buf[i + j] ^= (st[j >> 2]! >>> (24 - 8 * (j & 3))) & 0xff;
  }
}
