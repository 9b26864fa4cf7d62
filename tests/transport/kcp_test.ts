/** The KCP seed page (tests/fixtures/seeds/001_*.txt) end to end, with curl as the client. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { normalizeConfig } from "../../src/config/model.ts";
import { parseYaml } from "../../src/config/yaml.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { kcpConfigFromMetadata } from "../../src/kcp/config.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { echoServer, hasCommand, portOf, withTimeout } from "../_helpers.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { builtinRegistries } from "../../src/builtins.ts";
import { silentLogger } from "../../src/core/log.ts";
import type { MuxListener } from "../../src/transport/mux.ts";
import { fetchVia, startOrigin } from "../proxy/_server.ts";

const HAVE_CURL = hasCommand("curl");

Deno.test("kcp config: kcptun defaults, then file, then kcp.config map, then kcp.* keys; mode presets", async () => {
  const d = await kcpConfigFromMetadata(new Metadata({}));
  assert.deepEqual([
    d.key,
    d.crypt,
    d.mode,
    d.mtu,
    d.sndwnd,
    d.rcvwnd,
    d.datashard,
    d.parityshard,
    d.nocomp,
    d.smuxver,
    d.keepalive,
  ], [
    "it's a secrect",
    "aes",
    "fast",
    1350,
    1024,
    1024,
    10,
    3,
    false,
    1,
    10,
  ]);
  assert.deepEqual([d.nodelay, d.interval, d.resend, d.nc], [0, 30, 2, 1], "fast preset");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/k.json`,
      JSON.stringify({ key: "file", crypt: "salsa20", mode: "fast2", mtu: 1200, datashard: 5 }),
    );
    const c = await kcpConfigFromMetadata(
      new Metadata({
        "kcp.configFile": `${dir}/k.json`,
        "kcp.config": { crypt: "xor", mtu: 1300 },
        "kcp.mtu": "1100",
      }),
    );
    assert.deepEqual([c.key, c.crypt, c.mode, c.mtu, c.datashard, c.nodelay, c.interval], [
      "file",
      "xor",
      "fast2",
      1100,
      5,
      1,
      20,
    ]);
    await assert.rejects(
      kcpConfigFromMetadata(new Metadata({ "kcp.tcp": "true" })),
      (e: unknown) => e instanceof ConfigError && /raw sockets/.test(e.message),
    );
    await assert.rejects(kcpConfigFromMetadata(new Metadata({ "kcp.smuxver": "3" })), /smuxver/);
    await assert.rejects(
      kcpConfigFromMetadata(new Metadata({ "kcp.configFile": `${dir}/missing.json` })),
      /cannot read kcptun config/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (
  const [h, f, curlArgs] of [
    ["http", "http", (p: number) => ["-x", `http://127.0.0.1:${p}`]],
    ["socks5", "socks5", (p: number) => ["--socks5-hostname", `127.0.0.1:${p}`]],
    ["relay", "relay", (p: number) => ["-x", `http://127.0.0.1:${p}`]],
  ] as const
) {
  Deno.test({
    name: `kcp seed: -L ${h}+kcp://:P reached through -F ${f}+kcp://`,
    ignore: !HAVE_CURL,
    fn: async () => {
      const origin = startOrigin();
      const srv = await Runtime.start(cliConfig([`${h}+kcp://127.0.0.1:0`], []));
      const kp = portOf(srv);
      const front = h === "socks5" ? "socks5" : "http";
      const cli = await Runtime.start(
        cliConfig([`${front}://127.0.0.1:0`], [`${f}+kcp://127.0.0.1:${kp}`]),
      );
      try {
        const p = cli.services[0]!.listener.addr.port;
        await Promise.all([1, 2, 3].map((i) => fetchVia(curlArgs(p), origin.port, i * 200_000)));
      } finally {
        await cli.close();
        await srv.close();
        await origin.close();
      }
    },
  });
}

Deno.test({
  name:
    "kcp seed: the YAML form with kcp.configFile, kcp.config map and kcp.* options, forwarding to http",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    const dir = await Deno.makeTempDir();
    // service-1 first, on port 0: service-0 forwards to the port it got.
    const target = await Runtime.start(cliConfig([`http://127.0.0.1:0`], []));
    const hp = portOf(target);
    await Deno.writeTextFile(
      `${dir}/kcp.json`,
      JSON.stringify({
        key: "it's a secrect",
        crypt: "aes",
        mode: "fast",
        mtu: 1350,
        sndwnd: 1024,
        rcvwnd: 1024,
        datashard: 10,
        parityshard: 3,
        dscp: 0,
        nocomp: false,
        acknodelay: false,
        nodelay: 0,
        interval: 40,
        resend: 0,
        nc: 0,
        smuxver: 1,
        sockbuf: 4194304,
        keepalive: 10,
        snmplog: "",
        snmpperiod: 60,
        tcp: false,
      }),
    );
    const yaml = `
services:
- name: service-0
  addr: "127.0.0.1:0"
  handler:
    type: forward
  listener:
    type: kcp
    metadata:
      kcp.configFile: ${dir}/kcp.json
      kcp.config:
        key: "it's a secrect"
        crypt: aes
        mode: fast
        mtu: 1350
        tcp: false
      kcp.crypt: aes
      kcp.mode: fast
  forwarder:
    nodes:
    - name: target-0
      addr: 127.0.0.1:${hp}
`;
    const srv = await Runtime.start(normalizeConfig(parseYaml(yaml)));
    const kp = portOf(srv);
    const cli = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${hp}`], [
        `forward+kcp://127.0.0.1:${kp}?kcp.configFile=${dir}/kcp.json`,
      ]),
    );
    try {
      await fetchVia(
        ["-x", `http://127.0.0.1:${cli.services[0]!.listener.addr.port}`],
        origin.port,
        1 << 20,
      );
    } finally {
      await cli.close();
      await srv.close();
      await target.close();
      await origin.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "kcp seed: `-L kcp://:8443/:8080 -L ss://:8080` reached by an ss client over -F ss+kcp://, and ss+kcp:// directly",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    // As written on the page: plain ss (no method) behind a KCP data channel.
    const ss = await Runtime.start(cliConfig([`ss://127.0.0.1:0`], []));
    const sp = portOf(ss);
    const srv = await Runtime.start(cliConfig([`kcp://127.0.0.1:0/127.0.0.1:${sp}`], []));
    const kp = portOf(srv);
    const cli = await Runtime.start(
      cliConfig(["http://127.0.0.1:0"], [`ss+kcp://127.0.0.1:${kp}`]),
    );
    const direct = await Runtime.start(cliConfig([`ss+kcp://aes-128-gcm:pw@127.0.0.1:0`], []));
    const kp2 = portOf(direct);
    const dcli = await Runtime.start(
      cliConfig(["socks5://127.0.0.1:0"], [`ss+kcp://aes-128-gcm:pw@127.0.0.1:${kp2}`]),
    );
    try {
      await fetchVia(
        ["-x", `http://127.0.0.1:${cli.services[0]!.listener.addr.port}`],
        origin.port,
        1 << 20,
      );
      await fetchVia(
        ["--socks5-hostname", `127.0.0.1:${dcli.services[0]!.listener.addr.port}`],
        origin.port,
        1 << 19,
      );
    } finally {
      await dcli.close();
      await direct.close();
      await cli.close();
      await srv.close();
      await ss.close();
      await origin.close();
    }
  },
});

Deno.test("kcp dialer: one KCP session per node, a new smux stream per dial, a new session after close", async () => {
  const reg = builtinRegistries();
  const metadata = new Metadata({ "kcp.key": "k", "kcp.crypt": "salsa20" });
  const listener = await reg.listeners.get("kcp")({
    addr: "127.0.0.1:0",
    metadata,
    log: silentLogger,
    service: "t",
  }) as MuxListener;
  const addr = `127.0.0.1:${listener.addr.port}`;
  const ctx = {
    netDial: () => Promise.reject(new Error("kcp must not ride a TCP hop")),
    log: silentLogger,
  };
  let dialer = await reg.dialers.get("kcp")({ metadata, log: silentLogger });
  try {
    const conns = await Promise.all([1, 2, 3].map(() => dialer.dial(addr, ctx)));
    const accepted = await Promise.all(conns.map(() => listener.accept()));
    // Each stream carries its own bytes.
    await Promise.all(conns.map((c, i) => c.write(new Uint8Array([i + 1]))));
    const got = await Promise.all(accepted.map(async (a) => {
      const b = new Uint8Array(1);
      await a!.read(b);
      return b[0];
    }));
    assert.deepEqual(got.sort(), [1, 2, 3]);
    assert.equal(listener.sessionCount, 1);
    // Both ends' streams tell a relay to move 64 KiB at a time (Conn.maxChunk), through snappy.
    for (const c of [...conns, ...accepted]) assert.equal(c!.maxChunk, 64 * 1024);
    for (const c of [...conns, ...accepted]) c!.close();
    // A second dialer (as after a restart of the client) is a second session.
    await dialer.close?.();
    dialer = await reg.dialers.get("kcp")({ metadata, log: silentLogger });
    const again = await dialer.dial(addr, ctx);
    const a2 = await listener.accept();
    assert.equal(listener.sessionCount, 2);
    again.close();
    a2!.close();
  } finally {
    await dialer.close?.();
    await listener.close();
  }
});

Deno.test("a kcp node behind another hop is refused at start, never dialed around that hop", async () => {
  const cfg = cliConfig(["socks5://127.0.0.1:0"], ["http://127.0.0.1:1", "kcp://127.0.0.1:2"]);
  await assert.rejects(
    Runtime.start(cfg, { log: silentLogger }),
    (e: Error) => e instanceof ConfigError && /hops\[1\].*kcp node.*first hop/.test(e.message),
  );
  // As the first hop it is fine.
  const ok = await Runtime.start(
    cliConfig(["socks5://127.0.0.1:0"], ["kcp://127.0.0.1:2", "http://127.0.0.1:1"]),
    { log: silentLogger },
  );
  await ok.close();
});

Deno.test("kcp: a server that shuts down ends its clients' tunnels at once (FIN), not at their keepalive", async () => {
  const echo = echoServer();
  const srv = await Runtime.start(cliConfig([`kcp://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
  const cli = await Runtime.start(
    cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [
      `forward+kcp://127.0.0.1:${portOf(srv)}`,
    ]),
  );
  try {
    const c = await dialTcp("127.0.0.1", portOf(cli));
    await c.write(new TextEncoder().encode("x"));
    const b = new Uint8Array(8);
    assert.equal(await withTimeout(c.read(b), 5000, "tunnel up"), 1);
    await srv.close();
    // The client's smux stream got a FIN over KCP: its tunnel ends well before any keepalive.
    assert.equal(await withTimeout(c.read(b), 5000, "tunnel end after server shutdown"), null);
    c.close();
  } finally {
    await cli.close();
    await srv.close();
    await echo.close();
  }
});

Deno.test("kcp listener reads mux.maxStreams (strict start accepts it)", async () => {
  const cfg = cliConfig(["kcp://127.0.0.1:0/127.0.0.1:9?mux.maxStreams=5"], []);
  cfg.strict = true;
  const rt = await Runtime.start(cfg, { log: silentLogger });
  await rt.close();
});
