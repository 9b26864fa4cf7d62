/**
 * TLS listeners on Deno's own TLS (`Deno.listenTls`): an idle conn costs ~16 KiB there against
 * 34-42 through node:tls over the accepted TCP conn, and records are sealed and opened without a
 * JavaScript stream in between (docs/performance.md, "TLS servers").
 *
 * One thing Deno cannot do: closing an accepted conn whose handshake is still pending cancels the
 * handshake but leaves the socket open until the client leaves, so a handshake deadline alone
 * would let silent clients hold descriptors. A conn closed before its handshake finished is first
 * shut down (`shutdown(2)` on its descriptor, found through /proc as `ss -p` does), which ends the
 * pending handshake and frees the socket. Where that cannot be done (no FFI permission, no /proc,
 * not Linux), and where client certificates are required (Deno cannot ask for them), the listener
 * keeps node:tls ({@link nativeTlsUsable}).
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { fdsOfInodes, libc, libcUnavailable } from "../../core/libc.ts";
import { listenHost, splitHostPort } from "../../core/addr.ts";
import { SocketConn } from "../../core/socket.ts";
import { TunnelError } from "../../core/errors.ts";
import { TcpListener } from "../tcp/listener.ts";

const SHUT_RDWR = 2;

/** Whether a conn with a pending handshake can be shut down here (see the module comment). */
export function nativeTlsUsable(): boolean {
  if (libcUnavailable("shutting down a TLS handshake")) return false;
  try {
    return Deno.permissions.querySync({ name: "read", path: "/proc" }).state === "granted" &&
      Deno.statSync("/proc/self/fd").isDirectory;
  } catch {
    return false;
  }
}

/** `/proc/net/tcp{,6}`'s form of an address: hex of the address's bytes as the kernel prints it. */
function procHex(a: NetAddr): string[] {
  const port = ":" + a.port.toString(16).toUpperCase().padStart(4, "0");
  const v4 = /^\d+\.\d+\.\d+\.\d+$/.test(a.hostname)
    ? a.hostname.split(".").map((x) => Number(x).toString(16).toUpperCase().padStart(2, "0"))
    : null;
  if (v4) {
    // The kernel prints 32-bit words in host order (little-endian): 127.0.0.1 is 0100007F, in
    // tcp alone and as the last word of ::ffff:127.0.0.1 in tcp6 (a dual-stack listener).
    const word = v4.reverse().join("");
    return [word + port, "0000000000000000FFFF0000" + word + port];
  }
  return []; // IPv6 peers are matched by ports alone (see socketInode)
}

/** One /proc/net/tcp{,6} line's local and remote address and inode. */
interface ProcSocket {
  local: string;
  remote: string;
  inode: string;
}

function procSockets(): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(f);
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 10) out.push({ local: cols[1]!, remote: cols[2]!, inode: cols[9]! });
    }
  }
  return out;
}

/** The inode of the TCP socket between `local` and `remote` among `all`, or "" if not one. */
function inodeOf(all: ProcSocket[], local: NetAddr, remote: NetAddr): string {
  const lh = procHex(local), rh = procHex(remote);
  const lp = ":" + local.port.toString(16).toUpperCase().padStart(4, "0");
  const rp = ":" + remote.port.toString(16).toUpperCase().padStart(4, "0");
  const found = all.filter((s) =>
    lh.length > 0
      ? lh.includes(s.local) && rh.includes(s.remote)
      : s.local.endsWith(lp) && s.remote.endsWith(rp)
  );
  // Matched by ports alone, two sockets could qualify: then none is touched.
  return found.length === 1 ? found[0]!.inode : "";
}

/** Conns closed mid-handshake whose sockets are to be shut down at the next sweep. */
const toShut: [NetAddr, NetAddr][] = [];

/**
 * Shuts down, both ways, the sockets of every conn queued since the last sweep: one read of
 * /proc/net and one pass over /proc/self/fd for all of them, so a flood of stalled clients timing
 * out together costs one sweep per timer turn, not one per client.
 */
function sweep(): void {
  const batch = toShut.splice(0);
  try {
    const all = procSockets();
    const inodes = batch.map(([l, r]) => inodeOf(all, l, r)).filter((i) => i !== "");
    const c = libc("shutting down a TLS handshake");
    for (const fd of fdsOfInodes(inodes).values()) c.shutdown(fd, SHUT_RDWR);
  } catch { /* /proc or libc went away: nothing more can be done */ }
}

/** Queues the socket between `local` and `remote` for the next {@link sweep}. */
function shutDownSoon(local: NetAddr, remote: NetAddr): void {
  if (toShut.push([local, remote]) === 1) setTimeout(sweep, 0);
}

/** An accepted native TLS conn: its handshake runs in {@link handshake}. */
export class NativeTlsConn extends SocketConn {
  /** The protocol ALPN settled on, if any (DoH reads it). */
  alpn?: string;
  #pending = true;

  constructor(c: Deno.TlsConn) {
    super(c);
    // As node:tls conns say: the transport is TLS, not the TCP underneath.
    Object.assign(this, {
      localAddr: { ...this.localAddr, transport: "tls" },
      remoteAddr: { ...this.remoteAddr, transport: "tls" },
    });
  }

  /** Runs the server handshake; resolves this conn once it is done. */
  async handshake(): Promise<Conn> {
    try {
      const info = await (this.inner as Deno.TlsConn).handshake();
      if (info.alpnProtocol) this.alpn = info.alpnProtocol;
    } catch (e) {
      throw new TunnelError(`tls handshake: ${e instanceof Error ? e.message : e}`, { cause: e });
    } finally {
      this.#pending = false;
    }
    return this;
  }

  override close(): void {
    // Closing alone would leave the socket open while the handshake waits (module comment). The
    // socket keeps its inode until it is shut down, so the sweep finds it after the close.
    if (this.#pending) {
      this.#pending = false;
      shutDownSoon(this.localAddr, this.remoteAddr);
    }
    super.close();
  }
}

/** Accepts TLS conns on `addr` with Deno's TLS; each conn's handshake is left to the caller. */
export function nativeTlsListener(
  addr: string,
  cert: string,
  key: string,
  alpn?: string[],
): TcpListener {
  const { host, port } = splitHostPort(addr);
  const l = Deno.listenTls({
    hostname: listenHost(host),
    port,
    transport: "tcp",
    cert,
    key,
    ...(alpn ? { alpnProtocols: alpn } : {}),
  });
  return new TcpListener(l, (c) => new NativeTlsConn(c as Deno.TlsConn));
}
