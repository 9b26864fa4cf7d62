/**
 * The destination a client dialed before netfilter's REDIRECT/DNAT sent it to us: Linux's
 * `getsockopt(SOL_IP, SO_ORIGINAL_DST)` (`SOL_IPV6, IP6T_SO_ORIGINAL_DST` for IPv6), as GOST's
 * `red` does. Deno does not hand out a socket's file descriptor, so it is found the way `ss -p`
 * finds it: the connection's inode in /proc/net/tcp{,6} by its address pair, then the descriptor
 * in /proc/self/fd that links to `socket:[inode]`; libc's getsockopt is called over FFI.
 * @module
 */
import type { NetAddr } from "../../core/conn.ts";
import { UnsupportedError } from "../../core/errors.ts";
import { joinHostPort } from "../../core/addr.ts";
import { fdOfInode, libc, libcUnavailable } from "../../core/libc.ts";

const SOL_IP = 0, SOL_IPV6 = 41, SO_ORIGINAL_DST = 80;
const IP_TRANSPARENT = 19, IPV6_TRANSPARENT = 75;

/** Why original destinations cannot be read here, or null when they can. */
export function originalDstUnavailable(): string | null {
  return libcUnavailable("reading SO_ORIGINAL_DST");
}

/** `/proc/net/tcp` form of an address: IPv4 as one little-endian word, IPv6 as four. */
function procAddr(a: NetAddr): { file: string; key: string } | null {
  const port = a.port.toString(16).toUpperCase().padStart(4, "0");
  const h = a.hostname.replace(/^\[|\]$/g, "");
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  if (v4) {
    const hex = [4, 3, 2, 1].map((i) => Number(v4[i]).toString(16).padStart(2, "0")).join("");
    return { file: "/proc/net/tcp", key: `${hex.toUpperCase()}:${port}` };
  }
  if (!h.includes(":")) return null;
  // An IPv4-mapped address (a dual-stack listener): its dotted tail as two groups.
  const mapped = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  const text = mapped
    ? mapped[1] +
      [[2, 3], [4, 5]].map(([a, b]) =>
        ((Number(mapped[a!]) << 8) | Number(mapped[b!])).toString(16)
      ).join(":")
    : h;
  // Expand the IPv6 text to 8 groups, then write each 32-bit word little-endian.
  const [head, tail = ""] = text.split("::");
  const hs = head ? head.split(":") : [];
  const ts = tail ? tail.split(":") : [];
  const groups = [...hs, ...Array(8 - hs.length - ts.length).fill("0"), ...ts]
    .map((g) => g.padStart(4, "0"));
  let key = "";
  for (let w = 0; w < 4; w++) {
    const word = groups[2 * w]! + groups[2 * w + 1]!;
    key += word.match(/../g)!.reverse().join("");
  }
  return { file: "/proc/net/tcp6", key: `${key.toUpperCase()}:${port}` };
}

/**
 * The file descriptor of this process's TCP socket `local` ⇄ `remote`, or of its socket listening
 * on `local` when `remote` is null; -1 if none.
 */
function findFd(local: NetAddr, remote: NetAddr | null): number {
  const l = procAddr(local);
  const r = remote ? procAddr(remote) : null;
  if (!l || (remote && !r)) return -1;
  let inode = "";
  for (const line of Deno.readTextFileSync(l.file).split("\n")) {
    const f = line.trim().split(/\s+/);
    // A listening socket: state 0A, no remote address.
    if (f[1] === l.key && (r ? f[2] === r.key : f[3] === "0A")) {
      inode = f[9]!;
      break;
    }
  }
  return fdOfInode(inode);
}

/**
 * `host:port` the client originally dialed, for an accepted TCP conn with these addresses. A conn
 * that was not redirected reports its own local address (the caller refuses that as a loop).
 */
export function originalDst(local: NetAddr, remote: NetAddr): string {
  const why = originalDstUnavailable();
  if (why) throw new UnsupportedError(`red: ${why}`);
  const fd = findFd(local, remote);
  if (fd < 0) throw new UnsupportedError("red: the accepted socket was not found in /proc");
  const v6 = local.hostname.includes(":") && !/^::ffff:\d/.test(local.hostname);
  const buf = new Uint8Array(v6 ? 28 : 16);
  const len = new Uint32Array([buf.length]);
  const rc = libc("red").getsockopt(
    fd,
    v6 ? SOL_IPV6 : SOL_IP,
    SO_ORIGINAL_DST,
    buf,
    new Uint8Array(len.buffer),
  );
  if (rc !== 0) {
    throw new UnsupportedError("red: no original destination (no NAT redirect for this conn)");
  }
  const port = (buf[2]! << 8) | buf[3]!;
  if (!v6) return joinHostPort(`${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port);
  const g: string[] = [];
  for (let i = 8; i < 24; i += 2) g.push(((buf[i]! << 8) | buf[i + 1]!).toString(16));
  return joinHostPort(g.join(":"), port);
}

/**
 * Marks this process's TCP socket listening on `local` transparent (`IP_TRANSPARENT`, or
 * `IPV6_TRANSPARENT`), so netfilter's TPROXY target can hand it connections addressed elsewhere;
 * their local address is then the original destination. Needs CAP_NET_ADMIN.
 */
export function setTransparent(local: NetAddr): void {
  const why = originalDstUnavailable();
  if (why) throw new UnsupportedError(`red: ${why}`);
  const fd = findFd(local, null);
  if (fd < 0) throw new UnsupportedError("red: the listening socket was not found in /proc");
  const v6 = local.hostname.includes(":");
  const one = new Uint8Array(new Int32Array([1]).buffer);
  const rc = libc("red").setsockopt(
    fd,
    v6 ? SOL_IPV6 : SOL_IP,
    v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT,
    one,
    4,
  );
  if (rc !== 0) {
    throw new UnsupportedError(
      "red: cannot make the listener transparent for TPROXY (IP_TRANSPARENT needs CAP_NET_ADMIN)",
    );
  }
}
