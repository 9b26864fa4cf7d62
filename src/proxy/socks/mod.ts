/** SOCKS4/4a and SOCKS5 handlers and connectors. @module */
import type { Registries } from "../../core/registry.ts";
import { Socks4Connector, Socks4Handler } from "./socks4.ts";
import { Socks5Connector, Socks5Handler } from "./socks5.ts";

export function register(reg: Registries): void {
  for (const n of ["socks5", "socks"]) {
    reg.handlers.register(n, (o) => new Socks5Handler(o));
    reg.connectors.register(n, (o) => new Socks5Connector(o));
  }
  for (const n of ["socks4", "socks4a"]) {
    reg.handlers.register(n, (o) => new Socks4Handler(o));
    reg.connectors.register(n, (o) => new Socks4Connector(o));
  }
}
