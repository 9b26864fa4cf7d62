/**
 * The `auto` handler (docs/gost-proxies.md §2): sniffs the first byte — 0x04 SOCKS4, 0x05 SOCKS5, anything
 * else HTTP — and hands the connection on with that byte put back.
 * @module
 */
import { type Conn, PrefixedConn } from "../core/conn.ts";
import type { Registries } from "../core/registry.ts";
import type { HandleContext, Handler, HandlerOptions } from "../core/types.ts";
import { HttpHandler } from "./http/handler.ts";
import { Socks4Handler } from "./socks/socks4.ts";
import { Socks5Handler } from "./socks/socks5.ts";
import { withDeadline } from "../core/deadline.ts";

export class AutoHandler implements Handler {
  readonly #http: Handler;
  readonly #socks4: Handler;
  readonly #socks5: Handler;
  readonly #readTimeout: number;

  constructor(opts: HandlerOptions) {
    this.#http = new HttpHandler(opts);
    this.#socks4 = new Socks4Handler(opts);
    this.#socks5 = new Socks5Handler(opts);
    this.#readTimeout = opts.metadata.duration("readTimeout", 15_000);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const b = new Uint8Array(1);
    const n = await withDeadline(conn, this.#readTimeout, () => conn.read(b));
    if (n === null || n === 0) return;
    const c = new PrefixedConn(conn, b);
    const h = b[0] === 5 ? this.#socks5 : b[0] === 4 ? this.#socks4 : this.#http;
    return h.handle(c, ctx); // returned, not awaited: no frame of ours waits out the tunnel
  }
}

export function register(reg: Registries): void {
  reg.handlers.register("auto", (o) => new AutoHandler(o));
}
