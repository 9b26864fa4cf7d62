/**
 * Received bytes waiting for `read`: the buffer behind every Conn whose data arrives as chunks
 * from elsewhere (an smux stream's frames, a bundle's frames, a KCP session's messages, a Node
 * socket's `data` events). Chunks are kept as given, never copied until `take` fills the
 * reader's buffer; one reader waits at a time. An optional `recycle` gets each chunk back once
 * its last byte has been taken (or it was dropped), so its producer can reuse the memory.
 * @module
 */
export class ChunkQueue {
  readonly #recycle?: (c: Uint8Array) => void;
  #chunks: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;
  #taken = 0;
  #wake: (() => void) | null = null;

  /** `recycle` receives every chunk (or what was left of it) once nothing refers to it. */
  constructor(recycle?: (c: Uint8Array) => void) {
    this.#recycle = recycle;
  }

  /** Unread bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Unread chunks (a partly read one counts). */
  get length(): number {
    return this.#chunks.length - this.#head;
  }

  /** Chunks fully read since the queue was made (for per-chunk acknowledgements). */
  get chunksTaken(): number {
    return this.#taken;
  }

  /** Appends a chunk (kept, not copied) and wakes the reader. */
  push(c: Uint8Array): void {
    if (c.length === 0) return;
    this.#chunks.push(c);
    this.#bytes += c.length;
    this.wake();
  }

  /** Moves up to `p.length` bytes into `p`; returns how many (0 when empty). */
  take(p: Uint8Array): number {
    let n = 0;
    const chunks = this.#chunks;
    while (n < p.length && this.#head < chunks.length) {
      const c = chunks[this.#head]!;
      const k = Math.min(c.length, p.length - n);
      p.set(k === c.length ? c : c.subarray(0, k), n);
      n += k;
      if (k === c.length) {
        chunks[this.#head++] = EMPTY;
        this.#taken++;
        this.#recycle?.(c);
      } else chunks[this.#head] = c.subarray(k);
    }
    if (this.#head === chunks.length) {
      chunks.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024) {
      chunks.splice(0, this.#head);
      this.#head = 0;
    }
    this.#bytes -= n;
    return n;
  }

  /**
   * Waits for bytes, then takes them: `null` when the queue is empty and `ended()` says no more
   * will come. `ended` may throw (a failed carrier) or refill the queue (a pull source).
   */
  read(p: Uint8Array, ended: () => boolean): Promise<number | null> {
    // Promises, not an async function: an idle stream waits here, and a suspended async
    // function costs a few hundred bytes more per waiting read (docs/performance.md).
    try {
      if (this.#bytes === 0 && ended()) return Promise.resolve(null);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#bytes > 0) return Promise.resolve(this.take(p));
    return new Promise<void>((r) => (this.#wake = r)).then(() => this.read(p, ended));
  }

  /**
   * Resolves once a {@link read} would not wait: bytes are queued, or `ended()` is true or
   * throws (the read reports it). Shares the one waiter slot with `read`.
   */
  ready(ended: () => boolean): Promise<void> {
    try {
      if (this.#bytes > 0 || ended()) return Promise.resolve();
    } catch {
      return Promise.resolve();
    }
    return new Promise<void>((r) => (this.#wake = r)).then(() => this.ready(ended));
  }

  /** Wakes a waiting reader so it re-checks (data, end, error). */
  wake(): void {
    const w = this.#wake;
    if (w) {
      this.#wake = null;
      w();
    }
  }

  /** Drops every unread chunk; returns the bytes dropped. */
  clear(): number {
    const n = this.#bytes;
    if (this.#recycle) {
      for (let i = this.#head; i < this.#chunks.length; i++) this.#recycle(this.#chunks[i]!);
    }
    this.#chunks = [];
    this.#head = 0;
    this.#bytes = 0;
    this.wake();
    return n;
  }
}

const EMPTY = new Uint8Array(0);
