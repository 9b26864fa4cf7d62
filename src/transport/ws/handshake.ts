/**
 * The WebSocket opening handshake (docs/websocket.md §2), client and server side.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import type { Conn } from "../../core/conn.ts";
import { ProtocolError, TunnelError } from "../../core/errors.ts";
import {
  getHeader,
  hasToken,
  type Headers,
  parseRequestHead,
  parseResponseHead,
  serializeHead,
} from "../../protocol/http1.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** `Sec-WebSocket-Accept` for a key: base64(SHA-1(key ‖ GUID)). */
export async function acceptKey(key: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(d)));
}

export interface ClientHandshake {
  /** Host header (and URL host). */
  host: string;
  path: string;
  headers?: Record<string, string>;
}

/** Sends the upgrade request and checks the 101; returns the reader holding any early bytes. */
export async function clientUpgrade(conn: Conn, o: ClientHandshake): Promise<BufReader> {
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const headers: Headers = [
    ["Host", o.host],
    ["User-Agent", "Go-http-client/1.1"],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", key],
    ["Sec-WebSocket-Version", "13"],
  ];
  for (const [k, v] of Object.entries(o.headers ?? {})) {
    const i = headers.findIndex(([h]) => h.toLowerCase() === k.toLowerCase());
    if (i >= 0) headers[i] = [k, v];
    else headers.push([k, v]);
  }
  await conn.write(serializeHead(`GET ${o.path} HTTP/1.1`, headers));
  const br = new BufReader(conn, 4096);
  const head = await br.readHead(16 * 1024);
  if (head === null) throw new ProtocolError("ws: server closed during the handshake");
  const res = parseResponseHead(head);
  if (res.status !== 101) {
    throw new TunnelError(`ws: handshake refused: ${res.status} ${res.reason}`);
  }
  if (
    !hasToken(res.headers, "upgrade", "websocket") ||
    !hasToken(res.headers, "connection", "upgrade")
  ) {
    throw new ProtocolError("ws: bad upgrade response");
  }
  if (getHeader(res.headers, "sec-websocket-accept") !== await acceptKey(key)) {
    throw new ProtocolError("ws: bad Sec-WebSocket-Accept");
  }
  return br;
}

/** Outcome of reading a request on a ws listener. */
export type ServerUpgrade = { ok: true; br: BufReader } | { ok: false; status: string };

function refuse(status: string): Uint8Array {
  return serializeHead(`HTTP/1.1 ${status}`, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(status.length + 1)],
    ["Connection", "close"],
  ]);
}

/**
 * Reads the HTTP request; upgrades it when it is a WebSocket request for `path`, else answers
 * with a proper HTTP error (404 wrong path, 405 not GET, 400 not an upgrade) and reports that.
 */
export async function serverUpgrade(
  conn: Conn,
  path: string,
  extra: Record<string, string> = {},
): Promise<ServerUpgrade> {
  const br = new BufReader(conn, 4096);
  const head = await br.readHead(16 * 1024);
  if (head === null) return { ok: false, status: "closed" };
  let status: string | null = null;
  let key = "";
  try {
    const req = parseRequestHead(head);
    const reqPath = req.target.replace(/^[a-z]+:\/\/[^/]*/i, "").split("?")[0];
    key = getHeader(req.headers, "sec-websocket-key") ?? "";
    if (reqPath !== path) status = "404 Not Found";
    else if (req.method !== "GET") status = "405 Method Not Allowed";
    else if (
      !hasToken(req.headers, "connection", "upgrade") ||
      !hasToken(req.headers, "upgrade", "websocket")
    ) {
      status = "400 Bad Request";
    } else if (getHeader(req.headers, "sec-websocket-version") !== "13" || key === "") {
      status = "400 Bad Request";
    }
  } catch {
    status = "400 Bad Request";
  }
  if (status) {
    await conn.write(
      new Uint8Array([...refuse(status), ...new TextEncoder().encode(status + "\n")]),
    ).catch(() => {});
    return { ok: false, status };
  }
  const headers: Headers = [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Accept", await acceptKey(key)],
    ...Object.entries(extra),
  ];
  await conn.write(serializeHead("HTTP/1.1 101 Switching Protocols", headers));
  return { ok: true, br };
}
