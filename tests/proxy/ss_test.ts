/** Shadowsocks: spec vectors, our client and server together, shadowsocks-libev interop, bad input. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { evpBytesToKey, SsCipher } from "../../src/protocol/ss_aead.ts";
import { openPacket, sealPacket } from "../../src/proxy/ss/mod.ts";
import { dialTcp } from "../../src/core/socket.ts";
import {
  childOnPort,
  hasCommand,
  portForChild,
  randomBytes,
  readAll,
  sha256,
  stopChild,
  udpEchoServer,
  withTimeout,
} from "../_helpers.ts";
import { curl, pseudoRandom, startOrigin } from "./_server.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"];
const HAVE_SS = hasCommand("ss-server") && hasCommand("ss-local") && hasCommand("ss-tunnel");
const HAVE_CURL = hasCommand("curl");
if (!HAVE_SS) {
  console.warn("shadowsocks-libev not found: skipping ss interop tests (CI installs it)");
}

Deno.test("EVP_BytesToKey (MD5) matches OpenSSL", () => {
  // openssl enc -md md5 -k password derives this key for an empty salt (shadowsocks' recipe).
  assert.equal(hex(evpBytesToKey("password", 16)), "5f4dcc3b5aa765d61d8327deb882cf99");
  assert.equal(
    hex(evpBytesToKey("password", 32)),
    "5f4dcc3b5aa765d61d8327deb882cf992b95990a9151374abd8ff8c5a7a0fe08",
  );
});

Deno.test("ss UDP packets round-trip; a wrong password fails authentication", () => {
  for (const m of METHODS) {
    const c = new SsCipher(m, "secret");
    const pkt = sealPacket(c, "example.com:53", new Uint8Array([1, 2, 3]));
    const o = openPacket(c, pkt);
    assert.equal(o.addr, "example.com:53");
    assert.deepEqual([...o.payload], [1, 2, 3]);
    assert.throws(() => openPacket(new SsCipher(m, "wrong"), pkt), /authentication failed/);
  }
});

for (const m of METHODS) {
  Deno.test({
    name:
      `ss ${m}: our connector ⇄ our handler, 2 MiB download byte-exact; a wrong password gets no reply bytes`,
    ignore: !HAVE_CURL,
    fn: async () => {
      const origin = startOrigin();
      const srv = await Runtime.start(
        cliConfig([`ss://${m}:secret@127.0.0.1:0?readTimeout=500ms`], []),
      );
      const sp = srv.services[0]!.listener.addr.port;
      const cli = await Runtime.start(
        cliConfig(["http://127.0.0.1:0"], [`ss://${m}:secret@127.0.0.1:${sp}`]),
      );
      const bad = await Runtime.start(
        cliConfig(["http://127.0.0.1:0"], [`ss://${m}:wrong@127.0.0.1:${sp}`]),
      );
      try {
        const n = 2 << 20;
        const r = await curl([
          "-x",
          `http://127.0.0.1:${cli.services[0]!.listener.addr.port}`,
          `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
        // Raw probe: garbage the size of a salt + header gets nothing back before the server gives up.
        const probe = await dialTcp("127.0.0.1", sp);
        await probe.write(randomBytes(64));
        const got = await withTimeout(readAll(probe).catch(() => new Uint8Array(0)), 5000);
        probe.close();
        assert.equal(got.length, 0, "no bytes for a failed handshake");
        const w = await curl([
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-x",
          `http://127.0.0.1:${bad.services[0]!.listener.addr.port}`,
          `http://127.0.0.1:${origin.port}/bytes?n=10`,
        ]);
        assert.equal(new TextDecoder().decode(w.stdout), "502");
        assert.equal(origin.requests.length, 1, "the wrong password never reached the origin");
      } finally {
        await bad.close();
        await cli.close();
        await srv.close();
        await origin.close();
      }
    },
  });

  Deno.test({
    name: `interop ${m}: ss-local (shadowsocks-libev) → our ss handler; our connector → ss-server`,
    ignore: !HAVE_SS || !HAVE_CURL,
    fn: async () => {
      const origin = startOrigin();
      const ours = await Runtime.start(cliConfig([`ss://${m}:pass123@127.0.0.1:0`], []));
      const { child: local, port: lp } = await childOnPort((lp) =>
        new Deno.Command("ss-local", {
          args: [
            "-s",
            "127.0.0.1",
            "-p",
            String(ours.services[0]!.listener.addr.port),
            "-b",
            "127.0.0.1",
            "-l",
            String(lp),
            "-k",
            "pass123",
            "-m",
            m,
          ],
          stdout: "null",
          stderr: "null",
        }).spawn(), "ss-local");
      const { child: server, port: sp } = await childOnPort((sp) =>
        new Deno.Command("ss-server", {
          args: ["-s", "127.0.0.1", "-p", String(sp), "-k", "pass123", "-m", m],
          stdout: "null",
          stderr: "null",
        }).spawn(), "ss-server");
      const cli = await Runtime.start(
        cliConfig(["http://127.0.0.1:0"], [`ss://${m}:pass123@127.0.0.1:${sp}`]),
      );
      try {
        const n = 1 << 20;
        const a = await curl([
          "--retry",
          "3",
          "--retry-connrefused",
          "--socks5-hostname",
          `127.0.0.1:${lp}`,
          `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
        ]);
        assert.equal(a.code, 0, `ss-local → ours: ${a.stderr}`);
        assert.equal(await sha256(a.stdout), await sha256(pseudoRandom(n, n)));
        const b = await curl([
          "-x",
          `http://127.0.0.1:${cli.services[0]!.listener.addr.port}`,
          `http://127.0.0.1:${origin.port}/bytes?n=${n + 1}`,
        ]);
        assert.equal(b.code, 0, `ours → ss-server: ${b.stderr}`);
        assert.equal(await sha256(b.stdout), await sha256(pseudoRandom(n + 1, n + 1)));
      } finally {
        stopChild(local);
        stopChild(server);
        await local.status;
        await server.status;
        await cli.close();
        await ours.close();
        await origin.close();
      }
    },
  });
}

for (const m of METHODS) {
  Deno.test({
    name:
      `interop ssu ${m}: ss-tunnel -u → our ssu handler → UDP echo; our ssu connector → ss-server -u`,
    ignore: !HAVE_SS,
    fn: async () => {
      const echo = udpEchoServer();
      const ep = echo.port;
      const ours = await Runtime.start(cliConfig([`ssu://${m}:pw@127.0.0.1:0?keepalive=true`], []));
      const tp = portForChild(true);
      const tunnel = new Deno.Command("ss-tunnel", {
        args: [
          "-s",
          "127.0.0.1",
          "-p",
          String(ours.services[0]!.listener.addr.port),
          "-b",
          "127.0.0.1",
          "-l",
          String(tp),
          "-L",
          `127.0.0.1:${ep}`,
          "-k",
          "pw",
          "-m",
          m,
          "-U",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const sp = portForChild();
      const server = new Deno.Command("ss-server", {
        args: ["-s", "127.0.0.1", "-p", String(sp), "-k", "pw", "-m", m, "-U"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const fwd = await Runtime.start(
        cliConfig([`udp://127.0.0.1:0/127.0.0.1:${ep}?keepalive=true`], [
          `ssu://${m}:pw@127.0.0.1:${sp}`,
        ]),
      );
      const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      try {
        await new Promise((r) => setTimeout(r, 400));
        for (const port of [tp, fwd.services[0]!.listener.addr.port]) {
          for (let i = 0; i < 3; i++) {
            const msg = randomBytes(200 + i);
            await sock.send(msg, { transport: "udp", hostname: "127.0.0.1", port });
            const [back] = await withTimeout(
              sock.receive(),
              3000,
              `udp via ${port === tp ? "ss-tunnel" : "ss-server"}`,
            );
            assert.deepEqual(back, msg);
          }
        }
      } finally {
        sock.close();
        stopChild(tunnel);
        stopChild(server);
        await tunnel.status;
        await server.status;
        await fwd.close();
        await ours.close();
        await echo.close();
      }
    },
  });
}
