/** The tunnel handler: clients register tunnel ids; the entrypoint routes visitors by host. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { Logger } from "../../src/core/log.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { readAll, withTimeout } from "../_helpers.ts";
import { hasCommand, portOf, udpEchoServer, until } from "../_helpers.ts";
import { generateCert } from "../../src/transport/tls/cert.ts";
import type { TunnelHandler } from "../../src/proxy/tunnel/mod.ts";
import { curl } from "./_server.ts";

const A = "11111111-2222-3333-4444-555555555555";
const B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const P = "99999999-8888-7777-6666-555555555555";

/** An HTTP origin answering with its tag (HTTPS when `tls`). */
async function tagOrigin(tag: string, tls = false) {
  const ac = new AbortController();
  const cert = tls ? await generateCert("origin.test") : undefined;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {}, ...(cert ?? {}) },
    () => new Response(tag),
  );
  return {
    port: server.addr.port,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

/** The tunnel server with rules for A (a.example.com), B (.b.example.com) and private P. */
async function tunnelServer() {
  const rules = `a.example.com:${A},.b.example.com:${B},p.example.com:$${P}`;
  const rt = await Runtime.start(
    cliConfig([`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=${rules}`], []),
  );
  const entry = (rt.services[0]!.handler as TunnelHandler).entrypointPort;
  return { rt, port: portOf(rt), entry };
}

/** A tunnel client for `id` forwarding visitors to `origin`. */
async function tunnelClient(serverPort: number, id: string, origin: number, weight = 0) {
  const lines: string[] = [];
  const rt = await Runtime.start(
    cliConfig([`rtcp://:0/127.0.0.1:${origin}`], [
      `tunnel://127.0.0.1:${serverPort}?tunnel.id=${id}${weight ? `&tunnel.weight=${weight}` : ""}`,
    ]),
    { log: new Logger("debug", {}, (l) => lines.push(l)) },
  );
  await until(() => lines.some((l) => /create tunnel on .* OK/.test(l) || /failed/.test(l)), 5000);
  return { rt, lines };
}

/** One HTTP/1.1 request for `host` on the entrypoint; the status and body. */
async function visit(entry: number, host: string): Promise<{ status: number; body: string }> {
  const c = await dialTcp("127.0.0.1", entry);
  try {
    await c.write(
      new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    const text = new TextDecoder().decode(await readAll(c));
    const status = Number(text.split(" ")[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    c.close();
  }
}

Deno.test("tunnel: the entrypoint routes two hostnames to two clients; 502 without a route or for a private tunnel; 503 without a client", async () => {
  const oa = await tagOrigin("A");
  const ob = await tagOrigin("B");
  const s = await tunnelServer();
  const ca = await tunnelClient(s.port, A, oa.port);
  const cb = await tunnelClient(s.port, B, ob.port);
  try {
    assert.deepEqual(await visit(s.entry, "a.example.com"), { status: 200, body: "A" });
    assert.deepEqual(await visit(s.entry, "B.example.com:80"), { status: 200, body: "B" });
    assert.deepEqual(await visit(s.entry, "x.y.b.example.com"), { status: 200, body: "B" });
    assert.equal((await visit(s.entry, "c.example.com")).status, 502);
    assert.equal((await visit(s.entry, "p.example.com")).status, 502);
    await cb.rt.close();
    let r = await visit(s.entry, "b.example.com");
    for (let i = 0; i < 50 && r.status !== 503; i++) r = await visit(s.entry, "b.example.com");
    assert.equal(r.status, 503, "no client connected");
  } finally {
    await ca.rt.close();
    await cb.rt.close();
    await s.rt.close();
    await oa.close();
    await ob.close();
  }
});

Deno.test("tunnel: one hostname spread over two clients by weight; one dies, the other serves on", async () => {
  const o1 = await tagOrigin("1");
  const o2 = await tagOrigin("2");
  const s = await tunnelServer();
  const c1 = await tunnelClient(s.port, A, o1.port, 1);
  const c2 = await tunnelClient(s.port, A, o2.port, 4);
  try {
    const counts: Record<string, number> = { "1": 0, "2": 0 };
    for (let i = 0; i < 100; i++) {
      const r = await visit(s.entry, "a.example.com");
      assert.equal(r.status, 200);
      counts[r.body]!++;
    }
    assert.ok(counts["1"]! > 0 && counts["2"]! > counts["1"]!, JSON.stringify(counts));
    await c2.rt.close();
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await visit(s.entry, "a.example.com"), { status: 200, body: "1" });
    }
  } finally {
    await c1.rt.close();
    await c2.rt.close();
    await s.rt.close();
    await o1.close();
    await o2.close();
  }
});

Deno.test("tunnel: TLS visitors are routed by SNI, the TLS passing through untouched", async () => {
  if (!hasCommand("curl")) return console.log("skipped: curl is not installed");
  const oa = await tagOrigin("secure A", true);
  const s = await tunnelServer();
  const ca = await tunnelClient(s.port, A, oa.port);
  try {
    const r = await curl([
      "-k",
      "--resolve",
      `a.example.com:${s.entry}:127.0.0.1`,
      `https://a.example.com:${s.entry}/`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(new TextDecoder().decode(r.stdout), "secure A");
    // No rule for the SNI: the visitor is closed.
    const miss = await curl([
      "-k",
      "--resolve",
      `nope.example.com:${s.entry}:127.0.0.1`,
      `https://nope.example.com:${s.entry}/`,
    ]);
    assert.notEqual(miss.code, 0);
  } finally {
    await ca.rt.close();
    await s.rt.close();
    await oa.close();
  }
});

Deno.test("tunnel: a client with an id no rule names is refused", async () => {
  const s = await tunnelServer();
  const c = await tunnelClient(s.port, "12345678-1234-1234-1234-123456789abc", 9);
  try {
    await until(() => c.lines.some((l) => /3 Forbidden/.test(l)), 5000, "refusal");
    assert.ok(!c.lines.some((l) => /create tunnel on .* OK/.test(l)));
  } finally {
    await c.rt.close();
    await s.rt.close();
  }
});

Deno.test("tunnel: a client without tunnel.id is a config error", async () => {
  await assert.rejects(
    () => Runtime.start(cliConfig(["rtcp://:0/127.0.0.1:9"], ["tunnel://127.0.0.1:1"])),
    /tunnel\.id/,
  );
});

Deno.test("tunnel: YAML ingresses (hostname → endpoint rules, wildcards, $private) as GOST's page writes them", async () => {
  const { parseYaml } = await import("../../src/config/yaml.ts");
  const { normalizeConfig } = await import("../../src/config/model.ts");
  const oa = await tagOrigin("A");
  const ob = await tagOrigin("B");
  const yaml = `
services:
- name: service-0
  addr: 127.0.0.1:0
  handler:
    type: tunnel
    metadata:
      entrypoint: "127.0.0.1:0"
      ingress: ingress-0
  listener:
    type: tcp
ingresses:
- name: ingress-0
  rules:
  - hostname: "example.com"
    endpoint: ${A}
  - hostname: "*.example.com"
    endpoint: ${B}
  - hostname: "www.example.org"
    endpoint: $${B}
`;
  const rt = await Runtime.start(normalizeConfig(parseYaml(yaml), { strict: true }));
  const entry = (rt.services[0]!.handler as TunnelHandler).entrypointPort;
  const ca = await tunnelClient(portOf(rt), A, oa.port);
  const cb = await tunnelClient(portOf(rt), B, ob.port);
  try {
    assert.deepEqual(await visit(entry, "example.com"), { status: 200, body: "A" });
    assert.deepEqual(await visit(entry, "api.example.com"), { status: 200, body: "B" });
    assert.equal((await visit(entry, "www.example.org")).status, 502, "private");
    // The rules live in the config: replacing the ingress re-routes (the service is rebuilt).
    const next = rt.config;
    next.ingresses![0]!.rules = [{ hostname: "example.com", endpoint: B }];
    assert.deepEqual((await rt.apply(next)).replaced, ["services/service-0"]);
    // The clients' conns belonged to the old handler: they register again (0.5 s back-off).
    let r = await visit(entry, "example.com");
    for (let i = 0; i < 50 && r.status !== 200; i++) {
      await new Promise((ok) => setTimeout(ok, 100));
      r = await visit(entry, "example.com");
    }
    assert.deepEqual(r, { status: 200, body: "B" });
  } finally {
    await ca.rt.close();
    await cb.rt.close();
    await rt.close();
    await oa.close();
    await ob.close();
  }
});

Deno.test("tunnel: a private tunnel is reached by a relay visitor that names it, never from the entrypoint", async () => {
  const op = await tagOrigin("P");
  const s = await tunnelServer();
  const cp = await tunnelClient(s.port, P, op.port);
  // Visitors: a local forward to p.example.com:80 through the tunnel (right id, then a wrong one).
  const visitor = (id: string) =>
    Runtime.start(
      cliConfig(["tcp://127.0.0.1:0/p.example.com:80"], [
        `tunnel://127.0.0.1:${s.port}?tunnel.id=${id}`,
      ]),
    );
  const good = await visitor(P);
  const bad = await visitor(A);
  try {
    assert.equal(
      (await visit(s.entry, "p.example.com")).status,
      502,
      "private: not from the entrypoint",
    );
    assert.deepEqual(await visit(portOf(good), "p.example.com"), { status: 200, body: "P" });
    const refused = await visit(portOf(bad), "p.example.com").catch(() => ({
      status: 0,
      body: "",
    }));
    assert.equal(refused.status || 0, 0, "a visitor naming another tunnel gets nothing");
  } finally {
    await good.close();
    await bad.close();
    await cp.rt.close();
    await s.rt.close();
    await op.close();
  }
});

Deno.test("tunnel: UDP — an rudp client serves a tunnel; a relay visitor's datagrams round-trip", async () => {
  const echo = udpEchoServer();
  const s = await tunnelServer();
  const lines: string[] = [];
  const client = await Runtime.start(
    cliConfig([`rudp://:0/127.0.0.1:${echo.port}`], [
      `tunnel://127.0.0.1:${s.port}?tunnel.id=${B}`,
    ]),
    { log: new Logger("debug", {}, (l) => lines.push(l)) },
  );
  const visitor = await Runtime.start(
    cliConfig(["udp://127.0.0.1:0/u.b.example.com:53"], [
      `tunnel://127.0.0.1:${s.port}?tunnel.id=${B}`,
    ]),
  );
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await until(() => lines.some((l) => /create tunnel on .* OK/.test(l)), 5000, "registered");
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: portOf(visitor) };
    const got = (async () => new TextDecoder().decode((await sock.receive())[0]))();
    let answer: string | null = null;
    for (let i = 0; i < 10 && answer === null; i++) {
      await sock.send(new TextEncoder().encode("ping over a udp tunnel"), to);
      answer = await Promise.race([got, new Promise<null>((r) => setTimeout(() => r(null), 300))]);
    }
    assert.equal(answer, "ping over a udp tunnel");
  } finally {
    sock.close();
    await visitor.close();
    await client.close();
    await s.rt.close();
    await echo.close();
  }
});

Deno.test("tunnel entrypoint: the head reaches the backend byte-exact; absolute-form targets and a trailing dot route", async () => {
  // A raw backend that returns what it received (up to the blank line) as the body.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    for await (const c of l) {
      const buf = new Uint8Array(4096);
      let n = 0;
      for (;;) {
        const k = await c.read(buf.subarray(n)).catch(() => null);
        if (k === null) break;
        n += k;
        if (new TextDecoder("latin1").decode(buf.subarray(0, n)).includes("\r\n\r\n")) break;
      }
      const body = buf.slice(0, n);
      const head = new TextEncoder().encode(
        `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      );
      await c.write(new Uint8Array([...head, ...body])).catch(() => {});
      c.close();
    }
  })();
  const s = await tunnelServer();
  const ca = await tunnelClient(s.port, A, l.addr.port);
  try {
    const req = new Uint8Array([
      ...new TextEncoder().encode("GET /caf"),
      0xc3,
      0xa9,
      ...new TextEncoder().encode("?x=1 HTTP/1.1\r\nHost: a.example.com\r\nX-Raw: "),
      0xff,
      0x80,
      ...new TextEncoder().encode("\r\nConnection: close\r\n\r\n"),
    ]);
    const c = await dialTcp("127.0.0.1", s.entry);
    await c.write(req);
    const all = await readAll(c);
    c.close();
    const sep = new TextDecoder("latin1").decode(all).indexOf("\r\n\r\n") + 4;
    assert.deepEqual(all.subarray(sep), req, "byte-exact");
    assert.equal((await visit(s.entry, "a.example.com.")).status, 200, "trailing dot");
    const abs = await dialTcp("127.0.0.1", s.entry);
    await abs.write(
      new TextEncoder().encode("GET http://a.example.com/ HTTP/1.1\r\nConnection: close\r\n\r\n"),
    );
    assert.match(new TextDecoder().decode(await readAll(abs)), /^HTTP\/1\.1 200/);
    abs.close();
  } finally {
    await ca.rt.close();
    await s.rt.close();
    l.close();
    await loop.catch(() => {});
  }
});

Deno.test("tunnel: a refused reload leaves routing as it was; two runtimes in one process keep their own entrypoints", async () => {
  const oa = await tagOrigin("A");
  const s = await tunnelServer();
  const s2 = await tunnelServer(); // same service name, same entrypoint text, another runtime
  const ca = await tunnelClient(s.port, A, oa.port);
  try {
    assert.notEqual(s.entry, s2.entry);
    assert.deepEqual(await visit(s.entry, "a.example.com"), { status: 200, body: "A" });
    assert.equal((await visit(s2.entry, "a.example.com")).status, 503, "no client there");
    // A config that re-routes a.example.com but cannot be applied (a port someone holds).
    const squat = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const next = s.rt.config;
    next.services![0]!.handler.metadata = {
      ...next.services![0]!.handler.metadata,
      tunnel: `a.example.com:${B}`,
    };
    next.services!.push({
      name: "busy",
      addr: `127.0.0.1:${squat.addr.port}`,
      handler: { type: "socks5" },
      listener: { type: "tcp" },
    });
    await assert.rejects(() => s.rt.apply(next), /address already in use/);
    squat.close();
    assert.deepEqual(await visit(s.entry, "a.example.com"), { status: 200, body: "A" });
  } finally {
    await ca.rt.close();
    await s.rt.close();
    await s2.rt.close();
    await oa.close();
  }
});

Deno.test("tunnel entrypoint: visitors that never send a head are capped per address; the rest is served", async () => {
  const oa = await tagOrigin("A");
  const s = await tunnelServer();
  const ca = await tunnelClient(s.port, A, oa.port);
  const idle: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 16; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: s.entry }));
    }
    // The 17th silent visitor from the same address is closed at once, not held for 15 s.
    const extra = await Deno.connect({ hostname: "127.0.0.1", port: s.entry });
    const n = await withTimeout(extra.read(new Uint8Array(1)), 3000, "closed at once").catch(
      () => "still open",
    );
    extra.close();
    assert.equal(n, null);
    for (const c of idle.splice(0)) c.close();
    let r = await visit(s.entry, "a.example.com");
    for (let i = 0; i < 20 && r.status !== 200; i++) r = await visit(s.entry, "a.example.com");
    assert.deepEqual(r, { status: 200, body: "A" });
  } finally {
    for (const c of idle) c.close();
    await ca.rt.close();
    await s.rt.close();
    await oa.close();
  }
});
