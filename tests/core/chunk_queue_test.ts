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

Deno.test("chunk queue ready: pending while empty, then resolves for bytes, for the end, and when ended throws", async () => {
  const q = new ChunkQueue();
  let state: "open" | "ended" | "failed" = "open";
  const ended = () => {
    if (state === "failed") throw new Error("carrier failed");
    return state === "ended";
  };
  let fired = false;
  const r = q.ready(ended).then(() => (fired = true));
  await new Promise((res) => setTimeout(res, 0));
  assert.equal(fired, false, "nothing queued: still waiting");
  q.push(new Uint8Array([7]));
  await r;
  assert.equal(q.bytes, 1, "ready takes nothing");
  q.take(new Uint8Array(1));
  const r2 = q.ready(ended);
  state = "ended";
  q.wake();
  await r2;
  state = "failed";
  await q.ready(ended); // resolves: the read that follows reports the failure
  await assert.rejects(q.read(new Uint8Array(1), ended), /carrier failed/);
});
