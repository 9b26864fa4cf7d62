/**
 * The tun handler's wire protocol (issue #19, docs/tun.md §2–3) against a device stand-in, with
 * no root needed: the bytes GOST's client sends and its server answers, routing by announced
 * addresses, the auther, malformed control datagrams, and a client dialing again when its
 * keep-alives go unanswered. Real devices in network namespaces: tests/transport/tun_test.ts.
 */
import assert from "node:assert/strict";
import { ConnBase, type NetAddr } from "../../src/core/conn.ts";
import { AsyncQueue } from "../../src/core/queue.ts";
import { Logger } from "../../src/core/log.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { Cidr, parseIp } from "../../src/core/ip.ts";
import { dialUdp } from "../../src/core/udp.ts";
import type { Auther, HandlerOptions, TargetSelector } from "../../src/core/types.ts";
import {
  decodeKeepalive,
  encodeKeepalive,
  encodeReply,
  isReply,
  packetDst,
  type TunLink,
} from "../../src/protocol/tun.ts";
import { TunHandler } from "../../src/proxy/tun/mod.ts";
import { until, withTimeout } from "../_helpers.ts";

/** A tun device stand-in: packets pushed in are read by the handler; its writes are kept. */
class FakeTun extends ConnBase {
  readonly datagram = true;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr = { transport: "tun", hostname: "10.124.0.1", port: 0 };
  readonly tunLink: TunLink;
  readonly incoming = new AsyncQueue<Uint8Array>();
  readonly written: Uint8Array[] = [];
  closed = false;

  constructor(link: TunLink) {
    super();
    this.tunLink = link;
    this.localAddr = link.addr;
  }

  async read(p: Uint8Array): Promise<number | null> {
    const d = await this.incoming.shift();
    if (d === null) return null;
    p.set(d);
    return d.length;
  }

  write(p: Uint8Array): Promise<number> {
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.incoming.close();
    try {
      this.tunLink.socket?.close();
    } catch { /* closed */ }
  }
}

function link(
  ips: string[],
  routes: TunLink["routes"] = [],
  admit: (peer: NetAddr) => boolean = () => true,
): TunLink {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const a = socket.addr as Deno.NetAddr;
  return {
    mode: "tun",
    name: "tunX",
    ips: ips.map((s) => parseIp(s)!),
    routes,
    socket,
    addr: { transport: "udp", hostname: a.hostname, port: a.port },
    admit,
  };
}

/** A minimal IPv4 packet from `src` to `dst` with `body` (checksums are not the handler's job). */
function ipv4(src: string, dst: string, body = "x"): Uint8Array {
  const b = new TextEncoder().encode(body);
  const p = new Uint8Array(20 + b.length);
  p[0] = 0x45;
  new DataView(p.buffer).setUint16(2, p.length);
  p[9] = 17;
  p.set(parseIp(src)!, 12);
  p.set(parseIp(dst)!, 16);
  p.set(b, 20);
  return p;
}

function options(
  md: Record<string, unknown>,
  extra: Partial<HandlerOptions> = {},
  lines: string[] = [],
): HandlerOptions {
  return {
    metadata: new Metadata(md as Record<string, string>, "handler.metadata"),
    router: { dial: (_n, addr) => dialUdp(addr) },
    log: new Logger("debug", {}, (l) => lines.push(l)),
    service: "t",
    ...extra,
  };
}

function forwarder(addr: string): TargetSelector {
  return {
    select: () => ({ name: "s", addr }),
    markFailed: () => {},
    markOk: () => {},
  };
}

/** A UDP socket playing a peer, with a bounded receive. */
function peer() {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const addr = s.addr as Deno.NetAddr;
  return {
    addr,
    port: addr.port,
    send: (d: Uint8Array, port: number) =>
      s.send(d, { transport: "udp", hostname: "127.0.0.1", port }),
    recv: async (ms = 3000): Promise<[Uint8Array, Deno.NetAddr]> => {
      const [d, f] = await withTimeout(s.receive(), ms, "a datagram");
      return [d, f as Deno.NetAddr];
    },
    close: () => s.close(),
  };
}

Deno.test("tun protocol: the keep-alive and reply bytes are GOST's (magic, 16-byte passphrase, v4-mapped addresses)", () => {
  const ka = encodeKeepalive("pw", [parseIp("10.124.0.2")!, parseIp("fd00::2")!]);
  assert.equal(ka.length, 20 + 32);
  assert.deepEqual([...ka.subarray(0, 4)], [0x47, 0x4f, 0x53, 0x54]);
  assert.deepEqual([...ka.subarray(4, 20)], [0x70, 0x77, ...new Array(14).fill(0)]);
  assert.deepEqual([...ka.subarray(20, 36)], [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    10,
    124,
    0,
    2,
  ]);
  assert.deepEqual([...ka.subarray(36)], [...parseIp("fd00::2")!]);
  const d = decodeKeepalive(ka)!;
  assert.equal(d.passphrase, "pw");
  assert.equal(d.ips.length, 2);
  // Malformed: no addresses, a ragged tail, the magic alone.
  assert.equal(decodeKeepalive(ka.subarray(0, 20)), null);
  assert.equal(decodeKeepalive(ka.subarray(0, 30)), null);
  assert.equal(decodeKeepalive(ipv4("10.0.0.1", "10.0.0.2", "x".repeat(40))), null);
  const r = encodeReply("127.0.0.9");
  assert.ok(isReply(r));
  assert.deepEqual([...r.subarray(4)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 9]);
  assert.deepEqual([...packetDst(ipv4("1.2.3.4", "5.6.7.8"))!], [5, 6, 7, 8]);
  assert.equal(
    packetDst(new Uint8Array([0x45, 0, 0])),
    null,
    "a truncated header has no destination",
  );
});

Deno.test("tun server: routes by announced addresses, answers keep-alives, relays client to client, drops the malformed", async () => {
  const l = link(["10.124.0.1"], [{
    prefix: Cidr.parse("10.50.0.0/16")!,
    gw: parseIp("10.124.0.3"),
  }]);
  const dev = new FakeTun(l);
  const h = new TunHandler(options({}));
  const ac = new AbortController();
  const done = h.handle(dev, { sid: "s", log: new Logger("none"), signal: ac.signal });
  const a = peer(), b = peer();
  try {
    // Client A announces 10.124.0.2 and gets "GOST" + its own address back.
    await a.send(encodeKeepalive("", [parseIp("10.124.0.2")!]), l.addr.port);
    const [reply] = await a.recv();
    assert.ok(isReply(reply));
    assert.deepEqual([...reply.subarray(16)], [127, 0, 0, 1]);
    // A packet from the device for 10.124.0.2 goes to A, as is.
    const toA = ipv4("10.124.0.1", "10.124.0.2", "down");
    dev.incoming.push(toA);
    assert.deepEqual((await a.recv())[0], toA);
    // A's packet for the server lands in the device.
    const up = ipv4("10.124.0.2", "10.124.0.1", "up");
    await a.send(up, l.addr.port);
    await until(() => dev.written.length === 1, 3000, "the packet in the device");
    assert.deepEqual(dev.written[0], up);
    // B announces 10.124.0.3, the gateway of 10.50.0.0/16: A reaches it and what is behind it.
    await b.send(encodeKeepalive("", [parseIp("10.124.0.3")!]), l.addr.port);
    assert.ok(isReply((await b.recv())[0]));
    const aToB = ipv4("10.124.0.2", "10.124.0.3", "peer");
    await a.send(aToB, l.addr.port);
    assert.deepEqual((await b.recv())[0], aToB);
    const behind = ipv4("10.124.0.1", "10.50.7.7", "routed");
    dev.incoming.push(behind);
    assert.deepEqual((await b.recv())[0], behind);
    // Malformed control datagrams get no reply and change nothing; the server's own address
    // cannot be claimed.
    await a.send(new TextEncoder().encode("GOST garbage"), l.addr.port);
    await a.send(encodeKeepalive("", [parseIp("10.124.0.1")!]), l.addr.port);
    await a.send(new Uint8Array([0x47, 0x4f, 0x53, 0x54]), l.addr.port);
    const marker = ipv4("10.124.0.2", "10.124.0.1", "after");
    await a.send(marker, l.addr.port);
    await until(() => dev.written.length === 2, 3000, "the packet after the garbage");
    assert.deepEqual(dev.written[1], marker, "garbage reached the device");
    await assert.rejects(a.recv(300), /timed out|a datagram/);
  } finally {
    ac.abort();
    dev.close();
    await withTimeout(done, 5000, "the handler to end");
    a.close();
    b.close();
  }
});

Deno.test("tun server with an auther: a wrong passphrase gets no route, and an unadmitted sender's packets are dropped", async () => {
  const l = link(["10.124.0.1"]);
  const dev = new FakeTun(l);
  const auther: Auther = {
    authenticate: (u, p) => u === "10.124.0.2" && p === "s3cret",
  };
  const lines: string[] = [];
  const h = new TunHandler(options({}, { auther }, lines));
  const ac = new AbortController();
  const done = h.handle(dev, {
    sid: "s",
    log: new Logger("debug", {}, (x) => lines.push(x)),
    signal: ac.signal,
  });
  const a = peer();
  try {
    await a.send(encodeKeepalive("wrong", [parseIp("10.124.0.2")!]), l.addr.port);
    await a.send(ipv4("10.124.0.2", "10.124.0.1", "sneak"), l.addr.port);
    await until(() => lines.some((x) => /keep-alive for 10\.124\.0\.2 refused/.test(x)), 3000);
    dev.incoming.push(ipv4("10.124.0.1", "10.124.0.2"));
    await assert.rejects(
      a.recv(300),
      /timed out|a datagram/,
      "no reply, no route to a refused client",
    );
    // The right passphrase admits it; its packets then flow.
    await a.send(encodeKeepalive("s3cret", [parseIp("10.124.0.2")!]), l.addr.port);
    assert.ok(isReply((await a.recv())[0]));
    const ok = ipv4("10.124.0.2", "10.124.0.1", "admitted");
    await a.send(ok, l.addr.port);
    await until(() => dev.written.length > 0, 3000, "the admitted packet");
    assert.deepEqual(dev.written, [ok], "the packet sent before admission was dropped");
  } finally {
    ac.abort();
    dev.close();
    await withTimeout(done, 5000, "the handler to end");
    a.close();
  }
});

Deno.test("tun client: announces its addresses, moves packets both ways, and dials again when keep-alives go unanswered", async () => {
  const server = peer();
  const l = link(["10.124.0.2"]);
  const dev = new FakeTun(l);
  const lines: string[] = [];
  const h = new TunHandler(
    options(
      { keepalive: "true", ttl: "200ms", passphrase: "pw" },
      { forwarder: forwarder(`127.0.0.1:${server.port}`) },
      lines,
    ),
  );
  const ac = new AbortController();
  const done = h.handle(dev, {
    sid: "c",
    log: new Logger("debug", {}, (x) => lines.push(x)),
    signal: ac.signal,
  });
  try {
    const [hello, from] = await server.recv();
    assert.deepEqual(hello, encodeKeepalive("pw", [parseIp("10.124.0.2")!]));
    await server.send(encodeReply(from.hostname), from.port);
    // Device → server, server → device (the reply itself never reaches the device).
    const up = ipv4("10.124.0.2", "10.124.0.1", "up");
    dev.incoming.push(up);
    let got: Uint8Array;
    do got = (await server.recv())[0]; while (decodeKeepalive(got));
    assert.deepEqual(got, up);
    const down = ipv4("10.124.0.1", "10.124.0.2", "down");
    await server.send(down, from.port);
    await until(() => dev.written.length === 1, 3000, "the packet in the device");
    assert.deepEqual(dev.written, [down]);
    // The server stops answering: after three periods the client gives up on the path and dials
    // again from a new socket, announcing itself first.
    let again: Deno.NetAddr | undefined;
    await withTimeout(
      (async () => {
        for (;;) {
          const [d, f] = await server.recv(5000);
          if (decodeKeepalive(d) && f.port !== from.port) return again = f;
        }
      })(),
      8000,
      "a new dial",
    );
    assert.ok(again);
    assert.ok(lines.some((x) => /no keep-alive reply/.test(x)), "the reconnect is logged");
  } finally {
    ac.abort();
    await withTimeout(done, 5000, "the handler to end");
    server.close();
  }
});

Deno.test("tun settings: keys GOST reads on other systems are refused by name; net is required; a passphrase fits 16 bytes", async () => {
  const { tunSettings } = await import("../../src/transport/tun/mod.ts");
  const md = (r: Record<string, string>) => new Metadata(r, "listener.metadata");
  for (const k of ["dns", "peer", "router", "guid", "tun.dns"]) {
    assert.throws(
      () => tunSettings(md({ net: "10.1.0.1/24", [k]: "x" })),
      new RegExp(`listener\\.metadata\\.${k.replace("tun.", "")}`),
    );
  }
  assert.throws(
    () => tunSettings(md({ net: "10.1.0.1/24", componentID: "tap0901" }), "tap"),
    /componentID: names a Windows TAP adapter/,
  );
  assert.equal(tunSettings(md({ net: "10.1.0.1/24" }), "tap").device.mode, "tap");
  assert.throws(() => tunSettings(md({})), /net/);
  assert.throws(() => tunSettings(md({ net: "10.1.0.1" })), /prefix length/);
  assert.throws(() => tunSettings(md({ net: "10.1.0.1/24", route: "nope" })), /CIDR/);
  const s = tunSettings(md({
    "tun.net": "10.1.0.1/24,fd00::1/64",
    mtu: "0",
    gw: "10.1.0.9",
    route: "10.2.0.0/16",
    routes: "10.3.0.0/16 10.1.0.7,10.4.0.0/16",
  }));
  assert.equal(s.device.mtu, 1420);
  assert.deepEqual(s.device.routes, [
    { dst: "10.2.0.0/16", gw: "10.1.0.9" },
    { dst: "10.3.0.0/16", gw: "10.1.0.7" },
    { dst: "10.4.0.0/16", gw: "10.1.0.9" },
  ]);
  assert.equal(s.ips.length, 2);
  assert.throws(
    () => new TunHandler(options({ passphrase: "x".repeat(17) })),
    /passphrase: is longer than the 16 bytes/,
  );
});

Deno.test("tun server with an auther: an admitted client cannot send from an address it did not announce", async () => {
  const l = link(["10.124.0.1"], [{
    prefix: Cidr.parse("10.60.0.0/16")!,
    gw: parseIp("10.124.0.2"),
  }]);
  const dev = new FakeTun(l);
  const auther: Auther = { authenticate: (u, p) => u === "10.124.0.2" && p === "pw" };
  const h = new TunHandler(options({}, { auther }));
  const ac = new AbortController();
  const done = h.handle(dev, { sid: "s", log: new Logger("none"), signal: ac.signal });
  const a = peer();
  try {
    await a.send(encodeKeepalive("pw", [parseIp("10.124.0.2")!]), l.addr.port);
    assert.ok(isReply((await a.recv())[0]));
    await a.send(ipv4("10.124.0.99", "10.124.0.1", "spoofed"), l.addr.port);
    const behind = ipv4("10.60.1.1", "10.124.0.1", "behind its gateway");
    await a.send(behind, l.addr.port);
    const own = ipv4("10.124.0.2", "10.124.0.1", "own");
    await a.send(own, l.addr.port);
    await until(() => dev.written.length >= 2, 3000, "the allowed packets");
    assert.deepEqual(dev.written, [behind, own], "the spoofed source was dropped");
  } finally {
    ac.abort();
    dev.close();
    await withTimeout(done, 5000, "the handler to end");
    a.close();
  }
});

Deno.test("tun server: a keep-alive flood cannot lock clients out (oversized announcements ignored, oldest routes go first); admission is per sender", async () => {
  let refusedPort = -1;
  const l = link(["10.124.0.1"], [], (p) => p.port !== refusedPort);
  const dev = new FakeTun(l);
  const h = new TunHandler(options({}));
  const ac = new AbortController();
  const done = h.handle(dev, { sid: "s", log: new Logger("none"), signal: ac.signal });
  const flood = peer(), a = peer(), banned = peer();
  refusedPort = banned.port;
  try {
    const addrs = (from: number, n: number) =>
      Array.from(
        { length: n },
        (_, i) =>
          parseIp(`10.${100 + ((from + i) >> 16)}.${((from + i) >> 8) & 255}.${(from + i) & 255}`)!,
      );
    await flood.send(encodeKeepalive("", addrs(0, 65)), l.addr.port);
    await assert.rejects(flood.recv(300), /timed out|a datagram/, "65 addresses: no reply");
    for (let i = 0; i < 70; i++) {
      await flood.send(encodeKeepalive("", addrs(i * 64, 64)), l.addr.port);
      await flood.recv();
    }
    // 4,480 addresses announced against 4,096 routes: a newcomer still gets in.
    await a.send(encodeKeepalive("", [parseIp("10.124.0.2")!]), l.addr.port);
    assert.ok(isReply((await a.recv())[0]));
    const toA = ipv4("10.124.0.1", "10.124.0.2");
    dev.incoming.push(toA);
    assert.deepEqual((await a.recv())[0], toA);
    // The oldest flood routes went: a packet for the first address goes nowhere.
    dev.incoming.push(ipv4("10.124.0.1", "10.100.0.1"));
    await assert.rejects(flood.recv(300), /timed out|a datagram/);
    // A sender the service's admission refuses gets nothing, not even a reply.
    await banned.send(encodeKeepalive("", [parseIp("10.124.0.7")!]), l.addr.port);
    await assert.rejects(banned.recv(300), /timed out|a datagram/);
  } finally {
    ac.abort();
    dev.close();
    await withTimeout(done, 5000, "the handler to end");
    flood.close(), a.close(), banned.close();
  }
});

Deno.test("tun client: the announcement is repeated until the server answers (a server that starts later learns the client)", async () => {
  const server = peer();
  const l = link(["10.124.0.2"]);
  const dev = new FakeTun(l);
  const h = new TunHandler(options({}, { forwarder: forwarder(`127.0.0.1:${server.port}`) }));
  const ac = new AbortController();
  const done = h.handle(dev, { sid: "c", log: new Logger("none"), signal: ac.signal });
  try {
    const [first, from] = await server.recv();
    assert.ok(decodeKeepalive(first));
    // Not answered: it comes again about a second later, from the same socket.
    const [second, from2] = await server.recv(3000);
    assert.ok(decodeKeepalive(second));
    assert.equal(from2.port, from.port);
    await server.send(encodeReply(from.hostname), from.port);
    // Answered and keepalive off: no more announcements (a packet is what comes next).
    const up = ipv4("10.124.0.2", "10.124.0.1", "up");
    setTimeout(() => dev.incoming.push(up), 2500);
    // The first datagram after the answer, 2.5 s on (past two repeat periods), is the packet.
    assert.deepEqual((await server.recv(5000))[0], up, "no announcement after the answer");
  } finally {
    ac.abort();
    await withTimeout(done, 5000, "the handler to end");
    server.close();
  }
});

Deno.test("tun handler: security settings on the side where they do nothing are refused", () => {
  assert.throws(() => new TunHandler(options({ passphrase: "pw" })), /is what a client sends/);
  assert.throws(
    () =>
      new TunHandler(
        options({}, {
          forwarder: forwarder("127.0.0.1:1"),
          auther: { authenticate: () => true },
        }),
      ),
    /a tun client checks nobody/,
  );
});

/** An Ethernet frame from `src` to `dst` MAC (last byte given; `0xff` = broadcast). */
function frame(dst: number, src: number, body = "frame"): Uint8Array {
  const b = new TextEncoder().encode(body);
  const f = new Uint8Array(14 + b.length);
  f.set(dst === 0xff ? [255, 255, 255, 255, 255, 255] : [2, 0, 0, 0, 0, dst]);
  f.set([2, 0, 0, 0, 0, src], 6);
  f[12] = 0x08;
  f.set(b, 14);
  return f;
}

Deno.test("tap server: learns MACs, floods broadcasts to the other clients and the device, drops what does not open", async () => {
  const { TapHandler } = await import("../../src/proxy/tap/mod.ts");
  const { sealDatagram, openDatagram, SsCipher } = await import("../../src/protocol/ss_aead.ts");
  const cipher = new SsCipher("aes-128-gcm", "pw");
  const l = { ...link(["10.125.0.1"]), mode: "tap" as const };
  const dev = new FakeTun(l);
  const h = new TapHandler(
    options({}, { auth: { username: "aes-128-gcm", password: "pw" } }),
  );
  const ac = new AbortController();
  const done = h.handle(dev, { sid: "s", log: new Logger("none"), signal: ac.signal });
  const a = peer(), b = peer();
  const recvFrame = async (p: ReturnType<typeof peer>, ms?: number) =>
    openDatagram(cipher, (await p.recv(ms))[0]);
  try {
    // A (MAC …:0a) and B (…:0b) say hello to the server's device (…:01); both land in it.
    await a.send(sealDatagram(cipher, frame(1, 0x0a, "a")), l.addr.port);
    await b.send(sealDatagram(cipher, frame(1, 0x0b, "b")), l.addr.port);
    await until(() => dev.written.length === 2, 3000, "two frames in the device");
    // A broadcast from A reaches B and the device, not A itself.
    const bc = frame(0xff, 0x0a, "who has");
    await a.send(sealDatagram(cipher, bc), l.addr.port);
    assert.deepEqual(await recvFrame(b), bc);
    await until(() => dev.written.length === 3, 3000, "the broadcast in the device");
    await assert.rejects(a.recv(300), /timed out|a datagram/);
    // A frame for B's MAC from A goes to B only; one from the device for A goes to A.
    const ab = frame(0x0b, 0x0a, "to b");
    await a.send(sealDatagram(cipher, ab), l.addr.port);
    assert.deepEqual(await recvFrame(b), ab);
    const toA = frame(0x0a, 0x01, "from the device");
    dev.incoming.push(toA);
    assert.deepEqual(await recvFrame(a), toA);
    // Garbage and a frame sealed with another password teach nothing and reach nobody.
    const other = new SsCipher("aes-128-gcm", "wrong");
    await a.send(sealDatagram(other, frame(0x0b, 0x0c, "forged")), l.addr.port);
    await a.send(new Uint8Array(40), l.addr.port);
    dev.incoming.push(frame(0x0c, 0x01, "for the forger"));
    await assert.rejects(b.recv(300), /timed out|a datagram/);
    await assert.rejects(a.recv(300), /timed out|a datagram/);
    assert.equal(dev.written.length, 3);
  } finally {
    ac.abort();
    dev.close();
    await withTimeout(done, 5000, "the handler to end");
    a.close(), b.close();
  }
});

Deno.test("tap handler: a key without a method is refused (it would encrypt nothing)", async () => {
  const { TapHandler } = await import("../../src/proxy/tap/mod.ts");
  assert.throws(() => new TapHandler(options({ key: "0123456789abcdef" })), /key: needs a method/);
  // With a method the raw key must fit it.
  assert.throws(
    () =>
      new TapHandler(
        options({ key: "short" }, { auth: { username: "aes-128-gcm", password: "" } }),
      ),
    /16-byte key/,
  );
});
