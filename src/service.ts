/**
 * A service: one listener + one handler. Every accepted conn is owned by exactly one task that
 * closes it in `finally`; closing the service stops accepting, gives live conns a grace period
 * to finish, then closes them.
 *
 * The handler and the access rules form the service's pipeline, which a live runtime can swap
 * (`replace`) while the listener keeps its port: new conns take the new pipeline, the old one's
 * conns drain within the grace period (docs/runtime.md).
 * @module
 */
import { type Conn, formatAddr, WrappedConn } from "./core/conn.ts";
import { errorText } from "./core/errors.ts";
import type { Logger } from "./core/log.ts";
import type { Handler, Listener, RawGuard } from "./core/types.ts";
import type { Admitter } from "./access/admission.ts";
import type { ConnLimiter, RateLimiter, TrafficLimiter } from "./access/limiter.ts";

const SID_ALPHABET = "0123456789abcdefghijklmnopqrstuv";

/** A 20-character session id, like GOST's xid. */
export function newSid(): string {
  const b = crypto.getRandomValues(new Uint8Array(20));
  return Array.from(b, (x) => SID_ALPHABET[x & 31]).join("");
}

/** Access rules a service applies to each accepted connection before its handler sees it. */
export interface ServiceGuards {
  /** Client addresses allowed in; a refused client is closed before anything is read. */
  admission?: Admitter;
  /** Concurrent connection caps. */
  climiter?: ConnLimiter;
  /** New connections per second. */
  rlimiter?: RateLimiter;
  /** Bandwidth: wraps the client conn in token buckets. */
  traffic?: TrafficLimiter;
}

/**
 * The admission and connection-limit part of `g` as one check per raw connection: the service
 * runs it on accepted conns, or a mux listener on its carrier conns (then per session, as GOST
 * applies them to the raw listener). Undefined when there is nothing to check.
 */
export function rawGuard(g: ServiceGuards, log: Logger): RawGuard | undefined {
  const { admission, climiter } = g;
  if (!admission && !climiter) return undefined;
  return (conn) => {
    const remote = formatAddr(conn.remoteAddr);
    if (admission && !admission.admit(remote)) {
      // GOST closes refused clients silently, before reading a byte.
      log.debug(`admission: ${remote} is denied`, { kind: "service" });
      return null;
    }
    if (!climiter) return () => {};
    const release = climiter.acquire(remote);
    if (!release) {
      log.info(`climiter: ${remote}: too many connections`, { kind: "service" });
      return null;
    }
    return release;
  };
}

/**
 * Where a listener built for a service finds the service's current raw guard: the guard can
 * change (a reload swaps the pipeline) while the listener lives on.
 */
export class GuardSlot {
  current?: RawGuard;
  /** The function to hand to the listener; it always consults the current guard. */
  readonly guard: RawGuard = (raw) => this.current ? this.current(raw) : NOOP;
}

const NOOP = () => {};

/**
 * A service's live counters (GOST's `status.stats` keys). Plain numbers, always kept: the API,
 * the dashboard and the metrics exposition read them; the copy path only adds.
 */
export interface ServiceStats {
  /** Connections accepted since the service started. */
  totalConns: number;
  /** Connections open now. */
  currentConns: number;
  /** Connections whose handler reported an error. */
  totalErrs: number;
  /** Payload bytes received from clients. */
  inputBytes: number;
  /** Payload bytes sent to clients. */
  outputBytes: number;
}

/** Per-client counters (GOST's metric label `client` is the client's IP). */
export interface ClientStats {
  /** Connections this client opened. */
  requests: number;
  /** Its connections open now. */
  inFlight: number;
  /** Its connections that ended in an error. */
  errors: number;
  /** Payload bytes received from it. */
  inputBytes: number;
  /** Payload bytes sent to it. */
  outputBytes: number;
}

/** What a running service shows to the runtime's users (API, dashboard, metrics, library). */
export interface RunningService {
  /** The service's config name. */
  readonly name: string;
  /** Its listener; `listener.addr` holds the bound port. */
  readonly listener: Listener;
  /** When it started, in ms since the epoch. */
  readonly createdAt: number;
  /** GOST's service state: `running` (built), `ready` (accepting), `closed`. */
  readonly state: "running" | "ready" | "closed";
  /** Its live counters. */
  readonly stats: ServiceStats;
  /** Per-client counters by client IP (at most {@link MAX_CLIENTS}, then `other`). */
  readonly clients: ReadonlyMap<string, ClientStats>;
  /** The handler serving new connections now (a reload may swap it). */
  readonly handler: Handler;
  /** Connections open now, across handler generations. */
  readonly connections: number;
}

/**
 * Clients tracked one by one per service; the rest share the entry `other`, so a scan from many
 * addresses cannot grow the table (and the metrics) without bound.
 */
export const MAX_CLIENTS = 1024;

/** Hooks a metrics collector gives a service (called once per connection, never per read). */
export interface ServiceObserver {
  /** A connection ended after `seconds`; `failed` when its handler reported an error. */
  connDone(service: string, seconds: number, failed: boolean): void;
}

/** Counts the bytes a client sends (input) and receives (output) into a service's stats. */
class CountingConn extends WrappedConn {
  readonly #stats: ServiceStats;
  readonly #client: ClientStats;
  /** The inner conn's, when it has one: counting changes nothing about readiness. */
  readonly waitReadable?: () => Promise<void>;
  constructor(inner: Conn, stats: ServiceStats, client: ClientStats) {
    super(inner);
    this.#stats = stats;
    this.#client = client;
    if (inner.waitReadable) this.waitReadable = () => inner.waitReadable!();
  }
  get datagram(): boolean | undefined {
    return this.inner.datagram;
  }
  // A promise reaction, not a suspended async function, waits with an idle conn's read.
  override read(p: Uint8Array): Promise<number | null> {
    return this.inner.read(p).then(this.#countIn);
  }
  readonly #countIn = (n: number | null): number | null => {
    if (n !== null) {
      this.#stats.inputBytes += n;
      this.#client.inputBytes += n;
    }
    return n;
  };
  override async write(p: Uint8Array): Promise<number> {
    const n = await this.inner.write(p);
    this.#stats.outputBytes += n;
    this.#client.outputBytes += n;
    return n;
  }
  /** The inner conn's (a getter: no field per conn). */
  get writeRoom(): number | undefined {
    return this.inner.writeRoom;
  }
  /** Counted as {@link write}; used only when {@link writeRoom} says the inner conn has it. */
  async writeInPlace(p: Uint8Array): Promise<number> {
    const n = await this.inner.writeInPlace!(p);
    this.#stats.outputBytes += n;
    this.#client.outputBytes += n;
    return n;
  }
}

/** One handler with its access rules and the conns it serves. */
interface Pipeline {
  readonly handler: Handler;
  readonly guards: ServiceGuards;
  readonly guard?: RawGuard;
  readonly abort: AbortController;
  readonly conns: Set<Conn>;
  readonly tasks: Set<Promise<void>>;
}

/** Optional parts of a {@link Service}. */
export interface ServiceOptions {
  guards?: ServiceGuards;
  /** The slot the listener was built with (see {@link GuardSlot}). */
  slot?: GuardSlot;
  observer?: ServiceObserver;
}

/** Runs one listener + handler pair. */
export class Service implements RunningService, AsyncDisposable {
  readonly name: string;
  readonly listener: Listener;
  readonly #log: Logger;
  readonly #stopped = new AbortController();
  readonly #slot: GuardSlot;
  readonly #drains = new Set<Promise<void>>();
  readonly #acceptStop = Promise.withResolvers<void>();
  #pipe: Pipeline;
  #loop?: Promise<void>;
  #closing?: Promise<void>;
  /** When the service was created (ms since the epoch). */
  readonly createdAt: number = Date.now();
  /** Live counters; see {@link ServiceStats}. */
  readonly stats: ServiceStats = {
    totalConns: 0,
    currentConns: 0,
    totalErrs: 0,
    inputBytes: 0,
    outputBytes: 0,
  };
  readonly #clients = new Map<string, ClientStats>();
  observer?: ServiceObserver;
  /** Called once when the service has closed (releases reload timers and the like). */
  onClose?: () => void;

  constructor(
    name: string,
    listener: Listener,
    handler: Handler,
    log: Logger,
    opts: ServiceOptions = {},
  ) {
    this.name = name;
    this.listener = listener;
    this.#log = log.with({ service: name });
    this.#slot = opts.slot ?? new GuardSlot();
    this.observer = opts.observer;
    this.#pipe = this.#pipeline(handler, opts.guards ?? {});
  }

  #pipeline(handler: Handler, guards: ServiceGuards): Pipeline {
    const guard = rawGuard(guards, this.#log);
    this.#slot.current = guard;
    return {
      handler,
      guards,
      guard,
      abort: new AbortController(),
      conns: new Set(),
      tasks: new Set(),
    };
  }

  /** GOST's service state: `running` (built), `ready` (accepting), `closed`. */
  get state(): "running" | "ready" | "closed" {
    return this.#stopped.signal.aborted ? "closed" : this.#loop ? "ready" : "running";
  }

  /** Resolves once `close` has stopped the listener (a released port is free again). */
  get stoppedAccepting(): Promise<void> {
    return this.#acceptStop.promise;
  }

  /** Counters per client IP (at most {@link MAX_CLIENTS}, then `other`). */
  get clients(): ReadonlyMap<string, ClientStats> {
    return this.#clients;
  }

  #client(ip: string): ClientStats {
    let c = this.#clients.get(ip);
    if (c) return c;
    const key = this.#clients.size >= MAX_CLIENTS ? "other" : ip;
    c = this.#clients.get(key);
    if (!c) {
      c = { requests: 0, inFlight: 0, errors: 0, inputBytes: 0, outputBytes: 0 };
      this.#clients.set(key, c);
    }
    return c;
  }

  /** The current handler. */
  get handler(): Handler {
    return this.#pipe.handler;
  }

  /** Live connections now (all pipelines). */
  get connections(): number {
    return this.stats.currentConns;
  }

  /** Starts the accept loop (idempotent). */
  start(): this {
    if (!this.#loop) {
      const a = this.listener.addr;
      this.#log.info(`listening on ${formatAddr(a)}/${a.transport}`, { kind: "service" });
      this.#loop = this.#acceptLoop();
    }
    return this;
  }

  /**
   * Swaps the handler and access rules while the listener keeps its port: conns accepted from
   * now on take the new pipeline; the old one's conns get `graceMs` to finish, then close, and
   * the old handler closes. Resolves when the old pipeline has drained.
   */
  replace(handler: Handler, guards: ServiceGuards = {}, graceMs = 0): Promise<void> {
    const old = this.#pipe;
    this.#pipe = this.#pipeline(handler, guards);
    const drain = this.#drain(old, graceMs);
    this.#drains.add(drain);
    drain.finally(() => this.#drains.delete(drain));
    return drain;
  }

  async #drain(p: Pipeline, graceMs: number): Promise<void> {
    if (p.tasks.size > 0 && graceMs > 0) {
      let t: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(p.tasks),
        new Promise<void>((r) => (t = setTimeout(r, graceMs))),
      ]);
      clearTimeout(t);
    }
    p.abort.abort();
    for (const c of p.conns) c.close();
    await Promise.all(p.tasks);
    await p.handler.close?.();
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    const stopped = this.#stopped.signal;
    for (;;) {
      let conn: Conn | null;
      try {
        conn = await this.listener.accept();
        backoff = 0;
      } catch (e) {
        if (stopped.aborted) return;
        // Temporary accept errors back off 1 s doubling to 5 s (GOST).
        backoff = Math.min(backoff ? backoff * 2 : 1000, 5000);
        this.#log.warn(`accept: ${errorText(e)}; retrying in ${backoff} ms`, { kind: "service" });
        await new Promise<void>((r) => {
          const t = setTimeout(r, backoff);
          stopped.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
        });
        if (stopped.aborted) return;
        continue;
      }
      if (conn === null) return;
      if (stopped.aborted) {
        conn.close();
        return;
      }
      const p = this.#pipe;
      let release: (() => void) | undefined;
      if (p.guard && !this.listener.guardsRaw) {
        const r = p.guard(conn);
        if (r === null) {
          conn.close();
          continue;
        }
        release = r;
      }
      // (A conn refused before the handler's first await is served within this call, when
      // `task` is not assigned yet: hence no const.)
      // deno-lint-ignore prefer-const
      let task: Promise<void> | undefined;
      let finished = false;
      task = this.#serve(conn, p, () => {
        finished = true;
        if (task) p.tasks.delete(task);
        release?.();
      });
      if (!finished) p.tasks.add(task);
    }
  }

  /**
   * Serves one conn; `done` runs last (the task's bookkeeping). Not an `async` function: the
   * handler's promise is waited on by a reaction, which costs an idle tunnel ~300 bytes less than
   * a suspended frame (docs/performance.md).
   */
  #serve(raw: Conn, p: Pipeline, done: () => void): Promise<void> {
    const stats = this.stats;
    const client = this.#client(raw.remoteAddr.hostname);
    stats.totalConns++;
    stats.currentConns++;
    client.requests++;
    client.inFlight++;
    let conn: Conn = new CountingConn(raw, stats, client);
    p.conns.add(conn);
    const remote = formatAddr(raw.remoteAddr);
    const local = formatAddr(raw.localAddr);
    const log = this.#log.with({ kind: "handler", remote, local, sid: newSid() });
    const t0 = performance.now();
    log.info(`${remote} <> ${local}`);
    let failed = false;
    const fail = (e: unknown) => {
      failed = true;
      stats.totalErrs++;
      client.errors++;
      log.error(errorText(e));
    };
    const finish = () => {
      try {
        conn.close();
        p.conns.delete(conn);
        stats.currentConns--;
        client.inFlight--;
        const ms = performance.now() - t0;
        this.observer?.connDone(this.name, ms / 1000, failed);
        log.info(`${remote} >< ${local}`, { duration: Math.round(ms * 1e6) });
      } finally {
        done();
      }
    };
    const g = p.guards;
    let task: Promise<void>;
    try {
      if (g.rlimiter && !g.rlimiter.allow(remote)) {
        log.info(`rlimiter: ${remote}: rate limit exceeded`);
        finish();
        return Promise.resolve();
      }
      if (g.traffic) {
        // The wrapper is what gets closed (on shutdown too), so a wait for tokens ends with it.
        const counted = conn;
        conn = g.traffic.wrap(counted, remote);
        p.conns.delete(counted);
        p.conns.add(conn);
      }
      // A handler from outside TypeScript might return a non-promise: still a task.
      task = Promise.resolve(p.handler.handle(conn, {
        sid: String(log.fields.sid),
        log,
        signal: p.abort.signal,
      }));
    } catch (e) {
      fail(e);
      finish();
      return Promise.resolve();
    }
    return task.then(finish, (e) => {
      fail(e);
      finish();
    });
  }

  /**
   * Stops accepting, waits up to `graceMs` for live conns, then closes them and waits for
   * their tasks to end.
   */
  close(graceMs = 0, opts: { releasePort?: boolean } = {}): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopped.abort();
      // Live conns keep working through the grace period: a mux listener only stops taking
      // new sessions and streams until the end (unless the port must be free at once).
      const keep = graceMs > 0 && this.listener.stopAccepting !== undefined && !opts.releasePort;
      try {
        if (keep) await this.listener.stopAccepting!();
        else await this.listener.close();
        // The socket is released once the pending accept has ended too.
        await this.#loop;
      } finally {
        this.#acceptStop.resolve();
      }
      await Promise.all([this.#drain(this.#pipe, graceMs), ...this.#drains]);
      if (keep) await this.listener.close();
      this.onClose?.();
      this.#log.info("closed", { kind: "service" });
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
