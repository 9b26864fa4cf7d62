/**
 * The `tap` handler (docs/tun.md §5): Ethernet frames over UDP, one frame per datagram. With a
 * forward target it is a client (frames to and from the server, through the chain); without, the
 * server: it learns each client's MAC addresses from the frames it sends, forwards frames to the
 * client that owns their destination, floods broadcasts, and gives the rest to its device.
 *
 * With the handler's auth (`tap://aes-128-gcm:pass@...`, GOST's shadowsocks method and password;
 * `key` = the raw key) every datagram is `salt ‖ AEAD(frame) ‖ tag`; datagrams that fail to open
 * are dropped before they can teach the server a MAC address.
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import { Backoff } from "../../core/backoff.ts";
import { DevicePump, runDeviceClient } from "../device_pump.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Registries } from "../../core/registry.ts";
import type { HandleContext, Handler, HandlerOptions } from "../../core/types.ts";
import { openDatagram, sealDatagram, type SsCipher, ssCipher } from "../../protocol/ss_aead.ts";
import { type TunLink, tunLinkOf } from "../../protocol/tun.ts";

/** MAC addresses a server keeps (a flood of made-up sources cannot grow memory past it). */
const MAX_MACS = 4096;
const BUF = 65535;

function macKey(f: Uint8Array, at: number): string {
  let s = "";
  for (let i = at; i < at + 6; i++) s += (f[i]! < 16 ? "0" : "") + f[i]!.toString(16);
  return s;
}

const BROADCAST = "ffffffffffff";

export class TapHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #cipher: SsCipher | null;

  constructor(o: HandlerOptions) {
    this.#o = o;
    const key = o.metadata.string("key");
    const method = o.auth?.username;
    this.#cipher = method
      ? ssCipher(method, o.auth?.password, key ? new TextEncoder().encode(key) : undefined)
      : null;
    if (key && !this.#cipher) {
      // An encryption key that encrypts nothing: refused rather than sending frames in clear.
      throw new ConfigError(
        `${o.metadata.path}.key`,
        "needs a method to use it with (tap://aes-256-gcm:x@...)",
      );
    }
    if (!this.#cipher && !o.forwarder) {
      o.log.warn(
        "tap: no method/password: frames travel in clear and any UDP sender can put frames on the device (as GOST)",
      );
    }
  }

  #seal(f: Uint8Array): Uint8Array {
    return this.#cipher ? sealDatagram(this.#cipher, f) : f;
  }

  /** The frame in a datagram, or null if it does not open (wrong key, garbage) or is too short. */
  #open(d: Uint8Array): Uint8Array | null {
    let f = d;
    if (this.#cipher) {
      try {
        f = openDatagram(this.#cipher, d);
      } catch {
        return null;
      }
    }
    return f.length >= 14 ? f : null;
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const link = tunLinkOf(conn);
    if (!link || link.mode !== "tap") {
      ctx.log.error("tap: the tap handler serves the tap listener's device only");
      return;
    }
    if (this.#o.forwarder) await this.#client(conn, link, ctx);
    else await this.#server(conn, link, ctx);
  }

  async #client(dev: Conn, link: TunLink, ctx: HandleContext): Promise<void> {
    // Redialing waits 1 s, doubling up to 6 s, as GOST's tap client.
    const backoff = new Backoff(1000, 6000);
    await runDeviceClient(ctx, new DevicePump(dev, ctx, (f) => this.#seal(f), 14), {
      name: "tap",
      device: link.name,
      fw: this.#o.forwarder!,
      router: this.#o.router,
      backoff,
      session: async (c) => {
        const buf = new Uint8Array(BUF);
        for (;;) {
          const n = await c.read(buf);
          if (n === null) throw new Error("the path to the server closed");
          backoff.ok(); // frames flow: a later failure starts the backoff afresh
          const f = this.#open(buf.subarray(0, n));
          if (f) await dev.write(f);
        }
      },
    });
  }

  async #server(dev: Conn, link: TunLink, ctx: HandleContext): Promise<void> {
    const sock = link.socket;
    if (!sock) {
      ctx.log.error(
        "tap: a server needs its listener's socket (a service that forwards is a client)",
      );
      return;
    }
    /** MAC (hex) → the client's UDP address. */
    const macs = new Map<string, Deno.NetAddr>();
    const send = (f: Uint8Array, to: Deno.NetAddr) => sock.send(this.#seal(f), to).catch(() => 0);
    const clients = (): Deno.NetAddr[] => {
      const seen = new Map<string, Deno.NetAddr>();
      for (const a of macs.values()) seen.set(`${a.hostname}:${a.port}`, a);
      return [...seen.values()];
    };

    const fromClients = (async () => {
      const buf = new Uint8Array(BUF);
      for (;;) {
        let d: Uint8Array, from: Deno.NetAddr;
        try {
          const [x, f] = await sock.receive(buf);
          d = x;
          from = f as Deno.NetAddr;
        } catch {
          return; // the listener's socket closed with the device
        }
        // The service's admission, per sender (the service's one conn is the device).
        if (!link.admit(from)) continue;
        const f = this.#open(d);
        if (!f) continue;
        const src = macKey(f, 6), dst = macKey(f, 0);
        // Learn the sender (a multicast/broadcast source is not an address anyone owns).
        // Least recently heard first: when full, the oldest MAC goes (a flood cannot lock out).
        if ((f[6]! & 1) === 0) {
          const old = macs.get(src);
          macs.delete(src);
          if (macs.size >= MAX_MACS) macs.delete(macs.keys().next().value!);
          const same = old && old.port === from.port && old.hostname === from.hostname;
          macs.set(
            src,
            same ? old : { transport: "udp", hostname: from.hostname, port: from.port },
          );
        }
        if (dst === BROADCAST) {
          const me = `${from.hostname}:${from.port}`;
          for (const c of clients()) if (`${c.hostname}:${c.port}` !== me) await send(f, c);
        } else {
          const to = macs.get(dst);
          if (to) {
            await send(f, to);
            continue;
          }
        }
        await dev.write(f).catch((e) => ctx.log.warn(`tap: ${errorText(e)}`));
      }
    })();

    const stop = () => dev.close();
    ctx.signal.addEventListener("abort", stop);
    try {
      const buf = new Uint8Array(BUF);
      for (;;) {
        const n = await dev.read(buf);
        if (n === null) break;
        if (n < 14) continue;
        const f = buf.subarray(0, n);
        const dst = macKey(f, 0);
        if (dst === BROADCAST) {
          for (const c of clients()) await send(f, c);
        } else {
          const to = macs.get(dst);
          if (to) await send(f, to);
        }
      }
    } catch (e) {
      ctx.log.error(`tap: ${link.name}: ${errorText(e)}`);
    } finally {
      ctx.signal.removeEventListener("abort", stop);
      dev.close();
    }
    await fromClients;
  }
}

export function register(reg: Registries): void {
  reg.handlers.register("tap", (o) => new TapHandler(o));
}
