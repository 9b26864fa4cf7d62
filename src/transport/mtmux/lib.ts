/**
 * The mtmux library as its Go page presents it (docs/bundle.md): `defaultConfig()`, `listen`
 * on a range of `tunnels` ports, `dial`, and `server`/`client` sessions on a bundle, each
 * opening and accepting streams.
 *
 * @example Server and client in one program
 * ```ts
 * // From the package: import { mtmux } from "@burrow/burrow";
 * import * as mtmux from "./lib.ts";
 * const cfg = mtmux.defaultConfig();
 * // Listens on `cfg.tunnels` consecutive ports (port 0: a free range is picked).
 * const ln = await mtmux.listen("tcp", "127.0.0.1:0", cfg.tunnels);
 * const served = (async () => {
 *   const bundle = (await ln.accept())!;
 *   const session = mtmux.server(bundle, cfg);
 *   const stream = (await session.acceptStream())!;
 *   await stream.write(new TextEncoder().encode("hello"));
 *   const buf = new Uint8Array(1024);
 *   const n = await stream.read(buf);
 *   session.close();
 *   return new TextDecoder().decode(buf.subarray(0, n ?? 0));
 * })();
 * const bundle = await mtmux.dial("tcp", `127.0.0.1:${ln.addr.port}`, cfg.tunnels);
 * const session = mtmux.client(bundle, cfg);
 * const stream = await session.openStream();
 * const buf = new Uint8Array(1024);
 * const n = await stream.read(buf);
 * await stream.write(new TextEncoder().encode("world"));
 * console.log(new TextDecoder().decode(buf.subarray(0, n ?? 0)), await served); // hello world
 * session.close();
 * await ln.close();
 * ```
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import { joinHostPort, splitHostPort } from "../../core/addr.ts";
import { dialTcp } from "../../core/socket.ts";
import type { Listener } from "../../core/types.ts";
import { BundleListener, dialBundle } from "../../bundle/join.ts";
import { DEFAULT_BUNDLE } from "../../bundle/bundle.ts";
import {
  clientSession,
  DEFAULT_CONFIG,
  serverSession,
  type SmuxSession,
} from "../../mux/smux/mod.ts";
import { TcpListener } from "../tcp/listener.ts";

/** The page's settings (durations in ms). */
export interface MtmuxConfig {
  /** Number of TCP tunnels (links) a bundle uses. */
  tunnels: number;
  /** Interval for sending keep-alive messages on each link. */
  keepAliveInterval: number;
  /** A link silent this long is dead. */
  keepAliveTimeout: number;
  /** How long to wait for a missing data frame before asking for it again. */
  timeout: number;
  /** The links' join MAC key (both ends the same; empty: no authentication). */
  secret: string;
}

/** The defaults: 4 tunnels, keep-alive every 10 s, dead after 30 s, 5 s for a missing frame. */
export function defaultConfig(): MtmuxConfig {
  return {
    tunnels: 4,
    keepAliveInterval: DEFAULT_BUNDLE.keepaliveInterval,
    keepAliveTimeout: DEFAULT_BUNDLE.keepaliveTimeout,
    timeout: DEFAULT_BUNDLE.timeout,
    secret: "",
  };
}

function joinOptions(cfg: MtmuxConfig, tunnels: number) {
  return {
    tunnels,
    key: cfg.secret,
    bundle: {
      keepaliveInterval: cfg.keepAliveInterval,
      keepaliveTimeout: cfg.keepAliveTimeout,
      timeout: cfg.timeout,
    },
  };
}

/**
 * Listens on `tunnels` consecutive ports from `addr`'s (link i on port + i, as the Go library);
 * with port 0 a free range is picked. `accept` yields bundles.
 */
export async function listen(
  network: "tcp",
  addr: string,
  tunnels: number,
  cfg: MtmuxConfig = defaultConfig(),
): Promise<Listener> {
  if (network !== "tcp") throw new TypeError(`mtmux: network ${network} is not supported`);
  const { host, port } = splitHostPort(addr);
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = TcpListener.listen(joinHostPort(host, port));
    const inners = [first];
    try {
      for (let i = 1; i < tunnels; i++) {
        inners.push(TcpListener.listen(joinHostPort(host, first.addr.port + i)));
      }
    } catch (e) {
      await Promise.all(inners.map((l) => l.close()));
      if (port !== 0 || !(e instanceof Deno.errors.AddrInUse)) throw e;
      continue; // a neighbour port was taken: try another range
    }
    return await Promise.resolve(new BundleListener(inners, joinOptions(cfg, tunnels)));
  }
  throw new Deno.errors.AddrInUse(`mtmux: no free range of ${tunnels} ports`);
}

/** Dials the `tunnels` links of a bundle to `addr` (link i to port + i). */
export function dial(
  network: "tcp",
  addr: string,
  tunnels: number,
  cfg: MtmuxConfig = defaultConfig(),
): Promise<Conn> {
  if (network !== "tcp") throw new TypeError(`mtmux: network ${network} is not supported`);
  const { host, port } = splitHostPort(addr);
  return dialBundle((i) => dialTcp(host, port + i), joinOptions(cfg, tunnels));
}

/**
 * The accepting end's session on a bundle (smux v2 with bundle-sized windows); `cfg`'s
 * keep-alive settings drive the session's own keep-alive too.
 */
export function server(bundle: Conn, cfg: MtmuxConfig = defaultConfig()): SmuxSession {
  return serverSession(bundle, session(cfg));
}

/** The dialing end's session on a bundle (`cfg` as for {@link server}). */
export function client(bundle: Conn, cfg: MtmuxConfig = defaultConfig()): SmuxSession {
  return clientSession(bundle, session(cfg));
}

/** smux on a bundle: v2, windows sized for the bundle rather than smux's 64 KiB default. */
function session(cfg: MtmuxConfig) {
  return {
    ...DEFAULT_CONFIG,
    version: 2,
    maxReceiveBuffer: 16 << 20,
    maxStreamBuffer: 4 << 20,
    keepAliveInterval: cfg.keepAliveInterval,
    keepAliveTimeout: cfg.keepAliveTimeout,
  };
}
