/**
 * The `udp` listener (docs/gost-config.md §4.2): one virtual datagram conn per client address on one socket.
 * Without `keepalive=true` a session ends right after the first datagram written back (GOST's
 * DNS-style default); with it, a session lives until `ttl` (default 5 s) passes idle.
 * @module
 */
import { Backoff } from "../../core/backoff.ts";
import { type Conn, ConnBase, type NetAddr } from "../../core/conn.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import { AsyncQueue } from "../../core/queue.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import type { Logger } from "../../core/log.ts";

/** Options of the udp listener. */
export interface UdpListenerOptions {
  keepalive: boolean;
  /** Idle time (ms) before a session closes. */
  ttl: number;
  /** Datagrams queued per session before new ones are dropped. */
  readQueueSize: number;
  /** Sessions waiting to be accepted. */
  backlog: number;
  /**
   * Client addresses served at once (Burrow's `maxSessions`, default 1024): source addresses are
   * spoofable, so each new one must not cost memory without bound. Datagrams from a new source
   * beyond it are dropped until sessions expire.
   */
  maxSessions: number;
}

class UdpSession extends ConnBase {
  readonly datagram = true;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly queue: AsyncQueue<Uint8Array>;
  lastActive = Date.now();
  readonly #owner: UdpListener;
  readonly #peer: Deno.NetAddr;
  #closed = false;

  constructor(owner: UdpListener, peer: Deno.NetAddr, queueSize: number) {
    super();
    this.#owner = owner;
    this.#peer = peer;
    this.queue = new AsyncQueue(queueSize);
    this.localAddr = owner.addr;
    this.remoteAddr = { transport: "udp", hostname: peer.hostname, port: peer.port };
  }

  async read(p: Uint8Array): Promise<number | null> {
    const d = await this.queue.shift();
    if (d === null) return null;
    this.lastActive = Date.now();
    const n = Math.min(d.length, p.length);
    p.set(d.subarray(0, n));
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) return p.length;
    this.lastActive = Date.now();
    await this.#owner.sendTo(p, this.#peer);
    if (!this.#owner.opts.keepalive) this.close();
    return p.length;
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.queue.close();
    this.#owner.forget(this.#peer);
  }
}

/** Demultiplexes one UDP socket into per-client datagram conns. */
export class UdpListener implements Listener {
  readonly addr: NetAddr;
  readonly opts: UdpListenerOptions;
  readonly #sock: Deno.DatagramConn;
  readonly #sessions = new Map<string, UdpSession>();
  readonly #accepts: AsyncQueue<UdpSession>;
  readonly #loop: Promise<void>;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #log?: Logger;
  #closed = false;
  /** Datagrams dropped because `maxSessions` client addresses were being served. */
  dropped = 0;

  constructor(addr: string, opts: UdpListenerOptions, log?: Logger) {
    const { host, port } = splitHostPort(addr);
    this.#sock = Deno.listenDatagram({ transport: "udp", hostname: listenHost(host), port });
    const a = this.#sock.addr as Deno.NetAddr;
    this.addr = { transport: "udp", hostname: a.hostname, port: a.port };
    this.opts = opts;
    this.#log = log;
    this.#accepts = new AsyncQueue(opts.backlog);
    this.#loop = this.#receive();
    this.#timer = setInterval(() => this.#expire(), Math.max(50, Math.min(opts.ttl / 2, 1000)));
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
      const key = `${from.hostname}:${from.port}`;
      let s = this.#sessions.get(key);
      if (!s) {
        if (this.#sessions.size >= this.opts.maxSessions) {
          if (this.dropped++ === 0) {
            this.#log?.warn(
              `udp: ${this.opts.maxSessions} client addresses served at once; datagrams from new ones are dropped (maxSessions)`,
            );
          }
          continue;
        }
        s = new UdpSession(this, from, this.opts.readQueueSize);
        if (!this.#accepts.push(s)) {
          this.#log?.warn("udp backlog full, datagram dropped", { remote: key });
          continue;
        }
        this.#sessions.set(key, s);
      }
      // A full session queue drops the datagram, as UDP would.
      s.queue.push(data.slice());
    }
  }

  #expire(): void {
    const now = Date.now();
    for (const s of this.#sessions.values()) {
      if (now - s.lastActive >= this.opts.ttl) s.close();
    }
  }

  sendTo(p: Uint8Array, peer: Deno.NetAddr): Promise<number> {
    return this.#sock.send(p, peer);
  }

  forget(peer: Deno.NetAddr): void {
    this.#sessions.delete(`${peer.hostname}:${peer.port}`);
  }

  accept(): Promise<Conn | null> {
    return this.#accepts.shift();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const s of this.#accepts.close()) s.close();
    for (const s of [...this.#sessions.values()]) s.close();
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
  const md = opts.metadata;
  return Promise.resolve(
    new UdpListener(opts.addr, {
      keepalive: md.bool("keepalive"),
      ttl: md.duration("ttl", 5000),
      readQueueSize: md.int("readQueueSize", 128),
      backlog: md.int("backlog", 128),
      maxSessions: md.int("maxSessions", 1024),
    }, opts.log),
  );
}
