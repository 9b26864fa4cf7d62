/** Hosts and resolver: a tiny DNS server on loopback over UDP, TCP, DoT and DoH. */
// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import * as tls from "node:tls";
import * as net from "node:net";
import assert from "node:assert/strict";
import { Resolver } from "../../src/resolver/resolver.ts";
import { Hosts } from "../../src/resolver/hosts.ts";
import { directDial } from "../../src/chain/router.ts";
import { generateCert } from "../../src/transport/tls/cert.ts";
import { silentLogger } from "../../src/core/log.ts";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { hasCommand } from "../_helpers.ts";
import { curl, startOrigin } from "../proxy/_server.ts";

/** Answers A/AAAA for names in `zone`; NXDOMAIN otherwise. Counts queries. */
function answer(raw: Uint8Array, zone: Record<string, string>): Uint8Array {
  const q = dnsPacket.decode(Buffer.from(raw));
  const question = q.questions![0]!;
  const ip = zone[question.name];
  const want = question.type === "A" ? (ip && !ip.includes(":")) : (ip && ip.includes(":"));
  return dnsPacket.encode({
    type: "response",
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (ip ? 0 : 3),
    questions: q.questions,
    answers: want ? [{ type: question.type as "A", name: question.name, ttl: 30, data: ip! }] : [],
  });
}

interface DnsServers {
  udp: number;
  tcp: number;
  dot: number;
  doh: number;
  queries: number;
  close(): Promise<void>;
}

async function dnsServers(zone: Record<string, string>): Promise<DnsServers> {
  const state = { queries: 0 };
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const udpLoop = (async () => {
    try {
      for (;;) {
        const [d, from] = await udp.receive();
        state.queries++;
        await udp.send(answer(d, zone), from);
      }
    } catch { /* closed */ }
  })();
  const onStream = (s: net.Socket) => {
    let buf = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const n = buf.readUInt16BE(0);
        const a = answer(buf.subarray(2, 2 + n), zone);
        state.queries++;
        const out = Buffer.alloc(2 + a.length);
        out.writeUInt16BE(a.length, 0);
        Buffer.from(a).copy(out, 2);
        s.write(out);
        buf = buf.subarray(2 + n);
      }
    });
    s.on("error", () => {});
  };
  const listen = (srv: net.Server) =>
    new Promise<number>((r) =>
      srv.listen(0, "127.0.0.1", () => r((srv.address() as net.AddressInfo).port))
    );
  const tcpSrv = net.createServer(onStream);
  const cert = await generateCert("dns.test");
  const dotSrv = tls.createServer({ cert: cert.cert, key: cert.key }, onStream);
  const ac = new AbortController();
  const doh = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      cert: cert.cert,
      key: cert.key,
      signal: ac.signal,
      onListen() {},
    },
    async (req) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/dns-query") {
        return new Response("no", { status: 404 });
      }
      state.queries++;
      const a = answer(new Uint8Array(await req.arrayBuffer()), zone);
      return new Response(a as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": "application/dns-message" },
      });
    },
  );
  const [tcp, dot] = [await listen(tcpSrv), await listen(dotSrv)];
  return {
    udp: (udp.addr as Deno.NetAddr).port,
    tcp,
    dot,
    doh: doh.addr.port,
    get queries() {
      return state.queries;
    },
    close: async () => {
      udp.close();
      await udpLoop;
      await new Promise((r) => tcpSrv.close(r));
      await new Promise((r) => dotSrv.close(r));
      ac.abort();
      await doh.finished;
    },
  };
}

const dial = (network: "tcp" | "udp", address: string, signal: AbortSignal) =>
  directDial(network, address, signal);

Deno.test("resolver: UDP, TCP, DoT and DoH answer a made-up name; NXDOMAIN is an error", async () => {
  const dns = await dnsServers({ "made.up.test": "127.0.0.9", "v6.test": "::1" });
  try {
    for (
      const addr of [
        `127.0.0.1:${dns.udp}`,
        `udp://127.0.0.1:${dns.udp}`,
        `tcp://127.0.0.1:${dns.tcp}`,
        `tls://127.0.0.1:${dns.dot}`,
        `https://127.0.0.1:${dns.doh}/dns-query`,
      ]
    ) {
      const r = new Resolver([{ addr, dial, ttlMs: -1 }], silentLogger);
      assert.deepEqual(await r.resolve("made.up.test"), ["127.0.0.9"], addr);
      // No A record: falls back to AAAA.
      assert.deepEqual(await r.resolve("v6.test"), ["::1"], addr);
      await assert.rejects(r.resolve("nope.test"), /domain nope\.test does not exist/, addr);
    }
    const pref = new Resolver(
      [{ addr: `127.0.0.1:${dns.udp}`, dial, prefer: "ipv6" }],
      silentLogger,
    );
    assert.deepEqual(await pref.resolve("v6.test"), ["::1"]);
    const only = new Resolver([{ addr: `127.0.0.1:${dns.udp}`, dial, only: "ipv4" }], silentLogger);
    await assert.rejects(only.resolve("v6.test"), /does not exist/);
  } finally {
    await dns.close();
  }
});

Deno.test("resolver: answers are cached for the ttl; a dead first nameserver falls through", async () => {
  const dns = await dnsServers({ "c.test": "127.0.0.7" });
  const dead = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const r = new Resolver([
      { addr: `127.0.0.1:${(dead.addr as Deno.NetAddr).port}`, dial, timeoutMs: 200 },
      { addr: `127.0.0.1:${dns.udp}`, dial },
    ], silentLogger);
    assert.deepEqual(await r.resolve("c.test"), ["127.0.0.7"]);
    const before = dns.queries;
    assert.deepEqual(await r.resolve("c.test"), ["127.0.0.7"]);
    assert.equal(dns.queries, before, "second lookup came from the cache");
  } finally {
    dead.close();
    await dns.close();
  }
});

Deno.test("hosts: exact, .suffix, catch-all; case-insensitive", () => {
  const h = new Hosts();
  h.load(["127.0.0.1 foo.test Alias.test", "10.0.0.1 .corp.test", "::1 ."]);
  assert.deepEqual(h.lookup("FOO.test"), ["127.0.0.1"]);
  assert.deepEqual(h.lookup("alias.test"), ["127.0.0.1"]);
  assert.deepEqual(h.lookup("a.b.corp.test"), ["10.0.0.1"]);
  assert.deepEqual(h.lookup("corp.test"), ["10.0.0.1"]);
  assert.deepEqual(h.lookup("else.test"), ["::1"]);
});

Deno.test({
  name: "hosts= and resolver= on a socks5 service let curl --socks5-hostname reach made-up names",
  ignore: !hasCommand("curl"),
  fn: async () => {
    const origin = startOrigin();
    const dns = await dnsServers({ "dns.made.up": "127.0.0.1" });
    const rt = await Runtime.start(cliConfig([
      "socks5://127.0.0.1:0?hosts=foo.test:127.0.0.1",
      `socks5://127.0.0.1:0?resolver=udp://127.0.0.1:${dns.udp}`,
      "socks5://127.0.0.1:0",
    ], []));
    const get = async (i: number, host: string) => {
      const r = await curl([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--socks5-hostname",
        `127.0.0.1:${rt.services[i]!.listener.addr.port}`,
        `http://${host}:${origin.port}/bytes?n=4`,
      ]);
      return new TextDecoder().decode(r.stdout);
    };
    try {
      assert.equal(await get(0, "foo.test"), "200");
      assert.equal(await get(1, "dns.made.up"), "200");
      assert.equal(await get(2, "foo.test"), "000", "without hosts the made-up name fails");
    } finally {
      await rt.close();
      await dns.close();
      await origin.close();
    }
  },
});
