/**
 * Ingress rules: which tunnel serves a host name (`tunnel=.example.com:<uuid>,app.x.com:<uuid>`).
 * A leading `*` is dropped (`*.x.com` = `.x.com`); `.x.com` matches `x.com` and every subdomain;
 * the most specific rule wins. A `$` before the UUID makes the tunnel private: the entrypoint
 * never routes to it. Matching ignores case (GOST's does not).
 * @module
 */
import { ConfigError } from "../../core/errors.ts";
import { TunnelId } from "./id.ts";

/** One rule's target. */
export interface IngressTarget {
  tunnel: string;
  private: boolean;
}

/** Host rules. */
export class Ingress {
  readonly #rules = new Map<string, IngressTarget>();

  /** Parses `host:uuid` rules (comma separated). */
  static parse(text: string, path = "tunnel"): Ingress {
    const ing = new Ingress();
    for (const rule of text.split(",").map((r) => r.trim()).filter((r) => r)) {
      const c = rule.indexOf(":");
      if (c <= 0) throw new ConfigError(path, `expected host:uuid, got ${JSON.stringify(rule)}`);
      let host = rule.slice(0, c).trim().toLowerCase();
      let id = rule.slice(c + 1).trim();
      if (host.startsWith("*")) host = host.slice(1);
      const priv = id.startsWith("$");
      if (priv) id = id.slice(1);
      let tunnel: string;
      try {
        tunnel = TunnelId.parse(id).uuid;
      } catch {
        throw new ConfigError(path, `${JSON.stringify(rule)}: ${JSON.stringify(id)} is not a UUID`);
      }
      ing.#rules.set(host, { tunnel, private: priv });
    }
    return ing;
  }

  /** Adds YAML rules (`{hostname, endpoint}`). */
  add(rules: readonly { hostname: string; endpoint: string }[], path: string): void {
    for (const [i, r] of rules.entries()) {
      const one = Ingress.parse(`${r.hostname}:${r.endpoint}`, `${path}.rules[${i}]`);
      for (const [h, t] of one.#rules) this.#rules.set(h, t);
    }
  }

  get size(): number {
    return this.#rules.size;
  }

  /** Whether some rule names `uuid` (public or private). */
  knows(uuid: string): boolean {
    for (const t of this.#rules.values()) if (t.tunnel === uuid) return true;
    return false;
  }

  /** The target for `host` (a port is ignored): exact, then `.host`, then each parent suffix. */
  lookup(host: string): IngressTarget | undefined {
    let h = host.toLowerCase();
    if (h.startsWith("[")) h = h.slice(1, h.indexOf("]"));
    else if (h.includes(":") && h.indexOf(":") === h.lastIndexOf(":")) {
      h = h.slice(0, h.indexOf(":"));
    }
    const exact = this.#rules.get(h) ?? this.#rules.get(`.${h}`);
    if (exact) return exact;
    for (let i = h.indexOf("."); i >= 0; i = h.indexOf(".", i + 1)) {
      const t = this.#rules.get(h.slice(i));
      if (t) return t;
    }
    return undefined;
  }
}
