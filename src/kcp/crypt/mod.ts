/**
 * kcp-go block crypts and kcptun's key derivation (docs/kcp.md §6).
 * @module
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { Aes } from "./aes.ts";
import { type BlockFn, type BulkFn, cfbDecrypt, cfbEncrypt, IV } from "./cfb.ts";
import { salsa20Xor, teaBlock, xteaBlock } from "./small.ts";
import { blowfishBlock } from "./blowfish.ts";
import { twofishBlock } from "./twofish.ts";
import { sm4Block } from "./sm4.ts";
import { cast5Block } from "./cast5.ts";
import { desBlock } from "./des.ts";
import { opensslAesCfb } from "./openssl.ts";

/** Encrypts/decrypts one datagram in place. */
export interface BlockCrypt {
  /** kcptun's name of the crypt (`aes`, `salsa20`, ...). */
  readonly name: string;
  /** Encrypts a datagram in place. */
  encrypt(buf: Uint8Array): void;
  /** Decrypts a datagram in place. */
  decrypt(buf: Uint8Array): void;
}

/** `PBKDF2-HMAC-SHA1(pass, "kcp-go", 4096, 32)`. */
export function deriveKey(pass: string): Uint8Array {
  return new Uint8Array(crypto.pbkdf2Sync(pass, "kcp-go", 4096, 32, "sha1"));
}

/** Crypt names kcptun 20210922 offers; any other name means `aes`, as in kcp-go. */
export const CRYPTS: readonly string[] = [
  "aes",
  "aes-128",
  "aes-192",
  "salsa20",
  "blowfish",
  "twofish",
  "cast5",
  "3des",
  "tea",
  "xtea",
  "sm4",
  "xor",
  "none",
];

class CfbCrypt implements BlockCrypt {
  readonly #tmp: Uint8Array;
  constructor(
    readonly name: string,
    readonly bs: number,
    readonly enc: BlockFn,
    readonly bulk?: BulkFn,
  ) {
    this.#tmp = new Uint8Array(bs);
  }
  encrypt(buf: Uint8Array): void {
    cfbEncrypt(buf, this.bs, this.enc, this.#tmp);
  }
  decrypt(buf: Uint8Array): void {
    cfbDecrypt(buf, this.bs, this.enc, this.#tmp, this.bulk);
  }
}

function aesCrypt(name: string, key: Uint8Array): BlockCrypt {
  const aes = new Aes(key);
  const ecb = crypto.createCipheriv(`aes-${key.length * 8}-ecb`, Buffer.from(key), null)
    .setAutoPadding(false);
  // ECB keeps no state between update() calls: one cipher object serves every packet.
  const bulk: BulkFn = (src) => ecb.update(src);
  const tmp = new Uint8Array(16);
  const enc: BlockFn = (s, so, d, dOff) => aes.encryptBlock(s, so, d, dOff);
  const portable: BlockCrypt = {
    name,
    encrypt: (buf) => aes.cfbEncrypt(buf, IV),
    decrypt: (buf) => cfbDecrypt(buf, 16, enc, tmp, bulk),
  };
  const cacheKey = Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
  const hit = NATIVE.get(cacheKey);
  if (hit !== undefined) return hit ? { name, ...hit } : portable;
  const native = opensslAesCfb(key, IV);
  NATIVE.set(cacheKey, null);
  if (!native) return portable;
  // Trust the native path only when it agrees with ours, byte for byte, on an odd length.
  const probe = crypto.getRandomValues(new Uint8Array(1337));
  const a = probe.slice(), b = probe.slice();
  portable.encrypt(a);
  native.encrypt(b);
  const same = a.every((v, i) => v === b[i]);
  native.decrypt(b);
  if (!same || !b.every((v, i) => v === probe[i])) return portable;
  NATIVE.set(cacheKey, native);
  return { name, encrypt: native.encrypt, decrypt: native.decrypt };
}

/**
 * Native crypts by key: each KCP session asks for its crypt, and an OpenSSL context pair (never
 * freed) per session would leak; one pair per key serves every session (calls are synchronous).
 */
const NATIVE = new Map<
  string,
  { encrypt: (b: Uint8Array) => void; decrypt: (b: Uint8Array) => void } | null
>();

/** A crypt by kcptun name; unknown names fall back to `aes` as kcp-go does. */
export function createCrypt(name: string, key32: Uint8Array): BlockCrypt {
  switch (name) {
    case "aes-128":
      return aesCrypt(name, key32.subarray(0, 16));
    case "aes-192":
      return aesCrypt(name, key32.subarray(0, 24));
    case "salsa20":
      return { name, encrypt: (b) => salsa20Xor(b, key32), decrypt: (b) => salsa20Xor(b, key32) };
    case "3des":
      return new CfbCrypt(name, 8, desBlock(key32.subarray(0, 24)));
    case "tea":
      return new CfbCrypt(name, 8, teaBlock(key32.subarray(0, 16), 16));
    case "xtea":
      return new CfbCrypt(name, 8, xteaBlock(key32.subarray(0, 16)));
    case "xor": {
      const table = new Uint8Array(
        crypto.pbkdf2Sync(Buffer.from(key32), "sH3CIVoF#rWLtJo6", 32, 1500, "sha1"),
      );
      const x = (b: Uint8Array) => {
        for (let i = 0; i < b.length; i++) b[i] ^= table[i]!;
      };
      return { name, encrypt: x, decrypt: x };
    }
    case "none":
      return { name, encrypt: () => {}, decrypt: () => {} };
    case "blowfish":
      return new CfbCrypt(name, 8, blowfishBlock(key32));
    case "twofish":
      return new CfbCrypt(name, 16, twofishBlock(key32));
    case "sm4":
      return new CfbCrypt(name, 16, sm4Block(key32.subarray(0, 16)));
    case "cast5":
      return new CfbCrypt(name, 8, cast5Block(key32.subarray(0, 16)));
    default:
      return aesCrypt("aes", key32);
  }
}
