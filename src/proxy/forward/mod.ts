/**
 * Port forwarding: handlers `tcp`, `udp` and `forward` (local forwarding to the service's
 * forwarder targets, through the chain if any) and the no-op `forward` connector (the far end is
 * itself a forwarding service, e.g. `-L mtcp://:8443/:8080` with `-F forward+mtcp://srv:8443`).
 * @module
 */
import { type Conn, formatAddr } from "../../core/conn.ts";
import { errorText, TunnelError } from "../../core/errors.ts";
import { pipeLogged } from "../common.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  Connector,
  HandleContext,
  Handler,
  HandlerOptions,
  Network,
} from "../../core/types.ts";

/** Relays each accepted conn to a forwarder target. */
export class ForwardHandler implements Handler {
  readonly #opts: HandlerOptions;
  readonly #idle: number;

  constructor(opts: HandlerOptions) {
    if (!opts.forwarder) {
      throw new TunnelError(
        `${opts.service}: a forwarding handler needs a target (e.g. -L tcp://:8080/host:port)`,
      );
    }
    this.#opts = opts;
    this.#idle = opts.metadata.duration("idleTimeout", 0);
  }

  handle(conn: Conn, ctx: HandleContext): Promise<void> {
    // The dial is an async frame that ends; the relay is then waited on by a reaction.
    return this.#dial(conn, ctx).then((d) => {
      if (d) return pipeLogged(conn, d.up, d.addr, ctx, this.#idle, { network: d.network });
    });
  }

  /** The target's conn, or null when the dial failed (logged, and the target marked). */
  async #dial(
    conn: Conn,
    ctx: HandleContext,
  ): Promise<{ up: Conn; addr: string; network: Network } | null> {
    const fw = this.#opts.forwarder!;
    const client = conn.remoteAddr.hostname;
    const target = fw.select(client);
    if (!target) throw new TunnelError("no forward target available");
    let addr = target.addr;
    if (!/:\d+$/.test(addr)) addr += ":0";
    const network: Network = target.network ?? (conn.datagram ? "udp" : "tcp");
    try {
      const up = await this.#opts.router.dial(network, addr, {
        signal: ctx.signal,
        client,
        log: ctx.log,
      });
      fw.markOk(target);
      return { up, addr, network };
    } catch (e) {
      fw.markFailed(target);
      ctx.log.error(`${formatAddr(conn.remoteAddr)} -> ${addr}: ${errorText(e)}`, { dst: addr });
      return null;
    }
  }
}

/** `forward` connector: the node already leads to the target; the conn is used as is. */
export class ForwardConnector implements Connector {
  connect(conn: Conn): Promise<Conn> {
    return Promise.resolve(conn);
  }
}

export function register(reg: Registries): void {
  // rtcp's and rudp's handlers forward each peer the listener yields to the target, as tcp's.
  for (const name of ["tcp", "udp", "forward", "rtcp", "rudp"]) {
    reg.handlers.register(name, (opts) => new ForwardHandler(opts));
  }
  reg.connectors.register("forward", () => new ForwardConnector());
}
