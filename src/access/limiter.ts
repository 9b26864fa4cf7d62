/**
 * GOST's limiters (docs/access-control.md):
 * - traffic (`limiter`): token buckets in bytes per second, `in` = client → Burrow, `out` =
 *   Burrow → client. Lines `$ in [out [burst]]` (the whole service), `$$ ...` (each connection),
 *   `IP ...` (all connections of that IP share one bucket), `CIDR ...` (one bucket per IP inside).
 * - conn (`climiter`): concurrent connections, `$ N` (service), `$$ N` (default per IP), IP, CIDR.
 * - rate (`rlimiter`): new connections per second, same keys.
 * A service without limiters gets no wrapper at all, so its copy path is unchanged.
 * @module
 */
import { type Conn, WrappedConn } from "../core/conn.ts";
import { ClosedError, ConfigError } from "../core/errors.ts";
import { Cidr, type IpBytes, parseIp, splitHostPortLoose } from "../core/ip.ts";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1 << 20,
  mb: 1 << 20,
  mib: 1 << 20,
  g: 1 << 30,
  gb: 1 << 30,
  gib: 1 << 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
};

/**
 * A byte rate: `100MB` (base 2, as GOST: 1 MB = 1 MiB), `1.5KB`, `512` (bytes). Units are read
 * case-insensitively (GOST silently treats `1mb` as unlimited; Burrow reads it as 1 MiB).
 */
export function parseBytes(text: string, path: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new ConfigError(
      path,
      `expected a size such as 100MB or 512KB, got ${JSON.stringify(text)}`,
    );
  }
  return Math.floor(Number(m[1]) * unit);
}

/** A token bucket that starts full; `wait(n)` reserves `n` tokens and sleeps off any debt. */
export class TokenBucket {
  #tokens: number;
  #last = performance.now();

  constructor(readonly rate: number, readonly burst: number = rate) {
    this.#tokens = burst;
  }

  /** Milliseconds to wait before `n` (≤ burst) bytes may pass; the tokens are taken now. */
  reserve(n: number): number {
    const now = performance.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) * this.rate) / 1000);
    this.#last = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.rate;
  }
}

/** Waits until `n` bytes may pass every bucket (they are reserved in each); `signal` ends it. */
async function pass(
  buckets: readonly TokenBucket[],
  n: number,
  signal: AbortSignal,
): Promise<void> {
  let wait = 0;
  for (const b of buckets) wait = Math.max(wait, b.reserve(n));
  if (wait <= 0) return;
  signal.throwIfAborted();
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", stop);
    };
    const stop = () => (done(), reject(new ClosedError("limited conn closed")));
    const t = setTimeout(() => (done(), resolve()), wait);
    signal.addEventListener("abort", stop, { once: true });
  });
}

/** A conn whose reads (in) and writes (out) pass token buckets. */
export class LimitedConn extends WrappedConn {
  readonly #in: readonly TokenBucket[];
  readonly #out: readonly TokenBucket[];
  readonly #inChunk: number;
  readonly #outChunk: number;
  /** Closing the conn ends any wait for tokens, so shutdown never waits on a slow bucket. */
  readonly #closed = new AbortController();

  constructor(inner: Conn, inBuckets: readonly TokenBucket[], outBuckets: readonly TokenBucket[]) {
    super(inner);
    this.#in = inBuckets;
    this.#out = outBuckets;
    // One read or write never asks for more than the smallest burst, so it can always pass.
    this.#inChunk = Math.max(1, Math.min(...inBuckets.map((b) => b.burst)));
    this.#outChunk = Math.max(1, Math.min(...outBuckets.map((b) => b.burst)));
  }

  get datagram(): boolean | undefined {
    return this.inner.datagram;
  }

  override close(): void {
    this.#closed.abort();
    super.close();
  }

  override async read(p: Uint8Array): Promise<number | null> {
    if (this.#in.length === 0) return this.inner.read(p);
    const cap = this.inner.datagram ? p : p.subarray(0, Math.min(p.length, this.#inChunk));
    const n = await this.inner.read(cap);
    if (n !== null && n > 0) await pass(this.#in, Math.min(n, this.#inChunk), this.#closed.signal);
    return n;
  }

  override async write(p: Uint8Array): Promise<number> {
    if (this.#out.length === 0) return this.inner.write(p);
    if (this.inner.datagram) {
      await pass(this.#out, Math.min(p.length, this.#outChunk), this.#closed.signal);
      return this.inner.write(p);
    }
    for (let off = 0; off < p.length; off += this.#outChunk) {
      const part = p.subarray(off, Math.min(p.length, off + this.#outChunk));
      await pass(this.#out, part.length, this.#closed.signal);
      await this.inner.write(part);
    }
    return p.length;
  }
}

interface Limits {
  in: number;
  out: number;
  burst: number;
}

/** Keyed limit lines: `$`, `$$`, IPs and CIDRs (the broadest matching CIDR wins, as GOST). */
class KeyedLines<T> {
  service?: T;
  perConn?: T;
  readonly ips = new Map<string, T>();
  readonly cidrs: [Cidr, T][] = [];

  add(key: string, v: T, path: string): void {
    if (key === "$") this.service = v;
    else if (key === "$$") this.perConn = v;
    else {
      const ip = parseIp(key);
      if (ip) this.ips.set(ip.join("."), v);
      else {
        const c = Cidr.parse(key);
        if (!c) {
          throw new ConfigError(
            path,
            `expected $, $$, an IP or a CIDR, got ${JSON.stringify(key)}`,
          );
        }
        this.cidrs.push([c, v]);
        this.cidrs.sort((a, b) => a[0].bits - b[0].bits);
      }
    }
  }

  /** The IP/CIDR entry for a client, with the key its state is kept under. */
  forIp(ip: IpBytes | undefined): { key: string; v: T } | undefined {
    if (!ip) return undefined;
    const k = ip.join(".");
    const exact = this.ips.get(k);
    if (exact !== undefined) return { key: k, v: exact };
    const c = this.cidrs.find(([cidr]) => cidr.contains(ip));
    return c ? { key: k, v: c[1] } : undefined;
  }
}

function words(line: string): string[] {
  return line.replace(/\t/g, " ").trim().split(/ +/).filter((w) => w !== "");
}

function clientIp(addr: string): IpBytes | undefined {
  return parseIp(splitHostPortLoose(addr).host);
}

/** A service's traffic limiter. */
export class TrafficLimiter {
  #lines = new KeyedLines<Limits>();
  #service: { in?: TokenBucket; out?: TokenBucket } = {};
  /** Buckets shared by all connections of one IP (exact-IP and CIDR lines). */
  #perIp = new Map<string, { in?: TokenBucket; out?: TokenBucket }>();

  constructor(readonly path: string) {}

  /** Replaces the limit lines (keeps no per-IP state from before). */
  load(lines: readonly string[]): void {
    const next = new KeyedLines<Limits>();
    for (const [i, line] of lines.entries()) {
      const w = words(line);
      if (w.length === 0) continue;
      const p = `${this.path}.limits[${i}]`;
      if (w.length < 2) throw new ConfigError(p, `expected "<key> <in> [<out> [<burst>]]"`);
      const num = (s: string | undefined) => (s === undefined ? 0 : parseBytes(s, p));
      next.add(w[0]!, { in: num(w[1]), out: num(w[2]), burst: num(w[3]) }, p);
    }
    this.#lines = next;
    const s = next.service;
    this.#service = {
      in: s && s.in > 0 ? new TokenBucket(s.in, s.burst || s.in) : undefined,
      out: s && s.out > 0 ? new TokenBucket(s.out, s.burst || s.out) : undefined,
    };
    this.#perIp.clear();
  }

  /** Wraps a client conn in the buckets that apply to it, or returns it as it is. */
  wrap(conn: Conn, remote: string): Conn {
    const ins: TokenBucket[] = [];
    const outs: TokenBucket[] = [];
    const push = (pair: { in?: TokenBucket; out?: TokenBucket }) => {
      if (pair.in) ins.push(pair.in);
      if (pair.out) outs.push(pair.out);
    };
    push(this.#service);
    const c = this.#lines.perConn;
    if (c) {
      push({
        in: c.in > 0 ? new TokenBucket(c.in, c.burst || c.in) : undefined,
        out: c.out > 0 ? new TokenBucket(c.out, c.burst || c.out) : undefined,
      });
    }
    const hit = this.#lines.forIp(clientIp(remote));
    if (hit) {
      let pair = this.#perIp.get(hit.key);
      if (!pair) {
        const l = hit.v;
        pair = {
          in: l.in > 0 ? new TokenBucket(l.in, l.burst || l.in) : undefined,
          out: l.out > 0 ? new TokenBucket(l.out, l.burst || l.out) : undefined,
        };
        if (this.#perIp.size >= 65536) this.#perIp.clear(); // bounded under a flood of sources
        this.#perIp.set(hit.key, pair);
      }
      push(pair);
    }
    return ins.length + outs.length === 0 ? conn : new LimitedConn(conn, ins, outs);
  }
}

function countLines(lines: readonly string[], path: string, int: boolean): KeyedLines<number> {
  const out = new KeyedLines<number>();
  for (const [i, line] of lines.entries()) {
    const w = words(line);
    if (w.length === 0) continue;
    const p = `${path}.limits[${i}]`;
    const n = Number(w[1]);
    if (w.length < 2 || !(n > 0) || (int && !Number.isInteger(n))) {
      throw new ConfigError(
        p,
        `expected "<key> <${int ? "count" : "rate"}>", got ${JSON.stringify(line)}`,
      );
    }
    out.add(w[0]!, n, p);
  }
  return out;
}

/** Concurrent connections (`climiter`): `acquire` at accept, the returned release on close. */
export class ConnLimiter {
  #lines = new KeyedLines<number>();
  #total = 0;
  readonly #perIp = new Map<string, number>();

  constructor(readonly path: string) {}

  load(lines: readonly string[]): void {
    this.#lines = countLines(lines, this.path, true);
  }

  /** A release function, or undefined when the connection is over a limit. */
  acquire(remote: string): (() => void) | undefined {
    const ip = clientIp(remote);
    const key = ip?.join(".") ?? "";
    const cap = this.#lines.forIp(ip)?.v ?? (ip ? this.#lines.perConn : undefined);
    const now = this.#perIp.get(key) ?? 0;
    if (this.#lines.service !== undefined && this.#total >= this.#lines.service) return undefined;
    if (cap !== undefined && now >= cap) return undefined;
    this.#total++;
    this.#perIp.set(key, now + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#total--;
      const n = (this.#perIp.get(key) ?? 1) - 1;
      if (n <= 0) this.#perIp.delete(key);
      else this.#perIp.set(key, n);
    };
  }
}

/** New connections per second (`rlimiter`); burst is ⌊rate⌋ + 1, as GOST. */
export class RateLimiter {
  #lines = new KeyedLines<number>();
  #service?: TokenBucket;
  readonly #perIp = new Map<string, TokenBucket>();

  constructor(readonly path: string) {}

  load(lines: readonly string[]): void {
    this.#lines = countLines(lines, this.path, false);
    const s = this.#lines.service;
    this.#service = s ? new TokenBucket(s, Math.floor(s) + 1) : undefined;
    this.#perIp.clear();
  }

  /** Whether one more connection from `remote` may start now. */
  allow(remote: string): boolean {
    const ip = clientIp(remote);
    const hit = this.#lines.forIp(ip) ??
      (ip && this.#lines.perConn ? { key: ip.join("."), v: this.#lines.perConn } : undefined);
    let b: TokenBucket | undefined;
    if (hit) {
      b = this.#perIp.get(hit.key);
      if (!b) this.#perIp.set(hit.key, b = new TokenBucket(hit.v, Math.floor(hit.v) + 1));
      if (this.#perIp.size > 65536) this.#perIp.clear(); // bounded: a flood of sources resets
    }
    for (const bucket of [b, this.#service]) {
      if (!bucket) continue;
      if (bucket.reserve(1) > 0) {
        bucket.reserve(-1); // give the token back: a refused connection costs nothing
        return false;
      }
    }
    return true;
  }
}
