/**
 * Datagrams from many peers, arriving on one source (a UDP socket, or UDP-over-TCP frames of a
 * remote bind), split into one datagram {@link Conn} per peer address: what a `udp` or `rudp`
 * listener yields. Sessions end after `ttl` idle; without `keepalive` right after their first
 * reply (GOST's DNS-style default).
 * @module
 */
import { type Conn, ConnBase, type NetAddr } from "./conn.ts";
import { AsyncQueue } from "./queue.ts";
import type { Logger } from "./log.ts";

/** Session limits (GOST's udp/rudp listener keys, plus Burrow's `maxSessions`). */
export interface PacketDemuxOptions {
  /** Keep a session after its first reply (otherwise one request, one reply: DNS-style). */
  keepalive: boolean;
  /** Idle time (ms) before a session closes. */
  ttl: number;
  /** Datagrams queued per session before new ones are dropped. */
  readQueueSize: number;
  /** Sessions waiting to be accepted. */
  backlog: number;
  /**
   * Peer addresses served at once: source addresses are spoofable, so each new one must not cost
   * memory without bound. Datagrams from a new peer beyond it are dropped until sessions expire.
   */
  maxSessions: number;
}

/** Sends one datagram to a peer. */
export type PacketSend = (data: Uint8Array, peer: NetAddr) => Promise<unknown>;

class PacketSession extends ConnBase {
  readonly datagram = true;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly queue: AsyncQueue<Uint8Array>;
  lastActive = Date.now();
  readonly #owner: PacketDemux;
  readonly #key: string;
  #closed = false;

  constructor(owner: PacketDemux, key: string, peer: NetAddr, queueSize: number) {
    super();
    this.#owner = owner;
    this.#key = key;
    this.queue = new AsyncQueue(queueSize);
    this.localAddr = owner.localAddr;
    this.remoteAddr = peer;
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
    await this.#owner.send(p, this.remoteAddr);
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
    this.#owner.forget(this.#key);
  }
}

/** Per-peer sessions over one datagram source. */
export class PacketDemux {
  readonly localAddr: NetAddr;
  readonly opts: PacketDemuxOptions;
  readonly send: PacketSend;
  readonly #sessions = new Map<string, PacketSession>();
  readonly #accepts: AsyncQueue<PacketSession>;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #log?: Logger;
  #closed = false;
  /** Datagrams dropped because `maxSessions` peers were being served. */
  dropped = 0;

  constructor(localAddr: NetAddr, opts: PacketDemuxOptions, send: PacketSend, log?: Logger) {
    this.localAddr = localAddr;
    this.opts = opts;
    this.send = send;
    this.#log = log;
    this.#accepts = new AsyncQueue(opts.backlog);
    this.#timer = setInterval(() => this.#expire(), Math.max(50, Math.min(opts.ttl / 2, 1000)));
  }

  /** Hands one datagram from `peer` to its session (a new one when needed). */
  deliver(data: Uint8Array, peer: NetAddr): void {
    if (this.#closed) return;
    const key = `${peer.hostname}:${peer.port}`;
    let s = this.#sessions.get(key);
    if (!s) {
      if (this.#sessions.size >= this.opts.maxSessions) {
        if (this.dropped++ === 0) {
          this.#log?.warn(
            `${this.opts.maxSessions} peers served at once; datagrams from new ones are dropped (maxSessions)`,
          );
        }
        return;
      }
      s = new PacketSession(this, key, peer, this.opts.readQueueSize);
      if (!this.#accepts.push(s)) {
        this.#log?.warn("backlog full, datagram dropped", { remote: key });
        return;
      }
      this.#sessions.set(key, s);
    }
    // A full session queue drops the datagram, as UDP would.
    s.queue.push(data);
  }

  #expire(): void {
    const now = Date.now();
    for (const s of this.#sessions.values()) {
      if (now - s.lastActive >= this.opts.ttl) s.close();
    }
  }

  forget(key: string): void {
    this.#sessions.delete(key);
  }

  accept(): Promise<Conn | null> {
    return this.#accepts.shift();
  }

  /** Ends every session; `accept` returns null from now on. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const s of this.#accepts.close()) s.close();
    for (const s of [...this.#sessions.values()]) s.close();
  }
}

/** The session options from listener metadata (`keepalive` default as given). */
export function packetDemuxOptions(
  md: {
    bool(k: string, d?: boolean): boolean;
    duration(k: string, d?: number): number;
    int(k: string, d?: number): number;
  },
  defaults: { keepalive: boolean; readQueueSize: number },
): PacketDemuxOptions {
  return {
    keepalive: md.bool("keepalive", defaults.keepalive),
    ttl: md.duration("ttl", 5000),
    readQueueSize: md.int("readQueueSize", defaults.readQueueSize),
    backlog: md.int("backlog", 128),
    maxSessions: md.int("maxSessions", 1024),
  };
}
