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
import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { type Conn, readFull } from "../core/conn.ts";
import { errorText, TimeoutError, TunnelError } from "../core/errors.ts";
import { parseIp } from "../core/ip.ts";
import type { Logger } from "../core/log.ts";
import type { Network } from "../core/types.ts";
import { BufReader } from "../core/bufio.ts";
import { getHeader, parseResponseHead, serializeHead } from "../protocol/http1.ts";
import { tlsClient } from "../transport/tls/stream.ts";

/** Opens a conn to `address` (through a nameserver's chain, or directly). */
export type NsDial = (network: Network, address: string, signal: AbortSignal) => Promise<Conn>;

export interface NameserverOptions {
  addr: string;
  prefer?: "ipv4" | "ipv6";
  only?: "ipv4" | "ipv6";
  /** Cache TTL override in ms: > 0 fixed, 0 from the records, < 0 no cache. */
  ttlMs?: number;
  /** Per-exchange timeout (default 5 s). */
  timeoutMs?: number;
  async?: boolean;
  clientIP?: string;
  dial: NsDial;
}

interface Parsed {
  scheme: "udp" | "tcp" | "tls" | "https";
  host: string;
  port: number;
  url?: URL;
}

/** `8.8.8.8`, `udp://8.8.8.8:53`, `tcp://...`, `tls://1.1.1.1:853`, `https://h/dns-query`. */
export function parseNameserver(addr: string): Parsed {
  const text = addr.includes("://") ? addr : `udp://${addr}`;
  const scheme = text.slice(0, text.indexOf("://")).toLowerCase();
  if (scheme === "https") {
    const url = new URL(text);
    return {
      scheme,
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port || 443),
      url,
    };
  }
  const s = scheme === "dot" ? "tls" : scheme;
  if (s !== "udp" && s !== "tcp" && s !== "tls") {
    throw new Error(`unknown nameserver scheme "${scheme}" (udp, tcp, tls, https)`);
  }
  const rest = text.slice(text.indexOf("://") + 3).replace(/\/.*$/, "");
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(rest);
  if (!m) throw new Error(`bad nameserver address ${JSON.stringify(addr)}`);
  // GOST adds :53 whenever the port is missing, for tls too.
  return { scheme: s, host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2] ?? 53) };
}

const hostPort = (h: string, p: number) => (h.includes(":") ? `[${h}]:${p}` : `${h}:${p}`);

async function exchangeOnce(
  ns: Parsed,
  o: NameserverOptions,
  query: Uint8Array,
): Promise<Uint8Array> {
  const timeout = o.timeoutMs && o.timeoutMs > 0 ? o.timeoutMs : 5000;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new TimeoutError(`dns: ${o.addr}: timeout`)), timeout);
  let conn: Conn | undefined;
  const onAbort = () => conn?.close();
  ac.signal.addEventListener("abort", onAbort);
  try {
    const network: Network = ns.scheme === "udp" ? "udp" : "tcp";
    conn = await o.dial(network, hostPort(ns.host, ns.port), ac.signal);
    if (ns.scheme === "udp") {
      await conn.write(query);
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf);
      if (n === null) throw new TunnelError(`dns: ${o.addr}: no answer`);
      return buf.slice(0, n);
    }
    if (ns.scheme === "tls" || ns.scheme === "https") {
      conn = await tlsClient(conn, {
        serverName: ns.scheme === "https" ? ns.host : undefined,
        signal: ac.signal,
      });
    }
    if (ns.scheme === "https") {
      const u = ns.url!;
      await conn.write(serializeHead(`POST ${u.pathname}${u.search} HTTP/1.1`, [
        ["Host", u.host],
        ["Content-Type", "application/dns-message"],
        ["Accept", "application/dns-message"],
        ["Content-Length", String(query.length)],
        ["Connection", "close"],
      ]));
      await conn.write(query);
      const br = new BufReader(conn);
      const head = await br.readHead();
      if (head === null) throw new TunnelError(`dns: ${o.addr}: no response`);
      const res = parseResponseHead(head);
      if (res.status !== 200) throw new TunnelError(`dns: ${o.addr}: HTTP ${res.status}`);
      const len = Number(getHeader(res.headers, "content-length") ?? "-1");
      if (!(len >= 0 && len <= 65535)) throw new TunnelError(`dns: ${o.addr}: bad DoH length`);
      return await br.readN(len);
    }
    const framed = new Uint8Array(2 + query.length);
    new DataView(framed.buffer).setUint16(0, query.length);
    framed.set(query, 2);
    await conn.write(framed);
    const lenBuf = await readFull(conn, new Uint8Array(2));
    return await readFull(conn, new Uint8Array((lenBuf[0]! << 8) | lenBuf[1]!));
  } catch (e) {
    if (ac.signal.aborted) throw ac.signal.reason;
    throw e;
  } finally {
    clearTimeout(timer);
    ac.signal.removeEventListener("abort", onAbort);
    conn?.close();
  }
}

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
    const id = crypto.getRandomValues(new Uint16Array(1))[0]!;
    const packet: dnsPacket.Packet = {
      type: "query",
      id,
      flags: dnsPacket.RECURSION_DESIRED,
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
    const raw = await exchangeOnce(this.#ns, this.o, dnsPacket.encode(packet));
    let res: dnsPacket.DecodedPacket;
    try {
      res = dnsPacket.decode(Buffer.from(raw));
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
