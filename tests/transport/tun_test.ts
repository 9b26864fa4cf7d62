/**
 * tun devices for real (issue #19): two network namespaces joined by a veth pair, a Burrow tun
 * server in one and a Burrow tun client in the other, each with a Linux TUN device. TCP between
 * the tun addresses must arrive byte for byte in both directions (client- and server-initiated),
 * over plain UDP and through a relay+ws chain; the device gets the name, MTU and routes asked
 * for, and the server sends a routed prefix to the client that owns its gateway. Skipped with a
 * message where namespaces or /dev/net/tun are not available.
 */
import assert from "node:assert/strict";
import { BurrowChild } from "../_burrow.ts";
import { Namespaces, nsSteps, run, vethSteps } from "../_netns.ts";

const id = `${Deno.pid % 10000}`;
const NS_S = `brw-ts${id}`, NS_C = `brw-tc${id}`;
const VETH_S = `ts${id}`, VETH_C = `tc${id}`;
const ECHO = new URL("../fixtures/echo_peer.ts", import.meta.url).pathname;

const ns = new Namespaces("tun", [NS_S, NS_C], [], () => {
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return [["false", "/dev/net/tun missing"]];
  }
  return [
    ...nsSteps(NS_S, NS_C),
    ...vethSteps(
      { ns: NS_S, dev: VETH_S, addr: "10.198.0.1/24" },
      { ns: NS_C, dev: VETH_C, addr: "10.198.0.2/24" },
    ),
    // Behind the client: an address the server reaches through the client's tun (a routed prefix).
    ["ip", "-n", NS_C, "addr", "add", "10.60.0.5/32", "dev", "lo"],
  ];
});

/** An echo server inside `ns`, once it listens. */
async function echoServer(ns: string, host: string, port: number): Promise<() => Promise<void>> {
  const c = new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", ECHO, "server", host, String(port)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const r = c.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await r.read();
  assert.match(first.value ?? "", /ready/);
  r.releaseLock();
  return async () => {
    try {
      c.kill();
    } catch { /* gone */ }
    await c.status;
    await c.stdout.cancel().catch(() => {});
  };
}

/** Sends `bytes` from inside `ns` to an echo server and checks they all came back. */
async function echoFrom(ns: string, host: string, port: number, bytes: number): Promise<void> {
  const o = await new Deno.Command("timeout", {
    args: [
      "30",
      "ip",
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "run",
      "-A",
      ECHO,
      "client",
      host,
      String(port),
      String(bytes),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
  assert.ok(o.success && /^ok/m.test(out), `echo ${host}:${port} from ${ns}: ${out.trim()}`);
}

const MIB = 1024 * 1024;

Deno.test({
  name:
    "tun: two namespaces over a Burrow tun pair (UDP): byte-exact both ways and over IPv6, name/mtu/route applied, a routed prefix goes to its gateway client",
  ignore: ns.why !== null,
  async fn() {
    assert.equal(ns.up(), null);
    const server = new BurrowChild([
      "-D",
      "-L",
      "tun://10.198.0.1:8421?net=10.124.0.1/24,fd00:124::1/64&name=brwtun0&mtu=1400&route=10.60.0.0/16&gw=10.124.0.2",
    ], { prefix: ns.exec(NS_S) });
    const client = new BurrowChild([
      "-L",
      "tun://:0/10.198.0.1:8421?net=10.124.0.2/24,fd00:124::2/64",
    ], {
      prefix: ns.exec(NS_C),
    });
    const stops: (() => Promise<void>)[] = [];
    try {
      await server.waitFor((r) => /tun: 10\.124\.0\.2 is at 10\.198\.0\.2:\d+/.test(r.msg));
      const link = run(["ip", "-n", NS_S, "link", "show", "brwtun0"]);
      assert.match(link.out, /mtu 1400/);
      assert.match(
        run(["ip", "-n", NS_S, "route"]).out,
        /10\.60\.0\.0\/16 via 10\.124\.0\.2 dev brwtun0/,
      );
      // Client → server, and server → client (the server learned the client from its keep-alive).
      stops.push(await echoServer(NS_S, "10.124.0.1", 7000));
      stops.push(await echoServer(NS_C, "10.124.0.2", 7001));
      stops.push(await echoServer(NS_C, "10.60.0.5", 7002));
      await echoFrom(NS_C, "10.124.0.1", 7000, 4 * MIB);
      await echoFrom(NS_S, "10.124.0.2", 7001, 4 * MIB);
      // 10.60.0.0/16 routes via 10.124.0.2: the server's handler sends it to that client.
      await echoFrom(NS_S, "10.60.0.5", 7002, MIB);
      // IPv6 through the same tunnel (the keep-alive announced both addresses).
      stops.push(await echoServer(NS_S, "fd00:124::1", 7003));
      await echoFrom(NS_C, "fd00:124::1", 7003, MIB);
    } finally {
      for (const s of stops) await s();
      await server.stop();
      await client.stop();
      ns.down();
    }
    assert.ok(
      !run(["ip", "-n", NS_S, "link", "show", "brwtun0"]).ok,
      "the device went with Burrow",
    );
  },
});

Deno.test({
  name: "tun: the client reaches the server through a relay+ws chain, with keep-alives",
  ignore: ns.why !== null,
  async fn() {
    assert.equal(ns.up(), null);
    const server = new BurrowChild([
      "-D",
      "-L",
      "tun://10.198.0.1:8421?net=10.124.0.1/24",
      "-L",
      "relay+ws://10.198.0.1:8080",
    ], { prefix: ns.exec(NS_S) });
    const client = new BurrowChild([
      "-L",
      "tun://:8421/10.198.0.1:8421?net=10.124.0.2/24&keepalive=true&ttl=1s",
      "-F",
      "relay+ws://10.198.0.1:8080",
    ], { prefix: ns.exec(NS_C) });
    const stops: (() => Promise<void>)[] = [];
    try {
      // Through the relay, the server sees the relay's own UDP socket as the client.
      await server.waitFor((r) => /tun: 10\.124\.0\.2 is at 10\.198\.0\.1:\d+/.test(r.msg));
      stops.push(await echoServer(NS_S, "10.124.0.1", 7000));
      stops.push(await echoServer(NS_C, "10.124.0.2", 7001));
      await echoFrom(NS_C, "10.124.0.1", 7000, 2 * MIB);
      await echoFrom(NS_S, "10.124.0.2", 7001, 2 * MIB);
      // A client has no socket of its own: its listen port stays free (no clash with a server).
      assert.doesNotMatch(run([...ns.exec(NS_C), "ss", "-Hlun"]).out, /:8421\b/);
      assert.ok(
        !client.records.some((r) => /no keep-alive reply/.test(r.msg)),
        `keep-alive replies came back through the chain (${client.tail()})`,
      );
    } finally {
      for (const s of stops) await s();
      await server.stop();
      await client.stop();
      ns.down();
    }
  },
});

Deno.test({
  name:
    "tap: Ethernet over UDP between two namespaces (ARP and TCP through MAC learning), sealed with a shadowsocks method; a wrong password passes nothing",
  ignore: ns.why !== null,
  async fn() {
    assert.equal(ns.up(), null);
    const server = new BurrowChild([
      "-L",
      "tap://aes-128-gcm:s3cret@10.198.0.1:8421?net=10.125.0.1/24&name=brwtap0",
    ], { prefix: ns.exec(NS_S) });
    const stops: (() => Promise<void>)[] = [];
    let client: BurrowChild | undefined;
    try {
      await server.servicePort("service-0");
      assert.match(run(["ip", "-n", NS_S, "link", "show", "brwtap0"]).out, /mtu 1420/);
      stops.push(await echoServer(NS_S, "10.125.0.1", 7000));
      // First a client with the wrong password: its frames do not open at the server, so even
      // its ARP for 10.125.0.1 goes unanswered and the connection cannot start.
      const wrong = new BurrowChild([
        "-L",
        "tap://aes-128-gcm:wrong@:0/10.198.0.1:8421?net=10.125.0.2/24",
      ], { prefix: ns.exec(NS_C) });
      try {
        await wrong.waitFor((r) => /tap: tap\d+ <-> 10\.198\.0\.1:8421/.test(r.msg));
        const o = await new Deno.Command("timeout", {
          args: ["4", "ip", "netns", "exec", NS_C, Deno.execPath(), "eval", CONNECT_7000],
          stdout: "piped",
        }).output();
        assert.doesNotMatch(new TextDecoder().decode(o.stdout), /connected/);
      } finally {
        await wrong.stop();
      }
      client = new BurrowChild([
        "-L",
        "tap://aes-128-gcm:s3cret@:0/10.198.0.1:8421?net=10.125.0.2/24",
      ], { prefix: ns.exec(NS_C) });
      await client.waitFor((r) => /tap: tap\d+ <-> 10\.198\.0\.1:8421/.test(r.msg));
      stops.push(await echoServer(NS_C, "10.125.0.2", 7001));
      await echoFrom(NS_C, "10.125.0.1", 7000, 2 * MIB);
      await echoFrom(NS_S, "10.125.0.2", 7001, 2 * MIB);
    } finally {
      for (const s of stops) await s();
      await server.stop();
      await client?.stop();
      ns.down();
    }
  },
});

const CONNECT_7000 =
  `try { (await Deno.connect({ hostname: "10.125.0.1", port: 7000 })).close(); console.log("connected") } catch (e) { console.log("failed", e.name) }`;
