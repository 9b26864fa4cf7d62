/**
 * The plugin contracts: Listener → Handler → Router → (Dialer → Connector per hop).
 * Each is a small interface; factories receive wired dependencies plus typed metadata.
 * @module
 */
import type { PacketDemuxOptions } from "./packet_demux.ts";
import type { Conn, NetAddr } from "./conn.ts";
import type { Logger } from "./log.ts";
import type { Metadata } from "./metadata.ts";

/** "tcp" for streams; "udp" for datagram conns (one read/write = one datagram). */
export type Network = "tcp" | "udp";

/** TLS settings of a listener, dialer or handler (docs/gost-config.md §2.6). */
export interface TlsOptions {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  /** Client: verify the server certificate (default false, as GOST). */
  secure?: boolean;
  serverName?: string;
  options?: { minVersion?: string; maxVersion?: string; alpn?: string[] };
}

/** Checks credentials. Implementations compare in constant time and never log passwords. */
export interface Auther {
  authenticate(username: string, password: string): boolean;
}

/** Username and password a connector or dialer presents upstream. */
export interface Credentials {
  username: string;
  password: string;
}

// ---------------------------------------------------------------- listener

/** Accepts connections; a multiplexing listener yields its streams. */
/**
 * Admission and connection limits for one raw connection: a release function when it may in
 * (called when it ends), or null when it is refused (the caller closes it unread).
 */
export type RawGuard = (raw: Conn) => (() => void) | null;

export interface Listener extends AsyncDisposable {
  readonly addr: NetAddr;
  /**
   * True when the listener applied the service's {@link RawGuard} to its raw connections itself
   * (a mux listener, whose accepted conns are streams): the service must not apply it again.
   */
  readonly guardsRaw?: boolean;
  /** Next connection, or `null` once the listener is closed. */
  accept(): Promise<Conn | null>;
  /** Stops accepting and releases the socket (and any sessions it owns). */
  close(): Promise<void>;
  /**
   * Stops accepting but keeps what is already served working (the streams of open mux
   * sessions), so a service can give them a grace period; `close` ends them later. `accept`
   * then returns null.
   */
  stopAccepting?(): Promise<void>;
}

export interface ListenerOptions {
  /** Listen address, `host:port` (`:port` for all interfaces). */
  addr: string;
  metadata: Metadata;
  tls?: TlsOptions;
  auther?: Auther;
  log: Logger;
  service: string;
  /** The service's admission and connection limits, for listeners that own raw conns. */
  guard?: RawGuard;
  /** The listener's chain (`listener.chain`), for listeners that bind through it (rtcp). */
  router?: Router;
}

export type ListenerFactory = (opts: ListenerOptions) => Promise<Listener>;

// ---------------------------------------------------------------- handler

/** Per-connection context handed to a handler. */
export interface HandleContext {
  /** Session id (for logs). */
  sid: string;
  log: Logger;
  /** Aborted when the service shuts down. */
  signal: AbortSignal;
}

/** Speaks the inbound protocol on one connection and relays it. */
export interface Handler {
  handle(conn: Conn, ctx: HandleContext): Promise<void>;
  close?(): Promise<void>;
}

/** What the router offers a handler. */
export interface Router {
  /** An upstream conn to `address` (through the chain, if any). */
  dial(network: Network, address: string, opts?: DialRequest): Promise<Conn>;
  /**
   * A listener on `address` at the far end of the chain (remote port forwarding: the last node
   * listens for us), or a local one without a chain. Its conns' `remoteAddr` is the peer.
   */
  bind?(network: Network, address: string, opts?: BindRequest): Promise<Listener>;
}

/** A bind's options: for UDP, how the peers' datagrams become sessions (rudp's keys). */
export interface BindRequest extends DialRequest {
  packets?: PacketDemuxOptions;
}

export interface DialRequest {
  signal?: AbortSignal;
  /** Client address, the default hash source for the `hash` strategy. */
  client?: string;
  log?: Logger;
}

/** A node a forwarding handler may pick (a `forwarder` target). */
export interface ForwardTarget {
  name: string;
  addr: string;
  network?: Network;
}

/** Picks forward targets and records their failures (selector + fail marks). */
export interface TargetSelector {
  select(client?: string): ForwardTarget | undefined;
  markFailed(t: ForwardTarget): void;
  markOk(t: ForwardTarget): void;
}

export interface HandlerOptions {
  metadata: Metadata;
  router: Router;
  log: Logger;
  service: string;
  auther?: Auther;
  /** The handler's own single user (`-L ss://method:pass@`, `handler.auth`), as configured. */
  auth?: Credentials;
  tls?: TlsOptions;
  /** Set when the service forwards (`-L tcp://:p/target`, `forwarder:` in YAML). */
  forwarder?: TargetSelector;
  /** Names the runtime in hop markers (HTTP `Via`), so a request back into it is a loop. */
  instance?: string;
  /** The config's `ingresses:` (a tunnel handler names one with its `ingress` key). */
  ingresses?: IngressRules;
}

/** Ingress rules by name (`ingresses:`), for handlers that route by host name (tunnel). */
export type IngressRules = ReadonlyMap<string, readonly { hostname: string; endpoint: string }[]>;

export type HandlerFactory = (opts: HandlerOptions) => Promise<Handler> | Handler;

// ---------------------------------------------------------------- dialer

/** What a dialer gets for each dial. */
export interface DialContext {
  /**
   * Opens the raw byte connection to `addr`: a direct TCP dial for the first hop, or a
   * connection through the previous hops. Transports layer on top of it (TLS, WebSocket, smux).
   */
  netDial(addr: string): Promise<Conn>;
  /**
   * True when `netDial` is a plain TCP connection (no earlier hops): a dialer may then open the
   * socket itself, e.g. TLS on a native socket, which runs faster than TLS over a `Conn`.
   */
  direct?: boolean;
  signal?: AbortSignal;
  log: Logger;
}

/**
 * A transport's client side. One dialer instance exists per chain node, so multiplexing
 * dialers (mtcp, mws, kcp, mtmux) keep their session per node and open a stream per dial.
 */
export interface Dialer {
  /**
   * The dialer opens its own socket (UDP for kcp and udp) instead of using `ctx.netDial`, so it
   * cannot ride inside earlier hops: such a node may only be a chain's first hop.
   */
  readonly directOnly?: boolean;
  dial(addr: string, ctx: DialContext): Promise<Conn>;
  close?(): Promise<void>;
}

export interface DialerOptions {
  metadata: Metadata;
  tls?: TlsOptions;
  auth?: Credentials;
  log: Logger;
}

export type DialerFactory = (opts: DialerOptions) => Promise<Dialer> | Dialer;

// ---------------------------------------------------------------- connector

/** A proxy protocol's client side: asks the node at the other end of `conn` for `address`. */
export interface Connector {
  connect(conn: Conn, network: Network, address: string, ctx: ConnectContext): Promise<Conn>;
  /**
   * Asks the node at the other end of `conn` to listen on `address` for us; each peer that
   * connects there becomes a conn of the returned listener (SOCKS5 MUXBIND, relay BIND).
   */
  bind?(conn: Conn, network: Network, address: string, ctx: BindContext): Promise<Listener>;
}

/** What a connector's `bind` gets besides the conn. */
export interface BindContext extends ConnectContext {
  /** UDP binds: per-peer session limits. */
  packets?: PacketDemuxOptions;
}

export interface ConnectContext {
  signal?: AbortSignal;
  log: Logger;
}

export interface ConnectorOptions {
  metadata: Metadata;
  auth?: Credentials;
  tls?: TlsOptions;
  log: Logger;
  /** Names the runtime in hop markers (HTTP `Via`), so a chain back into it is a loop. */
  instance?: string;
}

export type ConnectorFactory = (opts: ConnectorOptions) => Promise<Connector> | Connector;
