/**
 * The kcp-go datagram envelope (docs/kcp.md §4): `nonce(16) ‖ crc32(4)` then the FEC header and
 * KCP bytes, all encrypted together; FEC framing and parity on the way out, CRC check and FEC
 * recovery on the way in.
 * @module
 */
import type { BlockCrypt } from "./crypt/mod.ts";
import { crc32 } from "../core/crc32.ts";
import { FEC_HEADER, FecDecoder, FecEncoder, FLAG_DATA, FLAG_PARITY } from "./fec.ts";

export const CRYPT_HEADER = 20;

export { crc32 };

/** Result of opening one datagram. */
export interface Opened {
  /** KCP bytes carried by the datagram itself (regular input), if any. */
  kcp?: Uint8Array;
  /** KCP bytes recovered from parity (non-regular input). */
  recovered: Uint8Array[];
}

export class Envelope {
  readonly crypt: BlockCrypt;
  readonly #enc?: FecEncoder;
  #dec?: FecDecoder;
  readonly #ds: number;
  readonly #ps: number;
  readonly #nonce = crypto.getRandomValues(new Uint32Array(4));
  readonly #nonceBytes = new Uint8Array(this.#nonce.buffer);
  /** Datagrams dropped for a bad checksum or shape. */
  dropped = 0;

  constructor(crypt: BlockCrypt, ds: number, ps: number) {
    this.crypt = crypt;
    this.#ds = ds;
    this.#ps = ps;
    if (ds > 0 && ps > 0) {
      this.#enc = new FecEncoder(ds, ps);
      this.#dec = new FecDecoder(ds, ps);
    }
  }

  /** Envelope bytes in front of the KCP bytes (counts against the mtu). */
  get overhead(): number {
    return CRYPT_HEADER + (this.#enc ? FEC_HEADER : 0);
  }

  get fecRecovered(): number {
    return this.#dec?.recovered ?? 0;
  }

  /** A datagram with `overhead` bytes of headroom in front of `kcp`, for {@link seal}. */
  frame(kcp: Uint8Array): Uint8Array {
    const d = new Uint8Array(this.overhead + kcp.length);
    d.set(kcp, this.overhead);
    return d;
  }

  /**
   * Seals, in place, a datagram whose KCP bytes follow `overhead` bytes of headroom (the KCP
   * engine reserves them); returns it and any parity datagrams, ready to send.
   */
  seal(d: Uint8Array): Uint8Array[] {
    const parity = this.#enc ? this.#enc.encodeInPlace(d, CRYPT_HEADER) : [];
    this.#finish(d);
    for (const p of parity) this.#finish(p);
    return parity.length === 0 ? [d] : [d, ...parity];
  }

  #finish(out: Uint8Array): void {
    // Nonce content only needs to be unique (salsa20 uses bytes 0..7): a counter on a random start.
    const n = this.#nonce;
    n[0] = (n[0]! + 1) >>> 0;
    if (n[0] === 0) n[1] = (n[1]! + 1) >>> 0;
    out.set(this.#nonceBytes, 0);
    const c = crc32(out, CRYPT_HEADER);
    out[16] = c, out[17] = c >>> 8, out[18] = c >>> 16, out[19] = c >>> 24;
    this.crypt.encrypt(out);
  }

  /** Opens one datagram in place; `null` if it fails the checksum or is malformed. */
  open(d: Uint8Array): Opened | null {
    if (d.length < CRYPT_HEADER + 4) {
      this.dropped++;
      return null;
    }
    this.crypt.decrypt(d);
    const sum = (d[16]! | (d[17]! << 8) | (d[18]! << 16) | (d[19]! << 24)) >>> 0;
    if (crc32(d, CRYPT_HEADER) !== sum) {
      this.dropped++;
      return null;
    }
    const p = d.subarray(CRYPT_HEADER);
    const flag = p.length >= FEC_HEADER ? p[4]! | (p[5]! << 8) : 0;
    if (flag === FLAG_DATA || flag === FLAG_PARITY) {
      // A peer may use FEC even if we do not; then parity is just ignored.
      const recovered = this.#dec ? this.#dec.decode(p) : [];
      if (flag === FLAG_DATA) return { kcp: p.subarray(FEC_HEADER), recovered };
      return { recovered };
    }
    return { kcp: p, recovered: [] };
  }

  /** FEC shard counts in use. */
  get fec(): [number, number] {
    return [this.#ds, this.#ps];
  }
}

/** The conv of a (opened) KCP or FEC data payload, if it has one. */
export function convOf(o: Opened): number | undefined {
  const k = o.kcp ?? o.recovered[0];
  if (!k || k.length < 24) return undefined;
  return (k[0]! | (k[1]! << 8) | (k[2]! << 16) | (k[3]! << 24)) >>> 0;
}

/** The sn field of the first KCP segment (0 ⇒ a fresh client may replace an old session). */
export function snOf(k: Uint8Array): number {
  return (k[12]! | (k[13]! << 8) | (k[14]! << 16) | (k[15]! << 24)) >>> 0;
}
