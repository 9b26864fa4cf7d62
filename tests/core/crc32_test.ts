import assert from "node:assert/strict";
import { crc32, crc32c } from "../../src/core/crc32.ts";

/** Bit-at-a-time reference: no tables to share a mistake with. */
function slow(poly: number, b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

Deno.test("crc32 and crc32c: check values of '123456789'", () => {
  const b = new TextEncoder().encode("123456789");
  assert.equal(crc32(b), 0xcbf43926);
  assert.equal(crc32c(b), 0xe3069283);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("crc32 and crc32c (slicing-by-8) agree with a bitwise reference at every length and offset", () => {
  const b = crypto.getRandomValues(new Uint8Array(300));
  for (let n = 0; n <= 40; n++) {
    for (let from = 0; from < 10; from++) {
      const s = b.subarray(0, from + n);
      assert.equal(crc32(s, from), slow(0xedb88320, s.subarray(from)), `crc32 n=${n} from=${from}`);
    }
    assert.equal(crc32c(b.subarray(0, n)), slow(0x82f63b78, b.subarray(0, n)), `crc32c n=${n}`);
  }
  assert.equal(crc32(b), slow(0xedb88320, b));
  assert.equal(crc32c(b), slow(0x82f63b78, b));
});

Deno.test("crc32: the native path and the tables agree on random data at every offset", async () => {
  const { crc32, crc32Tables } = await import("../../src/core/crc32.ts");
  for (let n = 0; n < 300; n += 7) {
    const b = crypto.getRandomValues(new Uint8Array(n));
    for (const from of [0, 1, 8, Math.max(0, n - 1)]) {
      if (from > n) continue;
      if (crc32(b, from) !== crc32Tables(b, from)) {
        throw new Error(`differs at n=${n} from=${from}`);
      }
    }
  }
});
