/**
 * The one normalised configuration type, produced by both the CLI (`-L`/`-F`) and config files,
 * with GOST's field names (docs/gost-config.md §2). `normalizeConfig` validates untrusted input and names
 * the bad field in its error (`services[2].listener.type: expected a string`).
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import { kindOf, toBool, toDurationMs, toInt, toStr } from "../core/values.ts";
import { parseDuration } from "../core/duration.ts";
import type { MetadataRecord } from "../core/metadata.ts";
import {
  consoleDiagnostics,
  type Diagnostics,
  GOST_FIELDS,
  type Level,
  reportUnknown,
} from "./keys.ts";

/** Basic credentials (GOST's `auth`). */
export interface AuthConfig {
  /** User name. */
  username: string;
  /** Password. */
  password: string;
  /** A file of `user pass` lines (GOST's `auth.file`); its users are accepted too. */
  file?: string;
}

/** Certificates for a TLS listener or dialer (GOST's `tls`). */
export interface TLSConfig {
  /** PEM certificate chain; a server without one uses a generated self-signed certificate. */
  certFile?: string;
  /** PEM private key of `certFile`. */
  keyFile?: string;
  /** PEM CA bundle: a server requires client certificates signed by it (mtls), a client verifies the server with it. */
  caFile?: string;
  /** Client: verify the server's certificate (default off, as in GOST). */
  secure?: boolean;
  /** Client: SNI and the name to verify. */
  serverName?: string;
}

/** How a hop or forwarder picks a node. */
export interface SelectorConfig {
  /** `round` (default), `rand`, `fifo` or `hash` (GOST's names and aliases). */
  strategy?: string;
  /** Failures before a node is skipped. */
  maxFails?: number;
  /** Go duration text, e.g. "30s": how long a failed node is skipped. */
  failTimeout?: string;
}

/** A service's handler: the proxy protocol it speaks (`socks5`, `http`, `relay`, `tcp`, ...). */
export interface HandlerConfig {
  /** GOST handler type name. */
  type: string;
  /** Route retries through the chain. */
  retries?: number;
  /** The chain (by name) outbound connections go through. */
  chain?: string;
  /** An auther (by name) checking clients. */
  auther?: string;
  /** Several authers; any may accept. */
  authers?: string[];
  /** Inline credentials. */
  auth?: AuthConfig;
  /** TLS settings for handlers that use them. */
  tls?: TLSConfig;
  /** A traffic limiter by name (per user in GOST; here: per connection of the handler). */
  limiter?: string;
  /** Handler options (GOST metadata keys). */
  metadata?: MetadataRecord;
}

/** A service's listener: the transport it accepts (`tcp`, `tls`, `ws`, `kcp`, ...). */
export interface ListenerConfig {
  /** GOST listener type name. */
  type: string;
  /** A chain (by name) for listeners that bind remotely (`rtcp`, `rudp`). */
  chain?: string;
  /** An auther (by name) for listeners that authenticate. */
  auther?: string;
  /** Several authers; any may accept. */
  authers?: string[];
  /** Inline credentials. */
  auth?: AuthConfig;
  /** Certificates of TLS-based listeners. */
  tls?: TLSConfig;
  /** Listener options (GOST metadata keys). */
  metadata?: MetadataRecord;
}

/** A forward target of a `tcp`/`udp`/`forward` service. */
export interface ForwardNodeConfig {
  /** Node name. */
  name: string;
  /** Target `host:port`. */
  addr: string;
  /** `tcp` or `udp`. */
  network?: string;
  /** Node options. */
  metadata?: MetadataRecord;
}

/** Where a port-forwarding service sends its connections. */
export interface ForwarderConfig {
  /** A top-level hop to take the nodes from. */
  hop?: string;
  /** How a target is picked. */
  selector?: SelectorConfig;
  /** The targets. */
  nodes?: ForwardNodeConfig[];
}

/** One service: a listener accepting on `addr` and a handler serving what it accepts. */
export interface ServiceConfig {
  /** Unique name (the CLI names them `service-0`, ...). */
  name: string;
  /** `[host]:port` to listen on. */
  addr: string;
  /** What it speaks. */
  handler: HandlerConfig;
  /** What it accepts. */
  listener: ListenerConfig;
  /** Forward targets (port forwarding). */
  forwarder?: ForwarderConfig;
  /** An admission list (by name) clients must pass. */
  admission?: string;
  /** Several admission lists; all must pass. */
  admissions?: string[];
  /** A bypass list (by name): targets not sent through the chain. */
  bypass?: string;
  /** Several bypass lists. */
  bypasses?: string[];
  /** A resolver (by name) for target host names. */
  resolver?: string;
  /** A hosts table (by name) for target host names. */
  hosts?: string;
  /** A traffic limiter (by name). */
  limiter?: string;
  /** A concurrent-connection limiter (by name). */
  climiter?: string;
  /** A request-rate limiter (by name). */
  rlimiter?: string;
  /** Service options (GOST metadata keys). */
  metadata?: MetadataRecord;
}

/** A node's connector or dialer. */
export interface PluginConfig {
  /** GOST connector or dialer type name. */
  type: string;
  /** Credentials it presents. */
  auth?: AuthConfig;
  /** TLS settings of TLS-based dialers. */
  tls?: TLSConfig;
  /** Options (GOST metadata keys). */
  metadata?: MetadataRecord;
}

/** A chain node: a proxy server reached with a dialer and spoken to with a connector. */
export interface NodeConfig {
  /** Node name. */
  name: string;
  /** The server's `host:port`. */
  addr: string;
  /** `tcp` or `udp`. */
  network?: string;
  /** The proxy protocol (`socks5`, `http`, `relay`, `forward`, ...). */
  connector: PluginConfig;
  /** The transport (`tcp`, `tls`, `ws`, `kcp`, ...). */
  dialer: PluginConfig;
  /** A bypass list (by name): targets this node does not carry. */
  bypass?: string;
  /** Several bypass lists. */
  bypasses?: string[];
  /** A resolver (by name) for this node's own host. */
  resolver?: string;
  /** A hosts table (by name) for this node's own host. */
  hosts?: string;
  /** Node options. */
  metadata?: MetadataRecord;
}

/** A hop: one or more nodes, one of which each route takes. */
export interface HopConfig {
  /** Hop name. */
  name: string;
  /** How a node is picked. */
  selector?: SelectorConfig;
  /** The nodes. */
  nodes?: NodeConfig[];
  /** A bypass list (by name): routes to matching targets end before this hop. */
  bypass?: string;
  /** Several bypass lists. */
  bypasses?: string[];
  /** A resolver (by name) for the nodes' hosts. */
  resolver?: string;
  /** A hosts table (by name) for the nodes' hosts. */
  hosts?: string;
  /** Hop options. */
  metadata?: MetadataRecord;
}

/** A chain: hops a connection passes through in order. */
export interface ChainConfig {
  /** Chain name (the CLI's `-F` chain is `chain-0`). */
  name: string;
  /** The hops, first to last. */
  hops: HopConfig[];
  /** Chain options. */
  metadata?: MetadataRecord;
}

/** A named set of users. */
export interface AutherConfig {
  /** Auther name. */
  name: string;
  /** Inline users. */
  auths?: AuthConfig[];
  /** A file of `user pass` lines. */
  file?: { path: string };
  /** Re-read `file` this often (Go duration text). */
  reload?: string;
}

/** An admission (client addresses) or bypass (targets) matcher list. */
export interface BypassConfig {
  /** List name. */
  name: string;
  /** Invert: only matching addresses pass (`~` on the CLI). */
  whitelist?: boolean;
  /** IPs, CIDRs, domains (`.example.com` for subdomains) and `host:port` patterns. */
  matchers?: string[];
  /** Bypass only: `tcp` or `udp` limits which requests are checked. */
  network?: string;
  /** A file of matchers, one per line. */
  file?: { path: string };
  /** Re-read `file` this often (Go duration text). */
  reload?: string;
}

/** Admissions have the same shape as bypasses. */
export type AdmissionConfig = BypassConfig;

/** One hosts-table entry. */
export interface HostMappingConfig {
  /** The address the names map to. */
  ip: string;
  /** The name. */
  hostname: string;
  /** More names for the same address. */
  aliases?: string[];
}

/** A hosts table: static name → IP mappings. */
export interface HostsConfig {
  /** Table name. */
  name: string;
  /** The mappings. */
  mappings?: HostMappingConfig[];
  /** A file in /etc/hosts format. */
  file?: { path: string };
  /** Re-read `file` this often (Go duration text). */
  reload?: string;
}

/** One upstream DNS server of a resolver. */
export interface NameserverConfig {
  /** `udp://ip:53`, `tcp://`, `tls://` (DoT), `https://host/dns-query` (DoH), or `ip[:port]`. */
  addr: string;
  /** A chain (by name) to reach the server through. */
  chain?: string;
  /** `ipv4` or `ipv6`: which answer to prefer. */
  prefer?: string;
  /** EDNS client subnet to send. */
  clientIP?: string;
  /** TLS server name for DoT/DoH. */
  hostname?: string;
  /** Cache answers this long (Go duration text; default: the answer's TTL). */
  ttl?: string;
  /** Query timeout (Go duration text). */
  timeout?: string;
  /** `ipv4` or `ipv6`: ask only for that family. */
  only?: string;
  /** Refresh cached answers in the background. */
  async?: boolean;
}

/** A named resolver: nameservers tried in order. */
export interface ResolverConfig {
  /** Resolver name. */
  name: string;
  /** The nameservers. */
  nameservers: NameserverConfig[];
}

/** Limits lines such as `$ 100MB 100MB`, `$$ 10MB`, `10.0.0.0/8 1MB` (climiter/rlimiter: `$ 10`). */
export interface LimiterConfig {
  /** Limiter name. */
  name: string;
  /** The limit lines. */
  limits?: string[];
  /** A file of limit lines. */
  file?: { path: string };
  /** Re-read `file` this often (Go duration text). */
  reload?: string;
}

/** Logging. */
export interface LogConfig {
  /** `stderr` (default), `stdout`, `none` or a file path. */
  output?: string;
  /** `trace`, `debug`, `info` (default), `warn`, `error`, `fatal`. */
  level?: string;
  /** `json` (default) or `text`. */
  format?: string;
}

/** One ingress rule: visitors for `hostname` go to tunnel `endpoint` (`$uuid`: private). */
export interface IngressRuleConfig {
  /** Host name (or `*.suffix`) visitors ask for. */
  hostname: string;
  /** The tunnel id serving it. */
  endpoint: string;
}

/** An `ingresses:` entry, named by a tunnel handler's `ingress` metadata. */
export interface IngressConfig {
  /** Ingress name. */
  name: string;
  /** The rules. */
  rules?: IngressRuleConfig[];
}

/** The web API (`api:`, `-api`): GOST's `/config` routes and Burrow's dashboard. */
export interface APIConfig {
  /** `host:port` to listen on. */
  addr: string;
  /** Routes live under this prefix (`/api` → `/api/config`). */
  pathPrefix?: string;
  /** Log one line per request. */
  accesslog?: boolean;
  /** Basic-auth user (with `auther`, either may match). */
  auth?: AuthConfig;
  /** A named auther checking the basic-auth user. */
  auther?: string;
}

/** The Prometheus endpoint (`metrics:`, `-metrics`). */
export interface MetricsConfig {
  /** `host:port` to listen on. */
  addr: string;
  /** Default `/metrics`. */
  path?: string;
  /** Basic-auth user required to scrape. */
  auth?: AuthConfig;
  /** A named auther; replaces `auth` (GOST). */
  auther?: string;
}

/** The whole configuration, with GOST v3's field names. */
export interface Config {
  /** Services to run. */
  services?: ServiceConfig[];
  /** Chains services route through. */
  chains?: ChainConfig[];
  /** Hops shared by chains and forwarders. */
  hops?: HopConfig[];
  /** Named user sets. */
  authers?: AutherConfig[];
  /** Client-address lists. */
  admissions?: AdmissionConfig[];
  /** Target lists kept off chains. */
  bypasses?: BypassConfig[];
  /** Hosts tables. */
  hosts?: HostsConfig[];
  /** DNS resolvers. */
  resolvers?: ResolverConfig[];
  /** Traffic limiters. */
  limiters?: LimiterConfig[];
  /** Concurrent-connection limiters. */
  climiters?: LimiterConfig[];
  /** Request-rate limiters. */
  rlimiters?: LimiterConfig[];
  /** Tunnel ingress rules. */
  ingresses?: IngressConfig[];
  /** The default certificate for TLS-based listeners. */
  tls?: TLSConfig;
  /** Logging. */
  log?: LogConfig;
  /** The web API. */
  api?: APIConfig;
  /** The Prometheus endpoint. */
  metrics?: MetricsConfig;
  /** Unknown keys are errors, not warnings. */
  strict?: boolean;
}

// ------------------------------------------------------------------ validation

type Obj = Record<string, unknown>;

/**
 * Looks keys up case-insensitively (GOST/viper matches config keys that way) and remembers which
 * it read, so `check` can refuse or warn about the rest.
 */
class Fields {
  readonly #o: Obj;
  readonly path: string;
  readonly diag: Diagnostics;
  readonly #lower = new Map<string, string>();
  readonly #read = new Set<string>();
  constructor(o: unknown, path: string, diag: Diagnostics) {
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      throw new ConfigError(path, `expected a mapping, got ${kindOf(o)}`);
    }
    this.#o = o as Obj;
    this.path = path;
    this.diag = diag;
    for (const k of Object.keys(this.#o)) this.#lower.set(k.toLowerCase(), k);
  }
  #raw(key: string): unknown {
    this.#read.add(key.toLowerCase());
    const k = this.#lower.get(key.toLowerCase());
    return k === undefined ? undefined : this.#o[k];
  }
  /** Refuses keys of `level` that GOST defines but nothing here read; warns about unknown ones. */
  check(level: Level): void {
    const gost = GOST_FIELDS[level];
    for (const [lk, k] of this.#lower) {
      if (this.#read.has(lk)) continue;
      const known = gost.some((g) => g.toLowerCase() === lk);
      reportUnknown(this.diag, this.path, k, known, gost);
    }
  }
  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }
  has(key: string): boolean {
    const v = this.#raw(key);
    return v !== undefined && v !== null;
  }
  str(key: string): string | undefined {
    return toStr(this.#raw(key), this.at(key));
  }
  reqStr(key: string, def?: string): string {
    const v = this.str(key) ?? def;
    if (v === undefined || v === "") throw new ConfigError(this.at(key), "is required");
    return v;
  }
  int(key: string): number | undefined {
    return toInt(this.#raw(key), this.at(key));
  }
  bool(key: string): boolean | undefined {
    return toBool(this.#raw(key), this.at(key));
  }
  /** Duration text as given (a number means seconds), checked like metadata durations. */
  duration(key: string): string | undefined {
    const v = this.#raw(key);
    if (toDurationMs(v, this.at(key)) === undefined) return undefined;
    return typeof v === "number" ? `${v}s` : String(v);
  }
  obj(key: string): Fields | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    return new Fields(v, this.at(key), this.diag);
  }
  list(key: string): Fields[] | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new ConfigError(this.at(key), `expected a list, got ${kindOf(v)}`);
    return v.map((x, i) => new Fields(x, `${this.at(key)}[${i}]`, this.diag));
  }
  strList(key: string): string[] | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new ConfigError(this.at(key), `expected a list, got ${kindOf(v)}`);
    return v.map((x, i) => {
      if (typeof x !== "string") {
        throw new ConfigError(`${this.at(key)}[${i}]`, `expected a string, got ${kindOf(x)}`);
      }
      return x;
    });
  }
  metadata(key = "metadata"): MetadataRecord | undefined {
    const v = this.#raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) {
      throw new ConfigError(this.at(key), `expected a mapping, got ${kindOf(v)}`);
    }
    return { ...(v as Obj) };
  }
}

function setIf<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v as T[K];
}

function auth(f: Fields | undefined): AuthConfig | undefined {
  if (!f) return undefined;
  const a: AuthConfig = { username: f.str("username") ?? "", password: f.str("password") ?? "" };
  setIf(a, "file", f.str("file"));
  f.check("auth");
  return a;
}

/** `auth` of the API or metrics endpoint: one user; a user file belongs in a named auther. */
function endpointAuth(f: Fields, what: string): AuthConfig | undefined {
  const a = auth(f.obj("auth"));
  if (a?.file) {
    throw new ConfigError(
      `${f.at("auth")}.file`,
      `is not supported for the ${what} endpoint: use auther: <name> with an auther whose file: lists the users`,
    );
  }
  return a;
}

function tls(f: Fields | undefined): TLSConfig | undefined {
  if (!f) return undefined;
  const t: TLSConfig = {};
  setIf(t, "certFile", f.str("certFile"));
  setIf(t, "keyFile", f.str("keyFile"));
  setIf(t, "caFile", f.str("caFile"));
  setIf(t, "secure", f.bool("secure"));
  setIf(t, "serverName", f.str("serverName"));
  f.check("tls");
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
  const maxFails = f.int("maxFails");
  if (maxFails !== undefined && maxFails < 0) {
    throw new ConfigError(f.at("maxFails"), "must not be negative");
  }
  setIf(s, "maxFails", maxFails);
  setIf(s, "failTimeout", f.duration("failTimeout"));
  f.check("selector");
  return s;
}

/** Strategy names GOST accepts (docs/gost-config.md §3.5). */
export const STRATEGIES: string[] = ["round", "rr", "random", "rand", "fifo", "ha", "hash"];

function plugin(f: Fields | undefined, def: string): PluginConfig {
  const p: PluginConfig = { type: f?.str("type") || def };
  if (!f) return p;
  setIf(p, "auth", auth(f.obj("auth")));
  setIf(p, "tls", tls(f.obj("tls")));
  setIf(p, "metadata", f.metadata());
  f.check("plugin");
  return p;
}

function handler(f: Fields | undefined): HandlerConfig {
  const h: HandlerConfig = { type: f?.str("type") || "auto" };
  if (!f) return h;
  const retries = f.int("retries");
  if (retries !== undefined && retries < 0) {
    throw new ConfigError(f.at("retries"), "must not be negative");
  }
  setIf(h, "retries", retries);
  setIf(h, "chain", f.str("chain"));
  setIf(h, "auther", f.str("auther"));
  setIf(h, "authers", f.strList("authers"));
  setIf(h, "auth", auth(f.obj("auth")));
  setIf(h, "tls", tls(f.obj("tls")));
  setIf(h, "limiter", f.str("limiter"));
  setIf(h, "metadata", f.metadata());
  f.check("handler");
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
  f.check("listener");
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
      n.check("forwardNode");
      return node;
    });
  }
  f.check("forwarder");
  return fw;
}

/** `bypass: name` and `bypasses: [names]` on a service, hop or node. */
function bypassRefs(f: Fields, o: { bypass?: string; bypasses?: string[] }): void {
  setIf(o, "bypass", f.str("bypass"));
  setIf(o, "bypasses", f.strList("bypasses"));
}

function node(f: Fields, i: number): NodeConfig {
  const n: NodeConfig = {
    name: f.str("name") || `node-${i}`,
    addr: f.reqStr("addr"),
    connector: plugin(f.obj("connector"), "http"),
    dialer: plugin(f.obj("dialer"), "tcp"),
  };
  setIf(n, "network", f.str("network"));
  bypassRefs(f, n);
  setIf(n, "resolver", f.str("resolver"));
  setIf(n, "hosts", f.str("hosts"));
  setIf(n, "metadata", f.metadata());
  f.check("node");
  return n;
}

function hop(f: Fields, i: number): HopConfig {
  const h: HopConfig = { name: f.str("name") || `hop-${i}` };
  setIf(h, "selector", selector(f.obj("selector")));
  const nodes = f.list("nodes");
  if (nodes) h.nodes = nodes.map(node);
  bypassRefs(f, h);
  setIf(h, "resolver", f.str("resolver"));
  setIf(h, "hosts", f.str("hosts"));
  setIf(h, "metadata", f.metadata());
  f.check("hop");
  return h;
}

function filePath(f: Fields | undefined): { path: string } | undefined {
  if (!f) return undefined;
  const out = { path: f.reqStr("path") };
  f.check("file");
  return out;
}

/** Common to admissions, bypasses, hosts, limiters, authers: a name, a file and its reload period. */
function named<T extends { name: string; file?: { path: string }; reload?: string }>(
  f: Fields,
  i: number,
  kindName: string,
): T {
  const o = { name: f.reqStr("name", `${kindName}-${i}`) } as T;
  setIf(o, "file", filePath(f.obj("file")));
  setIf(o, "reload", f.duration("reload"));
  return o;
}

function matcherSet(f: Fields, i: number, level: "admission" | "bypass"): BypassConfig {
  const o = named<BypassConfig>(f, i, level);
  const wl = f.bool("whitelist") ?? f.bool("reverse");
  setIf(o, "whitelist", wl);
  setIf(o, "matchers", f.strList("matchers"));
  if (level === "bypass") setIf(o, "network", f.str("network"));
  f.check(level);
  return o;
}

function hostsObj(f: Fields, i: number): HostsConfig {
  const o = named<HostsConfig>(f, i, "hosts");
  const maps = f.list("mappings");
  if (maps) {
    o.mappings = maps.map((m) => {
      const x: HostMappingConfig = { ip: m.reqStr("ip"), hostname: m.reqStr("hostname") };
      setIf(x, "aliases", m.strList("aliases"));
      m.check("mapping");
      return x;
    });
  }
  f.check("hosts");
  return o;
}

function resolverObj(f: Fields, i: number): ResolverConfig {
  const o: ResolverConfig = { name: f.reqStr("name", `resolver-${i}`), nameservers: [] };
  o.nameservers = (f.list("nameservers") ?? []).map((n) => {
    const x: NameserverConfig = { addr: n.reqStr("addr") };
    setIf(x, "chain", n.str("chain"));
    const prefer = n.str("prefer");
    if (prefer !== undefined && !["ipv4", "ipv6", ""].includes(prefer.toLowerCase())) {
      throw new ConfigError(n.at("prefer"), `expected ipv4 or ipv6, got ${JSON.stringify(prefer)}`);
    }
    setIf(x, "prefer", prefer?.toLowerCase());
    setIf(x, "clientIP", n.str("clientIP"));
    setIf(x, "hostname", n.str("hostname"));
    const ttl = n.str("ttl");
    // A negative resolver ttl is meaningful (no cache), so it is checked without the sign.
    if (ttl !== undefined && ttl !== "" && parseDuration(ttl.replace(/^\s*-/, "")) === undefined) {
      throw new ConfigError(
        n.at("ttl"),
        `expected a duration such as "30s", got ${JSON.stringify(ttl)}`,
      );
    }
    setIf(x, "ttl", ttl || undefined);
    setIf(x, "timeout", n.duration("timeout"));
    setIf(x, "only", n.str("only"));
    setIf(x, "async", n.bool("async"));
    n.check("nameserver");
    return x;
  });
  f.check("resolver");
  return o;
}

function limiterObj(f: Fields, i: number, kindName: string): LimiterConfig {
  const o = named<LimiterConfig>(f, i, kindName);
  setIf(o, "limits", f.strList("limits"));
  f.check("limiter");
  return o;
}

/** Options for {@link normalizeConfig}. */
export interface NormalizeOptions {
  /** Where unknown-key warnings go (default: `console.warn`). */
  diagnostics?: Diagnostics;
  /** Unknown keys are errors (also set by `strict: true` in the config itself). */
  strict?: boolean;
}

/**
 * Validates and normalises raw config (parsed YAML/JSON). Keys match case-insensitively. A key
 * GOST defines that Burrow does not implement is an error naming it; an unknown key is a warning
 * with the closest known key (an error when strict); wrong types and dangling references are
 * errors naming the field.
 */
export function normalizeConfig(raw: unknown, opts: NormalizeOptions = {}): Config {
  const base = opts.diagnostics ?? consoleDiagnostics();
  const probe = new Fields(raw ?? {}, "", base);
  const strict = opts.strict || base.strict || probe.bool("strict") === true;
  const diag: Diagnostics = { strict, warn: (p, m) => base.warn(p, m) };
  const f = new Fields(raw ?? {}, "", diag);
  const cfg: Config = {};
  if (f.bool("strict") !== undefined) cfg.strict = f.bool("strict");
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
      setIf(svc, "admission", s.str("admission"));
      setIf(svc, "admissions", s.strList("admissions"));
      bypassRefs(s, svc);
      setIf(svc, "resolver", s.str("resolver"));
      setIf(svc, "hosts", s.str("hosts"));
      setIf(svc, "limiter", s.str("limiter"));
      setIf(svc, "climiter", s.str("climiter"));
      setIf(svc, "rlimiter", s.str("rlimiter"));
      setIf(svc, "metadata", s.metadata());
      s.check("service");
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
      c.check("chain");
      return ch;
    });
  }
  const hops = f.list("hops");
  if (hops) cfg.hops = hops.map(hop);
  const authers = f.list("authers");
  if (authers) {
    cfg.authers = authers.map((a, i) => {
      const au = named<AutherConfig>(a, i, "auther");
      const auths = a.list("auths");
      if (auths) au.auths = auths.map((x) => auth(x)!);
      a.check("auther");
      return au;
    });
  }
  const list = <T>(key: string, make: (x: Fields, i: number) => T): T[] | undefined =>
    f.list(key)?.map(make);
  setIf(cfg, "admissions", list("admissions", (x, i) => matcherSet(x, i, "admission")));
  setIf(cfg, "bypasses", list("bypasses", (x, i) => matcherSet(x, i, "bypass")));
  setIf(cfg, "hosts", list("hosts", hostsObj));
  setIf(cfg, "resolvers", list("resolvers", resolverObj));
  setIf(cfg, "limiters", list("limiters", (x, i) => limiterObj(x, i, "limiter")));
  setIf(cfg, "climiters", list("climiters", (x, i) => limiterObj(x, i, "climiter")));
  setIf(cfg, "rlimiters", list("rlimiters", (x, i) => limiterObj(x, i, "rlimiter")));
  setIf(cfg, "tls", tls(f.obj("tls")));
  const ingresses = f.list("ingresses");
  if (ingresses) {
    cfg.ingresses = ingresses.map((x, i) => {
      const o: IngressConfig = { name: x.reqStr("name", `ingress-${i}`) };
      const rules = x.list("rules");
      if (rules) {
        o.rules = rules.map((r) => {
          const rule = { hostname: r.reqStr("hostname"), endpoint: r.reqStr("endpoint") };
          r.check("ingressRule");
          return rule;
        });
      }
      x.check("ingress");
      return o;
    });
  }
  const api = f.obj("api");
  if (api) {
    const a: APIConfig = { addr: api.reqStr("addr") };
    setIf(a, "pathPrefix", api.str("pathPrefix"));
    setIf(a, "accesslog", api.bool("accesslog"));
    setIf(a, "auth", endpointAuth(api, "api"));
    setIf(a, "auther", api.str("auther"));
    api.check("api");
    cfg.api = a;
  }
  const metrics = f.obj("metrics");
  if (metrics) {
    const m: MetricsConfig = { addr: metrics.reqStr("addr") };
    setIf(m, "path", metrics.str("path"));
    setIf(m, "auth", endpointAuth(metrics, "metrics"));
    setIf(m, "auther", metrics.str("auther"));
    metrics.check("metrics");
    cfg.metrics = m;
  }
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
    const format = log.str("format");
    if (format !== undefined && !["json", "text"].includes(format)) {
      throw new ConfigError(
        log.at("format"),
        `expected json or text, got ${JSON.stringify(format)}`,
      );
    }
    setIf(l, "format", format);
    log.check("log");
    cfg.log = l;
  }
  f.check("top");
  checkReferences(cfg);
  return cfg;
}

const LEVELS = ["trace", "debug", "info", "warn", "warning", "error", "fatal"];

/** Names referenced by services, hops and nodes must exist and be unique per kind. */
export function checkReferences(cfg: Config): void {
  const set = (kindName: string, items?: { name: string }[]): Set<string> => {
    const out = new Set<string>();
    for (const [i, x] of (items ?? []).entries()) {
      if (out.has(x.name)) {
        throw new ConfigError(`${kindName}[${i}].name`, `duplicate name "${x.name}"`);
      }
      out.add(x.name);
    }
    return out;
  };
  const chains = set("chains", cfg.chains);
  const authers = set("authers", cfg.authers);
  set("ingresses", cfg.ingresses);
  const hops = set("hops", cfg.hops);
  const known: Record<string, Set<string>> = {
    admission: set("admissions", cfg.admissions),
    bypass: set("bypasses", cfg.bypasses),
    hosts: set("hosts", cfg.hosts),
    resolver: set("resolvers", cfg.resolvers),
    limiter: set("limiters", cfg.limiters),
    climiter: set("climiters", cfg.climiters),
    rlimiter: set("rlimiters", cfg.rlimiters),
  };
  const ref = (path: string, kindName: string, name?: string) => {
    if (name !== undefined && name !== "" && !known[kindName]!.has(name)) {
      throw new ConfigError(path, `no ${kindName} named "${name}"`);
    }
  };
  const refs = (p: string, o: {
    bypass?: string;
    bypasses?: string[];
    resolver?: string;
    hosts?: string;
  }) => {
    ref(`${p}.bypass`, "bypass", o.bypass);
    for (const [k, b] of (o.bypasses ?? []).entries()) ref(`${p}.bypasses[${k}]`, "bypass", b);
    ref(`${p}.resolver`, "resolver", o.resolver);
    ref(`${p}.hosts`, "hosts", o.hosts);
  };
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
    ref(`${p}.admission`, "admission", s.admission);
    for (const [k, b] of (s.admissions ?? []).entries()) {
      ref(`${p}.admissions[${k}]`, "admission", b);
    }
    refs(p, s);
    ref(`${p}.limiter`, "limiter", s.limiter);
    ref(`${p}.climiter`, "climiter", s.climiter);
    ref(`${p}.rlimiter`, "rlimiter", s.rlimiter);
    ref(`${p}.handler.limiter`, "limiter", s.handler.limiter);
  });
  for (const k of ["api", "metrics"] as const) {
    const a = cfg[k]?.auther;
    if (a && !authers.has(a)) throw new ConfigError(`${k}.auther`, `no auther named "${a}"`);
  }
  const hopRefs = (h: HopConfig, p: string) => {
    refs(p, h);
    (h.nodes ?? []).forEach((n, k) => refs(`${p}.nodes[${k}]`, n));
  };
  (cfg.hops ?? []).forEach((h, i) => hopRefs(h, `hops[${i}]`));
  (cfg.chains ?? []).forEach((c, i) =>
    c.hops.forEach((h, j) => {
      if (!h.nodes && !hops.has(h.name)) {
        throw new ConfigError(
          `chains[${i}].hops[${j}]`,
          `hop "${h.name}" has no nodes and no top-level hop has that name`,
        );
      }
      hopRefs(h, `chains[${i}].hops[${j}]`);
    })
  );
  (cfg.resolvers ?? []).forEach((r, i) =>
    r.nameservers.forEach((n, j) => {
      if (n.chain && !chains.has(n.chain)) {
        throw new ConfigError(
          `resolvers[${i}].nameservers[${j}].chain`,
          `no chain named "${n.chain}"`,
        );
      }
    })
  );
}

/** The top-level lists of named access-control objects. */
export const ACCESS_LISTS = [
  "admissions",
  "bypasses",
  "hosts",
  "resolvers",
  "limiters",
  "climiters",
  "rlimiters",
] as const;

/** Merges several configs as GOST does: lists concatenate, singletons: last one wins. */
export function mergeConfigs(...cfgs: Config[]): Config {
  const out: Config = {};
  for (const c of cfgs) {
    for (
      const k of ["services", "chains", "hops", "authers", "ingresses", ...ACCESS_LISTS] as const
    ) {
      const v = c[k];
      if (v) (out[k] as unknown[]) = [...((out[k] as unknown[]) ?? []), ...v];
    }
    if (c.tls) out.tls = c.tls;
    if (c.log) out.log = c.log;
    if (c.api) out.api = c.api;
    if (c.metrics) out.metrics = c.metrics;
    if (c.strict !== undefined) out.strict = c.strict;
  }
  return out;
}
