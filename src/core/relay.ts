/**
 * `relay(a, b)`: copies bytes both ways until both directions end.
 *
 * End of stream on one side half-closes the other (`closeWrite`), so request/response
 * protocols that rely on half-close work through a tunnel. An error in either direction
 * closes both conns. The copy loop reuses one buffer per direction (no per-chunk allocation),
 * grown for bulk transfers.
 * @module
 */
import type { Conn } from "./conn.ts";

/** Bytes moved by {@link relay}. */
export interface RelayResult {
  /** Bytes read from `a` and written to `b`. */
  aToB: number;
  /** Bytes read from `b` and written to `a`. */
  bToA: number;
  /** The first error that ended the relay, if any. */
  error?: unknown;
}

/** Options of {@link relay}. */
export interface RelayOptions {
  /** Largest copy buffer per direction. Default 256 KiB. */
  bufferSize?: number;
  /** Aborting closes both conns. */
  signal?: AbortSignal;
  /** Close both conns when no byte moved for this long (ms). 0 = never. */
  idleTimeout?: number;
}

/**
 * Buffers start small (idle and interactive conns are the many) and grow for bulk transfers:
 * a pending read pins its buffer, so 1 KiB instead of 4 saves 6 KiB per idle tunnel
 * (docs/performance.md), and four full reads per step reach 256 KiB within ~16 reads.
 */
const START_BUFFER = 1024;
const MAX_BUFFER = 256 * 1024;
/** Datagram conns need room for any datagram from the first read. */
const DATAGRAM_BUFFER = 64 * 1024;
/** Reads that fill the buffer, in a row, before it grows. */
const GROW_AFTER = 4;

/**
 * Copies `src` to `dst` until EOF, then half-closes `dst`. Returns the byte count.
 * The buffer is reused; it grows ×4 (up to `max`) after reads keep filling it: 64 KiB chunks
 * held a forward hop to ~1.5 GB/s here, 256 KiB ones reach ~2.2.
 */
export async function copy(
  src: Conn,
  dst: Conn,
  buf: Uint8Array = new Uint8Array(START_BUFFER),
  onProgress?: () => void,
  max = MAX_BUFFER,
): Promise<number> {
  let total = 0;
  let full = 0;
  for (;;) {
    const n = await src.read(buf);
    if (n === null) break;
    if (n === 0) continue;
    await dst.write(n === buf.length ? buf : buf.subarray(0, n));
    total += n;
    onProgress?.();
    // A reader that hands over whole records (WebSocket frames out of a read-ahead) rarely fills
    // the buffer to the byte: a read of at least half of it counts as full, or the buffer would
    // stay small and every read-ahead cost four writes (profile: docs/performance.md).
    if (n < buf.length >>> 1) full = 0;
    else if (++full >= GROW_AFTER && buf.length < max) {
      buf = new Uint8Array(Math.min(max, buf.length * 4));
      full = 0;
    }
  }
  await dst.closeWrite();
  return total;
}

/** Relays `a` ⇄ `b`; resolves when both directions are done and both conns are closed. */
export async function relay(a: Conn, b: Conn, opts: RelayOptions = {}): Promise<RelayResult> {
  const max = opts.bufferSize ?? MAX_BUFFER;
  const datagram = a.datagram || b.datagram;
  // Any datagram fits in 64 KiB; more would only be held per session (UDP sessions are many).
  const first = datagram ? DATAGRAM_BUFFER : Math.min(START_BUFFER, max);
  const result: RelayResult = { aToB: 0, bToA: 0 };
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    a.close();
    b.close();
  };
  const onAbort = () => closeBoth();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) closeBoth();

  let last = Date.now();
  let timer: ReturnType<typeof setInterval> | undefined;
  const idle = opts.idleTimeout ?? 0;
  const touch = idle > 0 ? () => void (last = Date.now()) : undefined;
  if (idle > 0) {
    timer = setInterval(() => {
      if (Date.now() - last >= idle) closeBoth();
    }, Math.min(idle, 1000));
  }

  const fail = (e: unknown) => {
    result.error ??= e;
    closeBoth();
  };
  // Datagram conns have no half-close: when one direction ends, the association is over.
  const ended = datagram ? closeBoth : () => {};
  try {
    await Promise.all([
      copy(a, b, new Uint8Array(first), touch, max).then((n) => void (result.aToB = n), fail)
        .finally(ended),
      copy(b, a, new Uint8Array(first), touch, max).then((n) => void (result.bToA = n), fail)
        .finally(ended),
    ]);
  } finally {
    if (timer !== undefined) clearInterval(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    closeBoth();
  }
  return result;
}
