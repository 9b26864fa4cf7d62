/**
 * The `tun` listener (docs/tun.md §1): makes a Linux TUN device with the `net` addresses, `mtu`
 * and routes, and (unless the service forwards: a client) binds the UDP socket of the listen
 * address, where a tun server takes its clients' datagrams. It yields the device as one datagram conn (one read = one IP packet); when
 * the handler is done with it, the device goes and a new one is made a second later, as GOST does.
 * Keys GOST reads elsewhere only (`peer`: macOS; `guid`: Windows; `dns`: systemd-resolved;
 * `router`: named routers) are refused by name.
 * @module
 */
import { type Conn, ConnBase, type NetAddr } from "../../core/conn.ts";
import { Backoff } from "../../core/backoff.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import { Cidr, formatIp, type IpBytes, parseIp } from "../../core/ip.ts";
import type { Metadata } from "../../core/metadata.ts";
import type { Registries } from "../../core/registry.ts";
import type { Listener, ListenerOptions, RawGuard } from "../../core/types.ts";
import type { Logger } from "../../core/log.ts";
import type { TunLink } from "../../protocol/tun.ts";
import { TunDevice, type TunDeviceConfig, tunUnavailable } from "./device.ts";

/** GOST's default MTU for tun and tap devices. */
export const DEFAULT_MTU = 1420;
/** Pause before a device is made again after its handler let it go. */
const REOPEN_MS = 1000;

/** The device settings and the handler's view of them, read from the listener's metadata. */
export interface TunSettings {
  device: TunDeviceConfig;
  ips: IpBytes[];
  routes: TunLink["routes"];
}

/**
 * Reads `name`, `net`, `mtu`, `gw`, `route`, `routes` (for tun each also as `tun.<key>`, as GOST
 * reads them; tap has no prefixed form).
 */
export function tunSettings(md: Metadata, mode: "tun" | "tap" = "tun"): TunSettings {
  const keys = (k: string) => mode === "tun" ? [k, `tun.${k}`] : [k];
  const refused: [string, string][] = mode === "tun"
    ? [
      ["peer", "sets a point-to-point peer on macOS only"],
      ["guid", "names a Windows wintun adapter"],
      ["dns", "needs systemd-resolved (resolvectl): not supported yet; set DNS in the OS"],
      ["router", "named routers are not supported yet; use route/routes"],
    ]
    : [["componentID", "names a Windows TAP adapter"]];
  for (const [k, why] of refused) {
    if (md.has(...keys(k))) throw new ConfigError(`${md.path}.${k}`, why);
  }
  const name = md.string(keys("name"));
  const net = md.strings(keys("net"));
  if (net.length === 0) {
    throw new ConfigError(
      `${md.path}.net`,
      `a ${mode} device needs its address (net=10.123.0.1/24)`,
    );
  }
  const ips: IpBytes[] = [];
  for (const n of net) {
    const c = Cidr.parse(n);
    if (!c) {
      throw new ConfigError(`${md.path}.net`, `"${n}" is not an address with a prefix length`);
    }
    ips.push(parseIp(n.slice(0, n.indexOf("/")))!);
  }
  let mtu = md.int(keys("mtu"), DEFAULT_MTU);
  if (mtu <= 0) mtu = DEFAULT_MTU;
  if (mtu < 576 || mtu > 65535) throw new ConfigError(`${md.path}.mtu`, `${mtu} is out of range`);
  const gwText = md.string(keys("gw"));
  const gw = gwText ? parseIp(gwText) : undefined;
  if (gwText && !gw) throw new ConfigError(`${md.path}.gw`, `"${gwText}" is not an IP address`);
  const list: { dst: string; gw?: string }[] = [];
  for (const r of md.strings(keys("route"))) {
    list.push({ dst: r, gw: gwText || undefined });
  }
  for (const item of md.strings(keys("routes"))) {
    const [dst = "", g, ...extra] = item.trim().split(/\s+/);
    if (extra.length > 0 || (g !== undefined && !parseIp(g))) {
      throw new ConfigError(`${md.path}.routes`, `"${item}" is not "CIDR [gateway IP]"`);
    }
    list.push({ dst, gw: g ?? (gwText || undefined) });
  }
  const routes: TunLink["routes"] = [];
  for (const r of list) {
    const prefix = Cidr.parse(r.dst);
    if (!prefix) throw new ConfigError(`${md.path}.routes`, `"${r.dst}" is not a CIDR prefix`);
    routes.push({ prefix, gw: r.gw ? parseIp(r.gw) : undefined });
  }
  return { device: { mode, name, mtu, net, routes: list }, ips, routes };
}

/** The device as a datagram conn, carrying what the handler needs ({@link TunLink}). */
export class TunConn extends ConnBase {
  readonly datagram = true;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly tunLink: TunLink;
  readonly device: TunDevice;
  /** Resolves once the conn is closed (the listener then makes the next device). */
  readonly closed: Promise<void>;
  #done!: () => void;

  constructor(device: TunDevice, link: TunLink) {
    super();
    this.device = device;
    this.tunLink = link;
    this.localAddr = link.addr;
    this.remoteAddr = { transport: link.mode, hostname: formatIp(link.ips[0]!), port: 0 };
    this.closed = new Promise((r) => this.#done = r);
  }

  read(p: Uint8Array): Promise<number | null> {
    return this.device.read(p);
  }

  write(p: Uint8Array): Promise<number> {
    try {
      return Promise.resolve(this.device.write(p));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  /** Closes the device and the UDP socket (the listener binds the address again for the next). */
  close(): void {
    this.device.close();
    try {
      this.tunLink.socket?.close();
    } catch { /* closed */ }
    this.#done();
  }
}

/** Yields one device at a time (docs/tun.md §1). */
export class TunListener implements Listener {
  readonly addr: NetAddr;
  /** Datagrams to the socket end in the device: a relay may send them here (docs/tun.md §2). */
  readonly endpoint = true;
  #socket: Deno.DatagramConn | null;
  readonly #settings: TunSettings;
  readonly #log: Logger;
  #next: TunDevice | null;
  #current: TunConn | null = null;
  #closed = false;
  /** Resolves when the listener is closed (ends waits in `accept`). */
  readonly #stop: Promise<void>;
  #stopNow!: () => void;
  readonly #stopper = new AbortController();
  readonly #stopSignal = this.#stopper.signal;
  readonly #retry = new Backoff(REOPEN_MS, 30_000);
  readonly #guard?: RawGuard;
  /** The service's admission is applied per datagram sender by the handler (see `admit`). */
  readonly guardsRaw = true;

  /** A server's listener keeps a socket on its address; a client's (the service forwards) none. */
  readonly #serves: boolean;

  constructor(
    socket: Deno.DatagramConn | null,
    addr: NetAddr,
    settings: TunSettings,
    first: TunDevice,
    log: Logger,
    guard?: RawGuard,
  ) {
    this.#guard = guard;
    this.#socket = socket;
    this.#serves = socket !== null;
    const a = socket ? socket.addr as Deno.NetAddr : addr;
    this.addr = { transport: "udp", hostname: a.hostname, port: a.port };
    this.#settings = settings;
    this.#next = first;
    this.#log = log;
    this.#stop = new Promise((r) => this.#stopNow = r);
  }

  /** The interface name of the device now in use (or about to be handed out). */
  get deviceName(): string | undefined {
    return this.#current?.device.name ?? this.#next?.name;
  }

  async accept(): Promise<TunConn | null> {
    if (this.#current) {
      await Promise.race([this.#current.closed, this.#stop]);
      this.#current = null;
      await this.#pause(REOPEN_MS);
    }
    const mode = this.#settings.device.mode;
    while (!this.#closed) {
      let dev = this.#next;
      this.#next = null;
      try {
        dev ??= await TunDevice.open(this.#settings.device);
        if (!this.#closed && this.#serves) {
          this.#socket ??= bind(this.addr.hostname, this.addr.port);
        }
      } catch (e) {
        dev?.close();
        this.#log.error(`${mode}: ${errorText(e)} (trying again)`);
        // A device that keeps failing (the module gone, the name taken) is retried ever slower.
        await this.#retry.fail(this.#stopSignal);
        continue;
      }
      if (this.#closed) {
        dev.close();
        break;
      }
      this.#retry.ok();
      this.#log.info(`${mode}: device ${dev.name} up`, {
        net: this.#settings.device.net.join(","),
      });
      const guard = this.#guard;
      this.#current = new TunConn(dev, {
        mode,
        name: dev.name,
        ips: this.#settings.ips,
        routes: this.#settings.routes,
        socket: this.#socket,
        addr: this.addr,
        admit: (peer) => {
          if (!guard) return true;
          const release = guard({ remoteAddr: peer, localAddr: this.addr } as Conn);
          release?.();
          return release !== null;
        },
      });
      this.#socket = null; // the conn owns it now
      return this.#current;
    }
    return null;
  }

  async #pause(ms: number): Promise<void> {
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([new Promise((r) => t = setTimeout(r, ms)), this.#stop]);
    clearTimeout(t);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#next?.close();
    this.#current?.close();
    try {
      this.#socket?.close();
    } catch { /* closed */ }
    this.#stopNow();
    this.#stopper.abort();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function bind(hostname: string, port: number): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port });
}

/** Builds the tun listener: the first device is made now, so a start-up error says why. */
export function createTunListener(o: ListenerOptions): Promise<Listener> {
  return createDeviceListener(o, "tun");
}

/** Builds the tap listener (docs/tun.md §5): the same, with an Ethernet (TAP) device. */
export function createTapListener(o: ListenerOptions): Promise<Listener> {
  return createDeviceListener(o, "tap");
}

async function createDeviceListener(o: ListenerOptions, mode: "tun" | "tap"): Promise<Listener> {
  const settings = tunSettings(o.metadata, mode);
  const why = tunUnavailable();
  if (why) throw new ConfigError(o.metadata.path, why);
  const { host, port } = splitHostPort(o.addr);
  const hostname = listenHost(host);
  // A client (the service forwards) reads no socket of its own: binding one would only clash
  // with a server on the same host and port.
  const socket = o.forwarding ? null : bind(hostname, port);
  let first: TunDevice;
  try {
    first = await TunDevice.open(settings.device);
  } catch (e) {
    socket?.close();
    throw e;
  }
  const addr: NetAddr = { transport: "udp", hostname, port };
  return new TunListener(socket, addr, settings, first, o.log, o.guard);
}

export function register(reg: Registries): void {
  reg.listeners.register("tun", createTunListener);
  reg.listeners.register("tap", createTapListener);
}
