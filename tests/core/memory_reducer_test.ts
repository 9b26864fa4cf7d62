import assert from "node:assert/strict";
import v8 from "node:v8";
import { startMemoryReducer } from "../../src/core/memory_reducer.ts";

const young = () =>
  v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")!.space_size;

/** Many objects that survive a young collection or two: what makes V8 grow its young generation. */
function burst(): void {
  const keep: unknown[] = [];
  for (let i = 0; i < 3e6; i++) {
    const o = { a: i, b: [i] };
    if (i % 3 === 0) keep.push(o);
    if (keep.length > 100_000) keep.splice(0, 50_000);
  }
}

/** Allocates `objects` small objects every 10 ms for `ms`, with timers running in between. */
async function busy(ms: number, objects: number): Promise<void> {
  const end = Date.now() + ms;
  let sink: unknown[] = [];
  while (Date.now() < end) {
    sink = Array.from({ length: objects }, (_, i) => ({ i }));
    await new Promise((res) => setTimeout(res, 10));
  }
  assert.ok(sink.length > 0);
}

async function until(f: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return f();
}

Deno.test("memory reducer: after a burst, a quiet interval gives the young generation back", async () => {
  const seen: [number, number][] = [];
  const r = startMemoryReducer({ checkMs: 100, onReduce: (a, b) => seen.push([a, b]) });
  try {
    burst();
    const grown = young();
    assert.ok(grown > 8 << 20, `the burst grew the young generation (${grown})`);
    assert.ok(await until(() => r.stats.runs > 0, 5_000), "a collection ran once quiet");
    const [a, b] = seen[0]!;
    assert.ok(b < a / 4, `it shrank: ${a} → ${b}`);
    assert.ok(young() < grown / 4);
    // Quiet and small: no second collection.
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(r.stats.runs, 1);
  } finally {
    r.stop();
  }
});

Deno.test("memory reducer: never collects while the process is busy", async () => {
  const r = startMemoryReducer({ checkMs: 100, youngBytes: 0, quietBytes: 1 << 20 });
  try {
    await busy(800, 40_000); // ~2 MB every 10 ms for eight intervals
    assert.equal(r.stats.runs, 0, "busy: no collection");
    assert.equal(r.stats.trims, 0, "busy: no trim");
    // The same reducer does collect once quiet, so the assertion above could have failed.
    assert.ok(await until(() => r.stats.runs > 0, 3_000), "quiet: a collection");
  } finally {
    r.stop();
  }
});

Deno.test("memory reducer: a young generation that keeps growing back gets two collections, then one per refill period", async () => {
  const r = startMemoryReducer({ checkMs: 50, refillMs: 60_000 });
  try {
    for (let i = 0; i < 4; i++) {
      const seen = r.stats.runs + r.stats.limited;
      burst();
      assert.ok(await until(() => r.stats.runs + r.stats.limited > seen, 5_000), `round ${i}`);
    }
    assert.equal(r.stats.runs, 2);
    assert.ok(r.stats.limited >= 2);
  } finally {
    r.stop();
  }
});

Deno.test("memory reducer: the first quiet interval after a busy one hands the allocator's free memory back, once", async () => {
  if (Deno.build.os !== "linux") return console.log("skipped: malloc_trim is glibc's");
  (await import("node:v8")).setFlagsFromString("--expose-gc");
  const gc = (await import("node:vm")).runInNewContext("gc");
  // Buffers of 16 KiB come from malloc's arenas; keeping every 16th one fragments them, so the
  // freed rest stays resident until a trim.
  let bufs: Uint8Array[] | null = [];
  for (let i = 0; i < 4096; i++) bufs.push(new Uint8Array(16 * 1024).fill(1));
  const keep = bufs.filter((_, i) => i % 16 === 0);
  bufs = null;
  gc(); // a full collection (Deno's gc takes no options)
  const seen: [number, number][] = [];
  const at: number[] = [];
  const r = startMemoryReducer({
    checkMs: 100,
    trimEveryMs: 4000,
    // When each trim began (its rate limit counts from there; a trim itself takes ~20 ms).
    onTrim: (a, b, ms) => (seen.push([a, b]), at.push(performance.now() - ms)),
  });
  try {
    assert.ok(await until(() => r.stats.trims > 0, 3_000), "a trim once quiet");
    const [a, b] = seen[0]!;
    assert.ok(a - b > 24 << 20, `the freed buffers went back: ${a >> 20} → ${b >> 20} MiB`);
    // Quiet since: no second trim.
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(r.stats.trims, 1, "one trim per quiet spell");
    // Busy again (~4 MB per 10 ms, past the 4 MiB per interval that counts as quiet), then
    // quiet: one more.
    await busy(400, 80_000);
    assert.ok(await until(() => r.stats.trims === 2, 3_000), "a busy spell, then another trim");
    // Two in a row; a third waits for the bucket: trimEveryMs after the first.
    await busy(400, 80_000);
    assert.ok(await until(() => r.stats.trims === 3, 5_000), "and after another, one more");
    const gap = at[2]! - at[0]!;
    // (Less a few ms: the limit counts from just before the RSS read that precedes a trim.)
    assert.ok(gap >= 3990, `the third no sooner than trimEveryMs after the first (${gap} ms)`);
  } finally {
    r.stop();
  }
  assert.equal(keep.length, 256);
});
