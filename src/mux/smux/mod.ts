/**
 * smux (xtaci/smux v1 and v2) over any Conn: `clientSession`/`serverSession`, streams that are
 * Conns, and GOST's `mux.*` options.
 * @module
 */
export {
  clientSession,
  serverSession,
  type SessionOptions,
  smuxFactory,
  SmuxSession,
} from "./session.ts";
export { SmuxStream } from "./stream.ts";
export { DEFAULT_CONFIG, type SmuxConfig, smuxConfigFromMetadata, verifyConfig } from "./config.ts";
export * as frame from "./frame.ts";
