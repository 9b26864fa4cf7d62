/**
 * mtcp (smux v2 over TCP) throughput, Burrow client and server as two processes: one stream
 * with the default 64 KiB stream window and with a 1 MiB one (a v2 stream is window/RTT bound),
 * and 8 streams at once.
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
    ...await run("", " (default 64 KiB window)", [1, 8]),
    ...await run("?mux.maxStreamBuffer=1048576", " (mux.maxStreamBuffer=1MiB)", [1]),
  ];
}
