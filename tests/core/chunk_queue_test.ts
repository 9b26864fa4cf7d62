/** ChunkQueue: byte-exact partial reads, waiting, end and error from `ended`, counters. */
import assert from "node:assert/strict";
import { ChunkQueue } from "../../src/core/chunk_queue.ts";

Deno.test("chunk queue hands out bytes in order across chunk boundaries", () => {
  const q = new ChunkQueue();
  q.push(new Uint8Array([1, 2, 3]));
  q.push(new Uint8Array(0)); // ignored: no empty chunk to trip over
  q.push(new Uint8Array([4, 5]));
  assert.equal(q.bytes, 5);
  assert.equal(q.length, 2);
  const p = new Uint8Array(2);
  assert.equal(q.take(p), 2);
  assert.deepEqual([...p], [1, 2]);
  assert.equal(q.chunksTaken, 0);
  assert.equal(q.take(p), 2);
  assert.deepEqual([...p], [3, 4]);
  assert.equal(q.chunksTaken, 1);
  assert.equal(q.take(p), 1);
  assert.equal(p[0], 5);
  assert.equal(q.take(p), 0);
  assert.equal(q.bytes, 0);
  assert.equal(q.chunksTaken, 2);
});

Deno.test("chunk queue keeps order over many chunks (head compaction)", () => {
  const q = new ChunkQueue();
  for (let i = 0; i < 3000; i++) q.push(new Uint8Array([i & 0xff]));
  const p = new Uint8Array(1);
  for (let i = 0; i < 2500; i++) {
    assert.equal(q.take(p), 1);
    assert.equal(p[0], i & 0xff);
  }
  q.push(new Uint8Array([7]));
  const rest = new Uint8Array(1000);
  assert.equal(q.take(rest), 501);
  assert.equal(rest[499], 2999 & 0xff);
  assert.equal(rest[500], 7);
});

Deno.test("chunk queue read waits for data, then for the end; ended may throw", async () => {
  const q = new ChunkQueue();
  let done = false;
  const p = new Uint8Array(8);
  const r = q.read(p, () => done);
  q.push(new Uint8Array([9]));
  assert.equal(await r, 1);
  const r2 = q.read(p, () => done);
  done = true;
  q.wake();
  assert.equal(await r2, null);
  q.push(new Uint8Array([1, 2]));
  assert.equal(await q.read(p, () => true), 2, "bytes still queued are read before the end");
  await assert.rejects(
    q.read(p, () => {
      throw new Error("carrier failed");
    }),
    /carrier failed/,
  );
  q.push(new Uint8Array(10));
  assert.equal(q.clear(), 10);
  assert.equal(q.bytes, 0);
});

Deno.test("chunk queue recycles each chunk exactly once: after its last byte is taken, or when dropped", () => {
  const back: Uint8Array[] = [];
  const q = new ChunkQueue((c) => back.push(c));
  const a = new Uint8Array([1, 2, 3]), b = new Uint8Array([4, 5]), c = new Uint8Array([6, 7, 8]);
  q.push(a);
  q.push(b);
  q.push(c);
  const p = new Uint8Array(2);
  assert.equal(q.take(p), 2); // half of a: nothing recycled yet
  assert.equal(back.length, 0);
  assert.equal(q.take(p), 2); // the rest of a, the first byte of b
  assert.deepEqual(p, new Uint8Array([3, 4]));
  assert.equal(back.length, 1);
  assert.equal(back[0]!.buffer, a.buffer);
  assert.equal(q.clear(), 4); // the rest of b and all of c are dropped and recycled
  assert.deepEqual(back.map((x) => x.buffer), [a.buffer, b.buffer, c.buffer]);
  assert.equal(q.clear(), 0);
  assert.equal(back.length, 3, "a second clear recycles nothing");
});
