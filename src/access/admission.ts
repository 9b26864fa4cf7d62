/**
 * Admission: which client addresses a service serves (docs/access-control.md). Patterns are IPs,
 * CIDRs, or host names resolved when the list is (re)loaded; the client's port is ignored. A
 * blacklist refuses matching clients, a whitelist (`~` on the CLI) serves only them. Several
 * admissions on one service must all admit.
 * @module
 */
import { errorText } from "../core/errors.ts";
import { parseIp, splitHostPortLoose } from "../core/ip.ts";
import type { Logger } from "../core/log.ts";
import { IpMatcher } from "./matchers.ts";

/** Decides whether a client address may use a service. */
export interface Admitter {
  /** `addr` is the client's `ip:port` (or bare IP). */
  admit(addr: string): boolean;
}

/** One admission list. */
export class Admission implements Admitter {
  #set = new IpMatcher();

  constructor(readonly whitelist: boolean, readonly log: Logger) {}

  /** Replaces the patterns; host names are resolved now (unresolvable ones are logged). */
  async load(patterns: readonly string[]): Promise<void> {
    const set = new IpMatcher();
    for (const p of patterns) {
      if (set.add(p)) continue;
      const ips = await resolveName(p, this.log);
      for (const ip of ips) set.add(ip);
    }
    this.#set = set;
  }

  admit(addr: string): boolean {
    if (addr === "") return true;
    const ip = parseIp(splitHostPortLoose(addr).host);
    const matched = ip !== undefined && this.#set.matchIp(ip);
    return this.whitelist ? matched : !matched;
  }
}

async function resolveName(name: string, log: Logger): Promise<string[]> {
  const out: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      out.push(...await Deno.resolveDns(name, type));
    } catch (e) {
      if (type === "A") log.debug(`admission: cannot resolve ${name} (${type}): ${errorText(e)}`);
    }
  }
  if (out.length === 0) log.warn(`admission: ${name} is not an IP, CIDR or resolvable name`);
  return out;
}

/** Every admitter must admit. */
export class AllAdmit implements Admitter {
  constructor(readonly list: readonly Admitter[]) {}
  admit(addr: string): boolean {
    return this.list.every((a) => a.admit(addr));
  }
}
