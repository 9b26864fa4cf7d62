/** The mtcp seed page (tests/fixtures/seeds/000_*.txt) end to end, with curl as the client. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { normalizeConfig } from "../../src/config/model.ts";
import { parseYaml } from "../../src/config/yaml.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { hasCommand, portOf } from "../_helpers.ts";
import { fetchVia, startOrigin } from "../proxy/_server.ts";

const HAVE_CURL = hasCommand("curl");

const cases: [
  string,
  (s: number) => string[],
  (s: number, c: number) => [string[], string[]],
  (c: number) => string[],
][] = [
  [
    "-L http+mtcp://:P",
    (s) => [`http+mtcp://127.0.0.1:${s}`],
    (s, c) => [[`http://127.0.0.1:${c}`], [`http+mtcp://127.0.0.1:${s}`]],
    (c) => ["-x", `http://127.0.0.1:${c}`],
  ],
  [
    "-L socks5+mtcp://:P",
    (s) => [`socks5+mtcp://127.0.0.1:${s}`],
    (s, c) => [[`socks5://127.0.0.1:${c}`], [`socks5+mtcp://127.0.0.1:${s}`]],
    (c) => ["--socks5-hostname", `127.0.0.1:${c}`],
  ],
  [
    "-L relay+mtcp://:P",
    (s) => [`relay+mtcp://127.0.0.1:${s}`],
    (s, c) => [[`http://127.0.0.1:${c}`], [`relay+mtcp://127.0.0.1:${s}`]],
    (c) => ["-x", `http://127.0.0.1:${c}`],
  ],
  [
    "-L mtcp://:P (auto over mtcp)",
    (s) => [`mtcp://127.0.0.1:${s}`],
    (s, c) => [[`socks5://127.0.0.1:${c}`], [`socks5+mtcp://127.0.0.1:${s}`]],
    (c) => ["--socks5", `127.0.0.1:${c}`],
  ],
];

for (const [name, server, client, curlArgs] of cases) {
  Deno.test({
    name: `mtcp seed: ${name}, reached through -F ...+mtcp, 4 concurrent downloads`,
    ignore: !HAVE_CURL,
    fn: async () => {
      const origin = startOrigin();
      const srv = await Runtime.start(cliConfig(server(0), []));
      const [ls, fs] = client(portOf(srv), 0);
      const cli = await Runtime.start(cliConfig(ls, fs));
      try {
        const cp = cli.services[0]!.listener.addr.port;
        await Promise.all(
          [1, 2, 3, 4].map((i) => fetchVia(curlArgs(cp), origin.port, i * 300_000)),
        );
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
    "mtcp seed: port forwarding `-L mtcp://:8443/:8080 -L http://:8080` with `-L tcp://... -F forward+mtcp://`",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    const target = await Runtime.start(cliConfig([`http://127.0.0.1:0`], []));
    const p8080 = portOf(target);
    const srv = await Runtime.start(
      cliConfig([`mtcp://127.0.0.1:0/127.0.0.1:${p8080}`], []),
    );
    const p8443 = portOf(srv);
    const cli = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${p8080}`], [`forward+mtcp://127.0.0.1:${p8443}`]),
    );
    try {
      assert.equal(srv.services[0]!.handler.constructor.name, "ForwardHandler");
      const cp = cli.services[0]!.listener.addr.port;
      await Promise.all(
        [1, 2, 3].map((i) => fetchVia(["-x", `http://127.0.0.1:${cp}`], origin.port, i * 500_000)),
      );
    } finally {
      await cli.close();
      await srv.close();
      await target.close();
      await origin.close();
    }
  },
});

Deno.test({
  name: "mtcp seed: the YAML forms (mux.* metadata, forwarder) run",
  ignore: !HAVE_CURL,
  fn: async () => {
    const origin = startOrigin();
    // service-1 first, on port 0: service-0 forwards to the port it got.
    const target = await Runtime.start(normalizeConfig(parseYaml(`
services:
- name: service-1
  addr: 127.0.0.1:0
  handler:
    type: http
  listener:
    type: tcp
`)));
    const p8080 = portOf(target);
    const yaml = `
services:
- name: service-0
  addr: 127.0.0.1:0
  handler:
    type: forward
  listener:
    type: mtcp
    metadata:
      mux.version: 2
      mux.keepaliveDisabled: false
      mux.keepaliveInterval: 10s
      mux.keepaliveTimeout: 30s
      mux.maxFrameSize: 32768
      mux.maxReceiveBuffer: 4194304
      mux.maxStreamBuffer: 65536
  forwarder:
    nodes:
    - name: target-0
      addr: 127.0.0.1:${p8080}
`;
    const srv = await Runtime.start(normalizeConfig(parseYaml(yaml)));
    const p8443 = portOf(srv);
    const cli = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${p8080}`], [`forward+mtcp://127.0.0.1:${p8443}`]),
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
    }
  },
});

Deno.test("mtcp: a dead session is re-created on the next dial", async () => {
  const origin = startOrigin();
  let srv = await Runtime.start(cliConfig([`http+mtcp://127.0.0.1:0`], []));
  const sp = portOf(srv);
  const cli = await Runtime.start(
    cliConfig(["http://127.0.0.1:0"], [`http+mtcp://127.0.0.1:${sp}`]),
  );
  try {
    const cp = cli.services[0]!.listener.addr.port;
    await fetchVia(["-x", `http://127.0.0.1:${cp}`], origin.port, 1000);
    await srv.close(); // kills the session under the client
    // The same port again (ours a moment ago): the client's node address does not change.
    srv = await Runtime.start(cliConfig([`http+mtcp://127.0.0.1:${sp}`], []));
    await fetchVia(["-x", `http://127.0.0.1:${cp}`], origin.port, 2000);
  } finally {
    await cli.close();
    await srv.close();
    await origin.close();
  }
});

Deno.test("mtcp: past mux.maxStreams streams in one session the client opens another, so 10 tunnels work where one session takes 4", async () => {
  const { echoServer, withTimeout } = await import("../_helpers.ts");
  const echo = echoServer();
  const srv = await Runtime.start(
    cliConfig([`forward+mtcp://127.0.0.1:0/127.0.0.1:${echo.port}?mux.maxStreams=4`], []),
  );
  const cli = await Runtime.start(cliConfig(
    ["tcp://127.0.0.1:0/127.0.0.1:1"],
    [`forward+mtcp://127.0.0.1:${portOf(srv)}?mux.maxStreams=4`],
  ));
  const conns: Deno.Conn[] = [];
  try {
    const cp = cli.services[0]!.listener.addr.port;
    for (let i = 0; i < 10; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: cp });
      conns.push(c);
      await c.write(new Uint8Array([i]));
      const b = new Uint8Array(1);
      // Refused past the limit before: the server FINs the stream and the read ends (null).
      assert.equal(await withTimeout(c.read(b), 5000, `tunnel ${i}`), 1);
      assert.equal(b[0], i);
    }
  } finally {
    for (const c of conns) c.close();
    await cli.close();
    await srv.close();
    await echo.close();
  }
});

Deno.test("mtcp: shutdown with a grace period keeps live streams working, refuses new sessions, then ends them", async () => {
  const { echoServer, withTimeout } = await import("../_helpers.ts");
  const { dialTcp } = await import("../../src/core/socket.ts");
  const echo = echoServer();
  const srv = await Runtime.start(cliConfig([`mtcp://127.0.0.1:0/127.0.0.1:${echo.port}`], []));
  const cli = await Runtime.start(
    cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [
      `forward+mtcp://127.0.0.1:${portOf(srv)}`,
    ]),
  );
  try {
    const c = await dialTcp("127.0.0.1", portOf(cli));
    const b = new Uint8Array(1);
    await c.write(new Uint8Array([1]));
    assert.equal(await withTimeout(c.read(b), 5000), 1);
    const closing = srv.close(10_000); // the grace period
    // The live stream still works during the grace period...
    await c.write(new Uint8Array([2]));
    assert.equal(await withTimeout(c.read(b), 5000, "echo during grace"), 1);
    assert.equal(b[0], 2);
    // ...but a new session is not taken: its connection is closed at once.
    const fresh = await dialTcp("127.0.0.1", portOf(srv));
    assert.equal(
      await withTimeout(fresh.read(new Uint8Array(8)), 5000, "new session refused"),
      null,
    );
    fresh.close();
    // When the client finishes, the server's close completes before the grace runs out.
    c.close();
    await withTimeout(closing, 5000, "close after the last stream");
  } finally {
    await cli.close();
    await srv.close();
    await echo.close();
  }
});
