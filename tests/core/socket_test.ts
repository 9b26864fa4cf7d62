import assert from "node:assert/strict";
import { SocketConn } from "../../src/core/socket.ts";
import { withTimeout } from "../_helpers.ts";

/** A connected pair of TCP sockets on loopback, the accepted one wrapped. */
async function pair(): Promise<{ ours: SocketConn; peer: Deno.TcpConn; done: () => void }> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const ours = new SocketConn(await l.accept());
  l.close();
  return {
    ours,
    peer,
    done: () => {
      try {
        peer.close();
      } catch { /* closed */ }
    },
  };
}

Deno.test("socket conn: a read pending when we close it, and a read after, end the stream (null), not throw", async () => {
  const { ours, done } = await pair();
  try {
    const pending = ours.read(new Uint8Array(16));
    ours.close();
    assert.equal(await withTimeout(pending, 2000), null);
    assert.equal(await withTimeout(ours.read(new Uint8Array(16)), 2000), null);
  } finally {
    done();
  }
});

Deno.test("socket conn: bytes, then the peer's close, read as bytes then null", async () => {
  const { ours, peer, done } = await pair();
  try {
    await peer.write(new Uint8Array([1, 2, 3]));
    peer.close();
    const buf = new Uint8Array(16);
    let got = 0;
    for (;;) {
      const n = await withTimeout(ours.read(buf.subarray(got)), 2000);
      if (n === null) break;
      got += n;
    }
    assert.equal(got, 3);
  } finally {
    ours.close();
    done();
  }
});
