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
    const first = await withDeadline(conn, HEAD_TIMEOUT, () => br.peek(1));
    let host: string | null;
    let replay: Uint8Array | undefined;
    const tls = first[0] === 0x16;
    if (tls) {
      const len = tlsRecordLength(await withDeadline(conn, HEAD_TIMEOUT, () => br.peek(5)));
      const record = len === null
        ? null
        : await withDeadline(conn, HEAD_TIMEOUT, () => br.peek(Math.min(len, 16 * 1024 + 5)));
      const sni = record ? clientHelloServerName(record) : null;
      host = sni ? `${sni}:443` : null;
    } else {
      const head = await withDeadline(conn, HEAD_TIMEOUT, () => br.readHead());
      if (head === null) return;
      const h = getHeader(parseRequestHead(head).headers, "host");
      host = h ? (/:\d+$/.test(h) && !h.endsWith("]") ? h : `${h}:80`) : null;
      replay = enc.encode(head + "\r\n\r\n");
    }
    const fail = async (status: string, why: string) => {
      this.#log.info(`${visitor} → ${host ?? "(no host)"}: ${why}`);
      if (!tls) await conn.write(plain(status)).catch(() => {});
    };
    const route = host ? this.#ingress().lookup(host) : undefined;
    if (!route) return await fail("502 Bad Gateway", "no tunnel serves this host");
    if (route.private) return await fail("502 Bad Gateway", "the tunnel is private");
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
      const header = encodeMessage(STATUS.ok, [addrFeature(visitor), addrFeature(host!)]);
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
