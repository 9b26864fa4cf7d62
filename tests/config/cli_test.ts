import assert from "node:assert/strict";
import { parseArgs, parseNodeUrl, parseServiceUrl, UsageError } from "../../src/config/cli.ts";
import { builtinRegistries, cliConfig } from "../../src/builtins.ts";

// docs/gost-config.md §1.5, services: CLI → handler, listener (+ forward targets)
const SERVICES: [string, string, string, string[]?][] = [
  [":8080", "auto", "tcp"],
  ["http://:8080", "http", "tcp"],
  ["https://:443", "http", "tls"],
  ["socks5://u:p@:1080", "socks5", "tcp"],
  ["wss://:8443", "auto", "wss"],
  ["relay+mws://:443", "relay", "mws"],
  ["mtcp://:8443/:8080", "forward", "mtcp", [":8080"]],
  ["tcp://:2222/10.0.0.1:22", "tcp", "tcp", ["10.0.0.1:22"]],
  ["udp://:53/8.8.8.8:53?keepalive=true&ttl=30s", "udp", "udp", ["8.8.8.8:53"]],
  ["relay://:8080/10.0.0.1:80", "relay", "tcp", ["10.0.0.1:80"]],
  ["socks5://:1080/1.2.3.4:80", "tcp", "tcp", ["1.2.3.4:80"]],
  ["kcp://:8443/:8080", "forward", "kcp", [":8080"]],
  ["ss://aes-128-gcm:pass@:8338", "ss", "tcp"],
  ["ssu://aes-128-gcm:pass@:8338", "ssu", "udp"],
  ["http+mtcp://:8443", "http", "mtcp"],
  ["127.0.0.1:8080", "auto", "tcp"],
];

for (const [url, handler, listener, targets] of SERVICES) {
  Deno.test(`-L ${url} → handler ${handler}, listener ${listener}`, () => {
    const [svc] = parseServiceUrl(url, 0);
    assert.equal(svc!.handler.type, handler);
    assert.equal(svc!.listener.type, listener);
    assert.deepEqual(svc!.forwarder?.nodes?.map((n) => n.addr), targets);
  });
}

// docs/gost-config.md §1.5, nodes: CLI → connector, dialer
const NODES: [string, string, string][] = [
  ["1.2.3.4:8080", "http", "tcp"],
  ["wss://h:443", "http", "wss"],
  ["socks5://h:1080", "socks5", "tcp"],
  ["https://h:443", "http", "tls"],
  ["relay+kcp://h:9000", "relay", "kcp"],
  ["forward+mws://h:443", "forward", "mws"],
  ["forward+mtcp://h:8443", "forward", "mtcp"],
];
for (const [url, connector, dialer] of NODES) {
  Deno.test(`-F ${url} → connector ${connector}, dialer ${dialer}`, () => {
    const hop = parseNodeUrl(url, 0);
    assert.equal(hop.nodes![0]!.connector.type, connector);
    assert.equal(hop.nodes![0]!.dialer.type, dialer);
  });
}

Deno.test("userinfo becomes handler auth; ?auth= base64 works too", () => {
  assert.deepEqual(parseServiceUrl("socks5://u:p%40ss@:1080", 0)[0]!.handler.auth, {
    username: "u",
    password: "p@ss",
  });
  assert.deepEqual(parseServiceUrl(`http://:8080?auth=${btoa("a:b")}`, 0)[0]!.handler.auth, {
    username: "a",
    password: "b",
  });
});

Deno.test("SIP002 base64 userinfo for ss schemes", () => {
  const ui = btoa("chacha20-ietf-poly1305:secret").replace(/=+$/, "");
  assert.deepEqual(parseServiceUrl(`ss://${ui}@:8338`, 0)[0]!.handler.auth, {
    username: "chacha20-ietf-poly1305",
    password: "secret",
  });
});

Deno.test("port range expands into services sharing one target", () => {
  const svcs = parseServiceUrl("tcp://:8000-8002/10.0.0.1:22", 0);
  assert.deepEqual(svcs.map((s) => s.addr), [":8000", ":8001", ":8002"]);
  assert.deepEqual(svcs.map((s) => s.name), ["service-0", "service-1", "service-2"]);
  assert.ok(svcs.every((s) => s.forwarder!.nodes![0]!.addr === "10.0.0.1:22"));
});

Deno.test("port range with a target range pairs them up", () => {
  const svcs = parseServiceUrl("tcp://:8000-8001/h:9000-9001", 0);
  assert.deepEqual(svcs.map((s) => s.forwarder!.nodes!.map((n) => n.addr)), [["h:9000"], [
    "h:9001",
  ]]);
});

Deno.test("several targets become forwarder nodes", () => {
  const [svc] = parseServiceUrl("tcp://:8080/a:1,b:2", 0);
  assert.deepEqual(svc!.forwarder!.nodes, [{ name: "target-0", addr: "a:1" }, {
    name: "target-1",
    addr: "b:2",
  }]);
});

Deno.test("query keys route by prefix; unprefixed go to service, handler and listener", () => {
  const [svc] = parseServiceUrl(
    "mtcp://:8443?mux.version=1&handler.readTimeout=5s&listener.backlog=9&service.x=1",
    0,
  );
  assert.deepEqual(svc!.listener.metadata, { "mux.version": "1", backlog: "9" });
  assert.deepEqual(svc!.handler.metadata, { "mux.version": "1", readTimeout: "5s" });
  assert.deepEqual(svc!.metadata, { "mux.version": "1", x: "1" });
});

Deno.test("selector keys and retries", () => {
  const [svc] = parseServiceUrl("tcp://:8080/a:1,b:2?strategy=hash&maxFails=3&retries=2", 0);
  assert.deepEqual(svc!.forwarder!.selector, { strategy: "hash", maxFails: 3, failTimeout: "30s" });
  assert.equal(svc!.handler.retries, 2);
  const hop = parseNodeUrl("socks5://a:1,b:2?strategy=fifo&failTimeout=5", 0);
  assert.deepEqual(hop.selector, { strategy: "fifo", maxFails: 1, failTimeout: "5s" });
  assert.deepEqual(hop.nodes!.map((n) => n.addr), ["a:1", "b:2"]);
});

Deno.test("-F query keys: prefixed to one place, unprefixed to hop, node, connector and dialer", () => {
  const hop = parseNodeUrl("relay+ws://h:80?path=/x&dialer.host=e.com&hop.a=1", 0);
  const n = hop.nodes![0]!;
  assert.deepEqual(hop.metadata, { path: "/x", a: "1" });
  assert.deepEqual(n.metadata, { path: "/x" });
  assert.deepEqual(n.connector.metadata, { path: "/x" });
  assert.deepEqual(n.dialer.metadata, { path: "/x", host: "e.com" });
  assert.equal(n.dialer.tls?.serverName, "h");
});

Deno.test("-F adds chain-0 to every service handler", () => {
  const cfg = cliConfig(["socks5://:1080", "http://:8080"], [
    "relay+mtcp://srv.example:8443",
    "socks5://b:1",
  ]);
  assert.deepEqual(cfg.services!.map((s) => s.handler.chain), ["chain-0", "chain-0"]);
  assert.deepEqual(cfg.chains![0]!.hops.map((h) => h.name), ["hop-0", "hop-1"]);
  assert.equal(cfg.chains![0]!.hops[0]!.nodes![0]!.dialer.tls!.serverName, "srv.example");
});

Deno.test("malformed URLs fail with a message naming the bad part", () => {
  const bad: [string, RegExp][] = [
    ["tcp://:99999", /bad address ":99999"/],
    ["tcp://:8080/host", /target: bad address "host"/],
    ["tcp://:9000-8000", /bad port range/],
    ["a+b+c://:1", /bad scheme "a\+b\+c"/],
    ["tcp://:80?retries=x", /retries/],
  ];
  for (const [url, re] of bad) {
    assert.throws(
      () => parseServiceUrl(url, 0),
      (e: Error) => e instanceof UsageError && re.test(e.message),
      url,
    );
  }
  assert.throws(() => parseNodeUrl("socks5://nohost", 0), /bad address "nohost"/);
  assert.throws(() => parseNodeUrl("socks5://h:1/path", 0), /takes no path/);
});

Deno.test("flag parsing: repeatable -L/-F, -C, -O, -D, -V, =-forms; unknown flags refused", () => {
  const a = parseArgs([
    "-L",
    ":1",
    "-L=:2",
    "--F",
    "h:1",
    "-C",
    "x.yaml",
    "-D",
    "-O",
    "json",
    "-V",
  ]);
  assert.deepEqual(a.services, [":1", ":2"]);
  assert.deepEqual(a.nodes, ["h:1"]);
  assert.deepEqual(a.configs, ["x.yaml"]);
  assert.equal(a.debug, true);
  assert.equal(a.version, true);
  assert.equal(a.output, "json");
  assert.throws(() => parseArgs(["-X"]), /flag provided but not defined: -X/);
  assert.throws(() => parseArgs(["-L"]), /needs an argument/);
  assert.throws(() => parseArgs(["-O", "xml"]), /expected yaml or json/);
  assert.throws(() => parseArgs(["stray"]), /unexpected argument/);
});

Deno.test("CLI type fallbacks know every registered type: a new type is one registry line", () => {
  const reg = builtinRegistries();
  reg.listeners.register("foo", () => Promise.reject(new Error("unused")));
  reg.dialers.register("foo", () => ({ dial: () => Promise.reject(new Error("unused")) }));
  const cfg = cliConfig(["foo://:0/127.0.0.1:9"], ["socks5+foo://127.0.0.1:1"], reg);
  assert.equal(cfg.services![0]!.listener.type, "foo");
  assert.equal(cfg.chains![0]!.hops[0]!.nodes![0]!.dialer!.type, "foo");
  // Burrow's own mtmux is known through the built-in registries, not through a second list.
  const m = cliConfig(["mtmux://:0"], []);
  assert.equal(m.services![0]!.listener.type, "mtmux");
  // GOST's fallback for a name nobody registered: listener tcp, handler auto.
  const u = cliConfig(["bar://:0"], []);
  assert.equal(u.services![0]!.listener.type, "tcp");
  assert.equal(u.services![0]!.handler.type, "auto");
});
