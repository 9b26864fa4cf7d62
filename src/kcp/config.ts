/**
 * kcptun-style KCP configuration (docs/kcp.md §8.1–8.2, docs/kcp.md §9) from a kcptun JSON file
 * (`kcp.configFile`), a `kcp.config` map and `kcp.*` keys, in that order of precedence (later
 * wins). Defaults are kcptun's documented ones — key "it's a secrect", crypt aes, mode fast,
 * mtu 1350, windows 1024, FEC 10/3, compression on, smuxver 1, keepalive 10 s — not the zeroed
 * values GOST's code ends up with when `kcp.*` keys are absent (see README).
 * @module
 */
import { ConfigError, errorText } from "../core/errors.ts";
import type { Metadata } from "../core/metadata.ts";

/** kcptun's settings, with its JSON names (`kcp.*` keys in GOST metadata). */
export interface KcpConfig {
  /** Pre-shared secret; the crypt key is PBKDF2(key, "kcp-go"). */
  key: string;
  /** Block crypt: `aes` (default), `aes-128`, `aes-192`, `salsa20`, `blowfish`, ... or `none`. */
  crypt: string;
  /** Preset of the four tuning values below: `normal`, `fast` (default), `fast2`, `fast3`, `manual`. */
  mode: string;
  /** Largest UDP payload sent. */
  mtu: number;
  /** Send window, in packets. */
  sndwnd: number;
  /** Receive window, in packets. */
  rcvwnd: number;
  /** FEC data shards per group (0: no FEC). */
  datashard: number;
  /** FEC parity shards per group. */
  parityshard: number;
  /** DSCP mark of outgoing datagrams (not applied: Deno cannot set it; refused unless 0). */
  dscp: number;
  /** No snappy compression of the stream. */
  nocomp: boolean;
  /** Acknowledge every packet at once instead of per flush. */
  acknodelay: boolean;
  /** KCP nodelay (0 or 1; from `mode` unless `manual`). */
  nodelay: number;
  /** Flush interval, ms (from `mode` unless `manual`). */
  interval: number;
  /** Fast-retransmit threshold (from `mode` unless `manual`). */
  resend: number;
  /** 1 turns congestion control off (from `mode` unless `manual`). */
  nc: number;
  /** UDP socket buffer size asked for, bytes. */
  sockbuf: number;
  /** smux version inside KCP (kcptun: 1 or 2). */
  smuxver: number;
  /** smux session receive buffer, bytes. */
  smuxbuf: number;
  /** smux per-stream buffer, bytes. */
  streambuf: number;
  /** smux keep-alive interval, seconds. */
  keepalive: number;
  /** kcptun's fake-TCP mode (not available in Deno: refused). */
  tcp: boolean;
}

/** kcptun's documented defaults (key "it's a secrect", aes, fast, mtu 1350, windows 1024, FEC 10/3). */
export const KCP_DEFAULTS: Readonly<KcpConfig> = Object.freeze({
  key: "it's a secrect",
  crypt: "aes",
  mode: "fast",
  mtu: 1350,
  sndwnd: 1024,
  rcvwnd: 1024,
  datashard: 10,
  parityshard: 3,
  dscp: 0,
  nocomp: false,
  acknodelay: false,
  nodelay: 0,
  interval: 50,
  resend: 0,
  nc: 0,
  sockbuf: 4194304,
  smuxver: 1,
  smuxbuf: 4194304,
  streambuf: 2097152,
  keepalive: 10,
  tcp: false,
});

const PRESETS: Record<string, [number, number, number, number]> = {
  normal: [0, 40, 2, 1],
  fast: [0, 30, 2, 1],
  fast2: [1, 20, 2, 1],
  fast3: [1, 10, 2, 1],
};

const KEYS = Object.keys(KCP_DEFAULTS) as (keyof KcpConfig)[];

function apply(cfg: KcpConfig, src: Record<string, unknown>, path: string): void {
  const lower = new Map(Object.entries(src).map(([k, v]) => [k.toLowerCase(), v]));
  for (const k of KEYS) {
    const v = lower.get(k.toLowerCase());
    if (v === undefined || v === null || v === "") continue;
    const def = KCP_DEFAULTS[k];
    if (typeof def === "string") (cfg as unknown as Record<string, unknown>)[k] = String(v);
    else if (typeof def === "boolean") {
      const b = typeof v === "boolean" ? v : ["true", "1"].includes(String(v).toLowerCase());
      if (
        typeof v !== "boolean" && !["true", "1", "false", "0"].includes(String(v).toLowerCase())
      ) {
        throw new ConfigError(`${path}.${k}`, `expected true or false, got ${JSON.stringify(v)}`);
      }
      (cfg as unknown as Record<string, unknown>)[k] = b;
    } else {
      const n = typeof v === "number" ? v : Number(String(v));
      if (!Number.isInteger(n)) {
        throw new ConfigError(`${path}.${k}`, `expected an integer, got ${JSON.stringify(v)}`);
      }
      (cfg as unknown as Record<string, unknown>)[k] = n;
    }
  }
}

/** Builds the effective config: defaults ← file ← `kcp.config` map ← `kcp.*` keys; then the mode preset. */
export async function kcpConfigFromMetadata(md: Metadata): Promise<KcpConfig> {
  const cfg: KcpConfig = { ...KCP_DEFAULTS };
  const file = md.string(["kcp.configFile", "configFile", "c"]);
  if (file) {
    let raw: unknown;
    try {
      raw = JSON.parse(await Deno.readTextFile(file));
    } catch (e) {
      throw new ConfigError(
        `${md.path}.kcp.configFile`,
        `cannot read kcptun config ${file}: ${errorText(e)}`,
      );
    }
    apply(cfg, raw as Record<string, unknown>, file);
  }
  const map = md.get("kcp.config", "config");
  if (map && typeof map === "object") {
    apply(cfg, map as Record<string, unknown>, `${md.path}.kcp.config`);
  }
  // Each known key is asked for by name, so an unknown `kcp.x` stays unread and is reported.
  const kmd = md.withPrefix("kcp.");
  apply(cfg, Object.fromEntries(KEYS.map((k) => [k, kmd.get(k)])), `${md.path}.kcp`);
  return finish(cfg, `${md.path}.kcp`);
}

/** Applies the mode preset and validates. */
export function finish(cfg: KcpConfig, path = "kcp"): KcpConfig {
  const p = PRESETS[cfg.mode];
  if (p) [cfg.nodelay, cfg.interval, cfg.resend, cfg.nc] = p;
  if (cfg.tcp) {
    throw new ConfigError(
      `${path}.tcp`,
      "fake-TCP (tcpraw) needs raw sockets, which Deno does not have",
    );
  }
  if (cfg.dscp !== 0) {
    // Deno exposes no IP_TOS for UDP sockets yet; refusing beats silently sending unmarked.
    throw new ConfigError(`${path}.dscp`, "is not supported yet (needs IP_TOS on the UDP socket)");
  }
  if (cfg.mtu < 50 || cfg.mtu > 1500) throw new ConfigError(`${path}.mtu`, "must be 50…1500");
  if (cfg.smuxver !== 1 && cfg.smuxver !== 2) {
    throw new ConfigError(`${path}.smuxver`, "must be 1 or 2");
  }
  if (cfg.keepalive < 0 || cfg.keepalive > 30) {
    throw new ConfigError(
      `${path}.keepalive`,
      "must be 0…30 seconds (smux keepalive timeout is 30 s)",
    );
  }
  if (cfg.datashard < 0 || cfg.parityshard < 0 || cfg.datashard + cfg.parityshard > 256) {
    throw new ConfigError(`${path}.datashard`, "bad FEC shard counts");
  }
  return cfg;
}
