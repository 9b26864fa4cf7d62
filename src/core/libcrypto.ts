/**
 * The system's OpenSSL (libcrypto) over FFI, loaded once for every user: KCP's AES-CFB and
 * Shadowsocks' AEAD ciphers run there when the process may load it, one native call per packet or
 * chunk where the portable code is slower by several times (docs/performance.md, "Shadowsocks";
 * docs/kcp.md "Where the CPU goes"). Null without FFI permission, without libcrypto, or with
 * `BURROW_NO_FFI` set (tests and A/B runs force the portable paths); users self-check their
 * ciphers against the portable code before trusting it.
 * @module
 */

/**
 * Versioned names only on macOS: loading the system's unversioned libcrypto.dylib aborts the
 * process there (no error to catch and fall back from).
 */
const NAMES = ["libcrypto.so.3", "libcrypto.so", "libcrypto.3.dylib"];

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_128_cfb128: { parameters: [], result: "pointer" },
  EVP_aes_192_cfb128: { parameters: [], result: "pointer" },
  EVP_aes_256_cfb128: { parameters: [], result: "pointer" },
  EVP_aes_128_gcm: { parameters: [], result: "pointer" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;

/** libcrypto's functions, as Burrow declares them. */
export type LibCrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** `EVP_CIPHER_CTX_ctrl` commands for AEAD tags (OpenSSL's EVP_CTRL_AEAD_GET_TAG / SET_TAG). */
export const CTRL_AEAD_GET_TAG = 0x10;
export const CTRL_AEAD_SET_TAG = 0x11;

let lib: LibCrypto | null | undefined;

/** libcrypto, or null when it cannot or must not be used here. */
export function libcrypto(): LibCrypto | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (Deno.env.get("BURROW_NO_FFI")) return lib;
  try {
    // Asked first: a library must never trigger an interactive permission prompt.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return lib;
  } catch {
    return lib;
  }
  for (const name of NAMES) {
    try {
      lib = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch { /* try the next name */ }
  }
  return lib;
}
