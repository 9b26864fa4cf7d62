/**
 * The one normalised configuration type, produced by both the CLI (`-L`/`-F`) and config files,
 * with GOST's field names (gost.md §2). `normalizeConfig` validates untrusted input and names
 * the bad field in its error (`services[2].listener.type: expected a string`).
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import { parseDuration } from "../core/duration.ts";

export type MetadataMap = Record<string, unknown>;

export interface AuthConfig {
  username: string;
  password: string;
}

export interface TLSConfig {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  secure?: boolean;
  serverName?: string;
}

export interface SelectorConfig {
  strategy?: string;
  maxFails?: number;
  /** Go duration text, e.g. "30s". */
  failTimeout?: string;
}

export interface HandlerConfig {
  type: string;
  retries?: number;
  chain?: string;
  auther?: string;
  authers?: string[];
  auth?: AuthConfig;
  tls?: TLSConfig;
  metadata?: MetadataMap;
}

export interface ListenerConfig {
  type: string;
  chain?: string;
  auther?: string;
  authers?: string[];
  auth?: AuthConfig;
  tls?: TLSConfig;
  metadata?: MetadataMap;
}

export interface ForwardNodeConfig {
  name: string;
  addr: string;
  network?: string;
  metadata?: MetadataMap;
}

export interface ForwarderConfig {
  /** A top-level hop to take the nodes from. */
  hop?: string;
  selector?: SelectorConfig;
  nodes?: ForwardNodeConfig[];
}

export interface ServiceConfig {
  name: string;
  addr: string;
  handler: HandlerConfig;
  listener: ListenerConfig;
  forwarder?: ForwarderConfig;
  metadata?: MetadataMap;
}

export interface PluginConfig {
  type: string;
  auth?: AuthConfig;
  tls?: TLSConfig;
  metadata?: MetadataMap;
}

export interface NodeConfig {
  name: string;
  addr: string;
  network?: string;
  connector: PluginConfig;
  dialer: PluginConfig;
  metadata?: MetadataMap;
}

export interface HopConfig {
  name: string;
  selector?: SelectorConfig;
  nodes?: NodeConfig[];
  metadata?: MetadataMap;
}

export interface ChainConfig {
  name: string;
  hops: HopConfig[];
  metadata?: MetadataMap;
}

export interface AutherConfig {
  name: string;
  auths?: AuthConfig[];
  file?: { path: string };
}

export interface LogConfig {
  output?: string;
  level?: string;
  format?: string;
}

/** The whole configuration. */
export interface Config {
  services?: ServiceConfig[];
  chains?: ChainConfig[];
  hops?: HopConfig[];
  authers?: AutherConfig[];
  tls?: TLSConfig;
  log?: LogConfig;
}

// ------------------------------------------------------------------ validation

type Obj = Record<string, unknown>;

function kind(v: unknown): string {
  return Array.isArray(v) ? "a list" : v === null ? "null" : `a ${typeof v}`;
}

/** Looks keys up case-insensitively (GOST/viper matches config keys that way). */
class Fields {
  readonly #o: Obj;
  readonly path: string;
  readonly #lower = new Map<string, string>();
  constructor(o: unknown, path: string) {
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      throw new ConfigError(path, `expected a mapping, got ${kind(o)}`);
    }
    this.#o = o as Obj;
    this.path = path;
    for (const k of Object.keys(this.#o)) this.#lower.set(k.toLowerCase(), k);
  }
  #raw(key: string): unknown {
    const k = this.#lower.get(key.toLowerCase());
    return k === undefined ? undefined : this.#o[k];
  }
  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }
  has(key: string): boolean {
    const v = this.#raw(key);
    return v !== undefined && v !== null;
  }
  str(key: string): string | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    throw new ConfigError(this.at(key), `expected a string, got ${kind(v)}`);
  }
  reqStr(key: string, def?: string): string {
    const v = this.str(key) ?? def;
    if (v === undefined || v === "") throw new ConfigError(this.at(key), "is required");
    return v;
  }
  int(key: string): number | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "number" ? v : typeof v === "string" ? Number(v.trim()) : NaN;
    if (!Number.isInteger(n)) {
      throw new ConfigError(this.at(key), `expected an integer, got ${JSON.stringify(v)}`);
    }
    return n;
  }
  bool(key: string): boolean | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    throw new ConfigError(this.at(key), `expected true or false, got ${JSON.stringify(v)}`);
  }
  duration(key: string): string | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null || v === "") return undefined;
    const text = typeof v === "number" ? `${v}s` : String(v);
    if (parseDuration(text) === undefined) {
      throw new ConfigError(
        this.at(key),
        `expected a duration such as "30s", got ${JSON.stringify(v)}`,
      );
    }
    return text;
  }
  obj(key: string): Fields | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    return new Fields(v, this.at(key));
  }
  list(key: string): Fields[] | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new ConfigError(this.at(key), `expected a list, got ${kind(v)}`);
    return v.map((x, i) => new Fields(x, `${this.at(key)}[${i}]`));
  }
  strList(key: string): string[] | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new ConfigError(this.at(key), `expected a list, got ${kind(v)}`);
    return v.map((x, i) => {
      if (typeof x !== "string") {
        throw new ConfigError(`${this.at(key)}[${i}]`, `expected a string, got ${kind(x)}`);
      }
      return x;
    });
  }
  metadata(key = "metadata"): MetadataMap | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) {
      throw new ConfigError(this.at(key), `expected a mapping, got ${kind(v)}`);
    }
    return { ...(v as Obj) };
  }
}

function setIf<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v as T[K];
}

function auth(f: Fields | undefined): AuthConfig | undefined {
  if (!f) return undefined;
  return { username: f.str("username") ?? "", password: f.str("password") ?? "" };
}

function tls(f: Fields | undefined): TLSConfig | undefined {
  if (!f) return undefined;
  const t: TLSConfig = {};
  setIf(t, "certFile", f.str("certFile"));
  setIf(t, "keyFile", f.str("keyFile"));
  setIf(t, "caFile", f.str("caFile"));
  setIf(t, "secure", f.bool("secure"));
  setIf(t, "serverName", f.str("serverName"));
  return t;
}

function selector(f: Fields | undefined): SelectorConfig | undefined {
  if (!f) return undefined;
  const s: SelectorConfig = {};
  const strategy = f.str("strategy");
  if (strategy !== undefined && !STRATEGIES.includes(strategy.toLowerCase())) {
    throw new ConfigError(
      f.at("strategy"),
      `unknown strategy "${strategy}" (one of ${STRATEGIES.join(", ")})`,
    );
  }
  setIf(s, "strategy", strategy);
  setIf(s, "maxFails", f.int("maxFails"));
  setIf(s, "failTimeout", f.duration("failTimeout"));
  return s;
}

/** Strategy names GOST accepts (gost.md §5.5). */
export const STRATEGIES: string[] = ["round", "rr", "random", "rand", "fifo", "ha", "hash"];

function plugin(f: Fields | undefined, def: string): PluginConfig {
  const p: PluginConfig = { type: f?.str("type") || def };
  if (!f) return p;
  setIf(p, "auth", auth(f.obj("auth")));
  setIf(p, "tls", tls(f.obj("tls")));
  setIf(p, "metadata", f.metadata());
  return p;
}

function handler(f: Fields | undefined): HandlerConfig {
  const h: HandlerConfig = { type: f?.str("type") || "auto" };
  if (!f) return h;
  setIf(h, "retries", f.int("retries"));
  setIf(h, "chain", f.str("chain"));
  setIf(h, "auther", f.str("auther"));
  setIf(h, "authers", f.strList("authers"));
  setIf(h, "auth", auth(f.obj("auth")));
  setIf(h, "tls", tls(f.obj("tls")));
  setIf(h, "metadata", f.metadata());
  return h;
}

function listener(f: Fields | undefined): ListenerConfig {
  const l: ListenerConfig = { type: f?.str("type") || "tcp" };
  if (!f) return l;
  setIf(l, "chain", f.str("chain"));
  setIf(l, "auther", f.str("auther"));
  setIf(l, "authers", f.strList("authers"));
  setIf(l, "auth", auth(f.obj("auth")));
  setIf(l, "tls", tls(f.obj("tls")));
  setIf(l, "metadata", f.metadata());
  return l;
}

function forwarder(f: Fields | undefined): ForwarderConfig | undefined {
  if (!f) return undefined;
  const fw: ForwarderConfig = {};
  setIf(fw, "hop", f.str("hop") ?? f.str("name"));
  setIf(fw, "selector", selector(f.obj("selector")));
  const nodes = f.list("nodes");
  if (nodes) {
    fw.nodes = nodes.map((n, i) => {
      const node: ForwardNodeConfig = {
        name: n.str("name") || `target-${i}`,
        addr: n.reqStr("addr"),
      };
      setIf(node, "network", n.str("network"));
      setIf(node, "metadata", n.metadata());
      return node;
    });
  }
  return fw;
}

function node(f: Fields, i: number): NodeConfig {
  const n: NodeConfig = {
    name: f.str("name") || `node-${i}`,
    addr: f.reqStr("addr"),
    connector: plugin(f.obj("connector"), "http"),
    dialer: plugin(f.obj("dialer"), "tcp"),
  };
  setIf(n, "network", f.str("network"));
  setIf(n, "metadata", f.metadata());
  return n;
}

function hop(f: Fields, i: number): HopConfig {
  const h: HopConfig = { name: f.str("name") || `hop-${i}` };
  setIf(h, "selector", selector(f.obj("selector")));
  const nodes = f.list("nodes");
  if (nodes) h.nodes = nodes.map(node);
  setIf(h, "metadata", f.metadata());
  return h;
}

/**
 * Validates and normalises raw config (parsed YAML/JSON). Keys match case-insensitively; unknown
 * keys are ignored as GOST does; wrong types and dangling references are errors naming the field.
 */
export function normalizeConfig(raw: unknown): Config {
  const f = new Fields(raw ?? {}, "");
  const cfg: Config = {};
  const services = f.list("services");
  if (services) {
    cfg.services = services.map((s, i) => {
      const svc: ServiceConfig = {
        name: s.str("name") || `service-${i}`,
        addr: s.reqStr("addr"),
        handler: handler(s.obj("handler")),
        listener: listener(s.obj("listener")),
      };
      setIf(svc, "forwarder", forwarder(s.obj("forwarder")));
      setIf(svc, "metadata", s.metadata());
      return svc;
    });
  }
  const chains = f.list("chains");
  if (chains) {
    cfg.chains = chains.map((c, i) => {
      const ch: ChainConfig = {
        name: c.str("name") || `chain-${i}`,
        hops: (c.list("hops") ?? []).map(hop),
      };
      setIf(ch, "metadata", c.metadata());
      return ch;
    });
  }
  const hops = f.list("hops");
  if (hops) cfg.hops = hops.map(hop);
  const authers = f.list("authers");
  if (authers) {
    cfg.authers = authers.map((a, i) => {
      const au: AutherConfig = { name: a.reqStr("name", `auther-${i}`) };
      const auths = a.list("auths");
      if (auths) au.auths = auths.map((x) => auth(x)!);
      const file = a.obj("file");
      if (file) au.file = { path: file.reqStr("path") };
      return au;
    });
  }
  setIf(cfg, "tls", tls(f.obj("tls")));
  const log = f.obj("log");
  if (log) {
    const l: LogConfig = {};
    setIf(l, "output", log.str("output"));
    const level = log.str("level");
    if (level !== undefined && !LEVELS.includes(level)) {
      throw new ConfigError(
        log.at("level"),
        `unknown level "${level}" (one of ${LEVELS.join(", ")})`,
      );
    }
    setIf(l, "level", level);
    setIf(l, "format", log.str("format"));
    cfg.log = l;
  }
  checkReferences(cfg);
  return cfg;
}

const LEVELS = ["trace", "debug", "info", "warn", "warning", "error", "fatal"];

/** Names referenced by services must exist: chains, authers, hops. */
export function checkReferences(cfg: Config): void {
  const chains = new Set((cfg.chains ?? []).map((c) => c.name));
  const authers = new Set((cfg.authers ?? []).map((a) => a.name));
  const hops = new Set((cfg.hops ?? []).map((h) => h.name));
  const names = new Set<string>();
  (cfg.services ?? []).forEach((s, i) => {
    const p = `services[${i}]`;
    if (names.has(s.name)) throw new ConfigError(`${p}.name`, `duplicate service name "${s.name}"`);
    names.add(s.name);
    for (const [part, c] of [["handler", s.handler], ["listener", s.listener]] as const) {
      if (c.chain && !chains.has(c.chain)) {
        throw new ConfigError(`${p}.${part}.chain`, `no chain named "${c.chain}"`);
      }
      for (const a of [...(c.auther ? [c.auther] : []), ...(c.authers ?? [])]) {
        if (!authers.has(a)) throw new ConfigError(`${p}.${part}.auther`, `no auther named "${a}"`);
      }
    }
    if (s.forwarder?.hop && !s.forwarder.nodes && !hops.has(s.forwarder.hop)) {
      throw new ConfigError(`${p}.forwarder.hop`, `no hop named "${s.forwarder.hop}"`);
    }
  });
  (cfg.chains ?? []).forEach((c, i) =>
    c.hops.forEach((h, j) => {
      if (!h.nodes && !hops.has(h.name)) {
        throw new ConfigError(
          `chains[${i}].hops[${j}]`,
          `hop "${h.name}" has no nodes and no top-level hop has that name`,
        );
      }
    })
  );
}

/** Merges several configs as GOST does: lists concatenate, singletons: last one wins. */
export function mergeConfigs(...cfgs: Config[]): Config {
  const out: Config = {};
  for (const c of cfgs) {
    for (const k of ["services", "chains", "hops", "authers"] as const) {
      const v = c[k];
      if (v) (out[k] as unknown[]) = [...((out[k] as unknown[]) ?? []), ...v];
    }
    if (c.tls) out.tls = c.tls;
    if (c.log) out.log = c.log;
  }
  return out;
}
