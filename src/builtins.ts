/**
 * The one place that lists every built-in type. Each transport or proxy folder exports a
 * `register(reg)` function; adding a type means one folder plus one line here.
 * @module
 */
import { createRegistries, type Registries } from "./core/registry.ts";
import type { Config } from "./config/model.ts";
import { parseCli } from "./config/cli.ts";
import { knownNames } from "./config/names.ts";
import * as tcp from "./transport/tcp/mod.ts";
import * as udp from "./transport/udp/mod.ts";
import * as mtcp from "./transport/mtcp/mod.ts";
import * as tls from "./transport/tls/mod.ts";
import * as ws from "./transport/ws/mod.ts";
import * as kcp from "./transport/kcp/mod.ts";
import * as mtmux from "./transport/mtmux/mod.ts";
import * as rtcp from "./transport/rtcp/mod.ts";
import * as forward from "./proxy/forward/mod.ts";
import * as http from "./proxy/http/mod.ts";
import * as socks from "./proxy/socks/mod.ts";
import * as relay from "./proxy/relay/mod.ts";
import * as auto from "./proxy/auto.ts";
import * as ss from "./proxy/ss/mod.ts";
import * as tunnel from "./proxy/tunnel/mod.ts";
import * as sni from "./proxy/sni/mod.ts";
import * as sshdHandler from "./proxy/sshd/mod.ts";
import * as dnsListener from "./transport/dns/mod.ts";
import * as redirect from "./transport/redirect/mod.ts";
import * as sshd from "./transport/sshd/mod.ts";
import * as ssh from "./transport/ssh/mod.ts";
import * as tunListener from "./transport/tun/mod.ts";
import * as tunHandler from "./proxy/tun/mod.ts";
import * as tapHandler from "./proxy/tap/mod.ts";
import { DnsHandler } from "./resolver/dns_handler.ts";
import { DNS_PACKET } from "./resolver/dns_packet.ts";

/** Registers every built-in listener, handler, dialer and connector into `reg`. */
export function registerBuiltins(reg: Registries): Registries {
  // -- transports (listener + dialer) --
  tcp.register(reg);
  udp.register(reg);
  mtcp.register(reg);
  tls.register(reg);
  ws.register(reg);
  kcp.register(reg);
  mtmux.register(reg);
  rtcp.register(reg);
  redirect.register(reg);
  sshd.register(reg);
  ssh.register(reg);
  tunListener.register(reg);
  // -- proxy protocols (handler + connector) --
  forward.register(reg);
  http.register(reg);
  socks.register(reg);
  relay.register(reg);
  auto.register(reg);
  ss.register(reg);
  tunnel.register(reg);
  sni.register(reg);
  sshdHandler.register(reg);
  tunHandler.register(reg);
  tapHandler.register(reg);
  // -- dns: the listener is a transport, the handler serves the resolver's exchanges --
  dnsListener.register(reg);
  reg.handlers.register("dns", async (o) => {
    await DNS_PACKET.load();
    return new DnsHandler(o);
  });
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
