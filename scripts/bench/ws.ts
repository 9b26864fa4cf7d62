/** ws, wss and mws throughput: Burrow client and server as two processes, one stream. */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow } from "./proc.ts";

const TOTAL = 512 * 1024 * 1024;

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const t of ["ws", "wss", "mws", "tls"]) {
    const sink = countingSink();
    const [sp, cp] = [freePort(), freePort()];
    const srv = await startBurrow(["-L", `${t}://127.0.0.1:${sp}/127.0.0.1:${sink.port}`], sp);
    const cli = await startBurrow([
      "-L",
      `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`,
      "-F",
      `forward+${t}://127.0.0.1:${sp}`,
    ], cp);
    try {
      rows.push({
        name: `${t} 1 stream (2 process hops)`,
        mbps: await pushThrough(cp, TOTAL, sink.next()),
      });
    } finally {
      await cli.stop();
      await srv.stop();
      sink.close();
    }
  }
  return rows;
}
