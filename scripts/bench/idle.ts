/**
 * What an idle tunnel costs: RSS of a Burrow client and server process before and after 1,000
 * tunnels are opened (one byte each way, then idle), per transport. Divided by 1,000: KiB per
 * idle tunnel on each side. GC is not forced, so numbers include garbage not yet collected.
 * `BENCH_IDLE=tcp,ws` measures only those transports.
 */
import type { BenchRow } from "./types.ts";
import { freePort, rssKiB, startBurrow } from "./proc.ts";

const N = 1000;

/** An echo server holding its conns open. */
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
          if (n === null) break;
          await c.write(b.subarray(0, n)).catch(() => {});
        }
      })();
    }
  })().catch(() => {});
  return {
    port: l.addr.port,
    close: () => {
      l.close();
      for (const c of conns) c.close();
    },
  };
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1500));
}

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const only = Deno.env.get("BENCH_IDLE")?.split(","); // e.g. BENCH_IDLE=tcp,ws
  for (const t of ["tcp", "mtcp", "ws", "mws", "kcp"]) {
    if (only && !only.includes(t)) continue;
    const e = echo();
    const [sp, cp] = [freePort(), freePort()];
    const direct = t === "tcp";
    const srv = direct
      ? undefined
      : await startBurrow(["-L", `forward+${t}://127.0.0.1:${sp}/127.0.0.1:${e.port}`], sp);
    const cli = await startBurrow(
      direct ? ["-L", `tcp://127.0.0.1:${cp}/127.0.0.1:${e.port}`] : [
        "-L",
        `tcp://127.0.0.1:${cp}/127.0.0.1:${e.port}`,
        "-F",
        `forward+${t}://127.0.0.1:${sp}`,
      ],
      cp,
    );
    const conns: Deno.Conn[] = [];
    try {
      // Warm up (sessions, JIT), then measure the baseline.
      const warm = await Deno.connect({ hostname: "127.0.0.1", port: cp });
      await warm.write(new Uint8Array([1]));
      await warm.read(new Uint8Array(1));
      await settle();
      const c0 = rssKiB(cli.pid), s0 = srv ? rssKiB(srv.pid) : 0;
      for (let i = 0; i < N; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port: cp });
        conns.push(c);
        await c.write(new Uint8Array([1]));
        await c.read(new Uint8Array(1));
      }
      await settle();
      const c1 = rssKiB(cli.pid), s1 = srv ? rssKiB(srv.pid) : 0;
      const per = (a: number, b: number) => ((b - a) / N).toFixed(1);
      rows.push({
        name: `idle ${t} tunnel (${N} open)`,
        note: direct
          ? `${per(c0, c1)} KiB each (one process; rss ${Math.round(c1 / 1024)} MiB)`
          : `client ${per(c0, c1)} KiB, server ${per(s0, s1)} KiB each (rss ${
            Math.round(c1 / 1024)
          } / ${Math.round(s1 / 1024)} MiB)`,
      });
      warm.close();
    } finally {
      for (const c of conns) c.close();
      await cli.stop();
      await srv?.stop();
      e.close();
    }
  }
  return rows;
}
