/**
 * `sni`: the handler routes each connection by what its first bytes name — a TLS ClientHello's
 * SNI (to `name:443`) or an HTTP request's Host (each request of a keep-alive connection on its
 * own, through the HTTP handler's forwarding) — through the chain; anything else is dropped, as
 * in GOST. The connector is transparent except with `host=front`: it then puts `front` in the
 * SNI or Host and hides the real name beside it (docs/gost-proxies.md "sni"). Burrow's handler
 * restores a hidden name in a ClientHello byte for byte, so fronted TLS reaches the real server
 * with the handshake its client began (GOST v3's handler reads only the HTTP form).
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { type Conn, WrappedConn } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import { Metadata } from "../../core/metadata.ts";
import { joinHostPort } from "../../core/addr.ts";
import { withDeadline } from "../../core/deadline.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  ConnectContext,
  Connector,
  ConnectorOptions,
  HandleContext,
  Handler,
  HandlerOptions,
  Network,
} from "../../core/types.ts";
import {
  clientHelloServerName,
  restoreServerName,
  rewriteServerName,
  tlsRecordLength,
} from "../../protocol/tls_hello.ts";
import { decodeServerName, encodeServerName, EXT_HIDDEN_NAME } from "../../protocol/server_name.ts";
import { HttpHandler } from "../http/handler.ts";
import { pipeLogged } from "../common.ts";

/** Largest TLS record (RFC 8446 §5.1: 2^14 plus the header). */
const MAX_RECORD = 5 + 16384 + 256;

/** Routes TLS by SNI and HTTP by Host. */
export class SniHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #readTimeout: number;
  readonly #hashHost: boolean;
  readonly #http: HttpHandler;

  constructor(o: HandlerOptions) {
    if (o.auther || o.auth) {
      // GOST's sni handler has no authentication; accepting credentials here would be a lie.
      throw new ConfigError(`${o.metadata.path}`, "the sni handler does not authenticate clients");
    }
    this.#o = o;
    const md = o.metadata;
    const t = md.duration("readTimeout", 15_000);
    this.#readTimeout = t > 0 ? t : 15_000; // GOST: 0 or less means the default
    const hash = md.string("hash");
    if (hash !== "" && hash !== "host") {
      throw new ConfigError(`${md.path}.hash`, `"${hash}" is not a hash source (host)`);
    }
    this.#hashHost = hash === "host";
    // The HTTP side sees only the sni handler's own settings: the http handler's other keys
    // (udp, probeResist, header, ...) are not sni's, and would be accepted and do nothing.
    const httpMd = new Metadata({ readTimeout: `${this.#readTimeout}ms` }, md.path);
    this.#http = new HttpHandler({ ...o, metadata: httpMd }, {
      originOnly: true,
      hashHost: this.#hashHost,
    });
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const br = new BufReader(conn, 2048);
    const first = await withDeadline(conn, this.#readTimeout, () => br.peek(1)).catch(() => null);
    if (first === null) return;
    // Returned, not awaited: no frame of ours waits out the tunnel (docs/performance.md).
    if (first[0] === 0x16) return this.#tls(br, conn, ctx);
    if (/[A-Za-z]/.test(String.fromCharCode(first[0]!))) {
      return this.#http.handle(br.conn(), ctx);
    }
    ctx.log.debug("sni: neither TLS nor HTTP: dropped");
  }

  async #tls(br: BufReader, conn: Conn, ctx: HandleContext): Promise<void> {
    const record = await withDeadline(conn, this.#readTimeout, async () => {
      const len = tlsRecordLength(await br.peek(5));
      if (len === null || len > MAX_RECORD) return null;
      return await br.readN(len);
    }).catch(() => null);
    if (record === null) {
      ctx.log.debug("sni: no whole TLS record within the read timeout");
      return;
    }
    let hello = record;
    let name = clientHelloServerName(record);
    const restored = restoreServerName(record, EXT_HIDDEN_NAME, decodeServerName);
    if (restored) {
      hello = restored.record;
      name = restored.name;
    }
    if (!name) {
      ctx.log.info("sni: ClientHello without a server name: dropped");
      return;
    }
    if (!/^[A-Za-z0-9._-]+$/.test(name)) {
      // It becomes a dial target, maybe an upstream proxy's request line: host characters only.
      ctx.log.info("sni: a server name that is not a host name: dropped");
      return;
    }
    const addr = /^\[.*\]:\d+$|^[^:]+:\d+$/.test(name) ? name : joinHostPort(name, 443);
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", addr, {
        signal: ctx.signal,
        client: this.#hashHost ? addr : conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`sni: ${addr}: ${errorText(e)}`, { dst: addr });
      return;
    }
    try {
      await up.write(hello);
    } catch (e) {
      up.close();
      ctx.log.error(`sni: ${addr}: ${errorText(e)}`, { dst: addr });
      return;
    }
    return pipeLogged(br.conn(), up, addr, ctx); // returned, not awaited: as socks5
  }
}

/** Bytes as one char each (not TextDecoder's "latin1", which is windows-1252). */
function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

/** HTTP heads are looked at up to this size; a longer one passes unchanged. */
const MAX_HEAD = 64 * 1024;

/** The client side with `host=front`: rewrites the first TLS record or HTTP head it sends. */
class FrontingConn extends WrappedConn {
  readonly #front: string;
  #pending: Uint8Array | null = new Uint8Array(0);

  constructor(inner: Conn, front: string) {
    super(inner);
    this.#front = front;
  }

  override async write(p: Uint8Array): Promise<number> {
    if (this.#pending === null) return await this.inner.write(p);
    const buf = new Uint8Array(this.#pending.length + p.length);
    buf.set(this.#pending);
    buf.set(p, this.#pending.length);
    const out = this.#rewrite(buf);
    if (out === undefined) {
      this.#pending = buf; // not a whole record or head yet
      return p.length;
    }
    this.#pending = null;
    await this.inner.write(out);
    return p.length;
  }

  /** The bytes to send, or undefined to wait for more. */
  #rewrite(b: Uint8Array): Uint8Array | undefined {
    if (b[0] === 0x16) {
      if (b.length < 5) return undefined;
      const len = tlsRecordLength(b)!;
      if (b.length < len) return len > MAX_RECORD ? b : undefined;
      const rec = rewriteServerName(
        b.subarray(0, len),
        this.#front,
        EXT_HIDDEN_NAME,
        encodeServerName,
      );
      if (!rec) return b;
      const out = new Uint8Array(rec.length + b.length - len);
      out.set(rec);
      out.set(b.subarray(len), rec.length);
      return out;
    }
    if (!/^[A-Za-z]/.test(String.fromCharCode(b[0]!))) return b;
    const text = latin1(b.subarray(0, Math.min(b.length, MAX_HEAD)));
    // Only an HTTP request waits for its whole head: another protocol that starts with a letter
    // (an SSH banner) passes at once instead of stalling for a blank line that never comes.
    const eol = text.indexOf("\r\n");
    if (eol < 0 ? !/^[A-Z]{1,16}( |$)/.test(text) : !/^[A-Z]+ \S+ HTTP\/\d/.test(text)) return b;
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) return b.length >= MAX_HEAD ? b : undefined;
    const lines = text.slice(0, end).split("\r\n");
    const i = lines.findIndex((l, k) => k > 0 && /^host\s*:/i.test(l));
    if (i < 0) return b;
    const real = lines[i]!.slice(lines[i]!.indexOf(":") + 1).trim();
    lines.splice(i, 1, `Host: ${this.#front}`, `Gost-Target: ${encodeServerName(real)}`);
    const head = Uint8Array.from(lines.join("\r\n"), (c) => c.charCodeAt(0));
    const out = new Uint8Array(head.length + b.length - end);
    out.set(head);
    out.set(b.subarray(end), head.length);
    return out;
  }

  override async closeWrite(): Promise<void> {
    if (this.#pending && this.#pending.length > 0) await this.inner.write(this.#pending);
    this.#pending = null;
    await this.inner.closeWrite();
  }
}

/** Sends the client's bytes through unchanged, or fronted with `host`. */
export class SniConnector implements Connector {
  readonly #front: string;

  constructor(o: ConnectorOptions) {
    this.#front = o.metadata.string("host");
    // GOST reads `timeout` and never uses it (nothing is waited on): not read here, so it is
    // refused by name rather than accepted and ignored.
  }

  connect(conn: Conn, _n: Network, _address: string, _ctx: ConnectContext): Promise<Conn> {
    return Promise.resolve(this.#front ? new FrontingConn(conn, this.#front) : conn);
  }
}

export function register(reg: Registries): void {
  reg.handlers.register("sni", (o) => new SniHandler(o));
  reg.connectors.register("sni", (o) => new SniConnector(o));
}
