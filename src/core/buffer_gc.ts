/**
 * Collects when buffers that native code handed to JavaScript pile up without V8 collecting them
 * (docs/performance.md, "Buffers V8 does not collect for").
 *
 * Deno's `node:tls` hands every socket read to JavaScript in a fresh 64 KiB buffer (and, without
 * Node's `onread` option, every decrypted chunk too). They die at once, but their memory lives
 * outside V8's heap, and when little else is allocated V8 does not collect for it: a TLS client
 * reading 400 MiB ran no collection at all and grew by ~260 MiB, 0.75 MiB a MiB moved. So the
 * conns that get such buffers report their bytes here; every {@link CHECK_BYTES} this reads the
 * process's external memory and, once it has grown {@link GROWTH} past what the last collection
 * left, runs one. Deno's `gc()` ignores its options and always runs V8's low-memory notification
 * (two full, compacting collections: ~15-25 ms on a small heap), so it is a net, not a pacer to
 * run often: with the TLS client's `onread` path V8's own collections keep up and it rarely fires.
 */
import { collector } from "./memory_reducer.ts";

/** How many reported bytes between two looks at external memory. */
export const CHECK_BYTES = 8 << 20;
/** External memory grown past the last collection's that is worth a collection. */
export const GROWTH = 64 << 20;

let since = 0;
/** External memory after the last collection (or at the first look). */
let floor = -1;
let collections = 0;

/** Counts `n` bytes that arrived in buffers made outside V8's accounting. */
export function noteNativeBuffers(n: number): void {
  since += n;
  if (since < CHECK_BYTES) return;
  since = 0;
  const external = Deno.memoryUsage().external;
  if (floor < 0 || external < floor) {
    floor = external;
    return;
  }
  if (external - floor < GROWTH) return;
  const gc = collector();
  if (!gc) {
    floor = external; // no collector: look again only after as much more
    return;
  }
  gc(); // a full collection whatever the options (see above)
  collections++;
  floor = Deno.memoryUsage().external;
}

/** Collections run so far (tests, the debug log). */
export function bufferCollections(): number {
  return collections;
}
