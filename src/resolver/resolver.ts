/**
 * GOST's resolver (docs/access-control.md): nameservers tried in order, `udp://` (default),
 * `tcp://`, `tls://` (DoT) and `https://` (DoH), each dialed through an optional chain; A or
 * AAAA by `prefer` with the other family as fallback (`only` pins one); answers cached per
 * resolver for `ttl` (0: the records' smallest TTL, 60 s if none; negative: no cache); `async`
 * answers from a stale cache and refreshes behind. DNS messages are encoded and decoded with
 * the `dns-packet` npm package. Like GOST, DoT and DoH do not verify the server certificate.
 * @module
 */
// @ts-types="@types/dns-packet"
import type * as dnsPacket from "dns-packet";
import { DNS_PACKET } from "./dns_packet.ts";
import { Buffer } from "node:buffer";
import { errorText, TunnelError } from "../core/errors.ts";
import { parseIp } from "../core/ip.ts";
import type { Logger } from "../core/log.ts";
import { exchangeOnce, type NameserverOptions, type Parsed, parseNameserver } from "./exchange.ts";

export { type NameserverOptions, type NsDial, parseNameserver } from "./exchange.ts";

interface CacheEntry {
  ips: string[];
  expires: number;
}

/** One nameserver: queries, with its family preference. */
class Nameserver {
  readonly #ns: Parsed;
  constructor(readonly o: NameserverOptions) {
    this.#ns = parseNameserver(o.addr);
  }

  async query(name: string, type: "A" | "AAAA"): Promise<{ ips: string[]; ttl: number }> {
    const dns = await DNS_PACKET.load();
    const id = crypto.getRandomValues(new Uint16Array(1))[0]!;
    const packet: dnsPacket.Packet = {
      type: "query",
      id,
      flags: dns.RECURSION_DESIRED,
      questions: [{ type, name, class: "IN" }],
    };
    if (this.o.clientIP) {
      const ip = parseIp(this.o.clientIP);
      if (ip) {
        packet.additionals = [{
          type: "OPT",
          name: ".",
          udpPayloadSize: 4096,
          options: [{
            code: 8,
            family: ip.length === 4 ? 1 : 2,
            sourcePrefixLength: ip.length === 4 ? 24 : 128,
            scopePrefixLength: 0,
            ip: this.o.clientIP,
          } as unknown as dnsPacket.PacketOpt],
        } as unknown as dnsPacket.Answer];
      }
    }
    const raw = await exchangeOnce(this.#ns, this.o, dns.encode(packet));
    let res: dnsPacket.DecodedPacket;
    try {
      res = dns.decode(Buffer.from(raw));
    } catch (e) {
      throw new TunnelError(`dns: ${this.o.addr}: malformed reply: ${errorText(e)}`);
    }
    if (res.id !== id) throw new TunnelError(`dns: ${this.o.addr}: reply id mismatch`);
    const rcode = (res as { rcode?: string }).rcode;
    if (rcode && rcode !== "NOERROR") {
      throw new TunnelError(`dns: ${this.o.addr}: ${name}: ${rcode}`);
    }
    const ips: string[] = [];
    let ttl = Infinity;
    for (const a of res.answers ?? []) {
      if (a.type === type && typeof a.data === "string") {
        ips.push(a.data);
        ttl = Math.min(ttl, a.ttl ?? 0);
      }
    }
    return { ips, ttl: ttl === Infinity ? 0 : ttl };
  }
}

/** A named resolver: its nameservers and one cache. */
export class Resolver {
  readonly #servers: Nameserver[];
  readonly #cache = new Map<string, CacheEntry>();
  readonly #refreshing = new Set<string>();

  constructor(servers: NameserverOptions[], readonly log: Logger) {
    this.#servers = servers.map((s) => new Nameserver(s));
  }

  /** Resolves `host` to IPs (an IP literal is returned as is); throws when nothing answers. */
  async resolve(host: string): Promise<string[]> {
    if (parseIp(host)) return [host];
    let last: unknown;
    for (const s of this.#servers) {
      try {
        const ips = await this.#viaServer(s, host);
        if (ips.length > 0) return ips;
      } catch (e) {
        last = e;
        this.log.debug(`resolver: ${s.o.addr}: ${errorText(e)}`);
      }
    }
    throw new TunnelError(
      `resolver: domain ${host} does not exist${last ? ` (${errorText(last)})` : ""}`,
      { temporary: true },
    );
  }

  async #viaServer(s: Nameserver, host: string): Promise<string[]> {
    const pref = s.o.only ?? s.o.prefer ?? "ipv4";
    const first = pref === "ipv6" ? "AAAA" : "A";
    const second = first === "A" ? "AAAA" : "A";
    let ips: string[] = [];
    try {
      ips = await this.#cached(s, host, first);
    } catch (e) {
      if (s.o.only) throw e;
    }
    if (ips.length > 0 || s.o.only) return ips;
    return await this.#cached(s, host, second);
  }

  async #cached(s: Nameserver, host: string, type: "A" | "AAAA"): Promise<string[]> {
    const ttlOpt = s.o.ttlMs ?? 0;
    const key = `${host.toLowerCase()}/${type}`;
    const hit = ttlOpt >= 0 ? this.#cache.get(key) : undefined;
    const now = performance.now();
    if (hit && hit.expires > now) return hit.ips;
    if (hit && s.o.async) {
      if (!this.#refreshing.has(key) && this.#refreshing.size < 32) {
        this.#refreshing.add(key);
        this.#fetch(s, host, type, key).catch(() => {}).finally(() => this.#refreshing.delete(key));
      }
      return hit.ips;
    }
    return await this.#fetch(s, host, type, key);
  }

  async #fetch(s: Nameserver, host: string, type: "A" | "AAAA", key: string): Promise<string[]> {
    const { ips, ttl } = await s.query(host, type);
    const ttlOpt = s.o.ttlMs ?? 0;
    if (ttlOpt >= 0) {
      const ms = ttlOpt > 0 ? ttlOpt : ttl > 0 ? ttl * 1000 : 60_000;
      if (this.#cache.size >= 10_000) this.#cache.clear(); // bounded
      this.#cache.set(key, { ips, expires: performance.now() + ms });
    }
    return ips;
  }
}
