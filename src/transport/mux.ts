/**
 * Multiplexing on top of any transport (docs/gost-config.md §4.3): a listener that runs a
 * server session on each accepted carrier conn and hands out its streams, and a dialer that
 * keeps sessions per node and opens a stream per dial, re-creating a session when it dies and
 * adding one when a session holds `mux.maxStreams` streams.
 * mtcp, mws, mwss, mtls, kcp and mtmux are these two around their carriers; which multiplexer
 * runs the sessions is the transport's {@link MuxFactory}, built once for both directions.
 * @module
 */
import type { Conn } from "../core/conn.ts";
import { TunnelError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { type MuxFactory, type MuxSession, trackMux } from "../core/mux.ts";
import { ServeListener } from "../core/serve_listener.ts";
import type { DialContext, Dialer, Listener, RawGuard } from "../core/types.ts";

/** Accepts carrier conns from `inner` and yields the streams their peers open. */
export class MuxListener extends ServeListener {
  /**
   * `guard` (the service's admission and connection limits) applies per carrier conn, as GOST
   * wraps the raw listener: a refused client gets no session at all, and a connection limit
   * counts sessions, not streams.
   */
  constructor(
    inner: Listener | Listener[],
    mux: MuxFactory,
    log: Logger,
    backlog = 128,
    guard?: RawGuard,
  ) {
    super(inner, {
      name: "mux",
      log,
      backlog,
      guard,
      drainMs: 1500,
      serve: async (raw, emit, signal) => {
        const s = trackMux(mux(raw, "server"), "server");
        // Closing the listener ends its sessions with a FIN on every stream, so clients read
        // EOF at once (a KCP client would otherwise wait for its keepalive timeout).
        const stop = () => void s.shutdown(1000);
        signal.addEventListener("abort", stop, { once: true });
        try {
          for (;;) {
            const stream = await s.acceptStream();
            if (!stream) break;
            emit(stream);
          }
        } finally {
          signal.removeEventListener("abort", stop);
          if (signal.aborted) await s.shutdown(1000);
          s.close();
          await s.closed;
        }
      },
    });
  }

  /** Multiplexed sessions (carrier conns) alive now. */
  get sessionCount(): number {
    return this.serving;
  }
}

/** Opens carrier conn number `slot` to `addr` (TCP, TLS, WebSocket, a bundle, a KCP session). */
export type CarrierDial = (addr: string, ctx: DialContext, slot: number) => Promise<Conn>;

export interface MuxDialerOptions {
  /**
   * Sessions kept per node (default 1). With more, every dial makes sure all are up and opens
   * its stream on the one with the fewest streams (mtmux's `mode=pin`).
   */
  sessions?: number;
  /** The carrier dial ignores `ctx.netDial` (see {@link Dialer.directOnly}). */
  directOnly?: boolean;
}

type Slot = Promise<MuxSession> | undefined;

/** Sessions per node address; a new stream per dial. */
export class MuxDialer implements Dialer {
  readonly #dial: CarrierDial;
  readonly #mux: MuxFactory;
  readonly #n: number;
  readonly #pools = new Map<string, Slot[]>();
  readonly directOnly: boolean;

  constructor(dial: CarrierDial, mux: MuxFactory, o: MuxDialerOptions = {}) {
    this.directOnly = o.directOnly ?? false;
    this.#dial = dial;
    this.#mux = mux;
    this.#n = Math.max(1, o.sessions ?? 1);
  }

  /** The live session in `slots[i]`, dialing a new one when there is none. */
  async #slot(slots: Slot[], i: number, addr: string, ctx: DialContext): Promise<MuxSession> {
    const cached = slots[i];
    if (cached) {
      const s = await cached.catch(() => null);
      if (s && !s.isClosed) return s;
      if (slots[i] === cached) slots[i] = undefined;
      // Another dial may have started a fresh session meanwhile.
      const again = slots[i];
      if (again) return await again;
    }
    const p =
      (async () => trackMux(this.#mux(await this.#dial(addr, ctx, i), "client"), "client"))();
    slots[i] = p;
    const forget = () => {
      if (slots[i] === p) slots[i] = undefined;
    };
    p.then((s) => s.closed.then(forget), forget);
    return await p;
  }

  async dial(addr: string, ctx: DialContext): Promise<Conn> {
    let slots = this.#pools.get(addr);
    if (!slots) this.#pools.set(addr, slots = new Array<Slot>(this.#n).fill(undefined));
    let s: MuxSession;
    if (this.#n === 1) {
      s = await this.#slot(slots, 0, addr, ctx);
      // A session at its streams limit (mux.maxStreams): the next one, dialed when needed. A
      // server configured alike refuses streams past it, and a busy client should not see that.
      for (let i = 1; s.maxStreams !== undefined && s.streamCount >= s.maxStreams; i++) {
        s = await this.#slot(slots, i, addr, ctx);
      }
    } else {
      const tries = await Promise.allSettled(slots.map((_, i) => this.#slot(slots, i, addr, ctx)));
      const live = tries.flatMap((t) =>
        t.status === "fulfilled" && !t.value.isClosed ? [t.value] : []
      );
      if (live.length === 0) {
        const failed = tries.find((t) => t.status === "rejected");
        throw failed ? failed.reason : new TunnelError(`no session to ${addr} could be opened`);
      }
      s = live.reduce((a, b) => b.streamCount < a.streamCount ? b : a);
    }
    try {
      return await s.openStream();
    } catch (e) {
      // A session that cannot open streams is dropped; the next dial makes a new one.
      s.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()].flat();
    this.#pools.clear();
    await Promise.all(all.map(async (p) => {
      const s = await p?.catch(() => null);
      s?.close();
      await s?.closed;
    }));
  }
}
