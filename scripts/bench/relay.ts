/** Baselines: raw TCP, and a Burrow TCP forward hop running in its own process. */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow } from "./proc.ts";

const TOTAL = 1024 * 1024 * 1024;

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const sink = countingSink();
  try {
    rows.push({ name: "raw TCP (no hop)", mbps: await pushThrough(sink.port, TOTAL, sink.next()) });
    const p = freePort();
    const b = await startBurrow(["-L", `tcp://127.0.0.1:${p}/127.0.0.1:${sink.port}`], p);
    try {
      // startBurrow's readiness probe made one (empty) connection through to the sink.
      rows.push({
        name: "burrow tcp forward (1 process hop)",
        mbps: await pushThrough(p, TOTAL, sink.next()),
      });
    } finally {
      await b.stop();
    }
  } finally {
    sink.close();
  }
  return rows;
}
