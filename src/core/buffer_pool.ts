/**
 * A free list of fixed-size buffers for datagram-sized data that is short-lived but too frequent
 * to leave to the garbage collector: every `new Uint8Array` of packet size is a malloc'd backing
 * store that lives until the next scavenge, and under tens of thousands of packets a second the
 * allocator's heap grows with them (docs/performance.md, "KCP's peak memory").
 *
 * Only buffers this pool made are taken back, each at most once while it is free, so handing back
 * a foreign buffer or the same one twice is harmless.
 * @module
 */

export class BufferPool {
  /** Size of every pooled buffer; `take` of more allocates a plain buffer. */
  readonly size: number;
  readonly #max: number;
  readonly #free: ArrayBuffer[] = [];
  readonly #isFree = new WeakSet<ArrayBuffer>();
  readonly #ours = new WeakSet<ArrayBuffer>();

  constructor(size: number, maxFree: number) {
    this.size = size;
    this.#max = maxFree;
  }

  /** A view of `len` bytes (contents undefined) on a pooled buffer when `len ≤ size`. */
  take(len: number): Uint8Array {
    if (len > this.size) return new Uint8Array(len);
    let b = this.#free.pop();
    if (b) this.#isFree.delete(b);
    else {
      b = new ArrayBuffer(this.size);
      this.#ours.add(b);
    }
    return new Uint8Array(b, 0, len);
  }

  /** Returns the buffer under `view` once nothing refers to it any more. */
  give(view: Uint8Array): void {
    const b = view.buffer as ArrayBuffer;
    if (this.#free.length >= this.#max || !this.#ours.has(b) || this.#isFree.has(b)) return;
    this.#isFree.add(b);
    this.#free.push(b);
  }

  /** Buffers free now. */
  get freeCount(): number {
    return this.#free.length;
  }
}

/**
 * The process's pool for datagrams and KCP segments (2 KiB covers any MTU a UDP carrier uses on
 * loopback or Ethernet); at most 2 MiB kept free.
 */
export const DATAGRAM_POOL: BufferPool = new BufferPool(2048, 1024);

/**
 * 1 KiB buffers lent to quiet conns only while they hold bytes: a WebSocket's read-ahead between
 * its reads, a relay's buffer while its source has bytes (`Conn.waitReadable`). A thousand idle
 * tunnels that wake now and then share a few instead of pinning one each (docs/performance.md).
 */
export const IDLE_POOL: BufferPool = new BufferPool(1024, 64);

/**
 * Pools for the stream buffers that grow with a transfer (relay copy buffers, WebSocket
 * read-ahead and frames): 4, 16, 64 and 256 KiB, each with room for a frame header on top, at
 * most ~4 MiB free in all. Such a buffer goes back here as soon as its conn runs dry, so a read
 * waiting on a quiet conn pins only a small buffer of its own, and the next burst on any conn
 * reuses the memory (docs/performance.md, "Idle after use").
 */
const BULK_POOLS: readonly BufferPool[] = [
  new BufferPool(4 * 1024 + 64, 64),
  new BufferPool(16 * 1024 + 64, 32),
  new BufferPool(64 * 1024 + 64, 16),
  new BufferPool(256 * 1024 + 64, 8),
];

/**
 * Bulk bytes that conns may keep between bursts, in all. Under it a conn whose source ran dry
 * keeps its grown buffer for the next burst (no extra small read); over it, grown buffers go
 * back as soon as a read comes up short, so a thousand quiet keep-alive conns pin 1 KiB each and
 * not 256 (docs/performance.md, "Idle after use").
 */
export const BULK_KEEP_BUDGET = 16 * 1024 * 1024;

/** Buffers from {@link takeBulk} not yet given back or dropped, and their bytes. */
const held = new WeakSet<ArrayBuffer>();
let heldBytes = 0;

/** A view of `len` bytes (contents undefined), on a pooled buffer when one is big enough. */
export function takeBulk(len: number): Uint8Array {
  let v: Uint8Array | undefined;
  for (const p of BULK_POOLS) {
    if (len <= p.size) {
      v = p.take(len);
      break;
    }
  }
  v ??= new Uint8Array(len);
  held.add(v.buffer as ArrayBuffer);
  heldBytes += v.buffer.byteLength;
  return v;
}

/** Hands a {@link takeBulk} buffer back once nothing refers to it (others are left to GC). */
export function giveBulk(buf: Uint8Array): void {
  if (!dropBulk(buf)) return;
  const size = buf.buffer.byteLength;
  for (const p of BULK_POOLS) if (p.size === size) return p.give(buf);
}

/**
 * Stops counting a {@link takeBulk} buffer that something may still refer to (an error left a
 * write or a read on it): the garbage collector takes it. True if it was counted.
 */
export function dropBulk(buf: Uint8Array): boolean {
  const b = buf.buffer as ArrayBuffer;
  if (!held.delete(b)) return false;
  heldBytes -= b.byteLength;
  return true;
}

/** True when held bulk buffers are past {@link BULK_KEEP_BUDGET}: quiet conns give theirs back. */
export function bulkOverBudget(): boolean {
  return heldBytes > BULK_KEEP_BUDGET;
}

/** Bulk bytes held now (for tests and metrics). */
export function bulkHeldBytes(): number {
  return heldBytes;
}
