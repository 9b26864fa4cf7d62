/**
 * The `tun` handler (docs/tun.md §2–3): with a forward target it is a client — it reaches the
 * server over UDP (through the chain: relay, socks5 and the like carry the datagrams), announces
 * its tun addresses with a keep-alive, and moves packets both ways, dialing again when the path
 * fails. Without one it is the server — on the listener's UDP socket it learns which client owns
 * which tun address from their keep-alives and routes packets between its device and the clients
 * (and from client to client).
 *
 * Beyond GOST: with an auther (`tun://user:pass@...`: the user is the client's tun address, the
 * password its passphrase), datagrams from an address that has not passed a keep-alive are
 * dropped — GOST's server writes anyone's packets into its device.
 * @module
 */
import type { NetAddr } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import { formatIp, type IpBytes } from "../../core/ip.ts";
import type { Registries } from "../../core/registry.ts";
import type { Conn } from "../../core/conn.ts";
import type { HandleContext, Handler, HandlerOptions } from "../../core/types.ts";
import {
  decodeKeepalive,
  encodeKeepalive,
  encodeReply,
  ipKey,
  isControl,
  isReply,
  packetDst,
  type TunLink,
  tunLinkOf,
} from "../../protocol/tun.ts";

/** GOST's keep-alive period when `keepalive` is on. */
const DEFAULT_TTL_MS = 10_000;
/** Pause before dialing the server again. */
const REDIAL_MS = 1000;
/** Tun addresses a server keeps routes for (a keep-alive flood cannot grow memory past it). */
const MAX_ROUTES = 4096;
/** The key every client shares in p2p mode. */
const P2P_KEY = ipKey(new Uint8Array(16));
const BUF = 65535;

/** Options of the tun handler (`keepalive`, `ttl`, `passphrase`, `p2p`; each also `tun.<key>`). */
export interface TunHandlerOptions {
  keepalive: boolean;
  ttlMs: number;
  passphrase: string;
  p2p: boolean;
}

export class TunHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #opts: TunHandlerOptions;

  constructor(o: HandlerOptions) {
    const md = o.metadata;
    this.#o = o;
    this.#opts = {
      keepalive: md.bool(["keepalive", "tun.keepalive"]),
      ttlMs: md.duration(["ttl", "tun.ttl"], DEFAULT_TTL_MS) || DEFAULT_TTL_MS,
      passphrase: md.string(["passphrase", "token", "tun.token"]),
      p2p: md.bool(["p2p", "tun.p2p"]),
    };
    if (new TextEncoder().encode(this.#opts.passphrase).length > 16) {
      throw new ConfigError(`${md.path}.passphrase`, "is longer than the 16 bytes GOST sends");
    }
    if (!o.forwarder && !o.auther) {
      o.log.warn(
        "tun: no auther: any UDP sender can announce tun addresses and send packets into the device (as GOST)",
      );
    }
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const link = tunLinkOf(conn);
    if (!link) {
      ctx.log.error("tun: the tun handler serves the tun listener's device only");
      return;
    }
    if (this.#o.forwarder) await this.#client(conn, link, ctx);
    else await this.#server(conn, link, ctx);
  }

  // ------------------------------------------------------------------ client

  async #client(dev: Conn, link: TunLink, ctx: HandleContext): Promise<void> {
    const fw = this.#o.forwarder!;
    const hello = encodeKeepalive(this.#opts.passphrase, link.ips);
    const path: { up: Conn | null } = { up: null };
    let deviceError: unknown = null;
    // One reader of the device for the handler's life; packets go to whichever path is up.
    const pump = (async () => {
      const buf = new Uint8Array(BUF);
      try {
        for (;;) {
          const n = await dev.read(buf);
          if (n === null) break;
          const up = path.up;
          if (n === 0 || !up) continue;
          await up.write(buf.subarray(0, n)).catch(() => {});
        }
      } catch (e) {
        deviceError = e;
      }
      path.up?.close();
    })();
    const stop = () => path.up?.close();
    ctx.signal.addEventListener("abort", stop);
    try {
      while (!ctx.signal.aborted && deviceError === null) {
        const target = fw.select(link.ips.length ? formatIp(link.ips[0]!) : undefined);
        if (!target) {
          ctx.log.error("tun: no server available");
          await sleep(REDIAL_MS, ctx.signal);
          continue;
        }
        const addr = target.addr;
        let c: Conn;
        try {
          c = await this.#o.router.dial("udp", addr, { signal: ctx.signal, log: ctx.log });
          fw.markOk(target);
        } catch (e) {
          fw.markFailed(target);
          ctx.log.error(`tun: ${addr}: ${errorText(e)}`, { dst: addr });
          await sleep(REDIAL_MS, ctx.signal);
          continue;
        }
        path.up = c;
        ctx.log.info(`tun: ${link.name} <-> ${addr}`, { dst: addr });
        try {
          await this.#clientSession(c, dev, hello, ctx);
        } catch (e) {
          if (!ctx.signal.aborted) ctx.log.warn(`tun: ${addr}: ${errorText(e)}`, { dst: addr });
        } finally {
          path.up = null;
          c.close();
        }
        if (!ctx.signal.aborted && deviceError === null) await sleep(REDIAL_MS, ctx.signal);
      }
    } finally {
      ctx.signal.removeEventListener("abort", stop);
      dev.close();
      await pump;
    }
    if (deviceError !== null) ctx.log.error(`tun: ${link.name}: ${errorText(deviceError)}`);
  }

  /** Announces, keeps alive (when asked) and writes what the server sends into the device. */
  async #clientSession(c: Conn, dev: Conn, hello: Uint8Array, ctx: HandleContext): Promise<void> {
    await c.write(hello);
    const { keepalive, ttlMs } = this.#opts;
    let lastReply = Date.now();
    let timer: ReturnType<typeof setInterval> | undefined;
    if (keepalive) {
      timer = setInterval(() => {
        // No reply for three periods: the path (or the server) is gone; dial again.
        if (Date.now() - lastReply > 3 * ttlMs) {
          ctx.log.warn(`tun: no keep-alive reply for ${3 * ttlMs} ms: reconnecting`);
          c.close();
          return;
        }
        c.write(hello).catch(() => {});
      }, ttlMs);
    }
    try {
      const buf = new Uint8Array(BUF);
      for (;;) {
        const n = await c.read(buf);
        if (n === null) throw new Error("the path to the server closed");
        const d = buf.subarray(0, n);
        if (isReply(d)) {
          lastReply = Date.now();
          continue;
        }
        if (isControl(d) || !packetDst(d)) continue;
        await dev.write(d);
      }
    } finally {
      clearInterval(timer);
    }
  }

  // ------------------------------------------------------------------ server

  async #server(dev: Conn, link: TunLink, ctx: HandleContext): Promise<void> {
    const sock = link.socket;
    const { p2p } = this.#opts;
    const auther = this.#o.auther;
    const own = new Set(link.ips.map(ipKey));
    /** tun address (ipKey) → the client's UDP address. */
    const routes = new Map<string, Deno.NetAddr>();
    /** UDP addresses that passed a keep-alive (checked only with an auther). */
    const admitted = new Set<string>();
    const send = (p: Uint8Array, to: Deno.NetAddr) => sock.send(p, to).catch(() => 0);

    const findRoute = (dst: IpBytes): Deno.NetAddr | undefined => {
      if (p2p) return routes.get(P2P_KEY);
      const hit = routes.get(ipKey(dst));
      if (hit) return hit;
      for (const r of link.routes) {
        if (r.prefix.contains(dst)) return r.gw ? routes.get(ipKey(r.gw)) : undefined;
      }
      return undefined;
    };

    const onKeepalive = (d: Uint8Array, from: Deno.NetAddr): void => {
      const ka = decodeKeepalive(d);
      if (!ka) return;
      const peer = `${from.hostname}:${from.port}`;
      if (ka.ips.some((ip) => own.has(ipKey(ip)))) {
        ctx.log.warn(`tun: ${peer} announced this server's own address: ignored`);
        return;
      }
      if (auther) {
        for (const ip of ka.ips) {
          if (!auther.authenticate(formatIp(unmap(ip)), ka.passphrase)) {
            ctx.log.warn(`tun: ${peer}: keep-alive for ${formatIp(unmap(ip))} refused`, {
              client: from.hostname,
            });
            return;
          }
        }
        admitted.add(peer);
      }
      for (const ip of ka.ips) {
        const key = p2p ? P2P_KEY : ipKey(ip);
        if (!routes.has(key) && routes.size >= MAX_ROUTES) {
          ctx.log.warn(`tun: ${MAX_ROUTES} client addresses known: ${formatIp(unmap(ip))} refused`);
          return;
        }
        const old = routes.get(key);
        if (!old || old.hostname !== from.hostname || old.port !== from.port) {
          ctx.log.info(`tun: ${formatIp(unmap(ip))} is at ${peer}`, { client: from.hostname });
        }
        routes.set(key, { transport: "udp", hostname: from.hostname, port: from.port });
      }
      void send(encodeReply(from.hostname), from);
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
          return; // the listener closed its socket
        }
        if (isControl(d)) {
          onKeepalive(d, from);
          continue;
        }
        if (auther && !admitted.has(`${from.hostname}:${from.port}`)) continue;
        const dst = packetDst(d);
        if (!dst) continue;
        const to = p2p ? undefined : findRoute(dst);
        if (to) await send(d, to);
        else await dev.write(d).catch((e) => ctx.log.warn(`tun: ${errorText(e)}`));
      }
    })();

    const stop = () => dev.close();
    ctx.signal.addEventListener("abort", stop);
    try {
      const buf = new Uint8Array(BUF);
      // (the device's reads end with null once the conn is closed)
      for (;;) {
        const n = await dev.read(buf);
        if (n === null) break;
        const d = buf.subarray(0, n);
        const dst = packetDst(d);
        if (!dst) continue;
        const to = findRoute(dst);
        if (to) await send(d, to);
      }
    } catch (e) {
      ctx.log.error(`tun: ${link.name}: ${errorText(e)}`);
    } finally {
      ctx.signal.removeEventListener("abort", stop);
      dev.close();
    }
    // Closing the conn closed the socket too: the receive loop ends.
    await fromClients;
  }
}

function unmap(ip: IpBytes): IpBytes {
  const mapped = ip.length === 16 && ip.subarray(0, 10).every((b) => b === 0) &&
    ip[10] === 0xff && ip[11] === 0xff;
  return mapped ? ip.subarray(12) : ip;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((r) => {
    if (signal.aborted) return r();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      r();
    }
    signal.addEventListener("abort", done);
  });
}

export function register(reg: Registries): void {
  reg.handlers.register("tun", (o) => new TunHandler(o));
}

export type { NetAddr };
