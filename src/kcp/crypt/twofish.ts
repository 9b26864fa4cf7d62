/**
 * Twofish (Schneier et al. 1998), encryption only, 256-bit key, as kcp-go uses it. The q0/q1
 * byte permutations are built from the specification's 4-bit tables; MDS and RS multiplications
 * run over GF(2^8) with the specification's polynomials (0x169 and 0x14D).
 * @module
 */

const Q_T: number[][][] = [
  [
    [0x8, 0x1, 0x7, 0xd, 0x6, 0xf, 0x3, 0x2, 0x0, 0xb, 0x5, 0x9, 0xe, 0xc, 0xa, 0x4],
    [0xe, 0xc, 0xb, 0x8, 0x1, 0x2, 0x3, 0x5, 0xf, 0x4, 0xa, 0x6, 0x7, 0x0, 0x9, 0xd],
    [0xb, 0xa, 0x5, 0xe, 0x6, 0xd, 0x9, 0x0, 0xc, 0x8, 0xf, 0x3, 0x2, 0x4, 0x7, 0x1],
    [0xd, 0x7, 0xf, 0x4, 0x1, 0x2, 0x6, 0xe, 0x9, 0xb, 0x3, 0x0, 0x8, 0x5, 0xc, 0xa],
  ],
  [
    [0x2, 0x8, 0xb, 0xd, 0xf, 0x7, 0x6, 0xe, 0x3, 0x1, 0x9, 0x4, 0x0, 0xa, 0xc, 0x5],
    [0x1, 0xe, 0x2, 0xb, 0x4, 0xc, 0x3, 0x7, 0x6, 0xd, 0xa, 0x5, 0xf, 0x9, 0x0, 0x8],
    [0x4, 0xc, 0x7, 0x5, 0x1, 0x6, 0x9, 0xa, 0x0, 0xe, 0xd, 0x8, 0x2, 0xb, 0x3, 0xf],
    [0xb, 0x9, 0x5, 0x1, 0xc, 0x3, 0xd, 0xe, 0x6, 0x4, 0x7, 0xf, 0x2, 0x0, 0x8, 0xa],
  ],
];

const ror4 = (x: number, n: number) => ((x >>> n) | (x << (4 - n))) & 0xf;

function buildQ(t: number[][]): Uint8Array {
  const q = new Uint8Array(256);
  for (let x = 0; x < 256; x++) {
    let a = x >>> 4, b = x & 0xf;
    let a1 = a ^ b, b1 = a ^ ror4(b, 1) ^ ((8 * a) & 0xf);
    a = t[0]![a1]!, b = t[1]![b1]!;
    a1 = a ^ b, b1 = a ^ ror4(b, 1) ^ ((8 * a) & 0xf);
    a = t[2]![a1]!, b = t[3]![b1]!;
    q[x] = (b << 4) | a;
  }
  return q;
}

const Q0 = buildQ(Q_T[0]!);
const Q1 = buildQ(Q_T[1]!);

function gfMul(a: number, b: number, poly: number): number {
  let r = 0;
  while (b) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= poly;
    b >>>= 1;
  }
  return r & 0xff;
}

const MDS = [
  [0x01, 0xef, 0x5b, 0x5b],
  [0x5b, 0xef, 0xef, 0x01],
  [0xef, 0x5b, 0x01, 0xef],
  [0xef, 0x01, 0xef, 0x5b],
];
const RS = [
  [0x01, 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e],
  [0xa4, 0x56, 0x82, 0xf3, 0x1e, 0xc6, 0x68, 0xe5],
  [0x02, 0xa1, 0xfc, 0xc1, 0x47, 0xae, 0x3d, 0x19],
  [0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e, 0x03],
];

/** MDS multiply of a byte column; returns a little-endian u32. */
function mds(y: number[]): number {
  let out = 0;
  for (let i = 0; i < 4; i++) {
    let v = 0;
    for (let j = 0; j < 4; j++) v ^= gfMul(MDS[i]![j]!, y[j]!, 0x169);
    out |= v << (8 * i);
  }
  return out >>> 0;
}

const le = (b: Uint8Array, o: number) =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const rol = (x: number, n: number) => ((x << n) | (x >>> (32 - n))) >>> 0;

/** h(X, L) for k = 4 key words (256-bit key). */
function h(x: number, l: number[]): number {
  let y = [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];
  const k = l.length;
  const b = (w: number, i: number) => (w >>> (8 * i)) & 0xff;
  if (k === 4) {
    y = [
      Q1[y[0]!]! ^ b(l[3]!, 0),
      Q0[y[1]!]! ^ b(l[3]!, 1),
      Q0[y[2]!]! ^ b(l[3]!, 2),
      Q1[y[3]!]! ^ b(l[3]!, 3),
    ];
  }
  if (k >= 3) {
    y = [
      Q1[y[0]!]! ^ b(l[2]!, 0),
      Q1[y[1]!]! ^ b(l[2]!, 1),
      Q0[y[2]!]! ^ b(l[2]!, 2),
      Q0[y[3]!]! ^ b(l[2]!, 3),
    ];
  }
  y = [
    Q1[Q0[Q0[y[0]!]! ^ b(l[1]!, 0)]! ^ b(l[0]!, 0)]!,
    Q0[Q0[Q1[y[1]!]! ^ b(l[1]!, 1)]! ^ b(l[0]!, 1)]!,
    Q1[Q1[Q0[y[2]!]! ^ b(l[1]!, 2)]! ^ b(l[0]!, 2)]!,
    Q0[Q1[Q1[y[3]!]! ^ b(l[1]!, 3)]! ^ b(l[0]!, 3)]!,
  ];
  return mds(y);
}

/** A keyed Twofish block encryptor (16-byte blocks). */
export function twofishBlock(key: Uint8Array) {
  const k = key.length / 8;
  const me: number[] = [], mo: number[] = [], s: number[] = [];
  for (let i = 0; i < k; i++) {
    me.push(le(key, 8 * i));
    mo.push(le(key, 8 * i + 4));
    let v = 0;
    for (let r = 0; r < 4; r++) {
      let x = 0;
      for (let j = 0; j < 8; j++) x ^= gfMul(RS[r]![j]!, key[8 * i + j]!, 0x14d);
      v |= x << (8 * r);
    }
    s.unshift(v >>> 0); // S is used in reverse order
  }
  const K = new Uint32Array(40);
  const rho = 0x01010101;
  for (let i = 0; i < 20; i++) {
    const a = h(Math.imul(2 * i, rho) >>> 0, me);
    const b = rol(h(Math.imul(2 * i + 1, rho) >>> 0, mo), 8);
    K[2 * i] = (a + b) >>> 0;
    K[2 * i + 1] = rol((a + 2 * b) >>> 0, 9);
  }
  // Key-dependent S-boxes folded into four 256-entry tables: g(X) = T0[x0]^T1[x1]^T2[x2]^T3[x3].
  const T = [
    new Uint32Array(256),
    new Uint32Array(256),
    new Uint32Array(256),
    new Uint32Array(256),
  ];
  for (let x = 0; x < 256; x++) {
    for (let i = 0; i < 4; i++) T[i]![x] = gByte(x, i, s);
  }
  const g = (x: number) =>
    (T[0]![x & 0xff]! ^ T[1]![(x >>> 8) & 0xff]! ^ T[2]![(x >>> 16) & 0xff]! ^ T[3]![x >>> 24]!) >>>
    0;
  return (src: Uint8Array, so: number, dst: Uint8Array, dOff: number): void => {
    let r0 = le(src, so) ^ K[0]!,
      r1 = le(src, so + 4) ^ K[1]!,
      r2 = le(src, so + 8) ^ K[2]!,
      r3 = le(src, so + 12) ^ K[3]!;
    for (let r = 0; r < 16; r++) {
      const t0 = g(r0 >>> 0);
      const t1 = g(rol(r1 >>> 0, 8));
      const f0 = (t0 + t1 + K[2 * r + 8]!) >>> 0;
      const f1 = (t0 + 2 * t1 + K[2 * r + 9]!) >>> 0;
      const n2 = (((r2 ^ f0) >>> 1) | ((r2 ^ f0) << 31)) >>> 0;
      const n3 = (rol(r3 >>> 0, 1) ^ f1) >>> 0;
      r2 = r0, r3 = r1, r0 = n2, r1 = n3;
    }
    const out = [r2 ^ K[4]!, r3 ^ K[5]!, r0 ^ K[6]!, r1 ^ K[7]!];
    for (let i = 0; i < 4; i++) {
      const v = out[i]! >>> 0;
      dst[dOff + 4 * i] = v,
        dst[dOff + 4 * i + 1] = v >>> 8,
        dst[dOff + 4 * i + 2] = v >>> 16,
        dst[dOff + 4 * i + 3] = v >>> 24;
    }
  };
}

/** Per byte position: the q of the k=4 stage, of the k=3 stage, then inner, middle, outer. */
const POS: Uint8Array[][] = [
  [Q1, Q1, Q0, Q0, Q1],
  [Q0, Q1, Q1, Q0, Q0],
  [Q0, Q0, Q0, Q1, Q1],
  [Q1, Q0, Q1, Q1, Q0],
];

/** g's contribution of byte position `i` holding `x`: the keyed q-cascade, then MDS. */
function gByte(x: number, i: number, s: number[]): number {
  const [a, b2, inner, middle, outer] = POS[i]!;
  const byte = (w: number) => (w >>> (8 * i)) & 0xff;
  let y = x;
  if (s.length === 4) y = a![y]! ^ byte(s[3]!);
  if (s.length >= 3) y = b2![y]! ^ byte(s[2]!);
  y = outer![middle![inner![y]! ^ byte(s[1]!)]! ^ byte(s[0]!)]!;
  const col = [0, 0, 0, 0];
  col[i] = y;
  return mds(col);
}
