import assert from "node:assert/strict";
import { builtinRegistries, cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import type { Conn } from "../../src/core/conn.ts";
import { silentLogger } from "../../src/core/log.ts";
import { readAll, withTimeout } from "../_helpers.ts";

Deno.test("a plugin handler that returns a non-promise (plain JavaScript) is still served and counted", async () => {
  const reg = builtinRegistries();
  let seen = 0;
  reg.handlers.register("hello", () => ({
    // Synchronous, and returns nothing: done when it returns (the service closes the conn).
    handle(_conn: Conn) {
      seen++;
      return undefined as unknown as Promise<void>;
    },
  }));
  await using rt = await Runtime.start(cliConfig(["hello://127.0.0.1:0"], [], reg), {
    registries: reg,
    log: silentLogger,
  });
  const svc = rt.services[0]!;
  for (let i = 0; i < 2; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: svc.listener.addr.port });
    const got = await withTimeout(readAll(c), 3000);
    assert.equal(got.length, 0, "closed by the service once the handler returned");
    c.close();
  }
  assert.equal(seen, 2, "the accept loop kept going");
  assert.equal(svc.stats.totalConns, 2);
  assert.equal(svc.stats.currentConns, 0);
});

Deno.test("a handler gets the carrier's waitReadable through the service's counting wrapper (mux streams: the relay lends them no buffer while quiet)", async () => {
  const reg = builtinRegistries();
  const seen: string[] = [];
  reg.handlers.register("probe", () => ({
    handle(conn: Conn) {
      seen.push(typeof conn.waitReadable);
      return Promise.resolve();
    },
  }));
  await using srv = await Runtime.start(cliConfig(["probe+mtcp://127.0.0.1:0"], [], reg), {
    registries: reg,
    log: silentLogger,
  });
  await using plain = await Runtime.start(cliConfig(["probe://127.0.0.1:0"], [], reg), {
    registries: reg,
    log: silentLogger,
  });
  await using front = await Runtime.start(
    cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], [
      `forward+mtcp://127.0.0.1:${srv.services[0]!.listener.addr.port}`,
    ]),
    { log: silentLogger },
  );
  for (
    const port of [front.services[0]!.listener.addr.port, plain.services[0]!.listener.addr.port]
  ) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await withTimeout(readAll(c), 3000);
    c.close();
  }
  assert.deepEqual(seen, ["function", "undefined"], "an mtcp stream has it, a TCP socket not");
});
