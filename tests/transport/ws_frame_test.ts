import assert from "node:assert/strict";
import { keyWord, mask, maskWord } from "../../src/transport/ws/frame.ts";

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

Deno.test("ws maskWord: the key as one number masks as the key's bytes do, at any offset, length and key position", () => {
  const key = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
  const word = keyWord(key);
  const wide = new Uint8Array(128);
  for (let i = 0; i < wide.length; i++) wide[i] = (i * 37 + 11) & 0xff;
  for (const off of [0, 1, 2, 3, 6]) {
    for (const len of [0, 1, 3, 15, 16, 17, 33, 100]) {
      for (let pos = 0; pos < 4; pos++) {
        const a = wide.slice();
        const b = wide.slice();
        mask(a.subarray(off, off + len), key, pos);
        maskWord(b.subarray(off, off + len), word, pos);
        assert.deepEqual(b, a, `offset ${off}, length ${len}, key position ${pos}`);
      }
    }
  }
  assert.equal(keyWord(new Uint8Array([9, 0xff, 0xff, 0xff, 0xff]), 1), 0xffffffff);
});
