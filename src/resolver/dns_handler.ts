/**
 * The `dns` handler (docs/gost-proxies.md "dns"): a DNS proxy. Each message from the `dns`
 * listener is answered from the service's hosts table (A/AAAA), refused-as-empty by its bypass,
 * answered from the cache, or sent to an upstream from `dns=` (through the handler's chain) and
 * cached. Upstreams are tried from a rotating start, each failure moving to the next (GOST picks
 * one round-robin and gives up). A UDP reply larger than the client can take comes back with TC
 * set and no records, so the client asks again over TCP; an upstream's TC over UDP is retried over
 * TCP at once. Messages are decoded and encoded with the `dns-packet` npm package.
 * @module
 */
// @ts-types="@types/dns-packet"
import type * as dnsPacket from "dns-packet";
import { DNS_PACKET, packets } from "./dns_packet.ts";
import { Buffer } from "node:buffer";
import type { Conn } from "../core/conn.ts";
import { ConfigError, errorText } from "../core/errors.ts";
import { parseIp } from "../core/ip.ts";
import type { HandleContext, Handler, HandlerOptions, Network } from "../core/types.ts";
import type { Registries } from "../core/registry.ts";
import { exchangeOnce, type Parsed, parseNameserver } from "./exchange.ts";

/** DNS header flag bits (RFC 1035 §4.1.1); dns-packet keeps QR in `type`, the rest in `flags`. */
const TC = 0x0200, RD = 0x0100, RA = 0x0080, CD = 0x0010;

interface Upstream {
  addr: string;
  ns: Parsed;
}

interface Cached {
  reply: dnsPacket.DecodedPacket;
  /** Encoded size, for the cache's byte budget. */
  bytes: number;
  stored: number;
  expires: number;
}

/** The most entries the cache holds; the oldest go first. */
const CACHE_MAX = 10_000;
/** The most reply bytes the cache holds (big answers to chosen names cannot fill memory). */
const CACHE_BYTES = 8 << 20;

export class DnsHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #ups: Upstream[];
  readonly #ttlMs: number;
  readonly #timeout: number;
  readonly #readTimeout: number;
  readonly #bufferSize: number;
  readonly #async: boolean;
  readonly #clientIP?: string;
  readonly #cache = new Map<string, Cached>();
  #cacheBytes = 0;
  #next = 0;

  constructor(o: HandlerOptions) {
    this.#o = o;
    const md = o.metadata;
    const list = md.string("dns").split(",").map((s) => s.trim()).filter(Boolean);
    if (list.length === 0) {
      // GOST falls back to /etc/resolv.conf, then 8.8.8.8; a proxy that quietly asks a public
      // resolver is a surprise, so Burrow wants the upstreams named.
      throw new ConfigError(
        `${md.path}.dns`,
        "name the upstream nameservers (dns=udp://ip:53,...)",
      );
    }
    this.#ups = list.map((addr) => {
      try {
        return { addr, ns: parseNameserver(addr) };
      } catch (e) {
        throw new ConfigError(`${md.path}.dns`, errorText(e));
      }
    });
    this.#ttlMs = md.duration("ttl", 0);
    const t = md.duration("timeout", 5000);
    this.#timeout = t > 0 ? t : 5000;
    this.#readTimeout = md.duration("readTimeout", 0);
    const b = md.int("bufferSize", 4096);
    this.#bufferSize = b > 0 ? b : 4096;
    this.#async = md.bool("async");
    const ip = md.string("clientIP");
    if (ip) {
      if (!parseIp(ip)) throw new ConfigError(`${md.path}.clientIP`, `not an IP: ${ip}`);
      this.#clientIP = ip;
    }
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const buf = new Uint8Array(Math.max(this.#bufferSize, 512));
    // A stream (DNS over TCP) carries several messages; a UDP session ends after its reply.
    const udp = conn.localAddr.transport === "udp";
    const pending = new Set<Promise<void>>();
    for (;;) {
      const n = await this.#read(conn, buf);
      if (n === null) break;
      const query = buf.slice(0, n);
      if (udp) {
        // A resolver sends A and AAAA back to back from one port: answer each as it comes.
        const p = this.#answer(query, true, ctx).then((r) => {
          if (r) return conn.write(r).then(() => {});
        }).catch(() => {});
        pending.add(p);
        p.finally(() => pending.delete(p));
        continue;
      }
      const reply = await this.#answer(query, false, ctx);
      if (reply) await conn.write(reply);
      else return; // garbage on a stream: the framing can no longer be trusted
    }
    await Promise.all(pending);
  }

  #read(conn: Conn, buf: Uint8Array): Promise<number | null> {
    const r = conn.read(buf);
    if (this.#readTimeout <= 0) return r;
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      r,
      new Promise<null>((res) => {
        timer = setTimeout(() => (conn.close(), res(null)), this.#readTimeout);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** The reply bytes for one query, or null to send nothing (malformed, no question). */
  async #answer(query: Uint8Array, udp: boolean, ctx: HandleContext): Promise<Uint8Array | null> {
    let q: dnsPacket.DecodedPacket;
    try {
      q = packets().decode(Buffer.from(query));
    } catch (e) {
      ctx.log.debug(`dns: malformed query: ${errorText(e)}`);
      return null;
    }
    const question = q.questions?.[0];
    if (!question || q.type === "response") return null;
    const name = question.name.replace(/\.$/, "");
    const limit = udp ? udpLimit(q) : 65535;
    const cls = question.class ?? "IN";
    // A bypassed name gets an empty answer (GOST).
    if (cls === "IN" && this.#o.bypass?.contains("udp", name)) {
      ctx.log.debug(`dns: bypass: ${name}`);
      return fit(replyTo(q, []), limit);
    }
    if (cls === "IN" && (question.type === "A" || question.type === "AAAA")) {
      const ips = this.#o.hosts?.(name)?.filter((ip) =>
        question.type === "A" ? !ip.includes(":") : ip.includes(":")
      );
      if (ips && ips.length > 0) {
        ctx.log.debug(`dns: hosts: ${name} -> ${ips.join(",")}`);
        return fit(
          replyTo(
            q,
            ips.map((ip) =>
              ({
                name: question.name,
                type: question.type,
                class: "IN",
                ttl: 3600,
                data: ip,
              }) as dnsPacket.Answer
            ),
          ),
          limit,
        );
      }
    }
    // Checking-disabled and DNSSEC-OK queries get other answers from a validating upstream.
    const dnssec = `${(q.flags ?? 0) & CD ? "cd" : ""}${doBit(q) ? "do" : ""}`;
    const key = `${name.toLowerCase()}|${question.type}|${cls}|${dnssec}`;
    const hit = this.#cache.get(key);
    const now = Date.now();
    if (hit && (hit.expires > now || this.#async)) {
      if (hit.expires <= now) {
        // Stale: answer now, refresh behind (`async`).
        hit.expires = now + 5000; // one refresh at a time
        this.#exchange(q, ctx).then(({ r }) => this.#store(key, r)).catch((e) =>
          ctx.log.debug(`dns: async refresh of ${name}: ${errorText(e)}`)
        );
      }
      ctx.log.debug(`dns: cached: ${name} ${question.type}`);
      return fit(fromCache(hit, q, now), limit);
    }
    let r: dnsPacket.DecodedPacket, raw: Uint8Array;
    try {
      ({ r, raw } = await this.#exchange(q, ctx));
    } catch (e) {
      ctx.log.warn(`dns: ${name} ${question.type}: ${errorText(e)}`);
      return fit(replyTo(q, [], "SERVFAIL"), limit);
    }
    this.#store(key, r);
    if (raw.length <= limit) {
      // The upstream's own bytes (name compression kept: dns-packet would not compress).
      const out = raw.slice();
      out[0] = q.id! >> 8;
      out[1] = q.id! & 0xff;
      return out;
    }
    r.id = q.id;
    return fit(r, limit);
  }

  /** Asks the upstreams, from a rotating start; each failure moves to the next. */
  async #exchange(
    q: dnsPacket.DecodedPacket,
    ctx: HandleContext,
  ): Promise<{ r: dnsPacket.DecodedPacket; raw: Uint8Array }> {
    const out: dnsPacket.Packet = { ...q, id: crypto.getRandomValues(new Uint16Array(1))[0]! };
    if (this.#clientIP) out.additionals = withSubnet(q.additionals ?? [], this.#clientIP);
    const query = packets().encode(out);
    const start = this.#next++ % this.#ups.length;
    let last: unknown;
    for (let i = 0; i < this.#ups.length; i++) {
      const up = this.#ups[(start + i) % this.#ups.length]!;
      try {
        let raw = await this.#once(up.ns, up.addr, query, ctx);
        let r = packets().decode(Buffer.from(raw));
        if (up.ns.scheme === "udp" && ((r.flags ?? 0) & TC)) {
          // Truncated over UDP: the same server over TCP has the whole answer.
          raw = await this.#once({ ...up.ns, scheme: "tcp" }, up.addr, query, ctx);
          r = packets().decode(Buffer.from(raw));
        }
        if (r.id !== out.id) throw new Error("reply id mismatch");
        // A reply must answer the question asked, or it would be cached under the wrong name.
        const a = r.questions?.[0], b = q.questions![0]!;
        if (
          !a || a.name.toLowerCase() !== b.name.toLowerCase() || a.type !== b.type ||
          (a.class ?? "IN") !== (b.class ?? "IN")
        ) throw new Error("reply to another question");
        return { r, raw };
      } catch (e) {
        last = e;
        ctx.log.debug(`dns: upstream ${up.addr}: ${errorText(e)}`);
      }
    }
    throw last;
  }

  #once(ns: Parsed, addr: string, query: Uint8Array, ctx: HandleContext): Promise<Uint8Array> {
    return exchangeOnce(ns, {
      addr,
      timeoutMs: this.#timeout,
      dial: (network: Network, address: string, signal: AbortSignal) =>
        this.#o.router.dial(network, address, { signal, log: ctx.log }),
    }, query);
  }

  /** Caches a NOERROR reply with answers for `ttl`, or for its smallest record TTL. */
  #store(key: string, r: dnsPacket.DecodedPacket): void {
    const rcode = (r as { rcode?: string }).rcode;
    if (this.#ttlMs < 0 || rcode !== "NOERROR" || !(r.answers?.length)) return;
    const minTtl = Math.min(...r.answers.map((a) => (a as { ttl?: number }).ttl ?? 0));
    const ms = this.#ttlMs > 0 ? this.#ttlMs : minTtl * 1000;
    if (ms <= 0) return;
    const bytes = packets().encodingLength(r);
    if (bytes > CACHE_BYTES / 64) return; // one answer may take at most 1/64 of the budget
    this.#drop(key);
    // The oldest go first, until there is room in count and bytes.
    while (this.#cache.size >= CACHE_MAX || this.#cacheBytes + bytes > CACHE_BYTES) {
      this.#drop(this.#cache.keys().next().value!);
    }
    const now = Date.now();
    this.#cache.set(key, { reply: r, bytes, stored: now, expires: now + ms });
    this.#cacheBytes += bytes;
  }

  #drop(key: string): void {
    const c = this.#cache.get(key);
    if (!c) return;
    this.#cache.delete(key);
    this.#cacheBytes -= c.bytes;
  }
}

/** Whether the query's EDNS record sets DO (DNSSEC OK). */
function doBit(q: dnsPacket.DecodedPacket): boolean {
  const opt = q.additionals?.find((a) => a.type === "OPT") as { flags?: number } | undefined;
  return ((opt?.flags ?? 0) & 0x8000) !== 0;
}

/** The largest reply a UDP client takes: its EDNS payload size, else 512 (RFC 1035, 6891). */
function udpLimit(q: dnsPacket.DecodedPacket): number {
  const opt = q.additionals?.find((a) => a.type === "OPT") as
    | { udpPayloadSize?: number }
    | undefined;
  return Math.max(512, Math.min(opt?.udpPayloadSize ?? 512, 65535));
}

/** A reply to `q` with `answers` (RD copied, RA set). */
function replyTo(
  q: dnsPacket.DecodedPacket,
  answers: dnsPacket.Answer[],
  rcode = "NOERROR",
): dnsPacket.Packet {
  const rcodes: Record<string, number> = { NOERROR: 0, SERVFAIL: 2 };
  return {
    type: "response",
    id: q.id,
    flags: ((q.flags ?? 0) & RD) | RA | (rcodes[rcode] ?? 0),
    questions: q.questions,
    answers,
  };
}

/** A cached reply for `q`: its id, and record TTLs less the time it has been held. */
function fromCache(c: Cached, q: dnsPacket.DecodedPacket, now: number): dnsPacket.Packet {
  const age = Math.floor((now - c.stored) / 1000);
  const aged = (rs?: dnsPacket.Answer[]) =>
    rs?.map((a) => ({ ...a, ttl: Math.max(0, ((a as { ttl?: number }).ttl ?? 0) - age) })) as
      | dnsPacket.Answer[]
      | undefined;
  return {
    ...c.reply,
    id: q.id,
    answers: aged(c.reply.answers),
    authorities: aged(c.reply.authorities),
  };
}

/** Encodes `p`; when it exceeds `limit`, the header and question only, with TC set. */
function fit(p: dnsPacket.Packet, limit: number): Uint8Array {
  const b = packets().encode(p);
  if (b.length <= limit) return b;
  return packets().encode({
    type: "response",
    id: p.id,
    flags: (p.flags ?? 0) | TC,
    questions: p.questions,
  });
}

/** The query's additionals with an EDNS client-subnet option for `ip` (RFC 7871). */
function withSubnet(add: dnsPacket.Answer[], ip: string): dnsPacket.Answer[] {
  const v6 = ip.includes(":");
  const prev = add.find((a) => a.type === "OPT") as { udpPayloadSize?: number } | undefined;
  return [
    ...add.filter((a) => a.type !== "OPT"),
    {
      type: "OPT",
      name: ".",
      udpPayloadSize: prev?.udpPayloadSize ?? 4096,
      options: [{
        code: 8,
        family: v6 ? 2 : 1,
        sourcePrefixLength: v6 ? 128 : 24,
        scopePrefixLength: 0,
        ip,
      }],
    } as unknown as dnsPacket.Answer,
  ];
}

/** The `dns` handler (dns-packet is imported with the first one). */
export function register(reg: Registries): void {
  reg.handlers.register("dns", async (o) => {
    await DNS_PACKET.load();
    return new DnsHandler(o);
  });
}
