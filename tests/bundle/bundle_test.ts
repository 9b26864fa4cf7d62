import assert from "node:assert/strict";
import { Bundle, type BundleOptions } from "../../src/bundle/bundle.ts";
import { BundleListener, dialBundle } from "../../src/bundle/join.ts";
import {
  encodeFrame,
  encodeJoin,
  joinMac,
  readJoin,
  T_DATA,
  T_PONG,
} from "../../src/bundle/wire.ts";
import { pipe } from "../../src/core/pipe.ts";
import { type Conn, ConnBase, type NetAddr, WrappedConn } from "../../src/core/conn.ts";
import { TcpListener } from "../../src/transport/tcp/listener.ts";
import { dialTcp } from "../../src/core/socket.ts";
import {
  concatBytes,
  randomBytes,
  readAll,
  settle,
  sha256,
  until,
  withTimeout,
  writeChunks,
} from "../_helpers.ts";
import { runConnSuite } from "../conformance/conn_suite.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("bundle wire: join and frame codecs", async () => {
  const id = new Uint8Array(16).fill(7);
  const j = {
    version: 1,
    flags: 0,
    linkIndex: 2,
    linkCount: 4,
    bundleId: id,
    mac: joinMac("k", id, 2),
  };
  const [a, b] = pipe();
  await a.write(encodeJoin(j));
  assert.deepEqual(await readJoin(b), j);
  assert.equal(
    hex(encodeFrame(T_DATA, 0x01020304, new Uint8Array([9]))),
    "0100000101020304" + "09",
  );
  assert.notDeepEqual(joinMac("k", id, 2), joinMac("other", id, 2));
  a.close();
});

/** A link that delays each write by a seeded random time (reorders across links) and can be killed. */
class FaultyLink extends ConnBase {
  #chain = Promise.resolve();
  constructor(readonly inner: Conn, readonly maxDelay: number, readonly rnd: () => number) {
    super();
  }
  get localAddr(): NetAddr {
    return this.inner.localAddr;
  }
  get remoteAddr(): NetAddr {
    return this.inner.remoteAddr;
  }
  read(p: Uint8Array) {
    return this.inner.read(p);
  }
  write(p: Uint8Array): Promise<number> {
    const copy = p.slice();
    const d = Math.floor(this.rnd() * this.maxDelay);
    this.#chain = this.#chain.then(() => new Promise((r) => setTimeout(r, d))).then(() =>
      this.inner.write(copy).then(() => {})
    );
    return this.#chain.then(() => p.length);
  }
  closeWrite() {
    return this.inner.closeWrite();
  }
  close() {
    this.inner.close();
  }
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

/** Two bundles joined by `n` in-memory links, optionally delayed. */
function pairOverPipes(n: number, o: Partial<BundleOptions> = {}, delay = 0, seed = 1) {
  const rnd = seeded(seed);
  const addr = { transport: "pipe", hostname: "x", port: 1 };
  const a = new Bundle(addr, addr, { scheduler: "round-robin", ...o }, o.windowFrames ?? 256);
  const b = new Bundle(addr, addr, { scheduler: "round-robin", ...o }, o.windowFrames ?? 256);
  const links: Conn[][] = [];
  for (let i = 0; i < n; i++) {
    const [x, y] = pipe({ capacity: 256 * 1024 });
    const lx = delay ? new FaultyLink(x, delay, rnd) : x;
    const ly = delay ? new FaultyLink(y, delay, rnd) : y;
    a.addLink(i, lx);
    b.addLink(i, ly);
    links.push([lx, ly]);
  }
  return { a, b, links };
}

Deno.test("bundle: frames striped over 4 links with random per-link delays arrive in order, byte-exact", async () => {
  const { a, b } = pairOverPipes(4, {}, 5, 3);
  try {
    const data = randomBytes(2 << 20);
    const [, got] = await withTimeout(
      Promise.all([writeChunks(a, data, 50_000).then(() => a.closeWrite()), readAll(b)]),
      20_000,
    );
    assert.equal(await sha256(got), await sha256(data));
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("bundle: a link killed mid-transfer loses nothing (re-injection on the others)", async () => {
  const { a, b, links } = pairOverPipes(4, {}, 2, 9);
  try {
    const data = randomBytes(4 << 20);
    const reading = readAll(b);
    const writing = writeChunks(a, data, 64 * 1024).then(() => a.closeWrite());
    await new Promise((r) => setTimeout(r, 30));
    links[1]![0]!.close(); // the link dies under load
    const [, got] = await withTimeout(Promise.all([writing, reading]), 30_000);
    assert.equal(got.length, data.length);
    assert.equal(await sha256(got), await sha256(data));
    assert.equal(a.aliveLinks, 3);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("bundle: memory stays bounded by the window when the reader stalls", async () => {
  const { a, b } = pairOverPipes(2, { windowFrames: 16 });
  try {
    let written = 0;
    const writer = (async () => {
      const chunk = new Uint8Array(16 * 1024);
      for (;;) {
        await a.write(chunk);
        written += chunk.length;
      }
    })().catch(() => {});
    await settle(() => written);
    assert.ok(b.bufferedBytes >= 8 * 16 * 1024, `buffered only ${b.bufferedBytes}`);
    assert.ok(b.bufferedBytes <= 16 * 16 * 1024, `buffered ${b.bufferedBytes}`);
    assert.ok(written <= 16 * 16 * 1024 + 4 * 64 * 1024, `writer ran ahead: ${written}`);
    a.close();
    b.close();
    await writer;
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("bundle: closes when fewer than minLinks links survive", async () => {
  const { a, b, links } = pairOverPipes(2, { minLinks: 2 });
  try {
    links[0]![0]!.close();
    await withTimeout(a.closed, 2000, "bundle close");
    assert.ok(a.isClosed);
    await assert.rejects(a.write(new Uint8Array(1)));
  } finally {
    a.close();
    b.close();
  }
});

function tcpPair(tunnels: number, keyA: string, keyB: string) {
  const l = new BundleListener([TcpListener.listen("127.0.0.1:0")], {
    tunnels,
    key: keyA,
    bundle: {},
  });
  const dialing = dialBundle(() => dialTcp("127.0.0.1", l.addr.port), {
    tunnels,
    key: keyB,
    bundle: {},
  });
  return { l, dialing };
}

Deno.test("bundle join: a stranger's link with a wrong MAC is refused; the right key joins all links", async () => {
  const bad = tcpPair(2, "secret", "guess");
  try {
    await assert.rejects(bad.dialing, /bad MAC/);
    assert.ok(bad.l.refused >= 1);
  } finally {
    await bad.l.close();
  }
  const good = tcpPair(4, "secret", "secret");
  const client = await good.dialing;
  const server = (await withTimeout(good.l.accept(), 3000)) as Bundle;
  try {
    await until(() => client.aliveLinks === 4 && server.aliveLinks === 4, 5000, "4 links up");
    await client.write(new TextEncoder().encode("over four links"));
    const buf = new Uint8Array(100);
    const n = await withTimeout(server.read(buf), 3000);
    assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "over four links");
  } finally {
    client.close();
    server.close();
    await good.l.close();
  }
});

runConnSuite("mtmux bundle (4 TCP links)", async () => {
  const { l, dialing } = tcpPair(4, "", "");
  const a = await dialing;
  const b = (await l.accept())!;
  return {
    a,
    b,
    cleanup: async () => {
      a.close();
      b.close();
      await l.close();
    },
  };
}, { maxBuffered: 8 << 20 });

Deno.test("bundle over TCP: a killed link is re-dialed and the bundle is whole again", async () => {
  const l = new BundleListener([TcpListener.listen("127.0.0.1:0")], {
    tunnels: 3,
    key: "k",
    bundle: {},
  });
  const links: Conn[] = [];
  const a = await dialBundle(async () => {
    const c = await dialTcp("127.0.0.1", l.addr.port);
    links.push(c);
    return c;
  }, { tunnels: 3, key: "k", bundle: {} });
  const b = (await l.accept())!;
  try {
    await until(() => a.aliveLinks === 3, 5000, "3 links up");
    links[0]!.close();
    await until(() => links.length === 4, 5000, "a fourth dial replaced the dead link");
    await until(() => a.aliveLinks === 3, 5000, "the bundle whole again");
    const data = randomBytes(1 << 20);
    const [, got] = await withTimeout(
      Promise.all([writeChunks(a, data).then(() => a.closeWrite()), readAll(b)]),
      10_000,
    );
    assert.equal(await sha256(got), await sha256(data));
  } finally {
    a.close();
    b.close();
    await l.close();
  }
});

/** A link that silently swallows its `n`-th write (a frame lost without the link dying). */
class SwallowingLink extends ConnBase {
  #count = 0;
  constructor(readonly inner: Conn, readonly n: number) {
    super();
  }
  get localAddr(): NetAddr {
    return this.inner.localAddr;
  }
  get remoteAddr(): NetAddr {
    return this.inner.remoteAddr;
  }
  read(p: Uint8Array) {
    return this.inner.read(p);
  }
  write(p: Uint8Array): Promise<number> {
    if (++this.#count === this.n) return Promise.resolve(p.length);
    return this.inner.write(p);
  }
  closeWrite() {
    return this.inner.closeWrite();
  }
  close() {
    this.inner.close();
  }
}

Deno.test("bundle: a frame lost on a live link is asked for again after the missing-frame timeout", async () => {
  const addr = { transport: "pipe", hostname: "x", port: 1 };
  const o = { scheduler: "round-robin" as const, timeout: 150 };
  const a = new Bundle(addr, addr, o, 256);
  const b = new Bundle(addr, addr, o, 256);
  for (let i = 0; i < 2; i++) {
    const [x, y] = pipe();
    a.addLink(i, i === 0 ? new SwallowingLink(x, 5) : x);
    b.addLink(i, y);
  }
  try {
    const data = randomBytes(400_000);
    const [, got] = await withTimeout(
      Promise.all([writeChunks(a, data).then(() => a.closeWrite()), readAll(b)]),
      10_000,
    );
    assert.equal(await sha256(got), await sha256(data));
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("bundle: a short PONG from a hostile peer kills that link only; data on the others is intact", async () => {
  const addr = { transport: "pipe", hostname: "x", port: 1 };
  const a = new Bundle(addr, addr, { scheduler: "round-robin" });
  const b = new Bundle(addr, addr, { scheduler: "round-robin" });
  const [x0, y0] = pipe({ capacity: 256 * 1024 });
  const [x1, y1] = pipe({ capacity: 256 * 1024 });
  const [evil, evilPeer] = pipe({ capacity: 256 * 1024 });
  a.addLink(0, x0);
  b.addLink(0, y0);
  a.addLink(1, x1);
  b.addLink(1, y1);
  b.addLink(2, evil);
  try {
    assert.equal(b.aliveLinks, 3);
    await evilPeer.write(encodeFrame(T_PONG, 0, new Uint8Array(2)));
    // The bad frame ends that link: its far end is closed by the bundle.
    assert.equal(await withTimeout(evilPeer.read(new Uint8Array(16)), 2000, "evil link end"), null);
    assert.equal(b.aliveLinks, 2);
    const data = randomBytes(256 * 1024);
    const [, got] = await withTimeout(
      Promise.all([writeChunks(a, data, 30_000).then(() => a.closeWrite()), readAll(b)]),
      10_000,
    );
    assert.equal(await sha256(got), await sha256(data));
  } finally {
    a.close();
    b.close();
  }
});

/** A link that can turn into a black hole: writes still "succeed" but nothing arrives. */
class BlackholeLink extends WrappedConn {
  holed = false;
  override write(p: Uint8Array): Promise<number> {
    return this.holed ? Promise.resolve(p.length) : this.inner.write(p);
  }
}

Deno.test("bundle: a link that silently stops forwarding (no RST) loses nothing; the others carry on", async () => {
  const addr = { transport: "pipe", hostname: "x", port: 1 };
  const o = { scheduler: "round-robin" as const, timeout: 5000 };
  const a = new Bundle(addr, addr, o);
  const b = new Bundle(addr, addr, o);
  const holes: BlackholeLink[] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = pipe({ capacity: 256 * 1024 });
    const hx = new BlackholeLink(x);
    const hy = new BlackholeLink(y);
    if (i === 2) holes.push(hx, hy);
    a.addLink(i, hx);
    b.addLink(i, hy);
  }
  try {
    const data = randomBytes(4 << 20);
    let sent = 0;
    const writer = (async () => {
      for (let off = 0; off < data.length; off += 32 * 1024) {
        await a.write(data.subarray(off, off + 32 * 1024));
        sent += 32 * 1024;
        if (sent === 512 * 1024) { for (const h of holes) h.holed = true; // mid-transfer
         }
      }
      await a.closeWrite();
    })();
    const [, got] = await withTimeout(Promise.all([writer, readAll(b)]), 12_000, "transfer");
    assert.equal(await sha256(got), await sha256(data));
    assert.equal(a.aliveLinks, 4, "the silent link is suspected, not yet declared dead");
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("bundle listener: bundles past maxBundles are refused as full; the ones open keep working", async () => {
  const l = new BundleListener([TcpListener.listen("127.0.0.1:0")], {
    tunnels: 1,
    key: "k",
    bundle: {},
    maxBundles: 1,
  });
  const o = { tunnels: 1, key: "k", bundle: {} };
  const first = await dialBundle(() => dialTcp("127.0.0.1", l.addr.port), o);
  const served = (await withTimeout(l.accept(), 3000))!;
  try {
    await assert.rejects(
      dialBundle(() => dialTcp("127.0.0.1", l.addr.port), o),
      /bundle full/,
    );
    assert.equal(l.refused, 1);
    await first.write(new TextEncoder().encode("ok"));
    const b = new Uint8Array(2);
    assert.equal(await withTimeout(served.read(b), 3000), 2);
  } finally {
    first.close();
    served.close();
    await l.close();
  }
});

Deno.test("bundle: frames that arrive together on a link reach a waiting reader together (the link reader takes every buffered frame before it yields), so a relay writes them at once", async () => {
  const addr = { transport: "pipe", hostname: "x", port: 1 };
  const b = new Bundle(addr, addr, { scheduler: "round-robin" });
  const [peer, link] = pipe({ capacity: 256 * 1024 });
  b.addLink(0, link);
  try {
    const buf = new Uint8Array(65536);
    const waiting = b.read(buf);
    const frames = Array.from(
      { length: 8 },
      (_, i) => encodeFrame(T_DATA, i, new Uint8Array(1000).fill(i + 1)),
    );
    await peer.write(concatBytes(frames));
    assert.equal(await withTimeout(waiting, 2000), 8000, "one read takes all eight frames");
    for (let i = 0; i < 8; i++) assert.equal(buf[i * 1000 + 999], i + 1);
  } finally {
    b.close();
    peer.close();
  }
});
