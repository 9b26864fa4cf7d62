import assert from "node:assert/strict";
import { mask } from "../../src/transport/ws/frame.ts";

Deno.test("ws mask: word path equals the bytewise definition at every alignment, key position and length", () => {
  const key = new Uint8Array([0x12, 0x34, 0xab, 0xcd]);
  const backing = crypto.getRandomValues(new Uint8Array(200));
  for (let off = 0; off < 4; off++) {
    for (let pos = 0; pos < 4; pos++) {
      for (const n of [0, 1, 3, 15, 16, 17, 18, 19, 64, 101, 150]) {
        const data = backing.slice().subarray(off, off + n);
        const want = data.map((b, i) => b ^ key[(pos + i) & 3]!);
        mask(data, key, pos);
        assert.deepEqual(data, want, `offset ${off}, pos ${pos}, length ${n}`);
      }
    }
  }
});
