/**
 * The one place that lists every built-in type. Each transport or proxy folder exports a
 * `register(reg)` function; adding a type means one folder plus one line here. The types most
 * configs use are imported with the program; the rest with their first use (`registerLazily`: a
 * process pays for KCP, WebSocket, SSH, tun devices and the rest only when it runs them).
 * @module
 */
import {
  createRegistries,
  registerLazily,
  type Registrar,
  type Registries,
  type TypeNames,
} from "./core/registry.ts";
import type { Config } from "./config/model.ts";
import { parseCli } from "./config/cli.ts";
import { knownNames } from "./config/names.ts";
import * as tcp from "./transport/tcp/mod.ts";
import * as udp from "./transport/udp/mod.ts";
import * as mtcp from "./transport/mtcp/mod.ts";
import * as tls from "./transport/tls/mod.ts";
import * as rtcp from "./transport/rtcp/mod.ts";
import * as forward from "./proxy/forward/mod.ts";
import * as http from "./proxy/http/mod.ts";
import * as socks from "./proxy/socks/mod.ts";
import * as relay from "./proxy/relay/mod.ts";
import * as auto from "./proxy/auto.ts";
import * as sni from "./proxy/sni/mod.ts";

/**
 * The types imported on first use: the names each group registers, and its modules. A test
 * loads every group and checks the names (tests/startup_graph_test.ts).
 */
export const LAZY_TYPES: readonly {
  names: TypeNames;
  load: () => Promise<readonly Registrar[]>;
}[] = [
  {
    names: { listeners: ["ws", "wss", "mws", "mwss"], dialers: ["ws", "wss", "mws", "mwss"] },
    load: () => Promise.all([import("./transport/ws/mod.ts")]),
  },
  {
    names: { listeners: ["kcp"], dialers: ["kcp"] },
    load: () => Promise.all([import("./transport/kcp/mod.ts")]),
  },
  {
    names: { listeners: ["mtmux"], dialers: ["mtmux"] },
    load: () => Promise.all([import("./transport/mtmux/mod.ts")]),
  },
  {
    names: {
      listeners: ["redu", "red", "redir", "redirect"],
      handlers: ["redu", "red", "redir", "redirect"],
    },
    load: () => Promise.all([import("./transport/redirect/mod.ts")]),
  },
  {
    names: {
      listeners: ["ssh", "sshd"],
      dialers: ["ssh", "sshd"],
      connectors: ["sshd"],
      handlers: ["sshd"],
    },
    load: () =>
      Promise.all([
        import("./transport/ssh/mod.ts"),
        import("./transport/sshd/mod.ts"),
        import("./proxy/sshd/mod.ts"),
      ]),
  },
  {
    names: { listeners: ["tun", "tap"], handlers: ["tun", "tap"] },
    load: () =>
      Promise.all([
        import("./transport/tun/mod.ts"),
        import("./proxy/tun/mod.ts"),
        import("./proxy/tap/mod.ts"),
      ]),
  },
  {
    names: { handlers: ["ss", "ssu"], connectors: ["ss", "ssu"] },
    load: () => Promise.all([import("./proxy/ss/mod.ts")]),
  },
  {
    names: { handlers: ["tunnel"], connectors: ["tunnel"] },
    load: () => Promise.all([import("./proxy/tunnel/mod.ts")]),
  },
  {
    // The listener is a transport; the handler serves the resolver's exchanges.
    names: { listeners: ["dns"], handlers: ["dns"] },
    load: () =>
      Promise.all([import("./transport/dns/mod.ts"), import("./resolver/dns_handler.ts")]),
  },
];

/** Registers every built-in listener, handler, dialer and connector into `reg`. */
export function registerBuiltins(reg: Registries): Registries {
  // -- transports (listener + dialer) --
  tcp.register(reg);
  udp.register(reg);
  mtcp.register(reg);
  tls.register(reg);
  rtcp.register(reg);
  // -- proxy protocols (handler + connector) --
  forward.register(reg);
  http.register(reg);
  socks.register(reg);
  relay.register(reg);
  auto.register(reg);
  sni.register(reg);
  for (const t of LAZY_TYPES) registerLazily(reg, t.names, t.load);
  return reg;
}

/** Registries with every built-in type. */
export function builtinRegistries(): Registries {
  return registerBuiltins(createRegistries());
}

/**
 * The config a GOST command line describes (`-L` services, `-F` nodes), with the type-name
 * fallbacks decided against GOST's names and those registered in `reg` (the built-ins by default).
 */
export function cliConfig(
  services: string[],
  nodes: string[],
  reg: Registries = builtinRegistries(),
): Config {
  return parseCli(services, nodes, knownNames(reg));
}
