import assert from "node:assert/strict";
import { pipe } from "../../src/core/pipe.ts";
import { copy, relay } from "../../src/core/relay.ts";
import { WrappedConn } from "../../src/core/conn.ts";
import {
  randomBytes,
  readAll,
  ReadSizeSpy,
  RoomSpy,
  sha256,
  withTimeout,
  writeChunks,
} from "../_helpers.ts";

Deno.test("relay copies both ways byte-exact and propagates half-close", async () => {
  const [client, a] = pipe();
  const [b, server] = pipe();
  const done = relay(a, b);
  const up = randomBytes(1 << 20);
  const down = randomBytes(300_000);
  const serverSide = (async () => {
    const got = await readAll(server);
    await writeChunks(server, down);
    await server.closeWrite();
    return got;
  })();
  await writeChunks(client, up, 7000);
  await client.closeWrite();
  const back = await readAll(client);
  const got = await withTimeout(serverSide, 5000);
  assert.equal(await sha256(got), await sha256(up));
  assert.equal(await sha256(back), await sha256(down));
  const r = await withTimeout(done, 5000);
  assert.equal(r.aToB, up.length);
  assert.equal(r.bToA, down.length);
  assert.equal(r.error, undefined);
});

Deno.test("relay closes both sides when one side fails", async () => {
  const [client, a] = pipe();
  const [b, server] = pipe();
  const done = relay(a, b);
  await client.write(new Uint8Array([1, 2, 3]));
  const buf = new Uint8Array(3);
  assert.equal(await server.read(buf), 3);
  server.close(); // the upstream dies: the next write towards it fails
  await client.write(new Uint8Array([4]));
  const r = await withTimeout(done, 2000);
  assert.ok(r.error instanceof Error);
  assert.equal(await withTimeout(client.read(buf), 2000), null);
});

Deno.test("relay: under the keep budget a burst's big buffer stays for the next one; over it, it goes back when the source runs dry, so the read that waits holds its small buffer (1 KiB once a read filled 256 bytes), and the next burst resumes at the size reached", async () => {
  const { BULK_KEEP_BUDGET, bulkHeldBytes, giveBulk, takeBulk } = await import(
    "../../src/core/buffer_pool.ts"
  );
  const [source, a0] = pipe({ capacity: 8 << 20 });
  const [b, sink] = pipe({ capacity: 8 << 20 });
  const a = new ReadSizeSpy(a0);
  const done = relay(a, b);
  const drain = async (n: number) => {
    const buf = new Uint8Array(1 << 20);
    for (let got = 0; got < n;) got += (await sink.read(buf))!;
    await new Promise((r) => setTimeout(r, 0)); // let the copy loop issue its next read
  };
  // A burst of 2 MiB + 100 already waiting: reads fill their buffers, then the tail comes short.
  // Under the budget the 256 KiB buffer stays: the waiting read holds it (no extra small read).
  await source.write(randomBytes((2 << 20) + 100));
  await withTimeout(drain((2 << 20) + 100), 5000);
  assert.equal(Math.max(...a.sizes), 256 * 1024, "the buffer grew to 256 KiB during the burst");
  assert.equal(a.sizes.at(-1), 256 * 1024, "under the budget the big buffer is kept");
  // Other conns hold more than the budget now.
  const others: Uint8Array[] = [];
  while (bulkHeldBytes() <= BULK_KEEP_BUDGET) others.push(takeBulk(256 * 1024));
  try {
    await source.write(randomBytes((1 << 20) + 100));
    await withTimeout(drain((1 << 20) + 100), 5000);
    assert.equal(
      a.sizes.at(-1),
      1024,
      `the waiting read holds the small buffer (${a.sizes.at(-1)})`,
    );
    const before = a.sizes.length;
    // (A burst whose last read is within 1/64 of full keeps the big buffer until the next read.)
    await source.write(randomBytes((1 << 20) + 5000));
    await withTimeout(drain((1 << 20) + 5000), 5000);
    assert.deepEqual(a.sizes.slice(before - 1, before + 1), [1024, 256 * 1024], "back to 256 KiB");
    assert.equal(a.sizes.at(-1), 1024);
    // Small messages stay small.
    const mark = a.sizes.length;
    for (let i = 0; i < 10; i++) {
      await source.write(randomBytes(100));
      await withTimeout(drain(100), 5000);
    }
    assert.ok(a.sizes.slice(mark).every((s) => s === 1024), `${a.sizes.slice(mark)}`);
  } finally {
    for (const o of others) giveBulk(o);
  }
  source.close();
  sink.close();
  await withTimeout(done, 5000);
  assert.equal(bulkHeldBytes(), 0, "every bulk buffer was given back or dropped");
});

Deno.test("relay: a socket's reads wait in 256 bytes until one fills it; then in 1 KiB for good, so a bigger message is one read again, whatever the keep budget", async () => {
  const { BULK_KEEP_BUDGET, bulkHeldBytes, giveBulk, takeBulk } = await import(
    "../../src/core/buffer_pool.ts"
  );
  const [source, a0] = pipe({ capacity: 1 << 20 });
  const [b, sink] = pipe({ capacity: 1 << 20 });
  const a = new ReadSizeSpy(a0);
  const done = relay(a, b);
  const buf = new Uint8Array(8192);
  /** The sizes of the reads that carried one message (the one waiting for it first). */
  const message = async (size: number) => {
    const before = a.sizes.length;
    await source.write(randomBytes(size));
    for (let got = 0; got < size;) got += (await withTimeout(sink.read(buf), 5000))!;
    await new Promise((r) => setTimeout(r, 0)); // the copy loop issues its next read
    return a.sizes.slice(before - 1, -1);
  };
  assert.deepEqual(await message(100), [256], "small messages: one read in 256 bytes");
  assert.deepEqual(await message(255), [256]);
  assert.deepEqual(await message(700), [256, 1024], "the first bigger one fills it");
  assert.deepEqual(await message(700), [1024], "from then on one read");
  assert.deepEqual(await message(100), [1024], "and the conn waits in 1 KiB");
  // Over the keep budget (other conns hold grown buffers) nothing changes for these sizes.
  const others: Uint8Array[] = [];
  while (bulkHeldBytes() <= BULK_KEEP_BUDGET) others.push(takeBulk(256 * 1024));
  try {
    assert.deepEqual(await message(1000), [1024]);
  } finally {
    for (const o of others) giveBulk(o);
  }
  source.close();
  sink.close();
  await withTimeout(done, 5000);
});

Deno.test("relay: a burst already queued grows the buffer ×4 with each bulk read that fills it to the byte (256 KiB by the ninth read); the small buffer still takes four full reads first", async () => {
  const [source, a0] = pipe({ capacity: 4 << 20 });
  const [b, sink] = pipe({ capacity: 4 << 20 });
  const a = new ReadSizeSpy(a0);
  const data = randomBytes(2 << 20);
  await source.write(data); // all of it queued before the first read
  await source.closeWrite();
  const done = relay(a, b);
  const got = await withTimeout(readAll(sink), 10_000);
  assert.equal(await sha256(got), await sha256(data));
  sink.close();
  await withTimeout(done, 5000);
  const k = 1024;
  assert.deepEqual(
    a.sizes.slice(0, 10),
    [256, k, k, k, k, 4 * k, 16 * k, 64 * k, 256 * k, 256 * k],
    "one read per step once bulk (four per step held 64 KiB reads while short ones came between)",
  );
});

Deno.test("relay: a conn that says maxChunk (a KCP stream) caps the relay's buffers both ways; bufferSize still overrides", async () => {
  class Capped extends WrappedConn {
    override get maxChunk(): number {
      return 64 * 1024;
    }
  }
  for (const bufferSize of [undefined, 128 * 1024]) {
    const [source, a0] = pipe({ capacity: 4 << 20 });
    const [b0, sink] = pipe({ capacity: 4 << 20 });
    const a = new ReadSizeSpy(a0), b = new ReadSizeSpy(new Capped(b0));
    const data = randomBytes(2 << 20);
    const back = randomBytes(1 << 20);
    await source.write(data);
    await source.closeWrite();
    await sink.write(back);
    await sink.closeWrite();
    const done = relay(a, b, { bufferSize });
    const [got, gotBack] = await withTimeout(Promise.all([readAll(sink), readAll(source)]), 10_000);
    assert.equal(await sha256(got), await sha256(data));
    assert.equal(await sha256(gotBack), await sha256(back));
    await withTimeout(done, 5000);
    const cap = bufferSize ?? 64 * 1024;
    for (const spy of [a, b]) {
      assert.equal(Math.max(...spy.sizes), cap, `${bufferSize}: reads reach the cap, no further`);
    }
  }
});

Deno.test("relay: a first read buffer left behind (a conn's messages outgrew it, or the relay ended) is reused by the next relay, not left as garbage", async () => {
  /** A relay that carries `size` bytes one way, then ends; its spies on both sides. */
  const run = async (size: number) => {
    const [source, a0] = pipe({ capacity: 1 << 20 });
    const [b0, sink] = pipe({ capacity: 1 << 20 });
    const a = new ReadSizeSpy(a0), b = new ReadSizeSpy(b0);
    const done = relay(a, b);
    await source.write(randomBytes(size));
    const buf = new Uint8Array(4096);
    for (let got = 0; got < size;) got += (await withTimeout(sink.read(buf), 5000))!;
    source.close();
    sink.close();
    await withTimeout(done, 5000);
    return { a, b, firsts: [a.buffers[0], b.buffers[0]] };
  };
  const promoted = await run(700); // a's 256 bytes are left at its first full read, b's at the end
  assert.deepEqual(promoted.a.sizes.slice(0, 2), [256, 1024]);
  const next = await run(10);
  assert.equal(next.a.sizes[0], 256);
  for (const f of next.firsts) {
    assert.ok(promoted.firsts.includes(f), "the next relay reads in the buffers the last one left");
  }
});

Deno.test("relay: into a conn that frames its writes (WebSocket), bulk reads land after the room it asks for and go out of the relay's own buffer, not a copy; small reads take the plain write; every byte arrives", async () => {
  const [source, a0] = pipe({ capacity: 1 << 20 });
  const [b0, sink] = pipe({ capacity: 1 << 20 });
  const a = new ReadSizeSpy(a0), b = new RoomSpy(b0);
  const done = relay(a, b);
  const data = randomBytes(4 << 20);
  const received = readAll(sink);
  await writeChunks(source, data, 65536);
  await source.closeWrite();
  const got = await withTimeout(received, 10_000);
  assert.equal(await sha256(got), await sha256(data));
  sink.close();
  const r = await withTimeout(done, 5000);
  assert.equal(r.aToB, data.length);
  assert.ok(b.plain > 0, "the first, small reads are plain writes");
  assert.ok(b.inPlace.length > 0, "bulk reads are written in place");
  for (const w of b.inPlace) {
    assert.ok(a.buffers.includes(w.buffer), "an in-place write is the relay's read buffer");
  }
  // The room comes on top: bulk reads still ask for whole burst sizes.
  const bulkReads = a.sizes.filter((n) => n > 1024);
  assert.ok(bulkReads.length > 0 && bulkReads.every((n) => n % 1024 === 0), `${bulkReads}`);
});

Deno.test("relay: a source that hands over 32 KiB at a time (WebSocket frames) into a framing conn is read a chunk per read, one frame out per chunk in, and the buffer grows past the chunk size", async () => {
  const chunk = 32 * 1024, count = 128;
  /** Hands out `count` chunks, at most one per read (a frame's payload at a time). */
  class Frames extends WrappedConn {
    sent = 0;
    left = 0;
    sizes: number[] = [];
    override read(p: Uint8Array): Promise<number | null> {
      this.sizes.push(p.length);
      if (this.left === 0) {
        if (this.sent === count) return Promise.resolve(null);
        this.sent++;
        this.left = chunk;
      }
      const k = Math.min(p.length, this.left);
      p.fill(this.sent & 0xff, 0, k);
      this.left -= k;
      return Promise.resolve(k);
    }
  }
  const [x, unused] = pipe();
  const [b0, sink] = pipe({ capacity: 1 << 20 });
  const a = new Frames(x), b = new RoomSpy(b0);
  const done = relay(a, b);
  const got = await withTimeout(readAll(sink), 10_000);
  assert.equal(got.length, chunk * count);
  for (let i = 0; i < count; i++) assert.equal(got[i * chunk + chunk - 1], (i + 1) & 0xff);
  sink.close();
  unused.close();
  await withTimeout(done, 5000);
  // The first reads (256 B, 1 KiB, 4 KiB, 16 KiB buffers) split the first chunks; then one each.
  const writes = b.plain + b.inPlace.length;
  assert.ok(writes <= count + 40, `${writes} writes for ${count} chunks`);
  assert.ok(Math.max(...a.sizes) >= 64 * 1024, `largest read ${Math.max(...a.sizes)}`);
});

Deno.test("relay: forty relays at once, messages around the small buffers' sizes, into sinks that take the bytes a turn late: every byte arrives intact (no buffer is given back while a write holds it)", async () => {
  /** Copies the caller's bytes only after 3 ms, as a conn that is slow to take them. */
  class LateSink extends WrappedConn {
    override async write(p: Uint8Array): Promise<number> {
      await new Promise((r) => setTimeout(r, 3));
      return super.write(p);
    }
  }
  const sizes = [1, 100, 255, 256, 257, 700, 1023, 1024, 1025, 3000];
  await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    await new Promise((r) => setTimeout(r, i)); // relays start while others' writes are pending
    const [source, a] = pipe({ capacity: 1 << 20 });
    const [b0, sink] = pipe({ capacity: 1 << 20 });
    const done = relay(a, new LateSink(b0));
    const sent: Uint8Array[] = [];
    const writer = (async () => {
      for (let k = 0; k < 12; k++) {
        const m = randomBytes(sizes[(i + k) % sizes.length]!);
        sent.push(m);
        await source.write(m);
        await new Promise((r) => setTimeout(r, (i + k) % 3)); // interleave the relays
      }
      await source.closeWrite();
    })();
    const got = await withTimeout(readAll(sink), 10_000);
    await writer;
    const want = new Uint8Array(sent.reduce((n, m) => n + m.length, 0));
    let off = 0;
    for (const m of sent) want.set(m, off), off += m.length;
    assert.equal(await sha256(got), await sha256(want), `relay ${i}: bytes differ`);
    source.close();
    sink.close();
    await withTimeout(done, 5000);
  }));
});

Deno.test("relay and copy refuse a buffer size under one byte (it would read 0 bytes forever) instead of spinning", async () => {
  const [a, x] = pipe();
  const [b, y] = pipe();
  for (const bufferSize of [0, -1, NaN]) {
    await assert.rejects(withTimeout(relay(a, b, { bufferSize }), 2000), RangeError);
  }
  await assert.rejects(withTimeout(copy(a, b, new Uint8Array(0)), 2000), RangeError);
  a.close(), b.close(), x.close(), y.close();
});

Deno.test("relay: a conn whose close throws makes the relay reject, not throw (as an async function would)", async () => {
  const [a, x] = pipe();
  const [b, y] = pipe();
  a.close = () => {
    throw new Error("close failed");
  };
  const ac = new AbortController();
  ac.abort();
  let p: Promise<unknown> | undefined;
  assert.doesNotThrow(() => (p = relay(a, b, { signal: ac.signal })));
  await assert.rejects(p!, /close failed/);
  x.close(), y.close(), b.close();
});
