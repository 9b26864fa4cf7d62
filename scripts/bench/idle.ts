/**
 * What an idle tunnel costs: RSS of a Burrow client and server process before and after 1,000
 * tunnels are opened (one byte each way, then idle), per transport. Divided by 1,000: KiB per
 * idle tunnel on each side; the median of three runs in fresh processes. The first run then opens
 * 1,000 more: "[next 1000: …]" is what each of those added, the marginal cost without the memory
 * start-up left free for the first ones to reuse. GC is not forced: what is collected is what
 * Burrow collects by itself (its memory reducer included, docs/performance.md).
 * A second row per transport, in fresh processes, opens 200 that each download 1 MiB before going
 * idle: what a keep-alive connection costs after a transfer (grown buffers must have been given
 * back). Each reading waits until RSS is steady. The tcp forward has a third row: tunnels that
 * carried a 700-byte request and a 2,000-byte reply, so each direction outgrew the relay's first
 * 256-byte read buffer (one run).
 * socks5 and http rows are a proxy (`-L socks5://`, `-L http://`) with tunnels asked for by SOCKS5
 * CONNECT or HTTP CONNECT, in one process like the tcp forward. The ss row is a tcp forward chained
 * to a Shadowsocks server (`-F ss://chacha20-ietf-poly1305:…`), client and server processes.
 * `BENCH_IDLE=tcp,ws` measures only those transports (any transport by name: `BENCH_IDLE=tls,wss`).
 */
import type { BenchRow } from "./types.ts";
import { rssKiB, startBurrow, writeAll } from "./proc.ts";
import { REDUCE_CHECK_MS, REFILL_MS } from "../../src/core/memory_reducer.ts";

const N = 1000;
/**
 * Tunnels opened after the first {@link N}, in the first run of a 1,000-tunnel row: their RSS
 * growth each is the marginal cost. The first thousand partly reuse memory that start-up freed and
 * the process kept (a process that imported more modules had more of it: importing types on need
 * raised the first-1,000 figure of the tcp forward from ~13 to ~16 KiB while the process with 1,000
 * tunnels held 11 MiB less; docs/performance.md, "Idle: the first thousand and the next").
 */
const MORE = 1000;
/**
 * The second batch settles at least this long: the memory reducer gives the young generation back
 * twice in a row, then once per {@link REFILL_MS}; start-up and the first batch took those two, so
 * the second batch's young generation is given back only after the refill (read sooner, it
 * counted 6-7 MiB of young generation as tunnel memory: 22.6 KiB each for 500).
 */
const MORE_SETTLE_MS = REFILL_MS + 2 * REDUCE_CHECK_MS;
/**
 * Runs of each 1,000-tunnel row, in fresh processes; the median is reported with the range. One
 * run moves by a few KiB per tunnel on a shared machine (when collections happened, how glibc's
 * arenas grew), as much as what is left to win. `BENCH_IDLE_RUNS=1` for a quick look.
 */
const RUNS = Number(Deno.env.get("BENCH_IDLE_RUNS") ?? 3);
/** The ss row's method (`BENCH_IDLE=ss`): GOST's and shadowsocks' usual AEAD choice. */
const SS_METHOD = "chacha20-ietf-poly1305";
/** Tunnels in the "after use" row, and what each downloads first (not a multiple of any buffer). */
const USED = 200;
const DOWNLOAD = (1 << 20) + 777;

/**
 * A request of {@link REQUEST} bytes starting with "R": the echo answers its first 64-byte read with
 * {@link REPLY} bytes and echoes the rest, so the tunnel carried messages bigger than the relay's
 * first read buffer both ways (1 KiB a direction idle, not 256 bytes).
 */
const REQUEST = 700;
const REPLY = 2000;

/**
 * An echo server holding its conns open; a first byte "D" gets {@link DOWNLOAD} bytes instead, a
 * read starting with "R" {@link REPLY} bytes.
 */
function echo(): { port: number; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const c of l) {
      conns.push(c);
      (async () => {
        const b = new Uint8Array(64);
        for (;;) {
          const n = await c.read(b).catch(() => null);
          if (n === null) {
            c.close(); // as servers do at EOF, so the tunnel's streams end
            break;
          }
          const out = b[0] === 0x44
            ? new Uint8Array(DOWNLOAD)
            : b[0] === 0x52
            ? new Uint8Array(REPLY)
            : b.subarray(0, n);
          await writeAll(c, out).catch(() => {});
        }
      })();
    }
  })().catch(() => {});
  return {
    port: l.addr.port,
    close: () => {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed at EOF */ }
      }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the processes are idle and their RSS has stopped moving: at least `minMs` (a Burrow
 * process gives its young generation back after two quiet 2 s intervals), then until two
 * readings 1 s apart differ by less than 256 KiB (at most 15 s more).
 */
async function settle(pids: number[], minMs = 5000): Promise<void> {
  await sleep(minMs);
  let last = pids.map(rssKiB);
  for (let i = 0; i < 15; i++) {
    await sleep(1000);
    const now = pids.map(rssKiB);
    const still = now.every((v, j) => Math.abs(v - last[j]!) < 256);
    last = now;
    if (still) return;
  }
}

/**
 * One row in fresh processes: warm up, settle, open `n` tunnels that each send `first` and read
 * `want` bytes, settle, and report the RSS growth per tunnel and side (median of `times` runs).
 */
async function measure(
  t: string,
  name: string,
  n: number,
  first: Uint8Array,
  want: number,
  times = n === N ? RUNS : 1,
): Promise<BenchRow> {
  const runs: number[][] = [];
  const more = n === N ? MORE : 0;
  for (let i = 0; i < times; i++) runs.push(await measureOnce(t, n, first, want, i ? 0 : more));
  const sides = more > 0 ? runs[0]!.length / 2 : runs[0]!.length;
  const med = (k: number) => {
    const v = runs.map((r) => r[k]!).sort((a, b) => a - b);
    const m = v[v.length >> 1]!.toFixed(1);
    return v.length > 1 ? `${m} (${v[0]!.toFixed(1)}-${v.at(-1)!.toFixed(1)})` : m;
  };
  const next = (k: number) => more > 0 ? ` [next ${more}: ${runs[0]![sides + k]!.toFixed(1)}]` : "";
  return {
    name,
    note: sides === 1
      ? `${med(0)}${next(0)} KiB each (one process${
        runs.length > 1 ? `; median of ${runs.length}` : ""
      })`
      : `client ${med(0)}${next(0)} KiB, server ${med(1)}${next(1)} KiB each${
        runs.length > 1 ? ` (median of ${runs.length}, range)` : ""
      }`,
  };
}

/** RSS growth per tunnel (KiB) of each process, client first, in fresh processes. */
async function measureOnce(
  t: string,
  n: number,
  first: Uint8Array,
  want: number,
  more = 0,
): Promise<number[]> {
  const e = echo();
  const proxy = t === "socks5" || t === "http";
  const direct = t === "tcp" || proxy;
  // Shadowsocks is a handler, not a transport: its server serves ss, the client chains to it.
  const node = (host: string) =>
    t === "ss" ? `ss://${SS_METHOD}:bench@${host}` : `forward+${t}://${host}`;
  const srv = direct ? undefined : await startBurrow([
    "-L",
    t === "ss" ? node("127.0.0.1:0") : `${node("127.0.0.1:0")}/127.0.0.1:${e.port}`,
  ]);
  const cli = await startBurrow(
    proxy
      ? ["-L", `${t}://127.0.0.1:0`]
      : direct
      ? ["-L", `tcp://127.0.0.1:0/127.0.0.1:${e.port}`]
      : [
        "-L",
        `tcp://127.0.0.1:0/127.0.0.1:${e.port}`,
        "-F",
        node(`127.0.0.1:${srv!.ports[0]}`),
      ],
  );
  const cp = cli.ports[0]!;
  const conns: Deno.Conn[] = [];
  const pids = srv ? [cli.pid, srv.pid] : [cli.pid];
  try {
    // Warm up (sessions, JIT), then measure the baseline.
    const warm = await Deno.connect({ hostname: "127.0.0.1", port: cp });
    conns.push(warm);
    if (proxy) await connectThrough(t, warm, e.port);
    await warm.write(new Uint8Array([1]));
    await warm.read(new Uint8Array(1));
    await settle(pids);
    const c0 = rssKiB(cli.pid), s0 = srv ? rssKiB(srv.pid) : 0;
    const b = new Uint8Array(64 * 1024);
    const open = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port: cp });
        conns.push(c);
        if (proxy) await connectThrough(t, c, e.port);
        await c.write(first);
        for (let got = 0; got < want;) {
          const k = await c.read(b);
          if (k === null) throw new Error(`${t}: tunnel ${conns.length} closed early`);
          got += k;
        }
      }
      await settle(pids, conns.length > n + 1 ? MORE_SETTLE_MS : 5000);
      return srv ? [rssKiB(cli.pid), rssKiB(srv.pid)] : [rssKiB(cli.pid)];
    };
    const base = srv ? [c0, s0] : [c0];
    const at1 = await open(n);
    const out = at1.map((v, k) => (v - base[k]!) / n);
    if (more > 0) (await open(more)).forEach((v, k) => out.push((v - at1[k]!) / more));
    return out;
  } finally {
    for (const c of conns) c.close();
    await cli.stop();
    await srv?.stop();
    e.close();
  }
}

/** Asks the proxy on `c` for a tunnel to 127.0.0.1:`port` (SOCKS5 without auth, or HTTP CONNECT). */
async function connectThrough(t: string, c: Deno.Conn, port: number): Promise<void> {
  const readSome = async (n: number, until?: (b: Uint8Array) => boolean) => {
    const out: number[] = [];
    const b = new Uint8Array(512);
    while (until ? !until(new Uint8Array(out)) : out.length < n) {
      const k = await c.read(b.subarray(0, until ? 1 : n - out.length));
      if (k === null) throw new Error(`${t}: closed during the handshake`);
      out.push(...b.subarray(0, k));
    }
    return new Uint8Array(out);
  };
  if (t === "socks5") {
    await c.write(new Uint8Array([5, 1, 0]));
    await readSome(2);
    await c.write(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]));
    const r = await readSome(10);
    if (r[1] !== 0) throw new Error(`socks5: refused (${r[1]})`);
  } else {
    await c.write(new TextEncoder().encode(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`));
    const head = await readSome(0, (b) => b.length >= 4 && b.at(-1) === 10 && b.at(-3) === 10);
    if (!/^HTTP\/1\.[01] 200/.test(new TextDecoder().decode(head))) {
      throw new Error(`http: refused: ${new TextDecoder().decode(head)}`);
    }
  }
}

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const only = Deno.env.get("BENCH_IDLE")?.split(","); // e.g. BENCH_IDLE=tcp,ws
  // Other transports by name too (`BENCH_IDLE=tls,wss`); these are the default set.
  for (
    const t of only ?? ["tcp", "socks5", "http", "mtcp", "ws", "mws", "kcp", "ss", "tls", "wss"]
  ) {
    rows.push(await measure(t, `idle ${t} tunnel (${N} open)`, N, new Uint8Array([1]), 1));
    if (t === "tcp") {
      // What a tunnel that carried an HTTP-sized exchange costs idle (median of RUNS: single runs
      // of this row read 15.2 and 19.4 KiB on one afternoon).
      const request = new Uint8Array(REQUEST);
      request[0] = 0x52;
      rows.push(
        await measure(
          t,
          `idle tcp tunnel after a ${REQUEST}-byte request, ${REPLY}-byte reply (${N} open)`,
          N,
          request,
          REPLY + REQUEST - 64,
        ),
      );
    }
    rows.push(
      await measure(
        t,
        `idle ${t} tunnel after 1 MiB down (${USED} open)`,
        USED,
        new Uint8Array([0x44]),
        DOWNLOAD,
      ),
    );
  }
  return rows;
}
