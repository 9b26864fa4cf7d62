/**
 * GOST's relay protocol wire format (docs/gost-proxies.md §6.1–6.4; big-endian):
 * request `VER=1 CMD FEALEN(2) FEATURES`, response `VER=1 STATUS FEALEN(2) FEATURES`,
 * feature `TYPE(1) LEN(2) DATA`. Unknown feature types are skipped.
 * @module
 */
import type { BufReader } from "../../core/bufio.ts";
import { ProtocolError } from "../../core/errors.ts";
import { encodeSocksAddrString, parseSocksAddr } from "../../protocol/socks_addr.ts";

export const VERSION = 1;
export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const FLAG_UDP = 0x80;

export const FEATURE_USER_AUTH = 0x01;
export const FEATURE_ADDR = 0x02;
export const FEATURE_TUNNEL = 0x03;
export const FEATURE_NETWORK = 0x04;

export const NETWORK_TCP = 0;
export const NETWORK_UDP = 1;

export const STATUS = {
  ok: 0,
  badRequest: 1,
  unauthorized: 2,
  forbidden: 3,
  timeout: 4,
  serviceUnavailable: 5,
  hostUnreachable: 6,
  networkUnreachable: 7,
  internalServerError: 8,
} as const;

const STATUS_TEXT = [
  "OK",
  "Bad Request",
  "Unauthorized",
  "Forbidden",
  "Timeout",
  "Service Unavailable",
  "Host Unreachable",
  "Network Unreachable",
  "Internal Server Error",
];

export function statusText(s: number): string {
  return STATUS_TEXT[s] ?? `status ${s}`;
}

export interface Feature {
  type: number;
  data: Uint8Array;
}

/** A decoded request or response. */
export interface RelayMessage {
  /** CMD/FLAGS byte of a request, STATUS of a response. */
  code: number;
  features: Feature[];
}

/** One feature: `TYPE(1) LEN(2) DATA`. */
export function feature(type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + data.length);
  out[0] = type;
  out[1] = data.length >> 8;
  out[2] = data.length & 0xff;
  out.set(data, 3);
  return out;
}

export function userAuthFeature(user: string, pass: string): Uint8Array {
  const u = new TextEncoder().encode(user);
  const p = new TextEncoder().encode(pass);
  if (u.length > 255 || p.length > 255) {
    throw new ProtocolError("relay: user or password longer than 255 bytes");
  }
  return feature(FEATURE_USER_AUTH, new Uint8Array([u.length, ...u, p.length, ...p]));
}

export function addrFeature(addr: string): Uint8Array {
  return feature(FEATURE_ADDR, encodeSocksAddrString(addr));
}

export function networkFeature(n: number): Uint8Array {
  return feature(FEATURE_NETWORK, new Uint8Array([n >> 8, n & 0xff]));
}

/** Encodes a request (code = CMD/FLAGS) or response (code = STATUS). */
export function encodeMessage(code: number, features: Uint8Array[]): Uint8Array {
  const len = features.reduce((s, f) => s + f.length, 0);
  if (len > 0xffff) throw new ProtocolError("relay: features too long");
  const out = new Uint8Array(4 + len);
  out.set([VERSION, code, len >> 8, len & 0xff]);
  let off = 4;
  for (const f of features) out.set(f, off), off += f.length;
  return out;
}

/** Reads a request or response head with its features. */
export async function readMessage(br: BufReader): Promise<RelayMessage> {
  const h = await br.readN(4);
  if (h[0] !== VERSION) throw new ProtocolError(`relay: bad version ${h[0]}`);
  const len = (h[2]! << 8) | h[3]!;
  const body = len > 0 ? await br.readN(len) : new Uint8Array(0);
  const features: Feature[] = [];
  for (let off = 0; off < body.length;) {
    if (off + 3 > body.length) throw new ProtocolError("relay: truncated feature");
    const type = body[off]!;
    const flen = (body[off + 1]! << 8) | body[off + 2]!;
    if (off + 3 + flen > body.length) throw new ProtocolError("relay: truncated feature");
    features.push({ type, data: body.subarray(off + 3, off + 3 + flen) });
    off += 3 + flen;
  }
  return { code: h[1]!, features };
}

/** Decoded request fields (last Addr wins; Network defaults to tcp; FUDP forces udp). */
export interface RelayRequest {
  cmd: number;
  udp: boolean;
  addr: string;
  /** Every Addr feature in order (tunnel requests carry source, then destination). */
  addrs: string[];
  /** The Tunnel feature's 20 bytes, if any. */
  tunnel?: Uint8Array;
  user?: string;
  pass?: string;
}

export function decodeRequest(m: RelayMessage): RelayRequest {
  const r: RelayRequest = {
    cmd: m.code & 0x0f,
    udp: (m.code & FLAG_UDP) !== 0,
    addr: "",
    addrs: [],
  };
  for (const f of m.features) {
    switch (f.type) {
      case FEATURE_USER_AUTH: {
        const d = f.data;
        const ul = d[0] ?? 0;
        const pl = d[1 + ul] ?? 0;
        if (d.length < 2 + ul + pl) throw new ProtocolError("relay: bad user auth feature");
        r.user = new TextDecoder().decode(d.subarray(1, 1 + ul));
        r.pass = new TextDecoder().decode(d.subarray(2 + ul, 2 + ul + pl));
        break;
      }
      case FEATURE_ADDR:
        r.addr = parseSocksAddr(f.data, 0).addr;
        r.addrs.push(r.addr);
        break;
      case FEATURE_TUNNEL:
        if (f.data.length === 20) r.tunnel = f.data.slice();
        break;
      case FEATURE_NETWORK:
        if (f.data.length >= 2 && ((f.data[0]! << 8) | f.data[1]!) === NETWORK_UDP) r.udp = true;
        break;
      default:
        // Unknown (e.g. relay v0.7 metadata): skipped, as newer GOST does.
    }
  }
  return r;
}
