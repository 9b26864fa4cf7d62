/** ChannelConn (an ssh2 channel as a Conn) against a fake channel. */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { ChannelConn } from "../../src/transport/sshd/streams.ts";

/** A channel whose writes always ask to wait for "drain". */
class FullChannel extends EventEmitter {
  written = 0;
  write(b: Uint8Array): boolean {
    this.written += b.length;
    return false;
  }
  end() {}
  pause() {}
  resume() {}
  destroy() {}
}

Deno.test("ssh ChannelConn: a write that waits for the window leaves no listener behind, however often it waits", async () => {
  const ch = new FullChannel();
  const addr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  const c = new ChannelConn(ch, addr, addr);
  const close0 = ch.listenerCount("close"), drain0 = ch.listenerCount("drain");
  for (let i = 0; i < 50; i++) {
    const w = c.write(new Uint8Array(10));
    await Promise.resolve();
    ch.emit("drain");
    assert.equal(await w, 10);
  }
  assert.equal(ch.written, 500);
  assert.equal(ch.listenerCount("close"), close0, "close listeners piled up");
  assert.equal(ch.listenerCount("drain"), drain0, "drain listeners piled up");
  // A wait the close ends instead: the write fails, and no drain listener stays either.
  const w = c.write(new Uint8Array(10));
  await Promise.resolve();
  ch.emit("close");
  await assert.rejects(w, /closed/);
  assert.equal(ch.listenerCount("drain"), drain0);
});
