import assert from "node:assert/strict";
import { cliConfig } from "../src/builtins.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { dialTcp } from "../src/core/socket.ts";
import {
  echoServer,
  randomBytes,
  readAll,
  sha256,
  udpEchoServer,
  until,
  withTimeout,
  writeChunks,
} from "./_helpers.ts";

function port(rt: Runtime, i = 0): number {
  return rt.services[i]!.listener.addr.port;
}

async function roundTrip(p: number, size: number): Promise<void> {
  const c = await dialTcp("127.0.0.1", p);
  try {
    const data = randomBytes(size);
    const [, got] = await Promise.all([
      writeChunks(c, data).then(() => c.closeWrite()),
      readAll(c),
    ]);
    assert.equal(got.length, data.length);
    assert.equal(await sha256(got), await sha256(data));
  } finally {
    c.close();
  }
}

Deno.test("tcp forward: 1 MiB byte-exact on 8 concurrent connections", async () => {
  const echo = echoServer();
  await using rt = await Runtime.start(cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
  try {
    await withTimeout(
      Promise.all(Array.from({ length: 8 }, () => roundTrip(port(rt), 1 << 20))),
      20_000,
    );
  } finally {
    await rt.close();
    await echo.close();
  }
});

Deno.test("two-hop chain of our own forward nodes delivers byte-exact", async () => {
  const echo = echoServer();
  // C forwards to echo, B forwards to C; A's chain is B then C (forward connectors).
  const c = await Runtime.start(cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
  const b = await Runtime.start(cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${port(c)}`], []));
  const a = await Runtime.start(
    cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [
      `forward://127.0.0.1:${port(b)}`,
      `forward://127.0.0.1:${port(c)}`,
    ]),
  );
  try {
    await withTimeout(
      Promise.all([roundTrip(port(a), 1 << 20), roundTrip(port(a), 100_000)]),
      20_000,
    );
    assert.equal(a.chains.get("chain-0")!.hops.length, 2);
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await echo.close();
  }
});

Deno.test("tcp forward: several targets round-robin; a dead target is marked and skipped", async () => {
  const echo = echoServer();
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close(); // nothing listens there now: dials are refused
  await using rt = await Runtime.start(
    cliConfig([
      `tcp://127.0.0.1:0/127.0.0.1:${deadPort},127.0.0.1:${echo.port}?maxFails=1&failTimeout=30s`,
    ], []),
  );
  try {
    // The first connection may hit the dead target and be closed; afterwards all succeed.
    for (let i = 0; i < 4; i++) {
      const c = await dialTcp("127.0.0.1", port(rt));
      await c.write(new Uint8Array([i]));
      await c.closeWrite();
      const got = await withTimeout(readAll(c), 5000);
      c.close();
      if (i >= 2) assert.deepEqual([...got], [i]);
    }
  } finally {
    await rt.close();
    await echo.close();
  }
});

Deno.test("udp forward with keepalive: many datagrams round-trip byte-exact", async () => {
  const echo = udpEchoServer();
  const echoPort = echo.port;
  await using rt = await Runtime.start(
    cliConfig([`udp://127.0.0.1:0/127.0.0.1:${echoPort}?keepalive=true&ttl=2s`], []),
  );
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: port(rt) };
    for (let i = 0; i < 20; i++) {
      const msg = randomBytes(1 + i * 50);
      await client.send(msg, to);
      const [back] = await withTimeout(client.receive(), 3000, `datagram ${i}`);
      assert.equal(await sha256(back), await sha256(msg));
    }
  } finally {
    client.close();
    await rt.close();
    await echo.close();
  }
});

Deno.test("udp forward without keepalive: one reply per session, then a new session works", async () => {
  const echo = udpEchoServer();
  const echoPort = echo.port;
  await using rt = await Runtime.start(cliConfig([`udp://127.0.0.1:0/127.0.0.1:${echoPort}`], []));
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: port(rt) };
    for (let i = 0; i < 3; i++) {
      await client.send(new Uint8Array([i, i]), to);
      const [back] = await withTimeout(client.receive(), 3000);
      assert.deepEqual([...back], [i, i]);
    }
  } finally {
    client.close();
    await rt.close();
    await echo.close();
  }
});

Deno.test("garbage and abrupt closes on a forward port do not disturb healthy connections", async () => {
  const echo = echoServer();
  await using rt = await Runtime.start(cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
  try {
    const healthy = roundTrip(port(rt), 1 << 20);
    for (let i = 0; i < 10; i++) {
      const c = await dialTcp("127.0.0.1", port(rt));
      await c.write(randomBytes(100));
      c.close(); // reset mid-stream
    }
    await withTimeout(healthy, 10_000);
  } finally {
    await rt.close();
    await echo.close();
  }
});

Deno.test("udp forward: an expired session releases its upstream socket", async () => {
  const echo = udpEchoServer();
  const echoPort = echo.port;
  const rt = await Runtime.start(
    cliConfig([`udp://127.0.0.1:0/127.0.0.1:${echoPort}?keepalive=true&ttl=200ms`], []),
  );
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await client.send(new Uint8Array([7]), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: port(rt),
    });
    await withTimeout(client.receive(), 3000);
    assert.equal(rt.services[0]!.connections, 1);
    const t0 = Date.now();
    while (rt.services[0]!.connections > 0 && Date.now() - t0 < 3000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(rt.services[0]!.connections, 0, "session should end after ttl");
  } finally {
    client.close();
    await rt.close();
    await echo.close();
  }
});

Deno.test("close(grace) lets a live connection finish, then closes stragglers", async () => {
  const echo = echoServer();
  const rt = await Runtime.start(cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
  const c = await dialTcp("127.0.0.1", port(rt));
  const idle = await dialTcp("127.0.0.1", port(rt));
  try {
    await c.write(new Uint8Array([1, 2, 3]));
    const buf = new Uint8Array(3);
    assert.equal(await withTimeout(c.read(buf), 3000), 3);
    const closing = rt.close(400);
    // Still served during the grace period: finish this one properly.
    await c.write(new Uint8Array([4]));
    assert.equal(await withTimeout(c.read(buf), 3000), 1);
    await c.closeWrite();
    assert.equal(await withTimeout(c.read(buf), 3000), null);
    // The idle one is cut when the grace period ends.
    assert.equal(await withTimeout(idle.read(buf), 3000), null);
    await closing;
    await assert.rejects(dialTcp("127.0.0.1", port(rt)));
  } finally {
    c.close();
    idle.close();
    await rt.close();
    await echo.close();
  }
});

Deno.test("udp forward: new source addresses past maxSessions are dropped, served again once sessions expire", async () => {
  const echo = udpEchoServer();
  const rt = await Runtime.start(
    cliConfig(
      [`udp://127.0.0.1:0/127.0.0.1:${echo.port}?keepalive=true&ttl=300ms&maxSessions=2`],
      [],
    ),
  );
  const clients = Array.from(
    { length: 3 },
    () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
  );
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: port(rt) };
    for (const c of clients.slice(0, 2)) {
      await c.send(new Uint8Array([1]), to);
      await withTimeout(c.receive(), 3000, "served source");
    }
    // The third source is over the limit: its datagram is dropped (counted), no session made.
    const l = rt.services[0]!.listener as unknown as { dropped: number };
    await clients[2]!.send(new Uint8Array([2]), to);
    await until(() => l.dropped === 1, 3000, "third source dropped");
    // Once the first two go idle past ttl, the third is served.
    const got = await withTimeout(
      (async () => {
        for (;;) {
          await clients[2]!.send(new Uint8Array([4]), to);
          const r = await Promise.race([
            clients[2]!.receive().then(([d]) => d),
            new Promise<null>((r) => setTimeout(() => r(null), 100)),
          ]);
          if (r) return r;
        }
      })(),
      5000,
      "served after expiry",
    );
    assert.ok(got.length === 1);
  } finally {
    for (const c of clients) c.close();
    await rt.close();
    await echo.close();
  }
});
