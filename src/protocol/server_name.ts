/**
 * Hiding the real server name behind a front name, GOST's way (docs/gost-proxies.md "sni"): the
 * `sni` connector with `host=front` sends the front name in the TLS SNI or the HTTP Host and the
 * real one encoded beside it — a ClientHello extension 0xFFFE, or a `Gost-Target` header — as
 * `base64url(crc32(name) ‖ base64url(name))` (both base64 without padding, CRC big-endian). The
 * receiving side decodes it; the CRC rejects names that were not encoded this way.
 * @module
 */
import { crc32 } from "../core/crc32.ts";
import { decodeBase64Url, encodeBase64Url } from "../core/base64url.ts";

/** The extension type that carries the real server name in a rewritten ClientHello. */
export const EXT_HIDDEN_NAME = 0xfffe;

/** GOST's encoding of a hidden server name. */
export function encodeServerName(name: string): string {
  const inner = new TextEncoder().encode(encodeBase64Url(new TextEncoder().encode(name)));
  const out = new Uint8Array(4 + inner.length);
  new DataView(out.buffer).setUint32(0, crc32(new TextEncoder().encode(name)));
  out.set(inner, 4);
  return encodeBase64Url(out);
}

/** The name in a GOST-encoded hidden server name, or null when it is not one (bad CRC, form). */
export function decodeServerName(s: string): string | null {
  const outer = decodeBase64Url(s.trim());
  if (!outer || outer.length < 5) return null;
  const inner = decodeBase64Url(new TextDecoder().decode(outer.subarray(4)));
  if (!inner || inner.length === 0) return null;
  if ((crc32(inner) >>> 0) !== new DataView(outer.buffer).getUint32(0)) return null;
  const name = new TextDecoder("utf-8", { fatal: false }).decode(inner);
  // A host name, nothing that could smuggle syntax into a dial address or a header.
  return /^[A-Za-z0-9.:_[\]-]+$/.test(name) ? name : null;
}
