/**
 * `ws`, `wss`, `mws`, `mwss` (docs/websocket.md §4): WebSocket on TCP or TLS, optionally with smux
 * (mux.version 1 by default) inside one WebSocket connection.
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import type { Logger } from "../../core/log.ts";
import type { Metadata } from "../../core/metadata.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  DialContext,
  Dialer,
  Listener,
  ListenerOptions,
  TlsOptions,
} from "../../core/types.ts";
import { smuxConfigFromMetadata, smuxFactory } from "../../mux/smux/mod.ts";
import { withDeadline, withSignal } from "../../core/deadline.ts";
import { handshakeListener } from "../../core/serve_listener.ts";
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
export function wsListener(inner: Listener, o: WsOptions, log: Logger): Listener {
  return handshakeListener(inner, {
    name: "ws",
    log,
    timeout: o.handshakeTimeout,
    backlog: o.backlog,
    handshake: async (raw) => {
      const r = await serverUpgrade(raw, o.path);
      if (r.ok) return new WsConn(raw, r.br, { client: false });
      if (r.status !== "closed") log.debug(`ws: refused request: ${r.status}`);
      return null;
    },
  });
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
      () =>
        withSignal(
          raw,
          ctx.signal,
          () => clientUpgrade(raw, { host, path: o.path, headers: o.header }),
        ),
    );
    return new WsConn(raw, br, { client: true, pingInterval: o.keepalive ? o.ttl : 0 });
  } catch (e) {
    raw.close();
    throw e;
  }
}

async function listener(o: ListenerOptions, secure: boolean): Promise<Listener> {
  const inner = secure ? await listenTls(o) : TcpListener.listen(o.addr);
  return wsListener(inner, wsOptions(o.metadata), o.log);
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
      const mux = smuxFactory(smuxConfigFromMetadata(o.metadata, 1), { log: o.log });
      return new MuxListener(
        await listener(o, secure),
        mux,
        o.log,
        o.metadata.int("backlog", 128),
        o.guard,
      );
    });
    reg.dialers.register(`m${name}`, (o) => {
      const w = wsOptions(o.metadata);
      return new MuxDialer(
        (addr, ctx) => dialWs(addr, ctx, w, o.tls, secure),
        smuxFactory(smuxConfigFromMetadata(o.metadata, 1), { log: o.log }),
      );
    });
  }
}
