import assert from "node:assert/strict";
import {
  clientSession,
  serverSession,
  type SmuxSession,
  type SmuxStream,
} from "../../src/mux/smux/mod.ts";
import {
  CMD_FIN,
  CMD_NOP,
  CMD_PSH,
  CMD_SYN,
  CMD_UPD,
  encodeFrame,
  encodeUpd,
} from "../../src/mux/smux/frame.ts";
import { pipe } from "../../src/core/pipe.ts";
import { BufReader } from "../../src/core/bufio.ts";
import { readFull } from "../../src/core/conn.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { smuxConfigFromMetadata } from "../../src/mux/smux/config.ts";
import {
  concatBytes,
  echoConn,
  randomBytes,
  readAll,
  sendThrough,
  settle,
  sha256,
  until,
  withTimeout,
  writeChunks,
} from "../_helpers.ts";
import { runConnSuite } from "../conformance/conn_suite.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("smux frame vectors (docs/smux.md §1.3)", () => {
  assert.equal(hex(encodeFrame(1, CMD_SYN, 3)), "01 00 00 00 03 00 00 00");
  assert.equal(hex(encodeFrame(1, CMD_FIN, 2)), "01 01 00 00 02 00 00 00");
  assert.equal(hex(encodeFrame(1, CMD_NOP, 0)), "01 03 00 00 00 00 00 00");
  assert.equal(
    hex(encodeFrame(2, CMD_PSH, 3, new TextEncoder().encode("hi"))),
    "02 02 02 00 03 00 00 00 68 69",
  );
  assert.equal(
    hex(encodeFrame(2, CMD_UPD, 3, encodeUpd(2, 2 << 20))),
    "02 04 08 00 03 00 00 00 02 00 00 00 00 00 20 00",
  );
});

Deno.test("mux.* metadata parses with per-component default version; bad values name the key", () => {
  const c = smuxConfigFromMetadata(
    new Metadata({ "mux.keepaliveInterval": "5s", "mux.maxStreamBuffer": "131072" }),
    2,
  );
  assert.equal(c.version, 2);
  assert.equal(c.keepAliveInterval, 5000);
  assert.equal(c.maxStreamBuffer, 131072);
  assert.throws(
    () => smuxConfigFromMetadata(new Metadata({ "mux.version": "3" }, "l.metadata"), 1),
    (e: unknown) =>
      e instanceof ConfigError && /l\.metadata\.mux\.version: expected 1 or 2/.test(e.message),
  );
  assert.throws(
    () => smuxConfigFromMetadata(new Metadata({ "mux.maxFrameSize": "70000" }), 1),
    /maxFrameSize/,
  );
  assert.throws(
    () => smuxConfigFromMetadata(new Metadata({ "mux.keepaliveTimeout": "1s" }), 1),
    /keepaliveTimeout/,
  );
});

function pair(
  version: number,
  extra: Record<string, number | boolean> = {},
): [SmuxSession, SmuxSession] {
  const [a, b] = pipe({ capacity: 1 << 20 });
  return [clientSession(a, { version, ...extra }), serverSession(b, { version, ...extra })];
}

/** Echoes every stream `session` accepts until it closes. */
async function serveEcho(session: SmuxSession): Promise<void> {
  const tasks: Promise<void>[] = [];
  for (;;) {
    const s = await session.acceptStream();
    if (!s) break;
    tasks.push(echoConn(s));
  }
  await Promise.all(tasks);
}

for (const version of [1, 2]) {
  Deno.test(`smux v${version}: 32 concurrent streams echo 256 KiB each byte-exact`, async () => {
    const [cli, srv] = pair(version);
    const serving = (async () => {
      const tasks: Promise<void>[] = [];
      for (;;) {
        const s = await srv.acceptStream();
        if (!s) break;
        tasks.push((async () => {
          const buf = new Uint8Array(10000);
          for (;;) {
            const n = await s.read(buf);
            if (n === null) break;
            await s.write(buf.subarray(0, n));
          }
          await s.closeWrite();
          s.close();
        })());
      }
      await Promise.all(tasks);
    })();
    try {
      await withTimeout(
        Promise.all(Array.from({ length: 32 }, async (_, i) => {
          const s = await cli.openStream();
          assert.equal(s.id, 3 + 2 * i);
          const data = randomBytes(256 * 1024);
          const [, got] = await Promise.all([
            writeChunks(s, data, 7777).then(() => s.closeWrite()),
            readAll(s),
          ]);
          assert.equal(await sha256(got), await sha256(data));
          s.close();
        })),
        20_000,
      );
    } finally {
      cli.close();
      srv.close();
      await serving;
      await cli.closed;
      await srv.closed;
    }
  });
}

Deno.test("smux v2: a stalled stream buffers at most its window and does not block another stream", async () => {
  const [cli, srv] = pair(2, { maxStreamBuffer: 65536 });
  try {
    const stalled = await cli.openStream();
    const live = await cli.openStream();
    const sStalled = (await srv.acceptStream())!;
    const sLive = (await srv.acceptStream())!;
    let written = 0;
    const writer = (async () => {
      const chunk = new Uint8Array(16384);
      for (;;) {
        await stalled.write(chunk);
        written += chunk.length;
      }
    })().catch(() => {});
    // Initial peer window is 256 KiB (protocol constant): the writer stops there.
    await settle(() => written);
    assert.ok(written >= 32768 && written <= 262144, `wrote ${written}`);
    assert.ok(sStalled.buffered <= 262144);
    await sendThrough(live, sLive, 1 << 20);
    cli.close();
    await writer;
  } finally {
    cli.close();
    srv.close();
  }
});

Deno.test("smux v2: windows shrink as streams are added, so stalled streams cannot starve a live one", async () => {
  // Without the shrinking, 8 stalled streams × 512 KiB windows would overfill the 1 MiB
  // session buffer: the read loop would stop, and with it every other stream.
  const [cli, srv] = pair(2, { maxReceiveBuffer: 1 << 20, maxStreamBuffer: 512 * 1024 });
  try {
    const stalled = await Promise.all(Array.from({ length: 8 }, () => cli.openStream()));
    const live = await cli.openStream();
    const accepted: SmuxStream[] = [];
    for (let i = 0; i < 9; i++) accepted.push((await srv.acceptStream())!);
    const sLive = accepted[8]!;
    // The window updates arrive (the protocol's initial window is a fixed 256 KiB).
    await until(() => accepted.every((s) => s.window <= (1 << 20) / 18), 5000, "shrunk windows");
    const writers = stalled.map((s) =>
      (async () => {
        const chunk = new Uint8Array(16384);
        for (;;) await s.write(chunk);
      })().catch(() => {})
    );
    // The stalled streams fill their windows first.
    const held = await settle(() => accepted.slice(0, 8).reduce((n, s) => n + s.buffered, 0));
    assert.ok(held >= 8 * 16384, `stalled streams hold ${held}`);
    await sendThrough(live, sLive, 1 << 20, "live stream starved");
    // A single stream on a fresh session gets the whole configured window.
    const [c2, s2] = pair(2, { maxReceiveBuffer: 1 << 20, maxStreamBuffer: 512 * 1024 });
    const one = await c2.openStream();
    const peer = (await s2.acceptStream())!;
    assert.equal(peer.window, 512 * 1024);
    one.close();
    c2.close();
    s2.close();
    cli.close();
    await Promise.all(writers);
  } finally {
    cli.close();
    srv.close();
  }
});

Deno.test("smux v1: session receive buffer bounds memory when a reader stalls", async () => {
  const [cli, srv] = pair(1, { maxReceiveBuffer: 256 * 1024, maxStreamBuffer: 65536 });
  try {
    const s = await cli.openStream();
    const peer = (await srv.acceptStream())!;
    let written = 0;
    const writer = (async () => {
      const chunk = new Uint8Array(32768);
      for (;;) {
        await s.write(chunk);
        written += chunk.length;
      }
    })().catch(() => {});
    await settle(() => written);
    // Bucket (256 KiB) + one frame + the pipe's 1 MiB capacity + a batch in flight.
    assert.ok(peer.buffered >= 128 * 1024, `buffered only ${peer.buffered}: the writer never ran`);
    assert.ok(peer.buffered <= 256 * 1024 + 32768, `buffered ${peer.buffered}`);
    assert.ok(written < 2 << 20, `writer ran ahead: ${written}`);
    cli.close();
    await writer;
  } finally {
    cli.close();
    srv.close();
  }
});

Deno.test("smux keepalive: a silent peer is declared dead", async () => {
  const [a, b] = pipe();
  const s = clientSession(a, { version: 2, keepAliveInterval: 50, keepAliveTimeout: 150 });
  try {
    await withTimeout(s.closed, 2000, "keepalive close");
    assert.ok(s.isClosed);
    assert.match(String(s.error?.message), /keepalive timeout/);
  } finally {
    s.close();
    b.close();
  }
});

Deno.test("smux bad input: wrong version or unknown command closes the session; data for unknown streams is dropped", async () => {
  for (
    const bad of [
      encodeFrame(1, CMD_SYN, 3),
      encodeFrame(2, 9, 3),
      encodeFrame(2, CMD_NOP, 0, new Uint8Array(4)),
      encodeFrame(2, CMD_UPD, 3, new Uint8Array(3)),
    ]
  ) {
    const [a, b] = pipe();
    const srv = serverSession(b, { version: 2 });
    await a.write(bad);
    await withTimeout(srv.closed, 2000, `closes on ${hex(bad)}`);
    assert.equal(await srv.acceptStream(), null);
    a.close();
  }
  // Unknown stream data is skipped and the session goes on.
  const [a, b] = pipe();
  const srv = serverSession(b, { version: 2 });
  try {
    await a.write(encodeFrame(2, CMD_PSH, 99, new Uint8Array(100)));
    await a.write(encodeFrame(2, CMD_SYN, 3));
    await a.write(encodeFrame(2, CMD_PSH, 3, new Uint8Array([1, 2, 3])));
    const s = (await withTimeout(srv.acceptStream(), 2000))!;
    const buf = new Uint8Array(10);
    assert.equal(await s.read(buf), 3);
    assert.deepEqual([...buf.subarray(0, 3)], [1, 2, 3]);
    assert.equal(srv.isClosed, false);
  } finally {
    srv.close();
    a.close();
  }
});

Deno.test("smux v2: a burst of streams past the session buffer cannot deadlock echoing peers", async () => {
  // 8 streams × the protocol's initial 256 KiB window = 2 MiB in flight against a 512 KiB
  // session buffer. A read loop that stopped on the full buffer would also stop the UPD frames
  // the echo writers wait for.
  const [cli, srv] = pair(2, { maxReceiveBuffer: 512 * 1024, maxStreamBuffer: 256 * 1024 });
  const echo = serveEcho(srv);
  try {
    const runs = Array.from({ length: 8 }, async () => {
      const st = await cli.openStream();
      const data = randomBytes(1 << 20);
      const [, got] = await Promise.all([
        writeChunks(st, data).then(() => st.closeWrite()),
        readAll(st),
      ]);
      assert.equal(await sha256(got), await sha256(data));
      st.close();
    });
    await withTimeout(Promise.all(runs), 20_000, "echo deadlock");
  } finally {
    cli.close();
    srv.close();
    await echo;
  }
});

Deno.test("smux v2: when streams close, the survivors' windows grow without stalling them", async () => {
  // The receiver must update after half of the window the sender *believes*, not half of the
  // larger window it would grant now (that threshold is never reached: a stall).
  const [cli, srv] = pair(2, { maxReceiveBuffer: 1 << 20, maxStreamBuffer: 512 * 1024 });
  try {
    const opened = await Promise.all(Array.from({ length: 8 }, () => cli.openStream()));
    const accepted = [];
    for (let i = 0; i < 8; i++) accepted.push((await srv.acceptStream())!);
    const [keep, sKeep] = [opened[0]!, accepted[0]!];
    await until(() => sKeep.window <= 64 * 1024, 5000, `window ${sKeep.window} shrinking`);
    // Some traffic first, so that the next update is not the first-read one.
    const warm = randomBytes(100_000);
    await Promise.all([keep.write(warm), readFull(sKeep, new Uint8Array(warm.length))]);
    for (let i = 1; i < 8; i++) {
      opened[i]!.close();
      accepted[i]!.close();
    }
    await new Promise((r) => setTimeout(r, 50));
    await sendThrough(keep, sKeep, 4 << 20, "survivor stalled");
    assert.equal(sKeep.window, 512 * 1024);
  } finally {
    cli.close();
    srv.close();
  }
});

Deno.test("smux v2: 200 streams opening, echoing and closing in waves never stall or trip the window check", async () => {
  const [cli, srv] = pair(2, { maxReceiveBuffer: 1 << 20 });
  const echo = serveEcho(srv);
  try {
    // Waves of streams of different sizes, so windows shrink and grow while data flows.
    const run = async (i: number) => {
      await new Promise((r) => setTimeout(r, (i % 10) * 5));
      const st = await cli.openStream();
      const data = randomBytes(1000 + ((i * 7919) % 200_000));
      const [, got] = await Promise.all([
        writeChunks(st, data, 7000).then(() => st.closeWrite()),
        readAll(st),
      ]);
      assert.equal(got.length, data.length);
      assert.equal(await sha256(got), await sha256(data));
      st.close();
    };
    await withTimeout(Promise.all(Array.from({ length: 200 }, (_, i) => run(i))), 30_000, "waves");
    assert.equal(cli.isClosed, false);
    assert.equal(srv.isClosed, false);
  } finally {
    cli.close();
    srv.close();
    await echo;
  }
});

Deno.test("smux v2: a peer that sends past its window is a protocol error, not unbounded memory", async () => {
  const [a, b] = pipe();
  const srv = serverSession(b, { version: 2, maxStreamBuffer: 65536 });
  try {
    await a.write(encodeFrame(2, CMD_SYN, 3));
    const s = (await withTimeout(srv.acceptStream(), 2000))!;
    // Never read: the peer may send 256 KiB (initial window) plus a frame of slack, no more.
    const frame = encodeFrame(2, CMD_PSH, 3, new Uint8Array(32768));
    const writer = (async () => {
      for (let i = 0; i < 12; i++) await a.write(frame);
    })().catch(() => {});
    await withTimeout(srv.closed, 2000, "session closes on a window violation");
    assert.match(String(srv.error), /past its window/);
    assert.ok(s.buffered <= 256 * 1024 + 32768);
    a.close();
    await writer;
  } finally {
    srv.close();
    a.close();
  }
});

for (const version of [1, 2]) {
  runConnSuite(`smux v${version} stream`, async () => {
    const [cli, srv] = pair(version);
    const a = await cli.openStream();
    await a.write(new Uint8Array(0));
    const [b] = await Promise.all([srv.acceptStream()]);
    return {
      a,
      b: b!,
      cleanup: async () => {
        cli.close();
        srv.close();
        await cli.closed;
        await srv.closed;
      },
    };
  }, { maxBuffered: version === 1 ? 6 << 20 : 2 << 20 });
}

for (const version of [1, 2]) {
  Deno.test(`smux v${version}: closing the session settles a FIN still queued for a finished stream`, async () => {
    // Peer `a` never reads and the pipe is already full, so our write loop blocks on its first
    // batch: the stream's FIN, queued after the peer's FIN, is still waiting when we close.
    const [a, b] = pipe({ capacity: 1 });
    await b.write(new Uint8Array(1));
    const srv = serverSession(b, { version, keepAliveDisabled: true });
    await a.write(encodeFrame(version, CMD_SYN, 3));
    const s = (await withTimeout(srv.acceptStream(), 2000))!;
    const w = s.write(new Uint8Array(10)).catch(() => {});
    await a.write(encodeFrame(version, CMD_FIN, 3));
    assert.equal(await withTimeout(s.read(new Uint8Array(10)), 2000), null);
    const cw = s.closeWrite(); // FIN sent and received: the session forgets the stream
    await new Promise((r) => setTimeout(r, 10));
    srv.close();
    await withTimeout(cw, 2000, "closeWrite after session close");
    await withTimeout(w, 2000, "write after session close");
    await withTimeout(srv.closed, 2000);
    a.close();
  });
}

Deno.test("smux: a SYN flood past mux.maxStreams is refused with FINs; the session holds only the limit", async () => {
  const [a, b] = pipe({ capacity: 1 << 22 });
  const srv = serverSession(b, { version: 2, maxStreams: 100, keepAliveDisabled: true });
  try {
    const syns = new Uint8Array(500 * 8);
    for (let i = 0; i < 500; i++) syns.set(encodeFrame(2, CMD_SYN, 2 * i + 1), i * 8);
    await a.write(syns);
    // Every refused SYN is answered with a FIN for its id.
    const br = new BufReader(a, 1 << 16);
    const fins = new Set<number>();
    while (fins.size < 400) {
      const h = await withTimeout(br.readN(8), 5000, "FINs for refused streams");
      const len = h[2]! | (h[3]! << 8);
      if (len > 0) await br.readN(len);
      if (h[1] === CMD_FIN) fins.add(new DataView(h.buffer, h.byteOffset).getUint32(4, true));
    }
    assert.equal(srv.streamCount, 100);
    assert.equal(srv.refusedStreams, 400);
    assert.ok(fins.has(2 * 499 + 1) && !fins.has(1), "the first 100 were taken, the rest refused");
  } finally {
    srv.close();
    a.close();
  }
});

for (const version of [1, 2]) {
  Deno.test(`smux v${version}: pooled frame buffers are never shared — streams abandoned mid-read and odd read sizes stay byte-exact`, async () => {
    const [cli, srv] = pair(version);
    const N = 16, SIZE = 300_000;
    const pattern = (i: number) => new Uint8Array(SIZE).map((_, k) => (k * 31 + i * 7) & 0xff);
    // Writers to abandoned streams may wait for a window that never opens (v2): they end when
    // the session closes, so only the others are awaited.
    const finished: Promise<void>[] = [];
    const accepting = (async () => {
      for (let i = 0; i < N; i++) {
        const s = (await srv.acceptStream())!;
        const done = (async () => {
          const id = new Uint8Array(1);
          await readFull(s, id);
          await s.write(pattern(id[0]!)).catch(() => {});
          await s.closeWrite().catch(() => {});
        })();
        finished.push(done);
      }
    })();
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      const s = await cli.openStream();
      await s.write(new Uint8Array([i]));
      const want = pattern(i);
      const got = new Uint8Array(SIZE);
      let n = 0;
      const step = 997 + i * 13; // odd sizes: chunks are taken partly
      for (;;) {
        if (i < 4 && n >= 20_000) {
          s.close(); // abandoned: its unread pooled chunks go back to the pool
          return;
        }
        const k = await s.read(got.subarray(n, Math.min(SIZE, n + step)));
        if (k === null) break;
        n += k;
      }
      assert.equal(n, SIZE, `stream ${i}`);
      assert.ok(got.every((v, k) => v === want[k]), `stream ${i}: bytes differ`);
      s.close();
    }));
    await accepting;
    cli.close();
    srv.close();
    await Promise.all(finished);
  });
}

Deno.test("smux: unread tiny frames do not pin pooled 32 KiB buffers (memory stays near the bytes received)", async () => {
  const [cli, srv] = pair(1);
  const s = await cli.openStream();
  const accepted = (await srv.acceptStream())!;
  // ArrayBuffer memory (V8's external count: what the buffers hold, touched or not).
  const before = Deno.memoryUsage().external;
  // 3,000 one-byte frames, never read: 3 KB of data.
  for (let i = 0; i < 3000; i++) await s.write(new Uint8Array([i & 0xff]));
  await until(() => accepted.buffered === 3000, 5000, "frames buffered");
  const grew = Deno.memoryUsage().external - before;
  // 3,000 pooled 32 KiB buffers would be ~94 MiB.
  assert.ok(grew < 30 << 20, `buffers grew ${(grew / 1048576).toFixed(1)} MiB for 3 KB unread`);
  cli.close();
  srv.close();
});

Deno.test("smux: one write of 140,000 bytes with maxFrameSize 1 (140,000 frames) arrives whole (its frames were spread as call arguments: a stack overflow)", async () => {
  const [cli, srv] = pair(1, { maxFrameSize: 1 });
  try {
    const out = await cli.openStream();
    const inn = (await srv.acceptStream())!;
    const data = randomBytes(140_000);
    const got = readAll(inn);
    await withTimeout(out.write(data), 5000);
    await out.closeWrite();
    assert.deepEqual(await withTimeout(got, 5000), data);
  } finally {
    cli.close();
    srv.close();
  }
});

Deno.test("smux: a relay reading a quiet stream lends it no buffer until bytes are there, and moves them all", async () => {
  const { relay } = await import("../../src/core/relay.ts");
  const { WrappedConn } = await import("../../src/core/conn.ts");
  /** Counts reads in flight (a read in flight holds the caller's buffer). */
  class Spy extends WrappedConn {
    pending = 0;
    reads = 0;
    readonly waitReadable = () => this.inner.waitReadable!();
    override read(p: Uint8Array): Promise<number | null> {
      this.pending++;
      this.reads++;
      return super.read(p).finally(() => this.pending--);
    }
  }
  const [cli, srv] = pair(2);
  const [b, sink] = pipe({ capacity: 8 << 20 });
  try {
    const out = await cli.openStream();
    const inn = (await srv.acceptStream())!;
    const spy = new Spy(inn);
    const done = relay(spy, b);
    const tick = () => new Promise((r) => setTimeout(r, 10));
    await tick();
    assert.equal(spy.pending, 0, "quiet from the start: no read holds a buffer");
    const sent: Uint8Array[] = [];
    // Chunks, not numbers spread into an array: a read of ~120k bytes or more overflows the
    // stack as spread arguments.
    const got: Uint8Array[] = [];
    const buf = new Uint8Array(1 << 20);
    const drain = async (n: number) => {
      for (let k = 0; k < n;) {
        const r = (await withTimeout(sink.read(buf), 5000))!;
        got.push(buf.slice(0, r));
        k += r;
      }
    };
    // Messages that never grow the relay's buffer (a grown one is kept while quiet, under the
    // keep budget: relay_test), then a burst, checked for its bytes only.
    for (const size of [1, 100, 1024, 700, 1024, 5, 300_000]) {
      const d = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
      const chunk = size > 65536 ? new Uint8Array(size).map((_, i) => d[i % d.length]!) : d;
      sent.push(chunk);
      await out.write(chunk);
      await drain(chunk.length);
      await tick();
      if (size > 65536) continue;
      assert.equal(spy.pending, 0, `quiet again after ${size} bytes: no read holds a buffer`);
    }
    assert.deepEqual(concatBytes(got), concatBytes(sent), "every byte, in order");
    assert.ok(spy.reads > sent.length, "reads were made");
    await out.closeWrite();
    const end = await withTimeout(sink.read(buf), 5000);
    assert.equal(end, null, "the stream's FIN ends the copy");
    sink.close();
    await withTimeout(done, 5000);
  } finally {
    cli.close();
    srv.close();
  }
});

Deno.test("smux over a carrier that frames its writes (WebSocket): batches go out in place, header room in front, and 8 streams echo byte-exact", async () => {
  const { RoomSpy } = await import("../_helpers.ts");
  const [a, b] = pipe({ capacity: 1 << 20 });
  const spy = new RoomSpy(a);
  const cli = clientSession(spy, { version: 2 });
  const srv = serverSession(b, { version: 2 });
  const serving = serveEcho(srv);
  try {
    await withTimeout(
      Promise.all(Array.from({ length: 8 }, async (_, i) => {
        const s = await cli.openStream();
        const data = randomBytes(200_000 + i);
        const [, back] = await Promise.all([
          writeChunks(s, data, 50_000).then(() => s.closeWrite()),
          readAll(s),
        ]);
        assert.equal(await sha256(back), await sha256(data), `stream ${i}`);
        s.close();
      })),
      20_000,
    );
    assert.equal(spy.plain, 0, "every batch was written in place");
    assert.ok(spy.inPlace.length > 0);
  } finally {
    cli.close();
    srv.close();
    await serving.catch(() => {});
  }
});

Deno.test("smux: frames that arrive together reach a waiting reader together (the session parses every buffered frame before it yields), so a relay writes them in one go, not one write per frame", async () => {
  const [a, b] = pipe({ capacity: 1 << 20 });
  const srv = serverSession(b, { version: 2 });
  try {
    await a.write(encodeFrame(2, CMD_SYN, 3));
    const s = (await withTimeout(srv.acceptStream(), 2000))!;
    const buf = new Uint8Array(1 << 16);
    const waiting = s.read(buf);
    const frames = Array.from(
      { length: 8 },
      (_, i) => encodeFrame(2, CMD_PSH, 3, new Uint8Array(1000).fill(i + 1)),
    );
    await a.write(concatBytes(frames));
    assert.equal(await withTimeout(waiting, 2000), 8000, "one read takes all eight frames");
    for (let i = 0; i < 8; i++) assert.equal(buf[i * 1000 + 999], i + 1);
  } finally {
    srv.close();
    a.close();
  }
});

for (const version of [1, 2]) {
  Deno.test(`smux v${version}: closing a stream ends its write even when the carrier's peer stopped reading (a relay, and a shutdown waiting for it, do not hang)`, async () => {
    const [a, b] = pipe({ capacity: 64 * 1024 });
    // The peer reads nothing: once the pipe is full, the session writer waits on it for good.
    const cli = clientSession(a, { version });
    try {
      const s = await cli.openStream();
      const writing = s.write(new Uint8Array(1 << 20));
      let settled = false;
      writing.then(() => settled = true, () => settled = true);
      // A precondition, not the check: the write is stuck before the close.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(settled, false, "the write finished although nothing read the carrier");
      s.close();
      await withTimeout(
        assert.rejects(writing, /closed/),
        2000,
        "the write of a closed stream",
      );
    } finally {
      cli.close();
      b.close();
    }
  });
}

for (const version of [1, 2]) {
  Deno.test(`smux v${version}: a peer that closes its stream while we write makes our writes fail (a second FIN says "gone"), not wait for a window or vanish`, async () => {
    const [a, b] = pipe({ capacity: 1 << 22 });
    const cli = clientSession(a, { version, keepAliveDisabled: true });
    const srv = serverSession(b, { version, keepAliveDisabled: true });
    try {
      const s = await cli.openStream();
      await s.write(new Uint8Array(10));
      const peer = await withTimeout(srv.acceptStream(), 2000, "accept");
      assert.ok(peer);
      // The server end leaves (its target failed) without reading what keeps coming.
      peer.close();
      const failed = await withTimeout(
        (async () => {
          const b = new Uint8Array(64 * 1024);
          for (let sent = 0; sent < 64 << 20; sent += b.length) {
            try {
              await s.write(b);
            } catch (e) {
              return e as Error;
            }
          }
          return null;
        })(),
        3000,
        "the write after the peer left",
      );
      assert.ok(failed, "64 MiB written into a stream the peer closed");
      assert.match(failed.message, /peer closed/);
      assert.equal(await s.read(new Uint8Array(8)), null, "and reads end");
    } finally {
      cli.close();
      srv.close();
    }
  });
}

Deno.test("smux v2: after a peer's half-close (FIN, then a window update) our writes wait for its reads as long as they take; after a bare FIN (xtaci) they fail once peerCloseGrace passes with no window", async () => {
  // Burrow's half-close: the peer stops writing and still reads, slowly.
  {
    const [a, b] = pipe({ capacity: 1 << 22 });
    const cli = clientSession(a, { version: 2, keepAliveDisabled: true, peerCloseGrace: 200 });
    const srv = serverSession(b, { version: 2, keepAliveDisabled: true });
    try {
      const s = await cli.openStream();
      await s.write(new Uint8Array(1));
      const peer = (await withTimeout(srv.acceptStream(), 2000, "accept"))!;
      await peer.closeWrite();
      assert.equal(await s.read(new Uint8Array(8)), null, "the peer's FIN");
      const data = randomBytes(2 << 20);
      const writing = s.write(data);
      writing.catch(() => {}); // awaited below; a failure must not surface before that
      // The peer reads nothing for longer than the grace: the write must still be waiting.
      await new Promise((r) => setTimeout(r, 600));
      const got = await withTimeout(readFull(peer, new Uint8Array(1 + data.length)), 5000, "reads");
      await withTimeout(writing, 2000, "the write once the peer read");
      assert.deepEqual(got.subarray(1), data);
    } finally {
      cli.close();
      srv.close();
    }
  }
  // A peer without half-close (xtaci ≤ 1.5, GOST): FIN, then never a window update.
  {
    const [a, b] = pipe({ capacity: 1 << 22 });
    const cli = clientSession(a, { version: 2, keepAliveDisabled: true, peerCloseGrace: 200 });
    try {
      const s = await cli.openStream();
      const br = new BufReader(b, 1 << 16);
      const syn = await br.readN(8);
      assert.equal(syn[1], CMD_SYN);
      const sid = new DataView(syn.buffer, syn.byteOffset).getUint32(4, true);
      await b.write(encodeFrame(2, CMD_FIN, sid));
      assert.equal(await s.read(new Uint8Array(8)), null, "the FIN");
      const t0 = performance.now();
      await withTimeout(
        assert.rejects(s.write(new Uint8Array(1 << 20)), /no window after its FIN/),
        3000,
        "the write into the initial window and past it",
      );
      assert.ok(performance.now() - t0 >= 150, "it waited for the grace first");
    } finally {
      cli.close();
      b.close();
    }
  }
});

/** Frames read from `br` until a PSH for stream `until`: [cmd, sid] pairs. */
async function framesUntilPsh(br: BufReader, until: number): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (;;) {
    const h = await withTimeout(br.readN(8), 3000, "frames");
    const len = h[2]! | (h[3]! << 8);
    const sid = new DataView(h.buffer, h.byteOffset).getUint32(4, true);
    if (len > 0) await br.readN(len);
    out.push([h[1]!, sid]);
    if (h[1] === CMD_PSH && sid === until) return out;
  }
}

for (const version of [1, 2]) {
  Deno.test(`smux v${version}: on the wire, closeWrite is FIN${version === 2 ? " then one window update" : " alone (v1 has no UPD: a newer xtaci session would close)"}, and a close after it one more FIN`, async () => {
    const [a, b] = pipe({ capacity: 1 << 22 });
    const cli = clientSession(a, { version, keepAliveDisabled: true });
    try {
      const s = await cli.openStream();
      await s.closeWrite();
      s.close();
      // A second stream's first byte marks the end of what the first one sent.
      const t = await cli.openStream();
      await t.write(new Uint8Array([1]));
      const seen = await framesUntilPsh(new BufReader(b, 1 << 16), t.id);
      const first = seen.filter(([, sid]) => sid === s.id).map(([cmd]) => cmd);
      // (A v2 stream may advertise its window once it opens: an UPD before the FIN.)
      assert.deepEqual(
        first.slice(first.indexOf(CMD_FIN)),
        version === 2 ? [CMD_FIN, CMD_UPD, CMD_FIN] : [CMD_FIN, CMD_FIN],
      );
      if (version === 1) assert.ok(!seen.some(([cmd]) => cmd === CMD_UPD), "a UPD in v1");
    } finally {
      cli.close();
      b.close();
    }
  });
}

Deno.test("smux v2: a write already waiting for the window when a bare FIN arrives fails once peerCloseGrace passes", async () => {
  const [a, b] = pipe({ capacity: 1 << 22 });
  const cli = clientSession(a, { version: 2, keepAliveDisabled: true, peerCloseGrace: 200 });
  try {
    const s = await cli.openStream();
    const writing = s.write(new Uint8Array(1 << 20)); // past the 256 KiB initial window
    writing.catch(() => {});
    const br = new BufReader(b, 1 << 16);
    // Read until 256 KiB of its data arrived: the write now waits for a window.
    for (let got = 0; got < 262144;) {
      const h = await withTimeout(br.readN(8), 3000, "frames");
      const len = h[2]! | (h[3]! << 8);
      if (len > 0) await br.readN(len);
      if (h[1] === CMD_PSH) got += len;
    }
    await b.write(encodeFrame(2, CMD_FIN, s.id));
    await withTimeout(assert.rejects(writing, /no window after its FIN/), 3000, "the write");
  } finally {
    cli.close();
    b.close();
  }
});

Deno.test("smux v2: a stream refused for mux.maxStreams (two FINs) fails its opener's writes at once", async () => {
  const [a, b] = pipe({ capacity: 1 << 22 });
  const cli = clientSession(a, { version: 2, keepAliveDisabled: true });
  const srv = serverSession(b, { version: 2, keepAliveDisabled: true, maxStreams: 1 });
  try {
    const kept = await cli.openStream();
    await kept.write(new Uint8Array(1));
    await withTimeout(srv.acceptStream(), 2000, "accept");
    const refused = await cli.openStream();
    assert.equal(await withTimeout(refused.read(new Uint8Array(8)), 2000, "the FIN"), null);
    // The initial window is 256 KiB: without "gone" this write would wait there for good.
    await withTimeout(
      assert.rejects(refused.write(new Uint8Array(1 << 20)), /peer closed the stream/),
      2000,
      "the refused stream's write",
    );
  } finally {
    cli.close();
    srv.close();
  }
});
