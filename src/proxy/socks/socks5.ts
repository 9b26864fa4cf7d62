/**
 * SOCKS5 (RFC 1928, RFC 1929 user/pass) — handler and connector, with GOST's UDP-over-TCP
 * command 0xF3 (docs/gost-proxies.md §4). Reply codes come from the real failure: refused ⇒ 5, host
 * unreachable or timeout ⇒ 4, other dial failures ⇒ 3 (GOST's choice), not allowed ⇒ 2,
 * unknown command ⇒ 7.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { type Conn, formatAddr } from "../../core/conn.ts";
import {
  AuthError,
  errorText,
  ProtocolError,
  TunnelError,
  UnsupportedError,
} from "../../core/errors.ts";
import { joinHostPort, splitHostPort } from "../../core/addr.ts";
import type {
  BindContext,
  ConnectContext,
  Connector,
  ConnectorOptions,
  Credentials,
  HandleContext,
  Handler,
  HandlerOptions,
  Listener,
  Network,
} from "../../core/types.ts";
import { SocketConn } from "../../core/socket.ts";
import { acceptWhileWatching, classifyDialError, pipeLogged } from "../common.ts";
import { withDeadline } from "../../core/deadline.ts";
import {
  encodeSocksAddr,
  encodeSocksAddrString,
  parseSocksAddr,
  readSocksAddr,
} from "../../protocol/socks_addr.ts";
import { FramedUdpConn, serveUdpOverTcp, UdpAssociation } from "../udp.ts";
import {
  bindMuxConfig,
  BindPolicy,
  grantBind,
  listenForBind,
  listenUdpForBind,
  MuxBindListener,
  PacketBindListener,
  RUDP,
  serveMuxBind,
  serveUdpBind,
} from "../bind.ts";
import type { SmuxConfig } from "../../mux/smux/mod.ts";

export const VER5 = 5;
export const METHOD_NONE = 0x00;
export const METHOD_USERPASS = 0x02;
export const METHOD_NO_ACCEPTABLE = 0xff;
export const CMD_CONNECT = 1;
export const CMD_BIND = 2;
export const CMD_UDP = 3;
export const CMD_UDP_TUN = 0xf3;
/** GOST's multiplexed BIND: one smux stream per peer (docs/reverse.md). */
export const CMD_MUX_BIND = 0xf2;

export const REP = {
  ok: 0,
  failure: 1,
  notAllowed: 2,
  netUnreachable: 3,
  hostUnreachable: 4,
  refused: 5,
  ttlExpired: 6,
  cmdUnsupported: 7,
  addrUnsupported: 8,
} as const;

/** `05 REP 00 ATYP BND.ADDR BND.PORT`. */
export function encodeReply(rep: number, bind = "0.0.0.0:0"): Uint8Array {
  const { host, port } = splitHostPort(bind);
  const a = encodeSocksAddr(host, port);
  const out = new Uint8Array(3 + a.length);
  out.set([VER5, rep, 0]);
  out.set(a, 3);
  return out;
}

function dialFailureRep(e: unknown): number {
  switch (classifyDialError(e)) {
    case "forbidden":
      return REP.notAllowed;
    case "refused":
      return REP.refused;
    case "unreachable":
    case "timeout":
      return REP.hostUnreachable;
    default:
      return REP.netUnreachable;
  }
}

/** SOCKS5's answers to a refused or failed bind. */
const SOCKS_BIND = {
  refused: encodeReply(REP.notAllowed),
  failed: encodeReply(REP.failure),
  name: "socks5",
};

/** Options parsed once from handler metadata. */
interface Socks5Options {
  readTimeout: number;
  udp: boolean;
  bind: boolean;
  idleTimeout: number;
  bindPolicy: BindPolicy;
  mux: SmuxConfig;
}

/** The SOCKS5 server side. */
export class Socks5Handler implements Handler {
  readonly #o: HandlerOptions;
  readonly #opts: Socks5Options;

  constructor(opts: HandlerOptions) {
    this.#o = opts;
    const md = opts.metadata;
    this.#opts = {
      readTimeout: md.duration("readTimeout", 15_000),
      udp: md.bool("udp"),
      bind: md.bool("bind"),
      idleTimeout: md.duration("idleTimeout", 0),
      bindPolicy: BindPolicy.from(md),
      mux: bindMuxConfig(md),
    };
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const br = new BufReader(conn, 512);
    const req = await withDeadline(conn, this.#opts.readTimeout, async () => {
      if ((await br.readByte()) !== VER5) throw new ProtocolError("socks5: bad version");
      await this.#negotiate(br, conn, ctx);
      const head = await br.readN(3);
      if (head[0] !== VER5) throw new ProtocolError("socks5: bad request version");
      return { cmd: head[1]!, addr: await readSocksAddr(br) };
    });
    const log = ctx.log.with({ dst: req.addr });
    switch (req.cmd) {
      case CMD_CONNECT:
        return this.#connect(br, conn, req.addr, { ...ctx, log }); // not awaited: see #connect
      case CMD_BIND:
        return await this.#bind(conn, req.addr, { ...ctx, log });
      case CMD_MUX_BIND:
        return await this.#muxBind(br, conn, req.addr, { ...ctx, log });
      case CMD_UDP:
        return await this.#associate(br, conn, { ...ctx, log });
      case CMD_UDP_TUN:
        return await this.#udpTun(br, conn, req.addr, { ...ctx, log });
      default:
        await conn.write(encodeReply(REP.cmdUnsupported));
        throw new ProtocolError(`socks5: unsupported command ${req.cmd}`);
    }
  }

  async #negotiate(br: BufReader, conn: Conn, ctx: HandleContext): Promise<void> {
    const n = await br.readByte();
    if (n === 0) throw new ProtocolError("socks5: no methods offered");
    const methods = await br.readN(n);
    const auther = this.#o.auther;
    if (!auther) {
      if (!methods.includes(METHOD_NONE)) {
        await conn.write(new Uint8Array([VER5, METHOD_NO_ACCEPTABLE]));
        throw new AuthError("socks5: client offers no acceptable method");
      }
      await conn.write(new Uint8Array([VER5, METHOD_NONE]));
      return;
    }
    if (!methods.includes(METHOD_USERPASS)) {
      await conn.write(new Uint8Array([VER5, METHOD_NO_ACCEPTABLE]));
      throw new AuthError("socks5: authentication required, client offers none");
    }
    await conn.write(new Uint8Array([VER5, METHOD_USERPASS]));
    if ((await br.readByte()) !== 1) throw new ProtocolError("socks5: bad auth version");
    const user = new TextDecoder().decode(await br.readN(await br.readByte()));
    const pass = new TextDecoder().decode(await br.readN(await br.readByte()));
    if (!auther.authenticate(user, pass)) {
      await conn.write(new Uint8Array([1, 1]));
      throw new AuthError(`socks5: authentication failed for user ${JSON.stringify(user)}`);
    }
    ctx.log.debug("socks5: authenticated", { user });
    await conn.write(new Uint8Array([1, 0]));
  }

  async #connect(br: BufReader, conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", addr, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      await conn.write(encodeReply(dialFailureRep(e))).catch(() => {});
      ctx.log.error(`socks5: connect ${addr}: ${errorText(e)}`);
      return;
    }
    await conn.write(encodeReply(REP.ok, formatAddr(up.localAddr).replace(/^:/, "0.0.0.0:")));
    // Returned, not awaited: the tunnel waits in the relay's promise, and this frame (with the
    // handshake's read-ahead) is gone for its lifetime (docs/performance.md).
    return pipeLogged(br.conn(), up, addr, ctx, this.#opts.idleTimeout);
  }

  async #bind(conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    const { port } = splitHostPort(addr);
    const why = this.#opts.bindPolicy.refusal(port);
    if (why) {
      await conn.write(encodeReply(REP.notAllowed));
      throw new TunnelError(`socks5: BIND ${addr} refused: ${why}`);
    }
    let l: Deno.Listener;
    try {
      l = Deno.listen({ hostname: conn.localAddr.hostname || "0.0.0.0", port });
    } catch (e) {
      await conn.write(encodeReply(REP.failure));
      throw new TunnelError(`socks5: bind ${addr}: ${errorText(e)}`);
    }
    const la = l.addr as Deno.NetAddr;
    await conn.write(encodeReply(REP.ok, joinHostPort(la.hostname, la.port)));
    const got = await acceptWhileWatching(l, conn);
    if (!got) return;
    const pc = new SocketConn(got.peer);
    await conn.write(encodeReply(REP.ok, formatAddr(pc.remoteAddr)));
    await pipeLogged(got.client, pc, formatAddr(pc.remoteAddr), ctx);
  }

  /**
   * GOST's MUXBIND: listen where asked (`bind=true`, within `bind.ports`), reply with the bound
   * address, then carry each peer as a smux stream opened by us, headed by a SOCKS5 reply with
   * the peer's address.
   */
  async #muxBind(br: BufReader, conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    // GOST answers with the control conn's local IP and the bound port.
    const host = conn.localAddr.hostname || "0.0.0.0";
    const l = await grantBind(
      conn,
      addr,
      this.#opts.bindPolicy,
      {
        ...SOCKS_BIND,
        ok: (a) => encodeReply(REP.ok, joinHostPort(host, a.port)),
      },
      listenForBind,
      ctx.log,
    );
    await serveMuxBind(br.conn(), l, {
      header: (peer) => encodeReply(REP.ok, peer),
      mux: this.#opts.mux,
      log: ctx.log,
      signal: ctx.signal,
    });
  }

  /** GOST's UDP-TUN with a port: listen there (rudp) and carry peers' datagrams as frames. */
  async #udpBind(br: BufReader, conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    const sock = await grantBind(
      conn,
      addr,
      this.#opts.bindPolicy,
      {
        ...SOCKS_BIND,
        ok: (a) => encodeReply(REP.ok, joinHostPort(a.hostname, a.port)),
      },
      listenUdpForBind,
      ctx.log,
    );
    await serveUdpBind(br, br.conn(), sock, ctx.log, ctx.signal);
  }

  async #associate(br: BufReader, conn: Conn, ctx: HandleContext): Promise<void> {
    if (!this.#opts.udp) {
      await conn.write(encodeReply(REP.notAllowed));
      throw new TunnelError("socks5: UDP ASSOCIATE not enabled (udp=true)");
    }
    const host = conn.localAddr.hostname || "0.0.0.0";
    const sock = Deno.listenDatagram({ transport: "udp", hostname: host, port: 0 });
    const clientIp = conn.remoteAddr.hostname;
    let client: Deno.NetAddr | undefined;
    const assoc = new UdpAssociation(this.#o.router, ctx.log, async (from, data) => {
      if (!client) return;
      const a = encodeSocksAddrString(from);
      const out = new Uint8Array(3 + a.length + data.length);
      out.set(a, 3);
      out.set(data, 3 + a.length);
      await sock.send(out, client).catch(() => {});
    });
    const la = sock.addr as Deno.NetAddr;
    await conn.write(encodeReply(REP.ok, joinHostPort(la.hostname, la.port)));
    ctx.log.debug(`socks5: udp associate on ${la.hostname}:${la.port}`);
    const pump = (async () => {
      const buf = new Uint8Array(65536);
      for (;;) {
        let d: Uint8Array, from: Deno.Addr;
        try {
          [d, from] = await sock.receive(buf);
        } catch {
          return;
        }
        const f = from as Deno.NetAddr;
        // Only the client that opened the association may use it.
        if (f.hostname !== clientIp) continue;
        if (d.length < 4 || d[0] !== 0 || d[1] !== 0 || d[2] !== 0) continue; // fragments unsupported
        try {
          const { addr, next } = parseSocksAddr(d, 3);
          client = f;
          await assoc.send(addr, d.slice(next));
        } catch { /* malformed datagram: dropped */ }
      }
    })();
    try {
      // The association lives as long as the TCP control connection.
      const b = new Uint8Array(512);
      while ((await br.read(b).catch(() => null)) !== null) { /* ignore */ }
    } finally {
      sock.close();
      await pump;
      await assoc.close();
    }
  }

  async #udpTun(br: BufReader, conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    const port = splitHostPort(addr).port;
    if (port !== 0) return await this.#udpBind(br, conn, addr, ctx);
    if (!this.#opts.udp) {
      await conn.write(encodeReply(REP.notAllowed));
      throw new TunnelError("socks5: UDP-over-TCP needs udp=true");
    }
    await conn.write(encodeReply(REP.ok, formatAddr(conn.localAddr)));
    await serveUdpOverTcp(br, conn, this.#o.router, ctx.log);
  }
}

/** Client-side method negotiation (+ RFC 1929 when credentials are set). */
export async function socks5Negotiate(
  conn: Conn,
  br: BufReader,
  auth?: Credentials,
): Promise<void> {
  await conn.write(
    auth
      ? new Uint8Array([VER5, 2, METHOD_NONE, METHOD_USERPASS])
      : new Uint8Array([VER5, 1, METHOD_NONE]),
  );
  const m = await br.readN(2);
  if (m[0] !== VER5) throw new ProtocolError("socks5: bad server version");
  if (m[1] === METHOD_USERPASS) {
    if (!auth) throw new AuthError("socks5: server wants a password");
    const u = new TextEncoder().encode(auth.username);
    const p = new TextEncoder().encode(auth.password);
    await conn.write(new Uint8Array([1, u.length, ...u, p.length, ...p]));
    const r = await br.readN(2);
    if (r[1] !== 0) throw new AuthError("socks5: authentication failed");
  } else if (m[1] !== METHOD_NONE) {
    throw new AuthError("socks5: no acceptable authentication method");
  }
}

/** Reads a `05 REP 00 ATYP ADDR PORT` reply; returns the bound address. */
export async function readReply(br: BufReader): Promise<{ rep: number; addr: string }> {
  const h = await br.readN(3);
  if (h[0] !== VER5) throw new ProtocolError("socks5: bad reply version");
  return { rep: h[1]!, addr: await readSocksAddr(br) };
}

/** The SOCKS5 client side in a chain. */
export class Socks5Connector implements Connector {
  readonly #auth?: Credentials;
  readonly #mux: SmuxConfig;
  constructor(opts: ConnectorOptions) {
    this.#auth = opts.auth;
    this.#mux = bindMuxConfig(opts.metadata);
  }

  /** Asks the server to listen on `address` for us (GOST's MUXBIND, as rtcp uses it). */
  async bind(
    conn: Conn,
    network: Network,
    address: string,
    ctx: BindContext,
  ): Promise<Listener> {
    const udp = network === "udp";
    const { host, port } = splitHostPort(address);
    // UDP-TUN with port 0 means relay mode to a GOST server: a reverse UDP bind needs a port.
    if (udp && port === 0) throw new UnsupportedError("socks5: a UDP bind needs a port");
    const br = new BufReader(conn, udp ? 4096 : 512);
    await socks5Negotiate(conn, br, this.#auth);
    const target = encodeSocksAddr(host === "" ? "0.0.0.0" : host, port);
    const req = new Uint8Array(3 + target.length);
    req.set([VER5, udp ? CMD_UDP_TUN : CMD_MUX_BIND, 0]);
    req.set(target, 3);
    await conn.write(req);
    const r = await readReply(br);
    if (r.rep !== REP.ok) {
      throw new TunnelError(`socks5: bind on ${address} failed (reply ${r.rep})`);
    }
    if (udp) return new PacketBindListener(conn, br, r.addr, ctx.packets ?? RUDP, ctx.log);
    return new MuxBindListener(br.conn(), r.addr, this.#mux, async (sbr) => {
      const h = await readReply(sbr);
      if (h.rep !== REP.ok) throw new TunnelError(`socks5: peer stream reply ${h.rep}`);
      return h.addr;
    }, ctx.log);
  }

  async connect(
    conn: Conn,
    network: Network,
    address: string,
    _ctx: ConnectContext,
  ): Promise<Conn> {
    const br = new BufReader(conn, 512);
    await socks5Negotiate(conn, br, this.#auth);
    const { host, port } = splitHostPort(address);
    const target = network === "udp"
      ? encodeSocksAddr("", 0)
      : encodeSocksAddr(host === "" ? "127.0.0.1" : host, port);
    const req = new Uint8Array(3 + target.length);
    req.set([VER5, network === "udp" ? CMD_UDP_TUN : CMD_CONNECT, 0]);
    req.set(target, 3);
    await conn.write(req);
    const r = await readReply(br);
    if (r.rep !== REP.ok) throw new TunnelError(`socks5: server replied ${r.rep} for ${address}`);
    if (network === "udp") return new FramedUdpConn(conn, br, address);
    return br.conn();
  }
}
