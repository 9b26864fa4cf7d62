/**
 * The `tcp` listener: plain TCP accept.
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import { SocketConn } from "../../core/socket.ts";

/** Accepts TCP connections on `host:port`. */
export class TcpListener implements Listener {
  readonly addr: NetAddr;
  readonly #l: Deno.Listener;
  readonly #wrap: (c: Deno.Conn) => SocketConn;
  #closed = false;

  /** `wrap` makes the Conn of each accepted socket (a TLS listener's does its handshake). */
  constructor(l: Deno.Listener, wrap: (c: Deno.Conn) => SocketConn = (c) => new SocketConn(c)) {
    this.#l = l;
    this.#wrap = wrap;
    const a = l.addr as Deno.NetAddr;
    this.addr = { transport: "tcp", hostname: a.hostname, port: a.port };
  }

  /** Binds `host:port` ("" host = all interfaces). */
  static listen(addr: string): TcpListener {
    const { host, port } = splitHostPort(addr);
    return new TcpListener(Deno.listen({ hostname: listenHost(host), port, transport: "tcp" }));
  }

  async accept(): Promise<Conn | null> {
    for (;;) {
      if (this.#closed) return null;
      try {
        const c = await this.#l.accept();
        const conn = this.#wrap(c);
        conn.setNoDelay(true);
        return conn;
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.BadResource) return null;
        // A connection reset before accept completed: not the listener's failure.
        if (
          e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.ConnectionReset ||
          e instanceof Deno.errors.NotConnected
        ) continue;
        throw e;
      }
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#l.close();
      } catch { /* closed */ }
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function createTcpListener(opts: ListenerOptions): Promise<Listener> {
  return Promise.resolve(TcpListener.listen(opts.addr));
}
