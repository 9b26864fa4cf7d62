/**
 * Burrow against the real Go peers, end for end: for ws and mws (gorilla/websocket with its
 * default buffers), mtcp (xtaci/smux) and kcp (kcptun), the Go pair is measured, then Burrow
 * replaces its server, then its client, in the same run. Each pairing moves data up (client →
 * target) and down (target → client) over 1 stream and over 8 at once; the ratio is Burrow's MB/s
 * over the Go pair's. The Go ws/mws/mtcp ends are scripts/peers/tunnel (GOST's libraries, defaults
 * and copy loop); the kcp ends are Debian's kcptun.
 *
 * Environment: BENCH_MIB (bytes per direction and cell, default 64), BENCH_REPS (median of, default
 * 5), BENCH_PEERS (comma list of ws,mws,mtcp,kcp).
 * @module
 */
import type { BenchRow } from "./types.ts";
import { freePort, peakKiB, rssKiB, spawned, startBurrow, waitListening } from "./proc.ts";
import { goPeer, startListeningPeer } from "../peers/build.ts";

const MIB = Number(Deno.env.get("BENCH_MIB") ?? 64);
const REPS = Number(Deno.env.get("BENCH_REPS") ?? 5);
const PROTOS = (Deno.env.get("BENCH_PEERS") ?? "ws,mws,mtcp,kcp").split(",");
const CHUNK = 64 * 1024;
const payload = crypto.getRandomValues(new Uint8Array(CHUNK));

/**
 * The target every tunnel forwards to. A connection starts with one byte: "U" — count what
 * follows until EOF; "D" + a 64-bit size — send that many bytes and close.
 */
function target(): { port: number; uploaded: () => Promise<number>; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const waiting: ((n: number) => void)[] = [];
  const done: number[] = [];
  const serve = async (c: Deno.Conn) => {
    const buf = new Uint8Array(256 * 1024);
    let have = 0;
    try {
      while (have < 1 || (buf[0] === 0x44 && have < 9)) {
        const n = await c.read(buf.subarray(have));
        if (n === null) return; // a readiness probe
        have += n;
      }
      if (buf[0] === 0x44) {
        let left = Number(new DataView(buf.buffer).getBigUint64(1));
        while (left > 0) {
          const n = await c.write(left >= CHUNK ? payload : payload.subarray(0, left));
          left -= n;
        }
        return;
      }
      let count = have - 1;
      for (;;) {
        const n = await c.read(buf);
        if (n === null) break;
        count += n;
      }
      const w = waiting.shift();
      if (w) w(count);
      else done.push(count);
    } catch {
      /* reset: the cell's byte check reports it */
    } finally {
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
  (async () => {
    for await (const c of l) serve(c);
  })().catch(() => {});
  return {
    port: l.addr.port,
    uploaded: () =>
      done.length > 0
        ? Promise.resolve(done.shift()!)
        : new Promise<number>((r) => waiting.push(r)),
    close: () => l.close(),
  };
}

type Target = ReturnType<typeof target>;

/** MB/s of `streams` connections into `port`, each pushing `bytes` up to the target. */
async function up(port: number, t: Target, streams: number, bytes: number): Promise<number> {
  const t0 = performance.now();
  const counts = Array.from({ length: streams }, () => t.uploaded());
  await Promise.all(Array.from({ length: streams }, async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.setNoDelay(true);
    await c.write(new Uint8Array([0x55]));
    for (let sent = 0; sent < bytes;) {
      sent += await c.write(bytes - sent >= CHUNK ? payload : payload.subarray(0, bytes - sent));
    }
    await c.closeWrite();
    await Promise.all(counts); // keep the connection until the target has it all
    c.close();
  }));
  const got = (await Promise.all(counts)).reduce((a, b) => a + b, 0);
  if (got !== streams * bytes) throw new Error(`up: target got ${got} of ${streams * bytes}`);
  return got / 1e6 / ((performance.now() - t0) / 1000);
}

/** MB/s of `streams` connections into `port`, each reading `bytes` sent down by the target. */
async function down(port: number, streams: number, bytes: number): Promise<number> {
  const t0 = performance.now();
  const got = await Promise.all(Array.from({ length: streams }, async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.setNoDelay(true);
    const head = new Uint8Array(9);
    head[0] = 0x44;
    new DataView(head.buffer).setBigUint64(1, BigInt(bytes));
    await c.write(head);
    const buf = new Uint8Array(256 * 1024);
    let n = 0;
    for (;;) {
      const r = await c.read(buf).catch(() => null);
      if (r === null) break;
      n += r;
    }
    c.close();
    return n;
  }));
  const sum = got.reduce((a, b) => a + b, 0);
  if (sum !== streams * bytes) throw new Error(`down: client got ${sum} of ${streams * bytes}`);
  return sum / 1e6 / ((performance.now() - t0) / 1000);
}

/** A running tunnel end: the port it listens on (TCP for clients) and how to stop it. */
interface End {
  port: number;
  stop: () => Promise<void>;
  /** Burrow ends: the pid, and the resident memory once started and once idle after a tunnel. */
  pid?: number;
  startKiB?: number;
  idleKiB?: number;
}

/** One carrier: how to start its Go and Burrow ends. */
interface Pair {
  name: string;
  goName: string;
  server(go: boolean, targetPort: number): Promise<End>;
  client(go: boolean, serverPort: number): Promise<End>;
}

async function burrow(args: string[]): Promise<End> {
  const b = await startBurrow(args);
  return { port: b.ports[0]!, stop: b.stop, pid: b.pid, startKiB: rssKiB(b.pid) };
}

function goTunnelPair(proto: "ws" | "mws" | "mtcp", goName: string, bin: string): Pair {
  return {
    name: proto,
    goName,
    async server(go, tp) {
      if (!go) return await burrow(["-L", `${proto}://127.0.0.1:0/127.0.0.1:${tp}`]);
      const p = await startListeningPeer(bin, [
        "-mode",
        "server",
        "-proto",
        proto,
        "-target",
        `127.0.0.1:${tp}`,
      ]);
      return { port: p.port, stop: p.stop };
    },
    async client(go, sp) {
      if (!go) {
        return await burrow([
          "-L",
          "tcp://127.0.0.1:0/127.0.0.1:1",
          "-F",
          `forward+${proto}://127.0.0.1:${sp}`,
        ]);
      }
      const p = await startListeningPeer(bin, [
        "-mode",
        "client",
        "-proto",
        proto,
        "-server",
        `127.0.0.1:${sp}`,
      ]);
      return { port: p.port, stop: p.stop };
    },
  };
}

/** kcptun's flags and Burrow's matching query: aes, FEC 10/3 (both defaults), fast, windows 1024. */
const KCPTUN = [
  "--key",
  "k",
  "--crypt",
  "aes",
  "--mode",
  "fast",
  "--sndwnd",
  "1024",
  "--rcvwnd",
  "1024",
];
const KCP_Q = "?kcp.key=k&kcp.crypt=aes&kcp.mode=fast&kcp.sndwnd=1024&kcp.rcvwnd=1024";

/**
 * `kcptun-server -t other` or `kcptun-client -r other` listening on a port of its own (it prints
 * nothing to wait on: the UDP server binds at once, the client is probed).
 */
async function kcptun(side: "server" | "client", other: number): Promise<End> {
  const port = freePort();
  const stop = spawned(`kcptun-${side}`, [
    "-l",
    `127.0.0.1:${port}`,
    side === "server" ? "-t" : "-r",
    `127.0.0.1:${other}`,
    "--quiet",
    ...KCPTUN,
  ]);
  if (side === "client") await waitListening(port);
  return { port, stop };
}

const kcpPair: Pair = {
  name: "kcp",
  goName: "kcptun",
  async server(go, tp) {
    if (!go) return await burrow(["-L", `kcp://127.0.0.1:0/127.0.0.1:${tp}${KCP_Q}`]);
    return await kcptun("server", tp);
  },
  async client(go, sp) {
    if (!go) {
      return await burrow([
        "-L",
        "tcp://127.0.0.1:0/127.0.0.1:1",
        "-F",
        `forward+kcp://127.0.0.1:${sp}${KCP_Q}`,
      ]);
    }
    return await kcptun("client", sp);
  },
};

function hasCommand(c: string): boolean {
  return new Deno.Command("sh", { args: ["-c", `command -v ${c}`], stdout: "null" }).outputSync()
    .success;
}

const CELLS = [
  ["up", 1],
  ["up", 8],
  ["down", 1],
  ["down", 8],
] as const;

/** One cell's result per pairing: median MB/s, and the median of per-repetition ratios. */
interface Cell {
  go: number;
  asServer: number;
  asClient: number;
  rServer: number;
  rClient: number;
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Every cell for one carrier. The three pairings run side by side (Go pair, Go client → Burrow
 * server, Burrow client → Go server) and take turns within each repetition, so a slow spell on
 * a shared machine hits all three alike; a ratio compares measurements taken back to back. Each
 * cell starts with an untimed pass per pairing, and the order of the turns rotates.
 */
async function measure(pair: Pair, t: Target): Promise<{ cells: Cell[]; memory: string }> {
  const ends: End[] = [];
  try {
    const goServer = await pair.server(true, t.port);
    ends.push(goServer);
    const burrowServer = await pair.server(false, t.port);
    ends.push(burrowServer);
    const clients: End[] = [];
    for (const [go, srv] of [[true, goServer], [true, burrowServer], [false, goServer]] as const) {
      const c = await pair.client(go, srv.port);
      ends.push(c);
      clients.push(c);
    }
    // Idle is read after each pairing has carried one small tunnel and gone quiet: a client loads
    // its carrier's modules and opens its session (KCP's: ~10 MiB with libcrypto) on its first
    // dial, not at start, and that is resting memory, not load.
    for (const c of clients) await down(c.port, 1, 1024);
    await new Promise((r) => setTimeout(r, 1_500));
    for (const e of ends) if (e.pid !== undefined) e.idleKiB = rssKiB(e.pid);
    const out: Cell[] = [];
    for (const [dir, streams] of CELLS) {
      const bytes = Math.floor((MIB << 20) / streams);
      const once = (k: number, n: number) => {
        const port = clients[k]!.port;
        return dir === "up" ? up(port, t, streams, n) : down(port, streams, n);
      };
      // Untimed first: each pairing's first pass of a direction warms its JIT and buffers.
      for (let k = 0; k < 3; k++) await once(k, Math.max(1 << 16, bytes >>> 3));
      const runs: number[][] = [[], [], []];
      for (let i = 0; i < REPS; i++) {
        // The order rotates, so no pairing always runs first or last in a turn.
        for (let j = 0; j < 3; j++) {
          const k = (i + j) % 3;
          runs[k]!.push(await once(k, bytes));
        }
      }
      const [g, s, c] = runs as [number[], number[], number[]];
      out.push({
        go: median([...g]),
        asServer: median([...s]),
        asClient: median([...c]),
        rServer: median(s.map((x, i) => x / g[i]!)),
        rClient: median(c.map((x, i) => x / g[i]!)),
      });
    }
    // Peak over idle resident memory of each Burrow process (server, client), in MiB, and its
    // resident memory at start in brackets.
    const mib = (k: number) => (k / 1024).toFixed(0);
    const memory = ends.filter((e) => e.pid !== undefined).map((e) =>
      `${mib(peakKiB(e.pid!))}/${mib(e.idleKiB!)} (${mib(e.startKiB!)})`
    ).join(", ");
    return { cells: out, memory };
  } finally {
    for (const e of ends.reverse()) await e.stop();
  }
}

const f = (r: number) => `${r.toFixed(2)}×`;

export default async function (): Promise<BenchRow[]> {
  const pairs: Pair[] = [];
  const rows: BenchRow[] = [];
  const bin = await goPeer("tunnel", "github.com/xtaci/smux");
  for (const p of ["ws", "mws", "mtcp"] as const) {
    if (!PROTOS.includes(p)) continue;
    if (!bin) rows.push({ name: `${p} vs Go`, note: "skipped: Go, smux or gorilla missing" });
    else pairs.push(goTunnelPair(p, p === "mtcp" ? "xtaci/smux" : "gorilla", bin));
  }
  if (PROTOS.includes("kcp")) {
    if (hasCommand("kcptun-client") && hasCommand("kcptun-server")) pairs.push(kcpPair);
    else rows.push({ name: "kcp vs kcptun", note: "skipped: kcptun not installed" });
  }
  const t = target();
  const matrix: string[] = [
    `| ratio to the Go pair (median of ${REPS}; 1×${MIB} MiB / 8×${MIB / 8} MiB) | ` +
    "Burrow as server, up | as server, down | as client, up | as client, down | " +
    "Burrow peak/idle (start) RSS MiB, server, client |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  try {
    for (const pair of pairs) {
      const { cells, memory } = await measure(pair, t);
      const [u1, u8, d1, d8] = cells as [Cell, Cell, Cell, Cell];
      matrix.push(
        `| ${pair.name} vs ${pair.goName} | ${f(u1.rServer)} / ${f(u8.rServer)} | ` +
          `${f(d1.rServer)} / ${f(d8.rServer)} | ${f(u1.rClient)} / ${f(u8.rClient)} | ` +
          `${f(d1.rClient)} / ${f(d8.rClient)} | ${memory} |`,
      );
      for (const [dir, one, eight] of [["up", u1, u8], ["down", d1, d8]] as const) {
        const name = (who: string) => `${pair.name} ${who}, ${dir}, 1 / 8 streams`;
        rows.push({
          name: name(`${pair.goName} pair`),
          mbps: one.go,
          note: `8 streams ${eight.go.toFixed(1)}`,
        });
        rows.push({
          name: name("Go client → burrow server"),
          mbps: one.asServer,
          note: `8 streams ${eight.asServer.toFixed(1)}; ${f(one.rServer)} / ${f(eight.rServer)}`,
        });
        rows.push({
          name: name("burrow client → Go server"),
          mbps: one.asClient,
          note: `8 streams ${eight.asClient.toFixed(1)}; ${f(one.rClient)} / ${f(eight.rClient)}`,
        });
      }
    }
  } finally {
    t.close();
  }
  console.log(matrix.join("\n"));
  return rows;
}
