/**
 * Port forwarding: handlers `tcp`, `udp` and `forward` (local forwarding to the service's
 * forwarder targets, through the chain if any) and the no-op `forward` connector (the far end is
 * itself a forwarding service, e.g. `-L mtcp://:8443/:8080` with `-F forward+mtcp://srv:8443`).
 * @module
 */
import { type Conn, formatAddr } from "../../core/conn.ts";
import { errorText, TunnelError } from "../../core/errors.ts";
import { relay } from "../../core/relay.ts";
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

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const fw = this.#opts.forwarder!;
    const client = conn.remoteAddr.hostname;
    const target = fw.select(client);
    if (!target) throw new TunnelError("no forward target available");
    let addr = target.addr;
    if (!/:\d+$/.test(addr)) addr += ":0";
    const network: Network = target.network ?? (conn.datagram ? "udp" : "tcp");
    let up: Conn;
    try {
      up = await this.#opts.router.dial(network, addr, {
        signal: ctx.signal,
        client,
        log: ctx.log,
      });
      fw.markOk(target);
    } catch (e) {
      fw.markFailed(target);
      ctx.log.error(`${formatAddr(conn.remoteAddr)} -> ${addr}: ${errorText(e)}`, { dst: addr });
      return;
    }
    ctx.log.debug(`${formatAddr(conn.remoteAddr)} <-> ${addr}`, { dst: addr, network });
    const t0 = performance.now();
    const r = await relay(conn, up, { signal: ctx.signal, idleTimeout: this.#idle });
    ctx.log.debug(`${formatAddr(conn.remoteAddr)} >-< ${addr}`, {
      dst: addr,
      duration: Math.round((performance.now() - t0) * 1e6),
      inputBytes: r.aToB,
      outputBytes: r.bToA,
    });
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
