/**
 * The libc functions Burrow calls over FFI (Linux), loaded once for every user: socket options
 * Deno has no API for (buffers, original destinations, IP_TRANSPARENT), transparent UDP sockets
 * and TUN/TAP devices. Deno hands out no socket descriptors, so {@link fdOfInode} finds one the
 * way `ss -p` does, from the socket's inode.
 * @module
 */
import { UnsupportedError } from "./errors.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // On Deno's blocking pool: a wait must not hold the event loop.
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** libc's functions, as Burrow declares them. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: Libc | null | undefined;

/** Why libc cannot be called here (`what` names the feature for the message), or null. */
export function libcUnavailable(what: string): string | null {
  if (Deno.build.os !== "linux") return `${what} is supported on Linux only`;
  try {
    // Asked first: a library must never trigger an interactive permission prompt.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return `${what} needs --allow-ffi`;
    }
  } catch {
    return `${what} needs --allow-ffi`;
  }
  if (loaded === undefined) {
    try {
      loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    } catch {
      loaded = null;
    }
  }
  return loaded ? null : "libc.so.6 could not be loaded";
}

/** libc, or an UnsupportedError saying why `what` cannot work here. */
export function libc(what: string): Libc {
  const why = libcUnavailable(what);
  if (why) throw new UnsupportedError(why);
  return loaded!;
}

/** errno of the last failed call on this thread (read right after it). */
export function errno(c: Libc): number {
  const p = c.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** The text of an errno value. */
export function errnoText(c: Libc, n: number): string {
  const p = c.strerror(n);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${n}`;
}

/**
 * The descriptors of this process's sockets with these inodes, in one pass over /proc/self/fd
 * (for many at once: one readlink per open descriptor, not per inode).
 */
export function fdsOfInodes(inodes: Iterable<string>): Map<string, number> {
  const want = new Map<string, string>();
  for (const i of inodes) if (i && i !== "0") want.set(`socket:[${i}]`, i);
  const out = new Map<string, number>();
  if (want.size === 0) return out;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const inode = want.get(Deno.readLinkSync(`/proc/self/fd/${e.name}`));
      if (inode !== undefined) {
        out.set(inode, Number(e.name));
        if (out.size === want.size) break;
      }
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** The descriptor of this process's socket with this inode (from /proc/net/*), or -1. */
export function fdOfInode(inode: string): number {
  return fdsOfInodes([inode]).get(inode) ?? -1;
}
