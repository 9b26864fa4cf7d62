/** mtmux as a transport: proxies and forwarding over a 4-link bundle, with curl. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { hasCommand, portOf, sha256 } from "../_helpers.ts";
import { curl, pseudoRandom, startOrigin } from "../proxy/_server.ts";

const HAVE_CURL = hasCommand("curl");

Deno.test({
  name:
    "mtmux: `-L socks5+mtmux://:P?tunnels=4` reached by `-F socks5+mtmux://...?tunnels=4`, concurrent downloads",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    const srv = await Runtime.start(
      cliConfig([`socks5+mtmux://127.0.0.1:0?tunnels=4&secret=k1`], []),
    );
    const p = portOf(srv);
    const cli = await Runtime.start(
      cliConfig(["socks5://127.0.0.1:0"], [`socks5+mtmux://127.0.0.1:${p}?tunnels=4&secret=k1`]),
    );
    try {
      const port = cli.services[0]!.listener.addr.port;
      await Promise.all([1, 2, 3, 4].map(async (i) => {
        const n = i * 500_000;
        const r = await curl([
          "--socks5-hostname",
          `127.0.0.1:${port}`,
          `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
      }));
    } finally {
      await cli.close();
      await srv.close();
      await origin.close();
    }
  },
});

Deno.test({
  name:
    "mtmux: the node-mtcp use case `-L tcp://:local/remote:port -F forward+mtmux://host:port?tunnels=8` with `-L mtmux://:P/:T`",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    const target = await Runtime.start(cliConfig([`http://127.0.0.1:0`], []));
    const t = portOf(target);
    const srv = await Runtime.start(
      cliConfig([`mtmux://127.0.0.1:0/127.0.0.1:${t}?tunnels=8`], []),
    );
    const p = portOf(srv);
    const cli = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${t}`], [`forward+mtmux://127.0.0.1:${p}?tunnels=8`]),
    );
    try {
      const n = 4 << 20;
      const r = await curl([
        "-x",
        `http://127.0.0.1:${cli.services[0]!.listener.addr.port}`,
        `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
    } finally {
      await cli.close();
      await srv.close();
      await target.close();
      await origin.close();
    }
  },
});

Deno.test("mtmux: a client with the wrong key cannot join", async () => {
  const srv = await Runtime.start(
    cliConfig([`socks5+mtmux://127.0.0.1:0?tunnels=2&secret=right`], []),
  );
  const p = portOf(srv);
  const cli = await Runtime.start(
    cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], [
      `forward+mtmux://127.0.0.1:${p}?tunnels=2&secret=wrong`,
    ]),
  );
  try {
    const c = await Deno.connect({
      hostname: "127.0.0.1",
      port: cli.services[0]!.listener.addr.port,
    });
    const buf = new Uint8Array(10);
    const n = await c.read(buf).catch(() => null);
    c.close();
    assert.equal(n, null, "the forward is closed: the bundle was refused");
  } finally {
    await cli.close();
    await srv.close();
  }
});

Deno.test({
  name: "mtmux pin mode: streams spread over per-link smux sessions, byte-exact",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    const srv = await Runtime.start(cliConfig([`http+mtmux://127.0.0.1:0?secret=s`], []));
    const p = portOf(srv);
    const cli = await Runtime.start(
      cliConfig(["http://127.0.0.1:0"], [
        `http+mtmux://127.0.0.1:${p}?tunnels=3&secret=s&mode=pin`,
      ]),
    );
    try {
      const port = cli.services[0]!.listener.addr.port;
      await Promise.all([1, 2, 3, 4, 5, 6].map(async (i) => {
        const n = i * 100_000;
        const r = await curl([
          "-x",
          `http://127.0.0.1:${port}`,
          `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
      }));
    } finally {
      await cli.close();
      await srv.close();
      await origin.close();
    }
  },
});
