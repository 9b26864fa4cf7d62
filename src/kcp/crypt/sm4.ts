/**
 * SM4 (GB/T 32907-2016) block encryption, as kcp-go uses it (16-byte key, CFB). The S-box is
 * built from its algebraic definition — an affine map, inversion in GF(2^8) modulo
 * x^8+x^7+x^6+x^5+x^4+x^2+1, the affine map again — and checked against the standard's
 * known answer in the tests.
 * @module
 */

function gfMul(a: number, b: number): number {
  let r = 0;
  while (b) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x1f5;
    b >>= 1;
  }
  return r & 0xff;
}

/** Circulant affine map (matrix row 0xD3, constant 0xD3), most significant bit first. */
function affine(x: number): number {
  let y = 0;
  for (let i = 0; i < 8; i++) {
    let v = 0;
    for (let j = 0; j < 8; j++) v ^= ((0xd3 >> (7 - ((j - i + 8) % 8))) & 1) & ((x >> (7 - j)) & 1);
    y |= v << (7 - i);
  }
  return y ^ 0xd3;
}

let SBOX: Uint8Array | undefined;

function sbox(): Uint8Array {
  if (SBOX) return SBOX;
  const inv = new Uint8Array(256);
  for (let x = 1; x < 256; x++) {
    for (let y = 1; y < 256; y++) {
      if (gfMul(x, y) === 1) {
        inv[x] = y;
        break;
      }
    }
  }
  SBOX = new Uint8Array(256);
  for (let x = 0; x < 256; x++) SBOX[x] = affine(inv[affine(x)]!);
  return SBOX;
}

const FK = [0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc];
const rol = (x: number, n: number) => ((x << n) | (x >>> (32 - n))) >>> 0;
const be = (b: Uint8Array, o: number) =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/** A keyed SM4 block encryptor (16-byte blocks). */
export function sm4Block(key: Uint8Array) {
  const S = sbox();
  const tau = (a: number) =>
    ((S[a >>> 24]! << 24) | (S[(a >>> 16) & 0xff]! << 16) | (S[(a >>> 8) & 0xff]! << 8) |
      S[a & 0xff]!) >>> 0;
  const rk = new Uint32Array(32);
  const k = [be(key, 0) ^ FK[0]!, be(key, 4) ^ FK[1]!, be(key, 8) ^ FK[2]!, be(key, 12) ^ FK[3]!];
  for (let i = 0; i < 32; i++) {
    let ck = 0;
    for (let j = 0; j < 4; j++) ck = (ck << 8) | (((4 * i + j) * 7) & 0xff);
    const b = tau((k[1]! ^ k[2]! ^ k[3]! ^ ck) >>> 0);
    const next = (k[0]! ^ b ^ rol(b, 13) ^ rol(b, 23)) >>> 0;
    rk[i] = next;
    k.shift();
    k.push(next);
  }
  return (src: Uint8Array, so: number, dst: Uint8Array, dOff: number): void => {
    let x0 = be(src, so), x1 = be(src, so + 4), x2 = be(src, so + 8), x3 = be(src, so + 12);
    for (let i = 0; i < 32; i++) {
      const b = tau((x1 ^ x2 ^ x3 ^ rk[i]!) >>> 0);
      const x4 = (x0 ^ b ^ rol(b, 2) ^ rol(b, 10) ^ rol(b, 18) ^ rol(b, 24)) >>> 0;
      x0 = x1, x1 = x2, x2 = x3, x3 = x4;
    }
    for (const [i, v] of [x3, x2, x1, x0].entries()) {
      dst[dOff + 4 * i] = v >>> 24,
        dst[dOff + 4 * i + 1] = v >>> 16,
        dst[dOff + 4 * i + 2] = v >>> 8,
        dst[dOff + 4 * i + 3] = v;
    }
  };
}
