/** KCP sessions over a lossy loopback relay, bad input, and the KCP seed page's forms. */
import assert from "node:assert/strict";
import { dialKcp, KcpListener } from "../../src/kcp/session.ts";
import { finish, KCP_DEFAULTS, type KcpConfig } from "../../src/kcp/config.ts";
import { Kcp } from "../../src/kcp/arq.ts";
import { randomBytes, sha256, withTimeout, writeChunks } from "../_helpers.ts";

/** A UDP relay between a client and a server that drops, duplicates and reorders (seeded). */
function lossyRelay(target: number, seed: number, loss: number, dup: number, reorder: number) {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const up = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let client: Deno.NetAddr | undefined;
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: target };
  const stats = { dropped: 0, sent: 0 };
  const held: [Deno.DatagramConn, Uint8Array, Deno.NetAddr][] = [];
  const forward = async (via: Deno.DatagramConn, d: Uint8Array, dst: Deno.NetAddr) => {
    if (rnd() < loss) {
      stats.dropped++;
      return;
    }
    if (rnd() < reorder) {
      held.push([via, d.slice(), dst]); // sent after the next datagram
      return;
    }
    await via.send(d, dst).catch(() => {});
    stats.sent++;
    if (rnd() < dup) await via.send(d, dst).catch(() => {});
    for (const [v, x, t] of held.splice(0)) await v.send(x, t).catch(() => {});
  };
  const a = (async () => {
    try {
      for (;;) {
        const [d, from] = await sock.receive();
        client = from as Deno.NetAddr;
        await forward(up, d, to);
      }
    } catch { /* closed */ }
  })();
  const b = (async () => {
    try {
      for (;;) {
        const [d] = await up.receive();
        if (client) await forward(sock, d, client);
      }
    } catch { /* closed */ }
  })();
  return {
    port: (sock.addr as Deno.NetAddr).port,
    stats,
    close: async () => {
      sock.close();
      up.close();
      await a;
      await b;
    },
  };
}

function cfg(extra: Partial<KcpConfig> = {}): KcpConfig {
  return finish({ ...KCP_DEFAULTS, mode: "fast3", ...extra });
}

async function transfer(
  c: KcpConfig,
  viaRelay?: (port: number) => ReturnType<typeof lossyRelay>,
  size = 1 << 20,
) {
  const l = new KcpListener("127.0.0.1:0", c);
  const relay = viaRelay?.(l.addr.port);
  const client = await dialKcp(`127.0.0.1:${relay?.port ?? l.addr.port}`, c);
  const data = randomBytes(size);
  try {
    const sending = writeChunks(client, data, 20000);
    const server = (await withTimeout(l.accept(), 5000, "accept"))!;
    const got = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = await withTimeout(server.read(got.subarray(off)), 10_000, `read at ${off}`);
      if (n === null) break;
      off += n;
    }
    await sending;
    assert.equal(off, size);
    assert.equal(await sha256(got), await sha256(data));
    server.close();
    return { relay };
  } finally {
    client.close();
    await l.close();
    await relay?.close();
  }
}

Deno.test("kcp session: 1 MiB byte-exact over clean loopback (aes, FEC 10/3)", async () => {
  await transfer(cfg());
});

Deno.test("kcp session: byte-exact through 10% loss, duplicates and reordering (seeded)", async () => {
  const r = await transfer(
    cfg({ crypt: "salsa20" }),
    (p) => lossyRelay(p, 7, 0.1, 0.05, 0.05),
    512 * 1024,
  );
  assert.ok(r.relay!.stats.dropped > 10, `relay dropped ${r.relay!.stats.dropped}`);
});

Deno.test("kcp session: FEC recovers lost packets without waiting for retransmission", async () => {
  // A single loss per group is within what 3 parity shards recover.
  const c = cfg({ crypt: "none" });
  const l = new KcpListener("127.0.0.1:0", c);
  const relay = lossyRelay(l.addr.port, 11, 0.05, 0, 0);
  const client = await dialKcp(`127.0.0.1:${relay.port}`, c);
  try {
    const data = randomBytes(400 * 1024);
    const sending = writeChunks(client, data, 20000);
    const server = (await l.accept())!;
    const got = new Uint8Array(data.length);
    let off = 0;
    while (off < got.length) off += (await withTimeout(server.read(got.subarray(off)), 10_000))!;
    await sending;
    assert.equal(await sha256(got), await sha256(data));
    assert.ok(relay.stats.dropped > 0);
    const { KcpSession } = await import("../../src/kcp/session.ts");
    assert.ok(server instanceof KcpSession);
    assert.ok(server.fecRecovered > 0, "some losses were repaired from parity");
    server.close();
  } finally {
    client.close();
    await l.close();
    await relay.close();
  }
});

Deno.test("kcp listener: garbage and wrong-key datagrams are dropped; a good client still connects", async () => {
  const c = cfg();
  const l = new KcpListener("127.0.0.1:0", c);
  const junk = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    for (const n of [1, 19, 20, 100, 1400]) {
      await junk.send(randomBytes(n), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: l.addr.port,
      });
    }
    const wrong = await dialKcp(`127.0.0.1:${l.addr.port}`, cfg({ key: "not the key" }));
    await wrong.write(new Uint8Array(100));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(l.sessionCount, 0, "no session from garbage or a wrong key");
    wrong.close();
    const good = await dialKcp(`127.0.0.1:${l.addr.port}`, c);
    await good.write(new TextEncoder().encode("hi"));
    const s = (await withTimeout(l.accept(), 3000))!;
    const b = new Uint8Array(2);
    assert.equal(await withTimeout(s.read(b), 3000), 2);
    s.close();
    good.close();
  } finally {
    junk.close();
    await l.close();
  }
});

Deno.test("kcp engine: stream-mode segments are ordered and the window limits unacked data", () => {
  const out: Uint8Array[] = [];
  let now = 0;
  const a = new Kcp(1, (d) => out.push(d), () => now);
  a.setNoDelay(1, 10, 2, 1);
  a.setWindow(4, 4);
  a.rmtWnd = 4;
  a.send(new Uint8Array(a.mss * 10));
  a.flush(false);
  assert.equal(a.sndBuf.length, 4, "only the window is in flight");
  const b = new Kcp(1, () => {}, () => now);
  for (const d of out) b.input(d);
  assert.equal(b.readable, a.mss * 4);
  now += 1000;
  out.length = 0;
  a.flush(false);
  assert.ok(out.length > 0, "unacked segments are retransmitted after the RTO");
});

Deno.test("kcp engine: a receiver sends ACKs once half a datagram of them waits, not only on its timer", () => {
  const now = 0;
  const fromA: Uint8Array[] = [];
  const a = new Kcp(7, (d) => fromA.push(d), () => now);
  a.setNoDelay(0, 30, 2, 1);
  a.setWindow(1024, 1024);
  a.rmtWnd = 1024;
  a.send(new Uint8Array(a.mss * 100));
  a.flush(false);
  assert.equal(fromA.length, 100);
  const fromB: Uint8Array[] = [];
  const b = new Kcp(7, (d) => fromB.push(d), () => now);
  b.setWindow(1024, 1024);
  const perDatagram = Math.floor(b.mtu / 24);
  // Fewer than half a datagram of ACKs: they wait for b's timer (kcp-go's behaviour).
  for (const d of fromA.slice(0, perDatagram / 2 - 1)) b.input(d);
  assert.equal(fromB.length, 0);
  // Feeding the rest flushes ACKs on the way, without any timer.
  for (const d of fromA.slice(perDatagram / 2 - 1)) b.input(d);
  assert.ok(fromB.length >= 2, `ACK datagrams sent early: ${fromB.length}`);
  // They acknowledge what arrived: the sender's window slides.
  for (const d of fromB) a.input(d);
  assert.ok(a.sndBuf.length < 100 - perDatagram / 2, `still unacked: ${a.sndBuf.length}`);
});
