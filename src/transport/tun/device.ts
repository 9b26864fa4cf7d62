/**
 * A Linux TUN (or TAP) device over libc FFI (docs/tun.md §1): `/dev/net/tun` opened non-blocking,
 * `TUNSETIFF` with `IFF_NO_PI` (one read = one IP packet, no packet-info header), then addresses,
 * MTU, link state and routes set with iproute2's `ip`. Reads wait in `poll(2)` on Deno's blocking
 * pool, at most {@link POLL_MS} at a time, so closing never waits on a read the kernel will not
 * end; the descriptor is closed only once no call uses it (no reuse of a closed number).
 * @module
 */
import { ConfigError, UnsupportedError } from "../../core/errors.ts";
import { errno, errnoText as errText, type Libc, libc, libcUnavailable } from "../../core/libc.ts";

const O_RDWR = 0o2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001, IFF_TAP = 0x0002, IFF_NO_PI = 0x1000;
const POLLIN = 0x001;
const EAGAIN = 11, EINTR = 4;
/** How long one wait for a packet lasts before the device checks whether it was closed. */
export const POLL_MS = 200;

/** Why a TUN/TAP device cannot be made here, or null when it can (at least in principle). */
export function tunUnavailable(): string | null {
  return libcUnavailable("a tun/tap device");
}

/** How the device is set up (docs/tun.md §1). */
export interface TunDeviceConfig {
  /** `tun` (IP packets) or `tap` (Ethernet frames). */
  mode: "tun" | "tap";
  /** Interface name; empty lets the kernel pick (`tun0`, `tap0`, ...). */
  name: string;
  /** MTU of the interface. */
  mtu: number;
  /** Addresses with prefix length (`10.123.0.1/24`, `fd00::1/64`). */
  net: string[];
  /** Routes through the device: destination CIDR and an optional gateway. */
  routes: { dst: string; gw?: string }[];
}

/** Runs `ip args...`; throws with its message when it fails. */
async function ip(args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  } catch (e) {
    throw new UnsupportedError(
      `setting up the device needs iproute2's "ip" (${e instanceof Error ? e.message : e})`,
    );
  }
  if (!out.success) {
    const msg = new TextDecoder().decode(out.stderr).trim();
    throw new ConfigError("ip " + args.join(" "), msg || `exited with ${out.code}`);
  }
}

/** An open TUN/TAP device: one `read` is one packet (frame), one `write` sends one. */
export class TunDevice {
  /** The interface's name (the kernel's pick when none was asked for). */
  readonly name: string;
  readonly mtu: number;
  readonly #c: Libc;
  readonly #fd: number;
  readonly #pollfd = new Uint8Array(8);
  #closed = false;
  #polling: Promise<unknown> | null = null;
  #fdClosed = false;
  /** Packets the kernel would not take (its queue full): dropped, as a full link would. */
  dropped = 0;

  private constructor(c: Libc, fd: number, name: string, mtu: number) {
    this.#c = c;
    this.#fd = fd;
    this.name = name;
    this.mtu = mtu;
    new DataView(this.#pollfd.buffer).setInt32(0, fd, true);
    new DataView(this.#pollfd.buffer).setInt16(4, POLLIN, true);
  }

  /** Creates the device and brings it up with its addresses and routes. Needs CAP_NET_ADMIN. */
  static async open(cfg: TunDeviceConfig): Promise<TunDevice> {
    const c = libc("a tun/tap device");
    if (new TextEncoder().encode(cfg.name).length > 15) {
      throw new ConfigError("name", `"${cfg.name}" is longer than 15 bytes (IFNAMSIZ)`);
    }
    const fd = c.open(new TextEncoder().encode("/dev/net/tun\0"), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const n = errno(c);
      throw new UnsupportedError(`cannot open /dev/net/tun: ${errText(c, n)}`);
    }
    const ifr = new Uint8Array(40);
    ifr.set(new TextEncoder().encode(cfg.name));
    new DataView(ifr.buffer).setUint16(
      16,
      (cfg.mode === "tun" ? IFF_TUN : IFF_TAP) | IFF_NO_PI,
      true,
    );
    if (c.ioctl(fd, BigInt(TUNSETIFF), ifr) < 0) {
      const n = errno(c);
      c.close(fd);
      throw new UnsupportedError(
        `cannot create ${cfg.mode} device${cfg.name ? ` "${cfg.name}"` : ""}: ${errText(c, n)}` +
          (n === 1 ? " (needs CAP_NET_ADMIN)" : ""),
      );
    }
    const end = ifr.indexOf(0);
    const name = new TextDecoder().decode(ifr.subarray(0, end < 0 ? 16 : Math.min(end, 16)));
    const dev = new TunDevice(c, fd, name, cfg.mtu);
    try {
      await ip(["link", "set", "dev", name, "mtu", String(cfg.mtu)]);
      for (const a of cfg.net) await ip(["addr", "add", a, "dev", name]);
      await ip(["link", "set", "dev", name, "up"]);
      for (const r of cfg.routes) {
        await ip(["route", "replace", r.dst, ...(r.gw ? ["via", r.gw] : []), "dev", name]);
      }
    } catch (e) {
      dev.close();
      throw e;
    }
    return dev;
  }

  /** The next packet into `p` (its length; longer packets are cut); `null` once closed. */
  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) return null;
      const n = Number(this.#c.read(this.#fd, p, BigInt(p.length)));
      if (n >= 0) return n;
      const e = errno(this.#c);
      if (e === EINTR) continue;
      if (e !== EAGAIN) throw new Error(`${this.name}: read: ${errText(this.#c, e)}`);
      const wait = this.#c.poll(this.#pollfd, 1n, POLL_MS);
      this.#polling = wait;
      try {
        await wait;
      } finally {
        this.#polling = null;
        if (this.#closed) this.#release();
      }
    }
  }

  /** Sends one packet; a packet the kernel's queue has no room for is dropped. */
  write(p: Uint8Array): number {
    if (this.#closed) throw new Error(`${this.name}: closed`);
    for (;;) {
      const n = Number(this.#c.write(this.#fd, p, BigInt(p.length)));
      if (n >= 0) return p.length;
      const e = errno(this.#c);
      if (e === EINTR) continue;
      if (e === EAGAIN || e === 105 /* ENOBUFS */) {
        this.dropped++;
        return p.length;
      }
      throw new Error(`${this.name}: write: ${errText(this.#c, e)}`);
    }
  }

  /** Closes the device (the interface, its addresses and routes go with it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#polling) this.#release();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #release(): void {
    if (this.#fdClosed) return;
    this.#fdClosed = true;
    this.#c.close(this.#fd);
  }
}
