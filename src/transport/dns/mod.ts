/**
 * The `dns` listener (docs/gost-proxies.md "dns"): DNS clients' messages as datagram conns for the
 * `dns` handler. `mode=udp` (default): a session per client address, every query answered on its
 * own, ended 2 s after the last (GOST ends it after the first reply, which drops a resolver's
 * back-to-back AAAA); `mode=tcp`: each TCP connection carries length-prefixed
 * messages (RFC 1035 §4.2.2) and closes after `readTimeout` (2 s, as GOST's DNS server) without
 * one; `mode=tls`: the same inside TLS (DNS over TLS, the listener's certificate or the automatic
 * one); `mode=https`: DNS over HTTPS (doh.ts).
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import type { Conn, NetAddr } from "../../core/conn.ts";
import { ConfigError } from "../../core/errors.ts";
import type { Registries } from "../../core/registry.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import { LengthFramedConn } from "../../protocol/length_framed.ts";
import { createTcpListener } from "../tcp/listener.ts";
import { UdpListener } from "../udp/listener.ts";
import { listenTls } from "../tls/mod.ts";
import { createDohListener } from "./doh.ts";

/** A TCP DNS connection: framed messages, closed when idle for `idleMs`. */
class TcpDnsConn extends LengthFramedConn {
  readonly #idleMs: number;
  constructor(inner: Conn, idleMs: number) {
    super(inner, new BufReader(inner, 1024));
    this.#idleMs = idleMs;
  }
  override async read(p: Uint8Array): Promise<number | null> {
    if (this.#idleMs <= 0) return await super.read(p);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<null>((r) => {
      timer = setTimeout(() => (this.close(), r(null)), this.#idleMs);
    });
    try {
      return await Promise.race([super.read(p).catch(() => null), idle]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Wraps a TCP listener's conns as DNS message conns. */
class TcpDnsListener implements Listener {
  readonly guardsRaw?: boolean;
  constructor(readonly inner: Listener, readonly idleMs: number) {
    this.guardsRaw = inner.guardsRaw;
  }
  get addr(): NetAddr {
    return this.inner.addr;
  }
  async accept(): Promise<Conn | null> {
    const c = await this.inner.accept();
    return c === null ? null : new TcpDnsConn(c, this.idleMs);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Builds the listener for `mode`. */
export async function createDnsListener(o: ListenerOptions): Promise<Listener> {
  const md = o.metadata;
  const mode = md.string("mode", "udp").toLowerCase();
  const backlog = md.int("backlog", 128);
  if (mode === "tcp") {
    const idle = md.duration("readTimeout", 2000);
    return new TcpDnsListener(await createTcpListener(o), idle > 0 ? idle : 2000);
  }
  if (mode === "tls") {
    // DNS over TLS (RFC 7858): the tcp framing inside the tls listener (its certificate, its
    // handshake deadline).
    const idle = md.duration("readTimeout", 2000);
    return new TcpDnsListener(await listenTls(o), idle > 0 ? idle : 2000);
  }
  if (mode === "https") {
    const idle = md.duration("readTimeout", 30_000);
    return await createDohListener(o, idle > 0 ? idle : 30_000);
  }
  if (mode !== "udp" && mode !== "") {
    throw new ConfigError(`${md.path}.mode`, `unknown mode "${mode}" (udp, tcp, tls, https)`);
  }
  md.int("readBufferSize", 0); // a UDP read always takes the whole datagram
  // A session per client address lives while queries come (ttl after the last one): a resolver
  // sends A and AAAA back to back from one port, and both must be answered.
  return new UdpListener(
    o.addr,
    { keepalive: true, ttl: 2000, readQueueSize: 128, backlog, maxSessions: 1024 },
    o.log,
  );
}

export function register(reg: Registries): void {
  reg.listeners.register("dns", createDnsListener);
}
