/** WebSocket transports: codec vectors, listener/dialer pairs, refusals, the seed page's forms, gorilla interop. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { encodeFrame, OP_BINARY, OP_CLOSE } from "../../src/transport/ws/frame.ts";
import { acceptKey } from "../../src/transport/ws/handshake.ts";
import { builtinRegistries } from "../../src/builtins.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { silentLogger } from "../../src/core/log.ts";
import { dialTcp } from "../../src/core/socket.ts";
import {
  echoServer,
  hasCommand,
  portOf,
  randomBytes,
  readAll,
  sha256,
  withTimeout,
} from "../_helpers.ts";
import { runConnSuite } from "../conformance/conn_suite.ts";
import { transportPair } from "../conformance/pair.ts";
import { curl, pseudoRandom, startOrigin } from "../proxy/_server.ts";
import { goPeer, startListeningPeer } from "../../scripts/peers/build.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const HAVE_CURL = hasCommand("curl");

Deno.test("ws frame and handshake vectors (docs/websocket.md §3.5 (accept: §2.3))", async () => {
  const hi = new TextEncoder().encode("hi");
  assert.equal(
    hex(encodeFrame(OP_BINARY, hi, new Uint8Array([1, 2, 3, 4]))),
    "82 82 01 02 03 04 69 6b",
  );
  assert.equal(hex(encodeFrame(OP_BINARY, hi)), "82 02 68 69");
  assert.equal(hex(encodeFrame(OP_CLOSE, new Uint8Array([3, 0xe8]))), "88 02 03 e8");
  assert.equal(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

// Every type's listener ⇄ dialer pair runs the suite in tests/conformance/registry_test.ts.
// First hops run TLS on the native socket instead of over a Conn: the same contract.
for (const type of ["wss", "tls"]) {
  runConnSuite(
    `${type} listener ⇄ dialer (first hop, native TLS socket)`,
    () => transportPair(type, {}, true),
    { size: 4 << 20, maxBuffered: 16 << 20 },
  );
}

Deno.test("ws listener: wrong path ⇒ 404, plain GET ⇒ 400, garbage ⇒ closed; it keeps serving", async () => {
  const reg = builtinRegistries();
  const l = await reg.listeners.get("ws")({
    addr: "127.0.0.1:0",
    metadata: new Metadata({ path: "/tunnel" }),
    log: silentLogger,
    service: "t",
  });
  try {
    const ask = async (text: string) => {
      const c = await dialTcp("127.0.0.1", l.addr.port);
      await c.write(new TextEncoder().encode(text));
      const r = new TextDecoder().decode(await withTimeout(readAll(c), 5000));
      c.close();
      return r;
    };
    const up =
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    assert.match(await ask(`GET /ws HTTP/1.1\r\nHost: x\r\n${up}\r\n`), /^HTTP\/1\.1 404/);
    assert.match(await ask("GET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n"), /^HTTP\/1\.1 400/);
    assert.match(await ask(`POST /tunnel HTTP/1.1\r\nHost: x\r\n${up}\r\n`), /^HTTP\/1\.1 405/);
    assert.match(await ask("\x16\x03\x01garbage\r\n\r\n"), /^HTTP\/1\.1 400/);
    const c = await dialTcp("127.0.0.1", l.addr.port);
    await c.write(new TextEncoder().encode(`GET /tunnel HTTP/1.1\r\nHost: x\r\n${up}\r\n`));
    const buf = new Uint8Array(200);
    const n = await withTimeout(c.read(buf), 5000);
    assert.match(
      new TextDecoder().decode(buf.subarray(0, n!)),
      /^HTTP\/1\.1 101 Switching Protocols/,
    );
    c.close();
    (await l.accept())?.close();
  } finally {
    await l.close();
  }
});

Deno.test("ws dialer sends host, path and custom headers", async () => {
  const raw = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen = (async () => {
    const c = await raw.accept();
    const buf = new Uint8Array(4096);
    const n = await c.read(buf);
    c.close();
    return new TextDecoder().decode(buf.subarray(0, n ?? 0));
  })();
  const reg = builtinRegistries();
  const d = await reg.dialers.get("ws")({
    metadata: new Metadata({
      path: "/p",
      host: "example.com",
      header: { "User-Agent": "gost/3.0", foo: "bar" },
    }),
    log: silentLogger,
  });
  const { directDialTcp } = await import("../../src/transport/tcp/dialer.ts");
  await assert.rejects(
    d.dial(`127.0.0.1:${(raw.addr as Deno.NetAddr).port}`, {
      netDial: (x) => directDialTcp(x),
      log: silentLogger,
    }),
  );
  const req = await seen;
  raw.close();
  assert.match(req, /^GET \/p HTTP\/1\.1\r\n/);
  assert.match(req, /\r\nHost: example\.com\r\n/);
  assert.match(req, /\r\nUser-Agent: gost\/3\.0\r\n/);
  assert.match(req, /\r\nfoo: bar\r\n/);
});

Deno.test("ws client keepalive pings keep an idle tunnel; a silent server is dropped", async () => {
  const { a, b, cleanup } = await transportPair("ws", { keepalive: "true", ttl: "100ms" });
  try {
    // As in a relay, the server side always has a read pending (that is where pings are answered).
    const buf = new Uint8Array(1);
    const pending = b.read(buf);
    const back = a.read(new Uint8Array(1));
    await new Promise((r) => setTimeout(r, 500));
    await a.write(new Uint8Array([1]));
    assert.equal(await withTimeout(pending, 2000), 1);
    await b.write(new Uint8Array([2]));
    assert.equal(await withTimeout(back, 2000), 1);
  } finally {
    await cleanup?.();
  }
  // A server that upgrades and then never answers anything.
  const raw = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const mute = (async () => {
    const c = await raw.accept();
    const buf = new Uint8Array(4096);
    const n = await c.read(buf);
    const key = /Sec-WebSocket-Key: (\S+)/.exec(new TextDecoder().decode(buf.subarray(0, n!)))![1]!;
    await c.write(
      new TextEncoder().encode(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${await acceptKey(
          key,
        )}\r\n\r\n`,
      ),
    );
    return c;
  })();
  const reg = builtinRegistries();
  const d = await reg.dialers.get("ws")({
    metadata: new Metadata({ keepalive: "true", ttl: "100ms" }),
    log: silentLogger,
  });
  const { directDialTcp } = await import("../../src/transport/tcp/dialer.ts");
  const c = await d.dial(`127.0.0.1:${(raw.addr as Deno.NetAddr).port}`, {
    netDial: (x) => directDialTcp(x),
    log: silentLogger,
  });
  const sc = await mute;
  try {
    assert.equal(
      await withTimeout(c.read(new Uint8Array(10)).catch(() => null), 3000, "dead peer detection"),
      null,
    );
  } finally {
    c.close();
    sc.close();
    raw.close();
  }
});

for (const t of ["ws", "wss", "mws", "mwss"]) {
  Deno.test({
    name:
      `ws seed: -L ${t}://:P (auto) reached by -F ${t}://:P?path=/ws, and ${t} port forwarding to socks5`,
    ignore: !HAVE_CURL,
    fn: async () => {
      const origin = startOrigin();
      const srv = await Runtime.start(cliConfig([`${t}://127.0.0.1:0?path=/ws`], []));
      const p = portOf(srv);
      const cli = await Runtime.start(
        cliConfig(["http://127.0.0.1:0"], [`${t}://127.0.0.1:${p}?path=/ws`]),
      );
      const socks = await Runtime.start(cliConfig([`socks5://127.0.0.1:0`], []));
      const p1080 = portOf(socks);
      const fsrv = await Runtime.start(
        cliConfig([`${t}://127.0.0.1:0/127.0.0.1:${p1080}`], []),
      );
      const p8443 = portOf(fsrv);
      const fcli = await Runtime.start(
        cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${p1080}`], [`forward+${t}://127.0.0.1:${p8443}`]),
      );
      try {
        const n = 2 << 20;
        for (
          const args of [["-x", `http://127.0.0.1:${cli.services[0]!.listener.addr.port}`], [
            "--socks5",
            `127.0.0.1:${fcli.services[0]!.listener.addr.port}`,
          ]]
        ) {
          const r = await curl([...args, `http://127.0.0.1:${origin.port}/bytes?n=${n}`]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
        }
        // What went out to clients is counted, frames written in place included.
        for (const rt of [srv, fsrv]) assert.ok(rt.services[0]!.stats.outputBytes >= n);
      } finally {
        await fcli.close();
        await fsrv.close();
        await socks.close();
        await cli.close();
        await srv.close();
        await origin.close();
      }
    },
  });
}

const wsBin = await goPeer("ws", "github.com/gorilla/websocket");

Deno.test({
  name:
    "interop: gorilla/websocket client → our ws listener (forwarding to an echo), 4 MiB byte-exact",
  ignore: !wsBin,
  fn: async () => {
    const echo = echoServer();
    const rt = await Runtime.start(cliConfig([`ws://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
    try {
      const out = await withTimeout(
        new Deno.Command(wsBin!, {
          args: [
            "-mode",
            "client",
            "-url",
            `ws://127.0.0.1:${rt.services[0]!.listener.addr.port}/ws`,
            "-bytes",
            String(4 << 20),
          ],
          stdout: "piped",
          stderr: "piped",
        }).output(),
        30_000,
      );
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    } finally {
      await rt.close();
      await echo.close();
    }
  },
});

Deno.test({
  name: "interop: our ws dialer → gorilla/websocket echo server, 4 MiB byte-exact",
  ignore: !wsBin,
  fn: async () => {
    const peer = await startListeningPeer(wsBin!, ["-mode", "server", "-path", "/ws"]);
    const rt = await Runtime.start(
      cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], [`forward+ws://127.0.0.1:${peer.port}`]),
    );
    try {
      const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
      const data = pseudoRandom(4 << 20, 3);
      const got = new Uint8Array(data.length);
      const { readFull } = await import("../../src/core/conn.ts");
      await withTimeout(Promise.all([c.write(data), readFull(c, got)]), 30_000);
      assert.equal(await sha256(got), await sha256(data));
      c.close();
    } finally {
      await rt.close();
      await peer.stop();
    }
  },
});

Deno.test("ws write in place: the frame goes out of the caller's buffer (header in its room, masked there by a client) and reads back as the payload at every header size; the server's bytes are what write sends; too little room is refused", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const { WrappedConn } = await import("../../src/core/conn.ts");
  /** Records the memory and bytes of each write to the socket. */
  class Tap extends WrappedConn {
    writes: Uint8Array[] = [];
    override write(p: Uint8Array): Promise<number> {
      this.writes.push(p);
      return super.write(p.slice());
    }
  }
  for (const client of [true, false]) {
    const [a, b] = pipe({ capacity: 1 << 20 });
    const tap = new Tap(a);
    const ws = new WsConn(tap, new BufReader(a), { client });
    const peer = new WsConn(b, new BufReader(b), { client: !client });
    assert.equal(ws.writeRoom, 14);
    for (const n of [0, 1, 125, 126, 65535, 65536, 70000]) {
      const payload = randomBytes(n);
      const p = new Uint8Array(14 + n);
      p.set(payload, 14);
      assert.equal(await ws.writeInPlace(p), n);
      const frame = tap.writes.at(-1)!;
      assert.equal(frame.buffer, p.buffer, `${n} bytes: written from the caller's buffer`);
      assert.equal(frame.byteOffset + frame.length, 14 + n);
      const got = new Uint8Array(n);
      const { readFull } = await import("../../src/core/conn.ts");
      if (n > 0) await withTimeout(readFull(peer, got), 5000, `${n} bytes`);
      assert.deepEqual(got, payload, `${client ? "client" : "server"}, ${n} bytes`);
      if (!client) {
        await ws.write(payload);
        assert.deepEqual(tap.writes.at(-1), frame, `${n} bytes: the same frame as write`);
        if (n > 0) await withTimeout(readFull(peer, got), 5000);
      }
    }
    await assert.rejects(ws.writeInPlace(new Uint8Array(13)), RangeError);
    ws.close();
    peer.close();
  }
});

Deno.test("ws read: many small frames arrive in few reads, a ping between them is answered, a close ends the stream", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const { OP_CONT, OP_PING, OP_PONG } = await import("../../src/transport/ws/frame.ts");
  const [peer, ours] = pipe({ capacity: 1 << 20 });
  const ws = new WsConn(ours, new BufReader(ours), { client: true });
  // 64 fragments of 100 bytes (one message), then a ping, then another message, then close.
  const data = new Uint8Array(6400).map((_, i) => i & 0xff);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 64; i++) {
    const part = data.subarray(i * 100, (i + 1) * 100);
    const op = i === 0 ? OP_BINARY : OP_CONT;
    const f = encodeFrame(op, part);
    if (i < 63) f[0] = f[0]! & 0x7f; // FIN only on the last fragment
    frames.push(f);
  }
  frames.push(encodeFrame(OP_PING, new Uint8Array([1, 2])));
  frames.push(encodeFrame(OP_BINARY, new Uint8Array([9, 9, 9])));
  frames.push(encodeFrame(OP_CLOSE, new Uint8Array([0x03, 0xe8])));
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of frames) all.set(f, o), o += f.length;
  await peer.write(all);
  const buf = new Uint8Array(65536);
  const first = (await ws.read(buf))!;
  // Whatever one buffer fill brought comes at once: many 100-byte frames, not one.
  assert.ok(first >= 900, `first read ${first} bytes: frames were not coalesced`);
  let got = first;
  while (got < 6400) got += (await ws.read(buf.subarray(got)))!;
  assert.equal(got, 6400);
  assert.deepEqual(buf.subarray(0, 6400), data);
  const second = await ws.read(buf);
  assert.deepEqual(buf.subarray(0, second!), new Uint8Array([9, 9, 9]));
  assert.equal(await ws.read(buf), null);
  // The pong went out (masked, as a client sends).
  const back = new Uint8Array(64);
  const n = await withTimeout(peer.read(back), 2000, "pong");
  assert.equal(back[0]! & 0x0f, OP_PONG);
  assert.ok(n! >= 2 + 4 + 2);
  ws.close();
  peer.close();
});

Deno.test("ws read (server side, masked frames): the in-place header path unmasks across frames and still refuses reserved opcodes, unmasked and out-of-message frames", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const { OP_CONT } = await import("../../src/transport/ws/frame.ts");
  const { ProtocolError } = await import("../../src/core/errors.ts");
  const data = crypto.getRandomValues(new Uint8Array(40_000));
  const key = () => crypto.getRandomValues(new Uint8Array(4));
  const masked = (op: number, p: Uint8Array, fin = true) => {
    const f = encodeFrame(op, p, key());
    if (!fin) f[0] = f[0]! & 0x7f;
    return f;
  };
  const cat = (fs: Uint8Array[]) => {
    const out = new Uint8Array(fs.reduce((n, f) => n + f.length, 0));
    let o = 0;
    for (const f of fs) out.set(f, o), o += f.length;
    return out;
  };
  // gorilla-style: 4 KiB fragments of one message, then one whole message of odd length.
  const good: Uint8Array[] = [];
  for (let off = 0; off < 36_000; off += 4096) {
    const end = Math.min(off + 4096, 36_000);
    good.push(masked(off === 0 ? OP_BINARY : OP_CONT, data.subarray(off, end), end === 36_000));
  }
  good.push(masked(OP_BINARY, data.subarray(36_000)));
  // [what, bytes after the good frames, how many of them are valid data delivered first]
  const bad: [string, Uint8Array, number][] = [
    ["reserved opcode 3", masked(3, new Uint8Array(5)), 0],
    ["an unmasked frame from a client", encodeFrame(OP_BINARY, new Uint8Array(5)), 0],
    ["a continuation outside a message", masked(OP_CONT, new Uint8Array(5)), 0],
    [
      "a new message inside a fragmented one",
      cat([
        masked(OP_BINARY, new Uint8Array(5), false),
        masked(OP_BINARY, new Uint8Array(5)),
      ]),
      5,
    ],
  ];
  for (const [what, tail, extra] of bad) {
    const [peer, ours] = pipe({ capacity: 1 << 20 });
    const ws = new WsConn(ours, new BufReader(ours), { client: false });
    await peer.write(cat([...good, tail]));
    const buf = new Uint8Array(65536);
    let got = 0;
    let err: unknown;
    try {
      for (;;) {
        const n = await ws.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
    } catch (e) {
      err = e;
    }
    assert.equal(got, data.length + extra, what);
    assert.deepEqual(buf.subarray(0, data.length), data, `${what}: every good byte first`);
    assert.ok(err instanceof ProtocolError, `${what}: ${err}`);
    ws.close();
    peer.close();
  }
});

Deno.test("ws read: 64 KiB frames (gorilla's copy buffer, 8-byte lengths) come in few reads; a length of 4 GiB or more is refused, not wrapped", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const [peer, ours] = pipe({ capacity: 1 << 20 });
  const ws = new WsConn(ours, new BufReader(ours), { client: true });
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const frames = [0, 1, 2, 3].map(() => encodeFrame(OP_BINARY, data));
  assert.equal(frames[0]![1], 127, "a 65536-byte payload takes the 8-byte length");
  for (const f of frames) await peer.write(f);
  const buf = new Uint8Array(4 * 65536);
  let got = 0, reads = 0;
  while (got < buf.length) got += (await ws.read(buf.subarray(got)))!, reads++;
  for (let i = 0; i < 4; i++) assert.deepEqual(buf.subarray(i * 65536, (i + 1) * 65536), data);
  assert.ok(reads <= 8, `${reads} reads for 256 KiB of 64 KiB frames (68 before the fix)`);
  // 2^32 + 5 in the 8-byte length: refused (it once read as 5 and lost the stream's framing).
  const head = new Uint8Array([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5]);
  await peer.write(head);
  await assert.rejects(ws.read(buf), /frame of 4294967301 bytes exceeds/);
  ws.close();
  peer.close();
});

Deno.test("ws read: the read-ahead grows while frames stream in and, past the keep budget, gives it back once the socket runs dry, so a read that waits pins only the caller's buffer", async () => {
  const { BULK_KEEP_BUDGET, bulkHeldBytes, giveBulk, takeBulk } = await import(
    "../../src/core/buffer_pool.ts"
  );
  const others: Uint8Array[] = []; // other conns' buffers: over the budget
  while (bulkHeldBytes() <= BULK_KEEP_BUDGET) others.push(takeBulk(256 * 1024));
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const [peer, ours] = pipe({ capacity: 8 << 20 });
  const br = new BufReader(ours, 4096);
  const ws = new WsConn(ours, br, { client: true });
  // gorilla's pattern: many 4 KiB frames, here 1 MiB and a bit, all waiting (one pipe write, so
  // a fill takes as much as it has room for, as from a socket).
  const data = randomBytes((1 << 20) + 777);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += 4096) {
    frames.push(encodeFrame(OP_BINARY, data.subarray(i, i + 4096)));
  }
  const wire = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  frames.reduce((o, f) => (wire.set(f, o), o + f.length), 0);
  await peer.write(wire);
  const buf = new Uint8Array(data.length);
  let got = 0, peak = 0;
  while (got < data.length) {
    got += (await ws.read(buf.subarray(got)))!;
    peak = Math.max(peak, br.capacity);
  }
  assert.deepEqual(buf, data);
  assert.equal(peak, 256 * 1024, "the read-ahead grew while data streamed");
  const waiting = ws.read(new Uint8Array(1024)); // nothing more has come: this read waits
  assert.equal(
    br.capacity,
    0,
    "the waiting read holds no read-ahead: it waits in the caller's buffer",
  );
  await peer.write(encodeFrame(OP_BINARY, new Uint8Array([7])));
  assert.equal(await withTimeout(waiting, 2000), 1);
  ws.close();
  peer.close();
  for (const o of others) giveBulk(o);
});

Deno.test("ws read: a message that half fills the read-ahead, then quiet, leaves the waiting read in the caller's buffer; a closed conn's read-ahead takes no more bulk buffers", async () => {
  const { BULK_KEEP_BUDGET, bulkHeldBytes, giveBulk, takeBulk } = await import(
    "../../src/core/buffer_pool.ts"
  );
  const others: Uint8Array[] = []; // other conns' buffers: over the budget
  while (bulkHeldBytes() <= BULK_KEEP_BUDGET) others.push(takeBulk(256 * 1024));
  const held = bulkHeldBytes();
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const [peer, ours] = pipe();
  const br = new BufReader(ours, 4096);
  const ws = new WsConn(ours, br, { client: true });
  try {
    await peer.write(encodeFrame(OP_BINARY, new Uint8Array(600).fill(7)));
    assert.equal(await ws.read(new Uint8Array(1024)), 600);
    const waiting = ws.read(new Uint8Array(1024));
    assert.equal(
      br.capacity,
      0,
      "600 bytes of 1 KiB did not grow the read-ahead; the wait holds none",
    );
    assert.equal(bulkHeldBytes(), held, "no bulk buffer taken");
    ws.close();
    assert.equal(await withTimeout(waiting, 2000), null);
    // Closed: a late adapt (a read's continuation after close) takes nothing.
    br.reserve(256 * 1024);
    assert.equal(bulkHeldBytes(), held);
  } finally {
    peer.close();
    for (const o of others) giveBulk(o);
  }
});

Deno.test("ws read: reads that wait in the caller's buffer take frames split anywhere, several per read, control frames between, and small or large buffers", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const { OP_PING, OP_CONT } = await import("../../src/transport/ws/frame.ts");
  for (const client of [true, false]) {
    for (const readSize of [1, 5, 1024, 70_000]) {
      const [peer, ours] = pipe();
      const br = new BufReader(ours, 4096);
      const ws = new WsConn(ours, br, { client });
      const key = client ? undefined : new Uint8Array([1, 2, 3, 4]);
      const data = randomBytes(5000);
      // A message in fragments of 1, 700, 1500 and 2799 bytes with a ping inside it, then a
      // small one.
      const parts = [
        encodeFrame(OP_BINARY & 0x7f, data.subarray(0, 1), key),
        encodeFrame(OP_CONT, data.subarray(1, 701), key),
        encodeFrame(OP_PING, new Uint8Array([9]), key),
        encodeFrame(OP_CONT, data.subarray(701, 2201), key),
        encodeFrame(OP_CONT, data.subarray(2201, 4999), key),
        encodeFrame(OP_BINARY, data.subarray(4999), key),
      ];
      // Clear FIN on all but the last fragment of the first message.
      for (const i of [0, 1, 3]) parts[i]![0]! &= 0x7f;
      const wire = new Uint8Array(parts.reduce((n, f) => n + f.length, 0));
      parts.reduce((o, f) => (wire.set(f, o), o + f.length), 0);
      const got = new Uint8Array(data.length);
      let n = 0;
      const reader = (async () => {
        const buf = new Uint8Array(readSize);
        while (n < data.length) {
          const k = await ws.read(buf);
          if (k === null) break;
          got.set(buf.subarray(0, k), n);
          n += k;
        }
      })();
      const pongs = (async () => {
        const b = new Uint8Array(64);
        await peer.read(b); // the pong for the ping
        return b;
      })();
      // The wire in pieces, each after the reader has gone back to waiting: frames whole, two
      // in one write, and split inside a header or a payload.
      const cuts = new Set<number>();
      let at = 0;
      for (const [i, f] of parts.entries()) {
        if (i !== 1) cuts.add(at); // frames 0 and 1 arrive in one write
        if (i === 3) cuts.add(at + 1); // inside a header
        if (i === 4) cuts.add(at + 1000); // inside a payload
        at += f.length;
      }
      cuts.add(wire.length);
      const ends = [...cuts].sort((a, b) => a - b);
      for (let k = 0; k + 1 < ends.length; k++) {
        await peer.write(wire.slice(ends[k], ends[k + 1]));
        await new Promise((r) => setTimeout(r, 0));
      }
      await withTimeout(reader, 5000);
      assert.deepEqual(got, data, `client=${client} read size ${readSize}`);
      const pong = await withTimeout(pongs, 2000);
      assert.equal(pong[0], 0x8a, "the ping got its pong");
      ws.close();
      peer.close();
    }
  }
});

Deno.test("ws read: a reader with a small buffer does not grow the read-ahead, and a read waiting after a ping is parked again (no buffer of its own)", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const { bulkHeldBytes } = await import("../../src/core/buffer_pool.ts");
  const { OP_PING } = await import("../../src/transport/ws/frame.ts");
  const tick = () => new Promise((r) => setTimeout(r, 10));
  const [peer, ours] = pipe();
  const br = new BufReader(ours, 4096);
  const ws = new WsConn(ours, br, { client: true });
  try {
    const held = bulkHeldBytes();
    // 100 bytes through an 8-byte buffer: every parked read fills the caller's buffer.
    const buf = new Uint8Array(8);
    const first = ws.read(buf);
    await tick();
    await peer.write(encodeFrame(OP_BINARY, new Uint8Array(100).fill(3)));
    let got = (await withTimeout(first, 2000))!;
    while (got < 100) got += (await withTimeout(ws.read(buf), 2000))!;
    assert.ok(br.capacity <= 1024, `the read-ahead stayed small (${br.capacity})`);
    assert.equal(bulkHeldBytes(), held, "no bulk buffer taken");
    // A ping between messages: the read that goes on waiting holds no read-ahead.
    const waiting = ws.read(new Uint8Array(1024));
    await tick();
    await peer.write(encodeFrame(OP_PING, new Uint8Array(0)));
    const pong = new Uint8Array(16);
    assert.ok((await withTimeout(peer.read(pong), 2000))! >= 2);
    assert.equal(pong[0], 0x8a, "the ping got its pong");
    await tick();
    assert.equal(br.capacity, 0, "parked again after the ping");
    await peer.write(encodeFrame(OP_BINARY, new Uint8Array([9])));
    assert.equal(await withTimeout(waiting, 2000), 1, "the same read then gets the next message");
  } finally {
    ws.close();
    peer.close();
  }
});

Deno.test("ws read: after a protocol error behind good bytes, the good bytes come first and every later read fails (nothing after the error is parsed)", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const [peer, ours] = pipe();
  const ws = new WsConn(ours, new BufReader(ours, 4096), { client: true });
  try {
    const bad = encodeFrame(OP_BINARY, new Uint8Array([7, 7]));
    bad[0]! |= 0x40; // a reserved bit
    const after = encodeFrame(OP_BINARY, new Uint8Array([8, 8, 8]));
    const wire = new Uint8Array([
      ...encodeFrame(OP_BINARY, new Uint8Array([1, 2, 3])),
      ...bad,
      ...after,
    ]);
    await peer.write(wire);
    const buf = new Uint8Array(64);
    assert.equal(await withTimeout(ws.read(buf), 2000), 3, "the good bytes");
    await assert.rejects(withTimeout(ws.read(buf), 2000), /reserved bits/);
    await assert.rejects(withTimeout(ws.read(buf), 2000), /reserved bits/, "and again");
  } finally {
    ws.close();
    peer.close();
  }
});

Deno.test("ws read: a peer that sends only pings does not grow the waiting read's memory (hostile keepalive)", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  const { OP_PING } = await import("../../src/transport/ws/frame.ts");
  (await import("node:v8")).setFlagsFromString("--expose-gc");
  const gc = (await import("node:vm")).runInNewContext("gc") as () => void;
  const heap = () => (gc(), gc(), Deno.memoryUsage().heapUsed);
  const [ours, peer] = pipe();
  const ws = new WsConn(ours, new BufReader(ours, 4096), { client: true });
  try {
    const waiting = ws.read(new Uint8Array(1024));
    const ping = encodeFrame(OP_PING, new Uint8Array(0));
    const sink = new Uint8Array(4096);
    const pings = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await peer.write(ping);
        for (let got = 0; got < 6;) got += (await peer.read(sink))!; // the masked pong
      }
    };
    await pings(1000);
    const h0 = heap();
    await pings(20_000);
    const grew = heap() - h0;
    // One promise kept per ping (the bug this guards against) is ~190 bytes: ~3.8 MB here.
    assert.ok(grew < 1 << 20, `heap grew ${grew} bytes over 20,000 pings`);
    await peer.write(encodeFrame(OP_BINARY, new Uint8Array([4, 2])));
    assert.equal(await withTimeout(waiting, 2000), 2, "the waiting read still gets data");
  } finally {
    ws.close();
    peer.close();
  }
});

Deno.test("ws: a WebSocket says its carrier's maxChunk (over a KCP stream, 64 KiB), and nothing over one that has none", async () => {
  const { pipe } = await import("../../src/core/pipe.ts");
  const { BufReader } = await import("../../src/core/bufio.ts");
  const { WrappedConn } = await import("../../src/core/conn.ts");
  const { WsConn } = await import("../../src/transport/ws/conn.ts");
  class Capped extends WrappedConn {
    override get maxChunk(): number {
      return 65536;
    }
  }
  const [a, b] = pipe();
  const capped = new Capped(a);
  assert.equal(new WsConn(capped, new BufReader(capped), { client: true }).maxChunk, 65536);
  assert.equal(new WsConn(b, new BufReader(b), { client: false }).maxChunk, undefined);
  a.close();
  b.close();
});
