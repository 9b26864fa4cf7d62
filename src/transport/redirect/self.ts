/**
 * Whether a diverted conn or datagram was really addressed to the transparent listener itself:
 * its "original destination" is then the listener, and sending it there would loop (one
 * connection or datagram becoming thousands, through a chain even past the router's own check).
 * @module
 */
import type { NetAddr } from "../../core/conn.ts";

/** `::ffff:a.b.c.d` (an IPv4 client on a dual-stack socket) as `a.b.c.d`. */
export function unmapV4(host: string): string {
  const m = /^\[?::ffff:(\d+\.\d+\.\d+\.\d+)\]?$/i.exec(host);
  return m ? m[1]! : host.replace(/^\[|\]$/g, "");
}

/** Whether `ip` is one of this host's interface addresses (loopback counts). */
export function isLocalAddress(ip: string): boolean {
  const h = unmapV4(ip);
  if (h.startsWith("127.") || h === "::1") return true;
  try {
    return Deno.networkInterfaces().some((i) => i.address === h);
  } catch {
    return true; // no --allow-sys: treat as local (refusing one beats a loop)
  }
}

/** True when `to` is the listener's own address (`listen` may be a wildcard). */
export function addressedToListener(to: NetAddr, listen: NetAddr): boolean {
  if (to.port !== listen.port) return false;
  const own = unmapV4(listen.hostname), dst = unmapV4(to.hostname);
  const wildcard = own === "0.0.0.0" || own === "::" || own === "";
  return dst === own || (wildcard && isLocalAddress(dst));
}
