/**
 * `tls` (TLS over TCP) and `mtls` (smux over TLS) listeners and dialers.
 * @module
 */
import { listenHost, splitHostPort } from "../../core/addr.ts";
import type { Conn } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Registries } from "../../core/registry.ts";
import type { DialContext, Listener, ListenerOptions, TlsOptions } from "../../core/types.ts";
import { smuxConfigFromMetadata } from "../../mux/smux/mod.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";
import { serverCert } from "./cert.ts";
import { tlsClient } from "./stream.ts";

/** Binds a TLS listener on TCP with the configured or automatic certificate. */
export async function listenTls(opts: ListenerOptions): Promise<TcpListener> {
  const { cert, key } = await serverCert(opts.tls);
  const { host, port } = splitHostPort(opts.addr);
  try {
    return new TcpListener(Deno.listenTls({ hostname: listenHost(host), port, cert, key }));
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) throw e;
    throw new ConfigError("tls", `cannot use the certificate: ${errorText(e)}`);
  }
}

/** A TLS client handshake on the raw conn to `addr`, as a node's dialer TLS config says. */
export async function dialTls(
  addr: string,
  ctx: DialContext,
  t: TlsOptions | undefined,
): Promise<Conn> {
  const raw = await ctx.netDial(addr);
  const host = splitHostPort(addr).host;
  let ca: string | undefined;
  if (t?.caFile) ca = await Deno.readTextFile(t.caFile);
  try {
    return await tlsClient(raw, {
      serverName: t?.serverName || host || "localhost",
      secure: t?.secure ?? false,
      ...(ca ? { ca } : {}),
    });
  } catch (e) {
    raw.close();
    throw e;
  }
}

export function register(reg: Registries): void {
  reg.listeners.register("tls", (o): Promise<Listener> => listenTls(o));
  reg.dialers.register("tls", (o) => ({ dial: (addr, ctx) => dialTls(addr, ctx, o.tls) }));
  reg.listeners.register("mtls", async (o) => {
    const cfg = smuxConfigFromMetadata(o.metadata, 1);
    return new MuxListener(await listenTls(o), cfg, o.log, o.metadata.int("backlog", 128));
  });
  reg.dialers.register(
    "mtls",
    (o) =>
      new MuxDialer(
        (addr, ctx) => dialTls(addr, ctx, o.tls),
        smuxConfigFromMetadata(o.metadata, 1),
        o.log,
      ),
  );
}
