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
    // Access control on the same hop: rules that do not limit bandwidth add no wrapper, so this
    // row should match the plain forward; a traffic limiter far above the link speed shows what
    // the token-bucket path costs.
    for (
      const [name, query] of [
        [
          "burrow tcp forward + admission, climiter, rlimiter (no bandwidth limit)",
          "admission=~127.0.0.0/8&climiter=100&rlimiter=100",
        ],
        [
          "burrow tcp forward + limiter.in/out=100GB (token buckets, never waiting)",
          "limiter.in=100GB&limiter.out=100GB",
        ],
      ]
    ) {
      const q = freePort();
      const g = await startBurrow(
        ["-L", `tcp://127.0.0.1:${q}/127.0.0.1:${sink.port}?${query}`],
        q,
      );
      try {
        rows.push({ name, mbps: await pushThrough(q, TOTAL, sink.next()) });
      } finally {
        await g.stop();
      }
    }
    // Every service counts its bytes (status, dashboard, metrics); with the metrics endpoint on
    // and scraped every 200 ms during the transfer, this row should match the plain forward.
    const m = freePort();
    const mp = freePort();
    const h = await startBurrow([
      "-L",
      `tcp://127.0.0.1:${m}/127.0.0.1:${sink.port}`,
      "-metrics",
      `127.0.0.1:${mp}`,
    ], m);
    const stop = new AbortController();
    const scraper = (async () => {
      while (!stop.signal.aborted) {
        const r = await fetch(`http://127.0.0.1:${mp}/metrics`).catch(() => undefined);
        await r?.body?.cancel();
        await new Promise((ok) => setTimeout(ok, 200));
      }
    })();
    try {
      rows.push({
        name: "burrow tcp forward, -metrics scraped every 200 ms",
        mbps: await pushThrough(m, TOTAL, sink.next()),
      });
    } finally {
      stop.abort();
      await scraper;
      await h.stop();
    }
  } finally {
    sink.close();
  }
  return rows;
}
