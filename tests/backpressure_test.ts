/**
 * Every carrier and proxy holds a fast sender back when the reader at the far end stops reading:
 * nothing in between buffers what the sender keeps sending (a tls client once took all of it,
 * docs/performance.md, "TLS clients that nobody reads"). Down: a target sends 256 MiB into a
 * tunnel whose local reader read 1 KiB and stopped. Up: the local client sends 256 MiB to a target
 * that does not read. Once the sender's writes stall, less than 64 MiB may have gone out; then the
 * reader reads on until the sender sends again, all of it the sender's bytes.
 */
import assert from "node:assert/strict";
import { withTimeout } from "./_helpers.ts";
import { CARRIERS, startTunnel } from "./_carriers.ts";

const TOTAL = 256 << 20;
const HELD = 64 << 20;
const FILL = 0x5a;

/** Writes FILL to `c` until TOTAL went out or the conn fails; `progress.sent` counts. */
async function pump(c: Deno.Conn, progress: { sent: number }): Promise<void> {
  const b = new Uint8Array(64 * 1024).fill(FILL);
  try {
    while (progress.sent < TOTAL) progress.sent += await c.write(b);
  } catch { /* the tunnel closed */ }
}

/** A target: it pumps into every conn it accepts (down), or accepts and holds them (up). */
function target(up: boolean) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const progress = { sent: 0 };
  const conns: Deno.Conn[] = [];
  let first: (c: Deno.Conn) => void = () => {};
  const accepted = new Promise<Deno.Conn>((r) => first = r);
  const serving = (async () => {
    for await (const c of l) {
      conns.push(c);
      first(c);
      if (!up) pump(c, progress);
    }
  })().catch(() => {});
  return {
    port: l.addr.port,
    progress,
    accepted,
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
  throw new Error("the sender never stopped");
}

for (const [name, serve, node] of CARRIERS) {
  for (const up of [false, true]) {
    Deno.test(`back-pressure: ${name}, ${up ? "up" : "down"}: a reader that stops holds the sender back, and it goes on when the reader reads`, async () => {
      const t = target(up);
      const tunnel = await startTunnel(serve, node, t.port);
      const c = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.port });
      const progress = up ? { sent: 0 } : t.progress;
      const pumping = up ? pump(c, progress) : Promise.resolve();
      try {
        const reader = up ? await withTimeout(t.accepted, 10_000, "the tunnel") : c;
        if (!up) assert.ok((await c.read(new Uint8Array(1024))) !== null, "ended at once");
        const held = await stalled(progress);
        assert.ok(held < HELD, `${held >> 20} MiB went out to a reader that stopped`);
        // Reading on lets it go on: what was in flight is at most `held`, so reading past that
        // needs the sender to send again. All of it is the sender's bytes.
        const b = new Uint8Array(256 * 1024);
        await withTimeout(
          (async () => {
            for (let got = 0; progress.sent === held || got < 1 << 20;) {
              const n = await reader.read(b);
              assert.ok(n !== null, "the tunnel ended early");
              assert.ok(b.subarray(0, n).every((x) => x === FILL), "bytes changed on the way");
              got += n;
              assert.ok(got <= held + (1 << 20), "read more than was sent");
            }
          })(),
          30_000,
          "the sender going on once the reader did",
        );
      } finally {
        c.close();
        await tunnel.close();
        await t.close();
        await pumping;
      }
    });
  }
}
