/**
 * Shadowsocks throughput, per AEAD method, one connection pushing data client → server → sink:
 * Burrow's ss connector → Burrow's ss handler (two processes), and, when shadowsocks-libev is
 * installed, the real peers in the same run: ss-tunnel → ss-server (the yardstick), Burrow's
 * client → ss-server, ss-tunnel → Burrow's server. The pairings take turns (`BENCH_REPS`, default
 * 3) and each ratio is the median of the per-turn ratios to the libev pair, so a slow spell on a
 * shared machine hits all of them alike (as `deno task bench peers` does).
 */
import type { BenchRow } from "./types.ts";
import {
  countingSink,
  freePort,
  pushThrough,
  spawned,
  startBurrow,
  waitListening,
} from "./proc.ts";

const TOTAL = 128 * 1024 * 1024;
const REPS = Number(Deno.env.get("BENCH_REPS") ?? 3);
const METHODS = ["aes-128-gcm", "chacha20-ietf-poly1305"];

type End = "burrow" | "libev";
const PAIRS: [End, End][] = [["libev", "libev"], ["burrow", "burrow"], ["burrow", "libev"], [
  "libev",
  "burrow",
]];

function has(cmd: string): boolean {
  return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" }).outputSync()
    .success;
}

/** One pairing, one push: MB/s. */
async function push(m: string, client: End, server: End): Promise<number> {
  const sink = countingSink();
  const sp = freePort();
  const cp = freePort();
  const stops: (() => Promise<void>)[] = [];
  try {
    if (server === "libev") {
      stops.push(
        spawned("ss-server", ["-s", "127.0.0.1", "-p", `${sp}`, "-k", "bench", "-m", m]),
      );
      await waitListening(sp);
    } else {
      stops.push((await startBurrow(["-L", `ss://${m}:bench@127.0.0.1:${sp}`], sp)).stop);
    }
    if (client === "libev") {
      stops.push(spawned("ss-tunnel", [
        ...["-s", "127.0.0.1", "-p", `${sp}`, "-b", "127.0.0.1", "-l", `${cp}`],
        ...["-k", "bench", "-m", m, "-L", `127.0.0.1:${sink.port}`],
      ]));
      await waitListening(cp);
    } else {
      const target = `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`;
      stops.push(
        (await startBurrow(["-L", target, "-F", `ss://${m}:bench@127.0.0.1:${sp}`], cp)).stop,
      );
    }
    return await pushThrough(cp, TOTAL, sink.next());
  } finally {
    for (const s of stops.reverse()) await s();
    sink.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const libev = has("ss-server") && has("ss-tunnel");
  for (const m of METHODS) {
    const pairs = libev ? PAIRS : PAIRS.filter(([c, s]) => c === "burrow" && s === "burrow");
    const runs = new Map<string, number[]>(pairs.map((p) => [p.join(), []]));
    for (let turn = 0; turn < (libev ? REPS : 1); turn++) {
      for (const [c, s] of pairs) runs.get(`${c},${s}`)!.push(await push(m, c, s));
    }
    const yardstick = runs.get("libev,libev");
    for (const [c, s] of pairs) {
      const mbps = runs.get(`${c},${s}`)!;
      const ratio = yardstick && !(c === "libev" && s === "libev")
        ? `; ${median(mbps.map((x, i) => x / yardstick[i]!)).toFixed(2)}× the libev pair`
        : "";
      rows.push({
        name: `ss ${m}: ${c} client → ${s} server`,
        mbps: median(mbps),
        note: `median of ${mbps.length}${ratio}`,
      });
    }
    if (!libev) rows.push({ name: `ss ${m} vs shadowsocks-libev`, note: "libev not installed" });
  }
  return rows;
}
