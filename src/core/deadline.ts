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
