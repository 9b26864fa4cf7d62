/**
 * What GOST's configuration defines, so that nothing a user writes is silently ignored
 * (docs/config-keys.md). A key GOST defines that Burrow does not implement is an error naming
 * it; a key GOST does not define either (a typo) is a warning with the closest known key, or an
 * error under `--strict` / `strict: true`.
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import type { Metadata } from "../core/metadata.ts";
import { GOST_METADATA } from "./gost_metadata.ts";

/** The config levels whose field names are checked. */
export type Level =
  | "top"
  | "service"
  | "handler"
  | "listener"
  | "forwarder"
  | "forwardNode"
  | "chain"
  | "hop"
  | "node"
  | "plugin"
  | "tls"
  | "api"
  | "metrics"
  | "ingress"
  | "ingressRule"
  | "auth"
  | "auther"
  | "selector"
  | "log"
  | "admission"
  | "bypass"
  | "hosts"
  | "mapping"
  | "resolver"
  | "nameserver"
  | "limiter"
  | "file";

const words = (s: string): readonly string[] => s.split(/\s+/).filter((w) => w !== "");

/** Every field GOST's config structs define, per level (go-gost/x config/config.go). */
export const GOST_FIELDS: Readonly<Record<Level, readonly string[]>> = {
  top: words(`services chains hops authers admissions bypasses resolvers hosts ingresses routers
    sds recorders limiters climiters rlimiters quotas loggers tls log profiling api metrics
    observers rewriters caches strict`),
  service: words(`name addr interface sockopts admission admissions bypass bypasses resolver hosts
    limiter quotas climiter rlimiter logger loggers observer rewriter recorders cache handler
    listener forwarder metadata status`),
  handler: words(`type retries chain chainGroup auther authers auth tls limiter observer metadata`),
  listener: words(`type chain chainGroup auther authers auth tls metadata`),
  forwarder: words(`name hop selector nodes hopGroup`),
  forwardNode: words(`name addr network bypass bypasses protocol host path filter matcher auth
    http tls probe metadata`),
  chain: words(`name hops metadata`),
  hop: words(`name interface sockopts selector bypass bypasses resolver hosts nodes reload file
    redis http plugin metadata`),
  node: words(`name addr network bypass bypasses resolver hosts connector dialer interface netns
    sockopts filter matcher http tls probe metadata`),
  plugin: words(`type auth tls metadata`),
  api: words(`addr pathPrefix accesslog auth auther`),
  metrics: words(`addr path auth auther`),
  tls: words(`certFile keyFile caFile secure serverName options validity commonName organization
    rejectUnknownSNI serverNames`),
  auth: words(`username password file`),
  auther: words(`name auths reload file redis http plugin`),
  selector: words(`strategy maxFails failTimeout maxLatency`),
  log: words(`output level format rotation`),
  admission: words(`name whitelist reverse matchers reload file redis http plugin`),
  bypass: words(`name whitelist reverse matchers network reload file redis http plugin`),
  hosts: words(`name mappings reload file redis http plugin`),
  mapping: words(`ip hostname aliases`),
  ingress: words(`name rules reload file redis http plugin`),
  ingressRule: words(`hostname endpoint`),
  resolver: words(`name nameservers plugin`),
  nameserver: words(`addr chain prefer clientIP hostname ttl timeout async only`),
  limiter: words(`name limits reload file redis http plugin`),
  file: words(`path`),
};

/** Reports unknown keys: a warning, or an error when strict. */
export interface Diagnostics {
  /** Unknown keys are errors instead of warnings. */
  strict: boolean;
  /** Receives one warning: the field path and what is wrong with it. */
  warn(path: string, message: string): void;
}

/** Diagnostics that print warnings with `console.warn` (the library default). */
export function consoleDiagnostics(strict = false): Diagnostics {
  return { strict, warn: (p, m) => console.warn(`burrow: warning: ${p}: ${m}`) };
}

/** Levenshtein distance, case-insensitive. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(
        prev[j]! + 1,
        cur[j - 1]! + 1,
        prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1),
      );
    }
    prev = cur;
  }
  return prev[y.length]!;
}

/** The candidate closest to `key`, if it is close enough to be a likely typo. */
export function closest(key: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(key, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * Reports one key nothing read. `gost` says whether GOST defines it (then it is an error: Burrow
 * does not implement it); otherwise it is a typo-style unknown key.
 */
export function reportUnknown(
  diag: Diagnostics,
  path: string,
  key: string,
  gost: boolean,
  candidates: Iterable<string>,
): void {
  const at = path ? `${path}.${key}` : key;
  if (gost) throw new ConfigError(at, "is not supported by burrow yet");
  const near = closest(key, candidates);
  const msg = `unknown key${near ? ` (did you mean "${near}"?)` : ""}`;
  if (diag.strict) throw new ConfigError(at, msg);
  diag.warn(at, msg);
}

/** One metadata map of a service or chain node, with the component kind and type that read it. */
export interface MetadataUse {
  md: Metadata;
  /** `service`, `handler`, `listener`, `hop`, `node`, `dialer` or `connector`. */
  kind: string;
  /** The component's type (`http`, `mtcp`, ...); empty for service/hop/node maps. */
  type: string;
}

/**
 * After start-up: every given metadata key some component of the group read is implemented; for
 * the rest, a key GOST's component of that kind and type reads is refused as not supported yet,
 * and any other key is a warning (an error when strict) naming the closest known key.
 */
export function checkMetadata(diag: Diagnostics, group: MetadataUse[]): void {
  const asked = new Set<string>();
  for (const u of group) for (const k of u.md.use.asked) asked.add(k);
  const seen = new Set<string>();
  for (const u of group) {
    for (const key of u.md.unread()) {
      // A CLI key lands in several maps of the group; report it once.
      if (seen.has(key)) continue;
      seen.add(key);
      const owners = group.filter((g) => g.md.unread().includes(key));
      const gostOwner = owners.find((g) => gostMetadataKeys(g.kind, g.type).has(key));
      const where = (gostOwner ?? u).md.path;
      const candidates = new Set<string>(asked);
      for (const g of group) for (const k of gostMetadataKeys(g.kind, g.type)) candidates.add(k);
      for (const k of CLI_SPECIAL_KEYS) candidates.add(k.toLowerCase());
      reportUnknown(diag, where, key, gostOwner !== undefined, candidates);
    }
  }
}

/** GOST's CLI query keys that become objects or special settings rather than metadata. */
export const CLI_SPECIAL_KEYS: readonly string[] = words(`admission bypass resolver hosts
  limiter.in limiter.out limiter.conn.in limiter.conn.out climiter rlimiter dns prefer interface
  so_mark proxyProtocol netns netns.out retries auth strategy maxFails failTimeout`);

/**
 * kcptun options a GOST user may pass as `kcp.*` that Burrow's KCP does not implement (kcptun's
 * own config keys; GOST passes its kcp config through in kcptun's shape).
 */
const KCPTUN_UNSUPPORTED = words(`conn autoexpire scavengettl log snmplog snmpperiod quiet pprof
  closewait ratelimit`).map((k) => `kcp.${k}`);

const EMPTY: ReadonlySet<string> = new Set();
/** Type names GOST registers for one component (their keys are listed once). */
const TYPE_ALIASES: Readonly<Record<string, string>> = { redir: "red", redirect: "red" };
const byKind = new Map<string, ReadonlySet<string>>(
  Object.entries(GOST_METADATA).map(([k, v]) => {
    const keys = k.endsWith(".kcp") ? [...v, ...KCPTUN_UNSUPPORTED] : v;
    return [k, new Set(keys.map((x) => x.toLowerCase()))];
  }),
);

/** Metadata keys (lower-case) GOST's component `kind`/`type` reads. */
export function gostMetadataKeys(kind: string, type: string): ReadonlySet<string> {
  const common = byKind.get(kind) ?? EMPTY;
  const t = TYPE_ALIASES[type] ?? type;
  const own = t ? byKind.get(`${kind}.${t}`) ?? EMPTY : EMPTY;
  return common.size === 0 ? own : own.size === 0 ? common : new Set([...common, ...own]);
}
