/**
 * One DNS exchange with a nameserver (docs/access-control.md "resolvers"): `udp://` (default),
 * `tcp://` (2-byte length framing), `tls://` (DoT) and `https://` (DoH, POST), each over a conn
 * from a dial function (a chain, or direct). Shared by the resolver and the `dns` handler. Like
 * GOST, DoT and DoH do not verify the server certificate.
 * @module
 */
import { type Conn, readFull } from "../core/conn.ts";
import { TimeoutError, TunnelError } from "../core/errors.ts";
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

/** A parsed nameserver address. */
export interface Parsed {
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

/** Sends `query` to `ns` and returns its reply (one message; `timeoutMs`, default 5 s). */
export async function exchangeOnce(
  ns: Parsed,
  o: Pick<NameserverOptions, "addr" | "timeoutMs" | "dial">,
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
      const buf = new Uint8Array(65535);
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
