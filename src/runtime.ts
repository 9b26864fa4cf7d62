/**
 * Builds and runs everything a {@link Config} describes: authers, chains, services.
 * @module
 */
import type {
  AuthConfig,
  ChainConfig,
  Config,
  HopConfig,
  ServiceConfig,
  TLSConfig,
} from "./config/model.ts";
import { checkReferences } from "./config/model.ts";
import { ConfigError, errorText } from "./core/errors.ts";
import { type Logger, silentLogger } from "./core/log.ts";
import { Metadata } from "./core/metadata.ts";
import type { Registries } from "./core/registry.ts";
import type { Auther, Credentials, Handler, TlsOptions } from "./core/types.ts";
import { AnyAuther, parseAuthFile, UserAuther } from "./auth.ts";
import { Chain, ChainNode, ChainRouter, ForwardTargets, Hop } from "./chain/router.ts";
import { Selector } from "./chain/selector.ts";
import { Service } from "./service.ts";
import { builtinRegistries } from "./builtins.ts";

/** Options for {@link Runtime.start}. */
export interface RuntimeOptions {
  /** Plugin registries (default: every built-in type). */
  registries?: Registries;
  log?: Logger;
}

function creds(a?: AuthConfig): Credentials | undefined {
  return a ? { username: a.username, password: a.password } : undefined;
}

function tlsOpts(t?: TLSConfig): TlsOptions | undefined {
  return t ? { ...t } : undefined;
}

/** A running set of services and the chains they use. */
export class Runtime implements AsyncDisposable {
  readonly services: Service[] = [];
  readonly chains = new Map<string, Chain>();
  readonly #log: Logger;
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
      const users = [...(a.auths ?? []).map((x) => creds(x)!)];
      if (a.file) {
        let text: string;
        try {
          text = await Deno.readTextFile(a.file.path);
        } catch (e) {
          throw new ConfigError(
            `authers[${i}].file.path`,
            `cannot read ${a.file.path}: ${errorText(e)}`,
          );
        }
        users.push(...parseAuthFile(text, a.file.path));
      }
      authers.set(a.name, new UserAuther(users));
    }
    const topHops = new Map((cfg.hops ?? []).map((h) => [h.name, h]));
    for (const [i, c] of (cfg.chains ?? []).entries()) {
      this.chains.set(c.name, await this.#buildChain(c, `chains[${i}]`, topHops, reg));
    }
    for (const [i, s] of (cfg.services ?? []).entries()) {
      this.services.push(await this.#buildService(s, `services[${i}]`, authers, topHops, reg, log));
    }
  }

  async #buildChain(
    c: ChainConfig,
    path: string,
    top: Map<string, HopConfig>,
    reg: Registries,
  ): Promise<Chain> {
    const hops: Hop[] = [];
    for (const [j, h0] of c.hops.entries()) {
      const h = h0.nodes ? h0 : top.get(h0.name)!;
      const hp = `${path}.hops[${j}]`;
      const nodes: ChainNode[] = [];
      for (const [k, n] of (h.nodes ?? []).entries()) {
        const np = `${hp}.nodes[${k}]`;
        const log = this.#log.with({ chain: c.name, hop: h.name, node: n.name });
        const nodeMd = n.metadata ?? {};
        const dialer = await this.#make(() =>
          reg.dialers.get(n.dialer.type)({
            metadata: new Metadata({ ...nodeMd, ...n.dialer.metadata }, `${np}.dialer.metadata`),
            tls: tlsOpts(n.dialer.tls),
            auth: creds(n.dialer.auth),
            log: log.with({ kind: "dialer", dialer: n.dialer.type }),
          }), `${np}.dialer.type`);
        const connector = await this.#make(() =>
          reg.connectors.get(n.connector.type)({
            metadata: new Metadata(
              { ...nodeMd, ...n.connector.metadata },
              `${np}.connector.metadata`,
            ),
            tls: tlsOpts(n.connector.tls),
            auth: creds(n.connector.auth),
            log: log.with({ kind: "connector", connector: n.connector.type }),
          }), `${np}.connector.type`);
        const weight = new Metadata(nodeMd).int("weight", 1);
        nodes.push(new ChainNode(n.name, n.addr, dialer, connector, weight));
      }
      hops.push(new Hop(h.name, nodes, new Selector(h.selector)));
    }
    return new Chain(c.name, hops);
  }

  async #make<T>(f: () => Promise<T> | T, path: string): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof ConfigError) throw e;
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
    const svcMd = new Metadata(s.metadata ?? {}, `${path}.metadata`);
    const names = [...(s.handler.auther ? [s.handler.auther] : []), ...(s.handler.authers ?? [])];
    const list: Auther[] = names.map((n) => authers.get(n)!);
    const auth = creds(s.handler.auth);
    if (auth && auth.username !== "") list.push(new UserAuther([auth]));
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
        }));
      if (nodes.length === 0) {
        throw new ConfigError(`${path}.forwarder.nodes`, "no forward targets");
      }
      forwarder = new ForwardTargets(
        nodes.map((n) => ({
          name: n.name,
          addr: n.addr,
          ...(n.network === "tcp" || n.network === "udp" ? { network: n.network } : {}),
        })),
        s.forwarder.selector,
      );
    }
    const chain = s.handler.chain ? this.chains.get(s.handler.chain) : undefined;
    const router = new ChainRouter({
      chain,
      retries: s.handler.retries ?? 0,
      dialTimeout: svcMd.duration("dialTimeout", 15_000),
      log: log.with({ kind: "router" }),
    });
    const handlerMd = new Metadata(s.handler.metadata ?? {}, `${path}.handler.metadata`);
    const hlog = log.with({ kind: "handler", handler: s.handler.type });
    const makeHandler = async (type: string): Promise<Handler> =>
      await reg.handlers.get(type)({
        metadata: handlerMd,
        router,
        log: hlog,
        service: s.name,
        auther,
        auth,
        tls: tlsOpts(s.handler.tls ?? s.listener.tls ?? this.#defaultTls),
        forwarder,
        handlerOf: makeHandler,
      });
    const handler = await this.#make(() => makeHandler(s.handler.type), `${path}.handler.type`);
    const listener = await this.#make(() =>
      reg.listeners.get(s.listener.type)({
        addr: s.addr,
        metadata: new Metadata(s.listener.metadata ?? {}, `${path}.listener.metadata`),
        tls: tlsOpts(s.listener.tls ?? this.#defaultTls),
        auther,
        log: log.with({ kind: "listener", listener: s.listener.type }),
        service: s.name,
      }), `${path}.listener`);
    return new Service(s.name, listener, handler, log);
  }

  /** Stops every service (grace period for live conns, in ms) and closes chain sessions. */
  async close(graceMs = 0): Promise<void> {
    await Promise.all(this.services.map((s) => s.close(graceMs)));
    await Promise.all([...this.chains.values()].map((c) => c.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
