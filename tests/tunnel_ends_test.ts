/**
 * How the ends of a tunnel carry through every carrier and proxy:
 * - half-close: the client sends its request and closes its writing side; the target reads to the
 *   end and only then answers with 4 MiB, which must arrive whole and in order (a tunnel that ends
 *   both directions when one ends, as GOST's copy loop does, loses it);
 * - a target that leaves mid-upload ends the client's conn both ways;
 * - a client that leaves mid-download ends the target's conn.
 * Over smux carriers the last two need Burrow's "gone" signal (docs/smux.md §2.4): before it, both
 * hung (v2) or sent into the void (v1).
 */
import assert from "node:assert/strict";
import { withTimeout } from "./_helpers.ts";
import { CARRIERS, startTunnel } from "./_carriers.ts";

const REQUEST = 1000;
const REPLY = 4 << 20;

for (const [name, serve, node] of CARRIERS) {
  Deno.test(`half-close: ${name}: the target answers after the client's end, and all of the answer arrives`, async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const seen = { request: 0 };
    const answers: Promise<void>[] = [];
    const serving = (async () => {
      for await (const c of l) {
        answers.push((async () => {
          try {
            const b = new Uint8Array(64 * 1024);
            for (;;) {
              const n = await c.read(b);
              if (n === null) break;
              seen.request += n;
            }
            // The request's end arrived; now the answer, byte i being i & 0xff.
            const out = new Uint8Array(REPLY).map((_, i) => i & 0xff);
            for (let o = 0; o < out.length;) o += await c.write(out.subarray(o));
          } finally {
            c.close();
          }
        })());
      }
    })().catch(() => {});
    const tunnel = await startTunnel(serve, node, l.addr.port);
    const c = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.port });
    try {
      await c.write(new Uint8Array(REQUEST).fill(7));
      await c.closeWrite();
      let got = 0;
      const b = new Uint8Array(64 * 1024);
      await withTimeout(
        (async () => {
          for (;;) {
            const n = await c.read(b);
            if (n === null) break;
            for (let i = 0; i < n; i++) {
              if (b[i] !== ((got + i) & 0xff)) assert.fail(`byte ${got + i} changed`);
            }
            got += n;
          }
        })(),
        20_000,
        "the answer",
      );
      assert.equal(seen.request, REQUEST, "the whole request reached the target");
      assert.equal(got, REPLY, "the whole answer came back");
    } finally {
      c.close();
      await tunnel.close();
      l.close();
      await serving;
      await Promise.allSettled(answers);
    }
  });
}

for (const [name, serve, node] of CARRIERS) {
  Deno.test(`target gone: ${name}: a target that closes mid-upload ends the client's conn both ways (reads end, writes fail)`, async () => {
    // The target reads 1 MiB of the upload and closes with more arriving.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      for await (const c of l) {
        (async () => {
          const b = new Uint8Array(64 * 1024);
          for (let got = 0; got < 1 << 20;) {
            const n = await c.read(b);
            if (n === null) break;
            got += n;
          }
          c.close();
        })().catch(() => {});
      }
    })().catch(() => {});
    const tunnel = await startTunnel(serve, node, l.addr.port);
    const c = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.port });
    try {
      const reading = c.read(new Uint8Array(16)).catch(() => null);
      // Writes go on until one fails: over a mux carrier a write that waited for a window the
      // gone stream never gives hung here for good (docs/smux.md §2.4).
      const writing = (async () => {
        const b = new Uint8Array(64 * 1024);
        for (let sent = 0; sent < 1 << 30; sent += b.length) await c.write(b);
      })();
      await withTimeout(
        assert.rejects(writing, "writes into a tunnel whose target left"),
        10_000,
        "a write error",
      );
      assert.equal(await withTimeout(reading, 5_000, "the read's end"), null);
    } finally {
      c.close();
      await tunnel.close();
      l.close();
      await serving;
    }
  });
}

for (const [name, serve, node] of CARRIERS) {
  Deno.test(`client gone: ${name}: a client that leaves mid-download ends the target's conn`, async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let ended: () => void = () => {};
    const targetEnded = new Promise<void>((r) => ended = r);
    const serving = (async () => {
      for await (const c of l) {
        (async () => {
          const b = new Uint8Array(64 * 1024);
          try {
            for (;;) await c.write(b);
          } catch {
            ended(); // the tunnel closed its conn to the target
          } finally {
            c.close();
          }
        })();
      }
    })().catch(() => {});
    const tunnel = await startTunnel(serve, node, l.addr.port);
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.port });
      await c.write(new Uint8Array(1)); // a relay proxy's client speaks first
      const b = new Uint8Array(64 * 1024);
      for (let got = 0; got < 1 << 20;) {
        const n = await c.read(b);
        assert.ok(n !== null, "the download ended early");
        got += n;
      }
      c.close();
      await withTimeout(targetEnded, 5_000, "the target's conn closing after the client left");
    } finally {
      await tunnel.close();
      l.close();
      await serving;
    }
  });
}
