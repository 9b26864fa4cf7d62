/**
 * The clients connected per tunnel: each registered client is a smux session the server opens
 * visitor streams on. A visitor goes to one of a tunnel's clients picked at random by weight;
 * a client with weight 255 takes over alone (GOST). Clients leave when their session ends.
 * @module
 */
import type { SmuxSession } from "../../mux/smux/mod.ts";

/** One registered client of a tunnel. */
export interface TunnelClient {
  /** The connector id the server gave it. */
  readonly id: string;
  readonly weight: number;
  readonly udp: boolean;
  readonly session: SmuxSession;
}

/** Clients a tunnel may have at once; tunnels a server may hold (bounds for hostile clients). */
export const MAX_CLIENTS_PER_TUNNEL = 64;
export const MAX_TUNNELS = 4096;

/** Clients by tunnel UUID. */
export class TunnelPool {
  readonly #tunnels = new Map<string, Set<TunnelClient>>();

  /** Adds `c` until its session closes; false when the tunnel or the server is full. */
  add(tunnel: string, c: TunnelClient): boolean {
    let set = this.#tunnels.get(tunnel);
    if (!set) {
      if (this.#tunnels.size >= MAX_TUNNELS) return false;
      this.#tunnels.set(tunnel, set = new Set());
    }
    if (set.size >= MAX_CLIENTS_PER_TUNNEL) return false;
    set.add(c);
    c.session.closed.then(() => {
      set.delete(c);
      if (set.size === 0 && this.#tunnels.get(tunnel) === set) this.#tunnels.delete(tunnel);
    });
    return true;
  }

  /** Whether one more client of `tunnel` fits. */
  canAdd(tunnel: string): boolean {
    const set = this.#tunnels.get(tunnel);
    return set ? set.size < MAX_CLIENTS_PER_TUNNEL : this.#tunnels.size < MAX_TUNNELS;
  }

  /** Live clients of `tunnel`. */
  count(tunnel: string): number {
    let n = 0;
    for (const c of this.#tunnels.get(tunnel) ?? []) if (!c.session.isClosed) n++;
    return n;
  }

  /** A client for a visitor of `tunnel` (tcp or udp), picked by weight; `skip` excludes some. */
  pick(tunnel: string, udp: boolean, skip?: ReadonlySet<TunnelClient>): TunnelClient | undefined {
    let live = [...(this.#tunnels.get(tunnel) ?? [])].filter((c) =>
      !c.session.isClosed && c.udp === udp && !skip?.has(c)
    );
    const exclusive = live.filter((c) => c.weight === 255);
    if (exclusive.length > 0) live = exclusive;
    if (live.length === 0) return undefined;
    const weights = live.map((c) => Math.max(1, c.weight));
    let r = Math.random() * weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < live.length; i++) {
      r -= weights[i]!;
      if (r < 0) return live[i];
    }
    return live[live.length - 1];
  }

  /** Ends every client session. */
  close(): void {
    for (const set of this.#tunnels.values()) for (const c of set) c.session.close();
    this.#tunnels.clear();
  }
}
