/**
 * An in-memory connected pair of {@link Conn}s, with bounded buffering (back-pressure): a
 * writer waits while more than `capacity` bytes sit unread. For tests and for stacking
 * protocol engines without sockets.
 * @module
 */
import { ConnBase, type NetAddr } from "./conn.ts";
import { ClosedError } from "./errors.ts";

class Channel {
  chunks: Uint8Array[] = [];
  buffered = 0;
  eof = false;
  broken = false;
  readWaiter: (() => void) | null = null;
  writeWaiters: (() => void)[] = [];
  constructor(readonly capacity: number) {}

  wakeReader(): void {
    const w = this.readWaiter;
    this.readWaiter = null;
    w?.();
  }
  wakeWriters(): void {
    const ws = this.writeWaiters;
    this.writeWaiters = [];
    for (const w of ws) w();
  }
}

class PipeConn extends ConnBase {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly #in: Channel;
  readonly #out: Channel;
  readonly datagram: boolean;

  constructor(inCh: Channel, outCh: Channel, local: NetAddr, remote: NetAddr, datagram: boolean) {
    super();
    this.#in = inCh;
    this.#out = outCh;
    this.localAddr = local;
    this.remoteAddr = remote;
    this.datagram = datagram;
  }

  async read(p: Uint8Array): Promise<number | null> {
    const ch = this.#in;
    while (ch.chunks.length === 0) {
      if (ch.eof || ch.broken) return null;
      await new Promise<void>((r) => (ch.readWaiter = r));
    }
    const head = ch.chunks[0]!;
    const n = Math.min(p.length, head.length);
    p.set(head.subarray(0, n));
    if (n === head.length || this.datagram) ch.chunks.shift();
    else ch.chunks[0] = head.subarray(n);
    ch.buffered -= this.datagram ? head.length : n;
    ch.wakeWriters();
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    const ch = this.#out;
    while (ch.buffered >= ch.capacity && !ch.broken && !ch.eof) {
      await new Promise<void>((r) => ch.writeWaiters.push(r));
    }
    if (ch.broken || ch.eof) throw new ClosedError("pipe closed");
    ch.chunks.push(p.slice());
    ch.buffered += p.length;
    ch.wakeReader();
    return p.length;
  }

  closeWrite(): Promise<void> {
    this.#out.eof = true;
    this.#out.wakeReader();
    this.#out.wakeWriters();
    return Promise.resolve();
  }

  close(): void {
    for (const ch of [this.#in, this.#out]) {
      ch.broken = true;
      ch.wakeReader();
      ch.wakeWriters();
    }
    this.#in.chunks = [];
  }
}

/** Options for {@link pipe}. */
export interface PipeOptions {
  /** Unread bytes allowed per direction before writes wait. Default 256 KiB. */
  capacity?: number;
  /** Message mode: each write is read back whole by one read (like UDP). */
  datagram?: boolean;
}

/** Two connected conns: bytes written to one are read from the other. */
export function pipe(opts: PipeOptions = {}): [ConnBase, ConnBase] {
  const cap = opts.capacity ?? 256 * 1024;
  const ab = new Channel(cap);
  const ba = new Channel(cap);
  const a: NetAddr = { transport: "pipe", hostname: "a", port: 1 };
  const b: NetAddr = { transport: "pipe", hostname: "b", port: 2 };
  const dg = opts.datagram ?? false;
  return [new PipeConn(ba, ab, a, b, dg), new PipeConn(ab, ba, b, a, dg)];
}
