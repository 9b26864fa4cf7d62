/**
 * `tls` (TLS over TCP) and `mtls` (smux over TLS) listeners and dialers.
 * @module
 */
import { dialHost, listenHost, splitHostPort } from "../../core/addr.ts";
import type { Conn } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Registries } from "../../core/registry.ts";
import type { DialContext, Listener, ListenerOptions, TlsOptions } from "../../core/types.ts";
import { smuxConfigFromMetadata } from "../../mux/smux/mod.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";
import { serverCert } from "./cert.ts";
import { tlsClient, tlsConnect, tlsServer } from "./stream.ts";
import type { NetAddr } from "../../core/conn.ts";
import { AsyncQueue } from "../../core/queue.ts";
import type { Logger } from "../../core/log.ts";
import { withDeadline } from "../../proxy/common.ts";

/** TLS on accepted TCP conns through node:tls, for mutual TLS (client certificates). */
class MutualTlsListener implements Listener {
  readonly #inner: TcpListener;
  readonly #queue = new AsyncQueue<Conn>(128);
  readonly #tasks = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  constructor(
    inner: TcpListener,
    readonly pair: { cert: string; key: string; ca: string },
    readonly log: Logger,
  ) {
    this.#inner = inner;
    this.#loop = this.#run();
  }
  get addr(): NetAddr {
    return this.#inner.addr;
  }
  async #run(): Promise<void> {
    for (;;) {
      const raw = await this.#inner.accept().catch(() => null);
      if (!raw) return;
      const t = withDeadline(raw, 15_000, () => tlsServer(raw, this.pair)).then(
        (c) => void (this.#queue.push(c) || c.close()),
        (e) => {
          this.log.debug(`tls: handshake refused: ${errorText(e)}`);
          raw.close();
        },
      );
      this.#tasks.add(t);
      t.finally(() => this.#tasks.delete(t));
    }
  }
  accept(): Promise<Conn | null> {
    return this.#queue.shift();
  }
  async close(): Promise<void> {
    await this.#inner.close();
    await this.#loop;
    await Promise.all(this.#tasks);
    for (const c of this.#queue.close()) c.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Binds a TLS listener on TCP with the configured or automatic certificate; with a `caFile`,
 * clients must present a certificate signed by it.
 */
export async function listenTls(opts: ListenerOptions): Promise<Listener> {
  const { cert, key } = await serverCert(opts.tls);
  const { host, port } = splitHostPort(opts.addr);
  if (opts.tls?.caFile) {
    let ca: string;
    try {
      ca = await Deno.readTextFile(opts.tls.caFile);
    } catch (e) {
      throw new ConfigError("tls.caFile", `cannot read ${opts.tls.caFile}: ${errorText(e)}`);
    }
    return new MutualTlsListener(TcpListener.listen(opts.addr), { cert, key, ca }, opts.log);
  }
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
  const raw = await ctx.netDial(addr);
  try {
    return await tlsClient(raw, opts);
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
