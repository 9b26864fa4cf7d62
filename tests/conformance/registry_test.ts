/**
 * The Conn suite, driven by the registry: every type registered as both a listener and a dialer
 * runs it over a listener ⇄ dialer pair, so a new transport cannot skip it. A type may only be
 * left out with a reason below. Every registered dialer also gets the abort case: a dial to a
 * silent peer ends when its signal aborts and leaves nothing open.
 */
import assert from "node:assert/strict";
import { builtinRegistries } from "../../src/builtins.ts";
import type { Conn } from "../../src/core/conn.ts";
import { silentLogger } from "../../src/core/log.ts";
import { Metadata } from "../../src/core/metadata.ts";
import type { Connector } from "../../src/core/types.ts";
import { ChainNode, routeDial } from "../../src/chain/router.ts";
import { withTimeout } from "../_helpers.ts";
import { runConnSuite, type SuiteOptions } from "./conn_suite.ts";
import { transportPair } from "./pair.ts";

/** Types that do not carry a byte stream, with the reason and where they are tested instead. */
const NOT_STREAMS: Record<string, string> = {
  udp: "datagram conns (one read is one datagram): tests/forward_test.ts UDP forwarding",
};

/** Per-type suite settings; a type not listed runs the defaults. */
const OPTIONS: Record<string, SuiteOptions & { md?: Record<string, string> }> = {
  tls: { size: 4 << 20 },
  mtls: { size: 4 << 20 },
  ws: { size: 4 << 20 },
  wss: { size: 4 << 20 },
  mws: { size: 4 << 20 },
  mwss: { size: 4 << 20 },
};

const reg = builtinRegistries();
const pairs = reg.listeners.names().filter((n) => reg.dialers.has(n));

Deno.test("conformance covers every listener ⇄ dialer type of the registry", () => {
  assert.ok(pairs.length >= 10, `only ${pairs.length} types`);
  for (const t of Object.keys(NOT_STREAMS)) assert.ok(pairs.includes(t), `stale exemption ${t}`);
  for (const t of Object.keys(OPTIONS)) assert.ok(pairs.includes(t), `stale options ${t}`);
});

for (const type of pairs) {
  if (type in NOT_STREAMS) continue;
  const { md, ...opts } = OPTIONS[type] ?? {};
  runConnSuite(`${type} listener ⇄ dialer`, () => transportPair(type, md), opts);
}

/** A peer that accepts and never says a word (TCP), or swallows datagrams (UDP). */
function silentPeer(): { port: number; close: () => void } {
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (tcp.addr as Deno.NetAddr).port;
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for (;;) held.push(await tcp.accept());
    } catch { /* closed */ }
  })();
  const swallowing = (async () => {
    const buf = new Uint8Array(2048);
    try {
      for (;;) await udp.receive(buf);
    } catch { /* closed */ }
  })();
  return {
    port,
    close: () => {
      tcp.close();
      udp.close();
      for (const c of held) c.close();
      void accepting;
      void swallowing;
    },
  };
}

const passThrough: Connector = { connect: (c: Conn) => Promise.resolve(c) };

for (const type of reg.dialers.names()) {
  Deno.test(`${type} dialer: a dial to a silent peer ends when its signal aborts`, async () => {
    const peer = silentPeer();
    const d = await reg.dialers.get(type)({ metadata: new Metadata({}), log: silentLogger });
    const node = new ChainNode("n", `127.0.0.1:${peer.port}`, d, passThrough);
    const ac = new AbortController();
    let aborted = false;
    const t = setTimeout(() => {
      aborted = true;
      ac.abort(new Error("test abort"));
    }, 100);
    try {
      const r = await withTimeout(
        routeDial([node], "tcp", "127.0.0.1:9", silentLogger, ac.signal).then(
          (c) => ({ c }),
          (e) => ({ e }),
        ),
        5000,
        "dial after abort",
      );
      if ("c" in r) {
        // Only a transport without a handshake may finish: it must have done so before the abort.
        assert.equal(aborted, false, `${type}: dial resolved after its signal aborted`);
        r.c.close();
      } else {
        assert.ok(aborted, `${type}: dial failed before the abort: ${r.e}`);
      }
    } finally {
      clearTimeout(t);
      await d.close?.();
      peer.close();
    }
  });
}
