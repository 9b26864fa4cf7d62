/** Datagrams go out in the order they were sent (Deno reorders un-awaited sends). */
import assert from "node:assert/strict";
import { OrderedSender } from "../../src/core/udp.ts";
import { withTimeout } from "../_helpers.ts";

Deno.test("OrderedSender: back-to-back datagrams arrive in order", async () => {
  const rx = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const tx = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = rx.addr as Deno.NetAddr;
  try {
    // Received as they come; the kernel may drop some when the reader lags (UDP), but what
    // arrives must arrive in order.
    const got: number[] = [];
    const receiving = (async () => {
      for (;;) {
        const r = await withTimeout(rx.receive(), 1000, "datagram").catch(() => null);
        if (!r) return;
        got.push((r[0][0]! << 8) | r[0][1]!);
        if (got.at(-1) === 299) return;
      }
    })();
    const out = new OrderedSender(tx);
    for (let i = 0; i < 300; i++) out.send(new Uint8Array([i >> 8, i & 0xff]), to);
    await out.idle();
    await receiving;
    assert.ok(got.length >= 100, `${got.length} datagrams arrived`);
    for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, `out of order: ${got}`);
  } finally {
    rx.close();
    tx.close();
  }
});
