/**
 * GOST's registered type names (docs/gost-config.md §1.6). The CLI's fallbacks (unknown handler ⇒
 * `auto`, unknown listener ⇒ `tcp`, unknown connector ⇒ `http`, unknown dialer ⇒ `tcp`) are
 * decided against these lists joined with the names a runtime's registries hold: `-L kcp://...`
 * means the kcp listener even in a build without it (which then fails with a clear "unknown
 * listener type"), and a type only Burrow registers (`mtmux`) is never mistaken for `tcp`.
 * @module
 */
import type { Registries } from "../core/registry.ts";

export const GOST_HANDLERS: ReadonlySet<string> = new Set(
  ("api auto dns file tcp udp forward rtcp rudp runix http http2 http3 masque metrics red redir " +
    "redirect redu relay router serial sni socks4 socks4a socks5 socks ss ssu sshd tap tun tungo " +
    "tunnel unix").split(" "),
);

export const GOST_LISTENERS: ReadonlySet<string> = new Set(
  ("dns dtls ftcp grpc h2c h2 http2 h3 http3 wt icmp icmp6 kcp mtcp mtls mws mwss ohttp otls pht " +
    "phts quic red redir redirect redu rtcp rudp runix serial ssh sshd stdio tap tcp tls tun tungo " +
    "udp unix ws wss mtmux").split(" "),
);

export const GOST_CONNECTORS: ReadonlySet<string> = new Set(
  ("direct virtual forward http http2 masque relay router serial sni socks4 socks4a socks5 socks " +
    "ss ssu sshd tcp tunnel unix").split(" "),
);

export const GOST_DIALERS: ReadonlySet<string> = new Set(
  ("direct virtual dtls ftcp grpc http2 h2 h2c http3 h3 h3-masque wt icmp icmp6 kcp mtcp mtls mws " +
    "mwss ohttp ohttps otls pht phts quic serial ssh sshd tcp tls udp unix utls ws wss")
    .split(" "),
);

/** Which names count as registered when the CLI applies its fallbacks. */
export interface KnownNames {
  handlers: ReadonlySet<string>;
  listeners: ReadonlySet<string>;
  connectors: ReadonlySet<string>;
  dialers: ReadonlySet<string>;
}

/** GOST's own lists. */
export const GOST_NAMES: KnownNames = {
  handlers: GOST_HANDLERS,
  listeners: GOST_LISTENERS,
  connectors: GOST_CONNECTORS,
  dialers: GOST_DIALERS,
};

/** GOST's lists joined with every name registered in `reg`. */
export function knownNames(reg: Registries): KnownNames {
  const join = (a: ReadonlySet<string>, b: string[]) => new Set([...a, ...b]);
  return {
    handlers: join(GOST_HANDLERS, reg.handlers.names()),
    listeners: join(GOST_LISTENERS, reg.listeners.names()),
    connectors: join(GOST_CONNECTORS, reg.connectors.names()),
    dialers: join(GOST_DIALERS, reg.dialers.names()),
  };
}
