/**
 * The client side of a device tunnel (tun, tap): one reader of the device for the handler's
 * life, whose packets go to whichever path to the server is up (none: dropped, as a link that is
 * down would). Its `signal` ends with the service or with the device (closed or failing), so the
 * handler stops dialing at once.
 * @module
 */
import type { Conn } from "../core/conn.ts";
import type { Backoff } from "../core/backoff.ts";
import { errorText } from "../core/errors.ts";
import type { HandleContext, Router, TargetSelector } from "../core/types.ts";

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

/** What {@link runDeviceClient} needs from its handler. */
export interface DeviceClient {
  /** `tun` or `tap`, for logs. */
  name: string;
  /** The device's interface name, for logs. */
  device: string;
  fw: TargetSelector;
  router: Router;
  /** Key for the forwarder's `hash` strategy. */
  client?: string;
  /** Waits between dials (reset with `ok()` while the path works). */
  backoff: Backoff;
  /** Runs one path until it fails (throws) or the pump's signal aborts. */
  session(c: Conn, signal: AbortSignal): Promise<void>;
}

/**
 * A device tunnel's client loop: dials the server over UDP through the chain, runs `session` on
 * the path, and dials again after the backoff, until the service stops or the device ends.
 */
export async function runDeviceClient(
  ctx: HandleContext,
  pump: DevicePump,
  o: DeviceClient,
): Promise<void> {
  try {
    while (!pump.signal.aborted) {
      const target = o.fw.select(o.client);
      if (target) {
        const addr = target.addr;
        let c: Conn | null = null;
        try {
          c = await o.router.dial("udp", addr, { signal: pump.signal, log: ctx.log });
          o.fw.markOk(target);
          if (pump.signal.aborted) break;
          pump.up = c;
          ctx.log.info(`${o.name}: ${o.device} <-> ${addr}`, { dst: addr });
          await o.session(c, pump.signal);
        } catch (e) {
          if (pump.signal.aborted) break;
          if (!c) o.fw.markFailed(target);
          ctx.log.warn(`${o.name}: ${addr}: ${errorText(e)}`, { dst: addr });
        } finally {
          pump.up = null;
          c?.close();
        }
      } else ctx.log.error(`${o.name}: no server available`);
      await o.backoff.fail(pump.signal);
    }
  } finally {
    await pump.finish();
  }
  if (pump.deviceError !== null) {
    ctx.log.error(`${o.name}: ${o.device}: ${errorText(pump.deviceError)}`);
  }
}
