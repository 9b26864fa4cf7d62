/**
 * Plumbing shared by the proxy handlers: failure classification and the
 * logged relay of an established tunnel.
 * @module
 */
import { type Conn, formatAddr, PrefixedConn, WrappedConn } from "../core/conn.ts";
import { ForbiddenError, TimeoutError } from "../core/errors.ts";
import { relay } from "../core/relay.ts";
import type { HandleContext } from "../core/types.ts";
import type { Fields } from "../core/log.ts";

/** The innermost cause of an error. */
export function rootCause(e: unknown): unknown {
  let x = e;
  for (let i = 0; i < 10 && x instanceof Error && x.cause !== undefined; i++) x = x.cause;
  return x;
}

/** What kind of failure a dial error is, for protocol reply codes. */
export type DialFailure = "forbidden" | "refused" | "unreachable" | "timeout" | "other";

export function classifyDialError(e: unknown): DialFailure {
  if (e instanceof ForbiddenError) return "forbidden";
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

/**
 * Relays an established tunnel with GOST's `<->` / `>-<` debug lines (`opened`: more fields for
 * the first). Returns the relay's promise
 * with a reaction, not an `async` frame: this is what every idle tunnel waits in.
 */
export function pipeLogged(
  client: Conn,
  up: Conn,
  target: string,
  ctx: HandleContext,
  idleTimeout = 0,
  opened: Fields = {},
): Promise<void> {
  const remote = formatAddr(client.remoteAddr);
  ctx.log.debug(`${remote} <-> ${target}`, { dst: target, ...opened });
  const t0 = performance.now();
  return relay(client, up, { signal: ctx.signal, idleTimeout }).then((r) => {
    ctx.log.debug(`${remote} >-< ${target}`, {
      dst: target,
      duration: Math.round((performance.now() - t0) * 1e6),
      inputBytes: r.aToB,
      outputBytes: r.bToA,
    });
  });
}

/**
 * Waits for a peer on `l` while watching the client's control conn: resolves the peer, or
 * `null` if the client went away first. A read started to notice the client leaving may
 * catch client bytes: those are handed back through the returned conn, never dropped.
 */
export async function acceptWhileWatching(
  l: Deno.Listener,
  conn: Conn,
): Promise<{ peer: Deno.Conn; client: Conn } | null> {
  const buf = new Uint8Array(16 * 1024);
  const pending = conn.read(buf).then((n) => n, () => null);
  const accepting = l.accept();
  accepting.catch(() => {}); // closing the listener below rejects it when the client left
  try {
    const r = await Promise.race([
      accepting.then((peer) => ({ peer })),
      pending.then((n) => ({ n })),
    ]);
    if ("n" in r) {
      if (r.n === null) return null;
      // The client spoke before the peer arrived: keep its bytes and go on waiting.
      const peer = await accepting;
      return { peer, client: new PrefixedConn(conn, buf.slice(0, r.n)) };
    }
    return { peer: r.peer, client: new FirstReadConn(conn, pending, buf) };
  } finally {
    l.close();
  }
}

/** A conn whose first read is one already in flight. */
class FirstReadConn extends WrappedConn {
  #pending: Promise<number | null> | null;
  constructor(inner: Conn, pending: Promise<number | null>, readonly buf: Uint8Array) {
    super(inner);
    this.#pending = pending;
  }
  override async read(p: Uint8Array): Promise<number | null> {
    const pend = this.#pending;
    if (!pend) return await this.inner.read(p);
    this.#pending = null;
    const n = await pend;
    if (n === null) return null;
    const data = this.buf.subarray(0, n);
    if (data.length <= p.length) {
      p.set(data);
      return n;
    }
    p.set(data.subarray(0, p.length));
    // Rare: a smaller buffer than ours; keep the rest for the next read.
    this.#pending = Promise.resolve(n - p.length);
    this.buf.copyWithin(0, p.length, n);
    return p.length;
  }
}
