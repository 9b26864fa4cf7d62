/**
 * Shadowsocks handlers and connectors: `ss` (TCP, AEAD stream) and `ssu` (UDP relay, one AEAD
 * packet per datagram). Method and password come from the userinfo (`ss://method:pass@`, or
 * SIP002 base64). A failed handshake (wrong password, replayed salt, truncated chunk) gets no
 * reply at all: the server keeps reading and discarding until the client gives up or the read
 * timeout passes, so a prober learns nothing from timing or bytes.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { type Conn, WrappedConn } from "../../core/conn.ts";
import { errorText, ProtocolError, UnsupportedError } from "../../core/errors.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  ConnectContext,
  Connector,
  ConnectorOptions,
  HandleContext,
  Handler,
  HandlerOptions,
  Network,
} from "../../core/types.ts";
import { pipeLogged } from "../common.ts";
import { withDeadline } from "../../core/deadline.ts";
import { encodeSocksAddrString, parseSocksAddr, readSocksAddr } from "../../protocol/socks_addr.ts";
import { UdpAssociation } from "../udp.ts";
import {
  openDatagram,
  sealDatagram,
  type SsCipher,
  ssCipher,
  TAG,
} from "../../protocol/ss_aead.ts";
import { SaltFilter, SsConn } from "./conn.ts";

/** Reads and discards until EOF or `ms` pass (no oracle for probers). */
async function drain(conn: Conn, ms: number): Promise<void> {
  const buf = new Uint8Array(4096);
  await withDeadline(conn, ms, async () => {
    while ((await conn.read(buf)) !== null) { /* discard */ }
  }).catch(() => {});
}

function cipherOf(
  auth: { username: string; password: string } | undefined,
  md: HandlerOptions["metadata"],
): SsCipher | null {
  const method = auth?.username || md.string("method");
  const password = auth?.password ?? md.string("password");
  return ssCipher(method, password);
}

export class SsHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #cipher: SsCipher | null;
  readonly #filter = new SaltFilter();
  readonly #readTimeout: number;

  constructor(opts: HandlerOptions) {
    this.#o = opts;
    this.#cipher = cipherOf(opts.auth, opts.metadata);
    this.#readTimeout = opts.metadata.duration("readTimeout", 15_000);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const s = this.#cipher ? new SsConn(conn, this.#cipher, this.#filter) : conn;
    const br = new BufReader(s, 512);
    let addr: string;
    try {
      addr = await withDeadline(conn, this.#readTimeout, () => readSocksAddr(br));
    } catch (e) {
      ctx.log.warn(`ss: bad request from ${conn.remoteAddr.hostname}: ${errorText(e)}`);
      await drain(conn, this.#readTimeout);
      return;
    }
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", addr, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`ss: connect ${addr}: ${errorText(e)}`, { dst: addr });
      return;
    }
    return pipeLogged(br.conn(), up, addr, ctx); // returned, not awaited: as socks5
  }
}

export class SsConnector implements Connector {
  readonly #cipher: SsCipher | null;
  constructor(opts: ConnectorOptions) {
    this.#cipher = ssCipher(
      opts.auth?.username || opts.metadata.string("method"),
      opts.auth?.password ?? opts.metadata.string("password"),
    );
  }
  async connect(
    conn: Conn,
    network: Network,
    address: string,
    _ctx: ConnectContext,
  ): Promise<Conn> {
    if (network !== "tcp") throw new UnsupportedError("ss: use ssu for UDP");
    const s = this.#cipher ? new SsConn(conn, this.#cipher) : conn;
    await s.write(encodeSocksAddrString(address));
    return s;
  }
}

// ------------------------------------------------------------------ UDP

/** Seals `addr ‖ payload` as one ss UDP packet: `salt ‖ AEAD(...)` (nonce zero). */
export function sealPacket(c: SsCipher | null, addr: string, payload: Uint8Array): Uint8Array {
  const a = encodeSocksAddrString(addr);
  const plain = new Uint8Array(a.length + payload.length);
  plain.set(a);
  plain.set(payload, a.length);
  return c ? sealDatagram(c, plain) : plain;
}

/** Opens one ss UDP packet; returns the address and payload. Throws on a bad packet. */
export function openPacket(
  c: SsCipher | null,
  pkt: Uint8Array,
): { addr: string; payload: Uint8Array } {
  let plain = pkt;
  if (c) {
    if (pkt.length < c.saltLen + TAG + 7) throw new ProtocolError("ss: short packet");
    plain = openDatagram(c, pkt);
  }
  const { addr, next } = parseSocksAddr(plain, 0);
  return { addr, payload: plain.subarray(next) };
}

export class SsuHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #cipher: SsCipher | null;
  constructor(opts: HandlerOptions) {
    this.#o = opts;
    this.#cipher = cipherOf(opts.auth, opts.metadata);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const assoc = new UdpAssociation(this.#o.router, ctx.log, async (from, data) => {
      await conn.write(sealPacket(this.#cipher, from, data)).catch(() => {});
    });
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        let pkt;
        try {
          pkt = openPacket(this.#cipher, buf.subarray(0, n));
        } catch (e) {
          ctx.log.debug(`ssu: dropped packet: ${errorText(e)}`);
          continue;
        }
        await assoc.send(pkt.addr, pkt.payload.slice());
      }
    } finally {
      await assoc.close();
    }
  }
}

/** A datagram conn to `address` through an ss UDP relay reached by `inner` (a datagram conn). */
class SsuClientConn extends WrappedConn {
  readonly datagram = true;
  constructor(inner: Conn, readonly cipher: SsCipher | null, readonly address: string) {
    super(inner);
  }
  override async read(p: Uint8Array): Promise<number | null> {
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await this.inner.read(buf);
      if (n === null) return null;
      try {
        const { payload } = openPacket(this.cipher, buf.subarray(0, n));
        const k = Math.min(p.length, payload.length);
        p.set(payload.subarray(0, k));
        return k;
      } catch { /* not for us: drop */ }
    }
  }
  override async write(p: Uint8Array): Promise<number> {
    await this.inner.write(sealPacket(this.cipher, this.address, p));
    return p.length;
  }
  override closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

export class SsuConnector implements Connector {
  readonly #cipher: SsCipher | null;
  constructor(opts: ConnectorOptions) {
    this.#cipher = ssCipher(
      opts.auth?.username || opts.metadata.string("method"),
      opts.auth?.password ?? opts.metadata.string("password"),
    );
  }
  connect(conn: Conn, network: Network, address: string, _ctx: ConnectContext): Promise<Conn> {
    if (network !== "udp") {
      return Promise.reject(new UnsupportedError("ssu: UDP only (use ss for TCP)"));
    }
    if (!conn.datagram) {
      return Promise.reject(new UnsupportedError("ssu: needs a udp dialer (-F ssu://...)"));
    }
    return Promise.resolve(new SsuClientConn(conn, this.#cipher, address));
  }
}

export function register(reg: Registries): void {
  reg.handlers.register("ss", (o) => new SsHandler(o));
  reg.connectors.register("ss", (o) => new SsConnector(o));
  reg.handlers.register("ssu", (o) => new SsuHandler(o));
  reg.connectors.register("ssu", (o) => new SsuConnector(o));
}
