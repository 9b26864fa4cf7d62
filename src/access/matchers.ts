/**
 * Address matchers with GOST's pattern rules (docs/access-control.md):
 * - {@link IpMatcher} (admission): exact IPs and CIDRs; the port is ignored.
 * - {@link AddrMatcher} (bypass): CIDRs, wildcards (`*.example.com`, `*` crosses dots), IPs and
 *   IP ranges (`10.0.0.1-10.0.0.9`, any port), and names with an optional port or port range:
 *   `example.com` is that name only, `.example.com` is the name and every subdomain.
 * @module
 */
import { Cidr, compareIp, type IpBytes, parseIp, splitHostPortLoose } from "../core/ip.ts";

/** Exact IPs and CIDR prefixes. */
export class IpMatcher {
  readonly #exact = new Set<string>();
  readonly #cidrs: Cidr[] = [];

  /** Adds an IP or CIDR pattern; false when it is neither. */
  add(pattern: string): boolean {
    const ip = parseIp(pattern);
    if (ip) {
      this.#exact.add(ip.join("."));
      return true;
    }
    const c = Cidr.parse(pattern);
    if (!c) return false;
    this.#cidrs.push(c);
    return true;
  }

  get size(): number {
    return this.#exact.size + this.#cidrs.length;
  }

  /** Matches an IP (text or bytes). */
  matchIp(ip: IpBytes): boolean {
    if (this.#exact.has(ip.join("."))) return true;
    return this.#cidrs.some((c) => c.contains(ip));
  }
}

/** Compiles a glob (`*`, `?`, `[abc]`, `[!a]`, `{a,b}`) to an anchored, case-insensitive RegExp. */
export function globToRegExp(glob: string): RegExp | undefined {
  let re = "";
  let depth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) return undefined;
      let body = glob.slice(i + 1, end);
      if (body.startsWith("!")) body = "^" + body.slice(1);
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else if (c === "{") (re += "(?:", depth++);
    else if (c === "}" && depth > 0) (re += ")", depth--);
    else if (c === "," && depth > 0) re += "|";
    else re += c.replace(/[.+^$()|\\/]/g, "\\$&");
  }
  if (depth !== 0) return undefined;
  try {
    return new RegExp(`^${re}$`, "i");
  } catch {
    return undefined;
  }
}

interface PortRange {
  lo: number;
  hi: number;
}

/** `443` or `8000-9000` → a range; missing or unparsable → any port. */
function portRange(text: string): PortRange {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) return { lo: 0, hi: 65535 };
  const lo = Number(m[1]);
  const hi = m[2] !== undefined ? Number(m[2]) : lo;
  return lo <= hi && hi <= 65535 ? { lo, hi } : { lo: 0, hi: 65535 };
}

/** Splits a pattern's optional `:port` / `:lo-hi` from its host. */
function patternHostPort(p: string): { host: string; ports: PortRange } {
  const { host, port } = splitHostPortLoose(p);
  return { host, ports: port === "" ? { lo: 0, hi: 65535 } : portRange(port) };
}

/** GOST bypass patterns. */
export class AddrMatcher {
  readonly #cidrs: Cidr[] = [];
  readonly #ranges: [IpBytes, IpBytes][] = [];
  readonly #names = new Map<string, PortRange[]>();
  readonly #globs: { re: RegExp; ports: PortRange }[] = [];
  #count = 0;

  constructor(patterns: Iterable<string> = []) {
    for (const p of patterns) this.add(p);
  }

  get size(): number {
    return this.#count;
  }

  /** Classifies one pattern in GOST's order: CIDR, wildcard, IP range, name[:port]. */
  add(pattern: string): void {
    const p = pattern.trim();
    if (p === "") return;
    this.#count++;
    const cidr = Cidr.parse(p);
    if (cidr) return void this.#cidrs.push(cidr);
    if (/[*?]/.test(p)) {
      const { host, ports } = patternHostPort(p);
      const re = globToRegExp(host.toLowerCase());
      if (re) return void this.#globs.push({ re, ports });
    }
    const dash = p.indexOf("-");
    const lo = parseIp(dash > 0 ? p.slice(0, dash) : p);
    if (lo) {
      const hi = dash > 0 ? parseIp(p.slice(dash + 1)) : lo;
      if (hi && hi.length === lo.length) return void this.#ranges.push([lo, hi]);
    }
    const { host, ports } = patternHostPort(p);
    const key = host.toLowerCase();
    const list = this.#names.get(key) ?? [];
    list.push(ports);
    this.#names.set(key, list);
  }

  /** Whether `addr` (`host:port`, `[v6]:port` or a bare host) matches any pattern. */
  match(addr: string): boolean {
    if (addr === "") return false;
    const { host: h, port: portText } = splitHostPortLoose(addr);
    const port = /^\d+$/.test(portText) ? Number(portText) : 0;
    const ip = parseIp(h);
    if (ip) {
      for (const [lo, hi] of this.#ranges) {
        if (lo.length === ip.length && compareIp(lo, ip) <= 0 && compareIp(ip, hi) <= 0) {
          return true;
        }
      }
    }
    const host = h.toLowerCase();
    const inPorts = (list?: PortRange[]) => list?.some((r) => r.lo <= port && port <= r.hi);
    if (this.#names.size > 0) {
      if (inPorts(this.#names.get(host)) || inPorts(this.#names.get("." + host))) return true;
      for (let i = host.indexOf("."); i >= 0; i = host.indexOf(".", i + 1)) {
        if (inPorts(this.#names.get(host.slice(i)))) return true;
      }
    }
    if (ip && this.#cidrs.some((c) => c.contains(ip))) return true;
    return this.#globs.some((g) => g.re.test(host) && g.ports.lo <= port && port <= g.ports.hi);
  }
}
