/**
 * Static host mappings (GOST `hosts`, docs/access-control.md): `hostname → IPs` from config
 * mappings and hosts-file lines (`IP name [name...]`). Lookup tries the exact name, then
 * `.name`, then each parent suffix (`.example.com` covers the name and its subdomains), then the
 * catch-all `.`; the first key present wins. Names compare case-insensitively (GOST compares
 * them as written; DNS names are case-insensitive).
 * @module
 */
import { parseIp } from "../core/ip.ts";

export class Hosts {
  #map = new Map<string, string[]>();

  /** Replaces the table from `IP name [name...]` items (invalid lines are skipped). */
  load(items: readonly string[]): void {
    const next = new Map<string, string[]>();
    for (const item of items) {
      const [ip, ...names] = item.replace(/\t/g, " ").trim().split(/ +/);
      if (!ip || names.length === 0 || !parseIp(ip)) continue;
      for (const n of names) {
        const key = n.toLowerCase();
        const list = next.get(key) ?? [];
        if (!list.includes(ip)) list.push(ip);
        next.set(key, list);
      }
    }
    this.#map = next;
  }

  /** The IPs mapped to `host` (first one first), or undefined. */
  lookup(host: string): string[] | undefined {
    const h = host.toLowerCase();
    const hit = this.#map.get(h) ?? this.#map.get("." + h);
    if (hit) return hit;
    for (let i = h.indexOf("."); i >= 0; i = h.indexOf(".", i + 1)) {
      const s = this.#map.get(h.slice(i));
      if (s) return s;
    }
    return this.#map.get(".");
  }
}
