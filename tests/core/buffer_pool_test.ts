import assert from "node:assert/strict";
import { BufferPool } from "../../src/core/buffer_pool.ts";

Deno.test("BufferPool: buffers come back and are reused; foreign buffers, double gives and overflow are ignored", () => {
  const pool = new BufferPool(64, 2);
  const a = pool.take(10);
  assert.equal(a.length, 10);
  assert.equal(a.buffer.byteLength, 64);
  pool.give(a.subarray(3)); // any view of the buffer hands it back
  assert.equal(pool.freeCount, 1);
  pool.give(a); // twice: still once in the free list
  assert.equal(pool.freeCount, 1);
  const b = pool.take(20);
  assert.equal(b.buffer, a.buffer, "reused");
  const c = pool.take(20);
  assert.notEqual(c.buffer, b.buffer, "never handed out twice while in use");
  pool.give(new Uint8Array(64)); // same size, not ours
  assert.equal(pool.freeCount, 0);
  const big = pool.take(65);
  assert.equal(big.buffer.byteLength, 65, "larger than the pool's size: a plain buffer");
  pool.give(big);
  assert.equal(pool.freeCount, 0);
  const d = pool.take(1);
  pool.give(b), pool.give(c), pool.give(d);
  assert.equal(pool.freeCount, 2, "at most maxFree kept");
});
