/**
 * The small ciphers kcptun offers, written out because Deno's node:crypto lacks them:
 * TEA (16 rounds, as kcp-go uses it), XTEA (64 rounds) and Salsa20/20. Big-endian words for
 * TEA/XTEA as in x/crypto.
 * @module
 */

function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function putBe32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

const DELTA = 0x9e3779b9;

/** TEA with `rounds` rounds (kcp-go: 16 = 8 cycles). */
export function teaBlock(key: Uint8Array, rounds = 16) {
  const k = [be32(key, 0), be32(key, 4), be32(key, 8), be32(key, 12)];
  return (src: Uint8Array, so: number, dst: Uint8Array, dOff: number): void => {
    let v0 = be32(src, so), v1 = be32(src, so + 4), sum = 0;
    for (let i = 0; i < rounds / 2; i++) {
      sum = (sum + DELTA) >>> 0;
      v0 = (v0 + ((((v1 << 4) + k[0]!) ^ (v1 + sum) ^ ((v1 >>> 5) + k[1]!)) >>> 0)) >>> 0;
      v1 = (v1 + ((((v0 << 4) + k[2]!) ^ (v0 + sum) ^ ((v0 >>> 5) + k[3]!)) >>> 0)) >>> 0;
    }
    putBe32(dst, dOff, v0);
    putBe32(dst, dOff + 4, v1);
  };
}

/** XTEA, 64 rounds. */
export function xteaBlock(key: Uint8Array) {
  const k = [be32(key, 0), be32(key, 4), be32(key, 8), be32(key, 12)];
  // x/crypto precomputes the per-round table the same way.
  const table = new Uint32Array(64);
  let sum = 0;
  for (let i = 0; i < 64;) {
    table[i++] = (sum + k[sum & 3]!) >>> 0;
    sum = (sum + DELTA) >>> 0;
    table[i++] = (sum + k[(sum >>> 11) & 3]!) >>> 0;
  }
  return (src: Uint8Array, so: number, dst: Uint8Array, dOff: number): void => {
    let v0 = be32(src, so), v1 = be32(src, so + 4);
    for (let i = 0; i < 64;) {
      v0 = (v0 + (((((v1 << 4) ^ (v1 >>> 5)) + v1) ^ table[i++]!) >>> 0)) >>> 0;
      v1 = (v1 + (((((v0 << 4) ^ (v0 >>> 5)) + v0) ^ table[i++]!) >>> 0)) >>> 0;
    }
    putBe32(dst, dOff, v0);
    putBe32(dst, dOff + 4, v1);
  };
}

function le32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** XORs `buf[8..]` with the Salsa20/20 keystream for `key` (32 B) and nonce `buf[0..8]`. */
export function salsa20Xor(buf: Uint8Array, key: Uint8Array): void {
  const s = new Uint32Array(16);
  const x = new Uint32Array(16);
  const c = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];
  const block = new Uint8Array(64);
  const bv = new DataView(block.buffer);
  let counter = 0;
  for (let off = 8; off < buf.length; off += 64) {
    s[0] = c[0]!;
    for (let i = 0; i < 4; i++) s[1 + i] = le32(key, 4 * i);
    s[5] = c[1]!;
    s[6] = le32(buf, 0);
    s[7] = le32(buf, 4);
    s[8] = counter >>> 0;
    s[9] = Math.floor(counter / 2 ** 32);
    s[10] = c[2]!;
    for (let i = 0; i < 4; i++) s[11 + i] = le32(key, 16 + 4 * i);
    s[15] = c[3]!;
    x.set(s);
    const r = (a: number, b: number) => ((a << b) | (a >>> (32 - b))) >>> 0;
    for (let i = 0; i < 10; i++) {
      x[4] ^= r(x[0]! + x[12]!, 7),
        x[8] ^= r(x[4]! + x[0]!, 9),
        x[12] ^= r(x[8]! + x[4]!, 13),
        x[0] ^= r(x[12]! + x[8]!, 18);
      x[9] ^= r(x[5]! + x[1]!, 7),
        x[13] ^= r(x[9]! + x[5]!, 9),
        x[1] ^= r(x[13]! + x[9]!, 13),
        x[5] ^= r(x[1]! + x[13]!, 18);
      x[14] ^= r(x[10]! + x[6]!, 7),
        x[2] ^= r(x[14]! + x[10]!, 9),
        x[6] ^= r(x[2]! + x[14]!, 13),
        x[10] ^= r(x[6]! + x[2]!, 18);
      x[3] ^= r(x[15]! + x[11]!, 7),
        x[7] ^= r(x[3]! + x[15]!, 9),
        x[11] ^= r(x[7]! + x[3]!, 13),
        x[15] ^= r(x[11]! + x[7]!, 18);
      x[1] ^= r(x[0]! + x[3]!, 7),
        x[2] ^= r(x[1]! + x[0]!, 9),
        x[3] ^= r(x[2]! + x[1]!, 13),
        x[0] ^= r(x[3]! + x[2]!, 18);
      x[6] ^= r(x[5]! + x[4]!, 7),
        x[7] ^= r(x[6]! + x[5]!, 9),
        x[4] ^= r(x[7]! + x[6]!, 13),
        x[5] ^= r(x[4]! + x[7]!, 18);
      x[11] ^= r(x[10]! + x[9]!, 7),
        x[8] ^= r(x[11]! + x[10]!, 9),
        x[9] ^= r(x[8]! + x[11]!, 13),
        x[10] ^= r(x[9]! + x[8]!, 18);
      x[12] ^= r(x[15]! + x[14]!, 7),
        x[13] ^= r(x[12]! + x[15]!, 9),
        x[14] ^= r(x[13]! + x[12]!, 13),
        x[15] ^= r(x[14]! + x[13]!, 18);
    }
    for (let i = 0; i < 16; i++) bv.setUint32(4 * i, (x[i]! + s[i]!) >>> 0, true);
    const n = Math.min(64, buf.length - off);
    for (let i = 0; i < n; i++) buf[off + i] ^= block[i]!;
    counter++;
  }
}
