/**
 * A small HTTP/1.x codec for the proxy: request/response heads, header lists, and body copying
 * by its framing (Content-Length, chunked, or until close).
 * @module
 */
import type { BufReader } from "../core/bufio.ts";
import type { Conn } from "../core/conn.ts";
import { ProtocolError } from "../core/errors.ts";

export type Headers = [string, string][];

export interface RequestHead {
  method: string;
  target: string;
  version: string;
  headers: Headers;
}

export interface ResponseHead {
  version: string;
  status: number;
  reason: string;
  headers: Headers;
}

function parseHeaders(lines: string[]): Headers {
  const out: Headers = [];
  for (const line of lines) {
    if (line === "") continue;
    // RFC 9110 §5.5: CR, LF and NUL never belong in a field; a bare CR passed on is a request
    // smuggling vector (a peer that ends lines at CR sees another header).
    if (/[\r\0]/.test(line)) throw new ProtocolError("http: CR or NUL inside a header line");
    if (/^[ \t]/.test(line) && out.length > 0) {
      out[out.length - 1]![1] += " " + line.trim(); // obsolete line folding
      continue;
    }
    const i = line.indexOf(":");
    if (i <= 0) {
      throw new ProtocolError(`http: malformed header line ${JSON.stringify(line.slice(0, 40))}`);
    }
    const name = line.slice(0, i);
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new ProtocolError("http: bad header name");
    }
    out.push([name, line.slice(i + 1).trim()]);
  }
  return out;
}

export function parseRequestHead(text: string): RequestHead {
  const lines = text.split(/\r?\n/);
  const m = /^([A-Z][A-Z0-9_-]*) (\S+) (HTTP\/\d\.\d)$/.exec(lines[0] ?? "");
  if (!m) {
    throw new ProtocolError(
      `http: malformed request line ${JSON.stringify((lines[0] ?? "").slice(0, 60))}`,
    );
  }
  return { method: m[1]!, target: m[2]!, version: m[3]!, headers: parseHeaders(lines.slice(1)) };
}

export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split(/\r?\n/);
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (!m) {
    throw new ProtocolError(
      `http: malformed status line ${JSON.stringify((lines[0] ?? "").slice(0, 60))}`,
    );
  }
  return {
    version: m[1]!,
    status: Number(m[2]),
    reason: m[3] ?? "",
    headers: parseHeaders(lines.slice(1)),
  };
}

export function getHeader(h: Headers, name: string): string | undefined {
  const n = name.toLowerCase();
  return h.find(([k]) => k.toLowerCase() === n)?.[1];
}

export function removeHeaders(h: Headers, names: string[]): Headers {
  const drop = new Set(names.map((n) => n.toLowerCase()));
  return h.filter(([k]) => !drop.has(k.toLowerCase()));
}

/** True if a comma-separated header (Connection) lists `token`. */
export function hasToken(h: Headers, name: string, token: string): boolean {
  const t = token.toLowerCase();
  return h.some(([k, v]) =>
    k.toLowerCase() === name.toLowerCase() && v.toLowerCase().split(",").some((x) => x.trim() === t)
  );
}

const HOP_BY_HOP = [
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "upgrade",
];

/** Removes hop-by-hop headers, including any the Connection header names. */
export function stripHopByHop(h: Headers): Headers {
  const named = h.filter(([k]) => k.toLowerCase() === "connection").flatMap(([, v]) =>
    v.split(",").map((x) => x.trim())
  );
  return removeHeaders(h, [...HOP_BY_HOP, ...named.filter((x) => x !== "")]);
}

export function serializeHead(first: string, headers: Headers): Uint8Array {
  let s = first + "\r\n";
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  return new TextEncoder().encode(s + "\r\n");
}

/** How a message body is delimited. */
export type Framing =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

export function requestFraming(h: Headers): Framing {
  const te = getHeader(h, "transfer-encoding");
  if (te && te.toLowerCase().includes("chunked")) return { kind: "chunked" };
  const cl = getHeader(h, "content-length");
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new ProtocolError("http: bad Content-Length");
    return Number(cl) > 0 ? { kind: "length", length: Number(cl) } : { kind: "none" };
  }
  return { kind: "none" };
}

export function responseFraming(method: string, res: ResponseHead): Framing {
  if (
    method === "HEAD" || (res.status >= 100 && res.status < 200) || res.status === 204 ||
    res.status === 304
  ) {
    return { kind: "none" };
  }
  const te = getHeader(res.headers, "transfer-encoding");
  if (te && te.toLowerCase().includes("chunked")) return { kind: "chunked" };
  const cl = getHeader(res.headers, "content-length");
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new ProtocolError("http: bad Content-Length");
    return { kind: "length", length: Number(cl) };
  }
  return { kind: "close" };
}

async function copyN(br: BufReader, dst: Conn, n: number, buf: Uint8Array): Promise<void> {
  let left = n;
  while (left > 0) {
    const k = await br.read(buf.subarray(0, Math.min(buf.length, left)));
    if (k === null) throw new ProtocolError("http: body ended early");
    await dst.write(buf.subarray(0, k));
    left -= k;
  }
}

/** Copies one body from `br` to `dst` as is (chunk framing included). */
export async function copyBody(br: BufReader, dst: Conn, f: Framing): Promise<void> {
  const buf = new Uint8Array(32 * 1024);
  const enc = new TextEncoder();
  switch (f.kind) {
    case "none":
      return;
    case "length":
      return await copyN(br, dst, f.length, buf);
    case "close":
      for (;;) {
        const k = await br.read(buf);
        if (k === null) return;
        await dst.write(buf.subarray(0, k));
      }
    case "chunked":
      for (;;) {
        const line = await br.readLine();
        const size = parseInt(line.split(";")[0]!.trim(), 16);
        if (Number.isNaN(size) || size < 0) throw new ProtocolError("http: bad chunk size");
        await dst.write(enc.encode(line + "\r\n"));
        if (size === 0) {
          // Trailers, up to the blank line.
          for (;;) {
            const t = await br.readLine();
            await dst.write(enc.encode(t + "\r\n"));
            if (t === "") return;
          }
        }
        await copyN(br, dst, size + 2, buf);
      }
  }
}
