/**
 * Gives the young generation back once the process has gone quiet (docs/performance.md, "The
 * young generation after a burst").
 *
 * V8 grows its young generation (up to 64 MiB here) while many new objects survive, as when a
 * thousand tunnels open at once, and shrinks it only in a collection that finds allocation slow
 * or aims to reduce memory. A quiet process makes no collections (at ~100 KiB/s the space takes
 * minutes to fill), so a proxy that had one burst held that memory for minutes; the memory
 * reducer a browser runs on idle tabs is never asked for by Deno. This watches V8's allocation
 * counter and, when an interval allocated next to nothing while the young generation is large,
 * runs one collection that aims to reduce memory. Its pause is mostly copying the burst's
 * survivors, which the next young collection would do anyway (33-60 ms after 1,000 new tunnels,
 * 110-150 ms after 5,000, on a 2-core machine); it comes once per burst, while the process is quiet, and at most
 * once per 30 s after two in a row.
 *
 * The same quiet interval, after a busy one, asks glibc to hand back the free memory it keeps
 * (`malloc_trim`, over FFI when allowed): memory freed by Deno's Rust side (TLS records, socket
 * buffers) and by dead ArrayBuffers stays in the allocator's arenas, fragmented, until then. After
 * 200 TLS tunnels had each moved 1 MiB, it was 147 of a 302 MiB process (docs/performance.md).
 * 9 ms for 64 MiB given back, 0.3 ms when there is nothing to give; two in a row, then at most
 * one per 10 s.
 */
import v8 from "node:v8";
import vm from "node:vm";

/** How often the allocation counter is read. */
export const REDUCE_CHECK_MS = 2_000;
/**
 * Less than this allocated during an interval (2 MiB/s) is quiet. An idle process counts ~100
 * KiB/s, an idle KCP session with a thousand streams up to ~500 (its clock ticks every few ms);
 * opening conns allocates tens of MiB a second.
 */
export const QUIET_BYTES = 4 * 1024 * 1024;
/** A young generation larger than this is worth a collection (V8 starts it at 1 MiB, shrinks it to 256 KiB). */
export const YOUNG_BYTES = 1024 * 1024;
/** After a collection that did not shrink it, the next try waits this many intervals more. */
const MAX_BACKOFF = 32;
/**
 * At most this many collections in a row, then one per {@link REFILL_MS}: a process whose young
 * generation keeps growing back under light, steady load (conns that open slowly and stay) must
 * not trade V8's concurrent collections for a full pause every few seconds.
 */
const BURST = 2;
export const REFILL_MS = 30_000;
/** After two allocator trims in a row, one more per this many ms. */
export const TRIM_EVERY_MS = 10_000;

/** V8's allocation counter (missing from Deno's `HeapInfo` type). */
function allocated(): number {
  const h = v8.getHeapStatistics() as { total_allocated_bytes?: number };
  return h.total_allocated_bytes ?? NaN;
}

/**
 * The young generation's committed size. Read only when quiet: the call itself moves the
 * allocation counter by megabytes (the counter goes by allocation buffers, not objects).
 */
function young(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? NaN;
}

/** Deno's `gc` in a vm context: it takes no options (always V8's low-memory notification). */
type Gc = () => unknown;

let gcFn: Gc | null | undefined;

/**
 * V8's collector, when the engine lets us reach it: `--expose-gc` set at run time takes effect in
 * contexts created afterwards (the pattern Node documents for `v8.setFlagsFromString`).
 */
export function collector(): Gc | null {
  if (gcFn !== undefined) return gcFn;
  try {
    v8.setFlagsFromString("--expose-gc");
    const f = vm.runInNewContext("typeof gc === 'function' ? gc : null");
    gcFn = typeof f === "function" ? f as Gc : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

let trimFn: (() => void) | null | undefined;

/** glibc's `malloc_trim`, when it can be reached (Linux, glibc, FFI allowed), else null; loaded once. */
function mallocTrim(): (() => void) | null {
  if (trimFn === undefined) trimFn = loadMallocTrim();
  return trimFn;
}

function loadMallocTrim(): (() => void) | null {
  if (Deno.build.os !== "linux") return null;
  try {
    // Asked first: a library must never trigger an interactive permission prompt.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    const lib = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    return () => void lib.symbols.malloc_trim(0n);
  } catch {
    return null; // not glibc (musl has no malloc_trim), or no libc.so.6
  }
}

/**
 * A token bucket of `burst` that earns one token per `everyMs`; the returned function takes one,
 * or says false. A full bucket starts its clock at the next take.
 */
function bucket(burst: number, everyMs: number): () => boolean {
  let tokens = burst;
  let refilled = performance.now();
  return () => {
    const now = performance.now();
    const earned = Math.floor((now - refilled) / everyMs);
    if (earned > 0) {
      tokens = Math.min(burst, tokens + earned);
      refilled += earned * everyMs;
    }
    if (tokens === 0) return false;
    if (tokens === burst) refilled = now;
    tokens--;
    return true;
  };
}

/** What a reducer did, for tests and the debug log. */
export interface ReducerStats {
  /** Collections run so far. */
  runs: number;
  /** Quiet intervals with a large young generation skipped by the rate limit. */
  limited: number;
  /** Times the allocator was asked to give free memory back. */
  trims: number;
}

/** Options of {@link startMemoryReducer}; the defaults are the constants above. */
export interface MemoryReducerOptions {
  /** How often to look (ms). */
  checkMs?: number;
  /** Allocated bytes per interval below which the process counts as quiet. */
  quietBytes?: number;
  /** Committed young-generation bytes above which a collection is worth it. */
  youngBytes?: number;
  /** After two collections, one more per this many ms (default {@link REFILL_MS}). */
  refillMs?: number;
  /**
   * Told the young generation's committed size before and after, the pause (ms), and the whole
   * heap's committed size after.
   */
  onReduce?: (before: number, after: number, ms: number, heap: number) => void;
  /**
   * Ask glibc for its free memory back in the first quiet interval after a busy one (default
   * true; a no-op where FFI is not allowed or libc is not glibc).
   */
  trim?: boolean;
  /**
   * After two trims, one more per this many ms (default {@link TRIM_EVERY_MS}): load that turns
   * busy and quiet every few seconds must not pay a trim each time.
   */
  trimEveryMs?: number;
  /** Told the process's RSS before and after a trim, and its pause (ms). */
  onTrim?: (before: number, after: number, ms: number) => void;
}

/** Starts the watcher; returns `stop` and its live stats. Its timer does not keep the process alive. */
export function startMemoryReducer(
  opts: MemoryReducerOptions = {},
): { stop: () => void; stats: ReducerStats } {
  const stats: ReducerStats = { runs: 0, limited: 0, trims: 0 };
  const gc = collector();
  // Without the counters there is no telling quiet from busy: stay out of the way.
  if (!gc || Number.isNaN(allocated()) || Number.isNaN(young())) return { stop: () => {}, stats };
  const trim = opts.trim === false ? null : mallocTrim();
  /** Busy since the last trim (start-up counts). */
  let dirty = true;
  // Two trims in a row (start-up, then the first burst), then one per trimEveryMs.
  const trimToken = bucket(BURST, opts.trimEveryMs ?? TRIM_EVERY_MS);
  const gcToken = bucket(BURST, opts.refillMs ?? REFILL_MS);
  const quiet = opts.quietBytes ?? QUIET_BYTES;
  const big = opts.youngBytes ?? YOUNG_BYTES;
  let last = allocated();
  let backoff = 1;
  let wait = 0;
  /** The young generation's collection, when it is worth one and the rate limit allows; true if run. */
  const collect = (): boolean => {
    if (wait > 0) {
      wait--;
      return false;
    }
    const before = young();
    last = allocated();
    if (before <= big) return false;
    if (!gcToken()) {
      stats.limited++;
      return false;
    }
    const t0 = performance.now();
    // Deno's gc() ignores options and runs V8's low-memory notification: full collections that
    // aim to reduce memory, which shrink the young generation.
    gc();
    const ms = performance.now() - t0;
    const after = young();
    last = allocated();
    stats.runs++;
    // Should it not have shrunk, try again later, not every interval.
    backoff = after >= before ? Math.min(backoff * 2, MAX_BACKOFF) : 1;
    wait = backoff;
    opts.onReduce?.(before, after, ms, v8.getHeapStatistics().total_heap_size);
    return true;
  };
  const timer = setInterval(() => {
    const now = allocated();
    const busy = now - last >= quiet;
    last = now;
    if (busy) {
      dirty = true;
      return;
    }
    // Not in the interval of a collection: V8 may free dead ArrayBuffers' memory on a background
    // thread after it, so the trim waits for the next quiet interval.
    if (!collect() && dirty && trim && trimToken()) {
      dirty = false;
      const before = Deno.memoryUsage().rss;
      const t0 = performance.now();
      trim();
      stats.trims++;
      opts.onTrim?.(before, Deno.memoryUsage().rss, performance.now() - t0);
    }
  }, opts.checkMs ?? REDUCE_CHECK_MS);
  Deno.unrefTimer(timer);
  return { stop: () => clearInterval(timer), stats };
}
