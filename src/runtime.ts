/**
 * Builds and runs everything a {@link Config} describes: authers, chains, services.
 * @module
 */
import type {
  AuthConfig,
  ChainConfig,
  Config,
  HopConfig,
  LimiterConfig,
  ServiceConfig,
  TLSConfig,
} from "./config/model.ts";
import { checkReferences } from "./config/model.ts";
import { ConfigError, errorText, TunnelError } from "./core/errors.ts";
import { type Logger, silentLogger } from "./core/log.ts";
import { KeyUse, Metadata } from "./core/metadata.ts";
import { checkMetadata, type Diagnostics } from "./config/keys.ts";
import type { Registries } from "./core/registry.ts";
import type { Auther, Credentials, ForwardTarget, Handler, TlsOptions } from "./core/types.ts";
import { AnyAuther, parseAuthFile, UserAuther } from "./access/auther.ts";
import {
  Chain,
  ChainNode,
  ChainRouter,
  ForwardTargets,
  Hop,
  type HostLookup,
} from "./chain/router.ts";
import { SelfAddresses } from "./chain/self.ts";
import { newViaId } from "./proxy/http/via.ts";
import { Selector } from "./chain/selector.ts";
import { rawGuard, Service, type ServiceGuards } from "./service.ts";
import { Admission, AllAdmit } from "./access/admission.ts";
import { Bypass, type Bypasser, BypassGroup } from "./access/bypass.ts";
import { ConnLimiter, RateLimiter, TrafficLimiter } from "./access/limiter.ts";
import { LineSource } from "./access/source.ts";
import { Hosts } from "./resolver/hosts.ts";
import { type NameserverOptions, parseNameserver, Resolver } from "./resolver/resolver.ts";
import { parseDuration } from "./core/duration.ts";
import { builtinRegistries } from "./builtins.ts";

/** Options for {@link Runtime.start}. */
export interface RuntimeOptions {
  /** Plugin registries (default: every built-in type). */
  registries?: Registries;
  log?: Logger;
  /**
   * Where unknown-key warnings go and whether they are errors (default: the logger's warn, strict
   * when the config says `strict: true`).
   */
  diagnostics?: Diagnostics;
}

function creds(a?: AuthConfig): Credentials | undefined {
  return a ? { username: a.username, password: a.password } : undefined;
}

/**
 * Credentials a connector or dialer presents. With `auth.file` they come from the file's first
 * `user password` line (GOST's client-side `auth.file`), read at start-up.
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

/** Handler types that check users against authers (the rest take no user list). */
const AUTHENTICATING = new Set(["auto", "http", "socks", "socks4", "socks4a", "socks5", "relay"]);

/** A duration that may be negative (a resolver `ttl` below 0 turns its cache off). */
function parseSignedDuration(text: string, path: string): number {
  const neg = text.trim().startsWith("-");
  const ms = parseDuration(neg ? text.trim().slice(1) : text);
  if (ms === undefined) {
    throw new ConfigError(path, `expected a duration such as "30s", got "${text}"`);
  }
  return neg ? -ms : ms;
}

/** A running set of services and the chains they use. */
export class Runtime implements AsyncDisposable {
  readonly services: Service[] = [];
  readonly chains = new Map<string, Chain>();
  readonly #log: Logger;
  #diag: Diagnostics = { strict: false, warn: () => {} };
  /** Our listeners: routers refuse to dial them directly (proxy loops). */
  readonly #self = new SelfAddresses();
  /** This runtime's name in hop markers (HTTP `Via`): a request that comes back is a loop. */
  readonly #instance = newViaId();
  readonly #sources: LineSource[] = [];
  readonly #admissions = new Map<string, Admission>();
  readonly #bypasses = new Map<string, Bypass>();
  readonly #limiters = new Map<string, TrafficLimiter>();
  readonly #climiters = new Map<string, ConnLimiter>();
  readonly #rlimiters = new Map<string, RateLimiter>();
  readonly #hosts = new Map<string, Hosts>();
  readonly #resolvers = new Map<string, Resolver>();
  /** Top-level `tls:`: the default certificate for TLS listeners without their own. */
  #defaultTls?: TLSConfig;

  private constructor(log: Logger) {
    this.#log = log;
  }

  /** Validates `cfg`, builds chains and services, and starts every service. */
  static async start(cfg: Config, opts: RuntimeOptions = {}): Promise<Runtime> {
    checkReferences(cfg);
    const reg = opts.registries ?? builtinRegistries();
    const rt = new Runtime(opts.log ?? silentLogger);
    rt.#diag = opts.diagnostics ?? {
      strict: cfg.strict === true,
      warn: (path, msg) => rt.#log.warn(`${path}: ${msg}`, { kind: "config" }),
    };
    try {
      await rt.#build(cfg, reg);
    } catch (e) {
      await rt.close();
      throw e;
    }
    for (const s of rt.services) s.start();
    return rt;
  }

  async #build(cfg: Config, reg: Registries): Promise<void> {
    const log = this.#log;
    this.#defaultTls = cfg.tls;
    const authers = new Map<string, Auther>();
    for (const [i, a] of (cfg.authers ?? []).entries()) {
      const inline = (a.auths ?? []).map((x) => creds(x)!);
      const auther = new UserAuther(inline);
      if (a.file) {
        await this.#source(
          { file: a.file.path, reload: a.reload, path: `authers[${i}]`, comments: "line" },
          (items) => auther.replace([...inline, ...parseAuthFile(items.join("\n"), a.file!.path)]),
        );
      }
      authers.set(a.name, auther);
    }
    await this.#buildAccess(cfg);
    const topHops = new Map((cfg.hops ?? []).map((h) => [h.name, h]));
    for (const [i, c] of (cfg.chains ?? []).entries()) {
      this.chains.set(c.name, await this.#buildChain(c, `chains[${i}]`, topHops, reg));
    }
    for (const [i, s] of (cfg.services ?? []).entries()) {
      this.services.push(await this.#buildService(s, `services[${i}]`, authers, topHops, reg, log));
    }
  }

  /** Starts a line source (inline items + file, re-read every `reload`) feeding `apply`. */
  async #source(
    o: {
      items?: string[];
      file?: string;
      reload?: string;
      path: string;
      comments?: "anywhere" | "line";
    },
    apply: (items: string[]) => void | Promise<void>,
  ): Promise<void> {
    const src = await LineSource.start({
      items: o.items,
      file: o.file,
      reloadMs: o.reload ? parseDuration(o.reload) ?? 0 : 0,
      comments: o.comments,
      path: o.path,
      log: this.#log.with({ kind: "config" }),
    }, apply);
    this.#sources.push(src);
  }

  /** Admissions, bypasses and limiters by name (GOST's access control). */
  async #buildAccess(cfg: Config): Promise<void> {
    for (const [i, a] of (cfg.admissions ?? []).entries()) {
      const adm = new Admission(a.whitelist === true, this.#log.with({ kind: "admission" }));
      const path = `admissions[${i}]`;
      await this.#source(
        { items: a.matchers, file: a.file?.path, reload: a.reload, path },
        (items) => adm.load(items),
      );
      this.#admissions.set(a.name, adm);
    }
    for (const [i, b] of (cfg.bypasses ?? []).entries()) {
      if (b.network && b.network !== "tcp" && b.network !== "udp") {
        throw new ConfigError(`bypasses[${i}].network`, `expected tcp or udp, got "${b.network}"`);
      }
      const byp = new Bypass(b.whitelist === true, b.network ?? "");
      await this.#source(
        { items: b.matchers, file: b.file?.path, reload: b.reload, path: `bypasses[${i}]` },
        (items) => byp.load(items),
      );
      this.#bypasses.set(b.name, byp);
    }
    const limiters = <T extends { load(lines: readonly string[]): void }>(
      list: LimiterConfig[] | undefined,
      kindName: string,
      make: (path: string) => T,
      into: Map<string, T>,
    ) =>
      Promise.all((list ?? []).map(async (l, i) => {
        const path = `${kindName}[${i}]`;
        const lim = make(path);
        await this.#source(
          { items: l.limits, file: l.file?.path, reload: l.reload, path },
          (items) => lim.load(items),
        );
        into.set(l.name, lim);
      }));
    for (const [i, h] of (cfg.hosts ?? []).entries()) {
      const hosts = new Hosts();
      const items = (h.mappings ?? []).map((m) =>
        `${m.ip} ${m.hostname} ${(m.aliases ?? []).join(" ")}`
      );
      await this.#source(
        { items, file: h.file?.path, reload: h.reload, path: `hosts[${i}]` },
        (lines) => hosts.load(lines),
      );
      this.#hosts.set(h.name, hosts);
    }
    for (const [i, r] of (cfg.resolvers ?? []).entries()) {
      const servers: NameserverOptions[] = r.nameservers.map((n, j) => {
        const path = `resolvers[${i}].nameservers[${j}]`;
        try {
          parseNameserver(n.addr);
        } catch (e) {
          throw new ConfigError(`${path}.addr`, errorText(e));
        }
        if (n.hostname) {
          throw new ConfigError(
            `${path}.hostname`,
            "is not supported by burrow yet (GOST ignores it too)",
          );
        }
        const only = n.only?.toLowerCase().replace(/^ip(?=[46]$)/, "ipv");
        if (only && only !== "ipv4" && only !== "ipv6") {
          throw new ConfigError(`${path}.only`, `expected ipv4 or ipv6, got "${n.only}"`);
        }
        const ttl = n.ttl ? parseSignedDuration(n.ttl, `${path}.ttl`) : 0;
        return {
          addr: n.addr,
          prefer: n.prefer === "ipv6" ? "ipv6" : n.prefer === "ipv4" ? "ipv4" : undefined,
          only: only as "ipv4" | "ipv6" | undefined,
          ttlMs: ttl,
          timeoutMs: n.timeout ? parseDuration(n.timeout) ?? 0 : 0,
          async: n.async === true,
          clientIP: n.clientIP,
          // Chains are built after resolvers (nodes may use resolvers), so look them up late.
          dial: (network, address, signal) =>
            new ChainRouter({
              chain: n.chain ? this.chains.get(n.chain) : undefined,
              log: this.#log.with({ kind: "resolver" }),
            }).dial(network, address, { signal }),
        };
      });
      this.#resolvers.set(r.name, new Resolver(servers, this.#log.with({ kind: "resolver" })));
    }
    await limiters(cfg.limiters, "limiters", (p) => new TrafficLimiter(p), this.#limiters);
    await limiters(cfg.climiters, "climiters", (p) => new ConnLimiter(p), this.#climiters);
    await limiters(cfg.rlimiters, "rlimiters", (p) => new RateLimiter(p), this.#rlimiters);
  }

  /** Hosts first, then the resolver (GOST's order); undefined when neither is set. */
  #lookupOf(o: { hosts?: string; resolver?: string }): HostLookup | undefined {
    const hosts = o.hosts ? this.#hosts.get(o.hosts) : undefined;
    const resolver = o.resolver ? this.#resolvers.get(o.resolver) : undefined;
    if (!hosts && !resolver) return undefined;
    return async (host) => {
      const mapped = hosts?.lookup(host);
      if (mapped && mapped.length > 0) return mapped[0];
      if (resolver) return (await resolver.resolve(host))[0];
      return undefined;
    };
  }

  /** The bypasses named on a service, hop or node, as one group (undefined when none). */
  #bypassOf(o: { bypass?: string; bypasses?: string[] }): Bypasser | undefined {
    const names = [...(o.bypass ? [o.bypass] : []), ...(o.bypasses ?? [])];
    const list = names.map((n) => this.#bypasses.get(n)!);
    return list.length === 0 ? undefined : list.length === 1 ? list[0] : new BypassGroup(list);
  }

  async #buildChain(
    c: ChainConfig,
    path: string,
    top: Map<string, HopConfig>,
    reg: Registries,
  ): Promise<Chain> {
    const hops: Hop[] = [];
    for (const [j, h0] of c.hops.entries()) {
      // A reference to a top-level hop keeps its own bypass/hosts/resolver if it has them.
      const h = h0.nodes ? h0 : {
        ...top.get(h0.name)!,
        ...Object.fromEntries(
          (["bypass", "bypasses", "hosts", "resolver"] as const).filter((k) => h0[k] !== undefined)
            .map((k) => [k, h0[k]]),
        ),
      };
      const hp = `${path}.hops[${j}]`;
      const nodes: ChainNode[] = [];
      // One record of asked-for keys per hop: CLI keys land in hop, node, dialer and connector.
      const use = new KeyUse();
      const hopMd = new Metadata(h.metadata ?? {}, `${hp}.metadata`, use);
      const mds: { md: Metadata; kind: string; type: string }[] = [
        { md: hopMd, kind: "hop", type: "" },
      ];
      for (const [k, n] of (h.nodes ?? []).entries()) {
        const np = `${hp}.nodes[${k}]`;
        const log = this.#log.with({ chain: c.name, hop: h.name, node: n.name });
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
        const dialerAuth = await clientCreds(n.dialer.auth, `${np}.dialer.auth`);
        const connectorAuth = await clientCreds(n.connector.auth, `${np}.connector.auth`);
        const dialer = await this.#make(() =>
          reg.dialers.get(n.dialer.type)({
            metadata: dmd,
            tls: tlsOpts(n.dialer.tls),
            auth: dialerAuth,
            log: log.with({ kind: "dialer", dialer: n.dialer.type }),
          }), `${np}.dialer.type`);
        if (dialer.directOnly && j > 0) {
          throw new ConfigError(
            `${np}.dialer.type`,
            `a ${n.dialer.type} node opens its own UDP socket and cannot be reached through earlier hops: put it in the chain's first hop`,
          );
        }
        const connector = await this.#make(() =>
          reg.connectors.get(n.connector.type)({
            instance: this.#instance,
            metadata: cmd,
            tls: tlsOpts(n.connector.tls),
            auth: connectorAuth,
            log: log.with({ kind: "connector", connector: n.connector.type }),
          }), `${np}.connector.type`);
        const weight = nmd.int("weight", 1);
        // A node without its own hosts/resolver takes the hop's (GOST).
        const lookup = this.#lookupOf({
          hosts: n.hosts ?? h.hosts,
          resolver: n.resolver ?? h.resolver,
        });
        nodes.push(
          new ChainNode(n.name, n.addr, dialer, connector, weight, this.#bypassOf(n), lookup),
        );
      }
      checkMetadata(this.#diag, mds);
      hops.push(new Hop(h.name, nodes, new Selector(h.selector), this.#bypassOf(h)));
    }
    return new Chain(c.name, hops);
  }

  async #make<T>(f: () => Promise<T> | T, path: string, addr?: string): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      // OS errors (a busy port, a missing file) are runtime failures, not config mistakes.
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

  async #buildService(
    s: ServiceConfig,
    path: string,
    authers: Map<string, Auther>,
    topHops: Map<string, HopConfig>,
    reg: Registries,
    log0: Logger,
  ): Promise<Service> {
    const log = log0.with({ service: s.name });
    if (s.handler.limiter) {
      // GOST's built-in limiter ignores a handler (per-user) limiter; only its plugins use it.
      throw new ConfigError(
        `${path}.handler.limiter`,
        "per-user limiters are not supported yet (use the service's limiter)",
      );
    }
    if (s.listener.auth || s.listener.auther || s.listener.authers) {
      // GOST reads listener auth only in ssh/sshd listeners; elsewhere it would do nothing.
      throw new ConfigError(
        `${path}.listener.auth`,
        "listener auth is only used by ssh/sshd listeners (not supported yet); set auth on the handler",
      );
    }
    if (s.listener.chain) {
      throw new ConfigError(
        `${path}.listener.chain`,
        "a listener chain is only used by rtcp/rudp listeners, which are not supported yet",
      );
    }
    const use = new KeyUse();
    const svcMd = new Metadata(s.metadata ?? {}, `${path}.metadata`, use);
    const names = [...(s.handler.auther ? [s.handler.auther] : []), ...(s.handler.authers ?? [])];
    const list: Auther[] = names.map((n) => authers.get(n)!);
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
    if (authFile) {
      // GOST reads only the first line of auth.file (as an ss method:password); Burrow serves
      // every user in it, which is what a proxy operator writing one expects.
      const fileAuther = new UserAuther([]);
      await this.#source(
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
        (topHops.get(s.forwarder.hop ?? "")?.nodes ?? []).map((n) => ({
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
        checkMetadata(this.#diag, [{ md, kind: "forwardNode", type: "" }]);
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
    const chain = s.handler.chain ? this.chains.get(s.handler.chain) : undefined;
    const router = new ChainRouter({
      chain,
      retries: s.handler.retries ?? 0,
      dialTimeout: svcMd.duration("dialTimeout", 15_000),
      log: log.with({ kind: "router" }),
      bypass: this.#bypassOf(s),
      lookup: this.#lookupOf(s),
      self: this.#self,
    });
    const handlerMd = new Metadata(s.handler.metadata ?? {}, `${path}.handler.metadata`, use);
    const listenerMd = new Metadata(s.listener.metadata ?? {}, `${path}.listener.metadata`, use);
    const hlog = log.with({ kind: "handler", handler: s.handler.type });
    const makeHandler = async (type: string): Promise<Handler> =>
      await reg.handlers.get(type)({
        instance: this.#instance,
        metadata: handlerMd,
        router,
        log: hlog,
        service: s.name,
        auther,
        auth,
        tls: tlsOpts(s.handler.tls ?? s.listener.tls ?? this.#defaultTls),
        forwarder,
      });
    const admissions = [...(s.admission ? [s.admission] : []), ...(s.admissions ?? [])]
      .map((n) => this.#admissions.get(n)!);
    const guards: ServiceGuards = {};
    if (admissions.length > 0) {
      guards.admission = admissions.length === 1 ? admissions[0] : new AllAdmit(admissions);
    }
    if (s.climiter) guards.climiter = this.#climiters.get(s.climiter);
    if (s.rlimiter) guards.rlimiter = this.#rlimiters.get(s.rlimiter);
    if (s.limiter) guards.traffic = this.#limiters.get(s.limiter);
    const handler = await this.#make(() => makeHandler(s.handler.type), `${path}.handler.type`);
    const listener = await this.#make(
      () =>
        reg.listeners.get(s.listener.type)({
          addr: s.addr,
          metadata: listenerMd,
          tls: tlsOpts(s.listener.tls ?? this.#defaultTls),
          auther,
          log: log.with({ kind: "listener", listener: s.listener.type }),
          service: s.name,
          guard: rawGuard(guards, log.with({ service: s.name })),
        }),
      `${path}.listener`,
      s.addr,
    );
    this.#self.add(listener.addr);
    try {
      checkMetadata(this.#diag, [
        { md: svcMd, kind: "service", type: "" },
        { md: handlerMd, kind: "handler", type: s.handler.type },
        { md: listenerMd, kind: "listener", type: s.listener.type },
      ]);
    } catch (e) {
      await handler.close?.();
      await listener.close();
      throw e;
    }
    return new Service(s.name, listener, handler, log, guards);
  }

  /** Stops every service (grace period for live conns, in ms) and closes chain sessions. */
  async close(graceMs = 0): Promise<void> {
    await Promise.all(this.services.map((s) => s.close(graceMs)));
    await Promise.all([...this.chains.values()].map((c) => c.close()));
    for (const src of this.#sources) src.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
