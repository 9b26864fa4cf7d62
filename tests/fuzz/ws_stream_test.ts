/**
 * WebSocket streams cut anywhere: random messages in random fragments with control frames between
 * them, fed in random pieces and timings to many conns at once (they share the pooled read-ahead
 * buffers of quiet conns), read through buffers of random sizes. Every byte must arrive, in order.
 */
import assert from "node:assert/strict";
import { pipe } from "../../src/core/pipe.ts";
import { BufReader } from "../../src/core/bufio.ts";
import { WsConn } from "../../src/transport/ws/conn.ts";
import {
  encodeFrame,
  OP_BINARY,
  OP_CLOSE,
  OP_CONT,
  OP_PING,
  OP_PONG,
  OP_TEXT,
} from "../../src/transport/ws/frame.ts";
import { prng, ROUNDS } from "./_fuzz.ts";

async function one(client: boolean, rnd: () => number, what: string): Promise<void> {
  const ri = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => ri(256));
  const [peer, ours] = pipe({ capacity: 64 << 20 });
  const ws = new WsConn(ours, new BufReader(ours, 4096), { client });
  const key = () => client ? undefined : bytes(4);
  const frames: Uint8Array[] = [];
  const want: Uint8Array[] = [];
  for (let m = 1 + ri(12); m > 0; m--) {
    const d = bytes([0, 1, 3, 125, 126, 1000, 1024, 1025, 2000, 5000, 70000][ri(11)]!);
    want.push(d);
    const parts = 1 + ri(4);
    let at = 0;
    for (let f = 0; f < parts; f++) {
      const end = f === parts - 1 ? d.length : Math.min(d.length, at + ri(d.length - at + 1));
      const fr = encodeFrame(
        f === 0 ? (ri(2) ? OP_BINARY : OP_TEXT) : OP_CONT,
        d.subarray(at, end),
        key(),
      );
      if (f !== parts - 1) fr[0]! &= 0x7f; // not the last fragment
      frames.push(fr);
      at = end;
      if (ri(4) === 0) frames.push(encodeFrame(ri(2) ? OP_PING : OP_PONG, bytes(ri(10)), key()));
    }
  }
  frames.push(encodeFrame(OP_CLOSE, new Uint8Array([3, 0xe8]), key()));
  const join = (l: Uint8Array[]) => {
    const out = new Uint8Array(l.reduce((n, f) => n + f.length, 0));
    l.reduce((o, f) => (out.set(f, o), o + f.length), 0);
    return out;
  };
  const wire = join(frames);
  const got: Uint8Array[] = [];
  const reader = (async () => {
    for (;;) {
      const buf = new Uint8Array([1, 2, 7, 100, 1024, 1500, 4096, 70000][ri(8)]!);
      const k = await ws.read(buf);
      if (k === null) return;
      got.push(buf.slice(0, k));
    }
  })();
  const drain = (async () => {
    const b = new Uint8Array(65536);
    while ((await peer.read(b)) !== null) { /* pongs */ }
  })();
  for (let at = 0; at < wire.length;) {
    const n = 1 + ri([3, 50, 1100, 3000, 100000][ri(5)]!);
    await peer.write(wire.slice(at, at + n));
    at += n;
    const w = ri(3);
    if (w === 0) await new Promise((r) => setTimeout(r, 0));
    else if (w === 1) await Promise.resolve();
  }
  await reader;
  assert.deepEqual(join(got), join(want), what);
  ws.close();
  peer.close();
  await drain.catch(() => {});
}

Deno.test("fuzz: WebSocket streams cut anywhere, 16 conns at a time, arrive whole and in order", async () => {
  for (let round = 0; round < 4 * ROUNDS; round++) {
    const rnd = prng(0x5eed + round);
    await Promise.all(
      Array.from(
        { length: 16 },
        (_, c) => one(c % 2 === 0, prng(rnd() * 2 ** 32), `round ${round} conn ${c}`),
      ),
    );
  }
});
