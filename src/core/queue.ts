/**
 * A bounded async FIFO: producers `push` (refused when full), one or more consumers `shift`
 * (waits; `null` once closed and drained). Accept queues are built on it.
 * @module
 */
export class AsyncQueue<T> {
  readonly capacity: number;
  #items: T[] = [];
  #waiters: ((v: T | null) => void)[] = [];
  #closed = false;

  constructor(capacity = Infinity) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds `v`; false when closed or full (the caller then disposes of `v`). */
  push(v: T): boolean {
    if (this.#closed) return false;
    const w = this.#waiters.shift();
    if (w) {
      w(v);
      return true;
    }
    if (this.#items.length >= this.capacity) return false;
    this.#items.push(v);
    return true;
  }

  /** The next item, or `null` once closed and empty. */
  shift(): Promise<T | null> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((r) => this.#waiters.push(r));
  }

  /** Closes; waiting consumers get `null`. Returns the items never taken. */
  close(): T[] {
    this.#closed = true;
    for (const w of this.#waiters) w(null);
    this.#waiters = [];
    const left = this.#items;
    this.#items = [];
    return left;
  }
}
