/**
 * Datagrams as `LEN(2, big-endian) | payload` on a stream: relay UDP CONNECT and GOST's UDP
 * tunnels carry one datagram conn per stream this way (docs/gost-proxies.md, docs/reverse.md).
 * @module
 */
import type { BufReader } from "../core/bufio.ts";
import { type Conn, UnexpectedEofError, WrappedConn } from "../core/conn.ts";
import { ProtocolError } from "../core/errors.ts";

/** A datagram conn over a stream; `br` reads the stream (it may hold bytes already). */
export class LengthFramedConn extends WrappedConn {
  readonly datagram = true;
  constructor(inner: Conn, readonly br: BufReader) {
    super(inner);
  }
  override async read(p: Uint8Array): Promise<number | null> {
    let n: number;
    try {
      n = await this.br.readU16();
    } catch (e) {
      if (e instanceof UnexpectedEofError) return null;
      throw e;
    }
    const d = await this.br.readN(n);
    const k = Math.min(n, p.length);
    p.set(d.subarray(0, k));
    return k;
  }
  override async write(p: Uint8Array): Promise<number> {
    if (p.length > 0xffff) throw new ProtocolError("datagram larger than 65535 bytes");
    const out = new Uint8Array(2 + p.length);
    out[0] = p.length >> 8;
    out[1] = p.length & 0xff;
    out.set(p, 2);
    await this.inner.write(out);
    return p.length;
  }
  override closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}
