import assert from "node:assert/strict";
import { Chain, ChainNode, ChainRouter, Hop, RouteError } from "../../src/chain/router.ts";
import { Selector } from "../../src/chain/selector.ts";
import type { Conn } from "../../src/core/conn.ts";
import type { Connector, DialContext, Dialer, Network } from "../../src/core/types.ts";
import { pipe } from "../../src/core/pipe.ts";

/** Records what each hop was asked, to check the route order. */
function recorder(log: string[], name: string, failDial = false) {
  const dialer: Dialer = {
    async dial(addr: string, ctx: DialContext): Promise<Conn> {
      if (failDial) throw new Error(`${name} down`);
      log.push(`${name}.dial(${addr})`);
      return await ctx.netDial(addr).catch(() => pipe()[0]);
    },
  };
  const connector: Connector = {
    connect(conn: Conn, network: Network, address: string): Promise<Conn> {
      log.push(`${name}.connect(${network} ${address})`);
      return Promise.resolve(conn);
    },
  };
  return { dialer, connector };
}

Deno.test("multi-hop route: hop n is dialed through hop n-1, the last connector asks for the target", async () => {
  const log: string[] = [];
  const a = recorder(log, "A");
  const b = recorder(log, "B");
  const chain = new Chain("c", [
    new Hop(
      "h0",
      [new ChainNode("A", "127.0.0.1:1", a.dialer, a.connector)],
      new Selector(undefined),
    ),
    new Hop(
      "h1",
      [new ChainNode("B", "127.0.0.1:2", b.dialer, b.connector)],
      new Selector(undefined),
    ),
  ]);
  const r = new ChainRouter({ chain });
  const c = await r.dial("tcp", "target:80");
  c.close();
  assert.deepEqual(log, [
    "B.dial(127.0.0.1:2)",
    "A.dial(127.0.0.1:1)",
    "A.connect(tcp 127.0.0.1:2)",
    "B.connect(tcp target:80)",
  ]);
});

Deno.test("retries try another node and the failing node is marked", async () => {
  const log: string[] = [];
  const bad = recorder(log, "bad", true);
  const good = recorder(log, "good");
  const nBad = new ChainNode("bad", "127.0.0.1:1", bad.dialer, bad.connector);
  const nGood = new ChainNode("good", "127.0.0.1:2", good.dialer, good.connector);
  const chain = new Chain("c", [new Hop("h", [nBad, nGood], new Selector({ strategy: "fifo" }))]);
  const c = await new ChainRouter({ chain, retries: 1 }).dial("tcp", "t:1");
  c.close();
  assert.equal(nBad.marker.count, 1);
  assert.deepEqual(log, ["good.dial(127.0.0.1:2)", "good.connect(tcp t:1)"]);
  await assert.rejects(
    new ChainRouter({ chain: new Chain("x", [new Hop("h", [nBad], new Selector(undefined))]) })
      .dial("tcp", "t:1"),
    RouteError,
  );
});

Deno.test("dial timeout aborts a hanging route", async () => {
  const hang: Dialer = {
    dial: (_a, ctx) =>
      new Promise((_, rej) => ctx.signal!.addEventListener("abort", () => rej(ctx.signal!.reason))),
  };
  const chain = new Chain("c", [
    new Hop("h", [
      new ChainNode("n", "x:1", hang, { connect: (c) => Promise.resolve(c) }),
    ], new Selector(undefined)),
  ]);
  const t0 = Date.now();
  await assert.rejects(new ChainRouter({ chain, dialTimeout: 200 }).dial("tcp", "t:1"), /timeout/);
  assert.ok(Date.now() - t0 < 2000);
});

Deno.test("a hop that accepts TCP and never answers is cut at dialTimeout, counted as failed, and the next node serves", async () => {
  const { cliConfig } = await import("../../src/builtins.ts");
  const { Runtime } = await import("../../src/runtime/runtime.ts");
  const { Logger } = await import("../../src/core/log.ts");
  const { dialTcp } = await import("../../src/core/socket.ts");
  const { echoServer, readAll, withTimeout } = await import("../_helpers.ts");
  // The silent hop: accepts and holds every connection without a byte.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const holding = (async () => {
    try {
      for (;;) held.push(await silent.accept());
    } catch { /* closed */ }
  })();
  const good = await Runtime.start(cliConfig(["socks5://127.0.0.1:0"], []));
  const echo = echoServer();
  const lines: string[] = [];
  const sp = (silent.addr as Deno.NetAddr).port;
  const rt = await Runtime.start(
    cliConfig(
      [`tcp://127.0.0.1:0/127.0.0.1:${echo.port}?dialTimeout=300ms&retries=1`],
      [`socks5://127.0.0.1:${sp},127.0.0.1:${good.services[0]!.listener.addr.port}?strategy=fifo`],
    ),
    { log: new Logger("warn", {}, (l) => lines.push(l)) },
  );
  try {
    const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
    await c.write(new TextEncoder().encode("ping"));
    await c.closeWrite();
    assert.equal(new TextDecoder().decode(await withTimeout(readAll(c), 5000)), "ping");
    c.close();
    assert.ok(held.length >= 1, "the silent hop was tried first");
    assert.ok(
      lines.some((l) => l.includes("route(retry=0)") && l.includes("dial timeout")),
      lines.join("\n"),
    );
  } finally {
    await rt.close();
    await good.close();
    await echo.close();
    silent.close();
    for (const c of held) c.close();
    await holding;
  }
});
