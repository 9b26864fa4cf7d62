/**
 * UDP relaying for SOCKS5 (UDP ASSOCIATE, GOST's UDP-over-TCP 0xF3) and relay/http UDP:
 * the UDP-over-TCP frame codec (docs/gost-proxies.md §4.4) and an association that keeps one upstream
 * datagram conn per destination, dialed through the router.
 * @module
 */
import { type Conn, WrappedConn } from "../core/conn.ts";
import type { BufReader } from "../core/bufio.ts";
import type { Logger } from "../core/log.ts";
import type { Router } from "../core/types.ts";
import { encodeUdpFrame, readUdpFrame } from "../protocol/udp_frame.ts";

/** Upstream datagram conns per destination, replies delivered to `onReply`. */
export class UdpAssociation {
  readonly #router: Router;
  readonly #log: Logger;
  readonly #onReply: (from: string, data: Uint8Array) => Promise<void> | void;
  readonly #ups = new Map<string, Promise<Conn>>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #max: number;
  #closed = false;

  constructor(
    router: Router,
    log: Logger,
    onReply: (from: string, data: Uint8Array) => Promise<void> | void,
    maxDestinations = 256,
  ) {
    this.#router = router;
    this.#log = log;
    this.#onReply = onReply;
    this.#max = maxDestinations;
  }

  /** Sends `data` to `dst`, dialing an upstream for it on first use. */
  async send(dst: string, data: Uint8Array): Promise<void> {
    if (this.#closed) return;
    let up = this.#ups.get(dst);
    if (!up) {
      if (this.#ups.size >= this.#max) {
        this.#log.warn("udp association: too many destinations, datagram dropped", { dst });
        return;
      }
      up = this.#router.dial("udp", dst);
      this.#ups.set(dst, up);
      up.then((c) => this.#pump(dst, c), () => this.#ups.delete(dst));
    }
    let conn: Conn;
    try {
      conn = await up;
    } catch (e) {
      this.#log.warn(`udp association: dial ${dst}: ${e instanceof Error ? e.message : e}`);
      return;
    }
    await conn.write(data).catch(() => {});
  }

  #pump(dst: string, c: Conn): void {
    const t = (async () => {
      const buf = new Uint8Array(65536);
      try {
        for (;;) {
          const n = await c.read(buf);
          if (n === null) break;
          await this.#onReply(dst, buf.slice(0, n));
        }
      } catch {
        /* upstream closed */
      } finally {
        c.close();
        this.#ups.delete(dst);
      }
    })();
    this.#tasks.add(t);
    t.finally(() => this.#tasks.delete(t));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const ups = [...this.#ups.values()];
    this.#ups.clear();
    for (const p of ups) p.then((c) => c.close(), () => {});
    await Promise.allSettled(ups);
    await Promise.all(this.#tasks);
  }
}

/**
 * A datagram conn to one destination carried as UDP-over-TCP frames on a stream (the client
 * side of socks5 0xF3 and relay UDP association).
 */
export class FramedUdpConn extends WrappedConn {
  readonly datagram = true;
  readonly #br: BufReader;
  readonly #dst: string;

  constructor(stream: Conn, br: BufReader, dst: string) {
    super(stream);
    this.#br = br;
    this.#dst = dst;
  }
  override async read(p: Uint8Array): Promise<number | null> {
    const f = await readUdpFrame(this.#br);
    if (!f) return null;
    const n = Math.min(p.length, f.data.length);
    p.set(f.data.subarray(0, n));
    return n;
  }
  override async write(p: Uint8Array): Promise<number> {
    await this.inner.write(encodeUdpFrame(this.#dst, p));
    return p.length;
  }
  /** Datagrams have no half-close. */
  override closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Serves UDP-over-TCP frames on an established stream until it ends: each frame goes to its
 * destination through the router; replies come back framed with their source.
 */
export async function serveUdpOverTcp(
  br: BufReader,
  conn: Conn,
  router: Router,
  log: Logger,
): Promise<void> {
  let writing = Promise.resolve();
  const assoc = new UdpAssociation(router, log, (from, data) => {
    writing = writing.then(() => conn.write(encodeUdpFrame(from, data)).then(() => {}), () => {});
    return writing;
  });
  try {
    for (;;) {
      const f = await readUdpFrame(br);
      if (!f) break;
      await assoc.send(f.addr, f.data);
    }
  } catch (e) {
    if (!(e instanceof Error && e.name === "UnexpectedEofError")) throw e;
  } finally {
    await assoc.close();
  }
}
