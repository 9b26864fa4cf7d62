/**
 * A chain hop that accepts TCP and then says nothing, for every node type whose client waits for
 * an answer (a proxy reply, a TLS, WebSocket or SSH handshake, a bundle's hello): the route gives
 * up at `dialTimeout`, the client is closed, and Burrow closes its conn to the hop. (relay, ss and
 * sni clients send their request with the first data and read the answer lazily, as GOST's do,
 * and mtcp/kcp sessions have no handshake: a silent hop there looks like a quiet target until the
 * session's keepalive gives up, docs/gost-proxies.md.)
 */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { Logger } from "../../src/core/log.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { echoServer, withTimeout } from "../_helpers.ts";

const NODES: [string, string][] = [
  ["http", ""],
  ["socks4", ""],
  ["socks5", ""],
  ["tunnel", "?tunnel.id=4d21094e-b74c-4916-86c1-d9fa36ea677b"],
  ["sshd+sshd", ""],
  ["relay+ssh", ""],
  ["forward+tls", ""],
  ["forward+mtls", ""],
  ["forward+ws", ""],
  ["forward+wss", ""],
  ["forward+mws", ""],
  ["forward+mwss", ""],
  ["socks5+mtmux", "?secret=s"],
];

for (const [scheme, query] of NODES) {
  Deno.test(`silent ${scheme} hop: cut at dialTimeout, the client closed, Burrow's conns to the hop closed`, async () => {
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    /** Each accepted conn, and whether Burrow has closed it (its read ended). */
    const held: { c: Deno.Conn; ended: Promise<void> }[] = [];
    const accepting = (async () => {
      try {
        for (;;) {
          const c = await silent.accept();
          const ended = (async () => {
            const b = new Uint8Array(4096);
            try {
              while ((await c.read(b)) !== null) { /* a hello, then nothing back */ }
            } catch { /* reset */ }
          })();
          held.push({ c, ended });
        }
      } catch { /* closed */ }
    })();
    const echo = echoServer();
    const lines: string[] = [];
    const port = (silent.addr as Deno.NetAddr).port;
    const rt = await Runtime.start(
      cliConfig(
        [`tcp://127.0.0.1:0/127.0.0.1:${echo.port}?dialTimeout=400ms&retries=0`],
        [`${scheme}://127.0.0.1:${port}${query}`],
      ),
      { log: new Logger("warn", {}, (l) => lines.push(l)) },
    );
    try {
      const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
      try {
        await c.write(new TextEncoder().encode("ping")).catch(() => {});
        // Ends (EOF or reset) once the route gave up; a hop waited on forever would hang here.
        const r = await withTimeout(
          c.read(new Uint8Array(64)).catch(() => null),
          5_000,
          "the client's close",
        );
        assert.equal(r, null, "no bytes come from a silent hop");
      } finally {
        c.close();
      }
      assert.ok(held.length >= 1, "the hop was dialed");
      assert.ok(lines.some((l) => l.includes("dial timeout")), lines.join("\n"));
      // Burrow does not keep what it opened to the hop (a leaked socket per attempt otherwise).
      await withTimeout(Promise.all(held.map((h) => h.ended)), 5_000, "the hop conns' close");
    } finally {
      await rt.close();
      silent.close();
      for (const h of held) h.c.close();
      await accepting;
      await echo.close();
    }
  });
}
