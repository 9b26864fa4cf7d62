/** rtcp: remote TCP port forwarding through socks5 (MUXBIND) and relay (BIND), docs/reverse.md. */
import assert from "node:assert/strict";
import { openssh } from "../_openssh.ts";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { Logger } from "../../src/core/log.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { curl, pseudoRandom, startOrigin } from "./_server.ts";
import {
  echoServer,
  hasCommand,
  portForChild,
  portOf,
  udpEchoServer,
  until,
  withTimeout,
} from "../_helpers.ts";
import { BurrowChild } from "../_burrow.ts";

/** A logger whose lines the test can read. */
function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger("debug", {}, (l) => lines.push(l)), lines };
}

/** The far-end port the rtcp service bound (0 until its first bind). */
function boundPort(rt: Runtime): number {
  return rt.services[0]!.listener.addr.port;
}

async function download(port: number, n: number): Promise<void> {
  const r = await curl([`http://127.0.0.1:${port}/bytes?n=${n}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, n);
  const want = pseudoRandom(n, n);
  for (let i = 0; i < n; i++) if (r.stdout[i] !== want[i]) throw new Error(`byte ${i} differs`);
}

for (
  const node of [
    "socks5",
    "relay",
    "relay+mtcp",
    "relay+ws",
    "socks5+kcp",
    "relay+mtls",
    "relay+mtmux",
  ]
) {
  Deno.test(`rtcp over ${node}: curl through the far end's port, 16 MiB byte-exact`, async () => {
    if (!hasCommand("curl")) return console.log("skipped: curl is not installed");
    const origin = startOrigin();
    const server = await Runtime.start(cliConfig([`${node}://127.0.0.1:0?bind=true`], []));
    const client = await Runtime.start(
      cliConfig([`rtcp://127.0.0.1:0/127.0.0.1:${origin.port}`], [
        `${node}://127.0.0.1:${portOf(server)}`,
      ]),
    );
    try {
      await until(() => boundPort(client) !== 0, 10_000, "the far end bound a port");
      await download(boundPort(client), 16 << 20);
      // Several peers at once, each its own stream.
      await Promise.all([1, 2, 3].map((i) => download(boundPort(client), 100_000 * i)));
    } finally {
      await client.close();
      await server.close();
      await origin.close();
    }
  });
}

Deno.test("rtcp without a chain listens locally", async () => {
  if (!hasCommand("curl")) return console.log("skipped: curl is not installed");
  const origin = startOrigin();
  const rt = await Runtime.start(cliConfig([`rtcp://127.0.0.1:0/127.0.0.1:${origin.port}`], []));
  try {
    await until(() => boundPort(rt) !== 0, 5000, "bound");
    await download(boundPort(rt), 1 << 20);
  } finally {
    await rt.close();
    await origin.close();
  }
});

Deno.test("binds are refused without bind=true and outside bind.ports; the client keeps trying", async () => {
  for (const query of ["", "?bind=true&bind.ports=1-2"]) {
    for (const proto of ["socks5", "relay"]) {
      const server = await Runtime.start(cliConfig([`${proto}://127.0.0.1:0${query}`], []));
      const { log, lines } = capture();
      const client = await Runtime.start(
        cliConfig(["rtcp://127.0.0.1:0/127.0.0.1:9"], [`${proto}://127.0.0.1:${portOf(server)}`]),
        { log },
      );
      try {
        await until(
          () => lines.filter((l) => /binding again in/.test(l)).length >= 2,
          10_000,
          `${proto}${query}: two refused binds`,
        );
        const refusal = proto === "socks5" ? /reply 2/ : /3 forbidden/i;
        assert.match(lines.find((l) => /binding again in/.test(l))!, refusal);
        assert.equal(boundPort(client), 0, "never bound");
      } finally {
        await client.close();
        await server.close();
      }
    }
  }
});

Deno.test("peers that connect and vanish at once do not end the bind", async () => {
  const origin = startOrigin();
  const server = await Runtime.start(cliConfig(["relay://127.0.0.1:0?bind=true"], []));
  const client = await Runtime.start(
    cliConfig([`rtcp://127.0.0.1:0/127.0.0.1:${origin.port}`], [
      `relay://127.0.0.1:${portOf(server)}`,
    ]),
  );
  try {
    await until(() => boundPort(client) !== 0, 5000, "bound");
    const port = boundPort(client);
    // Peers that connect and vanish at once must not end the bind.
    for (let i = 0; i < 5; i++) (await dialTcp("127.0.0.1", port)).close();
    await download(port, 200_000);
  } finally {
    await client.close();
    await server.close();
    await origin.close();
  }
});

Deno.test("killing and restarting the server process: the rtcp client binds again by itself", async () => {
  if (!hasCommand("curl")) return console.log("skipped: curl is not installed");
  const origin = startOrigin();
  // The server must come back on the same port: a child-process port.
  const sport = portForChild();
  const serverArgs = ["-L", `relay+mtcp://127.0.0.1:${sport}?bind=true`];
  let server = new BurrowChild(serverArgs);
  const client = new BurrowChild([
    "-L",
    `rtcp://127.0.0.1:0/127.0.0.1:${origin.port}`,
    "-F",
    `relay+mtcp://127.0.0.1:${sport}`,
  ]);
  const bound = (n: number) =>
    client.waitFor(
      () => client.records.filter((r) => /^bound .* at the far end/.test(r.msg)).length >= n,
      15_000,
      `bind ${n}`,
    ).then(() => {
      const r = client.records.filter((r) => /^bound .* at the far end/.test(r.msg)).at(-1)!;
      return Number(/:(\d+)\)$/.exec(r.msg)![1]);
    });
  try {
    await download(await bound(1), 1 << 20);
    await server.stop();
    await client.waitFor((r) => /ended: .*binding again/.test(r.msg), 10_000, "bind loss noticed");
    server = new BurrowChild(serverArgs);
    const t0 = Date.now();
    const port = await bound(2);
    assert.ok(Date.now() - t0 < 10_000);
    await download(port, 1 << 20);
  } finally {
    await client.stop();
    await server.stop();
    await origin.close();
  }
});

Deno.test("ssh through rtcp: OpenSSH's client runs a command on an sshd reached via the far end", async () => {
  if (!hasCommand("sshd") || !hasCommand("ssh") || !hasCommand("ssh-keygen")) {
    return console.log("skipped: openssh-server/openssh-client are not installed");
  }
  const ssh = await openssh();
  const user = Deno.env.get("USER") ?? "root";
  const server = await Runtime.start(cliConfig(["socks5://127.0.0.1:0?bind=true"], []));
  const client = await Runtime.start(
    cliConfig([`rtcp://127.0.0.1:0/127.0.0.1:${ssh.port}`], [
      `socks5://127.0.0.1:${portOf(server)}`,
    ]),
  );
  try {
    await until(() => boundPort(client) !== 0, 10_000, "bound");
    // sshd may take a moment to listen.
    let out: Deno.CommandOutput | undefined;
    for (let i = 0; i < 20; i++) {
      out = await new Deno.Command("ssh", {
        args: [
          "-i",
          ssh.key,
          "-p",
          String(boundPort(client)),
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "-o",
          "BatchMode=yes",
          "-o",
          "ConnectTimeout=5",
          `${user}@127.0.0.1`,
          "echo through-rtcp-$((6*7))",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (out.code === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(out!.code, 0, new TextDecoder().decode(out!.stderr));
    assert.equal(new TextDecoder().decode(out!.stdout).trim(), "through-rtcp-42");
  } finally {
    await client.close();
    await server.close();
    await ssh.stop();
  }
});

/** Sends `msg` from a fresh UDP socket to `port` and returns the answer (or null on timeout). */
async function udpAsk(port: number, msg: string, ms = 3000): Promise<string | null> {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const got = (async () => {
      const [d] = await s.receive();
      return new TextDecoder().decode(d);
    })();
    for (let i = 0; i < 10; i++) {
      await s.send(new TextEncoder().encode(msg), {
        transport: "udp",
        hostname: "127.0.0.1",
        port,
      });
      const r = await Promise.race([
        got,
        new Promise<null>((r) => setTimeout(() => r(null), ms / 10)),
      ]);
      if (r !== null) return r;
    }
    return null;
  } finally {
    s.close();
  }
}

for (const node of ["", "relay", "socks5", "relay+mtcp", "socks5+ws"]) {
  Deno.test(`rudp ${node ? `over ${node}` : "without a chain"}: datagrams from several peers round-trip`, async () => {
    const echo = udpEchoServer();
    const server = node
      ? await Runtime.start(cliConfig([`${node}://127.0.0.1:0?bind=true`], []))
      : undefined;
    // A UDP bind needs a fixed port (port 0 is GOST's UDP association): a port nothing holds.
    const port = portForChild(true);
    const client = await Runtime.start(
      cliConfig(
        [`rudp://127.0.0.1:${port}/127.0.0.1:${echo.port}`],
        server ? [`${node}://127.0.0.1:${portOf(server)}`] : [],
      ),
    );
    try {
      // udpAsk resends until the bind is up.
      const answers = await Promise.all(["a", "bb", "ccc"].map((m) => udpAsk(port, m)));
      assert.deepEqual(answers, ["a", "bb", "ccc"]);
    } finally {
      await client.close();
      await server?.close();
      await echo.close();
    }
  });
}

Deno.test("rudp: a bind without a port is refused by the client with a clear reason", async () => {
  const server = await Runtime.start(cliConfig(["relay://127.0.0.1:0?bind=true"], []));
  const { log, lines } = capture();
  const client = await Runtime.start(
    cliConfig(["rudp://127.0.0.1:0/127.0.0.1:9"], [`relay://127.0.0.1:${portOf(server)}`]),
    { log },
  );
  try {
    await until(() => lines.some((l) => /a UDP bind needs a port/.test(l)), 5000, "refusal");
  } finally {
    await client.close();
    await server.close();
  }
});

/** One echo round trip; false when the conn is dead. */
async function echoes(c: Awaited<ReturnType<typeof dialTcp>>, b: number): Promise<boolean> {
  try {
    await c.write(new Uint8Array([b]));
    const got = new Uint8Array(1);
    const n = await Promise.race([
      c.read(got),
      new Promise<null>((r) => setTimeout(() => r(null), 2000)),
    ]);
    return n === 1 && got[0] === b;
  } catch {
    return false;
  }
}

/** An rtcp client through `proto` to a fresh server, forwarding to an echo server. */
async function echoBind(proto: string) {
  const echo = echoServer();
  const server = await Runtime.start(cliConfig([`${proto}://127.0.0.1:0?bind=true`], []));
  const client = await Runtime.start(
    cliConfig([`rtcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [
      `${proto}://127.0.0.1:${portOf(server)}`,
    ]),
  );
  await until(() => boundPort(client) !== 0, 5000, "bound");
  return {
    server,
    client,
    port: boundPort(client),
    close: async () => {
      await client.close();
      await server.close();
      await echo.close();
    },
  };
}

Deno.test("peers that reset before the server accepts them do not end the bind", async () => {
  if (!hasCommand("python3")) {
    return console.log("skipped: python3 (for SO_LINGER resets) is absent");
  }
  for (const proto of ["relay", "socks5"]) {
    const b = await echoBind(proto);
    try {
      const live = await dialTcp("127.0.0.1", b.port);
      assert.equal(await echoes(live, 1), true);
      const rst = `import socket,struct
for i in range(5):
  s=socket.create_connection(("127.0.0.1",${b.port}))
  s.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack("ii",1,0))
  s.close()`;
      await new Deno.Command("python3", { args: ["-c", rst] }).output();
      assert.equal(await echoes(live, 2), true, `${proto}: the live peer survives`);
      live.close();
    } finally {
      await b.close();
    }
  }
});

Deno.test("an idle peer on a bound port does not hold up the server's shutdown", async () => {
  const b = await echoBind("relay");
  const idle = await dialTcp("127.0.0.1", b.port);
  try {
    const t0 = Date.now();
    await b.server.close();
    assert.ok(Date.now() - t0 < 3000, `server.close took ${Date.now() - t0} ms`);
    // The idle peer is closed too (it reads EOF rather than hanging half-open).
    const n = await Promise.race([
      idle.read(new Uint8Array(1)).catch(() => null),
      new Promise<string>((r) => setTimeout(() => r("open"), 3000)),
    ]);
    assert.equal(n, null);
  } finally {
    idle.close();
    await b.close();
  }
});

Deno.test("a client closing with a grace period keeps its live rtcp conns for the grace", async () => {
  const b = await echoBind("socks5");
  const live = await dialTcp("127.0.0.1", b.port);
  try {
    assert.equal(await echoes(live, 1), true);
    const closing = b.client.close(1500);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await echoes(live, 2), true, "still served during the grace");
    await closing;
  } finally {
    live.close();
    await b.close();
  }
});

Deno.test("a hop bypass that empties the route is an error, never a local listen", async () => {
  const server = await Runtime.start(cliConfig(["socks5://127.0.0.1:0?bind=true"], []));
  const { log, lines } = capture();
  const client = await Runtime.start(
    cliConfig(["rtcp://127.0.0.1:0/127.0.0.1:9"], [
      `socks5://127.0.0.1:${portOf(server)}?bypass=127.0.0.1`,
    ]),
    { log },
  );
  try {
    await until(() => lines.some((l) => /empty route/.test(l)), 5000, "refusal");
    assert.equal(boundPort(client), 0);
  } finally {
    await client.close();
    await server.close();
  }
});

for (const node of ["socks5", "relay+mtcp", "socks5+kcp", "relay+mtmux"]) {
  Deno.test(`rtcp over ${node}: a peer that leaves mid-download ends the origin's conn; an origin that leaves mid-upload ends the peer's, both ways`, async () => {
    for (const peerLeaves of [true, false]) {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      let ended: () => void = () => {};
      const originEnded = new Promise<void>((r) => ended = r);
      const serving = (async () => {
        for await (const c of l) {
          (async () => {
            const b = new Uint8Array(64 * 1024);
            try {
              if (peerLeaves) { for (;;) await c.write(b); }
              for (let got = 0; got < 1 << 20;) {
                const n = await c.read(b);
                if (n === null) break;
                got += n;
              }
            } catch {
              ended();
            } finally {
              c.close();
            }
          })();
        }
      })().catch(() => {});
      const server = await Runtime.start(cliConfig([`${node}://127.0.0.1:0?bind=true`], []));
      const client = await Runtime.start(
        cliConfig([`rtcp://127.0.0.1:0/127.0.0.1:${l.addr.port}`], [
          `${node}://127.0.0.1:${portOf(server)}`,
        ]),
      );
      try {
        await until(() => boundPort(client) !== 0, 10_000, "the far end bound a port");
        const c = await Deno.connect({ hostname: "127.0.0.1", port: boundPort(client) });
        const b = new Uint8Array(64 * 1024);
        if (peerLeaves) {
          for (let got = 0; got < 1 << 20;) {
            const n = await c.read(b);
            assert.ok(n !== null, "the download ended early");
            got += n;
          }
          c.close();
          await withTimeout(originEnded, 5_000, "the origin's conn closing");
        } else {
          try {
            const reading = c.read(new Uint8Array(8)).catch(() => null);
            const writing = (async () => {
              for (let sent = 0; sent < 1 << 30; sent += b.length) await c.write(b);
            })();
            await withTimeout(assert.rejects(writing), 10_000, "a write error");
            assert.equal(await withTimeout(reading, 5_000, "the read's end"), null);
          } finally {
            c.close();
          }
        }
      } finally {
        await client.close();
        await server.close();
        l.close();
        await serving;
      }
    }
  });
}
