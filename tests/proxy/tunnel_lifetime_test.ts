/**
 * A proxy handler's task lasts as long as its tunnel: the service counts the conn until the relay
 * ends, whichever handler served it (they return the relay's promise rather than awaiting it, so
 * no frame of theirs is kept per idle tunnel; docs/performance.md).
 */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { echoServer, withTimeout } from "../_helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The proxy's listen URL and the front's forward node up to its address. */
const CASES: [listen: string, forward: string][] = [
  ["socks5://127.0.0.1:0", "socks5://"],
  ["socks4://127.0.0.1:0", "socks4://"],
  ["http://127.0.0.1:0", "http://"],
  ["auto://127.0.0.1:0", "socks5://"],
  ["auto://127.0.0.1:0", "http://"],
  ["relay://127.0.0.1:0", "relay://"],
  ["relay://127.0.0.1:0?nodelay=true", "relay://"],
  ["ss://aes-128-gcm:pw@127.0.0.1:0", "ss://aes-128-gcm:pw@"],
];

for (const [listen, forward] of CASES) {
  const name = `${listen.replace(/:\/\/.*?(\?|$)/, "$1")} carrying ${forward.replace(/:.*/, "")}`;
  Deno.test(`${name}: the conn counts until the tunnel ends`, async () => {
    const echo = echoServer();
    const proxy = await Runtime.start(cliConfig([listen], []));
    const pp = proxy.services[0]!.listener.addr.port;
    const counted = (): number => proxy.services[0]!.connections;
    const front = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [`${forward}127.0.0.1:${pp}`]),
    );
    const c = await Deno.connect({
      hostname: "127.0.0.1",
      port: front.services[0]!.listener.addr.port,
    });
    try {
      await c.write(new Uint8Array([1, 2, 3]));
      const b = new Uint8Array(3);
      let got = 0;
      while (got < 3) {
        const n = await withTimeout(c.read(b.subarray(got)), 5000);
        if (n === null) assert.fail("the tunnel closed before the echo");
        got += n;
      }
      assert.deepEqual(b, new Uint8Array([1, 2, 3]));
      await sleep(50); // a handler that let go of its tunnel early would have finished by now
      assert.equal(counted(), 1, "the open tunnel is still counted");
      c.close();
      const t0 = Date.now();
      while (counted() !== 0) {
        if (Date.now() - t0 > 5000) assert.fail("the closed tunnel is still counted after 5 s");
        await sleep(10);
      }
    } finally {
      try {
        c.close();
      } catch { /* closed */ }
      await front.close();
      await proxy.close();
      await echo.close();
    }
  });
}
