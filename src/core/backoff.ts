/**
 * Back-off for loops that must not spin on a persistent error (EMFILE on accept, a failing
 * socket receive): each failure in a row waits twice as long, from 5 ms up to 1 s, the way Go's
 * net/http server backs off; a success starts over.
 * @module
 */
export class Backoff {
  #delay = 0;
  constructor(readonly first = 5, readonly max = 1000) {}

  /** The delay the next failure will wait (0 after a success). */
  get delay(): number {
    return this.#delay;
  }

  /** Waits after a failure; ends early when `signal` aborts. */
  fail(signal?: AbortSignal): Promise<void> {
    this.#delay = this.#delay === 0 ? this.first : Math.min(this.#delay * 2, this.max);
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, this.#delay);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  ok(): void {
    this.#delay = 0;
  }
}
