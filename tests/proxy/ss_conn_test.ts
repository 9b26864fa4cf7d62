import assert from "node:assert/strict";
import { pipe } from "../../src/core/pipe.ts";
import { bulkHeldBytes } from "../../src/core/buffer_pool.ts";
import { ConnBase, type NetAddr, NO_ADDR } from "../../src/core/conn.ts";
import { AuthError, ProtocolError } from "../../src/core/errors.ts";
import { aeadSession, SsCipher } from "../../src/protocol/ss_aead.ts";
import { SaltFilter, SsConn } from "../../src/proxy/ss/conn.ts";
import { concatBytes, randomBytes, readAll, ReadSizeSpy, withTimeout } from "../_helpers.ts";

/** Hands out `bytes` in reads of the sizes `splits` cycles through (at most what is asked). */
class SplitSource extends ConnBase {
  readonly localAddr: NetAddr = NO_ADDR;
  readonly remoteAddr: NetAddr = NO_ADDR;
  #off = 0;
  #i = 0;
  reads = 0;
  constructor(readonly bytes: Uint8Array, readonly splits: number[]) {
    super();
  }
  read(p: Uint8Array): Promise<number | null> {
    if (this.#off >= this.bytes.length) return Promise.resolve(null);
    const k = Math.min(
      p.length,
      this.splits[this.#i++ % this.splits.length]!,
      this.bytes.length - this.#off,
    );
    p.set(this.bytes.subarray(this.#off, this.#off + k));
    this.#off += k;
    this.reads++;
    return Promise.resolve(k);
  }
  write(): Promise<number> {
    return Promise.reject(new Error("read-only"));
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

/** The sealed stream of `writes` (one SsConn write each), as it goes over the wire. */
async function sealed(cipher: SsCipher, writes: Uint8Array[]): Promise<Uint8Array> {
  const [a, b] = pipe({ capacity: 64 << 20 });
  const w = new SsConn(a, cipher);
  const got = readAll(b);
  for (const x of writes) await w.write(x);
  await a.closeWrite();
  return await got;
}

/** Both AEAD backends where OpenSSL can be loaded (CI installs it), else node:crypto alone. */
const BACKENDS: ("native" | "node")[] = ["node"];
try {
  aeadSession("aes-128-gcm", new Uint8Array(16), "native");
  BACKENDS.unshift("native");
} catch {
  console.warn("OpenSSL (libcrypto) not usable here: ss streams tested on node:crypto only");
}

for (const backend of BACKENDS) {
  Deno.test(`ss stream (${backend}): writes of any size read back byte-exact through any read sizes, whatever sizes the socket hands the sealed bytes in`, async () => {
    const cipher = new SsCipher("chacha20-ietf-poly1305", "pw", undefined, backend);
    const writes = [1, 100, 16383, 16384, 0, 50_000, 300_000, 7].map((n) => randomBytes(n));
    const want = concatBytes(writes);
    const wire = await sealed(cipher, writes);
    for (
      const [splits, reads] of [
        [[1 << 30], [1 << 18]],
        [[1, 17, 18, 19, 1000, 16417, 70_000], [1, 7, 256, 1024, 20_000, 1 << 18]],
        [[3], [16383, 16384, 16385]],
        [[16417, 16418, 5], [255, 1]],
      ]
    ) {
      const r = new SsConn(new SplitSource(wire, splits), cipher);
      const got = new Uint8Array(want.length + 1);
      let off = 0;
      for (let i = 0;; i++) {
        const want = reads[i % reads.length]!;
        const n = await r.read(got.subarray(off, Math.min(got.length, off + want)));
        if (n === null) break;
        assert.ok(n <= want);
        off += n;
      }
      assert.equal(off, want.length, `splits ${splits}, reads ${reads}`);
      assert.deepEqual(got.subarray(0, off), want, `splits ${splits}, reads ${reads}`);
    }
  });

  Deno.test(`ss stream (${backend}): a big reader takes many chunks per socket read (1 MiB in a handful of reads, not two per 16 KiB chunk)`, async () => {
    const cipher = new SsCipher("aes-128-gcm", "pw", undefined, backend);
    const data = randomBytes(1 << 20);
    const wire = await sealed(cipher, [data]);
    const src = new ReadSizeSpy(new SplitSource(wire, [1 << 30]));
    const r = new SsConn(src, cipher);
    const buf = new Uint8Array(256 * 1024);
    const got: Uint8Array[] = [];
    for (;;) {
      const n = await r.read(buf);
      if (n === null) break;
      got.push(buf.slice(0, n));
    }
    assert.deepEqual(new Uint8Array(got.flatMap((g) => [...g])), data);
    // Salt, then ~4 reads of 256 KiB of sealed bytes (+ tails): 65 chunks took 130 reads before.
    assert.ok(src.sizes.length <= 10, `${src.sizes.length} socket reads`);
    assert.ok(got.length <= 6, `${got.length} reads returned`);
  });

  Deno.test(`ss stream (${backend}): a cut-off chunk is a protocol error, a wrong password an authentication error; a read waiting between chunks holds no buffer of the conn's, one waiting mid-chunk gives its buffer up on close`, async () => {
    const cipher = new SsCipher("aes-256-gcm", "pw", undefined, backend);
    const wire = await sealed(cipher, [randomBytes(40_000)]);
    const cut = new SsConn(new SplitSource(wire.subarray(0, wire.length - 5), [4096]), cipher);
    await assert.rejects(
      readAll(cut),
      (e: unknown) => e instanceof ProtocolError && /truncated/.test(String(e)),
    );
    const wrong = new SsConn(
      new SplitSource(wire, [4096]),
      new SsCipher("aes-256-gcm", "other", undefined, backend),
    );
    await assert.rejects(readAll(wrong), AuthError);

    const [a, b] = pipe({ capacity: 1 << 20 });
    const w = new SsConn(a, cipher);
    const r = new SsConn(b, cipher);
    const before = bulkHeldBytes();
    await w.write(randomBytes(100));
    const buf = new Uint8Array(1024);
    assert.equal(await withTimeout(r.read(buf), 2000), 100);
    const waiting = r.read(buf);
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(bulkHeldBytes(), before, "between chunks: nothing held while the read waits");
    // Half a big chunk: the rest is awaited in a pooled buffer, which close gives up.
    const [c, d] = pipe({ capacity: 1 << 20 });
    const r2 = new SsConn(d, cipher);
    const raw = await sealed(cipher, [randomBytes(16000)]);
    await c.write(raw.subarray(0, raw.length - 100));
    const mid = r2.read(new Uint8Array(1024));
    await new Promise((res) => setTimeout(res, 10));
    assert.ok(bulkHeldBytes() > before, "mid-chunk: the tail waits in a pooled buffer");
    r2.close();
    assert.equal(await withTimeout(mid.catch(() => null), 2000), null);
    assert.equal(bulkHeldBytes(), before, "close gave it up");
    r.close();
    assert.equal(await withTimeout(waiting.catch(() => null), 2000), null);
    for (const x of [a, b, c, d]) x.close();
  });

  Deno.test(`ss stream (${backend}): zero-length chunks (a peer's empty writes) in a big chunk's pending buffer leave nothing held, and the end reads as the end`, async () => {
    const cipher = new SsCipher("chacha20-ietf-poly1305", "pw", undefined, backend);
    const before = bulkHeldBytes();
    for (const writes of [[0], [0, 0, 5], [20_000, 0], [0, 20_000, 0, 0]]) {
      const data = writes.map((n) => randomBytes(n));
      const wire = await sealed(cipher, data);
      const r = new SsConn(new SplitSource(wire, [1 << 30]), cipher);
      const got: number[] = [];
      const buf = new Uint8Array(16);
      for (;;) {
        const n = await r.read(buf);
        if (n === null) break;
        got.push(...buf.subarray(0, n));
      }
      assert.equal(await r.read(buf), null, `${writes}: the end again`);
      assert.deepEqual(new Uint8Array(got), new Uint8Array(data.flatMap((d) => [...d])));
      assert.equal(bulkHeldBytes(), before, `${writes}: nothing held at the end`);
    }
  });

  Deno.test(`ss stream (${backend}): a chunk that fails its tag after good ones: the good bytes are read first, then every read fails, and nothing stays held`, async () => {
    const cipher = new SsCipher("aes-128-gcm", "pw", undefined, backend);
    const before = bulkHeldBytes();
    const a = randomBytes(100), b = randomBytes(100);
    const wire = await sealed(cipher, [a, b]);
    wire[wire.length - 1]! ^= 1; // the second chunk's payload tag
    const r = new SsConn(new SplitSource(wire, [1 << 30]), cipher);
    const buf = new Uint8Array(4096);
    assert.equal(await r.read(buf), 100);
    assert.deepEqual(buf.subarray(0, 100), a);
    await assert.rejects(r.read(buf), AuthError);
    await assert.rejects(r.read(buf), AuthError);
    assert.equal(bulkHeldBytes(), before);
  });
}

Deno.test({
  name:
    "ss AEAD on OpenSSL: seals byte for byte what node:crypto seals (every method, payloads of 0 to 16,383 bytes, nonces advancing), opens node's chunks in place into an earlier offset, and refuses a bad tag without advancing its nonce",
  ignore: !BACKENDS.includes("native"),
  fn: () => {
    for (const alg of ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"] as const) {
      const key = randomBytes(alg === "aes-128-gcm" ? 16 : 32);
      const native = aeadSession(alg, key, "native"), node = aeadSession(alg, key, "node");
      const opener = aeadSession(alg, key, "native");
      for (const n of [0, 1, 2, 15, 16, 17, 1000, 16383]) {
        const plain = randomBytes(n);
        const a = new Uint8Array(n + 16), b = new Uint8Array(n + 16);
        assert.equal(native.seal(plain, a, 0), n + 16);
        node.seal(plain, b, 0);
        assert.deepEqual(a, b, `${alg}, ${n} bytes`);
        // In place, 40 bytes behind where the plaintext goes (a reader's buffer).
        const buf = new Uint8Array(40 + n + 16);
        buf.set(b, 40);
        if (n > 0) {
          const bad = b.slice();
          bad[0]! ^= 1;
          assert.throws(() => opener.open(bad), AuthError, `${alg}, ${n} bytes: tampered`);
        }
        assert.equal(opener.openTo(buf.subarray(40), buf, 0), n);
        assert.deepEqual(buf.subarray(0, n), plain, `${alg}, ${n} bytes: opened in place`);
      }
    }
  },
});

Deno.test("ss stream: after a write fails, later writes fail too and seal nothing (the peer's view of the stream is unknown)", async () => {
  const { WrappedConn } = await import("../../src/core/conn.ts");
  /** Fails its second write (the first carries the salt), then would take anything. */
  class FlakyOnce extends WrappedConn {
    writes = 0;
    override write(p: Uint8Array): Promise<number> {
      if (++this.writes === 2) return Promise.reject(new Error("reset"));
      return super.write(p);
    }
  }
  const [a, b] = pipe({ capacity: 1 << 20 });
  const flaky = new FlakyOnce(a);
  const w = new SsConn(flaky, new SsCipher("aes-128-gcm", "pw"));
  await assert.rejects(w.write(randomBytes(100)), /reset/);
  await assert.rejects(w.write(randomBytes(100)), /reset/);
  assert.equal(flaky.writes, 2, "nothing more went to the socket");
  a.close();
  b.close();
});

Deno.test({
  name:
    "ss AEAD on OpenSSL refuses what node:crypto refuses instead of writing past a view: an output too small to seal or open into, a key of the wrong length, a chunk shorter than its tag",
  ignore: !BACKENDS.includes("native"),
  fn: () => {
    const key = randomBytes(16);
    const s = aeadSession("aes-128-gcm", key, "native");
    const big = new Uint8Array(200);
    assert.throws(() => s.seal(randomBytes(100), big.subarray(0, 50), 0), RangeError);
    assert.ok(big.subarray(50).every((b) => b === 0), "nothing written past the view");
    assert.throws(() => aeadSession("aes-256-gcm", key, "native"), RangeError);
    const sealed = new Uint8Array(116);
    aeadSession("aes-128-gcm", key, "node").seal(randomBytes(100), sealed, 0);
    const o = aeadSession("aes-128-gcm", key, "native");
    assert.throws(() => o.openTo(sealed, big.subarray(0, 50), 0), RangeError);
    assert.ok(big.subarray(50).every((b) => b === 0), "nothing written past the view");
    assert.throws(() => o.open(new Uint8Array(10)), AuthError);
  },
});

Deno.test("ss salt filter: a salt is refused while it is among the last `max` accepted and forgotten oldest first (a ring; 2,000 random salts against a model)", () => {
  for (const max of [1, 3, 7]) {
    const f = new SaltFilter(max);
    const model: number[] = [];
    for (let n = 0; n < 2000; n++) {
      const v = Math.floor(Math.random() * (2 * max + 2));
      const fresh = !model.includes(v);
      assert.equal(f.add(new Uint8Array([v])), fresh, `max ${max}, step ${n}, salt ${v}`);
      if (fresh) {
        model.push(v);
        if (model.length > max) model.shift();
      }
    }
  }
});
