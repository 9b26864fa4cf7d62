/**
 * mtcp (smux v2 over TCP) throughput, Burrow client and server as two processes: one stream
 * and 8 streams at once with Burrow's default windows, and one stream with xtaci's 64 KiB window
 * (a v2 stream is window/RTT bound).
 */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow } from "./proc.ts";

const TOTAL = 512 * 1024 * 1024;

async function run(query: string, label: string, streams: number[]): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const sink = countingSink();
  const [sp, cp] = [freePort(), freePort()];
  const srv = await startBurrow(
    ["-L", `mtcp://127.0.0.1:${sp}/127.0.0.1:${sink.port}${query}`],
    sp,
  );
  const cli = await startBurrow([
    "-L",
    `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`,
    "-F",
    `forward+mtcp://127.0.0.1:${sp}${query}`,
  ], cp);
  try {
    for (const n of streams) {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: n }, () => pushThrough(cp, TOTAL / n, sink.next())));
      const mbps = TOTAL / 1e6 / ((performance.now() - t0) / 1000);
      rows.push({
        name: `mtcp ${n} stream${n > 1 ? "s" : ""}${label}`,
        mbps,
        note: n > 1 ? "aggregate" : "",
      });
    }
  } finally {
    await cli.stop();
    await srv.stop();
    sink.close();
  }
  return rows;
}

export default async function (): Promise<BenchRow[]> {
  return [
    ...await run("", " (default: 512 KiB window, shrinking with streams)", [1, 8]),
    ...await run("?mux.maxStreamBuffer=65536", " (xtaci's fixed 64 KiB window)", [1]),
  ];
}
