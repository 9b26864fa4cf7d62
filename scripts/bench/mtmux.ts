/**
 * mtmux: the point of the feature. Each TCP connection goes through a relay that caps it at
 * 4 MB/s (as a per-connection limit on a real path would); one stream pushed through a bundle
 * of N links should approach N × 4 MB/s.
 */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow } from "./proc.ts";

const RATE = 4e6; // bytes per second per connection
const TOTAL = 24 * 1024 * 1024;

/** A TCP relay to `target` that limits every connection to RATE in each direction. */
function cappedRelay(target: number): { port: number; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(16 * 1024);
    let due = performance.now();
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        due = Math.max(due, performance.now()) + (n / RATE) * 1000;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        for (let off = 0; off < n;) off += await to.write(buf.subarray(off, n));
      }
      await to.closeWrite();
    } catch { /* reset */ }
  };
  (async () => {
    for await (const c of l) {
      Deno.connect({ hostname: "127.0.0.1", port: target }).then(async (up) => {
        await Promise.all([pump(c, up), pump(up, c)]);
        c.close();
        up.close();
      }, () => c.close());
    }
  })().catch(() => {});
  return { port: (l.addr as Deno.NetAddr).port, close: () => l.close() };
}

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  let single = 0;
  for (const n of [1, 2, 4, 8]) {
    const sink = countingSink();
    const [sp, cp] = [freePort(), freePort()];
    const srv = await startBurrow(["-L", `mtmux://127.0.0.1:${sp}/127.0.0.1:${sink.port}`], sp);
    const relay = cappedRelay(sp);
    const cli = await startBurrow([
      "-L",
      `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`,
      "-F",
      `forward+mtmux://127.0.0.1:${relay.port}?tunnels=${n}`,
    ], cp);
    try {
      const mbps = await pushThrough(cp, TOTAL, sink.next());
      if (n === 1) single = mbps;
      rows.push({
        name: `mtmux ${n} link${n > 1 ? "s" : ""} (each capped at 4 MB/s)`,
        mbps,
        note: `${(mbps / single).toFixed(1)}x one link`,
      });
    } finally {
      await cli.stop();
      relay.close();
      await srv.stop();
      sink.close();
    }
  }
  return rows;
}
