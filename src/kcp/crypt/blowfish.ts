/**
 * Blowfish (Schneier 1993) with a 32-byte key, as kcp-go uses it. The initial P-array and
 * S-boxes are the fractional hexadecimal digits of π, computed here once (Machin's formula in
 * BigInt) instead of being carried as tables.
 * @module
 */

let piWords: Uint32Array | undefined;

/** The first `n` 32-bit words of π's fractional part. */
function piFraction(n: number): Uint32Array {
  const bits = BigInt(32 * n + 64);
  const one = 1n << bits;
  // arctan(1/x) = Σ (-1)^k / ((2k+1) x^(2k+1)), in fixed point.
  const arctanInv = (x: bigint): bigint => {
    let sum = 0n;
    let term = one / x;
    const x2 = x * x;
    for (let k = 1n; term !== 0n; k += 2n) {
      sum += (k & 2n) ? -term / k : term / k;
      term /= x2;
    }
    return sum;
  };
  const pi = 16n * arctanInv(5n) - 4n * arctanInv(239n);
  const frac = (pi % one) >> 64n; // drop the guard bits
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Number((frac >> BigInt(32 * (n - 1 - i))) & 0xffffffffn);
  return out;
}

/** A keyed Blowfish block encryptor (8-byte blocks, big-endian halves). */
export function blowfishBlock(key: Uint8Array) {
  piWords ??= piFraction(18 + 1024);
  const P = piWords.slice(0, 18);
  const S = piWords.slice(18);
  const F = (x: number) =>
    ((((S[x >>> 24]! + S[256 + ((x >>> 16) & 0xff)]!) >>> 0) ^ S[512 + ((x >>> 8) & 0xff)]!) +
      S[768 + (x & 0xff)]!) >>> 0;
  const enc = (l: number, r: number): [number, number] => {
    for (let i = 0; i < 16; i += 2) {
      l = (l ^ P[i]!) >>> 0;
      r = (r ^ F(l)) >>> 0;
      r = (r ^ P[i + 1]!) >>> 0;
      l = (l ^ F(r)) >>> 0;
    }
    l = (l ^ P[16]!) >>> 0;
    r = (r ^ P[17]!) >>> 0;
    return [r, l];
  };
  // Key schedule: XOR the key (cycled) into P, then replace P and S by repeated encryption.
  let j = 0;
  for (let i = 0; i < 18; i++) {
    let d = 0;
    for (let k = 0; k < 4; k++) d = ((d << 8) | key[j++ % key.length]!) >>> 0;
    P[i] = (P[i]! ^ d) >>> 0;
  }
  let l = 0, r = 0;
  for (let i = 0; i < 18; i += 2) [l, r] = enc(l, r), P[i] = l, P[i + 1] = r;
  for (let i = 0; i < 1024; i += 2) [l, r] = enc(l, r), S[i] = l, S[i + 1] = r;
  return (src: Uint8Array, so: number, dst: Uint8Array, dOff: number): void => {
    const [a, b] = enc(
      ((src[so]! << 24) | (src[so + 1]! << 16) | (src[so + 2]! << 8) | src[so + 3]!) >>> 0,
      ((src[so + 4]! << 24) | (src[so + 5]! << 16) | (src[so + 6]! << 8) | src[so + 7]!) >>> 0,
    );
    dst[dOff] = a >>> 24, dst[dOff + 1] = a >>> 16, dst[dOff + 2] = a >>> 8, dst[dOff + 3] = a;
    dst[dOff + 4] = b >>> 24, dst[dOff + 5] = b >>> 16, dst[dOff + 6] = b >>> 8, dst[dOff + 7] = b;
  };
}
