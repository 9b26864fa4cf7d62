/**
 * The `sni` handler and connector (issue #19): TLS routed by SNI to a real `openssl s_server`,
 * HTTP routed by Host per request, fronting with `host=` (the wire shows only the front name; the
 * TLS handshake still completes, so the ClientHello was restored byte for byte), and refusals.
 */
import assert from "node:assert/strict";
import { cliConfig, type Config, Runtime } from "../../mod.ts";
import { hasCommand, readAll, withTimeout } from "../_helpers.ts";
import {
  clientHelloServerName,
  restoreServerName,
  rewriteServerName,
} from "../../src/protocol/tls_hello.ts";
import {
  decodeServerName,
  encodeServerName,
  EXT_HIDDEN_NAME,
} from "../../src/protocol/server_name.ts";

const have = hasCommand("curl") && hasCommand("openssl");
if (!have) console.warn("curl or openssl missing: skipping the sni tests that need them");

/** An HTTP server answering `<tag> <path> <host>` (so a test sees where a request went). */
function httpTag(tag: string): { port: number; close: () => Promise<void> } {
  const ac = new AbortController();
  const s = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => new Response(`${tag} ${new URL(req.url).pathname} ${req.headers.get("host")}\n`),
  );
  return { port: s.addr.port, close: () => (ac.abort(), s.finished) };
}

/** `openssl s_server -www` for real.test on 127.0.0.3:443 (port 443 is what SNI routing dials). */
async function tlsOrigin(): Promise<{ stop: () => Promise<void> } | null> {
  const dir = await Deno.makeTempDir();
  const gen = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${dir}/k.pem`,
      "-out",
      `${dir}/c.pem`,
      "-subj",
      "/CN=real.test",
      "-days",
      "1",
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!gen.success) return null;
  const child = new Deno.Command("openssl", {
    args: [
      "s_server",
      "-accept",
      "127.0.0.3:443",
      "-cert",
      `${dir}/c.pem`,
      "-key",
      `${dir}/k.pem`,
      "-www",
      "-quiet",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill();
    } catch { /* gone */ }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  };
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.3", port: 443 })).close();
      return { stop };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await stop();
  return null; // port 443 not bindable here (not root?)
}

async function curl(args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command("curl", {
    args: ["-s", "-S", "--max-time", "10", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: o.code,
    out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr),
  };
}

const HOSTS = { name: "h", mappings: [{ ip: "127.0.0.3", hostname: "real.test" }] };

function sniServer(metadata: Record<string, string> = {}): Config {
  return {
    hosts: [HOSTS],
    services: [{
      name: "sni",
      addr: "127.0.0.1:0",
      hosts: "h",
      handler: { type: "sni", metadata },
      listener: { type: "tcp" },
    }],
  };
}

Deno.test({
  name: "sni: TLS is routed by its SNI to a real TLS server; HTTP by Host, request by request",
  ignore: !have,
  async fn() {
    const origin = await tlsOrigin();
    if (!origin) {
      console.warn("cannot listen on 127.0.0.3:443: skipping the TLS half");
    }
    const a = httpTag("A"), b = httpTag("B");
    await using rt = await Runtime.start(sniServer());
    const port = rt.services[0]!.listener.addr.port;
    try {
      if (origin) {
        const r = await curl([
          "-k",
          "--resolve",
          `real.test:${port}:127.0.0.1`,
          `https://real.test:${port}/`,
        ]);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /s_server/); // openssl's -www status page came back
      }
      // One keep-alive connection, two requests naming two origins.
      const r = await curl([
        "-H",
        `Host: 127.0.0.1:${a.port}`,
        `http://127.0.0.1:${port}/one`,
        "--next",
        "-H",
        `Host: 127.0.0.1:${b.port}`,
        `http://127.0.0.1:${port}/two`,
      ]);
      assert.equal(r.code, 0, r.out);
      assert.match(
        r.out,
        new RegExp(`A /one 127\\.0\\.0\\.1:${a.port}\\nB /two 127\\.0\\.0\\.1:${b.port}`),
      );
    } finally {
      await a.close();
      await b.close();
      await origin?.stop();
    }
  },
});

Deno.test({
  name:
    "sni connector host=front: the wire carries only the front name, the origin gets the real one",
  ignore: !have,
  async fn() {
    const origin = await tlsOrigin();
    const a = httpTag("A");
    await using server = await Runtime.start(sniServer());
    const sniPort = server.services[0]!.listener.addr.port;
    // A spy between client and server keeps every byte the client side sends.
    const sent: Uint8Array[] = [];
    const spy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const spying = (async () => {
      for await (const c of spy) {
        (async () => {
          const up = await Deno.connect({ hostname: "127.0.0.1", port: sniPort });
          const tap = new TransformStream<Uint8Array, Uint8Array>({
            transform: (chunk, ctl) => (sent.push(chunk.slice()), ctl.enqueue(chunk)),
          });
          await Promise.all([
            c.readable.pipeThrough(tap).pipeTo(up.writable).catch(() => {}),
            up.readable.pipeTo(c.writable).catch(() => {}),
          ]);
        })();
      }
    })();
    await using client = await Runtime.start({
      services: [{
        name: "in",
        addr: "127.0.0.1:0",
        handler: { type: "tcp", chain: "c" },
        listener: { type: "tcp" },
        forwarder: { nodes: [{ name: "t", addr: "ignored.example:1" }] },
      }],
      chains: [{
        name: "c",
        hops: [{
          name: "h0",
          nodes: [{
            name: "n0",
            addr: `127.0.0.1:${spy.addr.port}`,
            connector: { type: "sni", metadata: { host: "front.example" } },
            dialer: { type: "tcp" },
          }],
        }],
      }],
    });
    const port = client.services[0]!.listener.addr.port;
    const wire = () =>
      new TextDecoder("latin1").decode(new Uint8Array(sent.flatMap((c) => [...c])));
    try {
      const h = await curl(["-H", `Host: 127.0.0.1:${a.port}`, `http://127.0.0.1:${port}/x`]);
      assert.equal(h.code, 0, h.out);
      assert.match(h.out, new RegExp(`A /x 127\\.0\\.0\\.1:${a.port}`)); // the origin saw its own name
      assert.match(wire(), /Host: front\.example\r\nGost-Target: /);
      assert.ok(!wire().includes(`127.0.0.1:${a.port}`), "the real Host never crossed in clear");
      if (origin) {
        sent.length = 0;
        const r = await curl([
          "-k",
          "--resolve",
          `real.test:${port}:127.0.0.1`,
          `https://real.test:${port}/`,
        ]);
        assert.equal(r.code, 0, r.out); // the handshake completed: the ClientHello was restored exactly
        assert.match(r.out, /s_server/);
        assert.ok(wire().includes("front.example"));
        assert.ok(!wire().includes("real.test"), "the real SNI never crossed in clear");
      } else console.warn("cannot listen on 127.0.0.3:443: skipping the TLS half");
    } finally {
      spy.close();
      await spying.catch(() => {});
      await a.close();
      await origin?.stop();
    }
  },
});

Deno.test("sni: garbage, a ClientHello without SNI and a silent client are dropped; CONNECT gets 405; credentials are refused at start", async () => {
  let dialed = 0;
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const counting = (async () => {
    for await (const c of target) (dialed++, c.close());
  })();
  await using rt = await Runtime.start(sniServer({ readTimeout: "500ms" }));
  const port = rt.services[0]!.listener.addr.port;
  const talk = async (bytes: Uint8Array) => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    if (bytes.length) await c.write(bytes);
    const out = await withTimeout(readAll(c), 5000, "the handler ends the conn");
    c.close();
    return new TextDecoder().decode(out);
  };
  try {
    assert.equal(await talk(new Uint8Array([0x00, 0xff, 0x13, 0x37])), "");
    // A ClientHello record (type 1) with no extensions at all.
    const hello = new Uint8Array([
      0x16,
      3,
      1,
      0,
      42,
      1,
      0,
      0,
      38,
      3,
      3,
      ...new Uint8Array(32),
      0,
      0,
      0,
      0,
      0,
    ]);
    hello[4] = hello.length - 5;
    hello[8] = hello.length - 9;
    assert.equal(await talk(hello), "");
    assert.equal(await talk(new Uint8Array(0)), ""); // silent: closed after readTimeout
    assert.match(
      await talk(
        new TextEncoder().encode(
          `CONNECT 127.0.0.1:${target.addr.port} HTTP/1.1\r\nHost: x\r\n\r\n`,
        ),
      ),
      /^HTTP\/1\.1 405/,
    );
    assert.equal(dialed, 0, "nothing was dialed for any of them");
  } finally {
    target.close();
    await counting.catch(() => {});
  }
  await assert.rejects(
    Runtime.start(cliConfig(["sni://u:p@127.0.0.1:0"], [])),
    /does not authenticate/,
  );
});

Deno.test("sni fronting: rewrite then restore gives back the ClientHello byte for byte; GOST's name encoding round-trips and rejects forgeries", async () => {
  // A real ClientHello, as curl's TLS stack writes it.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let record = new Uint8Array(0);
  if (hasCommand("curl")) {
    const got = (async () => {
      const c = await l.accept();
      const buf = new Uint8Array(16 * 1024 + 5);
      let n = 0;
      while (n < 5 || n < 5 + ((buf[3]! << 8) | buf[4]!)) {
        const k = await c.read(buf.subarray(n));
        if (k === null) break;
        n += k;
      }
      c.close();
      return buf.slice(0, 5 + ((buf[3]! << 8) | buf[4]!));
    })();
    await curl([
      "-k",
      "--max-time",
      "3",
      "--resolve",
      `real.test:${l.addr.port}:127.0.0.1`,
      `https://real.test:${l.addr.port}/`,
    ]);
    record = await got;
  }
  l.close();
  if (record.length > 0) {
    assert.equal(clientHelloServerName(record), "real.test");
    const fronted = rewriteServerName(record, "front.example", EXT_HIDDEN_NAME, encodeServerName)!;
    assert.equal(clientHelloServerName(fronted), "front.example");
    const back = restoreServerName(fronted, EXT_HIDDEN_NAME, decodeServerName)!;
    assert.equal(back.name, "real.test");
    assert.deepEqual(back.record, record);
    // Not fronted: nothing to restore.
    assert.equal(restoreServerName(record, EXT_HIDDEN_NAME, decodeServerName), null);
  }
  for (const name of ["real.test", "a.b-c.example:8443", "[::1]:443"]) {
    assert.equal(decodeServerName(encodeServerName(name)), name);
  }
  const enc = encodeServerName("real.test");
  const flipped = enc.slice(0, 2) + (enc[2] === "A" ? "B" : "A") + enc.slice(3);
  assert.equal(decodeServerName(flipped), null); // the CRC catches it
  assert.equal(decodeServerName("not base64 !"), null);
});

Deno.test("sni connector: GOST's unused `timeout` is refused by name, not accepted and ignored", async () => {
  await assert.rejects(
    Runtime.start(cliConfig(["tcp://127.0.0.1:0/x.test:1"], ["sni://127.0.0.1:1?timeout=5s"])),
    /connector\.metadata\.timeout: is not supported/,
  );
});
