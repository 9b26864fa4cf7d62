/**
 * Shadowsocks AEAD (SIP004): EVP_BytesToKey(MD5) master key, HKDF-SHA1 per-salt subkeys
 * ("ss-subkey"), 12-byte little-endian counter nonces, 16-byte tags. Method "" (or "none",
 * "plain") means no encryption, as GOST does for `ss://` without userinfo.
 * @module
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { AuthError, ProtocolError, UnsupportedError } from "../core/errors.ts";
import {
  CTRL_AEAD_GET_TAG,
  CTRL_AEAD_SET_TAG,
  type LibCrypto,
  libcrypto,
} from "../core/libcrypto.ts";

export const TAG = 16;
export const MAX_PAYLOAD = 0x3fff;

/** The AEAD algorithms Shadowsocks uses, by their OpenSSL / node:crypto names. */
export type AeadAlg = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";

interface MethodInfo {
  alg: AeadAlg;
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

  /** Where sessions run: OpenSSL when usable ("auto"), or one of them (tests compare them). */
  readonly backend: AeadBackend;

  /** `rawKey`, when given, is the master key itself (go-shadowsocks2's `key`), not derived. */
  constructor(
    method: string,
    password: string,
    rawKey?: Uint8Array,
    backend: AeadBackend = "auto",
  ) {
    this.backend = backend;
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
    return aeadSession(this.info.alg, sub, this.backend);
  }
}

/** Where AEAD sessions run: the system's OpenSSL when usable, or a given one. */
export type AeadBackend = "auto" | "native" | "node";

/** Seals and opens the chunks of one direction, with an incrementing nonce. */
export interface AeadSession {
  /** ciphertext ‖ tag of `plain`, written into `out` at `off`; returns the end offset. */
  seal(plain: Uint8Array, out: Uint8Array, off: number): number;
  /** Opens ciphertext ‖ tag; throws AuthError on a bad tag (wrong password, tampering). */
  open(sealed: Uint8Array): Uint8Array;
  /**
   * {@link open} into `out` at `off`, which may be where `sealed` is or before it in the same
   * buffer (a reader opening chunks in place). Returns the plaintext's length.
   */
  openTo(sealed: Uint8Array, out: Uint8Array, off: number): number;
}

/**
 * A session for `alg` and its subkey: on the system's OpenSSL when it can be used here (several
 * times the speed of Deno's built-in AES-GCM, and no objects per chunk; docs/performance.md,
 * "Shadowsocks"), else on `node:crypto`. `backend` picks one (tests compare them).
 */
export function aeadSession(
  alg: AeadAlg,
  key: Uint8Array,
  backend: AeadBackend = "auto",
): AeadSession {
  if (backend !== "node") {
    const n = nativeCipher(alg);
    if (n) return new NativeAead(n, key);
    if (backend === "native") throw new UnsupportedError("ss: OpenSSL is not usable here");
  }
  return new NodeAead(alg, key);
}

/** Increments a 12-byte little-endian nonce. */
function increment(nonce: Uint8Array): void {
  for (let i = 0; i < 12; i++) {
    nonce[i] = (nonce[i]! + 1) & 0xff;
    if (nonce[i] !== 0) break;
  }
}

const AUTH_FAILED = "ss: authentication failed (wrong password or corrupted data)";

/** `node:crypto`: a cipher object per chunk. */
class NodeAead implements AeadSession {
  readonly #alg: string;
  readonly #key: Buffer;
  readonly #nonce = Buffer.alloc(12);

  constructor(alg: string, key: Uint8Array) {
    this.#alg = alg;
    this.#key = Buffer.from(key);
  }

  seal(plain: Uint8Array, out: Uint8Array, off: number): number {
    const c = crypto.createCipheriv(
      this.#alg as "aes-128-gcm",
      this.#key,
      this.#nonce,
      { authTagLength: TAG },
    );
    // The nonce is spent before anything can fail: a retried seal never reuses it.
    increment(this.#nonce);
    const ct = c.update(plain);
    c.final();
    out.set(ct, off);
    out.set(c.getAuthTag(), off + ct.length);
    return off + ct.length + TAG;
  }

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
      throw new AuthError(AUTH_FAILED);
    }
    increment(this.#nonce);
    return new Uint8Array(pt.buffer, pt.byteOffset, pt.length);
  }

  openTo(sealed: Uint8Array, out: Uint8Array, off: number): number {
    const pt = this.open(sealed);
    out.set(pt, off);
    return pt.length;
  }
}

/** An OpenSSL cipher and the one context every session of it shares (calls are synchronous). */
interface Native {
  readonly lib: LibCrypto;
  readonly cipher: Deno.PointerValue;
  readonly ctx: Deno.PointerValue;
  readonly keyLen: number;
}

const natives = new Map<AeadAlg, Native | null>();

/** The self-checked OpenSSL cipher for `alg`, or null. */
function nativeCipher(alg: AeadAlg): Native | null {
  if (natives.has(alg)) return natives.get(alg)!;
  let n: Native | null = null;
  const lib = libcrypto();
  if (lib) {
    const cipher = alg === "aes-128-gcm"
      ? lib.EVP_aes_128_gcm()
      : alg === "aes-256-gcm"
      ? lib.EVP_aes_256_gcm()
      : lib.EVP_chacha20_poly1305();
    // One context for the process (not freed): each chunk re-keys it, so sessions hold none.
    const ctx = lib.EVP_CIPHER_CTX_new();
    if (cipher && ctx) n = { lib, cipher, ctx, keyLen: alg === "aes-128-gcm" ? 16 : 32 };
  }
  natives.set(alg, n);
  if (n && !agrees(alg)) natives.set(alg, n = null);
  return n;
}

/** The native cipher seals what node:crypto seals, opens it in place, and refuses a bad tag. */
function agrees(alg: AeadAlg): boolean {
  try {
    const key = new Uint8Array(alg === "aes-128-gcm" ? 16 : 32).map((_, i) => i * 7 + 1);
    const plain = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
    const differs = (x: Uint8Array, y: Uint8Array) => x.some((v, i) => v !== y[i]);
    const na = aeadSession(alg, key, "native"), no = aeadSession(alg, key, "node");
    const a = new Uint8Array(plain.length + TAG), b = new Uint8Array(plain.length + TAG);
    const first = new Uint8Array(plain.length + TAG);
    for (let i = 0; i < 2; i++) {
      // Two chunks each: the nonces advance alike.
      na.seal(plain, a, 0);
      no.seal(plain, b, 0);
      if (differs(a, b)) return false;
      if (i === 0) first.set(a);
    }
    const opener = aeadSession(alg, key, "native");
    if (opener.openTo(first, first, 0) !== plain.length) return false;
    if (differs(first.subarray(0, plain.length), plain)) return false;
    const bad = a.slice(); // the second chunk, for the opener's second nonce
    bad[5]! ^= 1;
    try {
      opener.open(bad);
      return false;
    } catch (e) {
      if (!(e instanceof AuthError)) return false;
    }
    return !differs(opener.open(a), plain);
  } catch {
    return false;
  }
}

/** OpenSSL's EVP AEAD: no allocation per chunk; opens in place. */
class NativeAead implements AeadSession {
  readonly #n: Native;
  readonly #key: Uint8Array;
  /** Chunks done: the nonce, written out per call (a number, not a buffer per session). */
  #count = 0;

  constructor(n: Native, key: Uint8Array) {
    // OpenSSL reads the cipher's key length from the pointer, whatever the array holds.
    if (key.length !== n.keyLen) {
      throw new RangeError(`ss: a ${n.keyLen}-byte key is needed, got ${key.length}`);
    }
    this.#n = n;
    this.#key = key.slice();
  }

  /** The 12-byte little-endian nonce for the next chunk, in the shared scratch. */
  #nonce(): Uint8Array {
    let c = this.#count;
    for (let i = 0; i < 12; i++) {
      NONCE[i] = c % 256;
      c = Math.floor(c / 256);
    }
    return NONCE;
  }

  seal(plain: Uint8Array, out: Uint8Array, off: number): number {
    const { lib, cipher, ctx } = this.#n;
    const n = plain.length;
    // OpenSSL is told lengths, not views: a short `out` must fail here, not be written past.
    if (off < 0 || off + n + TAG > out.length) throw new RangeError("ss: seal: output too small");
    const nonce = this.#nonce();
    this.#count++; // spent before anything can fail: a retried seal never reuses it
    if (lib.EVP_CipherInit_ex(ctx, cipher, null, this.#key, nonce, 1) !== 1) {
      throw new Error("openssl: cipher init failed");
    }
    if (n > 0 && lib.EVP_CipherUpdate(ctx, out.subarray(off, off + n), OUTL, plain, n) !== 1) {
      throw new Error("openssl: seal failed");
    }
    const tag = out.subarray(off + n, off + n + TAG);
    if (
      lib.EVP_CipherFinal_ex(ctx, SCRATCH, OUTL) !== 1 ||
      lib.EVP_CIPHER_CTX_ctrl(ctx, CTRL_AEAD_GET_TAG, TAG, tag) !== 1
    ) throw new Error("openssl: seal failed");
    return off + n + TAG;
  }

  open(sealed: Uint8Array): Uint8Array {
    if (sealed.length < TAG) throw new AuthError(AUTH_FAILED);
    const out = new Uint8Array(sealed.length - TAG);
    this.openTo(sealed, out, 0);
    return out;
  }

  openTo(sealed: Uint8Array, out: Uint8Array, off: number): number {
    const n = sealed.length - TAG;
    if (n < 0) throw new AuthError(AUTH_FAILED);
    if (off < 0 || off + n > out.length) throw new RangeError("ss: open: output too small");
    const { lib, cipher, ctx } = this.#n;
    // OpenSSL refuses partly overlapping buffers: a chunk behind its output is opened where it
    // is, then moved.
    const same = sealed.buffer === out.buffer;
    const at = sealed.byteOffset - out.byteOffset;
    if (same && (at < 0 || at + sealed.length > out.length)) {
      // (Another view of the same memory: through a copy.)
      const pt = this.open(sealed);
      out.set(pt, off);
      return n;
    }
    const dst = same && at !== off ? sealed.subarray(0, n) : out.subarray(off, off + n);
    if (
      lib.EVP_CipherInit_ex(ctx, cipher, null, this.#key, this.#nonce(), 0) !== 1 ||
      lib.EVP_CIPHER_CTX_ctrl(ctx, CTRL_AEAD_SET_TAG, TAG, sealed.subarray(n)) !== 1
    ) throw new Error("openssl: cipher init failed");
    if (n > 0 && lib.EVP_CipherUpdate(ctx, dst, OUTL, sealed.subarray(0, n), n) !== 1) {
      throw new AuthError(AUTH_FAILED);
    }
    if (lib.EVP_CipherFinal_ex(ctx, SCRATCH, OUTL) !== 1) throw new AuthError(AUTH_FAILED);
    this.#count++;
    if (dst.byteOffset !== out.byteOffset + off) out.copyWithin(off, at, at + n);
    return n;
  }
}

const OUTL = new Int32Array(1);
const SCRATCH = new Uint8Array(32);
const NONCE = new Uint8Array(12);

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
