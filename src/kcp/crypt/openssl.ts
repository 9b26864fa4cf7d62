/**
 * kcp-go's AES-CFB through the system's OpenSSL (libcrypto) over FFI, when the process may load
 * it: one native call per datagram instead of 85 block encryptions in WebAssembly (docs/kcp.md
 * "Where the CPU goes": AES-CFB was the sender's largest cost). kcp-go's scheme is standard
 * CFB-128 with a fixed IV per packet (docs/kcp.md §6.3), which is what `EVP_aes_*_cfb128` does
 * when its IV is reset before each packet. Returns null (callers keep the WebAssembly/JS path)
 * without FFI permission, without libcrypto, or when a self-check against the portable code fails.
 * @module
 */

import { libcrypto } from "../../core/libcrypto.ts";

/** In-place CFB over one datagram, encrypting or decrypting. */
export type CfbFn = (buf: Uint8Array) => void;

/** Native kcp-go AES-CFB for a 16/24/32-byte key and IV, or null when OpenSSL is not usable. */
export function opensslAesCfb(
  key: Uint8Array,
  iv: Uint8Array,
): { encrypt: CfbFn; decrypt: CfbFn } | null {
  const s = libcrypto();
  if (!s) return null;
  const cipher = key.length === 16
    ? s.EVP_aes_128_cfb128()
    : key.length === 24
    ? s.EVP_aes_192_cfb128()
    : s.EVP_aes_256_cfb128();
  // Contexts live as long as the process's crypts (one pair per KCP key); not freed.
  const make = (enc: number): CfbFn | null => {
    const ctx = s.EVP_CIPHER_CTX_new();
    if (!ctx || s.EVP_CipherInit_ex(ctx, cipher, null, key.slice(), iv, enc) !== 1) return null;
    const outl = new Int32Array(1);
    const ivCopy = iv.slice();
    return (buf) => {
      if (buf.length === 0) return;
      // Resetting the IV restarts the stream (position 0) for this packet.
      s.EVP_CipherInit_ex(ctx, null, null, null, ivCopy, -1);
      if (s.EVP_CipherUpdate(ctx, buf, outl, buf, buf.length) !== 1) {
        throw new Error("openssl: EVP_CipherUpdate failed");
      }
    };
  };
  const encrypt = make(1);
  const decrypt = make(0);
  return encrypt && decrypt ? { encrypt, decrypt } : null;
}
