/**
 * Deadlines for handshakes: a step that takes too long closes its conn, which fails the pending
 * read, and surfaces as a {@link TimeoutError}.
 * @module
 */
import type { Conn } from "./conn.ts";
import { TimeoutError } from "./errors.ts";

/**
 * Runs a handshake step; if it takes longer than `ms`, closes `conn` (which fails the pending
 * read) and throws a TimeoutError.
 */
export async function withDeadline<T>(conn: Conn, ms: number, f: () => Promise<T>): Promise<T> {
  if (ms <= 0) return await f();
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, ms);
  try {
    const r = await f();
    // The step may end normally on the closed conn (a read seeing EOF): still a timeout.
    if (timedOut) throw new TimeoutError(`handshake not done within ${ms} ms`);
    return r;
  } catch (e) {
    if (e instanceof TimeoutError) throw e;
    if (timedOut) throw new TimeoutError(`handshake not done within ${ms} ms`, { cause: e });
    throw e;
  } finally {
    clearTimeout(t);
  }
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
 * Runs a handshake on `conn` bounded by `signal`: an abort closes `conn`, which fails the
 * pending read or write, and the step rejects with the abort reason.
 */
export async function withSignal<T>(
  conn: Conn,
  signal: AbortSignal | undefined,
  f: () => Promise<T>,
): Promise<T> {
  if (!signal) return await f();
  if (signal.aborted) throw signal.reason;
  const onAbort = () => conn.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await f();
  } catch (e) {
    if (signal.aborted) throw signal.reason ?? e;
    throw e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
