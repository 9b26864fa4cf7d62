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
  /** PEM certificate chain. */
  certFile?: string;
  /** PEM private key. */
  keyFile?: string;
  /** PEM CA bundle: client certificates required (server) or the server verified (client). */
  caFile?: string;
  /** Client: verify the server certificate (default false, as GOST). */
  secure?: boolean;
  /** Client: SNI and the name verified. */
  serverName?: string;
  /** Protocol versions (`VersionTLS12`, ...) and ALPN protocols. */
  options?: { minVersion?: string; maxVersion?: string; alpn?: string[] };
}

/** Checks credentials. Implementations compare in constant time and never log passwords. */
export interface Auther {
  /** True when the user exists and the password matches. */
  authenticate(username: string, password: string): boolean;
}

/** Username and password a connector or dialer presents upstream. */
export interface Credentials {
  /** User name. */
  username: string;
  /** Password. */
  password: string;
}

// ---------------------------------------------------------------- listener

/**
 * Admission and connection limits for one raw connection: a release function when it may in
 * (called when it ends), or null when it is refused (the caller closes it unread).
 */
export type RawGuard = (raw: Conn) => (() => void) | null;

/** Accepts connections; a multiplexing listener yields its streams. */
export interface Listener extends AsyncDisposable {
  /** The bound address (port 0 in the config is the real port here). */
  readonly addr: NetAddr;
  /**
   * True when the listener applied the service's {@link RawGuard} to its raw connections itself
   * (a mux listener, whose accepted conns are streams): the service must not apply it again.
   */
  readonly guardsRaw?: boolean;
  /**
   * True when what arrives at this address ends here (a tun server's socket feeds a device and
   * dials nothing): the router may then dial it without calling that a proxy loop.
   */
  readonly endpoint?: boolean;
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

/** What a listener factory gets. */
export interface ListenerOptions {
  /** Listen address, `host:port` (`:port` for all interfaces). */
  addr: string;
  /** `listener.metadata`; read each key once, unknown keys are reported by name. */
  metadata: Metadata;
  /** `listener.tls` (or the config's top-level `tls`). */
  tls?: TlsOptions;
  /** The listener's auther, for listeners that authenticate. */
  auther?: Auther;
  /** The service's logger. */
  log: Logger;
  /** The service's name. */
  service: string;
  /** The service's admission and connection limits, for listeners that own raw conns. */
  guard?: RawGuard;
  /** The listener's chain (`listener.chain`), for listeners that bind through it (rtcp). */
  router?: Router;
  /**
   * True when the service forwards (`-L tun://:0/server:8421`, `forwarder:`): a tun client's
   * listener then has no socket of its own to bind.
   */
  forwarding?: boolean;
}

/** Builds a listener of one type (registered under its GOST name). */
export type ListenerFactory = (opts: ListenerOptions) => Promise<Listener>;

// ---------------------------------------------------------------- handler

/** Per-connection context handed to a handler. */
export interface HandleContext {
  /** Session id (for logs). */
  sid: string;
  /** A logger carrying the connection's fields. */
  log: Logger;
  /** Aborted when the service shuts down. */
  signal: AbortSignal;
}

/** Speaks the inbound protocol on one connection and relays it. */
export interface Handler {
  /** Serves `conn` until done; the service closes it afterwards. */
  handle(conn: Conn, ctx: HandleContext): Promise<void>;
  /** Releases what the handler holds (sessions, pools) when its service goes. */
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
  /** UDP: limits on peers and their datagram queues. */
  packets?: PacketDemuxOptions;
}

/** A dial's options. */
export interface DialRequest {
  /** Aborts the dial. */
  signal?: AbortSignal;
  /** Client address, the default hash source for the `hash` strategy. */
  client?: string;
  /** Where the route logs. */
  log?: Logger;
}

/** A node a forwarding handler may pick (a `forwarder` target). */
export interface ForwardTarget {
  /** Node name. */
  name: string;
  /** `host:port`. */
  addr: string;
  /** `tcp` or `udp`. */
  network?: Network;
}

/** Picks forward targets and records their failures (selector + fail marks). */
export interface TargetSelector {
  /** A target for `client` (the `hash` strategy's key), or undefined when all are failing. */
  select(client?: string): ForwardTarget | undefined;
  /** Records a failed connection to `t`. */
  markFailed(t: ForwardTarget): void;
  /** Records a good connection to `t` (clears its failures). */
  markOk(t: ForwardTarget): void;
}

/** What a handler factory gets. */
export interface HandlerOptions {
  /** `handler.metadata`. */
  metadata: Metadata;
  /** Dials outbound connections (through the handler's chain, if any). */
  router: Router;
  /** The service's logger. */
  log: Logger;
  /** The service's name. */
  service: string;
  /** The handler's auther(s), combined. */
  auther?: Auther;
  /** The handler's own single user (`-L ss://method:pass@`, `handler.auth`), as configured. */
  auth?: Credentials;
  /** `handler.tls`. */
  tls?: TlsOptions;
  /** Set when the service forwards (`-L tcp://:p/target`, `forwarder:` in YAML). */
  forwarder?: TargetSelector;
  /** Names the runtime in hop markers (HTTP `Via`), so a request back into it is a loop. */
  instance?: string;
  /** The config's `ingresses:` (a tunnel handler names one with its `ingress` key). */
  ingresses?: IngressRules;
  /**
   * The service's bypass, for handlers that check names themselves (`dns`: a bypassed name gets
   * an empty answer); dials through the router are checked by the router.
   */
  bypass?: { contains(network: Network, address: string): boolean };
  /** The service's hosts table (`hosts:`): every IP mapped to a name, for the `dns` handler. */
  hosts?: (host: string) => readonly string[] | undefined;
}

/** Ingress rules by name (`ingresses:`), for handlers that route by host name (tunnel). */
export type IngressRules = ReadonlyMap<string, readonly { hostname: string; endpoint: string }[]>;

/** Builds a handler of one type (registered under its GOST name). */
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
  /** Aborts the dial. */
  signal?: AbortSignal;
  /** Where the dialer logs. */
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
  /** A carrier conn to the node at `addr`. */
  dial(addr: string, ctx: DialContext): Promise<Conn>;
  /** Closes what the dialer keeps (sessions) when its chain goes. */
  close?(): Promise<void>;
}

/** What a dialer factory gets. */
export interface DialerOptions {
  /** `dialer.metadata`. */
  metadata: Metadata;
  /** `dialer.tls`. */
  tls?: TlsOptions;
  /** `dialer.auth`. */
  auth?: Credentials;
  /** The chain's logger. */
  log: Logger;
}

/** Builds a dialer of one type (registered under its GOST name). */
export type DialerFactory = (opts: DialerOptions) => Promise<Dialer> | Dialer;

// ---------------------------------------------------------------- connector

/** A proxy protocol's client side: asks the node at the other end of `conn` for `address`. */
export interface Connector {
  /** A conn to `address` through the node at the other end of `conn` (the handshake done). */
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

/** What a connector's `connect` gets besides the conn. */
export interface ConnectContext {
  /** Aborts the handshake. */
  signal?: AbortSignal;
  /** Where the connector logs. */
  log: Logger;
}

/** What a connector factory gets. */
export interface ConnectorOptions {
  /** `connector.metadata`. */
  metadata: Metadata;
  /** `connector.auth` (or the node URL's user info). */
  auth?: Credentials;
  /** `connector.tls`. */
  tls?: TlsOptions;
  /** The chain's logger. */
  log: Logger;
  /** Names the runtime in hop markers (HTTP `Via`), so a chain back into it is a loop. */
  instance?: string;
}

/** Builds a connector of one type (registered under its GOST name). */
export type ConnectorFactory = (opts: ConnectorOptions) => Promise<Connector> | Connector;
