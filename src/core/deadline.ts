/**
 * Deadlines for handshakes: a step that takes too long closes its conn, which fails the pending
 * read, and surfaces as a {@link TimeoutError}.
 * @module
 */
import type { Conn } from "./conn.ts";
import { TimeoutError } from "./errors.ts";

/**
 * Settles with `p` unless `arm`'s trigger cuts in first: then rejects with the reason it gives,
 * and hands a result that arrives later to `late` (to close it). `arm` returns its disarm.
 */
function race<T>(
  p: Promise<T>,
  arm: (cut: (reason: unknown) => void) => () => void,
  late?: (v: T) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const disarm = arm((reason) => {
      if (done) return;
      done = true;
      reject(reason);
    });
    p.then((v) => {
      disarm();
      if (done) return late?.(v);
      done = true;
      resolve(v);
    }, (e) => {
      disarm();
      if (done) return;
      done = true;
      reject(e);
    });
  });
}

/** Arms `signal`: an abort cuts with its reason, after `onAbort`. */
function onSignal(signal: AbortSignal, onAbort: () => void) {
  return (cut: (reason: unknown) => void) => {
    const f = () => {
      onAbort();
      cut(signal.reason ?? new DOMException("aborted", "AbortError"));
    };
    signal.addEventListener("abort", f, { once: true });
    return () => signal.removeEventListener("abort", f);
  };
}

/**
 * Runs a handshake step; if it takes longer than `ms`, closes `conn` and rejects with a
 * TimeoutError at once, whether or not the step notices the close (some never settle on a
 * closed conn: a node:tls handshake). A step that ends after the deadline is ignored.
 */
export function withDeadline<T>(conn: Conn, ms: number, f: () => Promise<T>): Promise<T> {
  if (ms <= 0) return f();
  return race(f(), (cut) => {
    const t = setTimeout(() => {
      conn.close();
      cut(new TimeoutError(`handshake not done within ${ms} ms`));
    }, ms);
    return () => clearTimeout(t);
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
  if (signal.aborted) {
    p.then((c) => c.close(), () => {});
    return Promise.reject(signal.reason ?? new DOMException("aborted", "AbortError"));
  }
  return race(p, onSignal(signal, () => {}), (c) => c.close());
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
  return race(f(), onSignal(signal, () => conn.close()));
}
