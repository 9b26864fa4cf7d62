/**
 * GOST's tun protocol (docs/tun.md §2): every IP packet is one UDP datagram, as is; the only
 * control message is the client's keep-alive `"GOST" ‖ passphrase(16) ‖ ip(16)×N` (IPv4 as
 * IPv4-mapped IPv6), which the server answers with `"GOST" ‖ the client's public IP(16)`. Also what
 * the `tun` listener hands the `tun` handler (found through wrapping conns with {@link tunLinkOf}).
 * @module
 */
import { attachedTo, type Conn, type NetAddr } from "../core/conn.ts";
import { type IpBytes, parseIp } from "../core/ip.ts";

const MAGIC = [0x47, 0x4f, 0x53, 0x54]; // "GOST"
/** Bytes of the keep-alive header (magic and passphrase) and of the server's reply. */
export const KEEPALIVE_HEAD = 20;

/** An IP address as the 16 bytes GOST puts on the wire (IPv4 mapped into IPv6). */
export function ip16(ip: IpBytes): Uint8Array {
  if (ip.length === 16) return ip;
  const out = new Uint8Array(16);
  out[10] = 0xff, out[11] = 0xff;
  out.set(ip, 12);
  return out;
}

/** A map key for an address given as 4 or 16 bytes (the same key for v4 and v4-mapped). */
export function ipKey(ip: IpBytes): string {
  const b = ip16(ip);
  let s = "";
  for (let i = 0; i < 16; i++) s += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}

function hasMagic(d: Uint8Array): boolean {
  return d[0] === MAGIC[0] && d[1] === MAGIC[1] && d[2] === MAGIC[2] && d[3] === MAGIC[3];
}

/** The client's keep-alive: its tun addresses, announced with the passphrase (≤ 16 bytes used). */
export function encodeKeepalive(passphrase: string, ips: IpBytes[]): Uint8Array {
  const out = new Uint8Array(KEEPALIVE_HEAD + 16 * ips.length);
  out.set(MAGIC);
  // Zero padded (GOST's own client may leave stale pool bytes here; its server trims zeros).
  out.set(new TextEncoder().encode(passphrase).subarray(0, 16), 4);
  ips.forEach((ip, i) => out.set(ip16(ip), KEEPALIVE_HEAD + 16 * i));
  return out;
}

/** A parsed keep-alive, or null if `d` is not one (or is malformed: GOST ignores those too). */
export function decodeKeepalive(d: Uint8Array): { passphrase: string; ips: IpBytes[] } | null {
  if (d.length <= KEEPALIVE_HEAD || !hasMagic(d)) return null;
  const body = d.length - KEEPALIVE_HEAD;
  if (body % 16 !== 0) return null;
  let end = KEEPALIVE_HEAD;
  while (end > 4 && d[end - 1] === 0) end--;
  const passphrase = new TextDecoder().decode(d.subarray(4, end));
  const ips: IpBytes[] = [];
  for (let o = KEEPALIVE_HEAD; o < d.length; o += 16) ips.push(d.slice(o, o + 16));
  return { passphrase, ips };
}

/** True when `d` starts with the magic (a keep-alive or a reply, never an IP packet). */
export function isControl(d: Uint8Array): boolean {
  return d.length >= 4 && hasMagic(d);
}

/** The server's reply to a keep-alive: the magic and the client's address as the server sees it. */
export function encodeReply(observed: string): Uint8Array {
  const out = new Uint8Array(KEEPALIVE_HEAD);
  out.set(MAGIC);
  const ip = parseIp(observed);
  if (ip) out.set(ip16(ip), 4);
  return out;
}

/** True when `d` is a server's reply (exactly 20 bytes with the magic, as GOST's client checks). */
export function isReply(d: Uint8Array): boolean {
  return d.length === KEEPALIVE_HEAD && hasMagic(d);
}

/** Destination address of an IPv4 or IPv6 packet, or null if it is neither. */
export function packetDst(p: Uint8Array): IpBytes | null {
  const v = p.length > 0 ? p[0]! >> 4 : 0;
  if (v === 4 && p.length >= 20) return p.subarray(16, 20);
  if (v === 6 && p.length >= 40) return p.subarray(24, 40);
  return null;
}

/** Source address of an IPv4 or IPv6 packet, or null if it is neither. */
export function packetSrc(p: Uint8Array): IpBytes | null {
  const v = p.length > 0 ? p[0]! >> 4 : 0;
  if (v === 4 && p.length >= 20) return p.subarray(12, 16);
  if (v === 6 && p.length >= 40) return p.subarray(8, 24);
  return null;
}

/** A route of the tun device: packets for `dst` go to the client whose tun address is `gw`. */
export interface TunRoute {
  /** Destination prefix, as configured (`10.0.0.0/8`). */
  dst: string;
  /** The gateway: a client's tun address (server side), the next hop (in the OS route). */
  gw?: string;
}

/** What the `tun` listener hands the `tun` handler along with the device. */
export interface TunLink {
  /** `tun` (IP packets) or `tap` (Ethernet frames). */
  mode: "tun" | "tap";
  /** The device's interface name. */
  name: string;
  /** The device's own addresses (the `net` key, without prefix lengths). */
  ips: IpBytes[];
  /** `route`/`routes`, in order (the first match wins, as in GOST). */
  routes: { prefix: { contains(ip: IpBytes): boolean }; gw?: IpBytes }[];
  /** The UDP socket on the listen address: a server's; null for a client (the service forwards). */
  socket: Deno.DatagramConn | null;
  /** The socket's address. */
  addr: NetAddr;
  /** The service's admission for one sender (the service's one conn is the device itself). */
  admit(peer: NetAddr): boolean;
}

/** The {@link TunLink} a tun listener's conn carries (looking through wrapping conns). */
export function tunLinkOf(conn: Conn): TunLink | undefined {
  return attachedTo<TunLink>(conn, "tunLink");
}
