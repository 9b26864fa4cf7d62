/**
 * `red` / `redir` / `redirect`: a transparent TCP proxy (docs/gost-proxies.md "red"). Traffic that
 * netfilter REDIRECTs (or DNATs) to the listener is sent on, through the chain, to where the client
 * was going: its original destination, read from the kernel (Linux `SO_ORIGINAL_DST`). A
 * connection that was not redirected would be sent back to the listener itself; it is refused.
 * With `tproxy=true` (GOST's TPROXY mode) the listening socket is made transparent and netfilter's
 * TPROXY target delivers connections unchanged: their local address is the original destination.
 * `sniffing` and `mitm.*` are refused as not supported yet. `redu` is the UDP side (TPROXY only,
 * `udp.ts`): each client ⇄ destination pair is a datagram conn sent on to its destination.
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { attachedTo, formatAddr } from "../../core/conn.ts";
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
import { originalDst, originalDstUnavailable, setTransparent } from "./original_dst.ts";
import { createReduListener } from "./udp.ts";
import { addressedToListener, unmapV4 } from "./self.ts";

function refuseUnavailable(path: string): void {
  const why = originalDstUnavailable();
  if (why) throw new ConfigError(path, `the transparent proxy cannot run here: ${why}`);
}

/** The redirect listener: TCP, checked at start that original destinations can be read. */
export async function createRedirectListener(o: ListenerOptions): Promise<Listener> {
  refuseUnavailable(o.metadata.path);
  const tproxy = o.metadata.bool("tproxy");
  const l = await createTcpListener(o);
  if (!tproxy) return l;
  try {
    setTransparent(l.addr);
  } catch (e) {
    await l.close();
    throw new ConfigError(`${o.metadata.path}.tproxy`, errorText(e));
  }
  return new TproxyListener(l);
}

/** Accepted conns that came to the listener's own address, not through TPROXY (tagged). */
interface Tagged {
  notDiverted?: boolean;
}

/**
 * TPROXY mode: a conn's local address is its original destination, so one addressed to the
 * listener itself (not diverted) is tagged here, where the listener's own address is known.
 */
class TproxyListener implements Listener {
  readonly #inner: Listener;
  constructor(inner: Listener) {
    this.#inner = inner;
  }
  get addr(): NetAddr {
    return this.#inner.addr;
  }
  async accept(): Promise<Conn | null> {
    const c = await this.#inner.accept();
    if (c && addressedToListener(c.localAddr, this.addr)) (c as Tagged).notDiverted = true;
    return c;
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function notDiverted(conn: Conn): boolean {
  return attachedTo<boolean>(conn, "notDiverted") === true;
}

/** Sends each redirected conn to its original destination. */
export class RedirectHandler implements Handler {
  readonly #o: HandlerOptions;
  /** TPROXY mode: the conn's local address is where the client was going. */
  readonly #tproxy: boolean;

  constructor(o: HandlerOptions) {
    refuseUnavailable(o.metadata.path);
    this.#o = o;
    this.#tproxy = o.metadata.bool("tproxy");
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    let dst: string;
    try {
      dst = this.#tproxy
        ? (notDiverted(conn)
          ? ""
          : formatAddr({ ...conn.localAddr, hostname: unmapV4(conn.localAddr.hostname) }))
        : originalDst(conn.localAddr, conn.remoteAddr);
    } catch (e) {
      ctx.log.warn(errorText(e));
      return;
    }
    if (dst === "" || (!this.#tproxy && dst === formatAddr(conn.localAddr))) {
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

/** Sends each redu session (a client ⇄ original destination pair) on to its destination. */
export class ReduHandler implements Handler {
  readonly #o: HandlerOptions;

  constructor(o: HandlerOptions) {
    this.#o = o;
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const dst = formatAddr(conn.localAddr);
    let up: Conn;
    try {
      up = await this.#o.router.dial("udp", dst, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`redu: ${dst}: ${errorText(e)}`, { dst });
      return;
    }
    ctx.log.debug(`${formatAddr(conn.remoteAddr)} <-> ${dst}`, { dst });
    // The listener ends a session idle for its ttl, which ends this relay.
    await relay(conn, up, { signal: ctx.signal });
  }
}

export function register(reg: Registries): void {
  reg.listeners.register("redu", createReduListener);
  reg.handlers.register("redu", (o) => new ReduHandler(o));
  for (const name of ["red", "redir", "redirect"]) {
    reg.listeners.register(name, createRedirectListener);
    reg.handlers.register(name, (o) => new RedirectHandler(o));
  }
}
