/**
 * Multiplexing on top of any transport (gost.md §4.3): a listener that runs an smux server
 * session on each accepted conn and hands out its streams, and a dialer that keeps one smux
 * client session per node and opens a stream per dial, re-creating the session when it dies.
 * mtcp, mws, mwss and mtls are these two wrapped around tcp, ws, wss and tls.
 * @module
 */
import type { Conn, NetAddr } from "../core/conn.ts";
import { errorText } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { AsyncQueue } from "../core/queue.ts";
import type { DialContext, Dialer, Listener } from "../core/types.ts";
import {
  clientSession,
  serverSession,
  type SmuxConfig,
  type SmuxSession,
} from "../mux/smux/mod.ts";

/** Accepts raw conns from `inner` and yields the smux streams inside them. */
export class MuxListener implements Listener {
  readonly #inner: Listener;
  readonly #cfg: SmuxConfig;
  readonly #log: Logger;
  readonly #streams: AsyncQueue<Conn>;
  readonly #sessions = new Set<SmuxSession>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  #closed = false;

  constructor(inner: Listener, cfg: SmuxConfig, log: Logger, backlog = 128) {
    this.#inner = inner;
    this.#cfg = cfg;
    this.#log = log;
    this.#streams = new AsyncQueue(backlog);
    this.#loop = this.#acceptLoop();
  }

  get addr(): NetAddr {
    return this.#inner.addr;
  }

  /** Multiplexed sessions (peer connections) alive now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Conn | null;
      try {
        conn = await this.#inner.accept();
      } catch (e) {
        if (this.#closed) return;
        this.#log.warn(`accept: ${errorText(e)}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (conn === null) return;
      if (this.#closed) {
        conn.close();
        return;
      }
      const session = serverSession(conn, this.#cfg, { log: this.#log });
      this.#sessions.add(session);
      const t = this.#serve(session);
      this.#tasks.add(t);
      t.finally(() => this.#tasks.delete(t));
    }
  }

  async #serve(session: SmuxSession): Promise<void> {
    try {
      for (;;) {
        const s = await session.acceptStream();
        if (!s) break;
        if (!this.#streams.push(s)) {
          this.#log.warn("mux: backlog full, stream closed");
          s.close();
        }
      }
    } finally {
      session.close();
      this.#sessions.delete(session);
      await session.closed;
    }
  }

  accept(): Promise<Conn | null> {
    return this.#streams.shift();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#inner.close();
    await this.#loop;
    for (const s of this.#streams.close()) s.close();
    for (const s of this.#sessions) s.close();
    await Promise.all(this.#tasks);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens the raw transport conn a session runs on (TCP, TLS, WebSocket, ...). */
export type SessionDial = (addr: string, ctx: DialContext) => Promise<Conn>;

/** One smux client session per node address; a new stream per dial. */
export class MuxDialer implements Dialer {
  readonly #dialRaw: SessionDial;
  readonly #cfg: SmuxConfig;
  readonly #log: Logger;
  readonly #sessions = new Map<string, Promise<SmuxSession>>();

  constructor(dialRaw: SessionDial, cfg: SmuxConfig, log: Logger) {
    this.#dialRaw = dialRaw;
    this.#cfg = cfg;
    this.#log = log;
  }

  async #session(addr: string, ctx: DialContext): Promise<SmuxSession> {
    const cached = this.#sessions.get(addr);
    if (cached) {
      const s = await cached.catch(() => null);
      if (s && !s.isClosed) return s;
      if (this.#sessions.get(addr) === cached) this.#sessions.delete(addr);
      // Another dial may have started a fresh session meanwhile.
      const again = this.#sessions.get(addr);
      if (again) return await again;
    }
    const p = (async () => {
      const raw = await this.#dialRaw(addr, ctx);
      const s = clientSession(raw, this.#cfg, { log: this.#log });
      s.closed.then(() => {
        if (this.#sessions.get(addr) === p) this.#sessions.delete(addr);
      });
      return s;
    })();
    this.#sessions.set(addr, p);
    p.catch(() => {
      if (this.#sessions.get(addr) === p) this.#sessions.delete(addr);
    });
    return await p;
  }

  async dial(addr: string, ctx: DialContext): Promise<Conn> {
    const s = await this.#session(addr, ctx);
    try {
      return await s.openStream();
    } catch (e) {
      // A session that cannot open streams is dropped; the next dial makes a new one.
      s.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    const all = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(all.map(async (p) => {
      const s = await p.catch(() => null);
      s?.close();
      await s?.closed;
    }));
  }
}
