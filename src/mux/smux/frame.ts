/**
 * smux frame format (docs/smux.md §1): `ver u8 | cmd u8 | length u16 LE | sid u32 LE` then
 * `length` payload bytes. UPD (v2) carries `consumed u32 LE | window u32 LE`.
 * @module
 */

export const HEADER_SIZE = 8;
export const CMD_SYN = 0;
export const CMD_FIN = 1;
export const CMD_PSH = 2;
export const CMD_NOP = 3;
export const CMD_UPD = 4;
export const UPD_SIZE = 8;

/** Writes a frame header at `off` in `buf`. */
export function putHeader(
  buf: Uint8Array,
  off: number,
  ver: number,
  cmd: number,
  length: number,
  sid: number,
): void {
  buf[off] = ver;
  buf[off + 1] = cmd;
  buf[off + 2] = length & 0xff;
  buf[off + 3] = length >>> 8;
  buf[off + 4] = sid & 0xff;
  buf[off + 5] = (sid >>> 8) & 0xff;
  buf[off + 6] = (sid >>> 16) & 0xff;
  buf[off + 7] = sid >>> 24;
}

/** A whole frame as bytes (control frames and tests; data frames are built in place). */
export function encodeFrame(
  ver: number,
  cmd: number,
  sid: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  putHeader(out, 0, ver, cmd, payload.length, sid);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** UPD payload: consumed, window (both u32 LE). */
export function encodeUpd(consumed: number, window: number): Uint8Array {
  const p = new Uint8Array(UPD_SIZE);
  const v = new DataView(p.buffer);
  v.setUint32(0, consumed >>> 0, true);
  v.setUint32(4, window >>> 0, true);
  return p;
}

export function readU16LE(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

export function readU32LE(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}
