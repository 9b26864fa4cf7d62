/**
 * kcp-go's CFB (docs/kcp.md §6.3): full-block CFB over the whole datagram with a fixed IV,
 * no state between packets. Encryption is sequential; decryption can compute every keystream
 * block at once (E(IV), E(C0), E(C1), ...), so a bulk ECB is used when one exists.
 * @module
 */

/** kcp-go's `initialVector`. */
export const IV = new Uint8Array([
  0xa7,
  0x73,
  0x4f,
  0x9c,
  0x12,
  0xac,
  0x1b,
  0x01,
  0xa4,
  0x15,
  0xf2,
  0xc1,
  0xfc,
  0x78,
  0xe6,
  0x6b,
]);

/** Encrypts one block in place-able form: `dst[do..do+bs] = E(src[so..so+bs])`. */
export type BlockFn = (src: Uint8Array, so: number, dst: Uint8Array, dOff: number) => void;

/** Encrypts many whole blocks (ECB); optional fast path for decryption. */
export type BulkFn = (src: Uint8Array) => Uint8Array;

/** In-place CFB encryption of `buf`. */
export function cfbEncrypt(buf: Uint8Array, bs: number, enc: BlockFn, tmp: Uint8Array): void {
  enc(IV, 0, tmp, 0);
  const n = buf.length;
  let i = 0;
  for (; i + bs <= n; i += bs) {
    for (let j = 0; j < bs; j++) buf[i + j] ^= tmp[j]!;
    if (i + bs < n) enc(buf, i, tmp, 0);
  }
  for (let j = 0; i + j < n; j++) buf[i + j] ^= tmp[j]!;
}

/** In-place CFB decryption of `buf`. */
export function cfbDecrypt(
  buf: Uint8Array,
  bs: number,
  enc: BlockFn,
  tmp: Uint8Array,
  bulk?: BulkFn,
): void {
  const n = buf.length;
  if (n === 0) return;
  const blocks = Math.ceil(n / bs);
  if (bulk && blocks > 2) {
    // Keystream input: IV ‖ C[0 .. blocks-1) — every block depends only on ciphertext.
    const input = new Uint8Array(blocks * bs);
    input.set(IV.subarray(0, bs));
    input.set(buf.subarray(0, (blocks - 1) * bs), bs);
    const ks = bulk(input);
    for (let i = 0; i < n; i++) buf[i] ^= ks[i]!;
    return;
  }
  enc(IV, 0, tmp, 0);
  const next = new Uint8Array(bs);
  let i = 0;
  for (; i + bs <= n; i += bs) {
    if (i + bs < n) enc(buf, i, next, 0);
    for (let j = 0; j < bs; j++) buf[i + j] ^= tmp[j]!;
    tmp.set(next);
  }
  for (let j = 0; i + j < n; j++) buf[i + j] ^= tmp[j]!;
}
