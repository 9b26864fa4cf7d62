/**
 * TLS over any {@link Conn}. `Deno.startTls` only upgrades real TCP sockets and always verifies;
 * GOST clients must run TLS over chained conns and skip verification unless `secure=true`. So
 * TLS goes through `node:tls` on a Node Duplex that wraps our Conn, and the TLS socket is
 * wrapped back into a Conn.
 * @module
 */
import { ChunkQueue } from "../../core/chunk_queue.ts";
import tls from "node:tls";
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { type Conn, ConnBase, type NetAddr } from "../../core/conn.ts";
import { ClosedError, TunnelError } from "../../core/errors.ts";
import { dialTcp } from "../../core/socket.ts";
import { noteNativeBuffers } from "../../core/buffer_gc.ts";
import { withDeadline, withSignal } from "../../core/deadline.ts";

/**
 * Carrier reads feeding TLS: each read's buffer is handed to Node as it is, and a read that waits
 * pins its buffer for as long as the conn is quiet (64 KiB per idle TLS conn, when every read
 * took 64 KiB). So reads start small, grow ×4 while they come back full, and after a short one
 * the next is small again; a small read that comes back full jumps back to the size the burst
 * had reached (as the relay's copy does, docs/performance.md).
 */
const PULL_SMALL = 1024;
const PULL_MAX = 64 * 1024;

/** A Node Duplex over a Conn. */
export function connToDuplex(c: Conn, gate?: ReadGate): Duplex {
  let size = PULL_SMALL;
  let level = PULL_SMALL;
  const sized = (n: number, asked: number) => {
    if (n === asked) size = level = asked < level ? level : Math.min(PULL_MAX, asked * 4);
    else if (n < asked >>> 1) size = PULL_SMALL;
  };
  return new Duplex({
    // Node's 16 KiB default stalls TLS output on every socket write round trip.
    writableHighWaterMark: 256 * 1024,
    read() {
      const pull = () => {
        const b = new Uint8Array(size);
        c.read(b).then(
          (n) => {
            if (n !== null) sized(n, b.length);
            this.push(n === null ? null : Buffer.from(b.buffer, 0, n));
          },
          (e) => this.destroy(e),
        );
      };
      if (gate?.held) gate.parked = pull;
      else pull();
    },
    write(chunk: Buffer, _enc, cb) {
      c.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)).then(
        () => cb(),
        (e) => cb(e),
      );
    },
    final(cb) {
      c.closeWrite().then(() => cb(), (e) => cb(e));
    },
    destroy(err, cb) {
      c.close();
      cb(err);
    },
  });
}

/** What {@link DuplexConn} holds while its reader is behind: the reads under the TLS socket. */
export interface ReadHold {
  hold(): void;
  release(): void;
}

/**
 * Stops reading the carrier while the decrypted side holds too much: a TLSSocket keeps pulling
 * its socket even when paused, so pausing it alone does not hold a fast writer back.
 */
export class ReadGate implements ReadHold {
  held = false;
  parked: (() => void) | null = null;
  hold(): void {
    this.held = true;
  }
  release(): void {
    this.held = false;
    const p = this.parked;
    this.parked = null;
    p?.();
  }
}

/** The reads of a TLS client's own TCP socket (Deno's TLSWrap internals; docs/performance.md). */
interface NativeReads {
  readStop(): unknown;
  readStart(): unknown;
}

/**
 * The TCP handle under a TLSSocket that `tls.connect` opened itself, or null where the runtime
 * does not expose it. Deno's TLSWrap keeps that handle reading while the TLS socket is paused and
 * buffers everything it decrypts meanwhile ("readStop" only stops delivery), so a paused client
 * would hold all the peer sends; stopping the handle itself is the only back-pressure there is.
 */
function nativeReads(s: Duplex): NativeReads | null {
  const h = (s as { _handle?: { _nativeTcpHandle?: Partial<NativeReads> | null } })._handle;
  const t = h?._nativeTcpHandle;
  return t && typeof t.readStop === "function" && typeof t.readStart === "function"
    ? t as NativeReads
    : null;
}

/** Holds a native TLS client's socket reads (see {@link nativeReads}). */
class NativeHold implements ReadHold {
  #held = false;
  constructor(readonly s: Duplex) {}
  hold(): void {
    if (this.#held) return;
    this.#held = true;
    try {
      nativeReads(this.s)?.readStop();
    } catch { /* closing: nothing left to hold */ }
  }
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      nativeReads(this.s)?.readStart();
    } catch { /* closing */ }
  }
}

/**
 * Whether first-hop TLS clients may run on the native socket: true once a handshake found the
 * handle {@link NativeHold} stops, false if one did not (then they run over a Conn, where a
 * {@link ReadGate} holds the reads).
 */
let nativeHoldable: boolean | undefined;

/** Whether first-hop TLS clients run on the native socket (undefined before the first one). */
export function tlsNativeHold(): boolean | undefined {
  return nativeHoldable;
}

/** Unread bytes past which a {@link DuplexConn} stops its socket's reads. */
const READ_HIGH = 256 * 1024;
/** Unread bytes below which it starts them again. */
const READ_LOW = 64 * 1024;

/**
 * The one buffer every native TLS client decrypts into (Node's `onread.buffer`). Deno's TLSWrap
 * copies plaintext into it and calls back at once, so conns can share it: each callback copies
 * its bytes out before it returns, and an idle conn holds none of it.
 */
const PLAINTEXT = new Uint8Array(64 * 1024);

/**
 * Node's `onread` option for a TLS client that opened its own socket. By default the TLS layer
 * hands over every decrypted chunk in a fresh buffer outside V8's heap, which V8 does not collect
 * for (docs/performance.md, "Buffers V8 does not collect for"); with `onread` it decrypts into
 * {@link PLAINTEXT} and the callback copies the chunk into memory V8 allocates and counts. Tunnels
 * moved ~15% more down with it. Bytes that arrive before the handshake has made a Conn wait in the
 * queue the Conn adopts.
 */
export class StaticReads {
  readonly rq: ChunkQueue = new ChunkQueue();
  /** Told once the queue passed {@link READ_HIGH}; the socket stops delivering too. */
  onFull: (() => void) | null = null;
  /** The `callback` of `onread`: false pauses the socket (Node's contract). */
  readonly callback = (n: number): boolean => {
    // The socket's reads still come in fresh native buffers: keep the pacer told.
    noteNativeBuffers(n);
    this.rq.push(PLAINTEXT.slice(0, n));
    if (this.rq.bytes <= READ_HIGH) return true;
    this.onFull?.();
    return false;
  };
  /** The `onread` option itself. */
  get option(): { buffer: Uint8Array; callback: (n: number) => boolean } {
    return { buffer: PLAINTEXT, callback: this.callback };
  }
}

/** A Conn over a Node Duplex (e.g. a TLSSocket), with read back-pressure via pause/resume. */
export class DuplexConn extends ConnBase {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly #s: Duplex;
  readonly #rq: ChunkQueue;
  #paused = false;
  #ended = false;
  #error?: Error;
  #writeError?: Error;
  #closed = false;

  readonly #gate?: ReadHold;
  /** The protocol ALPN settled on, if any. */
  alpn?: string;

  constructor(
    s: Duplex,
    local: NetAddr,
    remote: NetAddr,
    transport: string,
    gate?: ReadHold,
    reads?: StaticReads,
  ) {
    super();
    this.#s = s;
    this.#gate = gate;
    this.localAddr = { ...local, transport };
    this.remoteAddr = { ...remote, transport };
    this.#rq = reads?.rq ?? new ChunkQueue();
    if (reads) {
      reads.onFull = () => this.#pause();
      if (reads.rq.bytes > READ_HIGH) this.#pause();
    }
    // With `reads` no data comes here: still listened to, so a runtime that ignored `onread`
    // would deliver here rather than into a socket nobody reads (and it makes "end" come).
    s.on("data", (d: Buffer) => {
      noteNativeBuffers(d.length);
      this.#rq.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
      if (this.#rq.bytes > READ_HIGH) this.#pause();
    });
    s.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    s.on("error", (e: Error) => {
      this.#error = e;
      this.#notify();
    });
    s.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
  }

  #notify(): void {
    this.#rq.wake();
  }

  /** Stops the socket's delivery and the reads under it until {@link read} drains the queue. */
  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#s.pause();
    this.#gate?.hold();
  }

  readonly #done = (): boolean => {
    if (this.#error && !this.#closed) throw this.#error;
    return this.#ended || this.#closed;
  };

  /** Resolves once a read would not wait (see {@link Conn.waitReadable}). */
  waitReadable(): Promise<void> {
    return this.#rq.ready(this.#done);
  }

  async read(p: Uint8Array): Promise<number | null> {
    const n = await this.#rq.read(p, this.#done);
    if (n !== null && this.#paused && this.#rq.bytes < READ_LOW) {
      this.#paused = false;
      this.#s.resume();
      this.#gate?.release();
    }
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    const s = this.#s;
    if (this.#closed || s.destroyed) return Promise.reject(new ClosedError("tls: closed"));
    if (this.#writeError) return Promise.reject(this.#writeError);
    // Buffer.from copies, so the caller may reuse `p` at once. Waiting for each record to reach
    // the socket would allow one write in flight; Node's back-pressure (write() false, then
    // "drain") keeps the pipe full and the memory bounded.
    const ok = s.write(Buffer.from(p), (e) => {
      if (e) this.#writeError ??= e;
    });
    if (ok) return Promise.resolve(p.length);
    return new Promise((resolve, reject) => {
      const drained = () => {
        s.off("close", closed);
        resolve(p.length);
      };
      const closed = () => {
        s.off("drain", drained);
        reject(this.#writeError ?? new ClosedError("tls: closed"));
      };
      s.once("drain", drained);
      s.once("close", closed);
    });
  }

  closeWrite(): Promise<void> {
    // end()'s callback never comes on a destroyed stream: a relay's other direction would wait
    // for it forever (and never release what it holds).
    const s = this.#s as Duplex & { destroyed?: boolean; writableEnded?: boolean };
    if (this.#closed || s.destroyed || s.writableEnded) return Promise.resolve();
    return new Promise((r) => {
      s.once("close", () => r());
      s.end(() => r());
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#s.destroy();
    this.#notify();
  }
}

export interface TlsClientOptions {
  serverName?: string;
  /** Verify the server certificate (GOST `secure`, default false). */
  secure?: boolean;
  /** PEM CA certificates to verify against. */
  ca?: string;
  cert?: string;
  key?: string;
  alpn?: string[];
  signal?: AbortSignal;
}

function clientOptions(o: TlsClientOptions): tls.ConnectionOptions {
  const ip = o.serverName && /^[\d.]+$|:/.test(o.serverName);
  return {
    servername: o.serverName && !ip ? o.serverName : undefined,
    rejectUnauthorized: !!o.secure || !!o.ca,
    ...(o.ca ? { ca: o.ca } : {}),
    // A CA without `secure`: verify the chain but not the host name (GOST's rule).
    ...(o.ca && !o.secure ? { checkServerIdentity: () => undefined } : {}),
    ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
    ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
  };
}

/** Runs a TLS client handshake over `conn`. */
export function tlsClient(conn: Conn, o: TlsClientOptions = {}): Promise<Conn> {
  const gate = new ReadGate();
  const s = tls.connect({ socket: connToDuplex(conn, gate), ...clientOptions(o) });
  return handshake(s, () => [conn.localAddr, conn.remoteAddr], "tls", "secureConnect", gate);
}

/**
 * Connects to `host:port` and runs a TLS client handshake on the native socket: ~1.7x the
 * throughput of TLS over a `Conn` (no JavaScript pump between TCP and TLS). First hops only.
 * Where the runtime does not let the socket's reads be held ({@link nativeReads}), TLS runs over
 * a TCP Conn instead: slower, but a reader that falls behind holds the peer back.
 */
export async function tlsConnect(
  host: string,
  port: number,
  o: TlsClientOptions = {},
  native: boolean = nativeHoldable !== false,
): Promise<Conn> {
  if (!native) return await overConn(host, port, o);
  const c = await nativeConnect(host, port, o);
  if (c !== null) return c;
  return await overConn(host, port, o);
}

async function overConn(host: string, port: number, o: TlsClientOptions): Promise<Conn> {
  return await tlsClientWithin(await dialTcp(host, port, o.signal), o);
}

/**
 * A TLS client handshake over `raw` within the transport's 15 s handshake deadline and `o.signal`;
 * `raw` is closed if it fails.
 */
export async function tlsClientWithin(raw: Conn, o: TlsClientOptions): Promise<Conn> {
  try {
    return await withDeadline(
      raw,
      15_000,
      () => withSignal(raw, o.signal, () => tlsClient(raw, o)),
    );
  } catch (e) {
    raw.close();
    throw e;
  }
}

/** The native handshake; null (the conn closed) when its reads cannot be held. */
async function nativeConnect(
  host: string,
  port: number,
  o: TlsClientOptions,
): Promise<Conn | null> {
  // Half-open: the peer's close_notify/FIN ends only our reading side, as with every Conn.
  // (Node reads allowHalfOpen here; its TypeScript types omit it.)
  const reads = new StaticReads();
  const opts = {
    host,
    port,
    allowHalfOpen: true,
    onread: reads.option,
    ...clientOptions(o),
  };
  const s = tls.connect(opts as tls.ConnectionOptions);
  s.setNoDelay(true);
  const abort = () => s.destroy(new Error("aborted"));
  o.signal?.addEventListener("abort", abort, { once: true });
  if (o.signal?.aborted) abort();
  const addr = (h: string | undefined, p: number | undefined): NetAddr => ({
    transport: "tcp",
    hostname: h ?? "",
    port: p ?? 0,
  });
  const c = await handshake(
    s,
    () => [addr(s.localAddress, s.localPort), addr(s.remoteAddress, s.remotePort)],
    "tls",
    "secureConnect",
    new NativeHold(s),
    undefined,
    reads,
  ).finally(() => o.signal?.removeEventListener("abort", abort));
  nativeHoldable ??= nativeReads(s) !== null;
  if (nativeHoldable) return c;
  c.close();
  return null;
}

/** Runs a TLS server handshake over `conn` (TLS on top of a tunnel stream). */
/** A server-side TLS context, built once per listener (a bad certificate fails here). */
export interface ServerTls {
  /** Client certificates are required and verified against the CA (GOST's mutual TLS). */
  readonly requireCert: boolean;
  /** Protocols offered by ALPN, in preference order (DoH: `h2`, `http/1.1`). */
  readonly alpn?: string[];
  /** The parsed certificate and key, shared by every handshake of the listener. */
  readonly context: tls.SecureContext;
}

export function serverTls(
  o: { cert: string; key: string; ca?: string; alpn?: string[] },
): ServerTls {
  const context = tls.createSecureContext({
    cert: o.cert,
    key: o.key,
    ...(o.ca ? { ca: o.ca } : {}),
  });
  return { requireCert: !!o.ca, ...(o.alpn ? { alpn: o.alpn } : {}), context };
}

export function tlsServer(conn: Conn, o: ServerTls): Promise<Conn> {
  const gate = new ReadGate();
  const s = new tls.TLSSocket(connToDuplex(conn, gate), {
    isServer: true,
    secureContext: o.context,
    requestCert: o.requireCert,
    rejectUnauthorized: o.requireCert,
    ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
  });
  return handshake(
    s,
    () => [conn.localAddr, conn.remoteAddr],
    "tls",
    "secure",
    gate,
    o.requireCert ? clientCertRefusal : undefined,
  );
}

/**
 * Why a server that requires client certificates must refuse this one, or null. Deno's node:tls
 * enforces `rejectUnauthorized` only in a `tls.Server`, not in a server TLSSocket made by hand as
 * here: a certificate its CA never signed completed the handshake (docs/gost-config.md §2.6). So the chain's
 * verification result is read here; where it cannot be read, every client is refused rather than
 * every one let in.
 */
function clientCertRefusal(s: tls.TLSSocket): string | null {
  const h = (s as unknown as { _handle?: { verifyError?: () => unknown } })._handle;
  if (typeof h?.verifyError !== "function") {
    return "client certificates cannot be verified in this runtime";
  }
  const e = h.verifyError();
  if (e) return `client certificate refused: ${(e as { code?: string }).code ?? String(e)}`;
  const peer = s.getPeerCertificate();
  if (!peer || Object.keys(peer).length === 0) return "client certificate required";
  return null;
}

function handshake(
  s: tls.TLSSocket,
  addrs: () => [NetAddr, NetAddr],
  transport: string,
  event: string,
  gate?: ReadHold,
  refusal?: (s: tls.TLSSocket) => string | null,
  reads?: StaticReads,
): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error) => {
      s.destroy();
      reject(new TunnelError(`tls handshake: ${e.message}`, { cause: e }));
    };
    // A peer that leaves mid-handshake (a client refusing our certificate, say) ends the socket
    // without an error: the handshake fails at once, not at the listener's deadline.
    const onClose = () => {
      s.destroy();
      reject(new TunnelError("tls handshake: the peer left"));
    };
    s.once("error", onErr);
    s.once("end", onClose);
    s.once("close", onClose);
    s.once(event, () => {
      s.off("error", onErr);
      s.off("end", onClose);
      s.off("close", onClose);
      const why = refusal?.(s);
      if (why) {
        s.destroy();
        reject(new TunnelError(`tls handshake: ${why}`));
        return;
      }
      const [local, remote] = addrs();
      const c = new DuplexConn(s, local, remote, transport, gate, reads);
      const alpn = (s as { alpnProtocol?: string | false }).alpnProtocol;
      if (alpn) c.alpn = alpn;
      resolve(c);
    });
  });
}
