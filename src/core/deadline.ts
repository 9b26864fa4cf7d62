/**
 * Deadlines for handshakes: a step that takes too long closes its conn, which fails the pending
 * read, and surfaces as a {@link TimeoutError}.
 * @module
 */
import type { Conn } from "./conn.ts";
import { TimeoutError } from "./errors.ts";

/**
 * Runs a handshake step; if it takes longer than `ms`, closes `conn` and rejects with a
 * TimeoutError at once, whether or not the step notices the close (some never settle on a
 * closed conn: a node:tls handshake). A step that ends after the deadline is ignored.
 */
export function withDeadline<T>(conn: Conn, ms: number, f: () => Promise<T>): Promise<T> {
  if (ms <= 0) return f();
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const t = setTimeout(() => {
      if (done) return;
      done = true;
      conn.close();
      reject(new TimeoutError(`handshake not done within ${ms} ms`));
    }, ms);
    f().then((v) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      resolve(v);
    }, (e) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      reject(e);
    });
  });
}

/**
 * Settles with `p`, or rejects with the abort reason as soon as `signal` aborts; a conn that
 * `p` delivers after the abort is closed, never leaked. Lets a caller bound any dial, whether or
 * not the dialer itself watches the signal.
 */
export function abortable<T extends { close(): void }>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (!signal) return p;
  const reason = () => signal.reason ?? new DOMException("aborted", "AbortError");
  if (signal.aborted) {
    p.then((c) => c.close(), () => {});
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const onAbort = () => {
      if (done) return;
      done = true;
      p.then((c) => c.close(), () => {});
      reject(reason());
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then((c) => {
      signal.removeEventListener("abort", onAbort);
      if (done) return c.close();
      done = true;
      resolve(c);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      if (done) return;
      done = true;
      reject(e);
    });
  });
}

/**
 * Runs a handshake on `conn` bounded by `signal`: an abort closes `conn` and rejects with the
 * abort reason at once (the step's own outcome is then ignored).
 */
export function withSignal<T>(
  conn: Conn,
  signal: AbortSignal | undefined,
  f: () => Promise<T>,
): Promise<T> {
  if (!signal) return f();
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const onAbort = () => {
      if (done) return;
      done = true;
      conn.close();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    f().then((v) => {
      signal.removeEventListener("abort", onAbort);
      if (done) return;
      done = true;
      resolve(v);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      if (done) return;
      done = true;
      reject(e);
    });
  });
}
