/**
 * Burrow as a library. Four parts, each usable alone:
 *
 * - **The runtime**: {@link Runtime} serves GOST v3 services and chains from a config object
 *   ({@link Config}), from command-line arguments ({@link cliConfig}) or from YAML/JSON text
 *   ({@link parseConfig}), and moves to a new config live ({@link Runtime.apply}).
 * - **The `Conn` contract**: every carrier is a {@link Conn} (read, write, closeWrite, close);
 *   {@link relay} copies between two, {@link pipe} makes an in-memory pair.
 * - **The registries**: {@link Registries} map GOST type names to factories of listeners, dialers,
 *   handlers and connectors; register your own type and use it from config like a built-in one.
 * - **The engines**, over any Conn: smux sessions ({@link clientSession}), KCP sessions and
 *   listener ({@link dialKcp}, {@link KcpListener}), kcp-go's crypts ({@link createCrypt}), FEC
 *   ({@link FecEncoder}), snappy ({@link SnappyConn}), the mtmux bundle ({@link dialBundle},
 *   and {@link mtmux} as its Go library presents it).
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
 * @example Add your own handler type and serve it from config
 * ```ts
 * import { builtinRegistries, type Conn, Runtime } from "./mod.ts";
 * const registries = builtinRegistries();
 * registries.handlers.register("hello", () => ({
 *   async handle(conn: Conn) {
 *     await conn.write(new TextEncoder().encode("hello\n"));
 *   },
 * }));
 * await using rt = await Runtime.start({
 *   services: [{ name: "hi", addr: "127.0.0.1:0", handler: { type: "hello" }, listener: { type: "tcp" } }],
 * }, { registries });
 * const c = await Deno.connect({ hostname: "127.0.0.1", port: rt.services[0]!.listener.addr.port });
 * const buf = new Uint8Array(6);
 * await c.read(buf);
 * console.log(new TextDecoder().decode(buf)); // "hello\n"
 * c.close();
 * ```
 *
 * @example smux streams over any Conn (here an in-memory pipe)
 * ```ts
 * import { clientSession, pipe, readFull, serverSession } from "./mod.ts";
 * const [a, b] = pipe();
 * const client = clientSession(a, { version: 2 });
 * const server = serverSession(b, { version: 2 });
 * const out = await client.openStream();
 * await out.write(new TextEncoder().encode("ping"));
 * const inn = (await server.acceptStream())!;
 * console.log(new TextDecoder().decode(await readFull(inn, new Uint8Array(4)))); // "ping"
 * client.close();
 * server.close();
 * ```
 * @example A KCP session (kcp-go's wire format: aes, FEC 10/3) between a listener and a dialer
 * ```ts
 * import { dialKcp, KCP_DEFAULTS, KcpListener, readFull } from "./mod.ts";
 * await using ln = new KcpListener("127.0.0.1:0", KCP_DEFAULTS);
 * const client = await dialKcp(`127.0.0.1:${ln.addr.port}`, KCP_DEFAULTS);
 * await client.write(new TextEncoder().encode("over udp"));
 * const server = (await ln.accept())!;
 * console.log(new TextDecoder().decode(await readFull(server, new Uint8Array(8)))); // "over udp"
 * client.close();
 * ```
 *
 * @example Relay two conns until both directions end
 * ```ts
 * import { pipe, readFull, relay } from "./mod.ts";
 * const [a, a2] = pipe();
 * const [b2, b] = pipe();
 * const done = relay(a2, b2); // bytes written to `a` come out of `b`, and back
 * await a.write(new TextEncoder().encode("hi"));
 * console.log(new TextDecoder().decode(await readFull(b, new Uint8Array(2)))); // "hi"
 * await a.closeWrite();
 * await b.closeWrite();
 * console.log(await done); // { aToB: 2, bToA: 0 }
 * ```
 * @module
 */
// The runtime and its config.
export {
  type ApplyOptions,
  type ApplyResult,
  Runtime,
  type RuntimeOptions,
} from "./src/runtime/runtime.ts";
export type { ClientStats, RunningService, ServiceObserver, ServiceStats } from "./src/service.ts";
export type { ChainObserver, RunningChain, RunningNode } from "./src/chain/router.ts";
export type { Diagnostics } from "./src/config/keys.ts";
export { builtinRegistries, cliConfig, registerBuiltins } from "./src/builtins.ts";
export { formatConfig, loadConfigSource, parseConfig } from "./src/config/file.ts";
export { mergeConfigs, normalizeConfig } from "./src/config/model.ts";
export type * from "./src/config/model.ts";
export { type Fields, type Level, Logger, silentLogger, type Sink } from "./src/core/log.ts";

// The Conn contract.
export type { Conn, Duplex, NetAddr } from "./src/core/conn.ts";
export { ConnBase, readFull, toConn, WrappedConn } from "./src/core/conn.ts";
export { copy, relay, type RelayOptions, type RelayResult } from "./src/core/relay.ts";
export {
  type MemoryReducerOptions,
  type ReducerStats,
  startMemoryReducer,
} from "./src/core/memory_reducer.ts";
export { pipe, type PipeOptions } from "./src/core/pipe.ts";
export {
  AuthError,
  ClosedError,
  ConfigError,
  ForbiddenError,
  ProtocolError,
  TimeoutError,
  TunnelError,
  UnsupportedError,
} from "./src/core/errors.ts";

// Registries: GOST type names → factories.
export { Metadata, type MetadataRecord } from "./src/core/metadata.ts";
export { createRegistries, type Registries, Registry } from "./src/core/registry.ts";
export type * from "./src/core/types.ts";
export type { MuxSession } from "./src/core/mux.ts";
export type { PacketDemuxOptions } from "./src/core/packet_demux.ts";
export {
  type Emit,
  type Serve,
  ServeListener,
  type ServeListenerOptions,
} from "./src/core/serve_listener.ts";

// Protocol engines, usable on their own over any Conn.
export {
  clientSession,
  serverSession,
  type SessionOptions,
  type SmuxConfig,
  SmuxSession,
  SmuxStream,
} from "./src/mux/smux/mod.ts";
export { dialKcp, KcpListener, KcpSession } from "./src/kcp/session.ts";
export { KCP_DEFAULTS, type KcpConfig } from "./src/kcp/config.ts";
export { type BlockCrypt, createCrypt, deriveKey } from "./src/kcp/crypt/mod.ts";
export { FecDecoder, FecEncoder, ReedSolomon } from "./src/kcp/fec.ts";
export { SnappyConn } from "./src/kcp/snappy.ts";
export { Bundle, type BundleOptions, type Scheduler } from "./src/bundle/bundle.ts";
export { BundleListener, dialBundle, type JoinOptions } from "./src/bundle/join.ts";
/** The mtmux library as its Go page presents it: `mtmux.defaultConfig()`, `listen`, `dial`, `server`, `client`. */
export * as mtmux from "./src/transport/mtmux/lib.ts";
