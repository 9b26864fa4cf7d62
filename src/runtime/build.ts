/**
 * Builds the live objects a config describes, one named object at a time: authers, access lists,
 * resolvers, chains, service pipelines (handler + access rules) and listeners. The live runtime
 * (runtime.ts) decides what to build; everything here only reads the tables it is given.
 * @module
 */
import type {
  AdmissionConfig,
  AuthConfig,
  AutherConfig,
  BypassConfig,
  ChainConfig,
  HopConfig,
  HostsConfig,
  LimiterConfig,
  ResolverConfig,
  ServiceConfig,
  TLSConfig,
} from "../config/model.ts";
import { ConfigError, errorText, TunnelError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { KeyUse, Metadata } from "../core/metadata.ts";
import { checkMetadata, type Diagnostics, type MetadataUse } from "../config/keys.ts";
import type { Registries } from "../core/registry.ts";
import type {
  Auther,
  Credentials,
  ForwardTarget,
  Handler,
  IngressRules,
  Listener,
  TlsOptions,
} from "../core/types.ts";
import { AnyAuther, parseAuthFile, UserAuther } from "../access/auther.ts";
import {
  Chain,
  ChainNode,
  type ChainObserver,
  ChainRouter,
  ForwardTargets,
  Hop,
  type HostLookup,
} from "../chain/router.ts";
import type { SelfAddresses } from "../chain/self.ts";
import { Selector } from "../chain/selector.ts";
import { GuardSlot, Service, type ServiceGuards } from "../service.ts";
import { Admission, AllAdmit } from "../access/admission.ts";
import { Bypass, type Bypasser, BypassGroup } from "../access/bypass.ts";
import { ConnLimiter, RateLimiter, TrafficLimiter } from "../access/limiter.ts";
import { LineSource } from "../access/source.ts";
import { Hosts } from "../resolver/hosts.ts";
import { type NameserverOptions, parseNameserver, Resolver } from "../resolver/resolver.ts";
import { DNS_PACKET } from "../resolver/dns_packet.ts";
import { parseDuration } from "../core/duration.ts";

/** A built object and how to release what it holds (reload timers, sessions). */
export interface Built<T> {
  value: T;
  close(): Promise<void>;
}

/** The named objects services and chains refer to. */
export interface Tables {
  authers: Map<string, Auther>;
  admissions: Map<string, Admission>;
  bypasses: Map<string, Bypass>;
  hosts: Map<string, Hosts>;
  resolvers: Map<string, Resolver>;
  limiters: Map<string, TrafficLimiter>;
  climiters: Map<string, ConnLimiter>;
  rlimiters: Map<string, RateLimiter>;
  chains: Map<string, Chain>;
}

/** Empty tables. */
export function emptyTables(): Tables {
  return {
    authers: new Map(),
    admissions: new Map(),
    bypasses: new Map(),
    hosts: new Map(),
    resolvers: new Map(),
    limiters: new Map(),
    climiters: new Map(),
    rlimiters: new Map(),
    chains: new Map(),
  };
}

/** Everything a build step reads. */
export interface BuildContext {
  reg: Registries;
  log: Logger;
  diag: Diagnostics;
  /** Our listeners: routers refuse to dial them directly (proxy loops). */
  self: SelfAddresses;
  /** This runtime's name in hop markers (HTTP `Via`). */
  instance: string;
  tables: Tables;
  /** Top-level hops by name. */
  topHops: Map<string, HopConfig>;
  /** Top-level `tls:`: the default certificate for TLS listeners without their own. */
  defaultTls?: TLSConfig;
  /** The config's ingress rules by name. */
  ingresses: IngressRules;
  /** The chains live at dial time (resolvers look their chain up late). */
  liveChains: () => Map<string, Chain>;
  chainObserver?: ChainObserver;
}

function creds(a?: AuthConfig): Credentials | undefined {
  return a ? { username: a.username, password: a.password } : undefined;
}

/**
 * Credentials a connector or dialer presents. With `auth.file` they come from the file's first
 * `user password` line (GOST's client-side `auth.file`), read when the node is built.
 */
async function clientCreds(
  a: AuthConfig | undefined,
  path: string,
): Promise<Credentials | undefined> {
  if (!a?.file) return creds(a);
  let text: string;
  try {
    text = await Deno.readTextFile(a.file);
  } catch (e) {
    throw new ConfigError(`${path}.file`, `cannot read ${a.file}: ${errorText(e)}`);
  }
  const first = parseAuthFile(text, a.file)[0];
  if (!first) throw new ConfigError(`${path}.file`, `${a.file} has no "user password" line`);
  return first;
}

function tlsOpts(t?: TLSConfig): TlsOptions | undefined {
  return t ? { ...t } : undefined;
}

/** Listener types that bind through their chain (`listener.chain`). */
const BINDING_LISTENERS = new Set(["rtcp", "rudp"]);

/** Handler types that check users against authers (the rest take no user list). */
const AUTHENTICATING = new Set([
  "auto",
  "http",
  "socks",
  "socks4",
  "socks4a",
  "socks5",
  "relay",
  "tun",
  "tunnel",
]);

/** A duration that may be negative (a resolver `ttl` below 0 turns its cache off). */
function parseSignedDuration(text: string, path: string): number {
  const neg = text.trim().startsWith("-");
  const ms = parseDuration(neg ? text.trim().slice(1) : text);
  if (ms === undefined) {
    throw new ConfigError(path, `expected a duration such as "30s", got "${text}"`);
  }
  return neg ? -ms : ms;
}

/** Line sources started for one object; closing them stops their reload timers. */
class Sources {
  readonly #list: LineSource[] = [];
  constructor(readonly log: Logger) {}

  /** Starts a line source (inline items + file, re-read every `reload`) feeding `apply`. */
  async add(
    o: { items?: string[]; file?: string; reload?: string; path: string; comments?: "line" },
    apply: (items: string[]) => void | Promise<void>,
  ): Promise<void> {
    this.#list.push(
      await LineSource.start({
        items: o.items,
        file: o.file,
        reloadMs: o.reload ? parseDuration(o.reload) ?? 0 : 0,
        comments: o.comments,
        path: o.path,
        log: this.log.with({ kind: "config" }),
      }, apply),
    );
  }

  close(): Promise<void> {
    for (const s of this.#list) s.close();
    return Promise.resolve();
  }

  /** `value` with these sources as what its `close` releases. */
  built<T>(value: T): Built<T> {
    return { value, close: () => this.close() };
  }
}

/** Builds through `f`, closing the sources it started if it fails. */
async function withSources<T>(
  ctx: BuildContext,
  f: (src: Sources) => Promise<T>,
): Promise<Built<T>> {
  const src = new Sources(ctx.log);
  try {
    return src.built(await f(src));
  } catch (e) {
    await src.close();
    throw e;
  }
}

/** An `authers[i]` entry: inline users plus an optional file. */
export function buildAuther(a: AutherConfig, path: string, ctx: BuildContext) {
  return withSources<Auther>(ctx, async (src) => {
    const inline = (a.auths ?? []).map((x) => creds(x)!);
    const auther = new UserAuther(inline);
    if (a.file) {
      await src.add(
        { file: a.file.path, reload: a.reload, path, comments: "line" },
        (items) => auther.replace([...inline, ...parseAuthFile(items.join("\n"), a.file!.path)]),
      );
    }
    return auther;
  });
}

/** An `admissions[i]` entry. */
export function buildAdmission(a: AdmissionConfig, path: string, ctx: BuildContext) {
  return withSources(ctx, async (src) => {
    const adm = new Admission(a.whitelist === true, ctx.log.with({ kind: "admission" }));
    await src.add(
      { items: a.matchers, file: a.file?.path, reload: a.reload, path },
      (items) => adm.load(items),
    );
    return adm;
  });
}

/** A `bypasses[i]` entry. */
export function buildBypass(b: BypassConfig, path: string, ctx: BuildContext) {
  return withSources(ctx, async (src) => {
    if (b.network && b.network !== "tcp" && b.network !== "udp") {
      throw new ConfigError(`${path}.network`, `expected tcp or udp, got "${b.network}"`);
    }
    const byp = new Bypass(b.whitelist === true, b.network ?? "");
    await src.add(
      { items: b.matchers, file: b.file?.path, reload: b.reload, path },
      (items) => byp.load(items),
    );
    return byp;
  });
}

/** A `hosts[i]` entry. */
export function buildHosts(h: HostsConfig, path: string, ctx: BuildContext) {
  return withSources(ctx, async (src) => {
    const hosts = new Hosts();
    const items = (h.mappings ?? []).map((m) =>
      `${m.ip} ${m.hostname} ${(m.aliases ?? []).join(" ")}`
    );
    await src.add(
      { items, file: h.file?.path, reload: h.reload, path },
      (lines) => hosts.load(lines),
    );
    return hosts;
  });
}

/** The limiter kinds and their classes. */
export const LIMITERS = {
  limiters: (p: string) => new TrafficLimiter(p),
  climiters: (p: string) => new ConnLimiter(p),
  rlimiters: (p: string) => new RateLimiter(p),
};

/** A `limiters[i]`, `climiters[i]` or `rlimiters[i]` entry. */
export function buildLimiter<K extends keyof typeof LIMITERS>(
  kind: K,
  l: LimiterConfig,
  path: string,
  ctx: BuildContext,
): Promise<Built<ReturnType<(typeof LIMITERS)[K]>>> {
  return withSources(ctx, async (src) => {
    const lim = LIMITERS[kind](path) as ReturnType<(typeof LIMITERS)[K]>;
    await src.add(
      { items: l.limits, file: l.file?.path, reload: l.reload, path },
      (items) => lim.load(items),
    );
    return lim;
  });
}

/** A `resolvers[i]` entry. */
export async function buildResolver(
  r: ResolverConfig,
  path: string,
  ctx: BuildContext,
): Promise<Built<Resolver>> {
  await DNS_PACKET.load();
  const servers: NameserverOptions[] = r.nameservers.map((n, j) => {
    const np = `${path}.nameservers[${j}]`;
    try {
      parseNameserver(n.addr);
    } catch (e) {
      throw new ConfigError(`${np}.addr`, errorText(e));
    }
    if (n.hostname) {
      throw new ConfigError(
        `${np}.hostname`,
        "is not supported by burrow yet (GOST ignores it too)",
      );
    }
    const only = n.only?.toLowerCase().replace(/^ip(?=[46]$)/, "ipv");
    if (only && only !== "ipv4" && only !== "ipv6") {
      throw new ConfigError(`${np}.only`, `expected ipv4 or ipv6, got "${n.only}"`);
    }
    const ttl = n.ttl ? parseSignedDuration(n.ttl, `${np}.ttl`) : 0;
    const log = ctx.log.with({ kind: "resolver" });
    return {
      addr: n.addr,
      prefer: n.prefer === "ipv6" ? "ipv6" : n.prefer === "ipv4" ? "ipv4" : undefined,
      only: only as "ipv4" | "ipv6" | undefined,
      ttlMs: ttl,
      timeoutMs: n.timeout ? parseDuration(n.timeout) ?? 0 : 0,
      async: n.async === true,
      clientIP: n.clientIP,
      // Chains may use resolvers and be replaced on reload: look the chain up at dial time.
      dial: (network, address, signal) =>
        new ChainRouter({
          chain: n.chain ? ctx.liveChains().get(n.chain) : undefined,
          log,
        }).dial(network, address, { signal }),
    };
  });
  const value = new Resolver(servers, ctx.log.with({ kind: "resolver" }));
  return { value, close: () => Promise.resolve() };
}

/** Hosts first, then the resolver (GOST's order); undefined when neither is set. */
function lookupOf(t: Tables, o: { hosts?: string; resolver?: string }): HostLookup | undefined {
  const hosts = o.hosts ? t.hosts.get(o.hosts) : undefined;
  const resolver = o.resolver ? t.resolvers.get(o.resolver) : undefined;
  if (!hosts && !resolver) return undefined;
  return async (host) => {
    const mapped = hosts?.lookup(host);
    if (mapped && mapped.length > 0) return mapped[0];
    if (resolver) return (await resolver.resolve(host))[0];
    return undefined;
  };
}

/** The bypasses named on a service, hop or node, as one group (undefined when none). */
function bypassOf(t: Tables, o: { bypass?: string; bypasses?: string[] }): Bypasser | undefined {
  const names = [...(o.bypass ? [o.bypass] : []), ...(o.bypasses ?? [])];
  const list = names.map((n) => t.bypasses.get(n)!);
  return list.length === 0 ? undefined : list.length === 1 ? list[0] : new BypassGroup(list);
}

/** Runs a factory; OS errors (a busy port, a missing file) become runtime failures. */
async function make<T>(f: () => Promise<T> | T, path: string, addr?: string): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof Error && Object.values(Deno.errors).some((c) => e instanceof c)) {
      const at = addr ? ` ${addr}` : "";
      const what = e instanceof Deno.errors.AddrInUse
        ? `cannot listen on${at}: address already in use`
        : `${at ? `${at.trim()}: ` : ""}${errorText(e)}`;
      throw new TunnelError(`${path}: ${what}`, { cause: e });
    }
    throw new ConfigError(path, errorText(e));
  }
}

/** The hop config a chain entry means (a reference to a top-level hop keeps its own overrides). */
export function resolveHop(h0: HopConfig, top: Map<string, HopConfig>): HopConfig {
  if (h0.nodes) return h0;
  return {
    ...top.get(h0.name)!,
    ...Object.fromEntries(
      (["bypass", "bypasses", "hosts", "resolver"] as const).filter((k) => h0[k] !== undefined)
        .map((k) => [k, h0[k]]),
    ),
  };
}

/** A `chains[i]` entry: its hops, nodes, dialers and connectors. */
export async function buildChain(
  c: ChainConfig,
  path: string,
  ctx: BuildContext,
): Promise<Built<Chain>> {
  const hops: Hop[] = [];
  const built = () => new Chain(c.name, hops, ctx.chainObserver);
  try {
    for (const [j, h0] of c.hops.entries()) {
      const h = resolveHop(h0, ctx.topHops);
      const hp = `${path}.hops[${j}]`;
      const nodes: ChainNode[] = [];
      // One record of asked-for keys per hop: CLI keys land in hop, node, dialer and connector.
      const use = new KeyUse();
      const hopMd = new Metadata(h.metadata ?? {}, `${hp}.metadata`, use);
      const mds: { md: Metadata; kind: string; type: string }[] = [
        { md: hopMd, kind: "hop", type: "" },
      ];
      // The hop joins the chain before its nodes are built, so a failure closes their dialers.
      const hop = new Hop(h.name, nodes, new Selector(h.selector), bypassOf(ctx.tables, h));
      hops.push(hop);
      for (const [k, n] of (h.nodes ?? []).entries()) {
        const np = `${hp}.nodes[${k}]`;
        const log = ctx.log.with({ chain: c.name, hop: h.name, node: n.name });
        const nodeMd = n.metadata ?? {};
        const dmd = new Metadata({ ...nodeMd, ...n.dialer.metadata }, `${np}.dialer.metadata`, use);
        const cmd = new Metadata(
          { ...nodeMd, ...n.connector.metadata },
          `${np}.connector.metadata`,
          use,
        );
        const nmd = new Metadata(nodeMd, `${np}.metadata`, use);
        mds.push(
          { md: nmd, kind: "node", type: "" },
          { md: dmd, kind: "dialer", type: n.dialer.type },
          { md: cmd, kind: "connector", type: n.connector.type },
        );
        if (n.dialer.auth && n.dialer.type !== "ssh" && n.dialer.type !== "sshd") {
          // Only the ssh and sshd dialers log in; on any other the credentials would go nowhere.
          throw new ConfigError(
            `${np}.dialer.auth`,
            "dialer auth is only used by ssh and sshd dialers; set auth on the connector",
          );
        }
        const dialerAuth = await clientCreds(n.dialer.auth, `${np}.dialer.auth`);
        const connectorAuth = await clientCreds(n.connector.auth, `${np}.connector.auth`);
        const dialer = await make(() =>
          ctx.reg.dialers.get(n.dialer.type)({
            metadata: dmd,
            tls: tlsOpts(n.dialer.tls),
            auth: dialerAuth,
            log: log.with({ kind: "dialer", dialer: n.dialer.type }),
          }), `${np}.dialer.type`);
        const connector = await make(() =>
          ctx.reg.connectors.get(n.connector.type)({
            instance: ctx.instance,
            metadata: cmd,
            tls: tlsOpts(n.connector.tls),
            auth: connectorAuth,
            log: log.with({ kind: "connector", connector: n.connector.type }),
          }), `${np}.connector.type`);
        const weight = nmd.int("weight", 1);
        // A node without its own hosts/resolver takes the hop's (GOST).
        const lookup = lookupOf(ctx.tables, {
          hosts: n.hosts ?? h.hosts,
          resolver: n.resolver ?? h.resolver,
        });
        nodes.push(
          new ChainNode(n.name, n.addr, dialer, connector, weight, bypassOf(ctx.tables, n), lookup),
        );
        if (dialer.directOnly && j > 0) {
          throw new ConfigError(
            `${np}.dialer.type`,
            `a ${n.dialer.type} node opens its own UDP socket and cannot be reached through earlier hops: put it in the chain's first hop`,
          );
        }
      }
      checkMetadata(ctx.diag, mds);
    }
  } catch (e) {
    await built().close();
    throw e;
  }
  const chain = built();
  return { value: chain, close: () => chain.close() };
}

/** A service's handler and access rules: what a reload can swap under a live listener. */
export interface Pipeline {
  handler: Handler;
  guards: ServiceGuards;
  /** Service and handler metadata, for the unknown-key check with the listener's. */
  mds: MetadataUse[];
  close(): Promise<void>;
}

/**
 * The handler and access rules of `services[i]`. Its metadata shares `use` with the listener's,
 * since a CLI key lands in both; the caller checks the keys once both are built.
 */
export async function buildPipeline(
  s: ServiceConfig,
  path: string,
  ctx: BuildContext,
  use: KeyUse,
): Promise<Pipeline> {
  const t = ctx.tables;
  const log = ctx.log.with({ service: s.name });
  if (s.handler.limiter) {
    // GOST's built-in limiter ignores a handler (per-user) limiter; only its plugins use it.
    throw new ConfigError(
      `${path}.handler.limiter`,
      "per-user limiters are not supported yet (use the service's limiter)",
    );
  }
  if (
    (s.listener.auth || s.listener.auther || s.listener.authers) &&
    s.listener.type !== "sshd" && s.listener.type !== "ssh"
  ) {
    // GOST reads listener auth only in ssh/sshd listeners; elsewhere it would do nothing.
    throw new ConfigError(
      `${path}.listener.auth`,
      "listener auth is only used by ssh and sshd listeners; set auth on the handler",
    );
  }
  if (
    (s.listener.type === "tun" || s.listener.type === "tap") &&
    (s.limiter || s.climiter || s.rlimiter)
  ) {
    // The service's one conn is the device: per-connection limits would count device sessions,
    // not clients (admission is applied to each datagram's sender instead).
    throw new ConfigError(
      `${path}.${s.limiter ? "limiter" : s.climiter ? "climiter" : "rlimiter"}`,
      `does not apply to a ${s.listener.type} device; use admission (checked per sender)`,
    );
  }
  if (s.listener.chain && !BINDING_LISTENERS.has(s.listener.type)) {
    throw new ConfigError(
      `${path}.listener.chain`,
      `a listener chain is only used by rtcp and rudp listeners, not ${s.listener.type}`,
    );
  }
  const svcMd = new Metadata(s.metadata ?? {}, `${path}.metadata`, use);
  const names = [...(s.handler.auther ? [s.handler.auther] : []), ...(s.handler.authers ?? [])];
  const list: Auther[] = names.map((n) => t.authers.get(n)!);
  const auth = creds(s.handler.auth);
  if (auth && auth.username !== "") list.push(new UserAuther([auth]));
  const authFile = s.handler.auth?.file;
  if (!AUTHENTICATING.has(s.handler.type) && (names.length > 0 || authFile)) {
    // ss/ssu take their cipher from auth, the forwarders take none: refuse instead of serving
    // unauthenticated (or unencrypted) behind a setting that does nothing.
    throw new ConfigError(
      `${path}.handler.${authFile ? "auth.file" : "auther"}`,
      `the ${s.handler.type} handler does not authenticate users${
        s.handler.type.startsWith("ss") ? " (give the cipher as method:password)" : ""
      }`,
    );
  }
  const src = new Sources(ctx.log);
  try {
    if (authFile) {
      // GOST reads only the first line of auth.file (as an ss method:password); Burrow serves
      // every user in it, which is what a proxy operator writing one expects.
      const fileAuther = new UserAuther([]);
      await src.add(
        { file: authFile, path: `${path}.handler.auth`, comments: "line" },
        (items) => fileAuther.replace(parseAuthFile(items.join("\n"), authFile)),
      );
      list.push(fileAuther);
    }
    const auther = list.length === 0
      ? undefined
      : list.length === 1
      ? list[0]
      : new AnyAuther(list);

    let forwarder: ForwardTargets | undefined;
    if (s.forwarder) {
      const nodes = s.forwarder.nodes ??
        (ctx.topHops.get(s.forwarder.hop ?? "")?.nodes ?? []).map((n) => ({
          name: n.name,
          addr: n.addr,
          network: n.network,
          metadata: n.metadata,
        }));
      if (nodes.length === 0) {
        throw new ConfigError(`${path}.forwarder.nodes`, "no forward targets");
      }
      const targets = nodes.map((n, i) => {
        const md = new Metadata(n.metadata ?? {}, `${path}.forwarder.nodes[${i}].metadata`);
        const weight = md.int("weight", 1);
        checkMetadata(ctx.diag, [{ md, kind: "forwardNode", type: "" }]);
        if (n.network !== undefined && n.network !== "tcp" && n.network !== "udp") {
          throw new ConfigError(
            `${path}.forwarder.nodes[${i}].network`,
            `expected tcp or udp, got ${JSON.stringify(n.network)}`,
          );
        }
        const target: ForwardTarget = { name: n.name, addr: n.addr };
        if (n.network === "tcp" || n.network === "udp") target.network = n.network;
        return { target, weight };
      });
      forwarder = new ForwardTargets(targets, s.forwarder.selector);
    }
    const chain = s.handler.chain ? t.chains.get(s.handler.chain) : undefined;
    const router = new ChainRouter({
      chain,
      retries: s.handler.retries ?? 0,
      dialTimeout: svcMd.duration("dialTimeout", 15_000),
      log: log.with({ kind: "router" }),
      bypass: bypassOf(t, s),
      lookup: lookupOf(t, s),
      self: ctx.self,
    });
    const handlerMd = new Metadata(s.handler.metadata ?? {}, `${path}.handler.metadata`, use);
    const admissions = [...(s.admission ? [s.admission] : []), ...(s.admissions ?? [])]
      .map((n) => t.admissions.get(n)!);
    const guards: ServiceGuards = {};
    if (admissions.length > 0) {
      guards.admission = admissions.length === 1 ? admissions[0] : new AllAdmit(admissions);
    }
    if (s.climiter) guards.climiter = t.climiters.get(s.climiter);
    if (s.rlimiter) guards.rlimiter = t.rlimiters.get(s.rlimiter);
    if (s.limiter) guards.traffic = t.limiters.get(s.limiter);
    const handler = await make(() =>
      ctx.reg.handlers.get(s.handler.type)({
        instance: ctx.instance,
        metadata: handlerMd,
        router,
        log: log.with({ kind: "handler", handler: s.handler.type }),
        service: s.name,
        auther,
        auth,
        tls: tlsOpts(s.handler.tls ?? s.listener.tls ?? ctx.defaultTls),
        forwarder,
        ingresses: ctx.ingresses,
        bypass: bypassOf(t, s),
        hosts: s.hosts ? (h: string) => t.hosts.get(s.hosts!)?.lookup(h) : undefined,
      }), `${path}.handler.type`);
    return {
      handler,
      guards,
      mds: [
        { md: svcMd, kind: "service", type: "" },
        { md: handlerMd, kind: "handler", type: s.handler.type },
      ],
      // The handler belongs to the service once it runs (it closes it); this releases the rest.
      close: () => src.close(),
    };
  } catch (e) {
    await src.close();
    throw e;
  }
}

/** The listener of `services[i]`, reporting its raw conns to `slot`'s current guard. */
export async function buildListener(
  s: ServiceConfig,
  path: string,
  ctx: BuildContext,
  slot: GuardSlot,
  use: KeyUse,
): Promise<{ listener: Listener; md: MetadataUse }> {
  const log = ctx.log.with({ service: s.name });
  const md = listenerMetadata(s, path, use);
  // A binding listener (rtcp) reaches its far end through the listener chain.
  const router = BINDING_LISTENERS.has(s.listener.type)
    ? new ChainRouter({
      chain: s.listener.chain ? ctx.tables.chains.get(s.listener.chain) : undefined,
      dialTimeout: new Metadata(s.metadata ?? {}).duration("dialTimeout", 15_000),
      log: log.with({ kind: "router" }),
    })
    : undefined;
  // The sshd listener logs users in itself (GOST moves `-L sshd://user:pass@` auth there).
  const listenerAuthers: Auther[] = [s.listener.auther, ...(s.listener.authers ?? [])]
    .filter((n): n is string => !!n).map((n) => ctx.tables.authers.get(n)!);
  if (s.listener.auth?.file) {
    throw new ConfigError(`${path}.listener.auth.file`, "is not supported yet (use an auther)");
  }
  const lauth = creds(s.listener.auth);
  if (lauth && lauth.username !== "") listenerAuthers.push(new UserAuther([lauth]));
  const listenerAuther = listenerAuthers.length === 0
    ? undefined
    : listenerAuthers.length === 1
    ? listenerAuthers[0]
    : new AnyAuther(listenerAuthers);
  const listener = await make(
    () =>
      ctx.reg.listeners.get(s.listener.type)({
        addr: s.addr,
        metadata: md.md,
        auther: listenerAuther,
        tls: tlsOpts(s.listener.tls ?? ctx.defaultTls),
        log: log.with({ kind: "listener", listener: s.listener.type }),
        service: s.name,
        guard: slot.guard,
        router,
        forwarding: s.forwarder !== undefined,
      }),
    `${path}.listener`,
    s.addr,
  );
  return { listener, md };
}

/** The listener's metadata of `services[i]`, recording asked keys in `use`. */
export function listenerMetadata(s: ServiceConfig, path: string, use: KeyUse): MetadataUse {
  return {
    md: new Metadata(s.listener.metadata ?? {}, `${path}.listener.metadata`, use),
    kind: "listener",
    type: s.listener.type,
  };
}

/** A new service: pipeline, then listener; the unknown-key check runs over both. */
export async function buildService(
  s: ServiceConfig,
  path: string,
  ctx: BuildContext,
): Promise<{ service: Service; pipeline: Pipeline; asked: Set<string> }> {
  const use = new KeyUse();
  const pipeline = await buildPipeline(s, path, ctx, use);
  const slot = new GuardSlot();
  let listener: Listener | undefined;
  // The listener's own record of asked keys (shared into `use`): a later pipeline swap keeps it.
  const listenerUse = new KeyUse(use);
  try {
    const l = await buildListener(s, path, ctx, slot, listenerUse);
    listener = l.listener;
    checkMetadata(ctx.diag, [...pipeline.mds, l.md]);
  } catch (e) {
    await listener?.close();
    await pipeline.handler.close?.();
    await pipeline.close();
    throw e;
  }
  const service = new Service(s.name, listener, pipeline.handler, ctx.log, {
    guards: pipeline.guards,
    slot,
  });
  return { service, pipeline, asked: new Set(listenerUse.asked) };
}

/**
 * A new pipeline for a service whose listener stays: `asked` holds the keys the listener read
 * when it was built (only those), so the check treats them as used.
 */
export async function rebuildPipeline(
  s: ServiceConfig,
  path: string,
  ctx: BuildContext,
  asked: Set<string>,
): Promise<Pipeline> {
  const use = new KeyUse();
  for (const k of asked) use.asked.add(k);
  const pipeline = await buildPipeline(s, path, ctx, use);
  try {
    checkMetadata(ctx.diag, [...pipeline.mds, listenerMetadata(s, path, use)]);
  } catch (e) {
    await pipeline.handler.close?.();
    await pipeline.close();
    throw e;
  }
  return pipeline;
}
