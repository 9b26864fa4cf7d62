/**
 * {@link Conn} over a `Deno.Conn` (TCP, TLS or Unix socket).
 * @module
 */
import { ConnBase, type NetAddr } from "./conn.ts";

function toNetAddr(a: Deno.Addr): NetAddr {
  // Deno's own object (it has these three fields): not a copy per socket, kept by every conn.
  if (a.transport === "tcp" || a.transport === "udp") return a;
  return { transport: a.transport, hostname: "path" in a ? String(a.path) : "", port: 0 };
}

/**
 * A read that failed because the socket was closed (ours: a pending read is cancelled, a later one
 * finds no resource) or reset by the peer ends the stream. One function for every conn: a bound
 * handler per conn is ~100 bytes per idle socket.
 */
function readFailed(e: unknown): null {
  if (
    e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted ||
    e instanceof Deno.errors.ConnectionReset
  ) return null;
  throw e;
}

/**
 * Wraps a Deno socket. Unlike `Deno.Conn`, `write` never returns short, and closing the
 * `writable` half-closes instead of closing the whole socket.
 */
export class SocketConn extends ConnBase {
  readonly inner: Deno.Conn;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  #closed = false;

  constructor(inner: Deno.Conn) {
    super();
    this.inner = inner;
    this.localAddr = toNetAddr(inner.localAddr);
    this.remoteAddr = toNetAddr(inner.remoteAddr);
  }

  /**
   * Not an `async` function: an idle conn waits here, and a suspended async function costs some
   * 400 bytes more per waiting read than a promise reaction (docs/performance.md).
   */
  read(p: Uint8Array): Promise<number | null> {
    return this.inner.read(p).catch(readFailed);
  }

  async write(p: Uint8Array): Promise<number> {
    let off = 0;
    while (off < p.length) off += await this.inner.write(off === 0 ? p : p.subarray(off));
    return p.length;
  }

  async closeWrite(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.inner.closeWrite();
    } catch { /* not connected any more */ }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.inner.close();
    } catch { /* already closed */ }
  }

  /** Disables Nagle (Deno's default leaves it on). */
  setNoDelay(on = true): void {
    const c = this.inner as Partial<Deno.TcpConn>;
    try {
      c.setNoDelay?.(on);
    } catch { /* not TCP */ }
  }
}

/** Dials TCP and wraps the socket. */
export async function dialTcp(
  hostname: string,
  port: number,
  signal?: AbortSignal,
): Promise<SocketConn> {
  const c = await Deno.connect({ hostname, port, signal } as Deno.ConnectOptions);
  const conn = new SocketConn(c);
  conn.setNoDelay(true);
  return conn;
}
