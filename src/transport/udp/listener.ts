/**
 * The `udp` listener (docs/gost-config.md §4.2): one virtual datagram conn per client address on one socket.
 * Without `keepalive=true` a session ends right after the first datagram written back (GOST's
 * DNS-style default); with it, a session lives until `ttl` (default 5 s) passes idle.
 * @module
 */
import { Backoff } from "../../core/backoff.ts";
import type { Conn, NetAddr } from "../../core/conn.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import {
  PacketDemux,
  type PacketDemuxOptions,
  packetDemuxOptions,
} from "../../core/packet_demux.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import type { Logger } from "../../core/log.ts";

/** Options of the udp listener. */
export type UdpListenerOptions = PacketDemuxOptions;

/** Demultiplexes one UDP socket into per-client datagram conns. */
export class UdpListener implements Listener {
  readonly addr: NetAddr;
  readonly #sock: Deno.DatagramConn;
  readonly #demux: PacketDemux;
  readonly #loop: Promise<void>;
  readonly #log?: Logger;
  #closed = false;

  constructor(addr: string, opts: UdpListenerOptions, log?: Logger) {
    const { host, port } = splitHostPort(addr);
    this.#sock = Deno.listenDatagram({ transport: "udp", hostname: listenHost(host), port });
    const a = this.#sock.addr as Deno.NetAddr;
    this.addr = { transport: "udp", hostname: a.hostname, port: a.port };
    this.#log = log;
    this.#demux = new PacketDemux(
      this.addr,
      opts,
      (p, peer) =>
        this.#sock.send(p, { transport: "udp", hostname: peer.hostname, port: peer.port }),
      log?.with({ kind: "listener" }),
    );
    this.#loop = this.#receive();
  }

  /** Datagrams dropped because `maxSessions` client addresses were being served. */
  get dropped(): number {
    return this.#demux.dropped;
  }

  async #receive(): Promise<void> {
    const buf = new Uint8Array(65536);
    const backoff = new Backoff();
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [d, f] = await this.#sock.receive(buf);
        data = d;
        from = f as Deno.NetAddr;
      } catch (e) {
        if (this.#closed) return;
        await backoff.fail();
        this.#log?.warn("udp receive failed", { error: String(e), retryMs: backoff.delay });
        continue;
      }
      backoff.ok();
      this.#demux.deliver(data.slice(), {
        transport: "udp",
        hostname: from.hostname,
        port: from.port,
      });
    }
  }

  accept(): Promise<Conn | null> {
    return this.#demux.accept();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#demux.close();
    try {
      this.#sock.close();
    } catch { /* closed */ }
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function createUdpListener(opts: ListenerOptions): Promise<Listener> {
  return Promise.resolve(
    new UdpListener(
      opts.addr,
      packetDemuxOptions(opts.metadata, { keepalive: false, readQueueSize: 128 }),
      opts.log,
    ),
  );
}
