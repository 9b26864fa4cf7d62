/** Shared test helpers: random payloads, digests, loopback listeners, timeouts. */
import { type Conn, WrappedConn } from "../src/core/conn.ts";

/** `n` random bytes (crypto.getRandomValues caps at 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** Hex SHA-256. */
export async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads `conn` to EOF and returns all bytes. */
export async function readAll(conn: Conn, limit = 1 << 30): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
    total += n;
    if (total > limit) throw new Error("readAll: limit exceeded");
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) out.set(p, off), off += p.length;
  return out;
}

/** Writes `data` in chunks of `chunk` bytes. */
export async function writeChunks(conn: Conn, data: Uint8Array, chunk = 16 * 1024): Promise<void> {
  for (let i = 0; i < data.length; i += chunk) await conn.write(data.subarray(i, i + chunk));
}

/** Rejects if `p` does not settle within `ms`. Clears its timer either way. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => {
        t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** Resolves after `ms`. */
/** Sends `n` random bytes from `a` to `b`, closes `a`'s write side, and checks what `b` read. */
export async function sendThrough(a: Conn, b: Conn, n: number, what = "transfer"): Promise<void> {
  const data = randomBytes(n);
  const [, got] = await withTimeout(
    Promise.all([writeChunks(a, data).then(() => a.closeWrite()), readAll(b)]),
    10_000,
    what,
  );
  if (got.length !== data.length || (await sha256(got)) !== (await sha256(data))) {
    throw new Error(`${what}: ${got.length} of ${data.length} bytes, or different bytes`);
  }
}

/** Echoes `c` until EOF, then half-closes it (errors end the echo quietly). */
export async function echoConn(c: Conn): Promise<void> {
  const buf = new Uint8Array(32768);
  for (;;) {
    const n = await c.read(buf).catch(() => null);
    if (n === null) break;
    await c.write(buf.subarray(0, n)).catch(() => {});
  }
  await c.closeWrite().catch(() => {});
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    const r = new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    return r.success;
  } catch {
    return false;
  }
}

/** A TCP echo server on 127.0.0.1:0; returns its port and a closer. */
export function echoServer(): { port: number; close: () => Promise<void> } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const c of l) {
      conns.add(c);
      const t = (async () => {
        const buf = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const n = await c.read(buf);
            if (n === null) break;
            let off = 0;
            while (off < n) off += await c.write(buf.subarray(off, n));
          }
          await c.closeWrite().catch(() => {});
          while ((await c.read(buf)) !== null) { /* drain until the peer closes */ }
        } catch {
          /* peer reset */
        } finally {
          try {
            c.close();
          } catch { /* closed */ }
          conns.delete(c);
        }
      })();
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    close: async () => {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}

/**
 * A loopback port that was free a moment ago (TCP, or UDP with `udp`). Only for a port that must
 * be chosen before anything binds it: a child process's listen flag, or an address that must
 * refuse. Anything in-process listens on port 0 and reads the port ({@link portOf}).
 */
export function portForChild(udp = false): number {
  // Never the same number twice in a run: two picks a moment apart, before either child has
  // bound its port, could otherwise be one port.
  for (;;) {
    let p: number;
    if (udp) {
      const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      p = (s.addr as Deno.NetAddr).port;
      s.close();
    } else {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      p = (l.addr as Deno.NetAddr).port;
      l.close();
    }
    if (!handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
}
const handedOut = new Set<number>();

/**
 * Starts a child process that must be told its TCP port ({@link portForChild}) and resolves once
 * the port accepts connections while the child runs. The port was only free a moment ago: a child
 * that exits first (another socket took the port) is started again on another one.
 */
export async function childOnPort(
  spawn: (port: number) => Deno.ChildProcess,
  what: string,
  timeoutMs = 5000,
): Promise<{ child: Deno.ChildProcess; port: number }> {
  for (let attempt = 1;; attempt++) {
    const port = portForChild();
    const child = spawn(port);
    let exited = false;
    const status = child.status.then(() => (exited = true));
    const deadline = Date.now() + timeoutMs;
    let listening = false;
    while (!exited && !listening && Date.now() < deadline) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        // Still running a moment later: the listener is the child's, not a stranger's.
        await new Promise((r) => setTimeout(r, 50));
        listening = !exited;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    if (listening) return { child, port };
    if (!exited) {
      stopChild(child);
      await status;
      throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms`);
    }
    if (attempt >= 5) throw new Error(`${what} exited before listening, ${attempt} times`);
  }
}

/** SIGTERM to a child that may have exited already (kill would throw then). */
export function stopChild(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGTERM");
  } catch { /* already exited */ }
}

/**
 * A UDP socket and a TCP listener on the same loopback port (a DNS server's pair). The kernel picks
 * the UDP port; TCP may already hold that number, so another pick is tried.
 */
export function listenUdpAndTcp(): { udp: Deno.DatagramConn; tcp: Deno.TcpListener; port: number } {
  for (let tries = 0;; tries++) {
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (udp.addr as Deno.NetAddr).port;
    try {
      return { udp, tcp: Deno.listen({ hostname: "127.0.0.1", port }), port };
    } catch (e) {
      udp.close();
      if (!(e instanceof Deno.errors.AddrInUse) || tries >= 20) throw e;
    }
  }
}

/** A UDP echo server on 127.0.0.1:0. */
export function udpEchoServer(): { port: number; close: () => Promise<void> } {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    try {
      for (;;) {
        const [d, from] = await sock.receive();
        await sock.send(d, from);
      }
    } catch { /* closed */ }
  })();
  return {
    port: (sock.addr as Deno.NetAddr).port,
    close: async () => {
      sock.close();
      await loop;
    },
  };
}

/** The bound port of service `i` of a started runtime (listen on port 0, then ask). */
export function portOf(
  rt: { services: { listener: { addr: { port: number } } }[] },
  i = 0,
): number {
  return rt.services[i]!.listener.addr.port;
}

/** Waits until `cond()` holds (polling), failing after `ms` with `what`. */
export async function until(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Waits until `get()` has stopped changing for `quietMs` (a writer that is blocked, a buffer
 * that is full) and returns it; fails after `ms`. Assert a lower bound on the result too, so a
 * slow machine cannot pass an upper-bound check before anything ran.
 */
export async function settle(get: () => number, quietMs = 150, ms = 10_000): Promise<number> {
  const t0 = Date.now();
  let last = get();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 10));
    const v = get();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (v > 0 && Date.now() - since >= quietMs) return v;
    if (Date.now() - t0 > ms) throw new Error(`value still changing (or zero) after ${ms} ms`);
  }
}

/** A TCP server that answers every conn with `tag` and closes it (which target got a conn). */
export function tagServer(tag: string): { port: number; close: () => Promise<void> } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    for await (const c of l) {
      await c.write(new TextEncoder().encode(tag)).catch(() => {});
      c.close();
    }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    close: async () => {
      l.close();
      await loop.catch(() => {});
    },
  };
}

/** Connects to `port` and returns all it says (a {@link tagServer} behind some hop). */
export async function askTag(port: number): Promise<string> {
  const { dialTcp } = await import("../src/core/socket.ts");
  const c = await dialTcp("127.0.0.1", port);
  try {
    return new TextDecoder().decode(await withTimeout(readAll(c), 5000, "answer"));
  } finally {
    c.close();
  }
}

/** A conn that records the size of every buffer a read is given (who lends how much, when). */
/** The bytes of `parts`, one after another, in one array. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((o, p) => (out.set(p, o), o + p.length), 0);
  return out;
}

/**
 * A conn that frames its writes the way WebSocket does ({@link Conn.writeRoom}): it takes
 * `room` bytes in front of each payload handed to `writeInPlace`, scribbles over them as a
 * header would, and records the memory each such write came in and how many plain writes came.
 */
export class RoomSpy extends WrappedConn {
  readonly room: number;
  /** The memory of each in-place write, and its payload's length. */
  inPlace: { buffer: ArrayBufferLike; bytes: number }[] = [];
  /** Plain writes. */
  plain = 0;
  constructor(inner: Conn, room = 14) {
    super(inner);
    this.room = room;
  }
  get writeRoom(): number {
    return this.room;
  }
  async writeInPlace(p: Uint8Array): Promise<number> {
    if (p.length < this.room) throw new Error(`writeInPlace: ${p.length} bytes, room ${this.room}`);
    this.inPlace.push({ buffer: p.buffer, bytes: p.length - this.room });
    p.fill(0xee, 0, this.room);
    await this.inner.write(p.subarray(this.room));
    return p.length - this.room;
  }
  override write(p: Uint8Array): Promise<number> {
    this.plain++;
    return super.write(p);
  }
}

export class ReadSizeSpy extends WrappedConn {
  sizes: number[] = [];
  /** The memory each read went to. */
  buffers: ArrayBufferLike[] = [];
  override read(p: Uint8Array): Promise<number | null> {
    this.sizes.push(p.length);
    this.buffers.push(p.buffer);
    return super.read(p);
  }
}
