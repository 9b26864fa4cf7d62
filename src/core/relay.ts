/**
 * `relay(a, b)`: copies bytes both ways until both directions end.
 *
 * End of stream on one side half-closes the other (`closeWrite`), so request/response
 * protocols that rely on half-close work through a tunnel. An error in either direction
 * closes both conns. The copy loop reuses one buffer per direction (no per-chunk allocation),
 * grown for bulk transfers.
 * @module
 */
import {
  BufferPool,
  bulkOverBudget,
  dropBulk,
  giveBulk,
  IDLE_POOL,
  takeBulk,
} from "./buffer_pool.ts";
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
 * a pending read pins its buffer. A socket's reads start in 256 bytes: a tunnel that only ever
 * carries small messages (keystrokes, pings) waits in that (1 KiB cost 1.5 KiB more per idle
 * tunnel; docs/performance.md). The first read that fills it gives the conn a 1 KiB small
 * buffer for good, so bigger messages are one read each as before (a message split across reads
 * leaves as two segments, which costs request/response traffic a process wake-up per hop). Four
 * full reads of the small buffer take a 4 KiB bulk one; from there a read that fills it to the
 * byte grows it ×4 at once (as do four in a row that come within 1/64 of full: records with
 * headers), up to 256 KiB. A grown buffer goes back to the pool when
 * its source runs dry and the process's conns hold more than their budget of such buffers (see
 * {@link copy}).
 */
const START_BUFFER = 256;
/** The small buffer of a conn whose messages outgrew {@link START_BUFFER}. */
const SMALL_BUFFER = 1024;
const MAX_BUFFER = 256 * 1024;
/**
 * Where first buffers come from and go back to (on promotion or at the end). Left to the garbage
 * collector, a thousand promoted tunnels' 256-byte buffers cost ~1 KiB per tunnel of RSS in holes
 * between live allocations (`deno task bench idle`, the request row: 16.2 KiB unpooled, 15.2 pooled,
 * 15.1 with the old fixed 1 KiB buffer).
 */
const FIRST_POOL = new BufferPool(START_BUFFER, 1024);
/** Datagram conns need room for any datagram from the first read. */
const DATAGRAM_BUFFER = 64 * 1024;
/** Reads that fill the buffer, in a row, before it grows. */
const GROW_AFTER = 4;

/**
 * A bulk buffer for a burst of `size`, with `room` on top for a framing destination's header (the
 * bulk pools keep spare bytes for it), so reads still take whole chunks of a source that hands
 * over powers of two: 14 bytes short, each 32 KiB WebSocket frame in took three reads and left as
 * three frames (a reviewer's measurement). Tiny bursts (a small `max`) get no room.
 */
function takeRoomy(size: number, room: number): Uint8Array {
  return takeBulk(room > 0 && size >= 1024 ? size + room : size);
}

/**
 * Copies `src` to `dst` until EOF, then half-closes `dst`. Returns the byte count.
 *
 * `small` is the buffer a read waits in. While reads keep filling it, a bigger one is taken from
 * the bulk pool, ×4 per step (up to `max`): 64 KiB chunks held a forward hop to ~1.5 GB/s here,
 * 256 KiB ones reach ~2.2. A read that comes back short means the source ran dry, and the next
 * read may wait for hours: once the process's conns hold more than `BULK_KEEP_BUDGET` in such
 * buffers, the big one goes back to the pool and that read waits in `small`. If it comes back
 * full, the burst goes on at the size it had reached.
 */
export async function copy(
  src: Conn,
  dst: Conn,
  small: Uint8Array = new Uint8Array(START_BUFFER),
  onProgress?: () => void,
  max = MAX_BUFFER,
): Promise<number> {
  // A zero-byte buffer would read 0 bytes forever.
  if (small.length === 0 || !(max >= 1)) {
    throw new RangeError(
      `copy: buffers must hold at least 1 byte (got ${small.length}, max ${max})`,
    );
  }
  let total = 0;
  let full = 0;
  let buf = small;
  /** Size the current burst has reached. */
  let level = small.length;
  /** What {@link SMALL_BUFFER} becomes under `max`. */
  const promoted = Math.min(max, SMALL_BUFFER);
  // A source that says when it has bytes (a mux stream) is waited on without a buffer while it is
  // quiet: the small one goes back to the pool, and a read that waits pins nothing of ours.
  const quiet = src.waitReadable && !src.datagram && small.length === IDLE_POOL.size ? src : null;
  // A conn that frames each write (WebSocket) takes the frame header in the bytes before the
  // payload: bulk reads land `room` bytes in, and the frame goes out of this buffer instead of
  // a copy of it (a bulk copy per write; docs/performance.md).
  const room = dst.writeInPlace && !dst.datagram ? dst.writeRoom ?? 0 : 0;
  try {
    for (;;) {
      if (quiet !== null && buf === small) {
        // (Also after a full small read: if more is queued, the wait ends at once.)
        IDLE_POOL.give(small);
        await quiet.waitReadable!();
        buf = small = IDLE_POOL.take(IDLE_POOL.size);
      }
      // A bulk read into a conn that frames its writes leaves it room for the header in front
      // (not in tiny buffers a small `max` makes).
      const into = buf !== small && room > 0 && buf.length >= 1024 + room
        ? buf.subarray(room)
        : buf;
      const n = await src.read(into);
      if (n === null) break;
      if (n === 0) continue;
      if (into !== buf) await dst.writeInPlace!(buf.subarray(0, room + n));
      else await dst.write(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      onProgress?.();
      if (n < into.length >>> 1) {
        // Interactive, or the burst ended.
        full = 0;
        if (buf === small) level = small.length;
        else if (bulkOverBudget()) {
          giveBulk(buf);
          buf = small;
        }
      } else if (buf === small && n === buf.length && small.length < promoted) {
        // This conn's messages outgrow 256 bytes: its small buffer is 1 KiB from now on.
        FIRST_POOL.give(small);
        buf = small = new Uint8Array(promoted);
        if (level < promoted) level = promoted;
      } else if (buf === small && level > small.length) {
        // Back to the burst's size if the small read left more waiting (it filled to the byte).
        if (n === buf.length) buf = takeRoomy(level, room);
      } else if (buf !== small && n < into.length - (buf.length >>> 6)) {
        // Short by more than a record stream's headers (1/64): the source ran dry.
        full = 0;
        if (bulkOverBudget()) {
          giveBulk(buf);
          buf = small;
        }
      } else if (
        into.length < max && ((buf !== small && n === into.length) || ++full >= GROW_AFTER)
      ) {
        // A bulk read filled to the byte left more waiting: grow at once. Four in a row (below)
        // held a 64 KiB buffer at 64 KiB while shorter reads in between kept resetting the count,
        // and a forward hop made ~10 reads per MB where 256 KiB reads make ~5.5
        // (docs/performance.md). A reader that hands over whole records (WebSocket frames out of a
        // read-ahead) rarely fills the buffer to the byte: four reads in a row within 1/64 of full
        // grow it too, or the buffer would stay small and every read-ahead cost four writes. The
        // small buffer still needs four reads of at least half before a bulk one: a conn of 1-4
        // KiB messages keeps its 1 KiB.
        level = Math.min(max, into.length * 4);
        if (buf !== small) giveBulk(buf);
        buf = takeRoomy(level, room);
        full = 0;
      }
    }
  } catch (e) {
    // A conn may still refer to the buffer after an error: the garbage collector takes it.
    if (buf !== small) dropBulk(buf);
    throw e;
  }
  if (buf !== small) giveBulk(buf);
  if (quiet !== null) IDLE_POOL.give(small);
  else FIRST_POOL.give(small);
  await dst.closeWrite();
  return total;
}

/**
 * The largest buffer {@link copy} should use between `a` and `b` by default: 256 KiB, or less if
 * an end says so ({@link Conn.maxChunk}: KCP streams).
 */
export function chunkLimit(a: Conn, b: Conn): number {
  return Math.min(MAX_BUFFER, a.maxChunk ?? MAX_BUFFER, b.maxChunk ?? MAX_BUFFER);
}

/**
 * Relays `a` ⇄ `b`; resolves when both directions are done and both conns are closed. Not an
 * `async` function: a suspended one costs ~420 bytes per idle tunnel, a reaction ~100
 * (docs/performance.md).
 */
export function relay(a: Conn, b: Conn, opts: RelayOptions = {}): Promise<RelayResult> {
  try {
    return relayBoth(a, b, opts);
  } catch (e) {
    // As an `async` function would: a conn whose close throws rejects, it does not throw.
    return Promise.reject(e);
  }
}

function relayBoth(a: Conn, b: Conn, opts: RelayOptions): Promise<RelayResult> {
  const max = opts.bufferSize ?? chunkLimit(a, b);
  if (!(max >= 1)) throw new RangeError(`relay: bufferSize must be at least 1 (got ${max})`);
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
  const onAbort = closeBoth;
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
  // Datagram conns have no half-close: when one direction ends, the association is over. One
  // reaction per direction, no `finally` chains: idle tunnels are the many, and every waiting
  // promise costs memory (docs/performance.md).
  const aToB = (n: number) => {
    result.aToB = n;
    if (datagram) closeBoth();
  };
  const bToA = (n: number) => {
    result.bToA = n;
    if (datagram) closeBoth();
  };
  const end = () => {
    if (timer !== undefined) clearInterval(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    closeBoth();
    return result;
  };
  // Both directions catch their errors (`fail`), so the pair always fulfils.
  // A source with waitReadable lends its first buffer back before its first wait (see copy).
  // (It is lent from IDLE_POOL, 1 KiB: such a source pins none while it waits.)
  const pooled = !datagram && max >= IDLE_POOL.size;
  const small = (c: Conn) =>
    c.waitReadable && pooled
      ? IDLE_POOL.take(IDLE_POOL.size)
      : first === FIRST_POOL.size
      ? FIRST_POOL.take(first)
      : new Uint8Array(first);
  return Promise.all([
    copy(a, b, small(a), touch, max).then(aToB, fail),
    copy(b, a, small(b), touch, max).then(bToA, fail),
  ]).then(end);
}
