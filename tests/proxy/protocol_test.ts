/** Wire-level tests: byte vectors from docs/gost-proxies.md §9, refusals, garbage, UDP. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { BufReader } from "../../src/core/bufio.ts";
import { pipe } from "../../src/core/pipe.ts";
import { dialTcp } from "../../src/core/socket.ts";
import {
  addrFeature,
  decodeRequest,
  encodeMessage,
  networkFeature,
  readMessage,
  userAuthFeature,
} from "../../src/proxy/relay/codec.ts";
import { encodeUdpFrame } from "../../src/protocol/udp_frame.ts";
import { encodeSocksAddr, ipv6Text, parseSocksAddr } from "../../src/protocol/socks_addr.ts";
import { echoServer, randomBytes, readAll, udpEchoServer, withTimeout } from "../_helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("relay request vectors (docs/gost-proxies.md §9)", () => {
  assert.equal(
    hex(encodeMessage(0x01, [addrFeature("example.com:80")])),
    "01 01 00 12 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50",
  );
  const withAuth = encodeMessage(0x01, [userAuthFeature("u", "p"), addrFeature("example.com:80")]);
  assert.equal(hex(withAuth.subarray(0, 11)), "01 01 00 19 01 00 04 01 75 01 70");
  assert.equal(
    hex(encodeMessage(0x81, [networkFeature(1), addrFeature("8.8.8.8:53")])),
    "01 81 00 0f 04 00 02 00 01 02 00 07 01 08 08 08 08 00 35",
  );
  assert.equal(hex(encodeMessage(0, [])), "01 00 00 00");
});

Deno.test("relay decoder skips unknown features; last Addr wins", async () => {
  const [a, b] = pipe();
  await a.write(
    encodeMessage(0x01, [
      new Uint8Array([0x77, 0, 2, 9, 9]),
      addrFeature("a.b:1"),
      addrFeature("[::1]:2"),
    ]),
  );
  const r = decodeRequest(await readMessage(new BufReader(b)));
  assert.equal(r.addr, "[::1]:2");
  a.close();
});

Deno.test("UDP-over-TCP frame vector and SOCKS addresses", () => {
  assert.equal(
    hex(encodeUdpFrame("8.8.8.8:53", new Uint8Array(5))),
    "00 05 ff 01 08 08 08 08 00 35 00 00 00 00 00",
  );
  for (const a of ["1.2.3.4:80", "example.com:443", "[2001:db8::1]:8080", "[::1]:1"]) {
    const host = a.startsWith("[") ? a.slice(1, a.indexOf("]")) : a.slice(0, a.lastIndexOf(":"));
    const enc = encodeSocksAddr(host, Number(a.slice(a.lastIndexOf(":") + 1)));
    assert.equal(parseSocksAddr(enc, 0).addr, a);
  }
  assert.equal(ipv6Text(new Uint8Array(16)), "::");
});

async function talk(port: number, send: Uint8Array, want: number): Promise<Uint8Array> {
  const c = await dialTcp("127.0.0.1", port);
  try {
    await c.write(send);
    const br = new BufReader(c);
    return want > 0 ? await withTimeout(br.readN(want), 5000) : await withTimeout(readAll(c), 5000);
  } finally {
    c.close();
  }
}

Deno.test("relay: wrong password ⇒ status 2; forwarder mode; lazy response rides with the first bytes", async () => {
  const echo = echoServer();
  await using rt = await Runtime.start(cliConfig(["relay://u:p@127.0.0.1:0"], []));
  await using fwd = await Runtime.start(
    cliConfig([`relay://127.0.0.1:0/127.0.0.1:${echo.port}`], []),
  );
  try {
    const port = rt.services[0]!.listener.addr.port;
    const bad = await talk(
      port,
      encodeMessage(1, [userAuthFeature("u", "x"), addrFeature(`127.0.0.1:${echo.port}`)]),
      4,
    );
    assert.equal(hex(bad), "01 02 00 00");
    // Correct password: request + payload in one write; the response arrives with the echo.
    const req = encodeMessage(1, [
      userAuthFeature("u", "p"),
      addrFeature(`127.0.0.1:${echo.port}`),
    ]);
    const both = new Uint8Array(req.length + 3);
    both.set(req);
    both.set([7, 8, 9], req.length);
    assert.equal(hex(await talk(port, both, 7)), "01 00 00 00 07 08 09");
    // Forwarder: the client's address is ignored.
    const f = encodeMessage(1, [addrFeature("ignored.example:1")]);
    const fb = new Uint8Array(f.length + 2);
    fb.set(f);
    fb.set([1, 2], f.length);
    assert.equal(hex(await talk(fwd.services[0]!.listener.addr.port, fb, 6)), "01 00 00 00 01 02");
  } finally {
    await rt.close();
    await fwd.close();
    await echo.close();
  }
});

Deno.test("relay connector works with server-speaks-first targets (no nodelay needed)", async () => {
  const banner = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const c = await banner.accept();
    await c.write(new TextEncoder().encode("SSH-2.0-test\r\n"));
    c.close();
  })();
  await using relay = await Runtime.start(cliConfig(["relay://127.0.0.1:0"], []));
  await using front = await Runtime.start(
    cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${(banner.addr as Deno.NetAddr).port}`], [
      `relay://127.0.0.1:${relay.services[0]!.listener.addr.port}`,
    ]),
  );
  try {
    const c = await dialTcp("127.0.0.1", front.services[0]!.listener.addr.port);
    const got = await withTimeout(readAll(c), 5000);
    c.close();
    assert.equal(new TextDecoder().decode(got), "SSH-2.0-test\r\n");
  } finally {
    await serving;
    banner.close();
  }
});

Deno.test("socks5: refused target ⇒ REP 5; no-auth client vs auth server ⇒ 0xFF; unknown command ⇒ 7", async () => {
  await using open = await Runtime.start(cliConfig(["socks5://127.0.0.1:0"], []));
  await using authed = await Runtime.start(cliConfig(["socks5://u:p@127.0.0.1:0"], []));
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  const port = open.services[0]!.listener.addr.port;
  const connect = [5, 1, 0, 1, 127, 0, 0, 1, deadPort >> 8, deadPort & 255];
  const r = await talk(port, new Uint8Array([5, 1, 0, ...connect]), 12);
  assert.equal(hex(r.subarray(0, 4)), "05 00 05 05");
  assert.equal(
    hex(await talk(authed.services[0]!.listener.addr.port, new Uint8Array([5, 1, 0]), 2)),
    "05 ff",
  );
  const r7 = await talk(port, new Uint8Array([5, 1, 0, 5, 9, 0, 1, 1, 2, 3, 4, 0, 80]), 5);
  assert.equal(hex(r7.subarray(0, 4)), "05 00 05 07");
});

Deno.test("socks5 UDP ASSOCIATE round-trips datagrams (and is refused without udp=true)", async () => {
  const echo = udpEchoServer();
  const echoPort = echo.port;
  await using rt = await Runtime.start(cliConfig(["socks5://127.0.0.1:0?udp=true"], []));
  await using noUdp = await Runtime.start(cliConfig(["socks5://127.0.0.1:0"], []));
  const ctl = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const refused = await talk(
      noUdp.services[0]!.listener.addr.port,
      new Uint8Array([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]),
      4,
    );
    assert.equal(hex(refused), "05 00 05 02");
    await ctl.write(new Uint8Array([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    const br = new BufReader(ctl);
    assert.equal(hex(await br.readN(2)), "05 00");
    const rep = await br.readN(10);
    assert.equal(rep[1], 0);
    const relayPort = (rep[8]! << 8) | rep[9]!;
    for (let i = 0; i < 5; i++) {
      const payload = randomBytes(100 + i);
      const head = encodeSocksAddr("127.0.0.1", echoPort);
      const dg = new Uint8Array(3 + head.length + payload.length);
      dg.set(head, 3);
      dg.set(payload, 3 + head.length);
      await sock.send(dg, { transport: "udp", hostname: "127.0.0.1", port: relayPort });
      const [back] = await withTimeout(sock.receive(), 3000, "udp reply");
      const { addr, next } = parseSocksAddr(back, 3);
      assert.equal(addr, `127.0.0.1:${echoPort}`);
      assert.deepEqual(back.subarray(next), payload);
    }
  } finally {
    ctl.close();
    sock.close();
    await echo.close();
  }
});

Deno.test("garbage on every proxy port gets a refusal or a closed conn, and the service keeps serving", async () => {
  const echo = echoServer();
  const types = ["http", "socks5", "socks4", "relay", "auto"];
  const rts = await Promise.all(
    types.map((t) => Runtime.start(cliConfig([`${t}://127.0.0.1:0?readTimeout=1s`], []))),
  );
  try {
    for (const [i, rt] of rts.entries()) {
      const port = rt.services[0]!.listener.addr.port;
      for (
        const junk of [
          randomBytes(2000),
          new Uint8Array([types[i] === "socks4" ? 4 : 5, 0xff, 0, 0, 0, 0]),
          new TextEncoder().encode("GET\r\n\r\n"),
        ]
      ) {
        const c = await dialTcp("127.0.0.1", port);
        await c.write(junk).catch(() => {});
        if (junk.length > 100) await c.closeWrite().catch(() => {});
        const got = await withTimeout(
          readAll(c).catch(() => new Uint8Array(0)),
          5000,
          `${types[i]} closes on garbage`,
        );
        assert.ok(got.length < 200, `${types[i]}: short refusal at most`);
        c.close();
      }
      assert.equal(rt.services[0]!.connections, 0, `${types[i]}: no leaked conns`);
    }
    // Still serving: a real request through the socks5 one.
    const port = rts[1]!.services[0]!.listener.addr.port;
    const c = await dialTcp("127.0.0.1", port);
    await c.write(
      new Uint8Array([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 255]),
    );
    const br = new BufReader(c);
    await br.readN(12);
    await c.write(new Uint8Array([42]));
    assert.deepEqual([...await br.readN(1)], [42]);
    c.close();
  } finally {
    await Promise.all(rts.map((r) => r.close()));
    await echo.close();
  }
});

Deno.test("socks4 and socks5 BIND (bind=true): two replies, then the peer's bytes flow both ways", async () => {
  for (const v of [4, 5]) {
    await using rt = await Runtime.start(cliConfig([`socks${v}://127.0.0.1:0?bind=true`], []));
    const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
    try {
      const br = new BufReader(c);
      let port: number;
      if (v === 4) {
        await c.write(new Uint8Array([4, 2, 0, 0, 0, 0, 0, 0, 0]));
        const r1 = await withTimeout(br.readN(8), 3000);
        assert.equal(r1[1], 90);
        port = (r1[2]! << 8) | r1[3]!;
      } else {
        await c.write(new Uint8Array([5, 1, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]));
        await br.readN(2);
        const r1 = await withTimeout(br.readN(10), 3000);
        assert.equal(r1[1], 0);
        port = (r1[8]! << 8) | r1[9]!;
      }
      const peer = await dialTcp("127.0.0.1", port);
      const r2 = await withTimeout(br.readN(v === 4 ? 8 : 10), 3000);
      assert.equal(r2[1], v === 4 ? 90 : 0, "second reply: the peer connected");
      await peer.write(new Uint8Array([1, 2, 3]));
      assert.deepEqual([...await withTimeout(br.readN(3), 3000)], [1, 2, 3]);
      await c.write(new Uint8Array([9]));
      const back = new Uint8Array(1);
      assert.equal(await withTimeout(peer.read(back), 3000), 1);
      assert.equal(back[0], 9);
      peer.close();
    } finally {
      c.close();
    }
  }
});

for (
  const [proto, serverQuery] of [["socks5", "?udp=true"], ["relay", ""], [
    "http",
    "?udp=true",
  ]] as const
) {
  Deno.test(`UDP port forwarding through a ${proto} hop (UDP over the TCP tunnel) round-trips datagrams`, async () => {
    const echo = udpEchoServer();
    await using hop = await Runtime.start(cliConfig([`${proto}://127.0.0.1:0${serverQuery}`], []));
    await using fwd = await Runtime.start(
      cliConfig([`udp://127.0.0.1:0/127.0.0.1:${echo.port}?keepalive=true`], [
        `${proto}://127.0.0.1:${hop.services[0]!.listener.addr.port}`,
      ]),
    );
    const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      for (let i = 0; i < 5; i++) {
        const msg = randomBytes(10 + i * 300);
        await sock.send(msg, {
          transport: "udp",
          hostname: "127.0.0.1",
          port: fwd.services[0]!.listener.addr.port,
        });
        const [back] = await withTimeout(sock.receive(), 3000, `datagram ${i} via ${proto}`);
        assert.deepEqual(back, msg);
      }
    } finally {
      sock.close();
      await echo.close();
    }
  });
}

Deno.test("http keep-alive: an idle client connection is closed after idleTimeout", async () => {
  const { startOrigin } = await import("./_server.ts");
  const origin = startOrigin();
  await using rt = await Runtime.start(cliConfig(["http://127.0.0.1:0?idleTimeout=300ms"], []));
  const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
  try {
    await c.write(
      new TextEncoder().encode(
        `GET http://127.0.0.1:${origin.port}/bytes?n=5 HTTP/1.1\r\nHost: x\r\n\r\n`,
      ),
    );
    const br = new BufReader(c);
    const head = await withTimeout(br.readHead(), 3000);
    assert.match(head!, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(head!, /Connection: close/i, "the connection is kept alive");
    await br.readN(5);
    const t0 = Date.now();
    const rest = await withTimeout(
      readAll(br.conn()).catch(() => new Uint8Array(0)),
      5000,
      "idle close",
    );
    const waited = Date.now() - t0;
    assert.equal(rest.length, 0);
    assert.ok(waited >= 200 && waited < 3000, `closed after ${waited} ms`);
  } finally {
    c.close();
    await origin.close();
  }
});

Deno.test("http forwarding: an origin that dies mid-body cuts the client off; no 502 inside the body", async () => {
  // An origin that promises 1000 bytes, sends 10, then goes away.
  const origin = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const c = await origin.accept();
    const buf = new Uint8Array(4096);
    await c.read(buf);
    await c.write(
      new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"),
    );
    c.close();
  })();
  const rt = await Runtime.start(cliConfig(["http://127.0.0.1:0"], []));
  try {
    const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
    const port = (origin.addr as Deno.NetAddr).port;
    await c.write(
      new TextEncoder().encode(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\n\r\n`),
    );
    const got = new TextDecoder().decode(await withTimeout(readAll(c), 5000));
    c.close();
    assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(got.endsWith("\r\n\r\n0123456789"), JSON.stringify(got));
    assert.ok(!got.includes("502"));
  } finally {
    await rt.close();
    origin.close();
    await serving;
  }
});

Deno.test("a proxy asked to reach its own listener refuses at once (508 / SOCKS5 REP 2), no self-connections", async () => {
  const rt = await Runtime.start(cliConfig(["http://127.0.0.1:0", "socks5://:0"], []));
  try {
    const hp = rt.services[0]!.listener.addr.port;
    for (const host of ["127.0.0.1", "localhost"]) {
      const c = await dialTcp("127.0.0.1", hp);
      await c.write(
        new TextEncoder().encode(`GET http://${host}:${hp}/ HTTP/1.1\r\nHost: ${host}\r\n\r\n`),
      );
      const got = new TextDecoder().decode(await withTimeout(readAll(c), 5000));
      c.close();
      assert.match(got, /^HTTP\/1\.1 508 Loop Detected/);
      const t = await dialTcp("127.0.0.1", hp);
      await t.write(new TextEncoder().encode(`CONNECT ${host}:${hp} HTTP/1.1\r\n\r\n`));
      assert.match(
        new TextDecoder().decode(await withTimeout(readAll(t), 5000)),
        /^HTTP\/1\.1 508/,
      );
      t.close();
    }
    // The socks5 service listens on every address: any local IP with its port is itself.
    const sp = rt.services[1]!.listener.addr.port;
    const s = await dialTcp("127.0.0.1", sp);
    await s.write(new Uint8Array([5, 1, 0]));
    const br = new BufReader(s, 64);
    assert.deepEqual([...await br.readN(2)], [5, 0]);
    await s.write(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 9, sp >> 8, sp & 0xff]));
    assert.equal((await withTimeout(br.readN(2), 5000))[1], 2, "REP 2: not allowed");
    s.close();
    // A different port on the same host is not a loop.
    const other = echoServer();
    const o = await dialTcp("127.0.0.1", hp);
    await o.write(new TextEncoder().encode(`CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\n\r\n`));
    const head = (await withTimeout(new BufReader(o).readHead(), 5000))!;
    assert.match(head, /^HTTP\/1\.1 200/);
    o.close();
    await other.close();
  } finally {
    await rt.close();
  }
});

Deno.test("http: a bare CR inside a header is refused with 400, never forwarded", async () => {
  const rt = await Runtime.start(cliConfig(["http://127.0.0.1:0"], []));
  try {
    const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
    await c.write(
      new TextEncoder().encode(
        "GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: x\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n",
      ),
    );
    const got = new TextDecoder().decode(await withTimeout(readAll(c), 5000));
    c.close();
    assert.match(got, /^HTTP\/1\.1 400 Bad Request/);
  } finally {
    await rt.close();
  }
});

Deno.test("http forwarding: a client that leaves mid-response frees the upstream at once (stalled origin)", async () => {
  const origin = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const sawEnd = (async () => {
    const c = await origin.accept();
    held.push(c);
    await c.read(new Uint8Array(4096));
    await c.write(enc("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial"));
    // Then the origin stalls. The proxy must close its side once the client is gone.
    const b = new Uint8Array(16);
    while (await c.read(b).catch(() => null) !== null) { /* nothing comes */ }
    return true;
  })();
  const rt = await Runtime.start(cliConfig(["http://127.0.0.1:0"], []));
  try {
    const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
    const port = (origin.addr as Deno.NetAddr).port;
    await c.write(enc(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\n\r\n`));
    const br = new BufReader(c);
    assert.match((await withTimeout(br.readHead(), 5000))!, /^HTTP\/1\.1 200/);
    c.close(); // the client leaves while the body is still coming
    assert.equal(await withTimeout(sawEnd, 5000, "upstream closed by the proxy"), true);
  } finally {
    await rt.close();
    for (const c of held) c.close();
    origin.close();
  }
});

Deno.test("http: forwarded requests carry our Via mark; a request that carries it already is a loop: 508", async () => {
  const rt = await Runtime.start(cliConfig(["http://127.0.0.1:0"], []));
  const origin = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = rt.services[0]!.listener.addr.port;
    // A plain request is forwarded with the mark added to the hops it already had.
    const op = (origin.addr as Deno.NetAddr).port;
    const seen = (async () => {
      const o = await origin.accept();
      const head = (await new BufReader(o).readHead())!;
      await o.write(enc("HTTP/1.1 204 No Content\r\n\r\n"));
      o.close();
      return head;
    })();
    const g = await dialTcp("127.0.0.1", port);
    await g.write(enc(`GET http://127.0.0.1:${op}/ HTTP/1.1\r\nHost: x\r\nVia: 1.0 first\r\n\r\n`));
    const head = await withTimeout(seen, 5000);
    g.close();
    const m = /\r\nVia: 1\.0 first, 1\.1 (burrow-[0-9a-f]{8})\r\n/i.exec(head);
    assert.ok(m, head);
    // The same runtime reached again (a chain or proxy leading back) refuses.
    const c = await dialTcp("127.0.0.1", port);
    await c.write(enc(`CONNECT 127.0.0.1:9 HTTP/1.1\r\nVia: 1.1 other, 1.1 ${m[1]}\r\n\r\n`));
    assert.match(new TextDecoder().decode(await withTimeout(readAll(c), 5000)), /^HTTP\/1\.1 508/);
    c.close();
  } finally {
    await rt.close();
    origin.close();
  }
});
