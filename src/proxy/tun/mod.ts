/**
 * The `tun` handler (docs/tun.md §2–3): with a forward target it is a client — it reaches the
 * server over UDP (through the chain: relay, socks5 and the like carry the datagrams), announces
 * its tun addresses with a keep-alive, and moves packets both ways, dialing again when the path
 * fails. Without one it is the server — on the listener's UDP socket it learns which client owns
 * which tun address from their keep-alives and routes packets between its device and the clients
 * (and from client to client).
 *
 * Beyond GOST: with an auther (`tun://user:pass@...`: the user is the client's tun address, the
 * password its passphrase), a client's packets must come from the UDP address that announced
 * their source address — GOST's server writes anyone's packets into its device. A client repeats
 * its announcement until the server answers (GOST's sends it once per dial), so a server that
 * starts later or restarts learns it again.
 * @module
 */
import { Backoff } from "../../core/backoff.ts";
import { DevicePump, runDeviceClient } from "../device_pump.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import { formatIp, type IpBytes } from "../../core/ip.ts";
import type { Registries } from "../../core/registry.ts";
import type { Conn } from "../../core/conn.ts";
import type { HandleContext, Handler, HandlerOptions } from "../../core/types.ts";
import type { Logger } from "../../core/log.ts";
import {
  decodeKeepalive,
  encodeKeepalive,
  encodeReply,
  ipKey,
  isControl,
  isReply,
  packetDst,
  packetSrc,
  type TunLink,
  tunLinkOf,
} from "../../protocol/tun.ts";

/** GOST's keep-alive period when `keepalive` is on. */
const DEFAULT_TTL_MS = 10_000;
/** Pause before dialing the server again. */
const REDIAL_MS = 1000;
/** Until the server first answers, the announcement is repeated from 1 s, doubling up to this. */
const HELLO_MAX_MS = 30_000;
/** Tun addresses a server keeps routes for; beyond it the least recently announced goes. */
const MAX_ROUTES = 4096;
/** Addresses one keep-alive may announce (GOST's own clients announce their `net` entries). */
const MAX_ANNOUNCED = 64;
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

/** Logs a warning of one kind at most once per 10 s (floods must not become log floods). */
class Throttled {
  readonly #last = new Map<string, number>();
  warn(log: Logger, kind: string, msg: string, fields?: Record<string, unknown>): void {
    const now = Date.now();
    if (now - (this.#last.get(kind) ?? -Infinity) < 10_000) return;
    this.#last.set(kind, now);
    log.warn(msg, fields);
  }
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
    const client = o.forwarder !== undefined;
    // Security settings on the side where they do nothing are refused, not ignored.
    if (!client && md.has("passphrase", "token", "tun.token")) {
      throw new ConfigError(
        `${md.path}.passphrase`,
        "is what a client sends; a server checks it with an auther (tun://<client tun address>:<passphrase>@:8421)",
      );
    }
    if (client && o.auther) {
      throw new ConfigError(
        `${md.path.replace(/\.metadata$/, "")}.auth`,
        "a tun client checks nobody: the server's auther checks the client's passphrase (passphrase=...)",
      );
    }
    if (!client && md.has("keepalive", "tun.keepalive", "ttl", "tun.ttl")) {
      o.log.warn("tun: keepalive/ttl are client settings: a server only answers keep-alives");
    }
    if (client && this.#opts.p2p) o.log.warn("tun: p2p is a server setting: ignored by a client");
    if (!client && !o.auther) {
      o.log.warn(
        "tun: no auther: any UDP sender can announce tun addresses and send packets into the device (as GOST)",
      );
    }
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const link = tunLinkOf(conn);
    if (!link || link.mode !== "tun") {
      ctx.log.error("tun: the tun handler serves the tun listener's device only");
      return;
    }
    if (this.#o.forwarder) await this.#client(conn, link, ctx);
    else await this.#server(conn, link, ctx);
  }

  // ------------------------------------------------------------------ client

  async #client(dev: Conn, link: TunLink, ctx: HandleContext): Promise<void> {
    const hello = encodeKeepalive(this.#opts.passphrase, link.ips);
    await runDeviceClient(ctx, new DevicePump(dev, ctx, (p) => p), {
      name: "tun",
      device: link.name,
      fw: this.#o.forwarder!,
      router: this.#o.router,
      client: link.ips.length ? formatIp(link.ips[0]!) : undefined,
      backoff: new Backoff(REDIAL_MS, REDIAL_MS),
      session: (c, signal) => this.#clientSession(c, dev, hello, ctx, signal),
    });
  }

  /**
   * Announces (again and again until the server answers, then every `ttl` with keepalive on),
   * and writes what the server sends into the device.
   */
  async #clientSession(
    c: Conn,
    dev: Conn,
    hello: Uint8Array,
    ctx: HandleContext,
    signal: AbortSignal,
  ): Promise<void> {
    const { keepalive, ttlMs } = this.#opts;
    let answered = false;
    let lastReply = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let helloDelay = 1000;
    let unanswered = 0;
    const tick = () => {
      if (signal.aborted) return;
      if (!answered) {
        if (++unanswered === 3) {
          ctx.log.warn("tun: the server has not answered the announcement yet (wrong passphrase?)");
        }
        c.write(hello).catch(() => {});
        timer = setTimeout(tick, helloDelay);
        helloDelay = Math.min(helloDelay * 2, HELLO_MAX_MS);
        return;
      }
      if (!keepalive) return;
      // No reply for three periods: the path (or the server) is gone; dial again.
      if (Date.now() - lastReply > 3 * ttlMs) {
        ctx.log.warn(`tun: no keep-alive reply for ${3 * ttlMs} ms: reconnecting`);
        c.close();
        return;
      }
      c.write(hello).catch(() => {});
      timer = setTimeout(tick, ttlMs);
    };
    tick();
    try {
      const buf = new Uint8Array(BUF);
      for (;;) {
        const n = await c.read(buf);
        if (n === null) throw new Error("the path to the server closed");
        const d = buf.subarray(0, n);
        if (isReply(d)) {
          lastReply = Date.now();
          if (!answered) {
            answered = true;
            clearTimeout(timer);
            if (keepalive) timer = setTimeout(tick, ttlMs);
          }
          continue;
        }
        if (isControl(d) || !packetDst(d)) continue;
        await dev.write(d);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  // ------------------------------------------------------------------ server

  async #server(dev: Conn, link: TunLink, ctx: HandleContext): Promise<void> {
    const sock = link.socket;
    if (!sock) {
      ctx.log.error(
        "tun: a server needs its listener's socket (a service that forwards is a client)",
      );
      return;
    }
    const { p2p } = this.#opts;
    const auther = this.#o.auther;
    const own = new Set(link.ips.map(ipKey));
    const throttled = new Throttled();
    /** tun address (ipKey) → the client's UDP address, least recently announced first. */
    const routes = new Map<string, Deno.NetAddr>();
    /** With an auther: UDP address → the tun addresses it authenticated for. */
    const owners = new Map<string, Set<string>>();
    const peerKey = (a: Deno.NetAddr) => `${a.hostname}:${a.port}`;
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

    /** Drops `key`'s route and its owner's claim on it. */
    const forget = (key: string): void => {
      const at = routes.get(key);
      if (!at) return;
      routes.delete(key);
      const pk = peerKey(at);
      const set = owners.get(pk);
      if (set) {
        set.delete(key);
        if (set.size === 0) owners.delete(pk);
      }
    };

    /** With an auther: may `peer` send a packet from `src` (its own address, or behind it)? */
    const mayUse = (peer: string, src: IpBytes): boolean => {
      const set = owners.get(peer);
      if (!set) return false;
      if (set.has(ipKey(src))) return true;
      for (const r of link.routes) {
        if (r.gw && r.prefix.contains(src)) return set.has(ipKey(r.gw));
      }
      return false;
    };

    const onKeepalive = (d: Uint8Array, from: Deno.NetAddr): void => {
      const ka = decodeKeepalive(d);
      if (!ka) return;
      const peer = peerKey(from);
      if (ka.ips.length > MAX_ANNOUNCED) {
        throttled.warn(
          ctx.log,
          "many",
          `tun: ${peer} announced ${ka.ips.length} addresses: ignored`,
        );
        return;
      }
      if (ka.ips.some((ip) => own.has(ipKey(ip)))) {
        throttled.warn(ctx.log, "own", `tun: ${peer} announced this server's own address: ignored`);
        return;
      }
      if (auther) {
        for (const ip of ka.ips) {
          if (!auther.authenticate(formatIp(unmap(ip)), ka.passphrase)) {
            throttled.warn(
              ctx.log,
              "auth",
              `tun: ${peer}: keep-alive for ${formatIp(unmap(ip))} refused`,
              { client: from.hostname },
            );
            return;
          }
        }
      }
      for (const ip of ka.ips) {
        const key = p2p ? P2P_KEY : ipKey(ip);
        const old = routes.get(key);
        if (old && peerKey(old) !== peer) forget(key);
        // Least recently announced first: a refresh moves the route to the end.
        routes.delete(key);
        while (routes.size >= MAX_ROUTES) forget(routes.keys().next().value!);
        routes.set(key, { transport: "udp", hostname: from.hostname, port: from.port });
        if (auther) {
          let set = owners.get(peer);
          if (!set) owners.set(peer, set = new Set());
          set.add(key);
        }
        if (!old || peerKey(old) !== peer) {
          ctx.log.debug(`tun: ${formatIp(unmap(ip))} is at ${peer}`, { client: from.hostname });
        }
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
          return; // the socket closed with the device
        }
        // The service's admission, per sender (the service's one conn is the device).
        if (!link.admit(from)) continue;
        if (isControl(d)) {
          onKeepalive(d, from);
          continue;
        }
        const dst = packetDst(d);
        if (!dst) continue;
        if (auther && !mayUse(peerKey(from), packetSrc(d)!)) continue;
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

export function register(reg: Registries): void {
  reg.handlers.register("tun", (o) => new TunHandler(o));
}
