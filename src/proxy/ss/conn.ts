/**
 * A Shadowsocks AEAD stream (SIP004) over a Conn: `salt ‖ {len(2)+tag}{payload+tag}...` per
 * direction, payload at most 0x3FFF bytes a chunk.
 * @module
 */
import { type Conn, readFull, UnexpectedEofError, WrappedConn } from "../../core/conn.ts";
import { ProtocolError } from "../../core/errors.ts";
import { type AeadSession, MAX_PAYLOAD, type SsCipher, TAG } from "../../protocol/ss_aead.ts";

/** Salts seen recently by this process (replay protection, bounded). */
export class SaltFilter {
  readonly #seen = new Set<string>();
  readonly #order: string[] = [];
  constructor(readonly max = 65536) {}
  /** False if the salt was already used. */
  add(salt: Uint8Array): boolean {
    const k = Array.from(salt, (b) => b.toString(16).padStart(2, "0")).join("");
    if (this.#seen.has(k)) return false;
    this.#seen.add(k);
    this.#order.push(k);
    if (this.#order.length > this.max) this.#seen.delete(this.#order.shift()!);
    return true;
  }
}

export class SsConn extends WrappedConn {
  readonly #cipher: SsCipher;
  readonly #filter?: SaltFilter;
  #enc?: AeadSession;
  #dec?: AeadSession;
  #out: Uint8Array | null = null;
  #outOff = 0;
  /** Room for a few sealed chunks: one underlying write per 64 KiB written. */
  #wbuf = new Uint8Array(4 * (2 + TAG + MAX_PAYLOAD + TAG));

  constructor(inner: Conn, cipher: SsCipher, filter?: SaltFilter) {
    super(inner);
    this.#cipher = cipher;
    this.#filter = filter;
  }

  override async write(p: Uint8Array): Promise<number> {
    let off = 0;
    if (!this.#enc) {
      const salt = crypto.getRandomValues(new Uint8Array(this.#cipher.saltLen));
      this.#enc = this.#cipher.session(salt);
      await this.inner.write(salt);
    }
    const len = new Uint8Array(2);
    const chunkMax = 2 + TAG + MAX_PAYLOAD + TAG;
    let w = 0;
    do {
      const n = Math.min(MAX_PAYLOAD, p.length - off);
      len[0] = n >>> 8;
      len[1] = n & 0xff;
      w = this.#enc.seal(len, this.#wbuf, w);
      w = this.#enc.seal(p.subarray(off, off + n), this.#wbuf, w);
      off += n;
      if (w + chunkMax > this.#wbuf.length || off >= p.length) {
        await this.inner.write(this.#wbuf.subarray(0, w));
        w = 0;
      }
    } while (off < p.length);
    return p.length;
  }

  async #readChunk(): Promise<boolean> {
    if (!this.#dec) {
      const salt = new Uint8Array(this.#cipher.saltLen);
      const first = await this.inner.read(salt);
      if (first === null) return false;
      await readFull(this.inner, salt.subarray(first));
      if (this.#filter && !this.#filter.add(salt)) throw new ProtocolError("ss: replayed salt");
      this.#dec = this.#cipher.session(salt);
    }
    const lenBox = new Uint8Array(2 + TAG);
    const k = await this.inner.read(lenBox);
    if (k === null) return false;
    await readFull(this.inner, lenBox.subarray(k));
    const lenPlain = this.#dec.open(lenBox);
    const n = ((lenPlain[0]! << 8) | lenPlain[1]!) & MAX_PAYLOAD;
    const body = await readFull(this.inner, new Uint8Array(n + TAG));
    this.#out = this.#dec.open(body);
    this.#outOff = 0;
    return true;
  }

  override async read(p: Uint8Array): Promise<number | null> {
    while (!this.#out || this.#outOff >= this.#out.length) {
      try {
        if (!(await this.#readChunk())) return null;
      } catch (e) {
        if (e instanceof UnexpectedEofError) throw new ProtocolError("ss: truncated chunk");
        throw e;
      }
    }
    const n = Math.min(p.length, this.#out.length - this.#outOff);
    p.set(this.#out.subarray(this.#outOff, this.#outOff + n));
    this.#outOff += n;
    return n;
  }
}
