/**
 * The `rtcp` listener (remote TCP port forwarding, docs/reverse.md): it asks the last node of
 * its chain to listen on its address (`listener.chain`; SOCKS5 MUXBIND or relay BIND), or
 * listens locally without a chain, and yields each peer that connects there. When the server or
 * the link goes away it binds again, backing off from 0.5 s to 5 s, and logs why.
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { formatAddr } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import { splitHostPort } from "../../core/addr.ts";
import type { Registries } from "../../core/registry.ts";
import type { Listener, Router } from "../../core/types.ts";

const FIRST_DELAY = 500;
const MAX_DELAY = 5000;

/** Binds through `router` on first accept and again whenever the bind ends. */
export class RtcpListener implements Listener {
  readonly #want: string;
  readonly #router: Router;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #addr: NetAddr;
  #bound?: Listener;
  #delay = 0;

  constructor(addr: string, router: Router, log: Logger) {
    this.#want = addr;
    this.#router = router;
    this.#log = log;
    const { host, port } = splitHostPort(addr);
    // Not "tcp": the port is the far end's, never one of ours (loop detection).
    this.#addr = { transport: "rtcp", hostname: host, port };
  }

  /** The address asked for, then the one the far end reported for the current bind. */
  get addr(): NetAddr {
    return this.#addr;
  }

  async accept(): Promise<Conn | null> {
    const signal = this.#stop.signal;
    for (;;) {
      if (signal.aborted) return null;
      if (!this.#bound) {
        try {
          this.#bound = await this.#router.bind!("tcp", this.#want, { signal, log: this.#log });
        } catch (e) {
          if (signal.aborted) return null;
          await this.#backoff(`bind ${this.#want}: ${errorText(e)}`);
          continue;
        }
        this.#delay = 0;
        const a = this.#bound.addr;
        this.#addr = { ...a, transport: "rtcp" };
        this.#log.info(`bound ${this.#want} at the far end (${formatAddr(a)})`);
      }
      let c: Conn | null = null;
      let why = "the server or the link went away";
      try {
        c = await this.#bound.accept();
      } catch (e) {
        why = errorText(e);
      }
      if (c) return c;
      await this.#bound.close().catch(() => {});
      this.#bound = undefined;
      if (signal.aborted) return null;
      await this.#backoff(`bind ${this.#want} ended: ${why}`);
    }
  }

  async #backoff(why: string): Promise<void> {
    this.#delay = Math.min(this.#delay ? this.#delay * 2 : FIRST_DELAY, MAX_DELAY);
    this.#log.warn(`${why}; binding again in ${this.#delay} ms`);
    const signal = this.#stop.signal;
    await new Promise<void>((r) => {
      const t = setTimeout(r, this.#delay);
      signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
    });
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#bound?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function register(reg: Registries): void {
  reg.listeners.register("rtcp", (o) => {
    if (!o.router?.bind) {
      throw new ConfigError("listener.type", "rtcp needs a router that can bind");
    }
    return Promise.resolve(new RtcpListener(o.addr, o.router, o.log));
  });
}
