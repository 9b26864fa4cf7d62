/**
 * RFC 6455 frames (docs/websocket.md §1): header encoding, masking, opcodes.
 * @module
 */

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** Header length for a payload of `n` bytes. */
export function headerSize(n: number, masked: boolean): number {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes a FIN frame header into `buf` at 0 and returns its length; with a mask key the key
 * follows the length (the caller masks the payload).
 */
export function putHeader(buf: Uint8Array, op: number, n: number, mask?: Uint8Array): number {
  buf[0] = 0x80 | op;
  const m = mask ? 0x80 : 0;
  let off: number;
  if (n < 126) {
    buf[1] = m | n;
    off = 2;
  } else if (n < 65536) {
    buf[1] = m | 126;
    buf[2] = n >>> 8;
    buf[3] = n & 0xff;
    off = 4;
  } else {
    buf[1] = m | 127;
    buf[2] =
      buf[3] =
      buf[4] =
      buf[5] =
        0;
    buf[6] = (n >>> 24) & 0xff;
    buf[7] = (n >>> 16) & 0xff;
    buf[8] = (n >>> 8) & 0xff;
    buf[9] = n & 0xff;
    off = 10;
  }
  if (mask) {
    buf.set(mask, off);
    off += 4;
  }
  return off;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** XORs `data` in place with the 4-byte `key`, starting at key position `pos`. */
export function mask(data: Uint8Array, key: Uint8Array, pos = 0): void {
  const n = data.length;
  let i = 0;
  if (LITTLE_ENDIAN && n >= 16) {
    // Bytes up to a 4-byte boundary, then whole words with the key rotated to match: payloads
    // sit after 6-, 8- or 14-byte headers, so aligned data is the exception, not the rule.
    const lead = (4 - (data.byteOffset & 3)) & 3;
    for (; i < lead; i++) data[i] ^= key[(pos + i) & 3]!;
    const p = pos + i;
    const k = key[p & 3]! | (key[(p + 1) & 3]! << 8) | (key[(p + 2) & 3]! << 16) |
      (key[(p + 3) & 3]! << 24);
    const words = new Int32Array(data.buffer, data.byteOffset + i, (n - i) >>> 2);
    for (let w = 0; w < words.length; w++) words[w] ^= k;
    i += words.length << 2;
  }
  for (; i < n; i++) data[i] ^= key[(pos + i) & 3]!;
}

/** A 4-byte mask key as one number (byte `i` in bits `8i..8i+7`), for {@link maskWord}. */
export function keyWord(key: Uint8Array, at = 0): number {
  return (key[at]! | (key[at + 1]! << 8) | (key[at + 2]! << 16) | (key[at + 3]! << 24)) >>> 0;
}

/**
 * {@link mask} with the key as a {@link keyWord}: a conn keeps the current frame's key in a field
 * instead of a 4-byte buffer of its own.
 */
export function maskWord(data: Uint8Array, word: number, pos = 0): void {
  const n = data.length;
  let i = 0;
  if (LITTLE_ENDIAN && n >= 16) {
    const lead = (4 - (data.byteOffset & 3)) & 3;
    for (; i < lead; i++) data[i] ^= word >>> (((pos + i) & 3) << 3);
    const s = ((pos + i) & 3) << 3;
    const k = s === 0 ? word | 0 : (word >>> s) | (word << (32 - s));
    const words = new Int32Array(data.buffer, data.byteOffset + i, (n - i) >>> 2);
    for (let w = 0; w < words.length; w++) words[w] ^= k;
    i += words.length << 2;
  }
  for (; i < n; i++) data[i] ^= word >>> (((pos + i) & 3) << 3);
}

/** A whole frame (control frames, tests). */
export function encodeFrame(op: number, payload: Uint8Array, maskKey?: Uint8Array): Uint8Array {
  const h = new Uint8Array(14);
  const hl = putHeader(h, op, payload.length, maskKey);
  const out = new Uint8Array(hl + payload.length);
  out.set(h.subarray(0, hl));
  out.set(payload, hl);
  if (maskKey) mask(out.subarray(hl), maskKey);
  return out;
}
