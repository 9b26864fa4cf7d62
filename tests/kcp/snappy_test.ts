import assert from "node:assert/strict";
import { crc32c } from "../../src/core/crc32.ts";
import { compressBlock, decompressBlock, maskedCrc, SnappyConn } from "../../src/kcp/snappy.ts";
import { pipe } from "../../src/core/pipe.ts";
import { randomBytes, readAll, sha256, withTimeout } from "../_helpers.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const te = new TextEncoder();

Deno.test("snappy checksums and block vectors (docs/kcp.md §7.5)", () => {
  assert.equal(crc32c(te.encode("123456789")), 0xe3069283);
  assert.equal(maskedCrc(te.encode("hello")), 0x191c1fbb);
  assert.equal(hex(compressBlock(te.encode("hello"))), "051068656c6c6f");
  assert.equal(hex(compressBlock(te.encode("a".repeat(100)))), "640061fe01008a0100");
  assert.equal(
    hex(compressBlock(te.encode("hello hello hello hello hello!"))),
    "1e1468656c6c6f205a06000021",
  );
  assert.equal(
    new TextDecoder().decode(
      decompressBlock(
        new Uint8Array([
          0x1e,
          0x14,
          0x68,
          0x65,
          0x6c,
          0x6c,
          0x6f,
          0x20,
          0x5a,
          0x06,
          0x00,
          0x00,
          0x21,
        ]),
      ),
    ),
    "hello hello hello hello hello!",
  );
});

Deno.test("snappy block round trips on mixed data; corrupt input is an error, not a crash", () => {
  for (const n of [0, 1, 16, 17, 100, 4096, 65536]) {
    const d = new Uint8Array(n);
    for (let i = 0; i < n; i++) d[i] = i % 7 === 0 ? i & 0xff : (i * 31) % 13;
    assert.deepEqual(decompressBlock(compressBlock(d)), d);
    const r = randomBytes(n);
    assert.deepEqual(decompressBlock(compressBlock(r)), r);
  }
  for (
    const bad of [[5, 0x10, 1, 2], [10, 0x01, 0xff], [3, 0x09, 0x05, 0x00, 0x00], [
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0x0f,
    ]]
  ) {
    assert.throws(() => decompressBlock(new Uint8Array(bad)), /snappy/);
  }
});

Deno.test("snappy framing: the kcptun byte vector, and a byte-exact stream through SnappyConn", async () => {
  const [a, b] = pipe();
  const w = new SnappyConn(a);
  await w.write(te.encode("hello"));
  await w.write(te.encode("a".repeat(100)));
  await a.closeWrite();
  assert.equal(
    hex(await readAll(b)),
    "ff060000734e61507059" + "01090000bb1f1c1968656c6c6f" + "000d00001fa8b5fd640061fe01008a0100",
  );

  const [c, d] = pipe();
  const wc = new SnappyConn(c);
  const rd = new SnappyConn(d);
  const data = randomBytes(300_000);
  data.fill(7, 1000, 90_000); // something compressible too
  const got = readAll(rd);
  for (let i = 0; i < data.length; i += 32768) await wc.write(data.subarray(i, i + 32768));
  await wc.closeWrite();
  assert.equal(await sha256(await withTimeout(got, 5000)), await sha256(data));
});

Deno.test("snappy framing: a corrupt checksum is refused", async () => {
  const [a, b] = pipe();
  await a.write(
    new Uint8Array([
      0xff,
      6,
      0,
      0,
      ...te.encode("sNaPpY"),
      0x01,
      9,
      0,
      0,
      0,
      0,
      0,
      0,
      ...te.encode("hello"),
    ]),
  );
  await assert.rejects(new SnappyConn(b).read(new Uint8Array(10)), /checksum/);
  a.close();
});
