/**
 * Node selection (docs/gost-config.md §3.5): strategies round/rand/fifo/hash over the candidates that are
 * not marked failed, and fail marks (`maxFails` within `failTimeout`).
 * @module
 */
import { parseDuration } from "../core/duration.ts";
import { crc32 as crc32Bytes } from "../core/crc32.ts";

/** How a hop picks its node: the shape of a config `selector`, owned here so chain needs no config. */
export interface SelectorOptions {
  strategy?: string;
  maxFails?: number;
  /** Go duration text, e.g. "30s". */
  failTimeout?: string;
}

/** Fail bookkeeping of one node. */
export class FailMarker {
  count: number = 0;
  last: number = 0;
  mark(now: number = Date.now()): void {
    this.count++;
    this.last = now;
  }
  reset(): void {
    this.count = 0;
  }
  isFailed(maxFails: number, failTimeoutMs: number, now: number = Date.now()): boolean {
    return maxFails > 0 && this.count >= maxFails && now - this.last < failTimeoutMs;
  }
}

/** Anything a selector can pick. */
export interface Selectable {
  readonly name: string;
  readonly marker: FailMarker;
  /** `weight` metadata for the random strategy (≤0 ⇒ 1). */
  readonly weight: number;
}

/** CRC32-IEEE of a string, used by the `hash` strategy like GOST. */
export function crc32(s: string): number {
  return crc32Bytes(new TextEncoder().encode(s));
}

/** A selection strategy with fail filtering. */
export class Selector<T extends Selectable> {
  readonly strategy: string;
  readonly maxFails: number;
  readonly failTimeout: number;
  #counter = 0;

  constructor(cfg: SelectorOptions | undefined) {
    this.strategy = (cfg?.strategy ?? "round").toLowerCase();
    this.maxFails = cfg?.maxFails ?? 1;
    this.failTimeout = cfg?.failTimeout ? parseDuration(cfg.failTimeout) ?? 10_000 : 10_000;
  }

  /** Picks one of `items`; `hashKey` feeds the hash strategy (client IP by default). */
  select(items: readonly T[], hashKey?: string): T | undefined {
    if (items.length === 0) return undefined;
    const alive = items.filter((n) => !n.marker.isFailed(this.maxFails, this.failTimeout));
    // Every node failed: try one anyway rather than refusing (GOST's last resort).
    const cands = alive.length > 0 ? alive : items;
    if (cands.length === 1) return cands[0];
    switch (this.strategy) {
      case "random":
      case "rand": {
        const total = cands.reduce((s, n) => s + (n.weight > 0 ? n.weight : 1), 0);
        let r = Math.random() * total;
        for (const n of cands) {
          r -= n.weight > 0 ? n.weight : 1;
          if (r < 0) return n;
        }
        return cands[cands.length - 1];
      }
      case "fifo":
      case "ha":
        return cands[0];
      case "hash":
        if (hashKey) return cands[crc32(hashKey) % cands.length];
        return cands[Math.floor(Math.random() * cands.length)];
      default:
        return cands[this.#counter++ % cands.length];
    }
  }
}
