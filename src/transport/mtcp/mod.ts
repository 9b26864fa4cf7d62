/**
 * `mtcp`: smux over one TCP connection (docs/gost-config.md §4.3), `mux.version` 2 by default.
 * @module
 */
import type { Metadata } from "../../core/metadata.ts";
import type { Logger } from "../../core/log.ts";
import type { MuxFactory } from "../../core/mux.ts";
import type { Registries } from "../../core/registry.ts";
import { smuxConfigFromMetadata, smuxFactory } from "../../mux/smux/mod.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";

/** The multiplexer of both ends. */
function mux(md: Metadata, log: Logger): MuxFactory {
  return smuxFactory(smuxConfigFromMetadata(md, 2), { log });
}

export function register(reg: Registries): void {
  reg.listeners.register("mtcp", (o) =>
    Promise.resolve(
      new MuxListener(
        TcpListener.listen(o.addr),
        mux(o.metadata, o.log),
        o.log,
        o.metadata.int("backlog", 128),
        o.guard,
      ),
    ));
  reg.dialers.register(
    "mtcp",
    (o) => new MuxDialer((addr, ctx) => ctx.netDial(addr), mux(o.metadata, o.log)),
  );
}
