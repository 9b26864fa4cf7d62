/** Baselines: raw TCP, and a Burrow TCP forward hop running in its own process. */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow, writeAll } from "./proc.ts";
import { goPeer, startListeningPeer } from "../peers/build.ts";

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
    rows.push(...await roundTrips());
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

/** Message sizes of the request/response rows: one small read, two, and more than 1 KiB. */
const RT_SIZES = [100, 700, 2000];
const RT_COUNT = 2000;

/**
 * Request/response latency: one message each way at a time, to an echo server directly and through
 * a Burrow tcp forward; µs per round trip (median of three runs of {@link RT_COUNT}). Catches what
 * throughput rows miss, such as a message leaving a hop as two segments.
 */
export async function roundTrips(): Promise<BenchRow[]> {
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const c of echo) {
      conns.push(c);
      (async () => {
        const b = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await c.read(b).catch(() => null);
          if (n === null) break;
          await writeAll(c, b.subarray(0, n)).catch(() => {});
        }
        c.close();
      })();
    }
  })().catch(() => {});
  const measure = async (port: number): Promise<number[]> => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.setNoDelay(true);
    const rb = new Uint8Array(64 * 1024);
    const out: number[] = [];
    try {
      for (const size of RT_SIZES) {
        const msg = new Uint8Array(size).fill(7);
        const run = async (k: number) => {
          const t0 = performance.now();
          for (let i = 0; i < k; i++) {
            await writeAll(c, msg);
            for (let got = 0; got < size;) got += (await c.read(rb))!;
          }
          return ((performance.now() - t0) * 1000) / k;
        };
        await run(200); // warm-up
        const r = [await run(RT_COUNT), await run(RT_COUNT), await run(RT_COUNT)];
        out.push(Math.round(r.sort((a, b) => a - b)[1]!));
      }
    } finally {
      c.close();
    }
    return out;
  };
  const rows: BenchRow[] = [];
  try {
    rows.push({
      name: "round trips, raw TCP to an echo (no hop)",
      note:
        `${RT_SIZES.join(" / ")} B messages: ${(await measure(echo.addr.port)).join(" / ")} µs ` +
        `(median of 3 × ${RT_COUNT})`,
    });
    const bin = await goPeer("tunnel", "github.com/xtaci/smux");
    const go = bin
      ? await startListeningPeer(bin, [
        "-mode",
        "server",
        "-proto",
        "tcp",
        "-target",
        `127.0.0.1:${echo.addr.port}`,
      ])
      : null;
    const b = await startBurrow(["-L", `tcp://127.0.0.1:0/127.0.0.1:${echo.addr.port}`]);
    try {
      // One after the other in the same run (the echo and the client are shared).
      const ours = await measure(b.ports[0]!);
      const theirs = go ? await measure(go.port) : null;
      rows.push({
        name: "round trips through a burrow tcp forward",
        note: `${ours.join(" / ")} µs` +
          (theirs
            ? `; Go forward (GOST's copy loop) ${theirs.join(" / ")}; ratio ${
              ours.map((o, i) => (theirs[i]! / o).toFixed(2) + "x").join(" / ")
            }`
            : " (no Go peer: go or xtaci/smux missing)"),
      });
    } finally {
      await b.stop();
      await go?.stop();
    }
  } finally {
    echo.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed at EOF */ }
    }
  }
  return rows;
}
