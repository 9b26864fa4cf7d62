/** The HTTP proxy: handler and connector. @module */
import type { Registries } from "../../core/registry.ts";
import { HttpConnector } from "./connector.ts";
import { HttpHandler } from "./handler.ts";

export function register(reg: Registries): void {
  reg.handlers.register("http", (o) => new HttpHandler(o));
  reg.connectors.register("http", (o) => new HttpConnector(o));
}
