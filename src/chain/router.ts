/**
 * Chains and the router (docs/gost-config.md §3.2–3.4). A route is one node per hop. Dialing through it is
 * recursive: the last node's dialer gets a `netDial` that reaches its address through the nodes
 * before it, so a multiplexing dialer (mtcp, kcp, ...) only dials the earlier hops when it needs
 * a new session — GOST's route splitting falls out of that.
 * @module
 */
import type { Conn } from "../core/conn.ts";
import { abortable, withSignal } from "../core/deadline.ts";
import {
  errorText,
  ForbiddenError,
  LoopError,
  TimeoutError,
  TunnelError,
  UnsupportedError,
} from "../core/errors.ts";
import type { Bypasser } from "../access/bypass.ts";
import { isIPv4, isIPv6, joinHostPort, splitHostPort } from "../core/addr.ts";
import { inetAton, splitHostPortLoose } from "../core/ip.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import type {
  BindRequest,
  Connector,
  Dialer,
  DialRequest,
  ForwardTarget,
  Listener,
  Network,
  Router,
  TargetSelector,
} from "../core/types.ts";
import { directDialTcp } from "../transport/tcp/dialer.ts";
import { TcpListener } from "../transport/tcp/listener.ts";
import { UdpListener } from "../transport/udp/listener.ts";
import type { PacketDemuxOptions } from "../core/packet_demux.ts";

/** A local UDP bind (rudp without a chain): sessions as GOST's rudp keeps them. */
const LOCAL_UDP: PacketDemuxOptions = {
  keepalive: true,
  ttl: 5000,
  readQueueSize: 1024,
  backlog: 128,
  maxSessions: 1024,
};
import { dialUdp } from "../core/udp.ts";
import type { SelfAddresses } from "./self.ts";
import { FailMarker, type Selectable, Selector, type SelectorOptions } from "./selector.ts";

/** One node of a hop: an address plus the dialer and connector that reach through it. */
export class ChainNode implements Selectable {
  readonly marker: FailMarker = new FailMarker();
  constructor(
    readonly name: string,
    readonly addr: string,
    readonly dialer: Dialer,
    readonly connector: Connector,
    readonly weight = 1,
    /** Targets this node does not carry (GOST node bypass). */
    readonly bypass?: Bypasser,
    /** Resolves this node's own host (node/hop `hosts` and `resolver`). */
    readonly lookup?: HostLookup,
  ) {}
}

/** Host name → IP (hosts first, then a resolver); undefined keeps the name as it is. */
export type HostLookup = (host: string) => Promise<string | undefined>;

/** `host:port` with the host resolved by `lookup` (IP literals and `:port` pass through). */
export async function resolveAddress(address: string, lookup?: HostLookup): Promise<string> {
  if (!lookup) return address;
  const { host, port } = splitHostPort(address);
  if (host === "" || isIPv4(host) || isIPv6(host)) return address;
  const ip = await lookup(host);
  return ip === undefined ? address : joinHostPort(ip, port);
}

/** A hop: nodes and how to pick one. */
export class Hop {
  constructor(
    readonly name: string,
    readonly nodes: ChainNode[],
    readonly selector: Selector<ChainNode>,
    /** Targets for which the route ends before this hop (GOST hop bypass). */
    readonly bypass?: Bypasser,
  ) {}
  /** A node for `address`, or undefined when the hop (or every node) bypasses it. */
  select(hashKey?: string, network: Network = "tcp", address = ""): ChainNode | undefined {
    if (address !== "" && this.bypass?.contains(network, address)) return undefined;
    const nodes = address === ""
      ? this.nodes
      : this.nodes.filter((n) => !n.bypass?.contains(network, address));
    return this.selector.select(nodes, hashKey);
  }
}

/** Hooks a metrics collector gives a chain (once per dial, never per read). */
export interface ChainObserver {
  /** A dial through `node` of `chain` failed there. */
  nodeError(chain: string, node: string): void;
  /** A route through `node` (the route's last node) was connected in `seconds`. */
  nodeConnected(chain: string, node: string, seconds: number): void;
}

/** A node of a running chain as the runtime shows it. */
export interface RunningNode {
  /** The node's config name. */
  readonly name: string;
  /** Its `host:port`. */
  readonly addr: string;
}

/** A running chain as the runtime shows it: its hops and their nodes. */
export interface RunningChain {
  /** The chain's config name. */
  readonly name: string;
  /** Its hops in order, each with its nodes. */
  readonly hops: readonly { readonly name: string; readonly nodes: readonly RunningNode[] }[];
}

/** An ordered list of hops. */
export class Chain implements RunningChain {
  constructor(readonly name: string, readonly hops: Hop[], readonly observer?: ChainObserver) {}

  /** Picks one node per hop; a hop that bypasses `address` ends the route before it. */
  route(hashKey?: string, network: Network = "tcp", address = ""): ChainNode[] {
    const out: ChainNode[] = [];
    for (const h of this.hops) {
      const n = h.select(hashKey, network, address);
      if (!n) break;
      out.push(n);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.hops.flatMap((h) => h.nodes.map((n) => n.dialer.close?.())));
  }
}

/** A dial failure attributed to the node where it happened. */
export class RouteError extends TunnelError {
  constructor(readonly node: ChainNode, cause: unknown) {
    super(`${node.name}@${node.addr}: ${errorText(cause)}`, {
      cause,
      temporary: cause instanceof TunnelError ? cause.temporary : true,
    });
    this.name = "RouteError";
  }
}

/** Direct dial with no chain. */
export function directDial(network: Network, address: string, signal?: AbortSignal): Promise<Conn> {
  return network === "udp" ? dialUdp(address) : directDialTcp(address, signal);
}

/** Dials `address` through every node of `route` (the last node's connector asks for it). */
/**
 * Asks the last node of `route` to listen on `address` for us (its connector's `bind`), or
 * listens locally when the route is empty.
 */
export async function routeBind(
  route: readonly ChainNode[],
  network: Network,
  address: string,
  log: Logger,
  signal?: AbortSignal,
  packets?: PacketDemuxOptions,
): Promise<Listener> {
  if (route.length === 0) {
    if (network === "tcp") return TcpListener.listen(address);
    return new UdpListener(address, packets ?? LOCAL_UDP, log);
  }
  const node = route[route.length - 1]!;
  const bind = node.connector.bind?.bind(node.connector);
  if (!bind) {
    throw new RouteError(node, new UnsupportedError(`${node.name}: its connector cannot bind`));
  }
  const conn = await nodeConn(route, log, signal);
  try {
    return await withSignal(
      conn,
      signal,
      () => bind(conn, network, address, { signal, log, packets }),
    );
  } catch (e) {
    conn.close();
    throw e instanceof RouteError ? e : new RouteError(node, e);
  }
}

/** A conn to the last node of a non-empty `route` (through the earlier ones), before its connector. */
async function nodeConn(
  route: readonly ChainNode[],
  log: Logger,
  signal?: AbortSignal,
): Promise<Conn> {
  const node = route[route.length - 1]!;
  const prefix = route.slice(0, -1);
  try {
    if (node.dialer.directOnly && prefix.length > 0) {
      // Never bypass the earlier hops silently (the runtime refuses such chains at start).
      throw new UnsupportedError(`${node.name}: its dialer cannot be reached through earlier hops`);
    }
    const addr = await resolveAddress(node.addr, node.lookup);
    // Bounded by the signal whether or not the dialer watches it (a silent peer mid-handshake).
    return await abortable(
      node.dialer.dial(addr, {
        netDial: (a) => routeDial(prefix, "tcp", a, log, signal),
        direct: prefix.length === 0,
        signal,
        log,
      }),
      signal,
    );
  } catch (e) {
    throw e instanceof RouteError ? e : new RouteError(node, e);
  }
}

export async function routeDial(
  route: readonly ChainNode[],
  network: Network,
  address: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<Conn> {
  if (route.length === 0) return directDial(network, address, signal);
  const node = route[route.length - 1]!;
  const conn = await nodeConn(route, log, signal);
  try {
    return await withSignal(
      conn,
      signal,
      () => node.connector.connect(conn, network, address, { signal, log }),
    );
  } catch (e) {
    conn.close();
    throw e instanceof RouteError ? e : new RouteError(node, e);
  }
}

/**
 * The address as it will be dialed: an empty host is this machine and odd IPv4 spellings
 * (`127.1`) become dotted quads, so bypass rules cannot be dodged by spelling.
 */
export function canonicalTarget(address: string): string {
  const { host, port } = splitHostPortLoose(address);
  if (port === "" || host.includes(":")) return address;
  if (host === "") return `127.0.0.1:${port}`;
  const v4 = inetAton(host);
  return v4 && v4 !== host ? `${v4}:${port}` : address;
}

/** Router options (handler `retries`, service `dialTimeout`). */
export interface RouterOptions {
  chain?: Chain;
  /** Extra attempts after the first. */
  retries?: number;
  /** Per-attempt timeout in ms (default 15 s). */
  dialTimeout?: number;
  log?: Logger;
  /** Service bypass: matching targets are refused with a ForbiddenError. */
  bypass?: Bypasser;
  /** Service hosts/resolver: targets are resolved here, before routing (GOST). */
  lookup?: HostLookup;
  /** Our own listeners: a direct dial to one is refused with a LoopError. */
  self?: SelfAddresses;
}

/** The router handlers dial through. */
export class ChainRouter implements Router {
  readonly #chain?: Chain;
  readonly #retries: number;
  readonly #timeout: number;
  readonly #log: Logger;
  readonly #bypass?: Bypasser;
  readonly #lookup?: HostLookup;
  readonly #self?: SelfAddresses;

  constructor(opts: RouterOptions = {}) {
    this.#self = opts.self;
    this.#chain = opts.chain;
    this.#bypass = opts.bypass;
    this.#lookup = opts.lookup;
    this.#retries = opts.retries ?? 0;
    this.#timeout = opts.dialTimeout ?? 15_000;
    this.#log = opts.log ?? silentLogger;
  }

  async dial(network: Network, address0: string, req: DialRequest = {}): Promise<Conn> {
    const log = req.log ?? this.#log;
    const address = canonicalTarget(address0);
    if (this.#bypass?.contains(network, address)) {
      log.debug(`bypass: ${address} is refused`, { kind: "router", dst: address });
      throw new ForbiddenError(`${address} is refused by the service's bypass rules`);
    }
    let last: unknown;
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new TimeoutError("dial timeout")), this.#timeout);
      const onAbort = () => ac.abort(req.signal?.reason);
      req.signal?.addEventListener("abort", onAbort, { once: true });
      let route: ChainNode[] = [];
      try {
        // Resolved per attempt, before routing: hop bypasses see the resolved address (GOST).
        const target = await resolveAddress(address, this.#lookup);
        route = this.#chain?.route(req.client, network, target) ?? [];
        if (route.length === 0 && this.#self) {
          const { host, port } = splitHostPort(target);
          if (this.#self.has(network, host, port)) {
            throw new LoopError(`${address} is one of our own listeners: a proxy loop, refused`);
          }
        }
        const t0 = performance.now();
        const conn = await routeDial(route, network, target, log, ac.signal);
        for (const n of route) n.marker.reset();
        const obs = this.#chain?.observer;
        if (obs && route.length > 0) {
          obs.nodeConnected(this.#chain!.name, route.at(-1)!.name, (performance.now() - t0) / 1000);
        }
        return conn;
      } catch (e) {
        last = e;
        if (e instanceof RouteError) {
          e.node.marker.mark();
          this.#chain?.observer?.nodeError(this.#chain.name, e.node.name);
        }
        const path = [...route.map((n) => `${n.name}@${n.addr}`), address].join(" > ");
        log.warn(`route(retry=${attempt}) ${errorText(e)}`, { kind: "router", route: path });
        if (req.signal?.aborted || e instanceof LoopError) break;
      } finally {
        clearTimeout(timer);
        req.signal?.removeEventListener("abort", onAbort);
      }
    }
    throw last instanceof Error ? last : new TunnelError(String(last));
  }

  /**
   * Binds `address` at the chain's last node (remote port forwarding), or locally without a
   * chain. One attempt, bounded by the dial timeout; the caller (the rtcp listener) retries.
   */
  async bind(network: Network, address: string, req: BindRequest = {}): Promise<Listener> {
    const log = req.log ?? this.#log;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new TimeoutError("bind timeout")), this.#timeout);
    const onAbort = () => ac.abort(req.signal?.reason);
    req.signal?.addEventListener("abort", onAbort, { once: true });
    const route = this.#chain?.route(req.client, network, address) ?? [];
    try {
      if (this.#chain && route.length === 0) {
        // A hop bypass emptied the route: binding here instead would be a silent local listen.
        throw new TunnelError(`bind ${address}: empty route (the chain's hops bypass it)`);
      }
      const l = await routeBind(route, network, address, log, ac.signal, req.packets);
      for (const n of route) n.marker.reset();
      return l;
    } catch (e) {
      if (e instanceof RouteError) {
        e.node.marker.mark();
        this.#chain?.observer?.nodeError(this.#chain.name, e.node.name);
      }
      throw e;
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
    }
  }
}

class TargetNode implements Selectable {
  readonly marker = new FailMarker();
  constructor(readonly target: ForwardTarget, readonly weight: number) {}
  get name(): string {
    return this.target.name;
  }
}

/** Forward targets with a selector and fail marks (`forwarder:` / `-L ...:/target`). */
export class ForwardTargets implements TargetSelector {
  readonly #nodes: TargetNode[];
  readonly #selector: Selector<TargetNode>;

  constructor(
    targets: readonly (ForwardTarget | { target: ForwardTarget; weight: number })[],
    selector?: SelectorOptions,
  ) {
    this.#nodes = targets.map((t) =>
      "target" in t ? new TargetNode(t.target, t.weight) : new TargetNode(t, 1)
    );
    this.#selector = new Selector(selector);
  }
  select(client?: string): ForwardTarget | undefined {
    return this.#selector.select(this.#nodes, client)?.target;
  }
  markFailed(t: ForwardTarget): void {
    this.#nodes.find((n) => n.target === t)?.marker.mark();
  }
  markOk(t: ForwardTarget): void {
    this.#nodes.find((n) => n.target === t)?.marker.reset();
  }
}
