/**
 * Takes the datagrams already queued on a UDP socket through libc's `recvfrom` (`MSG_DONTWAIT`)
 * once a `receive` has returned. A KCP peer sends bursts of hundreds of datagrams, and Deno's
 * `receive` costs an op, a promise and ~1.1 KB of objects each: `op_net_recv_udp` was 28% of a
 * Burrow kcp client's profile, and draining lifted it from 31-34 to 40-42 MB/s
 * (docs/performance.md). Linux, IPv4 sockets, FFI granted and /proc readable only; elsewhere
 * {@link UdpDrain.for} returns null and callers receive one datagram at a time as before.
 * @module
 */
import { type Libc, libc, libcUnavailable } from "./libc.ts";
import { udpSocketFd } from "./sockbuf.ts";

const MSG_DONTWAIT = 0x40;
const AF_INET = 2;
/** At most this many datagrams per drain. */
export const DRAIN_MAX = 64;
/**
 * Datagrams a receive loop may handle before it lets timers run ({@link timerTurn}). A `receive`
 * that finds datagrams queued resolves without a timer turn (one comes about every 128 such
 * receives, a reviewer measured), so with drains of 64 a flood held KCP's update timer back for
 * ~8,300 datagrams.
 */
export const TIMER_TURN_EVERY = 256;

/** Resolves after the event loop's next timer phase. */
export function timerTurn(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** Where a receive loop hands each datagram (a view of its buffer, valid during the call). */
export type DatagramSink = (d: Uint8Array, hostname: string, port: number) => void;

/**
 * The part of a receive loop after each `receive`: drains what else is queued into `sink` (when
 * the socket has a {@link UdpDrain}) and says when the loop owes the timers a turn.
 */
export class ReceiveLoop {
  readonly #drain: UdpDrain | null;
  #handled = 0;

  constructor(sock: Deno.DatagramConn) {
    this.#drain = UdpDrain.for(sock);
  }

  /**
   * Call right after a `receive` into `buf` returned and its datagram went to `sink`: up to
   * {@link DRAIN_MAX} more go there too, while `stop()` is false. Returns a promise to await when
   * {@link TIMER_TURN_EVERY} datagrams have been handled since the last one, else null.
   */
  after(buf: Uint8Array, sink: DatagramSink, stop: () => boolean): Promise<void> | null {
    const drain = this.#drain;
    let i = 0;
    for (; drain !== null && i < DRAIN_MAX && !stop(); i++) {
      const n = drain.next(buf);
      if (n < 0) break;
      sink(buf.subarray(0, n), drain.hostname, drain.port);
    }
    if ((this.#handled += 1 + i) < TIMER_TURN_EVERY) return null;
    this.#handled = 0;
    return timerTurn();
  }
}

/** Reads queued datagrams of one IPv4 UDP socket without an op each. */
export class UdpDrain {
  readonly #lib: Libc;
  readonly #fd: number;
  readonly #sa = new Uint8Array(16);
  readonly #len = new Uint32Array(1);
  readonly #lenBytes = new Uint8Array(this.#len.buffer);
  #addr = -1;
  /** {@link hostname}'s text and the address it was made for. */
  #host = "";
  #hostAddr = -1;
  /** The last datagram's source port. */
  port = 0;

  private constructor(lib: Libc, fd: number) {
    this.#lib = lib;
    this.#fd = fd;
  }

  /**
   * A drain for `sock`, or null where it cannot work (not Linux, no FFI permission, no /proc, an
   * IPv6 socket) or the socket's descriptor is not found for certain: the descriptor found by
   * port must report the very address `sock` is bound to, or another socket's datagrams would be
   * taken.
   */
  static for(sock: Deno.DatagramConn): UdpDrain | null {
    const a = sock.addr as Deno.NetAddr;
    if (a.transport !== "udp" || a.hostname.includes(":")) return null;
    if (libcUnavailable("draining UDP sockets")) return null;
    try {
      // Asked first: a library must never trigger an interactive permission prompt.
      if (Deno.permissions.querySync({ name: "read", path: "/proc" }).state !== "granted") {
        return null;
      }
      const lib = libc("draining UDP sockets");
      const fd = udpSocketFd(a.port);
      if (fd < 0) return null;
      const sa = new Uint8Array(16), len = new Uint32Array([16]);
      if (lib.getsockname(fd, sa, new Uint8Array(len.buffer)) !== 0) return null;
      const want = a.hostname.split(".").map(Number);
      if (
        (sa[0]! | (sa[1]! << 8)) !== AF_INET || ((sa[2]! << 8) | sa[3]!) !== a.port ||
        want.length !== 4 || want.some((b, i) => sa[4 + i] !== b)
      ) return null;
      return new UdpDrain(lib, fd);
    } catch {
      return null;
    }
  }

  /**
   * Reads the next queued datagram into `buf` (truncated to it, as `receive` does): its length,
   * or -1 when none is queued (or the socket failed: the caller's next `receive` reports that).
   * {@link port} and {@link hostname} then say where it came from. Call it only right after a
   * `receive` on the socket returned, in the same turn: the socket is open then.
   */
  next(buf: Uint8Array): number {
    this.#len[0] = 16;
    const n = Number(
      this.#lib.recvfrom(this.#fd, buf, BigInt(buf.length), MSG_DONTWAIT, this.#sa, this.#lenBytes),
    );
    if (n < 0) return -1;
    const sa = this.#sa;
    this.port = (sa[2]! << 8) | sa[3]!;
    this.#addr = ((sa[4]! << 24) | (sa[5]! << 16) | (sa[6]! << 8) | sa[7]!) >>> 0;
    return n;
  }

  /** The last datagram's source address, written as Deno writes it (made once per new source). */
  get hostname(): string {
    if (this.#addr !== this.#hostAddr) {
      const v = this.#addr;
      this.#host = `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
      this.#hostAddr = v;
    }
    return this.#host;
  }
}
