/**
 * The live runtime: a registry of named services, chains, authers and access objects built from
 * a {@link Config}, which `apply` moves to a new config by building only what changed
 * (docs/runtime.md). A new config is checked and built in full before anything running is
 * touched, so a broken one leaves the old one serving.
 * @module
 */
import type { Config, ServiceConfig } from "../config/model.ts";
import { ACCESS_LISTS, checkReferences } from "../config/model.ts";
import { errorText, TunnelError } from "../core/errors.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import type { Diagnostics } from "../config/keys.ts";
import type { Registries } from "../core/registry.ts";
import type { Auther } from "../core/types.ts";
import type { ChainObserver, RunningChain } from "../chain/router.ts";
import { SelfAddresses } from "../chain/self.ts";
import { newViaId } from "../proxy/http/via.ts";
import type { RunningService, Service, ServiceObserver } from "../service.ts";
import { builtinRegistries } from "../builtins.ts";
import {
  buildAdmission,
  buildAuther,
  buildBypass,
  buildChain,
  type BuildContext,
  buildHosts,
  buildLimiter,
  buildResolver,
  buildService,
  type Built,
  emptyTables,
  type Pipeline,
  rebuildPipeline,
  type Tables,
} from "./build.ts";
import { planConfig } from "./plan.ts";

/** Options for {@link Runtime.start}. */
export interface RuntimeOptions {
  /** Plugin registries (default: every built-in type). */
  registries?: Registries;
  /** Where services and chains log (default: silent). */
  log?: Logger;
  /**
   * Where unknown-key warnings go and whether they are errors (default: the logger's warn, strict
   * when the config says `strict: true`).
   */
  diagnostics?: Diagnostics;
  /** Metrics hooks (a {@link ServiceObserver} and {@link ChainObserver}), when metrics are on. */
  observer?: ServiceObserver & ChainObserver;
}

/** Options for {@link Runtime.apply}. */
export interface ApplyOptions {
  /** How long replaced and removed services' live conns may run on (ms, default 0). */
  graceMs?: number;
  /** Unknown-key reporting for this apply (default: the runtime's). */
  diagnostics?: Diagnostics;
}

/** What an {@link Runtime.apply} changed, by kind: names added, replaced, removed. */
export interface ApplyResult {
  /** Names of objects that are new (`services/web`, `chains/c1`, ...). */
  added: string[];
  /** Names of objects rebuilt because they, a file they name, or what they use changed. */
  replaced: string[];
  /** Names of objects gone from the config, now closed. */
  removed: string[];
}

/** The object kinds built from top-level lists other than services and chains. */
type ObjectKind = "authers" | (typeof ACCESS_LISTS)[number];
const OBJECT_KINDS: readonly ObjectKind[] = ["authers", ...ACCESS_LISTS];

interface Entry {
  fp: string;
  built: Built<unknown>;
}

interface ServiceEntry {
  fp: string;
  listenerKey: string;
  service: Service;
  pipeline: Pipeline;
  /** Metadata keys the listener (and the first pipeline) read, for later key checks. */
  asked: Set<string>;
}

/** A running set of services and the chains and access objects they use. */
export class Runtime implements AsyncDisposable {
  readonly #log: Logger;
  readonly #reg: Registries;
  readonly #diagOpt?: Diagnostics;
  readonly #observer?: ServiceObserver & ChainObserver;
  /** Our listeners: routers refuse to dial them directly (proxy loops). */
  readonly #self = new SelfAddresses();
  /** This runtime's name in hop markers (HTTP `Via`): a request that comes back is a loop. */
  readonly #instance = newViaId();
  #cfg: Config = {};
  #tables: Tables = emptyTables();
  readonly #entries = new Map<string, Map<string, Entry>>();
  #services = new Map<string, ServiceEntry>();
  /** Applies run one at a time. */
  #lock: Promise<unknown> = Promise.resolve();
  /** Old objects closing once the services that used them have drained. */
  readonly #pending = new Set<Promise<void>>();
  #closed = false;

  private constructor(opts: RuntimeOptions) {
    this.#log = opts.log ?? silentLogger;
    this.#reg = opts.registries ?? builtinRegistries();
    this.#diagOpt = opts.diagnostics;
    this.#observer = opts.observer;
  }

  /** Validates `cfg`, builds chains and services, and starts every service. */
  static async start(cfg: Config, opts: RuntimeOptions = {}): Promise<Runtime> {
    const rt = new Runtime(opts);
    try {
      await rt.apply(cfg);
    } catch (e) {
      await rt.close();
      throw e;
    }
    return rt;
  }

  /** The services, in config order. */
  get services(): RunningService[] {
    return (this.#cfg.services ?? []).map((s) => this.#services.get(s.name)?.service)
      .filter((s): s is Service => s !== undefined);
  }

  /** The chains by name. */
  get chains(): ReadonlyMap<string, RunningChain> {
    return this.#tables.chains;
  }

  /** The config now running (a copy). */
  get config(): Config {
    return structuredClone(this.#cfg);
  }

  /** The auther named `name` (`authers:`), for the API's basic auth. */
  auther(name: string): Auther | undefined {
    return this.#tables.authers.get(name);
  }

  /** The service named `name`. */
  service(name: string): RunningService | undefined {
    return this.#services.get(name)?.service;
  }

  /**
   * Moves to `next`: objects whose config (or the files it names, or what they refer to) changed
   * are rebuilt, the rest keep running untouched. A service whose listener stays the same keeps
   * its port and swaps its handler (old conns drain within `graceMs`). Throws, with the old config
   * still running, when `next` is invalid or something in it cannot be built.
   */
  apply(next: Config, opts: ApplyOptions = {}): Promise<ApplyResult> {
    const run = this.#lock.then(() => this.#apply(structuredClone(next), opts));
    this.#lock = run.catch(() => {});
    return run;
  }

  /**
   * Applies `change(current config)` as one step: no other apply runs between reading the
   * config and applying the result, so concurrent edits (two API calls) never lose each other.
   * `change` may throw to refuse; nothing is applied then.
   */
  update(change: (current: Config) => Config, opts: ApplyOptions = {}): Promise<ApplyResult> {
    const run = this.#lock.then(() =>
      this.#apply(structuredClone(change(structuredClone(this.#cfg))), opts)
    );
    this.#lock = run.catch(() => {});
    return run;
  }

  #diag(cfg: Config): Diagnostics {
    return this.#diagOpt ?? {
      strict: cfg.strict === true,
      warn: (path, msg) => this.#log.warn(`${path}: ${msg}`, { kind: "config" }),
    };
  }

  async #apply(next: Config, opts: ApplyOptions): Promise<ApplyResult> {
    const graceMs = opts.graceMs ?? 0;
    if (this.#closed) throw new TunnelError("the runtime is closed");
    checkReferences(next);
    const plan = await planConfig(next);
    const tables: Tables = {
      ...this.#tables,
      ...Object.fromEntries(Object.entries(this.#tables).map(([k, m]) => [k, new Map(m)])),
    } as Tables;
    const ctx: BuildContext = {
      reg: this.#reg,
      log: this.#log,
      diag: opts.diagnostics ?? this.#diag(next),
      self: this.#self,
      instance: this.#instance,
      tables,
      topHops: new Map((next.hops ?? []).map((h) => [h.name, h])),
      defaultTls: next.tls,
      ingresses: new Map((next.ingresses ?? []).map((i) => [i.name, i.rules ?? []])),
      liveChains: () => this.#tables.chains,
      chainObserver: this.#observer,
    };
    const result: ApplyResult = { added: [], replaced: [], removed: [] };
    // Built in this apply: closed again if it fails.
    const fresh: Built<unknown>[] = [];
    const entries = new Map<string, Map<string, Entry>>();
    // Replaced or removed: closed once the services using them have drained.
    const old: Built<unknown>[] = [];
    const swaps: { entry: ServiceEntry; pipeline: Pipeline; fp: string }[] = [];
    const created: { s: ServiceConfig; path: string; entry: ServiceEntry }[] = [];
    const deferred: { s: ServiceConfig; path: string }[] = [];
    const dropped: ServiceEntry[] = [];
    try {
      // Objects first, then chains (nodes use bypasses, hosts, resolvers), then services.
      for (const kind of [...OBJECT_KINDS, "chains"] as const) {
        const was = this.#entries.get(kind) ?? new Map<string, Entry>();
        const now = new Map<string, Entry>();
        const table = tables[kind] as Map<string, unknown>;
        for (const [i, o] of ((next[kind] ?? []) as { name: string }[]).entries()) {
          const fp = plan.fp(kind, o.name);
          const prev = was.get(o.name);
          if (prev && prev.fp === fp) {
            now.set(o.name, prev);
            continue;
          }
          const built = await this.#buildObject(kind, o, `${kind}[${i}]`, ctx);
          fresh.push(built);
          now.set(o.name, { fp, built });
          table.set(o.name, built.value);
          (prev ? result.replaced : result.added).push(`${kind}/${o.name}`);
          if (prev) old.push(prev.built);
        }
        for (const [name, prev] of was) {
          if (now.has(name)) continue;
          table.delete(name);
          old.push(prev.built);
          result.removed.push(`${kind}/${name}`);
        }
        entries.set(kind, now);
      }
      const names = new Set((next.services ?? []).map((s) => s.name));
      for (const [name, e] of this.#services) if (!names.has(name)) dropped.push(e);
      // Services giving up their listener: a new listener may need one of their ports.
      const releasing = [...dropped];
      for (const s of next.services ?? []) {
        const prev = this.#services.get(s.name);
        if (prev && prev.listenerKey !== plan.listenerKey(s.name)) releasing.push(prev);
      }
      for (const [i, s] of (next.services ?? []).entries()) {
        const path = `services[${i}]`;
        const fp = plan.fp("services", s.name);
        const prev = this.#services.get(s.name);
        if (prev && prev.fp === fp) continue;
        if (prev && prev.listenerKey === plan.listenerKey(s.name)) {
          const pipeline = await rebuildPipeline(s, path, ctx, prev.asked);
          swaps.push({ entry: prev, pipeline, fp });
          continue;
        }
        if (prev) dropped.push(prev);
        try {
          const b = await buildService(s, path, ctx);
          b.service.observer = this.#observer;
          created.push({
            s,
            path,
            entry: {
              fp,
              listenerKey: plan.listenerKey(s.name),
              service: b.service,
              pipeline: b.pipeline,
              asked: b.asked,
            },
          });
        } catch (e) {
          // The port may be held by the service this one replaces: bind after that one stops.
          const busy = e instanceof TunnelError && e.cause instanceof Deno.errors.AddrInUse;
          if (!busy || !releasing.some((d) => samePort(d.service, s.addr))) throw e;
          deferred.push({ s, path });
        }
      }
    } catch (e) {
      await Promise.all([
        ...swaps.map((x) => discard(x.pipeline)),
        ...created.map((c) => c.entry.service.close().then(() => c.entry.pipeline.close())),
        ...fresh.map((b) => b.close()),
      ]);
      throw e;
    }

    // Commit: nothing below can fail except re-binding a port another service just gave up.
    this.#tables = tables;
    for (const [k, m] of entries) this.#entries.set(k, m);
    const drains: Promise<void>[] = [];
    for (const { entry, pipeline, fp } of swaps) {
      const before = entry.pipeline;
      drains.push(
        entry.service.replace(pipeline.handler, pipeline.guards, graceMs).then(() =>
          before.close()
        ),
      );
      entry.pipeline = pipeline;
      entry.fp = fp;
      result.replaced.push(`services/${entry.service.name}`);
    }
    for (const d of dropped) {
      this.#services.delete(d.service.name);
      this.#self.remove(d.service.listener.addr);
      // A port the new config binds again is released now; the conns still drain.
      const releasePort = deferred.some((x) => samePort(d.service, x.s.addr));
      const closing = d.service.close(graceMs, { releasePort }).then(() => d.pipeline.close());
      drains.push(closing);
      if (!names(next).has(d.service.name)) result.removed.push(`services/${d.service.name}`);
    }
    const failures: string[] = [];
    if (deferred.length > 0) {
      // Wait for the dropped listeners to let go of their ports (their conns drain on).
      await Promise.all(dropped.map((d) => d.service.stoppedAccepting));
      for (const { s, path } of deferred) {
        try {
          const b = await rebind(() => buildService(s, path, ctx));
          b.service.observer = this.#observer;
          created.push({
            s,
            path,
            entry: {
              fp: plan.fp("services", s.name),
              listenerKey: plan.listenerKey(s.name),
              service: b.service,
              pipeline: b.pipeline,
              asked: b.asked,
            },
          });
        } catch (e) {
          failures.push(errorText(e));
          next.services = next.services!.filter((x) => x.name !== s.name);
        }
      }
    }
    for (const { s, entry } of created) {
      this.#services.set(s.name, entry);
      // A listener whose traffic ends in it (tun) cannot start a dialing loop.
      if (!entry.service.listener.endpoint) this.#self.add(entry.service.listener.addr);
      entry.service.start();
      if (!result.replaced.includes(`services/${s.name}`)) {
        (dropped.some((d) => d.service.name === s.name) ? result.replaced : result.added).push(
          `services/${s.name}`,
        );
      }
    }
    this.#cfg = next;
    // Old objects may still serve conns draining from earlier applies too: wait for those.
    const closing = Promise.all([...drains, ...this.#pending])
      .then(() => Promise.all(old.map((b) => b.close())))
      .then(() => {}, (e) => this.#log.error(`closing replaced objects: ${errorText(e)}`));
    this.#pending.add(closing);
    closing.finally(() => this.#pending.delete(closing));
    if (failures.length > 0) {
      throw new TunnelError(
        `${failures.join("; ")} (the service it replaces was stopped to free the port)`,
      );
    }
    return result;
  }

  #buildObject(
    kind: ObjectKind | "chains",
    o: unknown,
    path: string,
    ctx: BuildContext,
  ): Promise<Built<unknown>> {
    // deno-lint-ignore no-explicit-any
    const c = o as any;
    switch (kind) {
      case "authers":
        return buildAuther(c, path, ctx);
      case "admissions":
        return buildAdmission(c, path, ctx);
      case "bypasses":
        return buildBypass(c, path, ctx);
      case "hosts":
        return buildHosts(c, path, ctx);
      case "resolvers":
        return buildResolver(c, path, ctx);
      case "limiters":
      case "climiters":
      case "rlimiters":
        return buildLimiter(kind, c, path, ctx);
      case "chains":
        return buildChain(c, path, ctx);
    }
  }

  /** Stops every service (grace period for live conns, in ms) and closes chain sessions. */
  async close(graceMs = 0): Promise<void> {
    this.#closed = true;
    await this.#lock;
    const services = [...this.#services.values()];
    await Promise.all(services.map((e) => e.service.close(graceMs).then(() => e.pipeline.close())));
    await Promise.all(this.#pending);
    for (const m of this.#entries.values()) {
      await Promise.all([...m.values()].map((e) => e.built.close()));
    }
    this.#entries.clear();
  }

  /** Closes everything (`await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function names(cfg: Config): Set<string> {
  return new Set((cfg.services ?? []).map((s) => s.name));
}

/** Whether `service` listens on the port `addr` asks for. */
function samePort(service: Service, addr: string): boolean {
  const m = /:(\d+)$/.exec(addr);
  return m !== null && Number(m[1]) === service.listener.addr.port;
}

/** Builds a service on a port just given up, retrying while the OS still holds it (≤ 2 s). */
async function rebind<T>(build: () => Promise<T>): Promise<T> {
  for (let wait = 10;; wait *= 2) {
    try {
      return await build();
    } catch (e) {
      const busy = e instanceof TunnelError && e.cause instanceof Deno.errors.AddrInUse;
      if (!busy || wait > 1000) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

async function discard(p: Pipeline): Promise<void> {
  await p.handler.close?.();
  await p.close();
}
