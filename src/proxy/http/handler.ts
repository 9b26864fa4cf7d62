/**
 * The HTTP proxy handler (docs/gost-proxies.md §3): CONNECT tunnels, absolute-URI forwarding of plain HTTP
 * with client keep-alive (several requests, different hosts, on one connection), Basic proxy
 * auth with 407, hop-by-hop headers removed, and GOST's UDP over HTTP (`X-Gost-Protocol: udp`).
 * Upstream failures answer 502 (504 on timeout) as the issue asks; GOST itself answers 503.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import type { Conn } from "../../core/conn.ts";
import { errorText, LoopError, ProtocolError } from "../../core/errors.ts";
import { newViaId, passedUs, viaWithUs } from "./via.ts";
import { decodeServerName } from "../../protocol/server_name.ts";
import { joinHostPort } from "../../core/addr.ts";
import type { HandleContext, Handler, HandlerOptions } from "../../core/types.ts";
import { classifyDialError, pipeLogged } from "../common.ts";
import { withDeadline } from "../../core/deadline.ts";
import { serveUdpOverTcp } from "../udp.ts";
import {
  copyBody,
  getHeader,
  hasToken,
  type Headers,
  parseRequestHead,
  parseResponseHead,
  removeHeaders,
  requestFraming,
  type RequestHead,
  responseFraming,
  serializeHead,
  stripHopByHop,
} from "../../protocol/http1.ts";

const enc = new TextEncoder();

interface HttpOptions {
  readTimeout: number;
  proxyAgent: string;
  realm: string;
  udp: boolean;
  header: Record<string, string>;
  idleTimeout: number;
  keepaliveIdle: number;
  knock: string[];
  probeResist?: { type: string; value: string };
}

/**
 * GOST v2's hidden target: `Gost-Target`/`X-Gost-Target` (an `sni` connector with `host=` puts a
 * front name in Host and the real one there) replaces the request's host, as GOST's http handler
 * does; the headers themselves never go upstream.
 */
export function applyHiddenTarget(req: RequestHead): void {
  const hidden = getHeader(req.headers, "gost-target") ?? getHeader(req.headers, "x-gost-target");
  req.headers = removeHeaders(req.headers, ["Gost-Target", "X-Gost-Target", "Gost-Record"]);
  const real = hidden === undefined ? null : decodeServerName(hidden);
  if (real === null) return;
  if (req.method === "CONNECT") req.target = real;
  else if (/^http:\/\//i.test(req.target)) {
    req.target = req.target.replace(/^(http:\/\/)[^/?#]+/i, `$1${real}`);
  }
  req.headers = [...removeHeaders(req.headers, ["host"]), ["Host", real]];
}

/** Splits an absolute or origin-form request target into `host:port` and the origin path. */
export function requestTarget(
  req: RequestHead,
): { addr: string; path: string; host: string } | null {
  const m = /^http:\/\/([^/?#]+)(.*)$/i.exec(req.target);
  let authority: string;
  let path: string;
  if (m) {
    authority = m[1]!;
    path = m[2] || "/";
  } else if (req.target.startsWith("/")) {
    // Origin form: proxied to its Host (GOST does the same).
    const h = getHeader(req.headers, "host");
    if (!h) return null;
    authority = h;
    path = req.target;
  } else {
    return null;
  }
  authority = authority.replace(/^[^@]*@/, "");
  const hasPort = /^\[.*\]:\d+$/.test(authority) || /^[^:\]]+:\d+$/.test(authority);
  const addr = hasPort ? authority : joinHostPort(authority.replace(/^\[|\]$/g, ""), 80);
  return { addr, path, host: authority };
}

/** How the `sni` handler reuses the HTTP handler: plain requests routed by Host, nothing else. */
export interface HttpMode {
  /** Refuse CONNECT (405) and with it UDP over HTTP: only origin-form requests are forwarded. */
  originOnly?: boolean;
  /** Node-selection hash source: `host` hashes on the target instead of the client address. */
  hashHost?: boolean;
}

export class HttpHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #opts: HttpOptions;
  readonly #mode: HttpMode;
  /** Our name in `Via` (the runtime's, shared with its http connectors). */
  readonly #via: string;

  constructor(opts: HandlerOptions, mode: HttpMode = {}) {
    this.#mode = mode;
    this.#via = opts.instance ?? newViaId();
    this.#o = opts;
    const md = opts.metadata;
    const pr = md.string(["probeResist", "probe_resist"]);
    const i = pr.indexOf(":");
    this.#opts = {
      readTimeout: md.duration("readTimeout", 15_000),
      proxyAgent: md.string(["proxyAgent", "http.proxyAgent"], "gost/3.0"),
      realm: md.string("authBasicRealm", "gost"),
      udp: md.bool("udp"),
      header: md.map(["header", "http.header"]),
      idleTimeout: md.duration("idleTimeout", 0),
      keepaliveIdle: md.duration("idleTimeout", 60_000),
      knock: md.strings("knock").map((s) => s.toLowerCase()),
      ...(i > 0 ? { probeResist: { type: pr.slice(0, i), value: pr.slice(i + 1) } } : {}),
    };
  }

  #simple(status: string, extra: Headers = []): Uint8Array {
    const h: Headers = [
      ["Proxy-Agent", this.#opts.proxyAgent],
      ...Object.entries(this.#opts.header),
      ...extra,
    ];
    return serializeHead(`HTTP/1.1 ${status}`, [...h, ["Content-Length", "0"], [
      "Connection",
      "close",
    ]]);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const br = new BufReader(conn, 4096);
    let first = true;
    /** A read of the client's next bytes, started while a response was being relayed. */
    let next: Promise<unknown> | null = null;
    for (;;) {
      // The first request gets the handshake deadline; an idle keep-alive connection is closed
      // after `idleTimeout` (default 60 s) so idle clients cannot pile up.
      const head = await withDeadline(
        conn,
        first ? this.#opts.readTimeout : this.#opts.keepaliveIdle,
        async () => {
          await next;
          return await br.readHead();
        },
      )
        .catch((e) => {
          if (!first) return null; // idle keep-alive expired: a quiet close
          throw e;
        });
      first = false;
      if (head === null) return;
      let req: RequestHead;
      try {
        req = parseRequestHead(head);
      } catch (e) {
        await conn.write(
          serializeHead("HTTP/1.1 400 Bad Request", [["Content-Length", "0"], [
            "Connection",
            "close",
          ]]),
        );
        throw e;
      }
      if (!(await this.#authorize(conn, br, req, ctx))) return;
      if (passedUs(req.headers, this.#via)) {
        ctx.log.warn(`http: ${req.method} ${req.target} came back to us: a proxy loop, refused`);
        await conn.write(this.#simple("508 Loop Detected")).catch(() => {});
        return;
      }
      applyHiddenTarget(req);
      if (req.method === "CONNECT") {
        if (this.#mode.originOnly) {
          await conn.write(this.#simple("405 Method Not Allowed"));
          return;
        }
        return this.#connect(br, conn, req, ctx); // not awaited: see #connect
      }
      const r = await this.#forward(br, conn, req, ctx);
      if (!r) return;
      next = r.next;
    }
  }

  async #authorize(
    conn: Conn,
    br: BufReader,
    req: RequestHead,
    ctx: HandleContext,
  ): Promise<boolean> {
    const auther = this.#o.auther;
    if (!auther) return true;
    const h = getHeader(req.headers, "proxy-authorization") ?? "";
    const m = /^Basic\s+(\S+)$/i.exec(h);
    let user = "";
    if (m) {
      try {
        const text = atob(m[1]!);
        const i = text.indexOf(":");
        user = i >= 0 ? text.slice(0, i) : text;
        if (auther.authenticate(user, i >= 0 ? text.slice(i + 1) : "")) {
          req.headers = removeHeaders(req.headers, ["Proxy-Authorization"]);
          return true;
        }
      } catch { /* not base64: a failure like any other */ }
    }
    const host = requestTarget(req)?.host.replace(/:\d+$/, "").toLowerCase() ??
      req.target.replace(/:\d+$/, "").toLowerCase();
    if (this.#opts.probeResist && !this.#opts.knock.includes(host)) {
      await this.#decoy(conn, br, req, ctx);
      return false;
    }
    ctx.log.warn(`http: authentication failed${user ? ` for user ${JSON.stringify(user)}` : ""}`);
    await conn.write(serializeHead("HTTP/1.1 407 Proxy Authentication Required", [
      ["Proxy-Authenticate", `Basic realm="${this.#opts.realm}"`],
      ["Proxy-Agent", this.#opts.proxyAgent],
      ["Content-Length", "0"],
      ["Connection", "close"],
      ...(hasToken(req.headers, "proxy-connection", "keep-alive")
        ? [["Proxy-Connection", "close"] as [string, string]]
        : []),
    ]));
    return false;
  }

  /** Probe resistance: answer as something that is not a proxy (docs/gost-proxies.md §3.3). */
  async #decoy(conn: Conn, br: BufReader, req: RequestHead, ctx: HandleContext): Promise<void> {
    const pr = this.#opts.probeResist!;
    if (pr.type === "code") {
      const code = /^\d{3}$/.test(pr.value) ? pr.value : "404";
      await conn.write(
        serializeHead(`HTTP/1.1 ${code} ${code === "404" ? "Not Found" : "Error"}`, [[
          "Content-Length",
          "0",
        ], ["Connection", "close"]]),
      );
    } else if (pr.type === "file") {
      const body = await Deno.readFile(pr.value).catch(() => new Uint8Array(0));
      await conn.write(
        serializeHead("HTTP/1.1 200 OK", [["Content-Type", "text/html"], [
          "Content-Length",
          String(body.length),
        ], ["Connection", "close"]]),
      );
      await conn.write(body);
    } else if (pr.type === "host") {
      try {
        const up = await this.#o.router.dial("tcp", pr.value, { signal: ctx.signal, log: ctx.log });
        await up.write(serializeHead(`${req.method} ${req.target} ${req.version}`, req.headers));
        await pipeLogged(br.conn(), up, pr.value, ctx);
      } catch { /* decoy unreachable: just close */ }
    } else {
      await conn.write(
        serializeHead("HTTP/1.1 404 Not Found", [["Content-Length", "0"], ["Connection", "close"]]),
      );
    }
  }

  #failure(e: unknown): string {
    if (e instanceof LoopError) return "508 Loop Detected";
    const kind = classifyDialError(e);
    return kind === "forbidden"
      ? "403 Forbidden"
      : kind === "timeout"
      ? "504 Gateway Timeout"
      : "502 Bad Gateway";
  }

  async #connect(br: BufReader, conn: Conn, req: RequestHead, ctx: HandleContext): Promise<void> {
    const udp = (getHeader(req.headers, "x-gost-protocol") ?? "").toLowerCase() === "udp";
    if (udp) {
      if (!this.#opts.udp) {
        await conn.write(this.#simple("403 Forbidden"));
        return;
      }
      await conn.write(
        enc.encode(`HTTP/1.1 200 OK\r\nProxy-Agent: ${this.#opts.proxyAgent}\r\n\r\n`),
      );
      return await serveUdpOverTcp(br, conn, this.#o.router, ctx.log);
    }
    const addr = /:\d+$/.test(req.target) ? req.target : joinHostPort(req.target, 443);
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", addr, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`http: connect ${addr}: ${errorText(e)}`, { dst: addr });
      await conn.write(this.#simple(this.#failure(e))).catch(() => {});
      return;
    }
    await conn.write(
      enc.encode(
        `HTTP/1.1 200 Connection established\r\nProxy-Agent: ${this.#opts.proxyAgent}\r\n\r\n`,
      ),
    );
    // Returned, not awaited: the tunnel waits in the relay's promise, and this frame (with the
    // handshake's read-ahead) is gone for its lifetime (docs/performance.md).
    return pipeLogged(br.conn(), up, addr, ctx, this.#opts.idleTimeout);
  }

  /**
   * Forwards one plain HTTP request; resolves null when the client connection ends, or, to keep
   * it, the pending read of the client's next bytes that watched it during the response.
   */
  async #forward(
    br: BufReader,
    conn: Conn,
    req: RequestHead,
    ctx: HandleContext,
  ): Promise<{ next: Promise<unknown> } | null> {
    const t = requestTarget(req);
    if (!t || req.method === "PRI") {
      await conn.write(this.#simple("400 Bad Request"));
      return null;
    }
    const clientKeep = req.version === "HTTP/1.1"
      ? !hasToken(req.headers, "connection", "close") &&
        !hasToken(req.headers, "proxy-connection", "close")
      : hasToken(req.headers, "connection", "keep-alive") ||
        hasToken(req.headers, "proxy-connection", "keep-alive");
    const upgrade = hasToken(req.headers, "connection", "upgrade")
      ? getHeader(req.headers, "upgrade")
      : undefined;
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", t.addr, {
        signal: ctx.signal,
        client: this.#mode.hashHost ? t.addr : conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`http: ${req.method} ${t.addr}: ${errorText(e)}`, { dst: t.addr });
      await conn.write(this.#simple(this.#failure(e))).catch(() => {});
      return null;
    }
    ctx.log.debug(`${req.method} ${req.target}`, { dst: t.addr });
    // Once the response head went out, a failure can only cut the connection: a 502 written
    // then would land inside the body the client is reading.
    let answered = false;
    try {
      // RFC 9112 §3.2.2: an absolute-form target replaces the client's Host header, so the
      // origin serves the host the bypass rules checked, not another virtual host.
      const headers: Headers = [
        ["Host", t.host],
        ...removeHeaders(stripHopByHop(req.headers), ["host", "via"]),
        ["Via", viaWithUs(req.headers, this.#via, req.version.slice(5))],
      ];
      headers.push(upgrade ? ["Connection", "Upgrade"] : ["Connection", "close"]);
      if (upgrade) headers.push(["Upgrade", upgrade]);
      await up.write(serializeHead(`${req.method} ${t.path} ${req.version}`, headers));
      await copyBody(br, up, requestFraming(req.headers));
      // The request is in: watch the client while the response flows, so a client that leaves
      // ends the upstream read at once (a stalled origin would otherwise hold both sockets).
      // Not for an upgrade: after a 101 the client's bytes belong to the tunnel.
      const next = upgrade ? null : br.peek(1).catch(() => up.close());
      const ubr = new BufReader(up, 4096);
      const rhead = await ubr.readHead();
      if (rhead === null) throw new ProtocolError("http: upstream closed without a response");
      const res = parseResponseHead(rhead);
      if (res.status === 101) {
        answered = true;
        await conn.write(serializeHead(`${res.version} 101 ${res.reason}`, res.headers));
        await pipeLogged(br.conn(), ubr.conn(), t.addr, ctx);
        return null;
      }
      const framing = responseFraming(req.method, res);
      const keep = clientKeep && framing.kind !== "close";
      const out = stripHopByHop(res.headers);
      if (!keep) out.push(["Connection", "close"]);
      else if (req.version === "HTTP/1.0") out.push(["Connection", "keep-alive"]);
      answered = true;
      await conn.write(serializeHead(`${res.version} ${res.status} ${res.reason}`.trimEnd(), out));
      await copyBody(ubr, conn, framing);
      if (!keep || !next) return null;
      return { next };
    } catch (e) {
      ctx.log.error(`http: ${req.method} ${t.addr}: ${errorText(e)}`, { dst: t.addr });
      if (!answered) await conn.write(this.#simple("502 Bad Gateway")).catch(() => {});
      return null;
    } finally {
      up.close();
    }
  }
}
