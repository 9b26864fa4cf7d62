/**
 * IP address text ↔ bytes, and CIDR prefixes. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is unmapped to
 * IPv4, so a v4 rule matches a v4 client seen through a dual-stack socket.
 * @module
 */

/** 4 bytes (IPv4) or 16 bytes (IPv6). */
export type IpBytes = Uint8Array;

function parseV4(s: string): IpBytes | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): IpBytes | undefined {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let tail: IpBytes | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    tail = parseV4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const group = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    for (const g of h.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = group(halves[0]!);
  const rest = halves.length === 2 ? group(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const words = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...rest];
  const out = new Uint8Array(16);
  words.forEach((w, i) => (out[2 * i] = w >> 8, out[2 * i + 1] = w & 255));
  if (tail) out.set(tail, 12);
  return out;
}

/** Parses IPv4 or IPv6 text (brackets allowed); IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(text: string): IpBytes | undefined {
  let s = text.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (!s.includes(":")) return parseV4(s);
  const v6 = parseV6(s);
  if (!v6) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 255 && v6[11] === 255;
  return mapped ? v6.slice(12) : v6;
}

/** Formats IP bytes as text (IPv6 compressed, no brackets). */
export function formatIp(ip: IpBytes): string {
  if (ip.length === 4) return ip.join(".");
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((ip[i]! << 8) | ip[i + 1]!);
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** A CIDR prefix: `10.0.0.0/8`, `fd00::/8`. */
export class Cidr {
  constructor(readonly base: IpBytes, readonly bits: number) {}

  static parse(text: string): Cidr | undefined {
    const slash = text.indexOf("/");
    if (slash < 0) return undefined;
    const ip = parseIp(text.slice(0, slash));
    const bitsText = text.slice(slash + 1);
    if (!ip || !/^\d{1,3}$/.test(bitsText)) return undefined;
    let bits = Number(bitsText);
    // An IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) becomes its IPv4 prefix.
    if (ip.length === 4 && text.includes(":")) bits -= 96;
    if (bits < 0 || bits > ip.length * 8) return undefined;
    return new Cidr(ip, bits);
  }

  contains(ip: IpBytes): boolean {
    if (ip.length !== this.base.length) return false;
    const full = this.bits >> 3;
    for (let i = 0; i < full; i++) if (ip[i] !== this.base[i]) return false;
    const rem = this.bits & 7;
    if (rem === 0) return true;
    const mask = (0xff << (8 - rem)) & 0xff;
    return (ip[full]! & mask) === (this.base[full]! & mask);
  }
}

/** Compares two addresses of the same family (negative, zero, positive). */
export function compareIp(a: IpBytes, b: IpBytes): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/**
 * Splits `host:port`, `[v6]:port`, a bare host or a bare IPv6 into host and port text ("" if
 * none), never throwing: for matching addresses, not for dialing (see `addr.ts`).
 */
export function splitHostPortLoose(addr: string): { host: string; port: string } {
  if (addr.startsWith("[")) {
    const end = addr.indexOf("]");
    if (end > 0) {
      const rest = addr.slice(end + 1);
      return { host: addr.slice(1, end), port: rest.startsWith(":") ? rest.slice(1) : "" };
    }
  }
  const first = addr.indexOf(":");
  if (first < 0) return { host: addr, port: "" };
  if (first !== addr.lastIndexOf(":")) return { host: addr, port: "" }; // bare IPv6
  return { host: addr.slice(0, first), port: addr.slice(first + 1) };
}

/**
 * IPv4 in any inet_aton spelling the system resolver accepts (`127.1`, `2130706433`,
 * `0x7f.0.0.1`, `0177.0.0.1`) as a dotted quad; undefined for anything else. Rules that match
 * addresses must see the address that will be dialed.
 */
export function inetAton(host: string): string | undefined {
  const parts = host.split(".");
  if (parts.length < 1 || parts.length > 4) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]+$/i.test(p)) n = parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = parseInt(p, 8);
    else if (/^[1-9]\d*$/.test(p)) n = Number(p);
    else return undefined;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 2 ** (8 * (4 - nums.length))) return undefined;
  let v = last;
  nums.forEach((n, i) => (v += n * 2 ** (8 * (3 - i))));
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
}
