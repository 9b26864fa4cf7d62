/**
 * smux configuration, defaults and validation (docs/smux.md §5.1), and the GOST `mux.*`
 * metadata keys (docs/smux.md §5.2) parsed into it.
 * @module
 */
import { ConfigError } from "../../core/errors.ts";
import type { Metadata } from "../../core/metadata.ts";

/** smux settings, xtaci/smux's `Config` with GOST's `mux.*` names. */
export interface SmuxConfig {
  /** 1 or 2. */
  version: number;
  /** No NOP keep-alives and no keep-alive timeout. */
  keepAliveDisabled: boolean;
  /** ms */
  keepAliveInterval: number;
  /** ms */
  keepAliveTimeout: number;
  /** Largest data frame sent (≤ 65535). */
  maxFrameSize: number;
  /** Bytes the session buffers for all streams before it stops reading the carrier. */
  maxReceiveBuffer: number;
  /** Per-stream receive window (v2). */
  maxStreamBuffer: number;
  /**
   * Streams open at once in one session (Burrow's `mux.maxStreams`; smux has no limit). A SYN
   * beyond it is answered with FIN, so one peer cannot make us hold unbounded handlers.
   */
  maxStreams: number;
  /**
   * ms a v2 write that waits for the window keeps waiting after a FIN that no window update
   * followed (docs/smux.md §2.4): such a peer has no half-close and closed the whole stream. Not a
   * GOST key; {@link PEER_CLOSE_GRACE} unless a test sets it.
   */
  peerCloseGrace?: number;
}

/** Default of {@link SmuxConfig.peerCloseGrace}. */
export const PEER_CLOSE_GRACE = 30_000;

export const DEFAULT_CONFIG: Readonly<SmuxConfig> = Object.freeze({
  version: 1,
  keepAliveDisabled: false,
  keepAliveInterval: 10_000,
  keepAliveTimeout: 30_000,
  maxFrameSize: 32768,
  maxReceiveBuffer: 4194304,
  // xtaci/smux uses 64 KiB. In v2 this is the largest receive window we advertise (windows
  // shrink as streams are added, see SmuxSession.streamWindow); 64 KiB held one mtcp stream to
  // ~340-470 MB/s here, 512 KiB to ~650-830. v1 has no per-stream limit at all.
  maxStreamBuffer: 512 * 1024,
  maxStreams: 1024,
});

/** Throws a ConfigError naming the bad `mux.*` key. */
export function verifyConfig(c: SmuxConfig, path = "mux"): SmuxConfig {
  const bad = (k: string, m: string) => new ConfigError(`${path}.${k}`, m);
  if (c.version !== 1 && c.version !== 2) throw bad("version", `expected 1 or 2, got ${c.version}`);
  if (!c.keepAliveDisabled) {
    if (!(c.keepAliveInterval > 0)) throw bad("keepaliveInterval", "must be positive");
    if (c.keepAliveTimeout < c.keepAliveInterval) {
      throw bad("keepaliveTimeout", "must not be shorter than keepaliveInterval");
    }
  }
  if (!(c.maxFrameSize >= 1 && c.maxFrameSize <= 65535)) {
    throw bad("maxFrameSize", "must be 1…65535");
  }
  if (!(c.maxReceiveBuffer > 0)) throw bad("maxReceiveBuffer", "must be positive");
  if (!(c.maxStreamBuffer > 0)) throw bad("maxStreamBuffer", "must be positive");
  if (!(Number.isInteger(c.maxStreams) && c.maxStreams > 0)) {
    throw bad("maxStreams", "must be a positive integer");
  }
  if (c.maxStreamBuffer > c.maxReceiveBuffer) {
    throw bad("maxStreamBuffer", "must not exceed maxReceiveBuffer");
  }
  if (c.maxStreamBuffer > 0x7fffffff) throw bad("maxStreamBuffer", "must be below 2^31");
  return c;
}

/** Reads GOST's `mux.*` keys; `defaultVersion` is the component's (mtcp 2, mws 1, ...). */
export function smuxConfigFromMetadata(md: Metadata, defaultVersion: number): SmuxConfig {
  const c: SmuxConfig = {
    version: md.int("mux.version", defaultVersion),
    keepAliveDisabled: md.bool("mux.keepaliveDisabled"),
    keepAliveInterval: md.duration("mux.keepaliveInterval", DEFAULT_CONFIG.keepAliveInterval),
    keepAliveTimeout: md.duration("mux.keepaliveTimeout", DEFAULT_CONFIG.keepAliveTimeout),
    maxFrameSize: md.int("mux.maxFrameSize", DEFAULT_CONFIG.maxFrameSize),
    maxReceiveBuffer: md.int("mux.maxReceiveBuffer", DEFAULT_CONFIG.maxReceiveBuffer),
    maxStreams: md.int("mux.maxStreams", DEFAULT_CONFIG.maxStreams),
    maxStreamBuffer: md.int("mux.maxStreamBuffer", DEFAULT_CONFIG.maxStreamBuffer),
  };
  return verifyConfig(c, `${md.path}.mux`);
}
