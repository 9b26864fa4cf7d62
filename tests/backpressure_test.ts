/**
 * Every carrier and proxy holds a fast sender back when the reader at the far end stops reading:
 * nothing in between buffers what the sender keeps sending (a tls client once took all of it,
 * docs/performance.md, "TLS clients that nobody reads"). A target sends 256 MiB into a tunnel
 * whose local reader read 1 KiB and stopped; once its writes stall, less than 64 MiB may have gone
 * out; then the reader reads on until the target sends again, all of it the target's bytes.
 */
import assert from "node:assert/strict";
import { cliConfig } from "../src/builtins.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { portOf, withTimeout } from "./_helpers.ts";

const TOTAL = 256 << 20;
const HELD = 64 << 20;
const FILL = 0x5a;

/** A listener whose conns are sent TOTAL bytes of FILL; `sent` counts what went out. */
function firehose() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const progress = { sent: 0 };
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const c of l) {
      conns.push(c);
      (async () => {
        const b = new Uint8Array(64 * 1024).fill(FILL);
        try {
          while (progress.sent < TOTAL) progress.sent += await c.write(b);
        } catch { /* the tunnel closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: l.addr.port,
    progress,
    async close() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}

/** Resolves with the bytes sent once nothing more went out for 600 ms (or all did). */
async function stalled(progress: { sent: number }): Promise<number> {
  let last = -1, still = 0;
  for (let i = 0; i < 120; i++) {
    await new Promise((r) => setTimeout(r, 200));
    if (progress.sent >= TOTAL) return progress.sent;
    still = progress.sent === last ? still + 1 : 0;
    if (still >= 3) return progress.sent;
    last = progress.sent;
  }
  throw new Error("the target never stopped sending");
}

/** [name, server -L, client -F] with {T} for the target's port and {S} for the server's. */
const CASES: [string, string, string][] = [
  ["tls", "forward+tls://127.0.0.1:0/127.0.0.1:{T}", "forward+tls://127.0.0.1:{S}"],
  ["wss", "forward+wss://127.0.0.1:0/127.0.0.1:{T}", "forward+wss://127.0.0.1:{S}"],
  ["mtls", "forward+mtls://127.0.0.1:0/127.0.0.1:{T}", "forward+mtls://127.0.0.1:{S}"],
  ["mwss", "forward+mwss://127.0.0.1:0/127.0.0.1:{T}", "forward+mwss://127.0.0.1:{S}"],
  ["ws", "forward+ws://127.0.0.1:0/127.0.0.1:{T}", "forward+ws://127.0.0.1:{S}"],
  ["mws", "forward+mws://127.0.0.1:0/127.0.0.1:{T}", "forward+mws://127.0.0.1:{S}"],
  ["mtcp", "forward+mtcp://127.0.0.1:0/127.0.0.1:{T}", "forward+mtcp://127.0.0.1:{S}"],
  ["kcp", "forward+kcp://127.0.0.1:0/127.0.0.1:{T}", "forward+kcp://127.0.0.1:{S}"],
  ["ssh", "forward+ssh://127.0.0.1:0/127.0.0.1:{T}", "forward+ssh://127.0.0.1:{S}"],
  ["relay", "relay://127.0.0.1:0", "relay://127.0.0.1:{S}"],
  ["socks5", "socks5://127.0.0.1:0", "socks5://127.0.0.1:{S}"],
  ["http", "http://127.0.0.1:0", "http://127.0.0.1:{S}"],
  [
    "ss",
    "ss://chacha20-ietf-poly1305:bp@127.0.0.1:0",
    "ss://chacha20-ietf-poly1305:bp@127.0.0.1:{S}",
  ],
];

for (const [name, serve, node] of CASES) {
  Deno.test(`back-pressure: ${name} holds the target back when the reader stops, and goes on when it reads`, async () => {
    const hose = firehose();
    const srv = await Runtime.start(cliConfig([serve.replace("{T}", String(hose.port))], []));
    const cli = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${hose.port}`], [
        node.replace("{S}", String(portOf(srv))),
      ]),
    );
    const c = await Deno.connect({ hostname: "127.0.0.1", port: portOf(cli) });
    try {
      assert.ok((await c.read(new Uint8Array(1024))) !== null, "the tunnel ended at once");
      const held = await stalled(hose.progress);
      assert.ok(held < HELD, `${held >> 20} MiB went out to a reader that stopped`);
      // Reading on lets it go on: what was in flight is at most `held`, so reading past that
      // needs the target to send again. All of it is the target's bytes.
      const b = new Uint8Array(256 * 1024);
      await withTimeout(
        (async () => {
          for (let got = 0; hose.progress.sent === held || got < 1 << 20;) {
            const n = await c.read(b);
            assert.ok(n !== null, "the tunnel ended early");
            assert.ok(b.subarray(0, n).every((x) => x === FILL), "bytes changed on the way");
            got += n;
            assert.ok(got <= held + (1 << 20), "read more than was sent");
          }
        })(),
        30_000,
        "the target going on once the reader did",
      );
    } finally {
      c.close();
      await cli.close();
      await srv.close();
      await hose.close();
    }
  });
}
