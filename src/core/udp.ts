/**
 * Datagram conns: one `read` returns one datagram, one `write` sends one.
 * @module
 */
import { ConnBase, type NetAddr } from "./conn.ts";
import { isIPv4, isIPv6, splitHostPort } from "./addr.ts";
import { TunnelError } from "./errors.ts";
import { DATAGRAM_POOL } from "./buffer_pool.ts";

/** Resolves a hostname to an IP literal for UDP sends ("" and localhost ⇒ loopback). */
export async function resolveHost(host: string): Promise<string> {
  if (host === "" || host === "localhost") return "127.0.0.1";
  if (isIPv4(host) || isIPv6(host)) return host;
  try {
    const [ip] = await Deno.resolveDns(host, "A");
    if (ip) return ip;
  } catch (e) {
    throw new TunnelError(`cannot resolve ${host}`, { cause: e, temporary: true });
  }
  throw new TunnelError(`cannot resolve ${host}`, { temporary: true });
}

/** A UDP socket "connected" to one peer: datagrams from other sources are ignored. */
export class UdpConn extends ConnBase {
  readonly datagram = true;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly #sock: Deno.DatagramConn;
  readonly #peer: Deno.NetAddr;
  /** Only for callers with buffers too small for any datagram (allocated on first need). */
  #buf: Uint8Array | null = null;
  #closed = false;

  constructor(sock: Deno.DatagramConn, peer: Deno.NetAddr) {
    super();
    this.#sock = sock;
    this.#peer = peer;
    const la = sock.addr as Deno.NetAddr;
    this.localAddr = { transport: "udp", hostname: la.hostname, port: la.port };
    this.remoteAddr = { transport: "udp", hostname: peer.hostname, port: peer.port };
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) return null;
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        // A buffer that fits any datagram is received into directly: no copy, no buffer held.
        const into = p.length >= 65536 ? p : (this.#buf ??= new Uint8Array(65536));
        [data, from] = await this.#sock.receive(into);
      } catch (e) {
        if (this.#closed) return null;
        throw e;
      }
      const f = from as Deno.NetAddr;
      if (f.port !== this.#peer.port || f.hostname !== this.#peer.hostname) continue;
      const n = Math.min(p.length, data.length);
      if (data.buffer !== p.buffer || data.byteOffset !== p.byteOffset) p.set(data.subarray(0, n));
      return n;
    }
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw new TunnelError("udp conn closed");
    await this.#sock.send(p, this.#peer);
    return p.length;
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#sock.close();
    } catch { /* closed */ }
  }
}

/** A socket on an ephemeral port of the family (and loopback-ness) of `addr`, and its peer. */
export async function udpSocketFor(
  addr: string,
): Promise<{ sock: Deno.DatagramConn; peer: Deno.NetAddr }> {
  const { host, port } = splitHostPort(addr);
  const ip = await resolveHost(host);
  const sock = Deno.listenDatagram({
    transport: "udp",
    hostname: ip.includes(":") ? "::" : ip.startsWith("127.") ? "127.0.0.1" : "0.0.0.0",
    port: 0,
  });
  return { sock, peer: { transport: "udp", hostname: ip, port } };
}

/** Opens a UDP socket on an ephemeral port and "connects" it to `addr`. */
export async function dialUdp(addr: string): Promise<UdpConn> {
  const { sock, peer } = await udpSocketFor(addr);
  return new UdpConn(sock, peer);
}

/**
 * Sends datagrams on a socket strictly in the order given: Deno runs un-awaited
 * `DatagramConn.send` calls out of order (40 sends on a fresh socket can arrive reversed), which
 * KCP reads as loss (needless FEC recoveries and retransmits). One send is in flight at a time;
 * the queue is bounded, and beyond it a datagram is dropped, as a full socket would.
 */
export class OrderedSender {
  readonly #sock: Deno.DatagramConn;
  readonly #max: number;
  #queue: { pkt: Uint8Array; to: Deno.NetAddr }[] = [];
  #pumping: Promise<void> | null = null;
  /** Datagrams dropped because the queue was full. */
  dropped = 0;

  constructor(sock: Deno.DatagramConn, maxQueued = 8192) {
    this.#sock = sock;
    this.#max = maxQueued;
  }

  send(pkt: Uint8Array, to: Deno.NetAddr): void {
    if (this.#queue.length >= this.#max) {
      this.dropped++;
      return;
    }
    this.#queue.push({ pkt, to });
    this.#pumping ??= this.#pump();
  }

  async #pump(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      for (const { pkt, to } of batch) {
        await this.#sock.send(pkt, to).catch(() => {});
        DATAGRAM_POOL.give(pkt); // a no-op unless the packet came from the pool
      }
    }
    this.#pumping = null;
  }

  /** Resolves once everything queued has been handed to the socket. */
  async idle(): Promise<void> {
    while (this.#pumping) await this.#pumping;
  }
}
