/**
 * Best-effort SO_RCVBUF/SO_SNDBUF for a `Deno.DatagramConn` (kcptun's `sockbuf`).
 *
 * Deno has no socket-option API for UDP, and its default receive buffer (~208 KiB) overflows
 * when a kcp-go peer bursts a 1024-packet window at it: the kernel drops what does not fit and
 * KCP crawls on retransmissions. On Linux, with the FFI permission granted, the socket's file
 * descriptor is found through /proc (its inode) and setsockopt is called through libc.
 * Anywhere else the call is a no-op that says so.
 * @module
 */

import { fdOfInode, type Libc, libc, libcUnavailable } from "./libc.ts";

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;

function openLibc(): Libc | null {
  // Best effort: no libc, no FFI permission or no /proc access all mean "leave it as it is".
  if (libcUnavailable("setting UDP buffers")) return null;
  try {
    if (Deno.permissions.querySync({ name: "read", path: "/proc" }).state !== "granted") {
      return null;
    }
  } catch {
    return null;
  }
  return libc("setting UDP buffers");
}

/**
 * The fd of this process's UDP socket bound to `port`, found by inode; -1 if not found. (IPv4
 * and IPv6 sockets may share a port: a caller that must have one checks it with getsockname.)
 */
export function udpSocketFd(port: number): number {
  const hexPort = ":" + port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const f of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(f);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[1]!.endsWith(hexPort)) inodes.add(cols[9]!);
    }
  }
  for (const inode of inodes) {
    const fd = fdOfInode(inode);
    if (fd >= 0) return fd;
  }
  return -1;
}

/**
 * Asks the kernel for `bytes` of receive and send buffer on `sock`. Returns the receive buffer
 * the kernel granted (Linux reports twice the request, capped by net.core.rmem_max), or 0 when
 * it could not be set here.
 */
export function setUdpBuffers(sock: Deno.DatagramConn, bytes: number): number {
  if (bytes <= 0) return 0;
  const lib = openLibc();
  if (!lib) return 0;
  try {
    const fd = udpSocketFd((sock.addr as Deno.NetAddr).port);
    if (fd < 0) return 0;
    const v = new Int32Array([bytes]);
    const vb = new Uint8Array(v.buffer);
    lib.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, vb, 4);
    lib.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, vb, 4);
    const len = new Uint32Array([4]);
    v[0] = 0;
    if (lib.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, vb, new Uint8Array(len.buffer)) !== 0) {
      return 0;
    }
    return v[0]!;
  } catch {
    return 0;
  }
}
