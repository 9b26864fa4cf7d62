/**
 * A `Via` hop marker (RFC 9110 §7.6.3) naming this runtime, so a request that comes back to it
 * through a chain or another proxy is recognised as a loop (HTTP 508), not served again.
 * @module
 */
import { getHeader, type Headers } from "../../protocol/http1.ts";

/** A pseudonym for `Via`: random, so it reveals nothing (one per runtime). */
export function newViaId(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return `burrow-${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/** The `Via` value to send: the incoming one (if any) with our hop added. */
export function viaWithUs(h: Headers, id: string, version = "1.1"): string {
  const prior = getHeader(h, "via");
  return prior ? `${prior}, ${version} ${id}` : `${version} ${id}`;
}

/** Whether `h` says the request already passed through the runtime named `id`. */
export function passedUs(h: Headers, id: string): boolean {
  const v = getHeader(h, "via");
  return v !== undefined && v.split(",").some((hop) => hop.trim().split(/\s+/)[1] === id);
}
