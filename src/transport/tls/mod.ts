/**
 * `tls` (TLS over TCP) and `mtls` (smux over TLS) listeners and dialers.
 * @module
 */
import { dialHost, splitHostPort } from "../../core/addr.ts";
import type { Conn } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import { handshakeListener } from "../../core/serve_listener.ts";
import type { Registries } from "../../core/registry.ts";
import type { DialContext, Listener, ListenerOptions, TlsOptions } from "../../core/types.ts";
import { smuxConfigFromMetadata, smuxFactory } from "../../mux/smux/mod.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";
import { serverCert } from "./cert.ts";
import { type NativeTlsConn, nativeTlsListener, nativeTlsUsable } from "./native.ts";
import { type ServerTls, serverTls, tlsClientWithin, tlsConnect, tlsServer } from "./stream.ts";

/**
 * Binds a TLS listener on TCP with the configured or automatic certificate; with a `caFile`,
 * clients must present a certificate signed by it. Every handshake runs under a deadline: a
 * client that stops mid-ClientHello is closed then. Deno's own TLS serves it where it can
 * (`native.ts`: less memory per conn, no JavaScript stream per record); with a `caFile`, or where
 * a pending handshake could not be cut short, node:tls runs on the accepted TCP conn.
 */
export async function listenTls(
  opts: ListenerOptions,
  alpn?: string[],
): Promise<Listener> {
  const { cert, key } = await serverCert(opts.tls);
  let ca: string | undefined;
  if (opts.tls?.caFile) {
    try {
      ca = await Deno.readTextFile(opts.tls.caFile);
    } catch (e) {
      throw new ConfigError("tls.caFile", `cannot read ${opts.tls.caFile}: ${errorText(e)}`);
    }
  }
  let server: ServerTls;
  try {
    server = serverTls({ cert, key, ca, alpn });
  } catch (e) {
    throw new ConfigError("tls", `cannot use the certificate: ${errorText(e)}`);
  }
  const native = !ca && nativeTlsUsable();
  return handshakeListener(
    native ? nativeTlsListener(opts.addr, cert, key, alpn) : TcpListener.listen(opts.addr),
    {
      name: "tls",
      log: opts.log,
      timeout: handshakeTimeout(opts),
      backlog: opts.metadata.int("backlog", 128),
      handshake: native
        ? (raw) => (raw as NativeTlsConn).handshake()
        : (raw) => tlsServer(raw, server),
    },
  );
}

/** `handshakeTimeout` (GOST's ws key, used for every TLS listener here), 15 s by default. */
function handshakeTimeout(opts: ListenerOptions): number {
  return opts.metadata.duration(["handshakeTimeout", "tls.handshakeTimeout"], 15_000);
}

/** A TLS client handshake on the raw conn to `addr`, as a node's dialer TLS config says. */
export async function dialTls(
  addr: string,
  ctx: DialContext,
  t: TlsOptions | undefined,
): Promise<Conn> {
  const { host, port } = splitHostPort(addr);
  let ca: string | undefined;
  let cert: string | undefined;
  let key: string | undefined;
  try {
    if (t?.caFile) ca = await Deno.readTextFile(t.caFile);
    // A client certificate, for servers that require one.
    if (t?.certFile && t.keyFile) {
      [cert, key] = await Promise.all([
        Deno.readTextFile(t.certFile),
        Deno.readTextFile(t.keyFile),
      ]);
    }
  } catch (e) {
    throw new ConfigError("tls", `cannot read a certificate file: ${errorText(e)}`);
  }
  const opts = {
    serverName: t?.serverName || host || "localhost",
    secure: t?.secure ?? false,
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
  };
  // First hop: TLS on the native socket is much faster than TLS over a Conn.
  if (ctx.direct) {
    return await tlsConnect(dialHost(host), port, {
      ...opts,
      signal: ctx.signal,
    });
  }
  return await tlsClientWithin(await ctx.netDial(addr), { ...opts, signal: ctx.signal });
}

export function register(reg: Registries): void {
  reg.listeners.register("tls", (o): Promise<Listener> => listenTls(o));
  reg.dialers.register("tls", (o) => ({ dial: (addr, ctx) => dialTls(addr, ctx, o.tls) }));
  reg.listeners.register("mtls", async (o) => {
    const mux = smuxFactory(smuxConfigFromMetadata(o.metadata, 1), { log: o.log });
    return new MuxListener(await listenTls(o), mux, o.log, o.metadata.int("backlog", 128), o.guard);
  });
  reg.dialers.register(
    "mtls",
    (o) =>
      new MuxDialer(
        (addr, ctx) => dialTls(addr, ctx, o.tls),
        smuxFactory(smuxConfigFromMetadata(o.metadata, 1), { log: o.log }),
      ),
  );
}
