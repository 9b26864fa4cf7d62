/** GOST's relay protocol: handler and connector. @module */
import type { Registries } from "../../core/registry.ts";
import { RelayConnector, RelayHandler } from "./relay.ts";

export function register(reg: Registries): void {
  reg.handlers.register("relay", (o) => new RelayHandler(o));
  reg.connectors.register("relay", (o) => new RelayConnector(o));
}
