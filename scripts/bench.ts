/**
 * `deno task bench`: runs every benchmark module and prints one table.
 * `deno task bench <filter>` runs only modules whose name contains the filter.
 */
import type { BenchModule, BenchRow } from "./bench/types.ts";

const modules: [string, () => Promise<{ default: BenchModule }>][] = [
  ["relay", () => import("./bench/relay.ts")],
  ["mtcp", () => import("./bench/mtcp.ts")],
  ["ws", () => import("./bench/ws.ts")],
  ["kcp", () => import("./bench/kcp.ts")],
  ["ss", () => import("./bench/ss.ts")],
  ["mtmux", () => import("./bench/mtmux.ts")],
  ["idle", () => import("./bench/idle.ts")],
  ["peers", () => import("./bench/peers.ts")],
  // -- more modules: one line each --
];

const filter = Deno.args[0] ?? "";
const rows: BenchRow[] = [];
for (const [name, load] of modules) {
  if (filter && !name.includes(filter)) continue;
  const mod = await load();
  try {
    rows.push(...await mod.default());
  } catch (e) {
    rows.push({ name, note: `failed: ${e instanceof Error ? e.message : e}` });
  }
}
const w = Math.max(10, ...rows.map((r) => r.name.length));
console.log(`| ${"benchmark".padEnd(w)} |     MB/s | note`);
console.log(`|${"-".repeat(w + 2)}|---------:|------`);
for (const r of rows) {
  const mb = r.mbps === undefined ? "" : r.mbps.toFixed(1);
  console.log(`| ${r.name.padEnd(w)} | ${mb.padStart(8)} | ${r.note ?? ""}`);
}
