/**
 * `red` / `redir` / `redirect`: a transparent TCP proxy (docs/gost-proxies.md "red"). Traffic that
 * netfilter REDIRECTs (or DNATs) to the listener is sent on, through the chain, to where the client
 * was going: its original destination, read from the kernel (Linux `SO_ORIGINAL_DST`). A
 * connection that was not redirected would be sent back to the listener itself; it is refused.
 * GOST's TPROXY mode (`tproxy`), `sniffing` and `mitm.*` are refused as not supported yet; `redu`
 * (UDP) is not built.
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import { formatAddr } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  HandleContext,
  Handler,
  HandlerOptions,
  Listener,
  ListenerOptions,
} from "../../core/types.ts";
import { relay } from "../../core/relay.ts";
import { createTcpListener } from "../tcp/listener.ts";
import { originalDst, originalDstUnavailable } from "./original_dst.ts";

function refuseUnavailable(path: string): void {
  const why = originalDstUnavailable();
  if (why) throw new ConfigError(path, `the transparent proxy cannot run here: ${why}`);
}

/** The redirect listener: TCP, checked at start that original destinations can be read. */
export function createRedirectListener(o: ListenerOptions): Promise<Listener> {
  refuseUnavailable(o.metadata.path);
  return createTcpListener(o);
}

/** Sends each redirected conn to its original destination. */
export class RedirectHandler implements Handler {
  readonly #o: HandlerOptions;

  constructor(o: HandlerOptions) {
    refuseUnavailable(o.metadata.path);
    this.#o = o;
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    let dst: string;
    try {
      dst = originalDst(conn.localAddr, conn.remoteAddr);
    } catch (e) {
      ctx.log.warn(errorText(e));
      return;
    }
    if (dst === formatAddr(conn.localAddr)) {
      ctx.log.warn(`red: ${formatAddr(conn.remoteAddr)} was not redirected: refused (a loop)`);
      return;
    }
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", dst, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`red: ${dst}: ${errorText(e)}`, { dst });
      return;
    }
    ctx.log.debug(`${formatAddr(conn.remoteAddr)} <-> ${dst}`, { dst });
    await relay(conn, up, { signal: ctx.signal });
  }
}

export function register(reg: Registries): void {
  for (const name of ["red", "redir", "redirect"]) {
    reg.listeners.register(name, createRedirectListener);
    reg.handlers.register(name, (o) => new RedirectHandler(o));
  }
}
