/**
 * AES-CFB encryption (kcp-go's sequential direction) as a small WebAssembly function, emitted
 * here as bytes: no build step, no binary blob. The same T-table algorithm as `aes.ts`, but in
 * little-endian word order (WebAssembly loads are little-endian) and with wasm's i32 arithmetic,
 * which runs about twice as fast as the JavaScript version. CFB decryption does not need it
 * (it is one bulk ECB call).
 *
 * Memory (one 64 KiB page): T0..T3 at 0, S-box at 4096, round keys at 4352, IV at 4608, the
 * datagram at 8192.
 * @module
 */

const SBOX_AT = 4096;
const RK_AT = 4352;
const IV_AT = 4608;
const BUF_AT = 8192;
/** Largest datagram the function takes in one call. */
export const WASM_CFB_MAX = 65536 - BUF_AT;

function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

// Opcodes (WebAssembly core spec §5.4).
const GET = 0x20, SET = 0x21, TEE = 0x22, CONST = 0x41;
const LOAD = 0x28, LOAD8U = 0x2d, STORE = 0x36, STORE8 = 0x3a;
const ADD = 0x6a, SUB = 0x6b, AND = 0x71, OR = 0x72, XOR = 0x73, SHL = 0x74, SHRU = 0x76;
const LTU = 0x49, LEU = 0x4d;
const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, ELSE = 0x05, END = 0x0b, BRIF = 0x0d, VOID = 0x40;

// Locals: params len, nr; then s0..s3 (state), a0..a3 (next state), k (round-key address),
// r (rounds left), i (offset in the datagram).
const LEN = 0, NR = 1, S = [2, 3, 4, 5], A = [6, 7, 8, 9], K = 10, R = 11, I = 12;

const get = (l: number) => [GET, l];
const set = (l: number) => [SET, l];
const c = (v: number) => [CONST, ...sleb(v)];
const load = (off: number) => [LOAD, 2, ...uleb(off)];
/** Byte `sh/8` of local `l`, as a table index (still unscaled). */
const byteOf = (l: number, sh: number) => [
  ...get(l),
  ...(sh ? [...c(sh), SHRU] : []),
  ...(sh !== 24 ? [...c(255), AND] : []),
];
/** Byte `sh/8` of local `l`, already scaled ×4 for a word table: one shift and one mask. */
const wordIndexOf = (l: number, sh: number) =>
  sh === 0 ? [...get(l), ...c(2), SHL, ...c(0x3fc), AND] : [
    ...get(l),
    ...c(sh - 2),
    SHRU,
    ...c(0x3fc),
    AND,
  ];

/** One middle round: A = round(S) ^ rk[k..k+16). */
function round(): number[] {
  const out: number[] = [];
  for (let j = 0; j < 4; j++) {
    for (let t = 0; t < 4; t++) {
      out.push(...wordIndexOf(S[(j + t) & 3]!, 8 * t), ...load(t * 1024));
      if (t > 0) out.push(XOR);
    }
    out.push(...get(K), ...load(4 * j), XOR, ...set(A[j]!));
  }
  for (let j = 0; j < 4; j++) out.push(...get(A[j]!), ...set(S[j]!));
  return out;
}

/** The last round (S-box, no MixColumns) into S. */
function lastRound(): number[] {
  const out: number[] = [];
  for (let j = 0; j < 4; j++) {
    for (let t = 0; t < 4; t++) {
      out.push(...byteOf(S[(j + t) & 3]!, 8 * t), LOAD8U, 0, ...uleb(SBOX_AT));
      if (t > 0) out.push(...c(8 * t), SHL, OR);
    }
    out.push(...get(K), ...load(4 * j), XOR, ...set(A[j]!));
  }
  for (let j = 0; j < 4; j++) out.push(...get(A[j]!), ...set(S[j]!));
  return out;
}

/** `cfb(len, nr)`: encrypts BUF[0..len) in place, IV and round keys already in memory. */
function body(): number[] {
  const code: number[] = [];
  for (let w = 0; w < 4; w++) code.push(...c(0), ...load(IV_AT + 4 * w), ...set(S[w]!));
  code.push(...c(0), ...set(I));
  code.push(BLOCK, VOID, LOOP, VOID);
  // Encrypt S: whitening, nr-1 middle rounds, the last round.
  for (let w = 0; w < 4; w++) {
    code.push(...get(S[w]!), ...c(0), ...load(RK_AT + 4 * w), XOR, ...set(S[w]!));
  }
  code.push(...c(RK_AT + 16), ...set(K), ...get(NR), ...c(1), SUB, ...set(R));
  code.push(LOOP, VOID, ...round(), ...get(K), ...c(16), ADD, ...set(K));
  code.push(...get(R), ...c(1), SUB, ...[TEE, R], BRIF, 0, END);
  code.push(...lastRound());
  // A whole block: C = P ^ keystream, and C is the next cipher input.
  code.push(...get(I), ...c(16), ADD, ...get(LEN), LEU, IF, VOID);
  for (let w = 0; w < 4; w++) {
    const off = BUF_AT + 4 * w;
    code.push(...get(I), ...get(I), ...load(off), ...get(S[w]!), XOR, TEE, S[w]!);
    code.push(STORE, 2, ...uleb(off));
  }
  code.push(...get(I), ...c(16), ADD, ...[TEE, I], ...get(LEN), LTU, BRIF, 1); // next block
  code.push(ELSE);
  // A partial last block: XOR the bytes that exist.
  for (let j = 0; j < 15; j++) {
    code.push(...get(I), ...c(j), ADD, ...get(LEN), LTU, IF, VOID);
    code.push(...get(I), ...get(I), LOAD8U, 0, ...uleb(BUF_AT + j));
    code.push(...byteOf(S[j >> 2]!, 8 * (j & 3)), XOR, STORE8, 0, ...uleb(BUF_AT + j), END);
  }
  code.push(END, END, END); // if, loop, block
  code.push(END); // function
  const locals = [1, ...uleb(11), 0x7f]; // one group: 11 × i32
  return [...uleb(locals.length + code.length), ...locals, ...code];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 0]), // type 0: (i32, i32) -> ()
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x00, 1]), // one memory, min 1 page
    ...section(7, [2, ...name("cfb"), 0x00, 0, ...name("mem"), 0x02, 0]),
    ...section(10, [1, ...body()]),
  ]);
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled module, or null where WebAssembly is unavailable. */
function wasmModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(moduleBytes());
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

const bswap = (v: number) =>
  ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);

/**
 * An AES-CFB encryptor for one key: `tables` are the big-endian T0..T3 (as `aes.ts` builds
 * them), `rk` the big-endian expanded key. Returns null when WebAssembly is unavailable.
 */
export function wasmCfbEncryptor(
  tables: readonly Int32Array[],
  sbox: Uint8Array,
  rk: Int32Array,
  rounds: number,
): ((buf: Uint8Array, iv: Uint8Array) => void) | null {
  const mod = wasmModule();
  if (!mod) return null;
  const inst = new WebAssembly.Instance(mod, {});
  const mem = inst.exports.mem as WebAssembly.Memory;
  const cfb = inst.exports.cfb as (len: number, nr: number) => void;
  const dv = new DataView(mem.buffer);
  for (let t = 0; t < 4; t++) {
    for (let i = 0; i < 256; i++) dv.setInt32(t * 1024 + 4 * i, bswap(tables[t]![i]!), true);
  }
  new Uint8Array(mem.buffer, SBOX_AT, 256).set(sbox);
  for (let i = 0; i < rk.length; i++) dv.setInt32(RK_AT + 4 * i, bswap(rk[i]!), true);
  const m8 = new Uint8Array(mem.buffer);
  return (buf, iv) => {
    m8.set(iv.subarray(0, 16), IV_AT);
    m8.set(buf, BUF_AT);
    cfb(buf.length, rounds);
    buf.set(m8.subarray(BUF_AT, BUF_AT + buf.length));
  };
}
