import assert from "node:assert/strict";
import { crc32, FailMarker, type Selectable, Selector } from "../../src/chain/selector.ts";

function nodes(n: number, weights: number[] = []): Selectable[] {
  return Array.from(
    { length: n },
    (_, i) => ({ name: `n${i}`, marker: new FailMarker(), weight: weights[i] ?? 1 }),
  );
}

Deno.test("round robin cycles through candidates", () => {
  const s = new Selector({ strategy: "round" });
  const ns = nodes(3);
  assert.deepEqual(Array.from({ length: 6 }, () => s.select(ns)!.name), [
    "n0",
    "n1",
    "n2",
    "n0",
    "n1",
    "n2",
  ]);
});

Deno.test("fifo always picks the first healthy node (fail-over order)", () => {
  const s = new Selector({ strategy: "fifo", maxFails: 1, failTimeout: "30s" });
  const ns = nodes(3);
  assert.equal(s.select(ns)!.name, "n0");
  ns[0]!.marker.mark();
  assert.equal(s.select(ns)!.name, "n1");
  ns[0]!.marker.reset();
  assert.equal(s.select(ns)!.name, "n0");
});

Deno.test("failed nodes come back after failTimeout; all failed ⇒ one is still returned", () => {
  const s = new Selector({ strategy: "fifo", maxFails: 2, failTimeout: "1s" });
  const ns = nodes(2);
  ns[0]!.marker.mark();
  assert.equal(s.select(ns)!.name, "n0", "one failure is below maxFails=2");
  ns[0]!.marker.mark();
  assert.equal(s.select(ns)!.name, "n1");
  ns[0]!.marker.last = Date.now() - 1500;
  assert.equal(s.select(ns)!.name, "n0", "failTimeout passed");
  ns[0]!.marker.mark();
  ns[1]!.marker.mark(), ns[1]!.marker.mark();
  assert.ok(s.select(ns), "last resort");
});

Deno.test("hash is stable per key (CRC32-IEEE like GOST)", () => {
  assert.equal(crc32("123456789"), 0xcbf43926);
  const s = new Selector({ strategy: "hash" });
  const ns = nodes(5);
  for (const key of ["10.0.0.1", "10.0.0.2", "192.168.1.9"]) {
    const first = s.select(ns, key)!.name;
    for (let i = 0; i < 5; i++) assert.equal(s.select(ns, key)!.name, first);
    assert.equal(first, `n${crc32(key) % 5}`);
  }
});

Deno.test("random honours weights", () => {
  const s = new Selector({ strategy: "rand" });
  const ns = nodes(2, [9, 1]);
  let heavy = 0;
  for (let i = 0; i < 2000; i++) if (s.select(ns)!.name === "n0") heavy++;
  assert.ok(heavy > 1600 && heavy < 1950, `heavy=${heavy}`);
});
