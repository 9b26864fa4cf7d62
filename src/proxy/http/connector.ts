/**
 * The HTTP connector: `CONNECT host:port` (with Basic auth when set), status must be 200; UDP
 * uses GOST's `X-Gost-Protocol: udp` and UDP-over-TCP frames.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import type { Conn } from "../../core/conn.ts";
import { AuthError, ProtocolError, TunnelError } from "../../core/errors.ts";
import type {
  ConnectContext,
  Connector,
  ConnectorOptions,
  Credentials,
  Network,
} from "../../core/types.ts";
import { FramedUdpConn } from "../udp.ts";
import { parseResponseHead, serializeHead } from "../../protocol/http1.ts";

export class HttpConnector implements Connector {
  readonly #auth?: Credentials;
  readonly #header: Record<string, string>;
  readonly instance?: string;

  constructor(opts: ConnectorOptions) {
    this.instance = opts.instance;
    this.#auth = opts.auth;
    this.#header = opts.metadata.map(["header", "http.header"]);
  }

  async connect(
    conn: Conn,
    network: Network,
    address: string,
    _ctx: ConnectContext,
  ): Promise<Conn> {
    const target = address.startsWith(":") ? `127.0.0.1${address}` : address;
    const headers: [string, string][] = [
      ["Host", target],
      ["User-Agent", "Go-http-client/1.1"],
      ...Object.entries(this.#header),
    ];
    if (this.#auth) {
      headers.push([
        "Proxy-Authorization",
        `Basic ${btoa(`${this.#auth.username}:${this.#auth.password}`)}`,
      ]);
    }
    headers.push(["Proxy-Connection", "keep-alive"]);
    // A chain that leads back into this runtime is then seen as a loop there.
    if (this.instance) headers.push(["Via", `1.1 ${this.instance}`]);
    if (network === "udp") headers.push(["X-Gost-Protocol", "udp"]);
    await conn.write(serializeHead(`CONNECT ${target} HTTP/1.1`, headers));
    const br = new BufReader(conn, 1024);
    const head = await br.readHead();
    if (head === null) throw new ProtocolError("http: proxy closed the connection");
    const res = parseResponseHead(head);
    if (res.status === 407) {
      throw new AuthError(`http: proxy authentication required for ${address}`);
    }
    if (res.status !== 200) {
      throw new TunnelError(`http: proxy answered ${res.status} ${res.reason} for ${address}`);
    }
    return network === "udp" ? new FramedUdpConn(conn, br, address) : br.conn();
  }
}
