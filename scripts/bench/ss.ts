/** Shadowsocks throughput: our ss connector → our ss handler (two processes), per AEAD method. */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow } from "./proc.ts";

const TOTAL = 256 * 1024 * 1024;

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const m of ["aes-128-gcm", "chacha20-ietf-poly1305"]) {
    const sink = countingSink();
    const [sp, cp] = [freePort(), freePort()];
    const srv = await startBurrow(["-L", `ss://${m}:bench@127.0.0.1:${sp}`], sp);
    const cli = await startBurrow([
      "-L",
      `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`,
      "-F",
      `ss://${m}:bench@127.0.0.1:${sp}`,
    ], cp);
    try {
      rows.push({ name: `ss ${m} (2 processes)`, mbps: await pushThrough(cp, TOTAL, sink.next()) });
    } finally {
      await cli.stop();
      await srv.stop();
      sink.close();
    }
  }
  return rows;
}
