import assert from "node:assert/strict";
import { createCrypt, deriveKey } from "../../src/kcp/crypt/mod.ts";
import { crc32, Envelope } from "../../src/kcp/envelope.ts";

const fromHex = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));
const KCP = fromHex("4433221151008000e803000000000000000000000500000068656c6c6f");

Deno.test("envelope CRC vectors (docs/kcp.md §4.4)", () => {
  assert.equal(crc32(KCP), 0x054acaab);
  assert.equal(
    crc32(
      fromHex("00000000f1001f00" + "4433221151008000e803000000000000000000000500000068656c6c6f"),
    ),
    0xb5c4b3bd,
  );
});

Deno.test("envelope seal/open round trip for aes with FEC; a flipped bit is dropped", () => {
  const key = deriveKey("it's a secrect");
  const tx = new Envelope(createCrypt("aes", key), 10, 3);
  const rx = new Envelope(createCrypt("aes", key), 10, 3);
  const [pkt] = tx.seal(tx.frame(KCP));
  assert.equal(pkt!.length, 20 + 8 + KCP.length);
  const bad = pkt!.slice();
  bad[30] ^= 1;
  assert.equal(rx.open(bad), null);
  assert.equal(rx.dropped, 1);
  const o = rx.open(pkt!.slice());
  assert.deepEqual(o?.kcp, KCP);
  // A receiver with another key sees only garbage and drops it.
  const other = new Envelope(createCrypt("aes", deriveKey("wrong")), 10, 3);
  assert.equal(other.open(tx.seal(tx.frame(KCP))[0]!), null);
});
