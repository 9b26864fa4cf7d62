/**
 * A service: one listener + one handler. Every accepted conn is owned by exactly one task that
 * closes it in `finally`; closing the service stops accepting, gives live conns a grace period
 * to finish, then closes them.
 * @module
 */
import { type Conn, formatAddr } from "./core/conn.ts";
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

/** Runs one listener + handler pair. */
export class Service implements AsyncDisposable {
  readonly name: string;
  readonly listener: Listener;
  readonly handler: Handler;
  readonly #log: Logger;
  readonly #conns = new Set<Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #loop?: Promise<void>;
  #closing?: Promise<void>;

  readonly #guards: ServiceGuards;
  readonly #guard?: RawGuard;
  /** Called once when the service has closed (releases reload timers and the like). */
  onClose?: () => void;

  constructor(
    name: string,
    listener: Listener,
    handler: Handler,
    log: Logger,
    guards: ServiceGuards = {},
  ) {
    this.name = name;
    this.#guards = guards;
    this.listener = listener;
    this.handler = handler;
    this.#log = log.with({ service: name });
    this.#guard = rawGuard(guards, this.#log);
  }

  /** Live connections now. */
  get connections(): number {
    return this.#conns.size;
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

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    for (;;) {
      let conn: Conn | null;
      try {
        conn = await this.listener.accept();
        backoff = 0;
      } catch (e) {
        if (this.#abort.signal.aborted) return;
        // Temporary accept errors back off 1 s doubling to 5 s (GOST).
        backoff = Math.min(backoff ? backoff * 2 : 1000, 5000);
        this.#log.warn(`accept: ${errorText(e)}; retrying in ${backoff} ms`, { kind: "service" });
        await new Promise<void>((r) => {
          const t = setTimeout(r, backoff);
          this.#abort.signal.addEventListener("abort", () => (clearTimeout(t), r()), {
            once: true,
          });
        });
        if (this.#abort.signal.aborted) return;
        continue;
      }
      if (conn === null) return;
      if (this.#abort.signal.aborted) {
        conn.close();
        return;
      }
      let release: (() => void) | undefined;
      if (this.#guard && !this.listener.guardsRaw) {
        const r = this.#guard(conn);
        if (r === null) {
          conn.close();
          continue;
        }
        release = r;
      }
      const task = this.#serve(conn);
      if (release) task.finally(release);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  async #serve(raw: Conn): Promise<void> {
    let conn = raw;
    this.#conns.add(conn);
    const remote = formatAddr(conn.remoteAddr);
    const local = formatAddr(conn.localAddr);
    const log = this.#log.with({ kind: "handler", remote, local, sid: newSid() });
    const t0 = performance.now();
    log.info(`${remote} <> ${local}`);
    const g = this.#guards;
    try {
      if (g.rlimiter && !g.rlimiter.allow(remote)) {
        log.info(`rlimiter: ${remote}: rate limit exceeded`);
        return;
      }
      if (g.traffic) {
        // The wrapper is what gets closed (on shutdown too), so a wait for tokens ends with it.
        this.#conns.delete(conn);
        conn = g.traffic.wrap(raw, remote);
        this.#conns.add(conn);
      }
      await this.handler.handle(conn, {
        sid: String(log.fields.sid),
        log,
        signal: this.#abort.signal,
      });
    } catch (e) {
      log.error(errorText(e));
    } finally {
      conn.close();
      this.#conns.delete(conn);
      this.#conns.delete(raw);
      log.info(`${remote} >< ${local}`, { duration: Math.round((performance.now() - t0) * 1e6) });
    }
  }

  /**
   * Stops accepting, waits up to `graceMs` for live conns, then closes them and waits for
   * their tasks to end.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= (async () => {
      // Live conns keep working through the grace period: a mux listener only stops taking
      // new sessions and streams until the end.
      const keep = graceMs > 0 && this.listener.stopAccepting !== undefined;
      if (keep) await this.listener.stopAccepting!();
      else await this.listener.close();
      await this.#loop;
      if (this.#tasks.size > 0 && graceMs > 0) {
        let t: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.all(this.#tasks),
          new Promise<void>((r) => (t = setTimeout(r, graceMs))),
        ]);
        clearTimeout(t);
      }
      this.#abort.abort();
      for (const c of this.#conns) c.close();
      await Promise.all(this.#tasks);
      if (keep) await this.listener.close();
      await this.handler.close?.();
      this.onClose?.();
      this.#log.info("closed", { kind: "service" });
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
