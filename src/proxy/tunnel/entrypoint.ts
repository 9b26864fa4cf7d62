/**
 * The tunnel server's entrypoint (`entrypoint=:80`): a public TCP port whose visitors are routed
 * by host name to a tunnel — HTTP by its `Host` header, TLS by the ClientHello's SNI — and
 * carried to one of the tunnel's clients as a new smux stream headed by a relay response naming
 * the visitor and the host (docs/reverse.md). No route or a private tunnel: HTTP 502; no client
 * connected: HTTP 503; a TLS visitor is closed in both cases.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { type Conn, formatAddr } from "../../core/conn.ts";
import { errorText } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import { withDeadline } from "../../core/deadline.ts";
import { relay } from "../../core/relay.ts";
import { SocketConn } from "../../core/socket.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import { getHeader, parseRequestHead } from "../../protocol/http1.ts";
import { clientHelloServerName, tlsRecordLength } from "../../protocol/tls_hello.ts";
import { addrFeature, encodeMessage, STATUS } from "../relay/codec.ts";
import type { Ingress } from "./ingress.ts";
import type { TunnelClient, TunnelPool } from "./pool.ts";

/** How long a visitor may take to send its first request head or ClientHello. */
const HEAD_TIMEOUT = 15_000;
/** Visitors served at once; more are closed (bounded memory under a flood). */
const MAX_VISITORS = 4096;
/** Visitors still sending their request head or ClientHello, overall and per address. */
const MAX_SNIFFING = 256;
const MAX_SNIFFING_PER_IP = 16;
/** Longest request head routed (a Host is in the first few hundred bytes). */
const MAX_HEAD = 16 * 1024;

/**
 * What a visitor wants: TLS (routed by SNI, bytes left unread) or HTTP (routed by the absolute
 * URL's host, else `Host`; the head is consumed and returned byte-exact to replay). Null at EOF.
 */
async function sniff(
  br: BufReader,
): Promise<{ tls: boolean; host: string | null; replay?: Uint8Array } | null> {
  let first: Uint8Array;
  try {
    first = await br.peek(1);
  } catch {
    return null;
  }
  if (first[0] === 0x16) {
    const len = tlsRecordLength(await br.peek(5));
    const record = len === null ? null : await br.peek(Math.min(len, 16 * 1024 + 5));
    const sni = record ? clientHelloServerName(record) : null;
    return { tls: true, host: sni ? `${sni.replace(/\.$/, "")}:443` : null };
  }
  const raw = await br.readHeadBytes(MAX_HEAD);
  if (raw === null) return null;
  const head = parseRequestHead(new TextDecoder("latin1").decode(raw.subarray(0, raw.length - 4)));
  let h: string | undefined;
  // An absolute-form target names the host and wins over Host (RFC 9112 §3.2.2).
  const abs = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]+)/i.exec(head.target);
  if (abs) h = abs[1]!.replace(/^[^@]*@/, "");
  h ??= getHeader(head.headers, "host")?.trim();
  if (!h) return { tls: false, host: null, replay: raw };
  h = h.replace(/\.(?=:\d+$|$)/, ""); // one trailing dot: the same name
  const host = /:\d+$/.test(h) && !h.endsWith("]") ? h : `${h}:80`;
  return { tls: false, host, replay: raw };
}

const enc = new TextEncoder();

const plain = (status: string) =>
  enc.encode(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);

/** The accept loop of one entrypoint. */
export class Entrypoint {
  readonly #listener: Deno.TcpListener;
  readonly #pool: TunnelPool;
  readonly #ingress: () => Ingress;
  readonly #log: Logger;
  readonly #visitors = new Set<Conn>();
  readonly #perIp = new Map<string, number>();
  #sniffing = 0;
  readonly #loop: Promise<void>;
  #closed = false;

  /** `ingress` gives the current rules (a reload may replace them). */
  constructor(addr: string, pool: TunnelPool, ingress: () => Ingress, log: Logger) {
    const { host, port } = splitHostPort(addr);
    this.#listener = Deno.listen({ hostname: listenHost(host), port, transport: "tcp" });
    this.#pool = pool;
    this.#ingress = ingress;
    this.#log = log.with({ kind: "entrypoint" });
    const a = this.#listener.addr;
    this.#log.info(`entrypoint listening on ${a.hostname}:${a.port}`);
    this.#loop = this.#accept();
  }

  /** The bound port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    const tasks = new Set<Promise<void>>();
    for (;;) {
      let c: Conn;
      try {
        const raw = await this.#listener.accept();
        const sc = new SocketConn(raw);
        sc.setNoDelay(true);
        c = sc;
      } catch (e) {
        if (this.#closed) break;
        if (
          e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.ConnectionReset
        ) continue;
        this.#log.warn(`accept: ${errorText(e)}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (this.#visitors.size >= MAX_VISITORS) {
        c.close();
        continue;
      }
      const conn = c;
      this.#visitors.add(conn);
      const t = this.#serve(conn).catch((e) =>
        this.#log.debug(`${formatAddr(conn.remoteAddr)}: ${errorText(e)}`)
      ).finally(() => {
        conn.close();
        this.#visitors.delete(conn);
      });
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    }
    await Promise.all(tasks);
  }

  async #serve(conn: Conn): Promise<void> {
    const br = new BufReader(conn, 4096);
    const visitor = formatAddr(conn.remoteAddr);
    const ip = conn.remoteAddr.hostname;
    // Visitors still sending their first bytes are capped overall and per address, and get one
    // deadline for all of it: idle or slow ones cannot crowd out the rest.
    if (this.#sniffing >= MAX_SNIFFING || (this.#perIp.get(ip) ?? 0) >= MAX_SNIFFING_PER_IP) return;
    this.#sniffing++;
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
    let sniffed: { tls: boolean; host: string | null; replay?: Uint8Array } | null;
    try {
      sniffed = await withDeadline(conn, HEAD_TIMEOUT, () => sniff(br));
    } finally {
      this.#sniffing--;
      const n = (this.#perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.#perIp.set(ip, n);
      else this.#perIp.delete(ip);
    }
    if (!sniffed) return;
    const { tls, host, replay } = sniffed;
    const fail = async (status: string, why: string) => {
      this.#log.info(`${visitor} → ${host ?? "(no host)"}: ${why}`);
      if (!tls) await conn.write(plain(status)).catch(() => {});
    };
    const route = host ? this.#ingress().lookup(host) : undefined;
    if (!route) return await fail("502 Bad Gateway", "no tunnel serves this host");
    if (route.private) return await fail("502 Bad Gateway", "the tunnel is private");
    let header: Uint8Array;
    try {
      header = encodeMessage(STATUS.ok, [addrFeature(visitor), addrFeature(host!)]);
    } catch {
      return await fail("502 Bad Gateway", "the host name is too long");
    }
    // A client whose session fails to open a stream is skipped; up to three tries.
    const tried = new Set<TunnelClient>();
    let stream: Conn | undefined;
    for (let i = 0; i < 3 && !stream; i++) {
      const c = this.#pool.pick(route.tunnel, false, tried);
      if (!c) break;
      tried.add(c);
      stream = await c.session.openStream().catch(() => undefined);
    }
    if (!stream) {
      return await fail("503 Service Unavailable", `tunnel ${route.tunnel}: no client connected`);
    }
    try {
      await stream.write(header);
      if (replay) await stream.write(replay);
      this.#log.debug(`${visitor} → ${host} via tunnel ${route.tunnel}`);
      await relay(br.conn(), stream);
    } finally {
      stream.close();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const v of this.#visitors) v.close();
    await this.#loop;
  }
}
