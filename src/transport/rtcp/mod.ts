/**
 * The `rtcp` and `rudp` listeners (remote port forwarding, docs/reverse.md): they ask the last
 * node of their chain to listen on their address (`listener.chain`; SOCKS5 MUXBIND / UDP-TUN,
 * relay BIND), or listen locally without a chain, and yield each peer that connects there (for
 * rudp, each peer address as a datagram session). When the server or the link goes away they
 * bind again, backing off from 0.5 s to 5 s, and log why.
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { formatAddr } from "../../core/conn.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import { splitHostPort } from "../../core/addr.ts";
import type { Registries } from "../../core/registry.ts";
import type { Listener, Network, Router } from "../../core/types.ts";
import { type PacketDemuxOptions, packetDemuxOptions } from "../../core/packet_demux.ts";

const FIRST_DELAY = 500;
const MAX_DELAY = 5000;
/** A bind that lived this long (ms) before ending resets the back-off. */
const STABLE_MS = 5000;

/** Binds through `router` on first accept and again whenever the bind ends. */
export class RemoteListener implements Listener {
  readonly #network: Network;
  readonly #packets?: PacketDemuxOptions;
  readonly #want: string;
  readonly #router: Router;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #addr: NetAddr;
  #bound?: Listener;
  #delay = 0;
  #boundAt = 0;
  #stopping = false;
  /** Resolves to null when accepting stops (ends a pending accept). */
  readonly #stopped: Promise<null>;
  #wake: () => void = () => {};

  constructor(
    network: Network,
    addr: string,
    router: Router,
    log: Logger,
    packets?: PacketDemuxOptions,
  ) {
    this.#stopped = new Promise<null>((r) => (this.#wake = () => r(null)));
    this.#network = network;
    this.#packets = packets;
    this.#want = addr;
    this.#router = router;
    this.#log = log;
    const { host, port } = splitHostPort(addr);
    // Not "tcp": the port is the far end's, never one of ours (loop detection).
    this.#addr = { transport: this.#kind, hostname: host, port };
  }

  get #kind(): string {
    return this.#network === "udp" ? "rudp" : "rtcp";
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
          this.#bound = await this.#router.bind!(this.#network, this.#want, {
            signal,
            log: this.#log,
            packets: this.#packets,
          });
        } catch (e) {
          if (signal.aborted) return null;
          await this.#backoff(`bind ${this.#want}: ${errorText(e)}`);
          continue;
        }
        this.#boundAt = Date.now();
        const a = this.#bound.addr;
        this.#addr = { ...a, transport: this.#kind };
        this.#log.info(`bound ${this.#want} at the far end (${formatAddr(a)})`);
      }
      let c: Conn | null = null;
      let why = "the server or the link went away";
      try {
        const next = this.#bound.accept();
        c = await Promise.race([next, this.#stopped]);
        // Stopped first: a peer that still arrives would wait for nobody.
        if (c === null && this.#stopping) next.then((late) => late?.close(), () => {});
      } catch (e) {
        why = errorText(e);
      }
      if (c) {
        this.#delay = 0; // a bind that delivers a peer is a good one
        return c;
      }
      if (this.#stopping) return null;
      // A bind that dies at once keeps backing off; one that lived a while starts over.
      if (Date.now() - this.#boundAt > STABLE_MS) this.#delay = 0;
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
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        r();
      };
      const t = setTimeout(done, this.#delay);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Stops taking peers and binding again, but keeps the current bind's live conns (a service's
   * grace period); `close` ends them.
   */
  stopAccepting(): Promise<void> {
    this.#stopping = true;
    this.#stop.abort();
    this.#wake();
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.#stopping = true;
    this.#stop.abort();
    this.#wake();
    await this.#bound?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function register(reg: Registries): void {
  for (const network of ["tcp", "udp"] as const) {
    const type = network === "tcp" ? "rtcp" : "rudp";
    reg.listeners.register(type, (o) => {
      if (!o.router?.bind) {
        throw new ConfigError("listener.type", `${type} needs a router that can bind`);
      }
      // rudp: GOST's session defaults (ttl 5 s, queues of 1,024; always keepalive).
      const packets = network === "udp"
        ? packetDemuxOptions(o.metadata, { keepalive: true, readQueueSize: 1024 })
        : undefined;
      return Promise.resolve(new RemoteListener(network, o.addr, o.router, o.log, packets));
    });
  }
}
