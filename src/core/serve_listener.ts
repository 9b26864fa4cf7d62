/**
 * The one accept loop behind every listener that turns raw conns into something else: a
 * handshake (TLS with client certificates, WebSocket upgrade, a bundle's join) yields one conn, a
 * mux session yields a conn per stream. Accept errors back off instead of spinning or stopping
 * the listener; each raw conn is served by its own task; `close` ends all of them.
 * @module
 */
import type { Conn, NetAddr } from "./conn.ts";
import { Backoff } from "./backoff.ts";
import { withDeadline } from "./deadline.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "./log.ts";
import { AsyncQueue } from "./queue.ts";
import type { Listener, RawGuard } from "./types.ts";

/** Hands a served conn to `accept()`; false (and the conn closed) when the backlog is full. */
export type Emit = (c: Conn) => boolean;

/**
 * Serves one raw conn: emits what it yields and resolves when it is done with `raw`. It owns
 * `raw` (closes it on failure); `signal` aborts when the listener closes. A throw is logged at
 * debug level and closes `raw`.
 */
export type Serve = (raw: Conn, emit: Emit, signal: AbortSignal) => Promise<void>;

/** Options of {@link ServeListener}. */
export interface ServeListenerOptions {
  /** Names the listener in logs (`ws`, `tls`, `mux`, ...). */
  name: string;
  /** Where serve failures are logged. */
  log: Logger;
  /** What runs on each raw conn (a handshake, a mux session). */
  serve: Serve;
  /** Conns served but not yet accepted; more are closed with a warning. */
  backlog?: number;
  /**
   * How long `close` lets serve tasks end by themselves after the abort (a mux session sending
   * its streams a FIN) before it closes their raw conns. Default 0.
   */
  drainMs?: number;
  /** Checked on each raw conn before it is served: admission, connection limits. */
  guard?: RawGuard;
}

/** Accepts from one or more inner listeners and serves each raw conn. */
export class ServeListener implements Listener {
  readonly #inners: Listener[];
  readonly #o: ServeListenerOptions;
  readonly #queue: AsyncQueue<Conn>;
  readonly #raws = new Set<Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #loops: Promise<void>[];
  readonly #abort = new AbortController();
  #stopped = false;

  /** Accepts from `inner` and runs `o.serve` on each raw conn; emitted conns queue for `accept`. */
  constructor(inner: Listener | Listener[], o: ServeListenerOptions) {
    this.#inners = Array.isArray(inner) ? inner : [inner];
    this.#o = o;
    this.#queue = new AsyncQueue(o.backlog ?? 128);
    this.#loops = this.#inners.map((l) => this.#acceptLoop(l));
  }

  get addr(): NetAddr {
    return this.#inners[0]!.addr;
  }

  get guardsRaw(): boolean {
    return this.#o.guard !== undefined;
  }

  /** Raw conns being served now (handshakes in progress, live sessions). */
  get serving(): number {
    return this.#raws.size;
  }

  async #acceptLoop(l: Listener): Promise<void> {
    const backoff = new Backoff();
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let raw: Conn | null;
      try {
        raw = await l.accept();
      } catch (e) {
        if (signal.aborted) return;
        await backoff.fail(signal);
        this.#o.log.warn(
          `${this.#o.name}: accept: ${errorText(e)} (retrying in ${backoff.delay} ms)`,
        );
        continue;
      }
      backoff.ok();
      if (raw === null) return;
      if (signal.aborted) {
        raw.close();
        return;
      }
      if (this.#stopped) {
        raw.close();
        continue;
      }
      const release = this.#o.guard ? this.#o.guard(raw) : undefined;
      if (release === null) {
        raw.close();
        continue;
      }
      this.#serve(raw, release);
    }
  }

  #serve(raw: Conn, release?: () => void): void {
    this.#raws.add(raw);
    const t = (async () => {
      try {
        await this.#o.serve(raw, this.#emit, this.#abort.signal);
      } catch (e) {
        if (!this.#abort.signal.aborted) this.#o.log.debug(`${this.#o.name}: ${errorText(e)}`);
        raw.close();
      } finally {
        this.#raws.delete(raw);
        release?.();
      }
    })();
    this.#tasks.add(t);
    t.finally(() => this.#tasks.delete(t));
  }

  #emit: Emit = (c) => {
    if (this.#stopped) {
      c.close(); // no longer accepting: a new stream of a live session is refused
      return false;
    }
    if (this.#queue.push(c)) return true;
    if (!this.#abort.signal.aborted) this.#o.log.warn(`${this.#o.name}: backlog full, conn closed`);
    c.close();
    return false;
  };

  accept(): Promise<Conn | null> {
    return this.#queue.shift();
  }

  /**
   * New raw conns are closed as they come (the inner listeners stay open: a KCP listener's
   * socket carries the live sessions too) and new streams refused; served ones go on.
   */
  stopAccepting(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#queue.close()) c.close();
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    // Serve tasks drain first, while their carriers still work: closing an inner listener may
    // close its conns too (a KCP listener owns its sessions' socket).
    const drain = this.#o.drainMs ?? 0;
    if (drain > 0 && this.#tasks.size > 0) {
      let t: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(this.#tasks),
        new Promise((r) => (t = setTimeout(r, drain))),
      ]);
      clearTimeout(t);
    }
    await Promise.all(this.#inners.map((l) => l.close()));
    await Promise.all(this.#loops);
    for (const raw of this.#raws) raw.close();
    await Promise.all(this.#tasks);
    for (const c of this.#queue.close()) c.close();
  }

  /** Closes the listener (`await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export interface HandshakeOptions {
  name: string;
  log: Logger;
  /** The server side of the handshake on `raw`: the conn to hand out, or null to drop `raw`. */
  handshake: (raw: Conn) => Promise<Conn | null>;
  /** A handshake not done within this many ms closes `raw` (0: no limit). */
  timeout: number;
  backlog?: number;
}

/** A listener whose conns are the results of a handshake on each accepted raw conn. */
export function handshakeListener(inner: Listener | Listener[], o: HandshakeOptions): Listener {
  return new ServeListener(inner, {
    name: o.name,
    log: o.log,
    backlog: o.backlog,
    serve: async (raw, emit) => {
      const c = await withDeadline(raw, o.timeout, () => o.handshake(raw));
      if (c) emit(c);
      else raw.close();
    },
  });
}
