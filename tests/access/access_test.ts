/** GOST's access control, enforced: admission, bypass, limiters, auth files. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { loadConfigSource } from "../../src/config/file.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { Logger } from "../../src/core/log.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { echoServer, hasCommand, readAll, withTimeout } from "../_helpers.ts";
import { curl, fetchVia, startOrigin } from "../proxy/_server.ts";

const HAS_CURL = hasCommand("curl");

async function start(services: string[], nodes: string[] = [], log?: Logger): Promise<Runtime> {
  return await Runtime.start(cliConfig(services, nodes), log ? { log } : {});
}

function port(rt: Runtime, i = 0): number {
  return rt.services[i]!.listener.addr.port;
}

/** curl through an HTTP proxy from a given local address; exit code and status. */
async function viaHttp(
  proxyPort: number,
  url: string,
  from = "127.0.0.1",
  extra: string[] = [],
): Promise<{ code: number; status: string }> {
  const r = await curl([
    "--interface",
    from,
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "-x",
    `http://127.0.0.1:${proxyPort}`,
    ...extra,
    url,
  ]);
  return { code: r.code, status: new TextDecoder().decode(r.stdout) };
}

Deno.test({
  name: "admission: a whitelist serves 127.0.0.1 and closes 127.0.0.2 before any reply byte",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const url = `http://127.0.0.1:${origin.port}/bytes?n=10`;
    const white = await start(["http://127.0.0.1:0?admission=~127.0.0.1/32"]);
    const black = await start(["http://127.0.0.1:0?admission=127.0.0.2"]);
    try {
      assert.equal((await viaHttp(port(white), url)).status, "200");
      // curl 52 = "Empty reply from server": the connection closed with no byte sent.
      const refused = await viaHttp(port(white), url, "127.0.0.2");
      assert.equal(refused.status, "000");
      assert.ok([52, 56].includes(refused.code), `curl exit ${refused.code}`);
      assert.equal((await viaHttp(port(black), url)).status, "200");
      const refused2 = await viaHttp(port(black), url, "127.0.0.2");
      assert.equal(refused2.status, "000");
      assert.ok([52, 56].includes(refused2.code), `curl exit ${refused2.code}`);
    } finally {
      await white.close();
      await black.close();
      await origin.close();
    }
  },
});

/** A raw SOCKS5 CONNECT to a domain; returns the REP byte. */
async function socks5Rep(p: number, host: string, targetPort: number): Promise<number> {
  const c = await dialTcp("127.0.0.1", p);
  try {
    await c.write(new Uint8Array([5, 1, 0]));
    const m = new Uint8Array(2);
    assert.equal(await c.read(m), 2);
    const h = new TextEncoder().encode(host);
    await c.write(
      new Uint8Array([5, 1, 0, 3, h.length, ...h, targetPort >> 8, targetPort & 255]),
    );
    const r = new Uint8Array(10);
    const n = await withTimeout(c.read(r), 5000, "socks5 reply");
    assert.ok(n !== null && n >= 2);
    return r[1]!;
  } finally {
    c.close();
  }
}

Deno.test({
  name: "service bypass: *.blocked.test gets 403 / SOCKS5 REP 2 / SOCKS4 92, others pass",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const rt = await start([
      "http://127.0.0.1:0?bypass=*.blocked.test",
      "socks5://127.0.0.1:0?bypass=*.blocked.test,127.0.0.2",
      "socks4://127.0.0.1:0?bypass=127.0.0.2",
    ]);
    try {
      const blocked = await viaHttp(port(rt, 0), "http://www.blocked.test/");
      assert.equal(blocked.status, "403");
      const ok = await viaHttp(port(rt, 0), `http://127.0.0.1:${origin.port}/bytes?n=5`);
      assert.equal(ok.status, "200");
      assert.equal(await socks5Rep(port(rt, 1), "a.blocked.test", 80), 2);
      assert.equal(await socks5Rep(port(rt, 1), "localhost", origin.port), 0);
      // SOCKS4 CONNECT to 127.0.0.2 → CD 92 (rejected).
      const c = await dialTcp("127.0.0.1", port(rt, 2));
      await c.write(new Uint8Array([4, 1, origin.port >> 8, origin.port & 255, 127, 0, 0, 2, 0]));
      const r = new Uint8Array(8);
      assert.equal(await withTimeout(c.read(r), 5000, "socks4 reply"), 8);
      assert.equal(r[1], 92);
      c.close();
      await fetchVia(["--socks4", `127.0.0.1:${port(rt, 2)}`], origin.port, 1000);
    } finally {
      await rt.close();
      await origin.close();
    }
  },
});

Deno.test({
  name: "hop bypass: a matching target is dialed directly, others go through the hop",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const hopLines: string[] = [];
    const hop = await start(
      ["http://127.0.0.1:0"],
      [],
      new Logger("info", {}, (l) => hopLines.push(l)),
    );
    const front = await start(
      ["http://127.0.0.1:0"],
      [`http://127.0.0.1:${port(hop)}?bypass=localhost`],
    );
    try {
      const through = await viaHttp(port(front), `http://127.0.0.1:${origin.port}/bytes?n=3`);
      assert.equal(through.status, "200");
      const served = hopLines.filter((l) => l.includes(" <> ")).length;
      assert.equal(served, 1, "the request to 127.0.0.1 went through the hop");
      const direct = await viaHttp(port(front), `http://localhost:${origin.port}/bytes?n=3`);
      assert.equal(direct.status, "200");
      assert.equal(hopLines.filter((l) => l.includes(" <> ")).length, 1, "localhost bypassed it");
    } finally {
      await front.close();
      await hop.close();
      await origin.close();
    }
  },
});

async function timedFetch(args: string[], originPort: number, n: number): Promise<number> {
  const t0 = performance.now();
  await fetchVia(args, originPort, n);
  return (performance.now() - t0) / 1000;
}

Deno.test({
  name: "limiter: 1MB/s out holds a 5 MB download near 4 s (1 MB burst); per-conn applies per conn",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const svc = await start(["http://127.0.0.1:0?limiter.out=1MB&limiter.in=1MB"]);
    const conn = await start(["http://127.0.0.1:0?limiter.conn.out=512KB"]);
    try {
      // The bucket starts full (GOST), so 5 MiB at 1 MiB/s takes ~4 s.
      const t = await timedFetch(["-x", `http://127.0.0.1:${port(svc)}`], origin.port, 5 << 20);
      assert.ok(t > 3 && t < 5, `5 MiB at 1 MiB/s took ${t.toFixed(2)} s`);
      // Two connections at once, 1.5 MiB each at 512 KiB/s per connection: ~2 s each, not ~5 s
      // as they would take sharing one bucket.
      const both = await Promise.all(
        [0, 1].map(() =>
          timedFetch(["-x", `http://127.0.0.1:${port(conn)}`], origin.port, 1.5 * (1 << 20))
        ),
      );
      for (const s of both) {
        assert.ok(s > 1.4 && s < 3.5, `per-conn transfer took ${s.toFixed(2)} s`);
      }
    } finally {
      await svc.close();
      await conn.close();
      await origin.close();
    }
  },
});

Deno.test("climiter=2 closes the third concurrent connection at once; a slot frees on close", async () => {
  const rt = await start(["socks5://127.0.0.1:0?climiter=2"]);
  const held = [];
  try {
    for (let i = 0; i < 2; i++) held.push(await dialTcp("127.0.0.1", port(rt)));
    // Both are being served: the method negotiation is answered.
    for (const c of held) {
      await c.write(new Uint8Array([5, 1, 0]));
      assert.equal(await withTimeout(c.read(new Uint8Array(2)), 5000, "method reply"), 2);
    }
    const third = await dialTcp("127.0.0.1", port(rt));
    await third.write(new Uint8Array([5, 1, 0])).catch(() => {});
    const n = await withTimeout(third.read(new Uint8Array(2)).catch(() => null), 5000, "third");
    assert.equal(n, null, "the third connection is closed without a reply");
    third.close();
    held.shift()!.close();
    // The release runs when the handler task ends; retry briefly until the slot is free.
    let served = false;
    for (let i = 0; i < 50 && !served; i++) {
      const c = await dialTcp("127.0.0.1", port(rt));
      await c.write(new Uint8Array([5, 1, 0])).catch(() => {});
      served = (await withTimeout(c.read(new Uint8Array(2)).catch(() => null), 5000, "4th")) === 2;
      c.close();
      if (!served) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(served, "a new connection is served once one closed");
  } finally {
    for (const c of held) c.close();
    await rt.close();
  }
});

Deno.test("rlimiter=1 (burst 2) closes the third connection of the same second unanswered", async () => {
  const rt = await start(["socks5://127.0.0.1:0?rlimiter=1"]);
  try {
    const replies: (number | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await dialTcp("127.0.0.1", port(rt));
      await c.write(new Uint8Array([5, 1, 0])).catch(() => {});
      replies.push(await withTimeout(c.read(new Uint8Array(2)).catch(() => null), 5000, "reply"));
      c.close();
    }
    assert.deepEqual(replies, [2, 2, null]);
  } finally {
    await rt.close();
  }
});

Deno.test({
  name: "handler.auth.file and authers[].file refuse wrong passwords; a reload picks up changes",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/users`, "# users\nalice pass word\n");
    await Deno.writeTextFile(`${dir}/more`, "carol one\n");
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `services:
- name: f
  addr: 127.0.0.1:0
  handler: {type: http, auth: {file: ${dir}/users}}
- name: r
  addr: 127.0.0.1:0
  handler: {type: http, auther: reloading}
authers:
- name: reloading
  file: {path: ${dir}/more}
  reload: 1s
`,
    );
    const rt = await Runtime.start(await loadConfigSource(`${dir}/c.yaml`));
    try {
      const url = `http://127.0.0.1:${origin.port}/bytes?n=1`;
      const as = (p: number, u: string) => viaHttp(p, url, "127.0.0.1", ["--proxy-user", u]);
      assert.equal((await as(port(rt, 0), "alice:pass word")).status, "200");
      assert.equal((await as(port(rt, 0), "alice:pass")).status, "407");
      assert.equal((await viaHttp(port(rt, 0), url)).status, "407");
      assert.equal((await as(port(rt, 1), "carol:one")).status, "200");
      await Deno.writeTextFile(`${dir}/more`, "carol two\n");
      let status = "";
      for (let i = 0; i < 40 && status !== "200"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await as(port(rt, 1), "carol:two")).status;
      }
      assert.equal(status, "200", "the reloaded password is accepted");
      assert.equal((await as(port(rt, 1), "carol:one")).status, "407");
    } finally {
      await rt.close();
      await origin.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("admission and bypass objects from YAML by name; a missing file fails the start", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `services:
- {name: s, addr: "127.0.0.1:0", handler: {type: socks5}, admission: a, bypass: b}
admissions:
- {name: a, whitelist: true, matchers: [127.0.0.1]}
bypasses:
- {name: b, file: {path: ${dir}/none.txt}}
`,
    );
    await assert.rejects(
      Runtime.start(await loadConfigSource(`${dir}/c.yaml`)),
      /bypasses\[0\]\.file\.path: cannot read/,
    );
    await assert.rejects(
      loadConfigSource(`${dir}/c.yaml`).then((c) => {
        c.services![0]!.bypass = "nope";
        return Runtime.start(c);
      }),
      /no bypass named "nope"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a connector's auth.file supplies its credentials (first line), as GOST's client side",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/cred`, "# mine\nalice s3cret\n");
    const server = await start(["socks5://alice:s3cret@127.0.0.1:0"]);
    const cfg = cliConfig(["http://127.0.0.1:0"], [`socks5://127.0.0.1:${port(server)}`]);
    cfg.chains![0]!.hops[0]!.nodes![0]!.connector.auth = {
      username: "",
      password: "",
      file: `${dir}/cred`,
    };
    const front = await Runtime.start(cfg);
    try {
      const r = await viaHttp(port(front), `http://127.0.0.1:${origin.port}/bytes?n=2`);
      assert.equal(r.status, "200");
    } finally {
      await front.close();
      await server.close();
      await origin.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("bypass sees the address that is dialed: 127.1, 2130706433 and an empty host are refused", async () => {
  const rt = await start(["socks5://127.0.0.1:0?bypass=127.0.0.0/8"]);
  try {
    for (const host of ["127.1", "2130706433", "0x7f.0.0.1"]) {
      assert.equal(await socks5Rep(port(rt), host, 9), 2, host);
    }
  } finally {
    await rt.close();
  }
});

Deno.test("closing a service ends connections waiting on a slow bandwidth limit at once", async () => {
  const echo = (await import("../_helpers.ts")).echoServer();
  const rt = await start([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}?limiter.out=1KB`]);
  const c = await dialTcp("127.0.0.1", port(rt));
  try {
    await c.write(new Uint8Array(64 * 1024)); // 64 KiB back at 1 KiB/s: about a minute
    await c.read(new Uint8Array(1024));
    const t0 = performance.now();
    await rt.close();
    assert.ok(performance.now() - t0 < 3000, "close did not wait for the token bucket");
  } finally {
    c.close();
    await echo.close();
  }
});

Deno.test("auth settings on handlers that do not authenticate are refused (ss would run open)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/u`, "aes-128-gcm secret\n");
    const cfg = cliConfig(["ss://127.0.0.1:0", "tcp://127.0.0.1:0/127.0.0.1:9"], []);
    cfg.services![0]!.handler.auth = { username: "", password: "", file: `${dir}/u` };
    await assert.rejects(
      Runtime.start(cfg),
      /handler\.auth\.file: the ss handler does not authenticate/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "http proxy sends the URL's host upstream, not the client's Host header",
  ignore: !HAS_CURL,
  fn: async () => {
    const origin = startOrigin();
    const rt = await start(["http://127.0.0.1:0"]);
    try {
      const r = await curl([
        "-x",
        `http://127.0.0.1:${port(rt)}`,
        "-H",
        "Host: blocked.example",
        `http://127.0.0.1:${origin.port}/headers`,
      ]);
      const seen = JSON.parse(new TextDecoder().decode(r.stdout));
      assert.equal(seen.host, `127.0.0.1:${origin.port}`);
    } finally {
      await rt.close();
      await origin.close();
    }
  },
});

Deno.test("mux transports apply admission and climiter per connection, as GOST does on the raw listener", async () => {
  const { encodeFrame, CMD_SYN } = await import("../../src/mux/smux/frame.ts");
  const echo = echoServer();
  // climiter=1: one connection at a time — here one mtcp session, whatever its streams.
  const srv = await start([`mtcp://127.0.0.1:0/127.0.0.1:${echo.port}?climiter=1`]);
  const cli = await start(
    [`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`],
    [`forward+mtcp://127.0.0.1:${srv.services[0]!.listener.addr.port}`],
  );
  const denied = await start([`mtcp://127.0.0.1:0/127.0.0.1:${echo.port}?admission=127.0.0.1`]);
  try {
    // Three tunnels share the client's one session: all of them work.
    const conns = await Promise.all(
      [1, 2, 3].map(() => dialTcp("127.0.0.1", cli.services[0]!.listener.addr.port)),
    );
    for (const [i, c] of conns.entries()) {
      await c.write(new Uint8Array([i]));
      const b = new Uint8Array(1);
      assert.equal(await withTimeout(c.read(b), 5000, `stream ${i}`), 1);
      assert.equal(b[0], i);
    }
    // A second connection to the mtcp port is over the limit: closed before any frame.
    const extra = await dialTcp("127.0.0.1", srv.services[0]!.listener.addr.port);
    await extra.write(encodeFrame(2, CMD_SYN, 1));
    assert.equal((await withTimeout(readAll(extra), 5000)).length, 0);
    extra.close();
    // A denied client gets no session at all: no FIN frame, just the close.
    const d = await dialTcp("127.0.0.1", denied.services[0]!.listener.addr.port);
    await d.write(encodeFrame(2, CMD_SYN, 1));
    assert.equal((await withTimeout(readAll(d), 5000)).length, 0);
    d.close();
    for (const c of conns) c.close();
  } finally {
    await cli.close();
    await srv.close();
    await denied.close();
    await echo.close();
  }
});
