/**
 * The SOCKS5 address form `ATYP ADDR PORT` (1 = IPv4, 3 = domain, 4 = IPv6; port big-endian),
 * shared by socks5, GOST's relay protocol, UDP-over-TCP frames and Shadowsocks.
 * @module
 */
import { formatIp } from "../core/ip.ts";
import { isIPv4, isIPv6, joinHostPort, splitHostPort } from "../core/addr.ts";
import type { BufReader } from "../core/bufio.ts";
import { ProtocolError } from "../core/errors.ts";

export const ATYP_IPV4 = 1;
export const ATYP_DOMAIN = 3;
export const ATYP_IPV6 = 4;

/** Parses an IPv6 literal into 16 bytes. */
export function ipv6Bytes(s: string): Uint8Array {
  let text = s;
  const out = new Uint8Array(16);
  // Embedded IPv4 tail (::ffff:1.2.3.4)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (v4) {
    tail = v4[1]!.split(".").map(Number);
    const p = tail;
    text = text.slice(0, -v4[1]!.length) + ((p[0]! << 8) | p[1]!).toString(16) + ":" +
      ((p[2]! << 8) | p[3]!).toString(16);
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const hs = head ? head.split(":") : [];
  const rs = rest !== undefined && rest !== "" ? rest.split(":") : [];
  if (rest === undefined && hs.length !== 8) throw new ProtocolError(`bad IPv6 address ${s}`);
  const groups = [...hs, ...Array(8 - hs.length - rs.length).fill("0"), ...rs];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    if (Number.isNaN(v) || v > 0xffff) throw new ProtocolError(`bad IPv6 address ${s}`);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Formats 16 bytes as an IPv6 literal (longest zero run compressed). */
export function ipv6Text(b: Uint8Array): string {
  return formatIp(b.subarray(0, 16));
}

/** Encodes `host:port` in SOCKS5 address form (empty host ⇒ 0.0.0.0). */
export function encodeSocksAddr(host: string, port: number): Uint8Array {
  let body: Uint8Array;
  if (host === "" || isIPv4(host)) {
    const parts = (host || "0.0.0.0").split(".").map(Number);
    body = new Uint8Array([ATYP_IPV4, ...parts]);
  } else if (isIPv6(host)) {
    body = new Uint8Array(17);
    body[0] = ATYP_IPV6;
    body.set(ipv6Bytes(host), 1);
  } else {
    const name = new TextEncoder().encode(host);
    if (name.length > 255) throw new ProtocolError(`domain name too long: ${host.slice(0, 40)}…`);
    body = new Uint8Array(2 + name.length);
    body[0] = ATYP_DOMAIN;
    body[1] = name.length;
    body.set(name, 2);
  }
  const out = new Uint8Array(body.length + 2);
  out.set(body);
  out[body.length] = port >> 8;
  out[body.length + 1] = port & 0xff;
  return out;
}

/** Encodes an address string `host:port`. */
export function encodeSocksAddrString(addr: string): Uint8Array {
  const { host, port } = splitHostPort(addr);
  return encodeSocksAddr(host, port);
}

/** Reads a SOCKS5 address from a stream; returns `host:port`. */
export async function readSocksAddr(br: BufReader): Promise<string> {
  const atyp = await br.readByte();
  let host: string;
  switch (atyp) {
    case ATYP_IPV4:
      host = [...(await br.readN(4))].join(".");
      break;
    case ATYP_IPV6:
      host = ipv6Text(await br.readN(16));
      break;
    case ATYP_DOMAIN: {
      const n = await br.readByte();
      host = new TextDecoder().decode(await br.readN(n));
      break;
    }
    default:
      throw new ProtocolError(`bad address type ${atyp}`);
  }
  return joinHostPort(host, await br.readU16());
}

/** Parses a SOCKS5 address at `off` in `buf`; returns it and the offset after it. */
export function parseSocksAddr(buf: Uint8Array, off: number): { addr: string; next: number } {
  const atyp = buf[off];
  let host: string;
  let p = off + 1;
  if (atyp === ATYP_IPV4) {
    if (buf.length < p + 6) throw new ProtocolError("short IPv4 address");
    host = `${buf[p]}.${buf[p + 1]}.${buf[p + 2]}.${buf[p + 3]}`;
    p += 4;
  } else if (atyp === ATYP_IPV6) {
    if (buf.length < p + 18) throw new ProtocolError("short IPv6 address");
    host = ipv6Text(buf.subarray(p, p + 16));
    p += 16;
  } else if (atyp === ATYP_DOMAIN) {
    const n = buf[p];
    if (n === undefined || buf.length < p + 1 + n + 2) {
      throw new ProtocolError("short domain address");
    }
    host = new TextDecoder().decode(buf.subarray(p + 1, p + 1 + n));
    p += 1 + n;
  } else {
    throw new ProtocolError(`bad address type ${atyp}`);
  }
  const port = (buf[p]! << 8) | buf[p + 1]!;
  return { addr: joinHostPort(host, port), next: p + 2 };
}
