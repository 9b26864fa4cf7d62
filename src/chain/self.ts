/**
 * This process's own listening addresses, so the router can refuse to dial them directly: a
 * proxy asked to reach itself (`curl -x http://127.0.0.1:8080 http://127.0.0.1:8080/`, or a
 * forwarder pointed at its own port) would otherwise connect to itself again and again until
 * file descriptors run out.
 * @module
 */
import type { NetAddr } from "../core/conn.ts";
import { isIPv4, isIPv6 } from "../core/addr.ts";
import type { Network } from "../core/types.ts";

const UNSPECIFIED = new Set(["", "0.0.0.0", "::", "[::]"]);

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIPv4(host) && host.startsWith("127."));
}

/** The listening addresses of a runtime's services, and the host's own IPs. */
export class SelfAddresses {
  readonly #own: NetAddr[] = [];
  #local: Set<string> | null = null;

  /** Records a listener's bound address. */
  add(addr: NetAddr): void {
    this.#own.push(addr);
  }

  /** Forgets a listener's address (its service was removed). */
  remove(addr: NetAddr): void {
    const i = this.#own.indexOf(addr);
    if (i >= 0) this.#own.splice(i, 1);
  }

  /** The host's interface addresses (needs --allow-sys; loopback only without it). */
  #localIps(): Set<string> {
    if (this.#local) return this.#local;
    const s = new Set<string>();
    try {
      for (const i of Deno.networkInterfaces()) s.add(i.address);
    } catch { /* no permission: loopback and unspecified still count */ }
    return this.#local = s;
  }

  #isLocal(host: string): boolean {
    return UNSPECIFIED.has(host) || isLoopback(host) || this.#localIps().has(host);
  }

  /** Whether dialing `host:port` directly would reach one of our own listeners. */
  has(network: Network, host: string, port: number): boolean {
    let h = host.startsWith("[") ? host.slice(1, -1) : host;
    // An IPv4 client's address as a dual-stack socket reports it.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(h);
    if (mapped) h = mapped[1]!;
    if (!(isIPv4(h) || isIPv6(h) || h === "localhost" || h === "")) return false;
    for (const a of this.#own) {
      if (a.port !== port || a.transport !== network) continue;
      if (UNSPECIFIED.has(a.hostname) ? this.#isLocal(h) : a.hostname === h) return true;
      if (isLoopback(a.hostname) && h === "localhost") return true;
    }
    return false;
  }
}
