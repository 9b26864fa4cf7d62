/**
 * Shadowsocks AEAD (SIP004): EVP_BytesToKey(MD5) master key, HKDF-SHA1 per-salt subkeys
 * ("ss-subkey"), 12-byte little-endian counter nonces, 16-byte tags. Method "" (or "none",
 * "plain") means no encryption, as GOST does for `ss://` without userinfo.
 * @module
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { AuthError, ProtocolError, UnsupportedError } from "../core/errors.ts";

export const TAG = 16;
export const MAX_PAYLOAD = 0x3fff;

interface MethodInfo {
  alg: "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";
  keyLen: number;
}

const METHODS: Record<string, MethodInfo> = {
  "aes-128-gcm": { alg: "aes-128-gcm", keyLen: 16 },
  "aes-256-gcm": { alg: "aes-256-gcm", keyLen: 32 },
  "chacha20-ietf-poly1305": { alg: "chacha20-poly1305", keyLen: 32 },
  "chacha20-poly1305": { alg: "chacha20-poly1305", keyLen: 32 },
};

/** OpenSSL's EVP_BytesToKey with MD5 and no salt (shadowsocks' password → key). */
export function evpBytesToKey(password: string, keyLen: number): Uint8Array {
  const pass = Buffer.from(password);
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  let n = 0;
  while (n < keyLen) {
    prev = new Uint8Array(crypto.createHash("md5").update(Buffer.concat([prev, pass])).digest());
    out.push(prev);
    n += prev.length;
  }
  return new Uint8Array(Buffer.concat(out).subarray(0, keyLen));
}

/** A configured method: makes per-salt AEAD contexts. `null` method = plain (no crypto). */
export class SsCipher {
  readonly method: string;
  readonly info: MethodInfo;
  readonly key: Uint8Array;

  /** `rawKey`, when given, is the master key itself (go-shadowsocks2's `key`), not derived. */
  constructor(method: string, password: string, rawKey?: Uint8Array) {
    const info = METHODS[method.toLowerCase()];
    if (!info) {
      throw new UnsupportedError(
        `ss: unsupported method "${method}" (aes-128-gcm, aes-256-gcm, chacha20-ietf-poly1305)`,
      );
    }
    if (rawKey && rawKey.length !== info.keyLen) {
      throw new UnsupportedError(`ss: ${method} needs a ${info.keyLen}-byte key`);
    }
    this.method = method.toLowerCase();
    this.info = info;
    this.key = rawKey ?? evpBytesToKey(password, info.keyLen);
  }

  get saltLen(): number {
    return this.info.keyLen;
  }

  /** An AEAD context for one direction of one connection (or one UDP packet). */
  session(salt: Uint8Array): AeadSession {
    const sub = new Uint8Array(
      crypto.hkdfSync("sha1", this.key, salt, "ss-subkey", this.info.keyLen),
    );
    return new AeadSession(this.info.alg, sub);
  }
}

/** Seals/opens with an incrementing nonce. */
export class AeadSession {
  readonly #alg: string;
  readonly #key: Buffer;
  readonly #nonce = Buffer.alloc(12);

  constructor(alg: string, key: Uint8Array) {
    this.#alg = alg;
    this.#key = Buffer.from(key);
  }

  #inc(): void {
    for (let i = 0; i < 12; i++) {
      this.#nonce[i] = (this.#nonce[i]! + 1) & 0xff;
      if (this.#nonce[i] !== 0) break;
    }
  }

  /** ciphertext ‖ tag, written into `out` at `off`; returns the end offset. */
  seal(plain: Uint8Array, out: Uint8Array, off: number): number {
    const c = crypto.createCipheriv(
      this.#alg as "aes-128-gcm",
      this.#key,
      this.#nonce,
      { authTagLength: TAG },
    );
    const ct = c.update(plain);
    c.final();
    out.set(ct, off);
    out.set(c.getAuthTag(), off + ct.length);
    this.#inc();
    return off + ct.length + TAG;
  }

  /** Opens ciphertext ‖ tag; throws AuthError on a bad tag (wrong password, tampering). */
  open(sealed: Uint8Array): Uint8Array {
    const d = crypto.createDecipheriv(
      this.#alg as "aes-128-gcm",
      this.#key,
      this.#nonce,
      { authTagLength: TAG },
    );
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const pt = d.update(sealed.subarray(0, sealed.length - TAG));
    try {
      d.final();
    } catch {
      throw new AuthError("ss: authentication failed (wrong password or corrupted data)");
    }
    this.#inc();
    return new Uint8Array(pt.buffer, pt.byteOffset, pt.length);
  }
}

/** Builds the cipher for `method`/`password`; `null` for GOST's plain (no method) mode. */
export function ssCipher(
  method: string | undefined,
  password: string | undefined,
  rawKey?: Uint8Array,
): SsCipher | null {
  if (!method || ["none", "plain", "dummy"].includes(method.toLowerCase())) return null;
  return new SsCipher(method, password ?? "", rawKey);
}

/** Seals one datagram: `salt ‖ AEAD(plain) ‖ tag` with a fresh salt and nonce zero (SIP004 UDP). */
export function sealDatagram(c: SsCipher, plain: Uint8Array): Uint8Array {
  const salt = crypto.getRandomValues(new Uint8Array(c.saltLen));
  const out = new Uint8Array(salt.length + plain.length + TAG);
  out.set(salt);
  c.session(salt).seal(plain, out, salt.length);
  return out;
}

/** Opens one sealed datagram; throws AuthError on a bad tag, ProtocolError when too short. */
export function openDatagram(c: SsCipher, pkt: Uint8Array): Uint8Array {
  if (pkt.length < c.saltLen + TAG) throw new ProtocolError("ss: short packet");
  return c.session(pkt.subarray(0, c.saltLen)).open(pkt.subarray(c.saltLen));
}
