/**
 * Bypass: target addresses a service refuses, or a hop skips (docs/access-control.md). On a
 * service a match refuses the request with the protocol's "forbidden" answer; on a hop or node a
 * match ends the route before it (the target is dialed from the previous hop, or directly).
 * @module
 */
import type { Network } from "../core/types.ts";
import { AddrMatcher } from "./matchers.ts";

/** Whether a request to `addr` over `network` bypasses (is refused / skips the hop). */
export interface Bypasser {
  contains(network: Network, addr: string): boolean;
}

/** One bypass list. */
export class Bypass implements Bypasser {
  #m?: AddrMatcher;

  constructor(readonly whitelist: boolean, readonly network = "") {}

  /** Replaces the patterns. As in GOST, a reload that yields no patterns keeps the old ones. */
  load(patterns: readonly string[]): void {
    const m = new AddrMatcher(patterns);
    if (m.size > 0 || !this.#m) this.#m = m;
  }

  contains(network: Network, addr: string): boolean {
    if (this.network !== "" && this.network !== network) return false;
    if (!this.#m || this.#m.size === 0) return this.network !== "" && !this.whitelist;
    if (addr === "") return false;
    const matched = this.#m.match(addr);
    return this.whitelist ? !matched : matched;
  }
}

/**
 * Several bypasses on one place (GOST's group): true when every whitelist bypasses, or else
 * when any blacklist bypasses.
 */
export class BypassGroup implements Bypasser {
  readonly #white: Bypass[];
  readonly #black: Bypass[];

  constructor(list: readonly Bypass[]) {
    this.#white = list.filter((b) => b.whitelist);
    this.#black = list.filter((b) => !b.whitelist);
  }

  contains(network: Network, addr: string): boolean {
    if (this.#white.length > 0 && this.#white.every((b) => b.contains(network, addr))) return true;
    return this.#black.some((b) => b.contains(network, addr));
  }
}
