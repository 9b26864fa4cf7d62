/**
 * GOST's `ssh` transport (issue #19): tunnels in `gost-tunnel` channels. Against a Go program that
 * does what GOST's ssh listener and dialer do with golang.org/x/crypto/ssh (scripts/peers/gostssh,
 * Debian's golang-golang-x-crypto-dev), Burrow replaces each end: byte-exact transfers on
 * concurrent channels, GOST's "ping" keep-alive answered, wrong passwords refused. Burrow against
 * itself: an auto handler behind the listener with a socks5 → http chain over it (curl), and the
 * listener refusing the channels standard SSH clients open.
 */
import assert from "node:assert/strict";
// @ts-types="@types/ssh2"
import ssh2 from "ssh2";
import net from "node:net";
import { cliConfig, Runtime } from "../../mod.ts";
import { echoServer, hasCommand, withTimeout } from "../_helpers.ts";
import { goPeer, startListeningPeer } from "../../scripts/peers/build.ts";

const peer = await goPeer("gostssh", "golang.org/x/crypto/ssh");
if (!peer) {
  console.warn("Go or golang-golang-x-crypto-dev missing: skipping the GOST ssh peer tests");
}

/** Sends `size` patterned bytes on a new conn to `port`, reads the echo back, compares. */
async function echoThrough(port: number, size: number, seed: number): Promise<void> {
  const data = new Uint8Array(size).map((_, i) => (i * seed + (i >> 9)) & 255);
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const writing = (async () => {
    // A Deno socket's write may take less than it is given: the count says where to go on.
    for (let o = 0; o < data.length;) o += await c.write(data.subarray(o, o + 65536));
  })();
  const got = new Uint8Array(data.length);
  let n = 0;
  while (n < data.length) {
    const k = await withTimeout(c.read(got.subarray(n)), 20_000, "echo");
    if (k === null) break;
    n += k;
  }
  await writing;
  c.close();
  assert.equal(n, data.length);
  assert.deepEqual(got, data);
}

/** Collects a child's stdout lines. */
function lines(child: Deno.ChildProcess): { text: () => string } {
  let text = "";
  (async () => {
    for await (const b of child.stdout) text += new TextDecoder().decode(b);
  })().catch(() => {});
  return { text: () => text };
}

/** An echo server behind the Go ssh server (GOST's listener), its stdout collected. */
async function goServer(...extra: string[]) {
  const echo = echoServer();
  const go = await startListeningPeer(peer!, [
    ...["-mode", "server", "-user", "u", "-pass", "secret"],
    ...["-target", `127.0.0.1:${echo.port}`, ...extra],
  ]);
  const out = lines(go.child);
  return {
    port: go.port,
    child: go.child,
    out,
    stop: async () => {
      await go.stop();
      await echo.close();
    },
  };
}

/** A Burrow tcp service whose chain is one ssh node at `port` (forward: the server picks). */
function sshClient(port: number, pass = "secret"): Promise<Runtime> {
  return Runtime.start(cliConfig(
    ["tcp://127.0.0.1:0/127.0.0.1:1"],
    [`forward+ssh://u:${pass}@127.0.0.1:${port}`],
  ));
}

Deno.test({
  name:
    "ssh listener ← GOST's ssh dialer (Go): 4 concurrent channels byte-exact, its 'ping' keep-alive answered, a wrong password refused",
  ignore: !peer,
  async fn() {
    const echo = echoServer();
    const rt = await Runtime.start(cliConfig(
      [`ssh://u:secret@127.0.0.1:0/127.0.0.1:${echo.port}`],
      [],
    ));
    const sp = rt.services[0]!.listener.addr.port;
    const go = await startListeningPeer(peer!, [
      ...["-mode", "client", "-user", "u", "-pass", "secret"],
      ...["-server", `127.0.0.1:${sp}`, "-ping", "200ms"],
    ]);
    const out = lines(go.child);
    try {
      await Promise.all([1, 3, 5, 7].map((seed) => echoThrough(go.port, 2 << 20, seed)));
      // GOST counts any reply to "ping" as alive; Burrow's server answers (false, as GOST's does).
      for (let i = 0; i < 50 && !/PING ok=false/.test(out.text()); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(out.text(), /PING ok=false/);
      assert.doesNotMatch(out.text(), /PING error|OPEN error/);
      // A wrong password: the Go dialer's login fails and it exits.
      const bad = new Deno.Command(peer!, {
        args: [
          ...["-mode", "client", "-user", "u", "-pass", "wrong"],
          ...["-server", `127.0.0.1:${sp}`],
        ],
        stdout: "piped",
        stderr: "piped",
      });
      const r = await withTimeout(bad.output(), 15_000, "bad login");
      assert.equal(r.success, false);
      assert.match(new TextDecoder().decode(r.stderr), /unable to authenticate/);
    } finally {
      await go.stop();
      await rt.close();
      await echo.close();
    }
  },
});

Deno.test({
  name:
    "ssh dialer → GOST's ssh listener (Go): 4 concurrent channels byte-exact over one login; a wrong password fails the dial",
  ignore: !peer,
  async fn() {
    const go = await goServer();
    const rt = await sshClient(go.port);
    const bad = await sshClient(go.port, "wrong");
    try {
      const port = rt.services[0]!.listener.addr.port;
      await Promise.all([1, 3, 5, 7].map((seed) => echoThrough(port, 2 << 20, seed)));
      await echoThrough(port, 1000, 11);
      // GOST's dialer keeps one SSH connection per node: one login carried all five.
      assert.equal((go.out.text().match(/LOGIN u/g) ?? []).length, 1, go.out.text());
      const c = await Deno.connect({
        hostname: "127.0.0.1",
        port: bad.services[0]!.listener.addr.port,
      });
      // The dial fails, so the service closes the conn: EOF, well within the handshake timeout.
      assert.equal(await withTimeout(c.read(new Uint8Array(1)), 10_000, "bad login"), null);
      c.close();
    } finally {
      await bad.close();
      await rt.close();
      await go.stop();
    }
  },
});

Deno.test({
  name:
    "ssh dialer: a channel the server refuses fails that dial and ends the SSH connection; the next dial logs in anew (as GOST's dialer)",
  ignore: !peer,
  async fn() {
    const go = await goServer("-refuse", "1");
    const rt = await sshClient(go.port);
    try {
      const port = rt.services[0]!.listener.addr.port;
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      assert.equal(await withTimeout(c.read(new Uint8Array(1)), 10_000, "refused"), null);
      c.close();
      await echoThrough(port, 100_000, 3);
      assert.equal((go.out.text().match(/LOGIN u/g) ?? []).length, 2, go.out.text());
    } finally {
      await rt.close();
      await go.stop();
    }
  },
});

Deno.test({
  name:
    "ssh dialer: a server killed without an SSH goodbye ends the open tunnels at once, and the runtime closes",
  ignore: !peer,
  async fn() {
    const go = await goServer();
    const rt = await sshClient(go.port);
    try {
      const c = await Deno.connect({
        hostname: "127.0.0.1",
        port: rt.services[0]!.listener.addr.port,
      });
      await c.write(new Uint8Array([1, 2, 3]));
      const b = new Uint8Array(8);
      assert.equal(await withTimeout(c.read(b), 10_000, "echo"), 3);
      go.child.kill("SIGKILL");
      await go.child.status;
      // It hung for good before: ssh2 saw the socket end but never closed the session.
      assert.equal(await withTimeout(c.read(b), 5000, "tunnel end after the kill"), null);
      c.close();
    } finally {
      await withTimeout(rt.close(), 5000, "runtime close");
      await go.stop();
    }
  },
});

Deno.test({
  name:
    "ssh: Burrow ⇄ Burrow with the auto handler (curl over socks5 → http in gost-tunnel channels); the listener refuses session and direct-tcpip channels as GOST does",
  ignore: !hasCommand("curl"),
  async fn() {
    const ac = new AbortController();
    const web = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
      () => new Response("over gost-tunnel\n"),
    );
    const server = await Runtime.start(cliConfig(["ssh://u:secret@127.0.0.1:0"], []));
    const sp = server.services[0]!.listener.addr.port;
    const client = await Runtime.start(cliConfig(
      ["socks5://127.0.0.1:0"],
      [`ssh://u:secret@127.0.0.1:${sp}`],
    ));
    const ssh = new ssh2.Client();
    try {
      const out = await new Deno.Command("curl", {
        args: [
          "-s",
          "--max-time",
          "10",
          "-x",
          `socks5h://127.0.0.1:${client.services[0]!.listener.addr.port}`,
          `http://127.0.0.1:${web.addr.port}/`,
        ],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(out.stdout), "over gost-tunnel\n");
      // A standard SSH client logs in but gets no shell and no port forwarding.
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          ssh.on("ready", () => resolve()).on("error", reject);
          ssh.connect({ host: "127.0.0.1", port: sp, username: "u", password: "secret" });
        }),
        10_000,
        "ssh2 login",
      );
      const shell = await new Promise<Error | undefined>((r) => ssh.shell((e) => r(e)));
      assert.match(String(shell?.message), /unsupported channel type: session/);
      const fwd = await new Promise<Error | undefined>((r) =>
        ssh.forwardOut("127.0.0.1", 0, "127.0.0.1", web.addr.port, (e) => r(e))
      );
      assert.match(String(fwd?.message), /unsupported channel type: direct-tcpip/);
    } finally {
      ssh.end();
      await client.close();
      await server.close();
      ac.abort();
      await web.finished;
    }
  },
});

Deno.test("ssh listener: at most 256 channels open per SSH connection; past that a channel is refused until one closes", async () => {
  const { openChannel } = await import("../../src/transport/ssh/channel.ts");
  const echo = echoServer();
  const server = await Runtime.start(
    cliConfig([`ssh://u:secret@127.0.0.1:0/127.0.0.1:${echo.port}`], []),
  );
  const ssh = new ssh2.Client();
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ssh.on("ready", () => resolve()).on("error", reject);
        // Without TCP_NODELAY each open waits out the delayed ACK (~40 ms): 256 take 11 s.
        const sock = net.connect(server.services[0]!.listener.addr.port, "127.0.0.1");
        sock.setNoDelay(true);
        ssh.connect({ sock, username: "u", password: "secret" });
      }),
      10_000,
      "ssh2 login",
    );
    const open = () => openChannel(ssh, "gost-tunnel", 5000);
    const chans = [];
    for (let i = 0; i < 256; i++) chans.push(await open());
    await assert.rejects(open(), /more than 256 channels/);
    chans.pop()!.close?.();
    // The server hears the close a moment later; then a channel fits again.
    let again: Awaited<ReturnType<typeof open>> | undefined;
    for (let i = 0; i < 50 && !again; i++) {
      again = await open().catch(() => undefined);
      if (!again) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(again, "a channel opens again once one has closed");
  } finally {
    ssh.end();
    await server.close();
    await echo.close();
  }
});

Deno.test("ssh: listener auth only on ssh/sshd listeners, dialer auth only on ssh/sshd dialers", async () => {
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "s",
        addr: "127.0.0.1:0",
        handler: { type: "http" },
        listener: { type: "tcp", auth: { username: "u", password: "p" } },
      }],
    }),
    /listener\.auth: listener auth is only used by ssh and sshd listeners/,
  );
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "s",
        addr: "127.0.0.1:0",
        handler: { type: "http", chain: "c" },
        listener: { type: "tcp" },
      }],
      chains: [{
        name: "c",
        hops: [{
          name: "h",
          nodes: [{
            name: "n",
            addr: "127.0.0.1:1",
            connector: { type: "http" },
            dialer: { type: "tcp", auth: { username: "u", password: "p" } },
          }],
        }],
      }],
    }),
    /dialer\.auth: dialer auth is only used by ssh and sshd dialers/,
  );
});
