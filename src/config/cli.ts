/**
 * GOST's command line: `-L` service URLs and `-F` node URLs normalised into a {@link Config}
 * (docs/gost-config.md §1.3–1.5), plus the flag parser for `-L -F -C -D -DD -V -O`.
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import type { MetadataRecord } from "../core/metadata.ts";
import { STRATEGIES } from "./model.ts";
import type {
  APIConfig,
  AuthConfig,
  Config,
  ForwardNodeConfig,
  HopConfig,
  MetricsConfig,
  NodeConfig,
  SelectorConfig,
  ServiceConfig,
  TLSConfig,
} from "./model.ts";
import { GOST_NAMES, type KnownNames } from "./names.ts";
import { parseDuration } from "../core/duration.ts";

/** Parsed process flags. */
export interface CliArgs {
  services: string[];
  nodes: string[];
  configs: string[];
  debug: boolean;
  trace: boolean;
  version: boolean;
  output?: "yaml" | "json";
  help: boolean;
  /** Unknown keys are errors instead of warnings. */
  strict: boolean;
  /** `-api [user:pass@]host:port?pathPrefix=/x&accesslog=true`. */
  api?: string;
  /** `-metrics [user:pass@]host:port?path=/metrics`. */
  metrics?: string;
  /** `-R 30s`: re-read the config sources this often. */
  reload?: string;
}

/** A command-line mistake; the CLI prints it on one line and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const VALUE_FLAGS = new Set(["L", "F", "C", "O", "api", "metrics", "R"]);
const BOOL_FLAGS = new Set(["D", "DD", "V", "h", "help", "strict"]);

/** Parses argv the way Go's `flag` package does (`-L x`, `-L=x`, `--L x`). */
export function parseArgs(argv: string[]): CliArgs {
  const out: CliArgs = {
    services: [],
    nodes: [],
    configs: [],
    debug: false,
    trace: false,
    version: false,
    help: false,
    strict: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-") || arg === "-") {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(arg)} (flags are -L, -F, -C, -D, -O, -V)`,
      );
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (BOOL_FLAGS.has(name)) {
      const v = eq >= 0 ? body.slice(eq + 1) : "true";
      if (!["true", "false", "1", "0"].includes(v)) {
        throw new UsageError(`flag -${name}: bad value ${JSON.stringify(v)}`);
      }
      const on = v === "true" || v === "1";
      if (name === "D") out.debug = on;
      else if (name === "DD") out.trace = on;
      else if (name === "V") out.version = on;
      else if (name === "strict") out.strict = on;
      else out.help = on;
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new UsageError(`flag provided but not defined: -${name}`);
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    switch (name) {
      case "L":
        out.services.push(value);
        break;
      case "F":
        out.nodes.push(value);
        break;
      case "C":
        out.configs.push(value);
        break;
      case "api":
        out.api = value;
        break;
      case "metrics":
        out.metrics = value;
        break;
      case "R":
        if (parseDuration(value) === undefined) {
          throw new UsageError(
            `flag -R: expected a duration such as 30s, got ${JSON.stringify(value)}`,
          );
        }
        out.reload = value;
        break;
      case "O":
        if (value !== "yaml" && value !== "json") {
          throw new UsageError(`flag -O: expected yaml or json, got ${JSON.stringify(value)}`);
        }
        out.output = value;
        break;
      default:
        throw new UsageError(`flag -${name} is not supported by burrow`);
    }
  }
  return out;
}

/**
 * The `-api` / `-metrics` value: `[scheme://][user:pass@]host:port[?key=value...]`, with the
 * query keys each allows (GOST reads them through its service-URL normaliser).
 */
function endpointFlag(
  flag: string,
  value: string,
  keys: readonly string[],
): { addr: string; auth?: AuthConfig; query: Map<string, string> } {
  let rest = value.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const query = new Map<string, string>();
  const q = rest.indexOf("?");
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) {
      if (!keys.includes(k)) {
        throw new UsageError(
          `flag -${flag}: unknown option ${JSON.stringify(k)} (known: ${keys.join(", ")})`,
        );
      }
      query.set(k, v);
    }
    rest = rest.slice(0, q);
  }
  let auth: AuthConfig | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const user = rest.slice(0, at);
    const c = user.indexOf(":");
    auth = {
      username: decodeURIComponent(c >= 0 ? user.slice(0, c) : user),
      password: c >= 0 ? decodeURIComponent(user.slice(c + 1)) : "",
    };
    rest = rest.slice(at + 1);
  }
  rest = rest.replace(/\/+$/, "");
  if (!/:\d+$/.test(rest)) {
    throw new UsageError(
      `flag -${flag}: expected [user:pass@]host:port, got ${JSON.stringify(value)}`,
    );
  }
  return { addr: rest, ...(auth ? { auth } : {}), query };
}

/** `-api [user:pass@]host:port?pathPrefix=/x&accesslog=true` as an `api:` section. */
export function parseApiFlag(value: string): APIConfig {
  const e = endpointFlag("api", value, ["pathPrefix", "accesslog"]);
  const out: APIConfig = { addr: e.addr };
  if (e.auth) out.auth = e.auth;
  const prefix = e.query.get("pathPrefix");
  if (prefix) out.pathPrefix = prefix;
  const log = e.query.get("accesslog");
  if (log !== undefined) out.accesslog = log === "true" || log === "1";
  return out;
}

/** `-metrics [user:pass@]host:port?path=/metrics` as a `metrics:` section. */
export function parseMetricsFlag(value: string): MetricsConfig {
  const e = endpointFlag("metrics", value, ["path"]);
  const out: MetricsConfig = { addr: e.addr };
  if (e.auth) out.auth = e.auth;
  const path = e.query.get("path");
  if (path) out.path = path;
  return out;
}

// ------------------------------------------------------------------ URL cutting

interface CutUrl {
  scheme: string;
  user?: string;
  pass?: string;
  /** Raw userinfo without a colon (SIP002 base64 form). */
  rawUser?: string;
  host: string;
  path: string;
  query: [string, string][];
}

function decode(s: string, what: string, url: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new UsageError(`bad ${what} escape in ${JSON.stringify(url)}`);
  }
}

/** Cuts a GOST URL by hand (so port ranges and `:port` hosts survive). */
function cutUrl(input: string, kind: "-L" | "-F"): CutUrl {
  let s = input.trim();
  if (s === "") throw new UsageError(`${kind}: empty value`);
  if (s.startsWith(":") || !s.includes("://")) s = "auto://" + s;
  const sep = s.indexOf("://");
  let scheme = s.slice(0, sep).toLowerCase();
  if (!/^[a-z0-9][a-z0-9+.-]*$/.test(scheme)) {
    throw new UsageError(`${kind} ${JSON.stringify(input)}: bad scheme ${JSON.stringify(scheme)}`);
  }
  if (scheme === "https") scheme = "http+tls";
  let rest = s.slice(sep + 3);
  let query = "";
  const q = rest.indexOf("?");
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const out: CutUrl = { scheme, host: "", path: "", query: [] };
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const c = userinfo.indexOf(":");
    if (c >= 0) {
      out.user = decode(userinfo.slice(0, c), "username", input);
      out.pass = decode(userinfo.slice(c + 1), "password", input);
    } else {
      out.user = decode(userinfo, "username", input);
      out.rawUser = userinfo;
    }
  }
  const slash = rest.indexOf("/");
  out.host = slash >= 0 ? rest.slice(0, slash) : rest;
  out.path = slash >= 0 ? rest.slice(slash) : "";
  if (query) {
    for (const part of query.split("&")) {
      if (part === "") continue;
      const e = part.indexOf("=");
      const k = decode(e >= 0 ? part.slice(0, e) : part, "query", input);
      const v = decode((e >= 0 ? part.slice(e + 1) : "").replace(/\+/g, " "), "query", input);
      // Go's url.Values.Get takes the first value.
      if (!out.query.some(([x]) => x === k)) out.query.push([k, v]);
    }
  }
  return out;
}

/** `host:8000-8010` → the 11 addresses; `host:port` → itself. */
export function expandPortRange(addr: string, what: string): string[] {
  const m = /^(.*):(\d+)-(\d+)$/.exec(addr);
  if (!m) {
    const p = /^(.*):(\d*)$/.exec(addr);
    if (!p || p[2] === "" || Number(p[2]) > 65535) {
      throw new UsageError(`${what}: bad address ${JSON.stringify(addr)} (expected host:port)`);
    }
    return [addr];
  }
  const [lo, hi] = [Number(m[2]), Number(m[3])];
  if (lo > hi || hi > 65535) {
    throw new UsageError(`${what}: bad port range ${JSON.stringify(addr)}`);
  }
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${m[1]}:${p}`);
  return out;
}

const TLS_KEYS: Record<string, keyof TLSConfig> = {
  "tls.certfile": "certFile",
  certfile: "certFile",
  cert: "certFile",
  "tls.keyfile": "keyFile",
  keyfile: "keyFile",
  key: "keyFile",
  "tls.cafile": "caFile",
  cafile: "caFile",
  ca: "caFile",
};
const TLS_CLIENT_KEYS: Record<string, keyof TLSConfig> = {
  ...TLS_KEYS,
  secure: "secure",
  "tls.secure": "secure",
  servername: "serverName",
  "tls.servername": "serverName",
};
const SELECTOR_KEYS = new Set(["strategy", "maxfails", "max_fails", "failtimeout", "fail_timeout"]);

function selectorFrom(q: [string, string][], what: string): SelectorConfig | undefined {
  const sel: SelectorConfig = {};
  let any = false;
  for (const [k, v] of q) {
    const lk = k.toLowerCase();
    if (lk === "strategy") {
      if (!STRATEGIES.includes(v.toLowerCase())) {
        throw new UsageError(
          `${what}: unknown strategy ${JSON.stringify(v)} (one of ${STRATEGIES.join(", ")})`,
        );
      }
      sel.strategy = v, any = true;
    } else if (lk === "maxfails" || lk === "max_fails") {
      if (!/^\d+$/.test(v)) {
        throw new UsageError(`${what}: ${k}: expected an integer, got ${JSON.stringify(v)}`);
      }
      sel.maxFails = Number(v), any = true;
    } else if (lk === "failtimeout" || lk === "fail_timeout") {
      if (parseDuration(v) === undefined) {
        throw new UsageError(`${what}: ${k}: expected a duration, got ${JSON.stringify(v)}`);
      }
      sel.failTimeout = /^\d+$/.test(v) ? `${v}s` : v, any = true;
    }
  }
  if (!any) return undefined;
  // GOST's CLI defaults once any selector key is present: round, 1, 30s.
  return {
    strategy: sel.strategy ?? "round",
    maxFails: sel.maxFails ?? 1,
    failTimeout: sel.failTimeout ?? "30s",
  };
}

function decodeBase64Auth(v: string, what: string): AuthConfig {
  let text: string;
  try {
    const std = v.replace(/-/g, "+").replace(/_/g, "/");
    text = atob(std + "=".repeat((4 - (std.length % 4)) % 4));
  } catch {
    throw new UsageError(`${what}: auth is not valid base64`);
  }
  const c = text.indexOf(":");
  return c >= 0
    ? { username: text.slice(0, c), password: text.slice(c + 1) }
    : { username: text, password: "" };
}

function authOf(u: CutUrl, what: string): AuthConfig | undefined {
  const isSs = ["ss", "ssu"].includes(u.scheme.split("+")[0]!.toLowerCase());
  if (u.user !== undefined) {
    if (u.pass === undefined && isSs && u.rawUser) {
      // SIP002: ss://base64(method:password)@host:port
      try {
        return decodeBase64Auth(u.rawUser, what);
      } catch { /* not base64: a plain username */ }
    }
    return { username: u.user, password: u.pass ?? "" };
  }
  const a = u.query.find(([k]) => k.toLowerCase() === "auth");
  return a ? decodeBase64Auth(a[1], what) : undefined;
}

const FORCED_SELF = new Set([
  "tcp",
  "udp",
  "rtcp",
  "rudp",
  "tun",
  "tap",
  "dns",
  "unix",
  "runix",
  "serial",
]);
const SERVICE_SPECIAL = new Set(["auth", "retries", ...Object.keys(TLS_KEYS), ...SELECTOR_KEYS]);

function put(m: MetadataRecord | undefined, k: string, v: string): MetadataRecord {
  const o = m ?? {};
  o[k] = v;
  return o;
}

/** Splits `~a,b` into a whitelist flag and matchers. */
function matcherList(v: string): { whitelist?: boolean; matchers: string[] } {
  const wl = v.startsWith("~");
  const matchers = (wl ? v.slice(1) : v).split(",").map((x) => x.trim()).filter((x) => x !== "");
  return wl ? { whitelist: true, matchers } : { matchers };
}

/** `host:ip,host2:ip2` → hosts mappings (GOST cuts at the first colon, so IPv6 IPs work). */
function hostMappings(v: string): { hostname: string; ip: string }[] {
  const out: { hostname: string; ip: string }[] = [];
  for (const part of v.split(",")) {
    const i = part.indexOf(":");
    if (i <= 0) continue;
    out.push({ hostname: part.slice(0, i).trim(), ip: part.slice(i + 1).trim() });
  }
  return out;
}

/** Takes (and removes) key `k` from every map, case-insensitively; the first value found. */
function take(maps: (MetadataRecord | undefined)[], k: string): string | undefined {
  let out: string | undefined;
  for (const m of maps) {
    if (!m) continue;
    for (const key of Object.keys(m)) {
      if (key.toLowerCase() !== k.toLowerCase()) continue;
      out ??= String(m[key]);
      delete m[key];
    }
  }
  return out;
}

/**
 * GOST's special query keys (docs/access-control.md, "Objects and names") become named objects in `out` referenced by
 * `target`: `admission` (services only), `bypass`, `resolver` (+`prefer`), `hosts`, and on
 * services the limiters (`limiter.in/out`, `limiter.conn.in/out`, `climiter`, `rlimiter`).
 */
function specialObjects(
  maps: (MetadataRecord | undefined)[],
  out: Config,
  target: ServiceConfig | HopConfig,
  isService: boolean,
  what: string,
): void {
  const svc = isService ? target as ServiceConfig : undefined;
  const adm = isService ? take(maps, "admission") : undefined;
  if (adm) {
    const name = `admission-${out.admissions?.length ?? 0}`;
    (out.admissions ??= []).push({ name, ...matcherList(adm) });
    svc!.admission = name;
  }
  const byp = take(maps, "bypass");
  if (byp) {
    const name = `bypass-${out.bypasses?.length ?? 0}`;
    (out.bypasses ??= []).push({ name, ...matcherList(byp) });
    target.bypass = name;
  }
  const res = take(maps, "resolver");
  const prefer = isService ? take(maps, "prefer") : undefined;
  if (res) {
    if (prefer && !["ipv4", "ipv6"].includes(prefer.toLowerCase())) {
      throw new UsageError(`${what}: prefer: expected ipv4 or ipv6, got ${JSON.stringify(prefer)}`);
    }
    const name = `resolver-${out.resolvers?.length ?? 0}`;
    const nameservers = res.split(",").map((x) => x.trim()).filter((x) => x !== "").map((addr) =>
      prefer ? { addr, prefer: prefer.toLowerCase() } : { addr }
    );
    (out.resolvers ??= []).push({ name, nameservers });
    target.resolver = name;
  } else if (prefer) {
    throw new UsageError(`${what}: prefer is only used with resolver=`);
  }
  const hosts = take(maps, "hosts");
  if (hosts) {
    const name = `hosts-${out.hosts?.length ?? 0}`;
    const mappings = hostMappings(hosts);
    if (mappings.length === 0) {
      throw new UsageError(
        `${what}: hosts: expected host:ip[,host:ip...], got ${JSON.stringify(hosts)}`,
      );
    }
    (out.hosts ??= []).push({ name, mappings });
    target.hosts = name;
  }
  if (!svc) return;
  const [inn, outv, cin, cout] = [
    "limiter.in",
    "limiter.out",
    "limiter.conn.in",
    "limiter.conn.out",
  ]
    .map((k) => take(maps, k));
  if (inn || outv || cin || cout) {
    const limits: string[] = [];
    // "0" for a missing direction: GOST writes "$  1KB" for limiter.out alone, which then reads
    // as an *in* limit; Burrow keeps each value in its direction.
    if (inn || outv) limits.push(`$ ${inn || "0"} ${outv || "0"}`);
    if (cin || cout) limits.push(`$$ ${cin || "0"} ${cout || "0"}`);
    const name = `limiter-${out.limiters?.length ?? 0}`;
    (out.limiters ??= []).push({ name, limits });
    svc.limiter = name;
  }
  const cl = take(maps, "climiter");
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl) || Number(cl) <= 0) {
      throw new UsageError(
        `${what}: climiter: expected a positive integer, got ${JSON.stringify(cl)}`,
      );
    }
    const name = `climiter-${out.climiters?.length ?? 0}`;
    (out.climiters ??= []).push({ name, limits: [`$ ${Number(cl)}`] });
    svc.climiter = name;
  }
  const rl = take(maps, "rlimiter");
  if (rl !== undefined) {
    if (!(Number(rl) > 0)) {
      throw new UsageError(
        `${what}: rlimiter: expected a positive number, got ${JSON.stringify(rl)}`,
      );
    }
    const name = `rlimiter-${out.rlimiters?.length ?? 0}`;
    (out.rlimiters ??= []).push({ name, limits: [`$ ${Number(rl)}`] });
    svc.rlimiter = name;
  }
}

/**
 * Normalises one `-L` value into its services (several for a port range). Objects its special
 * keys create (admission, bypass, resolver, hosts, limiters) are added to `out`.
 */
export function parseServiceUrl(
  input: string,
  index: number,
  names: KnownNames = GOST_NAMES,
  out: Config = {},
): ServiceConfig[] {
  const what = `-L ${JSON.stringify(input)}`;
  const u = cutUrl(input, "-L");
  const parts = u.scheme.split("+");
  if (parts.length > 2 || parts.some((p) => p === "")) {
    throw new UsageError(`${what}: bad scheme ${JSON.stringify(u.scheme)}`);
  }
  let handler = parts[0]!;
  let listener = parts[1] ?? parts[0]!;
  if (!names.handlers.has(handler)) handler = "auto";
  if (!names.listeners.has(listener)) listener = handler === "ssu" ? "udp" : "tcp";

  const addrs = expandPortRange(u.host, what);
  const targets: string[] = [];
  const p = u.path.replace(/^\/+|\/+$/g, "");
  if (p !== "") {
    for (const t of p.split(",")) {
      const tt = t.trim();
      if (tt === "") continue;
      for (const t of expandPortRange(tt, `${what} target`)) targets.push(t); // (no spread: a wide range overflows the stack)
    }
    if (handler !== "relay") handler = FORCED_SELF.has(listener) ? listener : "forward";
  }

  const svcMd: MetadataRecord = {};
  let handlerMd: MetadataRecord | undefined;
  let listenerMd: MetadataRecord | undefined;
  const tls: TLSConfig = {};
  let retries: number | undefined;
  for (const [k, v] of u.query) {
    const lk = k.toLowerCase();
    if (TLS_KEYS[lk]) {
      (tls as Record<string, unknown>)[TLS_KEYS[lk]!] = v;
      continue;
    }
    if (lk === "retries") {
      if (!/^\d+$/.test(v)) {
        throw new UsageError(`${what}: retries: expected an integer, got ${JSON.stringify(v)}`);
      }
      retries = Number(v);
      continue;
    }
    if (SERVICE_SPECIAL.has(lk)) continue;
    if (lk.startsWith("service.")) svcMd[k.slice(8)] = v;
    else if (lk.startsWith("handler.")) handlerMd = put(handlerMd, k.slice(8), v);
    else if (lk.startsWith("listener.")) listenerMd = put(listenerMd, k.slice(9), v);
    else {
      svcMd[k] = v;
      handlerMd = put(handlerMd, k, v);
      listenerMd = put(listenerMd, k, v);
    }
  }
  const auth = authOf(u, what);
  const selector = selectorFrom(u.query, what);

  return addrs.map((addr, i) => {
    const svc: ServiceConfig = {
      name: `service-${index + i}`,
      addr,
      handler: { type: handler },
      listener: { type: listener },
    };
    if (retries !== undefined) svc.handler.retries = retries;
    if (auth) {
      if (listener === "ssh" || listener === "sshd") svc.listener.auth = auth;
      else svc.handler.auth = auth;
    }
    const hmd = handlerMd ? { ...handlerMd } : undefined;
    const lmd = listenerMd ? { ...listenerMd } : undefined;
    const smd = { ...svcMd };
    specialObjects([hmd, lmd, smd], out, svc, true, what);
    if (hmd && Object.keys(hmd).length > 0) svc.handler.metadata = hmd;
    if (tls.certFile) svc.listener.tls = { ...tls };
    if (lmd && Object.keys(lmd).length > 0) svc.listener.metadata = lmd;
    if (targets.length > 0) {
      const mine = targets.length === 1 ? targets : targets[i] !== undefined ? [targets[i]!] : [];
      const list = targets.length === 1 || addrs.length === 1 ? targets : mine;
      const nodes: ForwardNodeConfig[] = list.map((addr, j) => ({ name: `target-${j}`, addr }));
      svc.forwarder = { nodes };
      if (selector) svc.forwarder.selector = selector;
    }
    if (Object.keys(smd).length > 0) svc.metadata = smd;
    return svc;
  });
}

/**
 * Normalises one `-F` value into a hop (comma-separated hosts become its nodes). Objects its
 * special keys create (bypass, resolver, hosts) are added to `out`.
 */
export function parseNodeUrl(
  input: string,
  index: number,
  names: KnownNames = GOST_NAMES,
  out: Config = {},
): HopConfig {
  const what = `-F ${JSON.stringify(input)}`;
  const u = cutUrl(input, "-F");
  const parts = u.scheme.split("+");
  if (parts.length > 2 || parts.some((p) => p === "")) {
    throw new UsageError(`${what}: bad scheme ${JSON.stringify(u.scheme)}`);
  }
  let connector = parts[0]!;
  let dialer = parts[1] ?? parts[0]!;
  if (!names.connectors.has(connector)) connector = "http";
  if (!names.dialers.has(dialer)) dialer = connector === "ssu" ? "udp" : "tcp";
  if (u.path.replace(/\//g, "") !== "") throw new UsageError(`${what}: a -F node takes no path`);

  const hosts = u.host.split(",").map((h) => h.trim()).filter((h) => h !== "");
  if (hosts.length === 0) throw new UsageError(`${what}: missing host:port`);
  for (const h of hosts) {
    const m = /^(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(h);
    if (!m || Number(m[2]) > 65535) {
      throw new UsageError(`${what}: bad address ${JSON.stringify(h)} (expected host:port)`);
    }
  }

  let hopMd: MetadataRecord | undefined;
  let nodeMd: MetadataRecord | undefined;
  let connMd: MetadataRecord | undefined;
  let dialMd: MetadataRecord | undefined;
  const tls: TLSConfig = {};
  for (const [k, v] of u.query) {
    const lk = k.toLowerCase();
    if (TLS_CLIENT_KEYS[lk]) {
      const f = TLS_CLIENT_KEYS[lk]!;
      (tls as Record<string, unknown>)[f] = f === "secure" ? v === "true" || v === "1" : v;
      continue;
    }
    if (lk === "auth" || SELECTOR_KEYS.has(lk)) continue;
    if (lk.startsWith("hop.")) hopMd = put(hopMd, k.slice(4), v);
    else if (lk.startsWith("node.")) nodeMd = put(nodeMd, k.slice(5), v);
    else if (lk.startsWith("connector.")) connMd = put(connMd, k.slice(10), v);
    else if (lk.startsWith("dialer.")) dialMd = put(dialMd, k.slice(7), v);
    else {
      hopMd = put(hopMd, k, v);
      nodeMd = put(nodeMd, k, v);
      connMd = put(connMd, k, v);
      dialMd = put(dialMd, k, v);
    }
  }
  const hop: HopConfig = { name: `hop-${index}`, nodes: [] };
  specialObjects([hopMd, nodeMd, connMd, dialMd], out, hop, false, what);
  const auth = authOf(u, what);
  const nodes: NodeConfig[] = hosts.map((addr, i) => {
    const host = addr.startsWith("[")
      ? addr.slice(1, addr.indexOf("]"))
      : addr.slice(0, addr.lastIndexOf(":"));
    const n: NodeConfig = {
      name: `node-${i}`,
      addr,
      connector: { type: connector },
      dialer: { type: dialer },
    };
    if (auth) {
      if (dialer === "ssh" || dialer === "sshd") n.dialer.auth = auth;
      else n.connector.auth = auth;
    }
    if (connMd && Object.keys(connMd).length > 0) n.connector.metadata = { ...connMd };
    const dtls: TLSConfig = { ...tls };
    if (!dtls.serverName && host) dtls.serverName = host;
    if (Object.keys(dtls).length > 0) n.dialer.tls = dtls;
    if (dialMd && Object.keys(dialMd).length > 0) n.dialer.metadata = { ...dialMd };
    if (nodeMd && Object.keys(nodeMd).length > 0) n.metadata = { ...nodeMd };
    return n;
  });
  hop.nodes = nodes;
  const sel = selectorFrom(u.query, what);
  if (sel) hop.selector = sel;
  if (hopMd && Object.keys(hopMd).length > 0) hop.metadata = hopMd;
  return hop;
}

/**
 * Builds the config the CLI describes: services from `-L`, one chain `chain-0` from `-F`. `names`
 * decides the fallbacks: {@link knownNames} of the registries the config will run on (the
 * library's `cliConfig` passes the built-in ones).
 */
export function parseCli(services: string[], nodes: string[], names: KnownNames): Config {
  const cfg: Config = {};
  const svcs: ServiceConfig[] = [];
  for (const s of services) svcs.push(...parseServiceUrl(s, svcs.length, names, cfg));
  if (nodes.length > 0) {
    cfg.chains = [{
      name: "chain-0",
      hops: nodes.map((n, i) => parseNodeUrl(n, i, names, cfg)),
    }];
    for (const s of svcs) {
      if (["rtcp", "rudp", "runix"].includes(s.listener.type)) s.listener.chain = "chain-0";
      else s.handler.chain = "chain-0";
    }
  }
  if (svcs.length > 0) cfg.services = svcs;
  return cfg;
}

/** Re-throws config errors from the CLI as usage errors (exit 2). */
export function asUsage(e: unknown): never {
  if (e instanceof ConfigError) throw new UsageError(e.message);
  throw e;
}
