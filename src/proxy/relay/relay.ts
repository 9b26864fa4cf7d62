/**
 * GOST relay handler and connector (docs/gost-proxies.md §6.5–6.6). By default the response travels lazily:
 * the server sends it with the first bytes from the target, and the client sends its request
 * with its first write. Unlike GOST's connector, ours also sends the request when the app reads
 * first, so server-speaks-first protocols (SSH banners, VNC) work without `nodelay=true`.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { type Conn, WrappedConn } from "../../core/conn.ts";
import {
  AuthError,
  errorText,
  ProtocolError,
  TunnelError,
  UnsupportedError,
} from "../../core/errors.ts";
import { joinHostPort, splitHostPort } from "../../core/addr.ts";
import { parseSocksAddr } from "../../protocol/socks_addr.ts";
import { LengthFramedConn } from "../../protocol/length_framed.ts";
import type { SmuxConfig } from "../../mux/smux/mod.ts";
import {
  type BindAnswers,
  bindMuxConfig,
  BindPolicy,
  grantBind,
  listenForBind,
  listenUdpForBind,
  MuxBindListener,
  PacketBindListener,
  portOf,
  RUDP,
  serveMuxBind,
  serveUdpBind,
} from "../bind.ts";
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
import { classifyDialError, pipeLogged } from "../common.ts";
import { withDeadline } from "../../core/deadline.ts";
import { serveUdpOverTcp } from "../udp.ts";
import {
  addrFeature,
  CMD_BIND,
  CMD_CONNECT,
  decodeRequest,
  encodeMessage,
  FEATURE_ADDR,
  FLAG_UDP,
  NETWORK_TCP,
  NETWORK_UDP,
  networkFeature,
  readMessage,
  STATUS,
  statusText,
  userAuthFeature,
} from "./codec.ts";

/** A conn whose first write (or closeWrite) is preceded by `head`. */
class HeadFirstConn extends WrappedConn {
  #head: Uint8Array | null;
  constructor(inner: Conn, head: Uint8Array) {
    super(inner);
    this.#head = head;
  }
  /** Sends the head now if it is still pending. */
  async flush(): Promise<void> {
    const h = this.#head;
    if (h) {
      this.#head = null;
      await this.inner.write(h);
    }
  }
  override async write(p: Uint8Array): Promise<number> {
    const h = this.#head;
    if (!h) return await this.inner.write(p);
    this.#head = null;
    const both = new Uint8Array(h.length + p.length);
    both.set(h);
    both.set(p, h.length);
    await this.inner.write(both);
    return p.length;
  }
  override async closeWrite(): Promise<void> {
    await this.flush();
    await this.inner.closeWrite();
  }
}

function response(status: number, features: Uint8Array[] = []): Uint8Array {
  return encodeMessage(status, features);
}

export class RelayHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #readTimeout: number;
  readonly #nodelay: boolean;
  readonly #bind: boolean;
  readonly #bindOpts: { policy: BindPolicy; mux: SmuxConfig };

  constructor(opts: HandlerOptions) {
    this.#o = opts;
    this.#readTimeout = opts.metadata.duration("readTimeout", 15_000);
    this.#nodelay = opts.metadata.bool("nodelay");
    this.#bind = opts.metadata.bool("bind");
    this.#bindOpts = { policy: BindPolicy.from(opts.metadata), mux: bindMuxConfig(opts.metadata) };
  }

  /**
   * Relay TCP BIND (remote port forwarding): listen where asked (`bind=true`, within
   * `bind.ports`), answer OK with the bound address, then carry each peer as a smux stream we
   * open, headed by a relay response naming the peer (docs/reverse.md).
   */
  async #tcpBind(br: BufReader, conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    const l = await grantBind(
      conn,
      addr,
      this.#bindOpts.policy,
      RELAY_BIND,
      listenForBind,
      ctx.log,
    );
    await serveMuxBind(br.conn(), l, {
      header: (peer) => response(STATUS.ok, [addrFeature(peer)]),
      mux: this.#bindOpts.mux,
      log: ctx.log,
      signal: ctx.signal,
    });
  }

  /** UDP BIND on a port (rudp): datagrams to and from peers as UDP-over-TCP frames. */
  async #udpBind(br: BufReader, conn: Conn, addr: string, ctx: HandleContext): Promise<void> {
    const sock = await grantBind(
      conn,
      addr,
      this.#bindOpts.policy,
      RELAY_BIND,
      listenUdpForBind,
      ctx.log,
    );
    await serveUdpBind(br, br.conn(), sock, ctx.log, ctx.signal);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const br = new BufReader(conn, 512);
    let req;
    try {
      req = await withDeadline(
        conn,
        this.#readTimeout,
        async () => decodeRequest(await readMessage(br)),
      );
    } catch (e) {
      if (e instanceof ProtocolError) await conn.write(response(STATUS.badRequest)).catch(() => {});
      throw e;
    }
    const auther = this.#o.auther;
    if (auther && !auther.authenticate(req.user ?? "", req.pass ?? "")) {
      await conn.write(response(STATUS.unauthorized));
      throw new AuthError(
        `relay: authentication failed${req.user ? ` for user ${JSON.stringify(req.user)}` : ""}`,
      );
    }
    const network: Network = req.udp ? "udp" : "tcp";
    if (req.cmd === CMD_BIND) {
      if (network === "tcp") return await this.#tcpBind(br, conn, req.addr, ctx);
      if (portOf(req.addr) !== 0) return await this.#udpBind(br, conn, req.addr, ctx);
      // UDP association (a GOST client relaying UDP with no fixed target).
      if (!this.#bind) {
        await conn.write(response(STATUS.forbidden));
        throw new TunnelError("relay: udp bind refused (needs bind=true)");
      }
      await conn.write(response(STATUS.ok, [addrFeature(`${conn.localAddr.hostname}:0`)]));
      return await serveUdpOverTcp(br, conn, this.#o.router, ctx.log);
    }
    if (req.cmd !== CMD_CONNECT && req.cmd !== 0) {
      await conn.write(response(STATUS.badRequest));
      throw new ProtocolError(`relay: unknown command ${req.cmd}`);
    }
    let target = req.addr;
    const fw = this.#o.forwarder;
    const node = fw?.select(conn.remoteAddr.hostname);
    if (fw) {
      if (!node) {
        await conn.write(response(STATUS.serviceUnavailable));
        throw new TunnelError("relay: no forward target");
      }
      target = node.addr;
    } else if (target === "") {
      await conn.write(response(STATUS.badRequest));
      throw new ProtocolError("relay: no target address");
    }
    let up: Conn;
    try {
      up = await this.#o.router.dial(network, target, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
      if (node) fw!.markOk(node);
    } catch (e) {
      if (node) fw!.markFailed(node);
      const kind = classifyDialError(e);
      const st = kind === "forbidden"
        ? STATUS.forbidden
        : node
        ? STATUS.hostUnreachable
        : kind === "timeout"
        ? STATUS.timeout
        : STATUS.networkUnreachable;
      await conn.write(response(st)).catch(() => {});
      ctx.log.error(`relay: connect ${target}: ${errorText(e)}`, { dst: target });
      return;
    }
    const ok = response(STATUS.ok);
    let client: Conn;
    if (network === "udp") {
      await conn.write(ok);
      client = new LengthFramedConn(br.conn(), new BufReader(br.conn(), 4096));
    } else if (this.#nodelay) {
      await conn.write(ok);
      client = br.conn();
    } else {
      client = new HeadFirstConn(br.conn(), ok);
    }
    // A reaction, not this frame, waits out the tunnel (as socks5).
    const flush = client instanceof HeadFirstConn ? client : null;
    return pipeLogged(client, up, target, ctx).then(() => flush?.flush().catch(() => {}));
  }
}

/** Relay's answers to a bind request. */
const RELAY_BIND: BindAnswers = {
  refused: response(STATUS.forbidden),
  failed: response(STATUS.serviceUnavailable),
  ok: (a) => response(STATUS.ok, [addrFeature(joinHostPort(a.hostname, a.port))]),
  name: "relay",
};

/** The client side: a conn that carries the relay request/response around the app's bytes. */
class RelayClientConn extends WrappedConn {
  readonly #br: BufReader;
  #request: Uint8Array | null;
  #responded = false;
  readonly #address: string;

  constructor(inner: Conn, request: Uint8Array, address: string) {
    super(inner);
    this.#br = new BufReader(inner, 512);
    this.#request = request;
    this.#address = address;
  }
  async #sendRequest(data?: Uint8Array): Promise<void> {
    const r = this.#request;
    if (!r) {
      if (data) await this.inner.write(data);
      return;
    }
    this.#request = null;
    if (!data) return await this.inner.write(r).then(() => {});
    const both = new Uint8Array(r.length + data.length);
    both.set(r);
    both.set(data, r.length);
    await this.inner.write(both);
  }
  /** Reads and checks the response once. */
  async handshake(): Promise<void> {
    if (this.#responded) return;
    await this.#sendRequest();
    const m = await readMessage(this.#br);
    this.#responded = true;
    if (m.code !== STATUS.ok) {
      throw new TunnelError(`relay: ${m.code} ${statusText(m.code)} (${this.#address})`);
    }
  }
  override async read(p: Uint8Array): Promise<number | null> {
    if (!this.#responded) await this.handshake();
    return await this.#br.read(p);
  }
  override async write(p: Uint8Array): Promise<number> {
    await this.#sendRequest(p);
    return p.length;
  }
  override async closeWrite(): Promise<void> {
    await this.#sendRequest();
    await this.inner.closeWrite();
  }
}

export class RelayConnector implements Connector {
  readonly #auth?: Credentials;
  readonly #nodelay: boolean;
  readonly #mux: SmuxConfig;
  constructor(opts: ConnectorOptions) {
    this.#auth = opts.auth;
    this.#nodelay = opts.metadata.bool("nodelay");
    this.#mux = bindMuxConfig(opts.metadata);
  }

  /** Asks the server to listen on `address` for us (relay TCP BIND, as rtcp uses it). */
  async bind(
    conn: Conn,
    network: Network,
    address: string,
    ctx: BindContext,
  ): Promise<Listener> {
    const udp = network === "udp";
    if (udp && portOf(address) === 0) {
      // Port 0 is GOST's UDP association (no listening port): a reverse UDP bind needs one.
      throw new UnsupportedError("relay: a UDP bind needs a port");
    }
    const features: Uint8Array[] = [];
    if (this.#auth) features.push(userAuthFeature(this.#auth.username, this.#auth.password));
    features.push(networkFeature(udp ? NETWORK_UDP : NETWORK_TCP));
    // A port-only address goes out as 0.0.0.0:port (GOST 3.2.6 and later servers read that).
    const { host, port } = splitHostPort(address);
    features.push(addrFeature(joinHostPort(host === "" ? "0.0.0.0" : host, port)));
    await conn.write(encodeMessage(udp ? CMD_BIND | FLAG_UDP : CMD_BIND, features));
    const br = new BufReader(conn, udp ? 4096 : 512);
    const m = await readMessage(br);
    if (m.code !== STATUS.ok) {
      throw new TunnelError(`relay: bind on ${address} failed: ${m.code} ${statusText(m.code)}`);
    }
    if (udp) {
      return new PacketBindListener(conn, br, decodeRequest(m).addr, ctx.packets ?? RUDP, ctx.log);
    }
    return new MuxBindListener(br.conn(), decodeRequest(m).addr, this.#mux, async (sbr) => {
      const h = await readMessage(sbr);
      if (h.code !== STATUS.ok) throw new TunnelError(`relay: peer stream status ${h.code}`);
      // The first Addr is the peer (a second, if any, names the host asked for).
      const first = h.features.find((f) => f.type === FEATURE_ADDR);
      return first ? parseSocksAddr(first.data, 0).addr : "";
    }, ctx.log);
  }

  async connect(
    conn: Conn,
    network: Network,
    address: string,
    _ctx: ConnectContext,
  ): Promise<Conn> {
    const features: Uint8Array[] = [];
    if (network === "udp") features.push(networkFeature(NETWORK_UDP));
    if (this.#auth) features.push(userAuthFeature(this.#auth.username, this.#auth.password));
    if (address) features.push(addrFeature(address));
    const req = encodeMessage(network === "udp" ? CMD_CONNECT | FLAG_UDP : CMD_CONNECT, features);
    const c = new RelayClientConn(conn, req, address);
    if (network === "udp") {
      await c.handshake();
      return new LengthFramedConn(c, new BufReader(c, 4096));
    }
    if (this.#nodelay) await c.handshake();
    return c;
  }
}
