/**
 * `ws`, `wss`, `mws`, `mwss` (gost.md §4.4–4.5): WebSocket on TCP or TLS, optionally with smux
 * (mux.version 1 by default) inside one WebSocket connection.
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { errorText } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import type { Metadata } from "../../core/metadata.ts";
import { AsyncQueue } from "../../core/queue.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  DialContext,
  Dialer,
  Listener,
  ListenerOptions,
  TlsOptions,
} from "../../core/types.ts";
import { smuxConfigFromMetadata } from "../../mux/smux/mod.ts";
import { withDeadline } from "../../proxy/common.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";
import { dialTls, listenTls } from "../tls/mod.ts";
import { WsConn } from "./conn.ts";
import { clientUpgrade, serverUpgrade } from "./handshake.ts";

interface WsOptions {
  path: string;
  host: string;
  header: Record<string, string>;
  keepalive: boolean;
  ttl: number;
  handshakeTimeout: number;
  backlog: number;
}

function wsOptions(md: Metadata): WsOptions {
  const path = md.string(["path", "ws.path"], "/ws");
  return {
    path: path.startsWith("/") ? path : `/${path}`,
    host: md.string(["host", "ws.host"]),
    header: md.map(["header", "ws.header"]),
    keepalive: md.bool(["keepalive", "ws.keepalive"]),
    ttl: md.duration(["ttl", "keepalive.interval"], 15_000),
    handshakeTimeout: md.duration(["handshakeTimeout", "ws.handshakeTimeout"], 15_000),
    backlog: md.int(["backlog", "ws.backlog"], 128),
  };
}

/** Accepts TCP/TLS conns and upgrades those asking for `path`. */
export class WsListener implements Listener {
  readonly #inner: Listener;
  readonly #o: WsOptions;
  readonly #log: Logger;
  readonly #queue: AsyncQueue<Conn>;
  readonly #pending = new Set<Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  #closed = false;

  constructor(inner: Listener, o: WsOptions, log: Logger) {
    this.#inner = inner;
    this.#o = o;
    this.#log = log;
    this.#queue = new AsyncQueue(o.backlog);
    this.#loop = this.#acceptLoop();
  }

  get addr(): NetAddr {
    return this.#inner.addr;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let raw: Conn | null;
      try {
        raw = await this.#inner.accept();
      } catch (e) {
        if (this.#closed) return;
        this.#log.warn(`accept: ${errorText(e)}`);
        continue;
      }
      if (!raw) return;
      const t = this.#upgrade(raw);
      this.#tasks.add(t);
      t.finally(() => this.#tasks.delete(t));
    }
  }

  async #upgrade(raw: Conn): Promise<void> {
    this.#pending.add(raw);
    try {
      const r = await withDeadline(
        raw,
        this.#o.handshakeTimeout,
        () => serverUpgrade(raw, this.#o.path),
      );
      if (!r.ok) {
        if (r.status !== "closed") this.#log.debug(`ws: refused request: ${r.status}`);
        raw.close();
        return;
      }
      if (!this.#queue.push(new WsConn(raw, r.br, { client: false }))) {
        this.#log.warn("ws: backlog full, connection closed");
        raw.close();
      }
    } catch (e) {
      this.#log.debug(`ws: handshake failed: ${errorText(e)}`);
      raw.close();
    } finally {
      this.#pending.delete(raw);
    }
  }

  accept(): Promise<Conn | null> {
    return this.#queue.shift();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#inner.close();
    await this.#loop;
    for (const c of this.#pending) c.close();
    await Promise.all(this.#tasks);
    for (const c of this.#queue.close()) c.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Upgrades the raw conn to `addr` (TLS first for wss). */
async function dialWs(
  addr: string,
  ctx: DialContext,
  o: WsOptions,
  tls: TlsOptions | undefined,
  secure: boolean,
): Promise<Conn> {
  const raw = secure ? await dialTls(addr, ctx, tls) : await ctx.netDial(addr);
  try {
    const host = o.host || (addr.startsWith(":") ? `localhost${addr}` : addr);
    const br = await withDeadline(
      raw,
      o.handshakeTimeout,
      () => clientUpgrade(raw, { host, path: o.path, headers: o.header }),
    );
    return new WsConn(raw, br, { client: true, pingInterval: o.keepalive ? o.ttl : 0 });
  } catch (e) {
    raw.close();
    throw e;
  }
}

async function listener(o: ListenerOptions, secure: boolean): Promise<Listener> {
  const inner = secure ? await listenTls(o) : TcpListener.listen(o.addr);
  return new WsListener(inner, wsOptions(o.metadata), o.log);
}

export function register(reg: Registries): void {
  for (const secure of [false, true]) {
    const name = secure ? "wss" : "ws";
    reg.listeners.register(name, (o) => listener(o, secure));
    reg.dialers.register(name, (o): Dialer => {
      const w = wsOptions(o.metadata);
      return { dial: (addr, ctx) => dialWs(addr, ctx, w, o.tls, secure) };
    });
    reg.listeners.register(`m${name}`, async (o) => {
      const cfg = smuxConfigFromMetadata(o.metadata, 1);
      return new MuxListener(await listener(o, secure), cfg, o.log, o.metadata.int("backlog", 128));
    });
    reg.dialers.register(`m${name}`, (o) => {
      const w = wsOptions(o.metadata);
      return new MuxDialer(
        (addr, ctx) => dialWs(addr, ctx, w, o.tls, secure),
        smuxConfigFromMetadata(o.metadata, 1),
        o.log,
      );
    });
  }
}
