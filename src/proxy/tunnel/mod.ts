/**
 * GOST's `tunnel` handler and connector (docs/reverse.md §tunnel): clients register a tunnel id
 * with a relay BIND carrying the Tunnel feature and then serve visitor streams over smux; the
 * server's entrypoint routes visitors to them by host name.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { type Conn, formatAddr } from "../../core/conn.ts";
import {
  AuthError,
  ConfigError,
  errorText,
  ProtocolError,
  TunnelError,
} from "../../core/errors.ts";
import { withDeadline } from "../../core/deadline.ts";
import { joinHostPort, listenHost, splitHostPort } from "../../core/addr.ts";
import type { Registries } from "../../core/registry.ts";
import type {
  BindContext,
  Connector,
  ConnectorOptions,
  Credentials,
  HandleContext,
  Handler,
  HandlerOptions,
  Listener,
  Network,
} from "../../core/types.ts";
import { clientSession, type SmuxConfig, smuxConfigFromMetadata } from "../../mux/smux/mod.ts";
import {
  addrFeature,
  CMD_BIND,
  CMD_CONNECT,
  decodeRequest,
  encodeMessage,
  feature,
  FEATURE_TUNNEL,
  NETWORK_UDP,
  networkFeature,
  readMessage,
  type RelayMessage,
  type RelayRequest,
  STATUS,
  statusText,
  userAuthFeature,
} from "../relay/codec.ts";
import { MuxBindListener } from "../bind.ts";
import { LengthFramedConn } from "../../protocol/length_framed.ts";
import { FLAG_UDP, TunnelId } from "./id.ts";
import { Ingress } from "./ingress.ts";
import { type TunnelClient, TunnelPool } from "./pool.ts";
import { relay } from "../../core/relay.ts";
import { Entrypoint } from "./entrypoint.ts";

function tunnelFeature(id: TunnelId): Uint8Array {
  return feature(FEATURE_TUNNEL, id.bytes);
}

/** The smux settings of a tunnel session (version 2 unless `mux.version` says otherwise). */
function tunnelMux(md: HandlerOptions["metadata"]): SmuxConfig {
  return smuxConfigFromMetadata(md, 2);
}

/** A relay request as the tunnel reads it: its id parsed. */
type Request = Omit<RelayRequest, "tunnel"> & { tunnel?: TunnelId };

function decode(m: RelayMessage): Request {
  const r = decodeRequest(m);
  return { ...r, tunnel: r.tunnel ? new TunnelId(r.tunnel) : undefined };
}

/** An entrypoint and its pool, shared by the handlers of one service across reloads. */
interface Shared {
  pool: TunnelPool;
  entrypoint?: Entrypoint;
  /** Live handlers, oldest first: the entrypoint routes by the newest one's rules. */
  handlers: TunnelHandler[];
}
/**
 * Pools and entrypoints by runtime and entrypoint address: a reload builds the new handler
 * while the old one still runs, and both must share the port and the registered clients.
 */
const SHARED = new Map<string, Shared>();

/** The tunnel server. */
export class TunnelHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly ingress: Ingress;
  readonly #mux: SmuxConfig;
  readonly #readTimeout: number;
  readonly #key: string;
  readonly #shared: Shared;
  #closed = false;

  private constructor(o: HandlerOptions, ingress: Ingress, key: string, shared: Shared) {
    this.#o = o;
    this.ingress = ingress;
    this.#mux = tunnelMux(o.metadata);
    this.#readTimeout = o.metadata.duration("readTimeout", 15_000);
    this.#key = key;
    this.#shared = shared;
  }

  static create(o: HandlerOptions): TunnelHandler {
    const md = o.metadata;
    const rules = md.string("tunnel");
    const ingress = Ingress.parse(rules, `${md.path}.tunnel`);
    const named = md.string("ingress");
    if (named) {
      const list = o.ingresses?.get(named);
      if (!list) throw new ConfigError(`${md.path}.ingress`, `no ingress named "${named}"`);
      ingress.add(list, `ingresses.${named}`);
    }
    const entry = md.string("entrypoint");
    let where = "";
    if (entry) {
      try {
        const { host, port } = splitHostPort(entry);
        where = `${listenHost(host)}:${port}`;
      } catch (e) {
        throw new ConfigError(`${md.path}.entrypoint`, errorText(e));
      }
    }
    const key = `${o.instance ?? ""}|${where || `service ${o.service}`}`;
    let shared = SHARED.get(key);
    if (!shared) {
      const s: Shared = { pool: new TunnelPool(), handlers: [] };
      if (entry) {
        // A busy port is the OS's error (the runtime reports "cannot listen on ...").
        s.entrypoint = new Entrypoint(entry, s.pool, () => s.handlers.at(-1)!.ingress, o.log);
      }
      SHARED.set(key, shared = s);
    }
    const h = new TunnelHandler(o, ingress, key, shared);
    shared.handlers.push(h);
    return h;
  }

  /** The entrypoint's bound port (0 without one). */
  get entrypointPort(): number {
    return this.#shared.entrypoint?.port ?? 0;
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const br = new BufReader(conn, 512);
    let req: Request;
    try {
      req = await withDeadline(conn, this.#readTimeout, async () => decode(await readMessage(br)));
    } catch (e) {
      if (e instanceof ProtocolError) {
        await conn.write(encodeMessage(STATUS.badRequest, [])).catch(() => {});
      }
      throw e;
    }
    const auther = this.#o.auther;
    if (auther && !auther.authenticate(req.user ?? "", req.pass ?? "")) {
      await conn.write(encodeMessage(STATUS.unauthorized, []));
      throw new AuthError("tunnel: authentication failed");
    }
    if (!req.tunnel || req.tunnel.isZero) {
      await conn.write(encodeMessage(STATUS.badRequest, []));
      throw new ProtocolError("tunnel: no tunnel id");
    }
    if (req.cmd === CMD_CONNECT) return await this.#visit(br, conn, req, ctx);
    if (req.cmd !== CMD_BIND) {
      await conn.write(encodeMessage(STATUS.badRequest, []));
      throw new ProtocolError(`tunnel: unknown command ${req.cmd}`);
    }
    const uuid = req.tunnel.uuid;
    // Only tunnels the server's rules name may register (GOST lets any id in).
    if (!this.ingress.knows(uuid)) {
      await conn.write(encodeMessage(STATUS.forbidden, []));
      throw new TunnelError(`tunnel: unknown tunnel ${uuid} refused`);
    }
    const cid = TunnelId.random(req.udp ? FLAG_UDP : 0);
    const dst = req.addrs[1] ?? req.addrs[0] ?? ":0";
    let port = 0;
    try {
      port = splitHostPort(dst).port;
    } catch { /* no port */ }
    if (!this.#shared.pool.canAdd(uuid)) {
      await conn.write(encodeMessage(STATUS.serviceUnavailable, []));
      throw new TunnelError(`tunnel ${uuid}: too many clients`);
    }
    const endpoint = await endpointName(uuid);
    await conn.write(
      encodeMessage(STATUS.ok, [addrFeature(joinHostPort(endpoint, port)), tunnelFeature(cid)]),
    );
    const session = clientSession(br.conn(), this.#mux, { log: ctx.log });
    const client = { id: cid.uuid, weight: req.tunnel.weight, udp: req.udp, session };
    if (this.#closed || !this.#shared.pool.add(uuid, client)) {
      session.close();
      throw new TunnelError(`tunnel ${uuid}: too many clients`);
    }
    ctx.log.info(
      `tunnel ${uuid}: client ${cid.uuid} (weight ${client.weight}) from ${
        formatAddr(conn.remoteAddr)
      }`,
    );
    const stop = () => session.close();
    ctx.signal.addEventListener("abort", stop, { once: true });
    // A client that opens a stream itself breaks the protocol: its session ends.
    const s = await session.acceptStream().catch(() => null);
    if (s) {
      ctx.log.warn(`tunnel ${uuid}: client ${cid.uuid} opened a stream (not part of the protocol)`);
      s.close();
      session.close();
    }
    ctx.signal.removeEventListener("abort", stop);
    await session.closed;
    ctx.log.info(`tunnel ${uuid}: client ${cid.uuid} left`);
  }

  /**
   * A visitor through relay CONNECT (`-F tunnel://srv?tunnel.id=U`): it must name the tunnel the
   * rules give for its target host (private tunnels are reached this way only). The answer is
   * `01 00 00 00`, then the stream carries the visitor's bytes.
   */
  async #visit(br: BufReader, conn: Conn, req: Request, ctx: HandleContext): Promise<void> {
    const uuid = req.tunnel!.uuid;
    const dst = req.addrs[1] ?? req.addrs[0] ?? "";
    const route = dst ? this.ingress.lookup(dst) : undefined;
    if (!route || route.tunnel !== uuid) {
      await conn.write(encodeMessage(STATUS.hostUnreachable, []));
      throw new TunnelError(`tunnel: ${dst || "(no target)"} is not served by tunnel ${uuid}`);
    }
    // A UDP visitor goes to a UDP client; both sides frame datagrams as LEN(2) | payload, so
    // the bytes pass through as they are.
    const tried = new Set<TunnelClient>();
    let stream: Conn | undefined;
    for (let i = 0; i < 3 && !stream; i++) {
      const c = this.#shared.pool.pick(uuid, req.udp, tried);
      if (!c) break;
      tried.add(c);
      stream = await c.session.openStream().catch(() => undefined);
    }
    if (!stream) {
      await conn.write(encodeMessage(STATUS.serviceUnavailable, []));
      throw new TunnelError(`tunnel ${uuid}: no client connected`);
    }
    try {
      const visitor = req.addrs.length > 1 ? req.addrs[0]! : formatAddr(conn.remoteAddr);
      await stream.write(encodeMessage(STATUS.ok, [addrFeature(visitor), addrFeature(dst)]));
      await conn.write(encodeMessage(STATUS.ok, []));
      ctx.log.debug(`${visitor} → ${dst} via tunnel ${uuid} (relay)`);
      await relay(br.conn(), stream);
    } finally {
      stream.close();
    }
  }

  /**
   * Leaves the shared state: the entrypoint routes by the newest live handler again (a refused
   * reload's handler closes without ever having been the one in charge). The last one out
   * closes the pool and the entrypoint.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const list = this.#shared.handlers;
    list.splice(list.indexOf(this), 1);
    if (list.length === 0) {
      SHARED.delete(this.#key);
      this.#shared.pool.close();
      return this.#shared.entrypoint?.close() ?? Promise.resolve();
    }
    return Promise.resolve();
  }
}

/** GOST's endpoint host for a tunnel: the first 8 bytes of md5(uuid text), in hex. */
async function endpointName(uuid: string): Promise<string> {
  // WebCrypto has no MD5; node:crypto does.
  const { createHash } = await import("node:crypto");
  return createHash("md5").update(uuid).digest("hex").slice(0, 16);
}

/** The tunnel client: registers `tunnel.id` with a relay BIND and serves visitor streams. */
export class TunnelConnector implements Connector {
  readonly #id: TunnelId;
  readonly #auth?: Credentials;
  readonly #mux: SmuxConfig;

  constructor(o: ConnectorOptions) {
    const md = o.metadata;
    const id = md.string(["tunnel.id", "tunnelID"]);
    if (!id) {
      // GOST makes up a random id per start, which no ingress rule can name.
      throw new ConfigError(`${md.path}.tunnel.id`, "a tunnel client needs tunnel.id (a UUID)");
    }
    const weight = md.int("tunnel.weight", 0);
    if (weight < 0 || weight > 255) {
      throw new ConfigError(`${md.path}.tunnel.weight`, "expected 0..255");
    }
    try {
      this.#id = TunnelId.parse(id, weight);
    } catch (e) {
      throw new ConfigError(`${md.path}.tunnel.id`, errorText(e));
    }
    this.#auth = o.auth;
    this.#mux = smuxConfigFromMetadata(md, 2);
  }

  /** Visits `address` through the tunnel this node names (relay CONNECT with the Tunnel feature). */
  async connect(conn: Conn, network: Network, address: string): Promise<Conn> {
    const udp = network === "udp";
    const features: Uint8Array[] = [];
    if (udp) features.push(networkFeature(NETWORK_UDP));
    if (this.#auth) features.push(userAuthFeature(this.#auth.username, this.#auth.password));
    features.push(
      addrFeature(formatAddr(conn.localAddr).replace(/^:/, "0.0.0.0:")),
      addrFeature(address),
      tunnelFeature(this.#id),
    );
    await conn.write(encodeMessage(udp ? CMD_CONNECT | 0x80 : CMD_CONNECT, features));
    const br = new BufReader(conn, udp ? 4096 : 512);
    const m = await readMessage(br);
    if (m.code !== STATUS.ok) {
      throw new TunnelError(`tunnel ${this.#id.uuid}: ${address}: ${m.code} ${statusText(m.code)}`);
    }
    return udp ? new LengthFramedConn(conn, br) : br.conn();
  }

  async bind(conn: Conn, network: Network, address: string, ctx: BindContext): Promise<Listener> {
    const udp = network === "udp";
    const { host, port } = splitHostPort(address);
    const features: Uint8Array[] = [];
    if (udp) features.push(networkFeature(NETWORK_UDP));
    if (this.#auth) features.push(userAuthFeature(this.#auth.username, this.#auth.password));
    features.push(
      addrFeature(formatAddr(conn.localAddr).replace(/^:/, "0.0.0.0:")),
      addrFeature(joinHostPort(host === "" ? "0.0.0.0" : host, port)),
      tunnelFeature(this.#id),
    );
    await conn.write(encodeMessage(udp ? CMD_BIND | 0x80 : CMD_BIND, features));
    const br = new BufReader(conn, 512);
    const m = await readMessage(br);
    if (m.code !== STATUS.ok) {
      throw new TunnelError(
        `tunnel: create tunnel ${this.#id.uuid} failed: ${m.code} ${statusText(m.code)}`,
      );
    }
    const r = decode(m);
    ctx.log.info(
      `create tunnel on ${r.addrs[0] ?? "?"} OK, tunnel=${this.#id.uuid}, connector=${
        r.tunnel?.uuid ?? "?"
      }, weight=${this.#id.weight}`,
    );
    return new MuxBindListener(
      br.conn(),
      r.addrs[0] ?? "",
      this.#mux,
      async (sbr) => {
        const h = await readMessage(sbr);
        if (h.code !== STATUS.ok) throw new TunnelError(`tunnel: visitor stream status ${h.code}`);
        return decode(h).addrs[0] ?? "";
      },
      ctx.log,
      udp,
    );
  }
}

export function register(reg: Registries): void {
  reg.handlers.register("tunnel", (o) => TunnelHandler.create(o));
  reg.connectors.register("tunnel", (o) => new TunnelConnector(o));
}
