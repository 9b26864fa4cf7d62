/**
 * The byte-carrier contract every layer shares.
 *
 * A {@link Conn} is Deno-shaped (`readable`/`writable` Web Streams, addresses, `close`) and also
 * offers Go-style `read`/`write`/`closeWrite`, which the hot copy path uses: a read/write loop
 * with one reused buffer moves about twice the bytes of `readable.pipeTo(writable)` here.
 * TCP, TLS, WebSocket, smux streams, KCP sessions and bundle streams all implement it, so layers
 * stack by wrapping.
 * @module
 */
import { ProtocolError } from "./errors.ts";

/** An endpoint address. `transport` is informative ("tcp", "udp", "smux", "ws", ...). */
export interface NetAddr {
  /** What carries it: "tcp", "udp", "smux", "ws", ... */
  transport: string;
  /** IP address or host name. */
  hostname: string;
  /** Port number. */
  port: number;
}

/** The minimal duplex shape: the shape of `Deno.Conn`. */
export interface Duplex {
  /** Incoming bytes as a Web stream. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Outgoing bytes as a Web stream; closing it half-closes. */
  readonly writable: WritableStream<Uint8Array>;
  /** This end's address. */
  readonly localAddr: NetAddr;
  /** The peer's address. */
  readonly remoteAddr: NetAddr;
  /** Tears down both directions; idempotent; never throws. */
  close(): void;
}

/** A duplex with direct reads and writes. */
export interface Conn extends Duplex {
  /** Reads into `p`; resolves the byte count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /**
   * Writes all of `p` (never a short write). The caller may reuse `p` once this resolves.
   * For datagram conns one write is one datagram.
   */
  write(p: Uint8Array): Promise<number>;
  /** Half-close: the peer reads end of stream; reading here goes on. */
  closeWrite(): Promise<void>;
  /** True when each read/write carries one whole message (UDP-like). */
  readonly datagram?: boolean;
  /**
   * Optional: resolves once a read would not wait (bytes, end of stream or an error are there),
   * so a reader of a quiet conn can wait without lending it a buffer: what {@link copy} does,
   * and 1 KiB less per idle tunnel and side (docs/performance.md). Conns whose data arrives as
   * queued chunks (mux streams) have it.
   */
  waitReadable?(): Promise<void>;
  /**
   * Optional, for conns that put a header in front of each write (WebSocket): how many bytes a
   * caller may leave free at the start of what it passes to {@link writeInPlace}, so the header
   * goes there and the payload is not copied into a frame buffer of the conn's own (a bulk copy
   * per write; docs/performance.md). A conn with `writeRoom > 0` has `writeInPlace`.
   */
  readonly writeRoom?: number;
  /**
   * Writes `p.subarray(writeRoom)` as `write` would, and may overwrite the first `writeRoom`
   * bytes of `p` and change the rest in place (masking) on the way. Resolves the payload's
   * length. The caller may reuse `p` once this resolves.
   */
  writeInPlace?(p: Uint8Array): Promise<number>;
  /**
   * Optional: the largest buffer a relay should move through this conn in one read or write.
   * A KCP session says 64 KiB and its mux streams inherit it: 256 KiB relay chunks into and out
   * of KCP streams raised a kcp server's peak RSS by ~40 MiB for no speed (docs/performance.md).
   * Wrappers pass it through.
   */
  readonly maxChunk?: number;
}

/** An unspecified address, for conns that have none (pipes, in-memory). */
export const NO_ADDR: NetAddr = Object.freeze({ transport: "none", hostname: "", port: 0 });

/**
 * Base class: implement `read`, `write`, `closeWrite`, `close` and get the Web Streams
 * lazily. Use either the streams or `read`/`write` for one direction, not both at once.
 */
export abstract class ConnBase implements Conn {
  /** This end's address. */
  abstract readonly localAddr: NetAddr;
  /** The peer's address. */
  abstract readonly remoteAddr: NetAddr;
  abstract read(p: Uint8Array): Promise<number | null>;
  abstract write(p: Uint8Array): Promise<number>;
  abstract closeWrite(): Promise<void>;
  abstract close(): void;
  #readable?: ReadableStream<Uint8Array>;
  #writable?: WritableStream<Uint8Array>;

  /** A Web stream over `read`, made on first use. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= readableFromConn(this);
  }

  /** A Web stream over `write` (closing it calls `closeWrite`), made on first use. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= writableFromConn(this);
  }
}

const STREAM_CHUNK = 32 * 1024;

/** A ReadableStream pulling from `conn.read`. Cancel closes the conn. */
export function readableFromConn(conn: Conn): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      const buf = new Uint8Array(STREAM_CHUNK);
      const n = await conn.read(buf);
      if (n === null) ctrl.close();
      else ctrl.enqueue(buf.subarray(0, n));
    },
    cancel() {
      conn.close();
    },
  }, { highWaterMark: 0 });
}

/** A WritableStream pushing into `conn.write`; closing it half-closes the conn. */
export function writableFromConn(conn: Conn): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      await conn.write(chunk);
    },
    async close() {
      await conn.closeWrite();
    },
    abort() {
      conn.close();
    },
  });
}

/**
 * Adapts any {@link Duplex} to a {@link Conn}. A value that already is a Conn is returned
 * as is. Reads keep the leftover of a chunk larger than the caller's buffer.
 */
export function toConn(d: Duplex): Conn {
  if (isConn(d)) return d;
  return new StreamConn(d);
}

/** True when `d` has the direct read/write methods. */
export function isConn(d: Duplex): d is Conn {
  const c = d as Partial<Conn>;
  return typeof c.read === "function" && typeof c.write === "function" &&
    typeof c.closeWrite === "function";
}

class StreamConn extends ConnBase {
  #d: Duplex;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #writer?: WritableStreamDefaultWriter<Uint8Array>;
  #left: Uint8Array | null = null;

  constructor(d: Duplex) {
    super();
    this.#d = d;
  }
  get localAddr(): NetAddr {
    return this.#d.localAddr;
  }
  get remoteAddr(): NetAddr {
    return this.#d.remoteAddr;
  }
  override get readable(): ReadableStream<Uint8Array> {
    return this.#reader ? super.readable : this.#d.readable;
  }
  override get writable(): WritableStream<Uint8Array> {
    return this.#writer ? super.writable : this.#d.writable;
  }
  async read(p: Uint8Array): Promise<number | null> {
    let chunk = this.#left;
    this.#left = null;
    while (!chunk || chunk.length === 0) {
      this.#reader ??= this.#d.readable.getReader();
      const r = await this.#reader.read();
      if (r.done) return null;
      chunk = r.value;
    }
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#left = chunk.subarray(n);
    return n;
  }
  async write(p: Uint8Array): Promise<number> {
    this.#writer ??= this.#d.writable.getWriter();
    // Streams may hold the chunk after write resolves: hand over a copy.
    await this.#writer.write(p.slice());
    return p.length;
  }
  async closeWrite(): Promise<void> {
    this.#writer ??= this.#d.writable.getWriter();
    await this.#writer.close().catch(() => {});
  }
  close(): void {
    try {
      this.#d.close();
    } catch { /* already closed */ }
  }
}

/**
 * A layer over one inner conn (framing, encryption, compression): addresses, half-close and
 * close pass through; subclasses override `read`/`write` (by default they pass through too).
 */
export abstract class WrappedConn extends ConnBase {
  /** The conn underneath. */
  readonly inner: Conn;

  /** Wraps `inner`. */
  constructor(inner: Conn) {
    super();
    this.inner = inner;
  }
  /** The inner conn's local address. */
  get localAddr(): NetAddr {
    return this.inner.localAddr;
  }
  /** The inner conn's remote address. */
  get remoteAddr(): NetAddr {
    return this.inner.remoteAddr;
  }
  /** The inner conn's {@link Conn.maxChunk} (a getter: no field per conn). */
  get maxChunk(): number | undefined {
    return this.inner.maxChunk;
  }
  /** Reads from the inner conn. */
  read(p: Uint8Array): Promise<number | null> {
    return this.inner.read(p);
  }
  /** Writes to the inner conn. */
  write(p: Uint8Array): Promise<number> {
    return this.inner.write(p);
  }
  /** Half-closes the inner conn. */
  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }
  /** Closes the inner conn. */
  close(): void {
    this.inner.close();
  }
}

/**
 * A Conn that first replays bytes already read (a peeked prefix), then reads from `inner`.
 * Handlers that sniff a protocol use it to hand the connection on without losing bytes.
 */
export class PrefixedConn extends WrappedConn {
  #prefix: Uint8Array | null;

  constructor(inner: Conn, prefix: Uint8Array) {
    super(inner);
    this.#prefix = prefix.length > 0 ? prefix : null;
  }
  get datagram(): boolean | undefined {
    return this.inner.datagram;
  }
  override read(p: Uint8Array): Promise<number | null> {
    const pre = this.#prefix;
    if (pre) {
      const n = Math.min(pre.length, p.length);
      p.set(pre.subarray(0, n));
      this.#prefix = n < pre.length ? pre.subarray(n) : null;
      return Promise.resolve(n);
    }
    return this.inner.read(p);
  }
}

/** Reads exactly `p.length` bytes; throws `UnexpectedEof` if the stream ends first. */
export async function readFull(conn: Conn, p: Uint8Array): Promise<Uint8Array> {
  let off = 0;
  while (off < p.length) {
    const n = await conn.read(p.subarray(off));
    if (n === null) throw new UnexpectedEofError(off, p.length);
    off += n;
  }
  return p;
}

/** Reads exactly `n` bytes into a new buffer. */
export function readN(conn: Conn, n: number): Promise<Uint8Array> {
  return readFull(conn, new Uint8Array(n));
}

/** The stream ended in the middle of a structure. */
/** A message cut short by the end of the stream: a protocol error of the peer. */
export class UnexpectedEofError extends ProtocolError {
  constructor(got: number, want: number) {
    super(`unexpected end of stream (${got} of ${want} bytes)`);
    this.name = "UnexpectedEofError";
  }
}

/** Formats an address as `host:port` (IPv6 in brackets). */
export function formatAddr(a: NetAddr): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/**
 * The first value under `key` on `conn` or on the conns it wraps (their `inner`, 8 deep): how a
 * handler finds what its listener attached to a conn (an SSH request, a tun device) after the
 * service wrapped it for stats and limits.
 * @internal
 */
export function attachedTo<T>(conn: Conn, key: string): T | undefined {
  let c: unknown = conn;
  for (let i = 0; i < 8 && c; i++) {
    const v = (c as Record<string, unknown>)[key];
    if (v !== undefined) return v as T;
    c = (c as { inner?: unknown }).inner;
  }
  return undefined;
}
