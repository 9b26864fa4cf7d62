/**
 * Bridges between Burrow's `Conn` and Node streams, for the ssh2 npm package: a Conn as the
 * Duplex ssh2 runs its protocol over, and an ssh2 channel (a Duplex) as a Conn. Backpressure
 * holds both ways: a channel is paused while its chunks wait for `read`, and a write waits for
 * `drain`. End of stream maps to `closeWrite` / EOF; errors close.
 * @module
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import { type Conn, ConnBase, type NetAddr } from "../../core/conn.ts";
import { ClosedError } from "../../core/errors.ts";
import { ChunkQueue } from "../../core/chunk_queue.ts";

/**
 * `conn` as a Node Duplex (what ssh2's `sock` option takes). The read loop does not stop when
 * `push` reports a full buffer: ssh2 consumes every chunk as it arrives (flowing mode), and SSH's
 * own channel windows bound what the peer may send; stopping here could leave a window update
 * unread while both sides wait on each other.
 */
export function conn2duplex(conn: Conn): Duplex {
  let reading = false;
  const d: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) {
              d.push(null);
              return;
            }
            d.push(Buffer.from(buf.subarray(0, n)));
          }
        } catch (e) {
          d.destroy(e as Error);
        }
      })();
    },
    write(chunk: Buffer, _enc, cb) {
      // A copy: ssh2 may reuse its packet buffer before an asynchronous write is done.
      conn.write(new Uint8Array(chunk)).then(
        () => cb(),
        (e) => cb(e),
      );
    },
    final(cb) {
      conn.closeWrite().then(() => cb(), () => cb());
    },
    destroy(_e, cb) {
      conn.close();
      cb(null);
    },
  });
  return d;
}

/** The parts of an ssh2 channel a Conn needs (a Node Duplex with `close`). */
export interface ChannelLike {
  on(ev: string, f: (...a: unknown[]) => void): unknown;
  write(b: Uint8Array): boolean;
  end(): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
  close?(): unknown;
  once(ev: string, f: (...a: unknown[]) => void): unknown;
  off(ev: string, f: (...a: unknown[]) => void): unknown;
}

/** Unread bytes a channel may hold before it is paused. */
const HIGH_WATER = 256 * 1024;

/** An ssh2 channel as a Conn. */
export class ChannelConn extends ConnBase {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly #ch: ChannelLike;
  readonly #rq = new ChunkQueue();
  #ended = false;
  #closed = false;
  #error?: Error;
  #paused = false;

  constructor(ch: ChannelLike, local: NetAddr, remote: NetAddr) {
    super();
    this.#ch = ch;
    this.localAddr = { ...local, transport: "ssh" };
    this.remoteAddr = { ...remote, transport: "ssh" };
    ch.on("data", (d) => {
      const b = d as Uint8Array;
      this.#rq.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice());
      if (this.#rq.bytes > HIGH_WATER && !this.#paused) {
        this.#paused = true;
        ch.pause();
      }
    });
    ch.on("end", () => {
      this.#ended = true;
      this.#rq.wake();
    });
    ch.on("close", () => {
      this.#ended = true;
      this.#closed = true;
      this.#rq.wake();
    });
    ch.on("error", (e) => {
      this.#error = e as Error;
      this.#ended = true;
      this.#rq.wake();
    });
  }

  async read(p: Uint8Array): Promise<number | null> {
    const n = await this.#rq.read(p, () => {
      if (this.#error && this.#rq.bytes === 0) throw this.#error;
      return this.#ended;
    });
    if (this.#paused && this.#rq.bytes < HIGH_WATER / 2) {
      this.#paused = false;
      this.#ch.resume();
    }
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw new ClosedError("ssh: channel closed");
    if (!this.#ch.write(p.slice())) {
      // Each listener goes when the other fires: a long transfer blocks here thousands of times,
      // and a "close" listener left per wait piled up for the channel's life.
      await new Promise<void>((r) => {
        const done = () => {
          this.#ch.off("drain", done);
          this.#ch.off("close", done);
          r();
        };
        this.#ch.once("drain", done);
        this.#ch.once("close", done);
      });
      // Closed while waiting for window: what was queued is lost, and the writer must know.
      if (this.#closed) throw new ClosedError("ssh: channel closed");
    }
    return p.length;
  }

  closeWrite(): Promise<void> {
    if (!this.#closed) this.#ch.end();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true; // a pending read ends now, not when (or if) the peer's CLOSE comes
    this.#rq.clear();
    try {
      if (this.#ch.close) this.#ch.close();
      else this.#ch.destroy();
    } catch { /* gone */ }
  }
}
