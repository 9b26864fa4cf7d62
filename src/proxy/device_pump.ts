/**
 * The client side of a device tunnel (tun, tap): one reader of the device for the handler's
 * life, whose packets go to whichever path to the server is up (none: dropped, as a link that is
 * down would). Its `signal` ends with the service or with the device (closed or failing), so the
 * handler stops dialing at once.
 * @module
 */
import type { Conn } from "../core/conn.ts";
import type { HandleContext } from "../core/types.ts";

export class DevicePump {
  /** The path packets go to now (the handler sets it while a path is up). */
  up: Conn | null = null;
  /** Why the device failed, if it did. */
  deviceError: unknown = null;
  readonly #life = new AbortController();
  readonly #ctx: HandleContext;
  readonly #dev: Conn;
  readonly #stop = () => this.#life.abort();
  readonly #done: Promise<void>;

  /** `seal` turns a packet into what goes on the path; packets shorter than `min` are skipped. */
  constructor(dev: Conn, ctx: HandleContext, seal: (p: Uint8Array) => Uint8Array, min = 1) {
    this.#dev = dev;
    this.#ctx = ctx;
    ctx.signal.addEventListener("abort", this.#stop);
    if (ctx.signal.aborted) this.#life.abort();
    this.#life.signal.addEventListener("abort", () => this.up?.close());
    this.#done = (async () => {
      const buf = new Uint8Array(65535);
      try {
        for (;;) {
          const n = await dev.read(buf);
          if (n === null) break;
          const up = this.up;
          if (n < min || !up) continue;
          await up.write(seal(buf.subarray(0, n))).catch(() => {});
        }
      } catch (e) {
        this.deviceError = e;
      }
      this.#life.abort();
    })();
  }

  /** Aborted once the service stops or the device ends. */
  get signal(): AbortSignal {
    return this.#life.signal;
  }

  /** Closes the device and waits for its reader. */
  async finish(): Promise<void> {
    this.#ctx.signal.removeEventListener("abort", this.#stop);
    this.#dev.close();
    await this.#done;
  }
}
