/**
 * `mtcp`: smux over one TCP connection (gost.md §4.3), `mux.version` 2 by default.
 * @module
 */
import type { Registries } from "../../core/registry.ts";
import { smuxConfigFromMetadata } from "../../mux/smux/mod.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";

export function register(reg: Registries): void {
  reg.listeners.register("mtcp", (o) => {
    const cfg = smuxConfigFromMetadata(o.metadata, 2);
    return Promise.resolve(
      new MuxListener(TcpListener.listen(o.addr), cfg, o.log, o.metadata.int("backlog", 128)),
    );
  });
  reg.dialers.register(
    "mtcp",
    (o) =>
      new MuxDialer((addr, ctx) => ctx.netDial(addr), smuxConfigFromMetadata(o.metadata, 2), o.log),
  );
}
