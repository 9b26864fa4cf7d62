/**
 * The bundle wire format (docs/mtmux-wire.md): a join handshake on every link, then frames
 * `type u8 | flags u8 | length u16 BE | seq u32 BE | payload`.
 * @module
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import type { Conn } from "../core/conn.ts";
import { readFull } from "../core/conn.ts";
import { ProtocolError } from "../core/errors.ts";

export const MAGIC = new Uint8Array([0x42, 0x4e, 0x44, 0x4c]); // "BNDL"
export const VERSION = 1;
export const JOIN_SIZE = 4 + 1 + 1 + 2 + 2 + 16 + 16;
export const REPLY_SIZE = 5;
export const HEADER = 8;
export const MAX_PAYLOAD = 16 * 1024;

export const T_DATA = 1;
export const T_ACK = 2;
export const T_PING = 3;
export const T_PONG = 4;
export const T_FIN = 5;
export const T_LINK_CLOSE = 6;

export const ST_OK = 0;
export const ST_BAD_MAC = 1;
export const ST_FULL = 2;
export const ST_UNKNOWN = 3;
export const ST_VERSION = 4;

export interface Join {
  version: number;
  flags: number;
  linkIndex: number;
  linkCount: number;
  bundleId: Uint8Array;
  mac: Uint8Array;
}

/** Truncated HMAC-SHA256(key, bundleId ‖ linkIndex ‖ version). */
export function joinMac(
  key: string,
  bundleId: Uint8Array,
  linkIndex: number,
  version = VERSION,
): Uint8Array {
  const h = crypto.createHmac("sha256", Buffer.from(key));
  h.update(bundleId);
  h.update(new Uint8Array([linkIndex >> 8, linkIndex & 0xff, version]));
  return new Uint8Array(h.digest().subarray(0, 16));
}

export function encodeJoin(j: Join): Uint8Array {
  const b = new Uint8Array(JOIN_SIZE);
  b.set(MAGIC);
  b[4] = j.version;
  b[5] = j.flags;
  b[6] = j.linkIndex >> 8;
  b[7] = j.linkIndex & 0xff;
  b[8] = j.linkCount >> 8;
  b[9] = j.linkCount & 0xff;
  b.set(j.bundleId, 10);
  b.set(j.mac, 26);
  return b;
}

export async function readJoin(c: Conn): Promise<Join> {
  const b = await readFull(c, new Uint8Array(JOIN_SIZE));
  if (b[0] !== MAGIC[0] || b[1] !== MAGIC[1] || b[2] !== MAGIC[2] || b[3] !== MAGIC[3]) {
    throw new ProtocolError("mtmux: not a bundle link (bad magic)");
  }
  return {
    version: b[4]!,
    flags: b[5]!,
    linkIndex: (b[6]! << 8) | b[7]!,
    linkCount: (b[8]! << 8) | b[9]!,
    bundleId: b.slice(10, 26),
    mac: b.slice(26, 42),
  };
}

export function encodeReply(status: number, window: number): Uint8Array {
  return new Uint8Array([
    status,
    window >>> 24,
    (window >>> 16) & 0xff,
    (window >>> 8) & 0xff,
    window & 0xff,
  ]);
}

export function encodeFrame(
  type: number,
  seq: number,
  payload?: Uint8Array,
  flags = 0,
): Uint8Array {
  const n = payload?.length ?? 0;
  const b = new Uint8Array(HEADER + n);
  b[0] = type;
  b[1] = flags;
  b[2] = n >> 8;
  b[3] = n & 0xff;
  b[4] = seq >>> 24;
  b[5] = (seq >>> 16) & 0xff;
  b[6] = (seq >>> 8) & 0xff;
  b[7] = seq & 0xff;
  if (payload) b.set(payload, HEADER);
  return b;
}

/** Serial-number comparison for u32 sequence numbers. */
export function seqLess(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
