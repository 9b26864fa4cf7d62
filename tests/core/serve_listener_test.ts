/** The shared accept loop: back-off on accept errors, handshake deadlines, backlog, close. */
import assert from "node:assert/strict";
import type { Conn, NetAddr } from "../../src/core/conn.ts";
import { Backoff } from "../../src/core/backoff.ts";
import { Logger } from "../../src/core/log.ts";
import { pipe } from "../../src/core/pipe.ts";
import { handshakeListener, ServeListener } from "../../src/core/serve_listener.ts";
import type { Listener } from "../../src/core/types.ts";

/** A listener fed by the test: each item is a conn to hand out or an error to throw. */
class ScriptedListener implements Listener {
  readonly addr: NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  accepts = 0;
  #items: (Conn | Error)[] = [];
  #wake: (() => void) | null = null;
  #closed = false;
  feed(x: Conn | Error): void {
    this.#items.push(x);
    this.#wake?.();
  }
  async accept(): Promise<Conn | null> {
    for (;;) {
      if (this.#closed) return null;
      const x = this.#items.shift();
      if (x) {
        this.accepts++;
        if (x instanceof Error) throw x;
        return x;
      }
      await new Promise<void>((r) => this.#wake = r);
    }
  }
  close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger("debug", {}, (l) => lines.push(l)), lines };
}

Deno.test("backoff doubles from 5 ms to 1 s and starts over after a success", async () => {
  const b = new Backoff(1, 8);
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    await b.fail();
    seen.push(b.delay);
  }
  assert.deepEqual(seen, [1, 2, 4, 8, 8, 8]);
  b.ok();
  assert.equal(b.delay, 0);
  const ac = new AbortController();
  ac.abort();
  await new Backoff(60_000).fail(ac.signal); // an aborted wait returns at once
});

Deno.test("accept errors are logged, backed off, and the listener keeps serving", async () => {
  const inner = new ScriptedListener();
  const { log, lines } = capture();
  const l = new ServeListener(inner, {
    name: "t",
    log,
    serve: (raw, emit) => Promise.resolve(void emit(raw)),
  });
  for (let i = 0; i < 3; i++) inner.feed(new Error("EMFILE"));
  const [a] = pipe();
  inner.feed(a);
  assert.equal(await l.accept(), a);
  assert.equal(inner.accepts, 4);
  assert.equal(lines.filter((x) => x.includes("t: accept: EMFILE")).length, 3);
  assert.match(lines.at(-1)!, /retrying in 20 ms/);
  await l.close();
  assert.equal(await l.accept(), null);
});

Deno.test("a stalled handshake is cut at its deadline; other conns are served meanwhile", async () => {
  const inner = new ScriptedListener();
  const { log, lines } = capture();
  const l = handshakeListener(inner, {
    name: "hs",
    log,
    timeout: 50,
    handshake: async (raw) => {
      const b = new Uint8Array(1);
      return await raw.read(b) === null ? null : raw; // the stalled one never sends
    },
  });
  const [stalled, stalledPeer] = pipe();
  const [good, goodPeer] = pipe();
  inner.feed(stalled);
  inner.feed(good);
  await goodPeer.write(new Uint8Array([1]));
  assert.equal(await l.accept(), good);
  // The stalled conn is closed by the deadline: its peer sees the end.
  assert.equal(await stalledPeer.read(new Uint8Array(1)), null);
  const said = () => lines.some((x) => x.includes("hs: handshake not done within 50 ms"));
  for (let i = 0; i < 100 && !said(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(said(), lines.join("\n"));
  await l.close();
  goodPeer.close();
});

Deno.test("a full backlog closes the extra conn; close ends handshakes in progress", async () => {
  const inner = new ScriptedListener();
  const { log, lines } = capture();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const l = new ServeListener(inner, {
    name: "b",
    log,
    backlog: 1,
    serve: async (raw, emit) => {
      if (raw.remoteAddr.port === 9) await gate; // held until the listener closes
      emit(raw);
    },
  });
  const [a] = pipe();
  const [b, bPeer] = pipe();
  inner.feed(a);
  inner.feed(b);
  // b cannot be queued behind a: it is closed with a warning.
  assert.equal(await bPeer.read(new Uint8Array(1)), null);
  assert.ok(lines.some((x) => x.includes("b: backlog full")));
  const [held, heldPeer] = pipe();
  (held as { remoteAddr: NetAddr }).remoteAddr = { transport: "tcp", hostname: "x", port: 9 };
  inner.feed(held);
  while ((l as ServeListener).serving === 0) await new Promise((r) => setTimeout(r, 1));
  const closing = l.close();
  release();
  await closing;
  assert.equal(await heldPeer.read(new Uint8Array(1)), null, "held conn closed by close()");
  assert.equal(await l.accept(), null, "queued conns are closed, not handed out, after close");
});
