/**
 * base64url without padding (RFC 4648 §5), as GOST's hidden server names and DNS-over-HTTPS
 * `?dns=` use it.
 * @module
 */

/** `b` as unpadded base64url. */
export function encodeBase64Url(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.length; i += 8192) bin += String.fromCharCode(...b.subarray(i, i + 8192));
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes of unpadded base64url text, or null when it is not that. */
export function decodeBase64Url(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  try {
    return Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
