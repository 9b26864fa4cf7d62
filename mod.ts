/**
 * Burrow as a library: the byte-carrier contract, the plugin registries, config parsing and the
 * runtime that serves GOST-style services and chains.
 *
 * @example Change a running config
 * ```ts
 * import { cliConfig, Runtime } from "./mod.ts";
 * const rt = await Runtime.start(cliConfig(["socks5://127.0.0.1:0"], []));
 * // Only what changed is rebuilt; the socks5 service keeps running untouched.
 * await rt.update((cfg) => ({
 *   ...cfg,
 *   services: [...cfg.services!, ...cliConfig(["http://127.0.0.1:0"], []).services!.map((s) => ({ ...s, name: "web" }))],
 * }));
 * console.log(rt.services.map((s) => s.name)); // ["service-0", "web"]
 * await rt.close();
 * ```
 *
 * @example Forward a local port
 * ```ts
 * import { cliConfig, Runtime } from "./mod.ts";
 * const rt = await Runtime.start(cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], []));
 * console.log(rt.services[0]!.listener.addr.port);
 * await rt.close();
 * ```
 * @module
 */
export type { Conn, Duplex, NetAddr } from "./src/core/conn.ts";
export { ConnBase, PrefixedConn, readFull, toConn } from "./src/core/conn.ts";
export { copy, relay, type RelayOptions, type RelayResult } from "./src/core/relay.ts";
export { pipe } from "./src/core/pipe.ts";
export {
  AuthError,
  ClosedError,
  ConfigError,
  ProtocolError,
  TimeoutError,
  TunnelError,
  UnsupportedError,
} from "./src/core/errors.ts";
export { Logger, silentLogger } from "./src/core/log.ts";
export { Metadata, type MetadataRecord } from "./src/core/metadata.ts";
export { createRegistries, type Registries, Registry } from "./src/core/registry.ts";
export type * from "./src/core/types.ts";
export { builtinRegistries, cliConfig, registerBuiltins } from "./src/builtins.ts";
export type * from "./src/config/model.ts";
export { mergeConfigs, normalizeConfig } from "./src/config/model.ts";
export { parseCli, parseNodeUrl, parseServiceUrl } from "./src/config/cli.ts";
export { GOST_NAMES, type KnownNames, knownNames } from "./src/config/names.ts";
export { formatConfig, loadConfigSource } from "./src/config/file.ts";
export {
  type ApplyOptions,
  type ApplyResult,
  Runtime,
  type RuntimeOptions,
} from "./src/runtime/runtime.ts";
export { type ApiOptions, ApiServer } from "./src/api/server.ts";
export { serveMetrics } from "./src/api/metrics_server.ts";
export { GostMetrics, type ServiceView } from "./src/metrics/gost.ts";
export { Service } from "./src/service.ts";
export { Chain, ChainRouter, routeDial } from "./src/chain/router.ts";
export { SocketConn } from "./src/core/socket.ts";
export { WrappedConn } from "./src/core/conn.ts";

// Protocol engines, usable on their own over any Conn.
export {
  clientSession,
  serverSession,
  type SmuxConfig,
  SmuxSession,
  SmuxStream,
} from "./src/mux/smux/mod.ts";
export { Kcp } from "./src/kcp/arq.ts";
export { dialKcp, KcpListener, KcpSession } from "./src/kcp/session.ts";
export { KCP_DEFAULTS, type KcpConfig } from "./src/kcp/config.ts";
export { createCrypt, deriveKey } from "./src/kcp/crypt/mod.ts";
export { FecDecoder, FecEncoder, ReedSolomon } from "./src/kcp/fec.ts";
export { SnappyConn } from "./src/kcp/snappy.ts";
export { Bundle, type BundleOptions } from "./src/bundle/bundle.ts";
export { BundleListener, dialBundle } from "./src/bundle/join.ts";
/** The mtmux library as its Go page presents it: `mtmux.defaultConfig()`, `listen`, `dial`, `server`, `client`. */
export * as mtmux from "./src/transport/mtmux/lib.ts";
