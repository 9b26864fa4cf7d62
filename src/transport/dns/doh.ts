/**
 * The `dns` listener's `mode=https`: DNS over HTTPS (RFC 8484) on the tls listener, as GOST serves
 * it — any path; `POST` with `Content-Type: application/dns-message`, or `GET` with `?dns=`
 * (base64url); answers `200` with the DNS message. Each request becomes one message conn for the
 * `dns` handler; requests on a keep-alive connection are served one after another, and a
 * connection idle for `readTimeout` is closed.
 *
 * ALPN offers `h2` and `http/1.1`. HTTP/1.1 is parsed here; an `h2` connection is handed, already
 * decrypted, to a Deno HTTP server of its own on a private Unix socket (Deno's server speaks
 * HTTP/2 with prior knowledge), whose handler answers the same way — `dig +https` speaks only h2.
 * @module
 */
import { BufReader } from "../../core/bufio.ts";
import { decodeBase64Url } from "../../core/base64url.ts";
import { type Conn, ConnBase, type NetAddr } from "../../core/conn.ts";
import { withDeadline } from "../../core/deadline.ts";
import { ServeListener } from "../../core/serve_listener.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import { getHeader, hasToken, parseRequestHead, serializeHead } from "../../protocol/http1.ts";
import { listenTls } from "../tls/mod.ts";
import { attachedTo } from "../../core/conn.ts";
import { relay } from "../../core/relay.ts";
import { SocketConn } from "../../core/socket.ts";

/** One DoH request as a conn: reads its query once, takes one reply. */
class DohMessageConn extends ConnBase {
  #query: Uint8Array | null;
  readonly #done: (reply: Uint8Array | null) => void;
  #finished = false;
  constructor(
    query: Uint8Array,
    readonly localAddr: NetAddr,
    readonly remoteAddr: NetAddr,
    done: (reply: Uint8Array | null) => void,
  ) {
    super();
    this.#query = query;
    this.#done = done;
  }
  read(p: Uint8Array): Promise<number | null> {
    const q = this.#query;
    if (!q || this.#finished) return Promise.resolve(null);
    this.#query = null;
    p.set(q.subarray(0, p.length));
    return Promise.resolve(Math.min(q.length, p.length));
  }
  write(p: Uint8Array): Promise<number> {
    if (!this.#finished) {
      this.#finished = true;
      this.#done(p.slice());
    }
    return Promise.resolve(p.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#done(null);
  }
}

function status(code: string, extra: [string, string][] = []): Uint8Array {
  return serializeHead(`HTTP/1.1 ${code}`, [...extra, ["Content-Length", "0"]]);
}

/** Asks the handler for the answer to `query`; null when it gave none. */
function ask(
  emit: (c: Conn) => boolean,
  query: Uint8Array,
  local: NetAddr,
  remote: NetAddr,
): Promise<Uint8Array | null> {
  return new Promise<Uint8Array | null>((resolve) => {
    if (!emit(new DohMessageConn(query, local, remote, resolve))) resolve(null);
  });
}

/** A private directory (mode 0700) for the h2 bridges' sockets, there while any bridge is. */
let bridgeDir: string | undefined;
let bridgeSeq = 0;
let bridges = 0;
/** h2 connections bridged at once (each holds a small HTTP server); more are closed. */
const MAX_BRIDGES = 256;
/** Queries one h2 connection may have waiting for answers (HTTP/1.1 has one); more get 503. */
const MAX_IN_FLIGHT = 16;

/**
 * Serves one decrypted `h2` connection: Deno's HTTP server on a Unix socket of its own speaks
 * HTTP/2, and each request is answered as over HTTP/1.1 (GET `?dns=`, POST dns-message).
 */
async function serveH2(
  raw: Conn,
  emit: (c: Conn) => boolean,
  local: NetAddr,
  idleMs: number,
): Promise<void> {
  if (bridges >= MAX_BRIDGES) return;
  const dir = bridgeDir ??= Deno.makeTempDirSync({ prefix: "burrow-doh-" });
  bridges++;
  const path = `${dir}/${++bridgeSeq}.sock`;
  const ac = new AbortController();
  let inFlight = 0;
  const answer = async (req: Request): Promise<Response> => {
    let query: Uint8Array | null = null;
    if (req.method === "GET") {
      const m = /[?&]dns=([^&#]*)/.exec(req.url);
      query = m ? decodeBase64Url(m[1]!) : null;
    } else if (req.method === "POST") {
      const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim();
      if (type !== "application/dns-message") return new Response(null, { status: 415 });
      const len = Number(req.headers.get("content-length") ?? "0");
      if (!(len >= 0 && len <= 65535)) return new Response(null, { status: 413 });
      // A body that does not arrive within readTimeout is given up (as over HTTP/1.1).
      let t: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((r) => t = setTimeout(() => r("late"), idleMs));
      const body = await Promise.race([readCapped(req, 65535), late]).finally(() =>
        clearTimeout(t)
      );
      if (body === "late") return new Response(null, { status: 408 });
      if (body === null) return new Response(null, { status: 413 });
      query = body;
    } else return new Response(null, { status: 405, headers: { Allow: "GET, POST" } });
    if (!query || query.length < 12) return new Response(null, { status: 400 });
    if (inFlight >= MAX_IN_FLIGHT) return new Response(null, { status: 503 });
    inFlight++;
    try {
      const reply = await ask(emit, query, local, raw.remoteAddr);
      if (reply === null) return new Response(null, { status: 400 });
      return new Response(reply as Uint8Array<ArrayBuffer>, {
        headers: { "Content-Type": "application/dns-message" },
      });
    } finally {
      inFlight--;
    }
  };
  const server = Deno.serve({
    path,
    signal: ac.signal,
    onListen: () => {},
    // A body cut off mid-request and the like: an answer, not a stack trace on stderr.
    onError: () => new Response(null, { status: 400 }),
  }, (req) => answer(req).catch(() => new Response(null, { status: 400 })));
  try {
    const up = await Deno.connect({ transport: "unix", path });
    await relay(raw, new SocketConn(up), { idleTimeout: idleMs });
  } finally {
    ac.abort();
    await server.finished.catch(() => {});
    await Deno.remove(path).catch(() => {});
    if (--bridges === 0 && bridgeDir === dir) {
      bridgeDir = undefined;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

/** A request body of at most `max` bytes, or null when it is longer. */
async function readCapped(req: Request, max: number): Promise<Uint8Array | null> {
  if (!req.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of req.body) {
    n += p.length;
    if (n > max) return null;
    parts.push(p);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

/** DoH over the tls listener of `o` (its certificate and handshake deadline). */
export async function createDohListener(o: ListenerOptions, idleMs: number): Promise<Listener> {
  const tls = await listenTls(o, ["h2", "http/1.1"]);
  const addr = (c: Conn): NetAddr => ({ ...c.localAddr, transport: "https" });
  return new ServeListener(tls, {
    name: "doh",
    log: o.log,
    backlog: o.metadata.int("backlog", 128),
    serve: async (raw, emit) => {
      if (attachedTo<string>(raw, "alpn") === "h2") {
        return await serveH2(raw, emit, addr(raw), idleMs);
      }
      const br = new BufReader(raw, 4096);
      for (;;) {
        const head = await withDeadline(raw, idleMs, () => br.readHead()).catch(() => null);
        if (head === null) return;
        let req;
        try {
          req = parseRequestHead(head);
        } catch {
          await raw.write(status("400 Bad Request"));
          return;
        }
        let query: Uint8Array | null = null;
        if (req.method === "GET") {
          const m = /[?&]dns=([^&#]*)/.exec(req.target);
          query = m ? decodeBase64Url(m[1]!) : null;
        } else if (req.method === "POST") {
          const type = (getHeader(req.headers, "content-type") ?? "").split(";")[0]!.trim();
          if (type !== "application/dns-message") {
            await raw.write(status("415 Unsupported Media Type", [["Connection", "close"]]));
            return;
          }
          const len = Number(getHeader(req.headers, "content-length") ?? "-1");
          if (!(len >= 0 && len <= 65535)) {
            await raw.write(status("413 Content Too Large", [["Connection", "close"]]));
            return;
          }
          query = await withDeadline(raw, idleMs, () => br.readN(len)).catch(() => null);
          if (query === null) return;
        } else {
          await raw.write(status("405 Method Not Allowed", [["Allow", "GET, POST"]]));
          continue;
        }
        if (!query || query.length < 12) {
          await raw.write(status("400 Bad Request"));
          continue;
        }
        const reply = await ask(emit, query, addr(raw), raw.remoteAddr);
        if (reply === null) {
          await raw.write(status("400 Bad Request"));
          continue;
        }
        await raw.write(serializeHead("HTTP/1.1 200 OK", [
          ["Content-Type", "application/dns-message"],
          ["Content-Length", String(reply.length)],
        ]));
        await raw.write(reply);
        if (hasToken(req.headers, "connection", "close")) return;
      }
    },
  });
}
