/**
 * Plumbing shared by the proxy handlers: handshake deadlines, failure classification and the
 * logged relay of an established tunnel.
 * @module
 */
import { type Conn, formatAddr } from "../core/conn.ts";
import { TimeoutError } from "../core/errors.ts";
import { relay } from "../core/relay.ts";
import type { HandleContext } from "../core/types.ts";

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
    return await f();
  } catch (e) {
    if (timedOut) throw new TimeoutError(`handshake not done within ${ms} ms`, { cause: e });
    throw e;
  } finally {
    clearTimeout(t);
  }
}

/** The innermost cause of an error. */
export function rootCause(e: unknown): unknown {
  let x = e;
  for (let i = 0; i < 10 && x instanceof Error && x.cause !== undefined; i++) x = x.cause;
  return x;
}

/** What kind of failure a dial error is, for protocol reply codes. */
export type DialFailure = "refused" | "unreachable" | "timeout" | "other";

export function classifyDialError(e: unknown): DialFailure {
  const c = rootCause(e);
  if (c instanceof Deno.errors.ConnectionRefused) return "refused";
  if (c instanceof TimeoutError || c instanceof Deno.errors.TimedOut) return "timeout";
  if (c instanceof Deno.errors.NotFound || c instanceof Deno.errors.AddrNotAvailable) {
    return "unreachable";
  }
  if (c instanceof Error && /unreachable|resolve|lookup|dns|name/i.test(c.message)) {
    return "unreachable";
  }
  return "other";
}

/** Relays an established tunnel with GOST's `<->` / `>-<` debug lines. */
export async function pipeLogged(
  client: Conn,
  up: Conn,
  target: string,
  ctx: HandleContext,
  idleTimeout = 0,
): Promise<void> {
  const remote = formatAddr(client.remoteAddr);
  ctx.log.debug(`${remote} <-> ${target}`, { dst: target });
  const t0 = performance.now();
  const r = await relay(client, up, { signal: ctx.signal, idleTimeout });
  ctx.log.debug(`${remote} >-< ${target}`, {
    dst: target,
    duration: Math.round((performance.now() - t0) * 1e6),
    inputBytes: r.aToB,
    outputBytes: r.bToA,
  });
}
