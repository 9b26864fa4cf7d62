/**
 * `sshd` forwarding through a standard SSH server (issue #19): Burrow's sshd dialer and connector
 * against Debian's OpenSSH server — byte-exact transfers on concurrent direct-tcpip channels of one
 * session, a socks5 service whose chain ends at the SSH server, and a refused key failing fast.
 */
import assert from "node:assert/strict";
import { cliConfig, Runtime } from "../../mod.ts";
import { echoServer, hasCommand, portForChild, withTimeout } from "../_helpers.ts";
import { openssh } from "../_openssh.ts";

const have = hasCommand("sshd") && hasCommand("ssh-keygen") && hasCommand("curl");
if (!have) console.warn("openssh-server or curl missing: skipping the sshd tests");

const user = Deno.env.get("USER") ?? "root";

Deno.test({
  name:
    "sshd client: 4 concurrent 4 MiB transfers ride direct-tcpip channels of one OpenSSH session, byte-exact",
  ignore: !have,
  async fn() {
    const ssh = await openssh();
    const echo = echoServer();
    const rt = await Runtime.start(cliConfig(
      [`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`],
      [`sshd://${user}@127.0.0.1:${ssh.port}?privateKeyFile=${ssh.key}`],
    ));
    const port = rt.services[0]!.listener.addr.port;
    try {
      await Promise.all(Array.from({ length: 4 }, async () => {
        // Not periodic in 256 bytes: a lost or repeated stretch shows up as a mismatch too.
        const data = new Uint8Array(4 << 20).map((_, i) => (i * 7 + (i >> 9)) & 255);
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        const writing = (async () => {
          // A Deno socket's write may take less than it is given: the count says where to go on.
          for (let o = 0; o < data.length;) o += await c.write(data.subarray(o, o + 65536));
          await c.closeWrite();
        })();
        const got = new Uint8Array(data.length + 65536);
        let n = 0;
        for (;;) {
          // Never a zero-length read: it returns 0 at once and would spin.
          const k = await withTimeout(c.read(got.subarray(n, n + 65536)), 20_000, "echo");
          if (k === null) break;
          n += k;
        }
        await writing;
        c.close();
        assert.equal(n, data.length);
        assert.deepEqual(got.subarray(0, n), data);
      }));
      // One SSH login served all four.
      assert.equal((ssh.log().match(/Accepted publickey/g) ?? []).length, 1, ssh.log());
    } finally {
      await rt.close();
      await echo.close();
      await ssh.stop();
    }
  },
});

Deno.test({
  name:
    "sshd client: a socks5 service whose chain ends at an SSH server (curl), and a refused key fails fast",
  ignore: !have,
  async fn() {
    const ssh = await openssh();
    const ac = new AbortController();
    const web = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
      () => new Response("via ssh\n"),
    );
    const rt = await Runtime.start(cliConfig(
      ["socks5://127.0.0.1:0"],
      [`sshd://${user}@127.0.0.1:${ssh.port}?privateKeyFile=${ssh.key}`],
    ));
    const bad = await Runtime.start(cliConfig(
      [`tcp://127.0.0.1:0/127.0.0.1:${web.addr.port}`],
      [`sshd://${user}@127.0.0.1:${ssh.port}?privateKeyFile=${ssh.badKey}`],
    ));
    try {
      const out = await new Deno.Command("curl", {
        args: [
          "-s",
          "-S",
          "--max-time",
          "10",
          "--socks5-hostname",
          `127.0.0.1:${rt.services[0]!.listener.addr.port}`,
          `http://127.0.0.1:${web.addr.port}/`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(
        new TextDecoder().decode(out.stdout),
        "via ssh\n",
        new TextDecoder().decode(out.stderr),
      );
      // The wrong key: the client's connection ends (no hang), nothing reaches the web server.
      const c = await Deno.connect({
        hostname: "127.0.0.1",
        port: bad.services[0]!.listener.addr.port,
      });
      const r = await withTimeout(
        c.read(new Uint8Array(16)),
        10_000,
        "a refused login ends the conn",
      );
      c.close();
      assert.equal(r, null);
    } finally {
      await rt.close();
      await bad.close();
      ac.abort();
      await web.finished;
      await ssh.stop();
    }
  },
});

Deno.test("sshd URL userinfo is a plain user and password (not SIP002 base64, which is for ss only)", () => {
  const cfg = cliConfig(["tcp://:0/x:1"], [
    "sshd://cm9vdA@h:22",
    "ss://YWVzLTEyOC1nY206cHc@h:8388",
  ]);
  const nodes = cfg.chains![0]!.hops.map((h) => h.nodes![0]!);
  assert.deepEqual(nodes[0]!.dialer.auth, { username: "cm9vdA", password: "" });
  assert.equal(nodes[1]!.connector.auth?.username, "aes-128-gcm");
});

/** Runs OpenSSH's client with `args` until `ready` matches its stderr; returns it running. */
async function sshClient(
  key: string,
  port: number,
  args: string[],
  ready: RegExp,
): Promise<{ stderr: () => string; stop: () => Promise<Deno.CommandStatus> }> {
  const child = new Deno.Command("ssh", {
    args: [
      "-N",
      "-v",
      "-i",
      key,
      "-p",
      String(port),
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "ExitOnForwardFailure=yes",
      ...args,
      `${user}@127.0.0.1`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let err = "";
  const reading = (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) err += c;
  })();
  const deadline = Date.now() + 10_000;
  let exited = false;
  child.status.then(() => (exited = true));
  while (!ready.test(err) && !exited && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    stderr: () => err,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      const st = await child.status;
      await reading;
      return st;
    },
  };
}

async function curlOut(args: string[]): Promise<string> {
  const o = await new Deno.Command("curl", {
    args: ["-s", "-S", "--max-time", "5", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
}

Deno.test({
  name:
    "sshd server: OpenSSH's ssh -L, -D and -R work through Burrow's sshd (authorized key); -R needs bind=true; a wrong key is refused",
  ignore: !have || !hasCommand("ssh"),
  async fn() {
    const dir = await Deno.makeTempDir();
    for (const k of ["user", "other"]) {
      await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/${k}`],
        stdout: "null",
        stderr: "null",
      }).output();
    }
    await Deno.copyFile(`${dir}/user.pub`, `${dir}/authorized_keys`);
    const ac = new AbortController();
    const web = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
      () => new Response("behind sshd\n"),
    );
    const start = (bind: boolean) =>
      Runtime.start({
        services: [{
          name: "ssh",
          addr: "127.0.0.1:0",
          handler: { type: "sshd", metadata: bind ? { bind: true } : {} },
          listener: { type: "sshd", metadata: { authorizedKeys: `${dir}/authorized_keys` } },
        }],
      });
    const rt = await start(true);
    const closed = await start(false);
    const port = rt.services[0]!.listener.addr.port;
    const running: { stop: () => Promise<Deno.CommandStatus> }[] = [];
    try {
      const lp = portForChild(); // a port for ssh's own listen flag
      const L = await sshClient(
        `${dir}/user`,
        port,
        ["-L", `${lp}:127.0.0.1:${web.addr.port}`],
        /Entering interactive session|pledge: network/,
      );
      running.push(L);
      assert.equal(await curlOut([`http://127.0.0.1:${lp}/`]), "behind sshd\n", L.stderr());

      const dp = portForChild(); // a port for ssh's own listen flag
      const D = await sshClient(
        `${dir}/user`,
        port,
        ["-D", `127.0.0.1:${dp}`],
        /Entering interactive session|pledge: network/,
      );
      running.push(D);
      const socksPort = dp;
      assert.ok(socksPort > 0, D.stderr());
      assert.equal(
        await curlOut([
          "--socks5-hostname",
          `127.0.0.1:${socksPort}`,
          `http://127.0.0.1:${web.addr.port}/`,
        ]),
        "behind sshd\n",
      );

      const R = await sshClient(
        `${dir}/user`,
        port,
        [
          "-R",
          `0:127.0.0.1:${web.addr.port}`,
          "-o",
          "ControlMaster=yes",
          "-o",
          `ControlPath=${dir}/ctl`,
        ],
        /Allocated port (\d+) for remote forward/,
      );
      running.push(R);
      const rp = Number(/Allocated port (\d+) for remote forward/.exec(R.stderr())?.[1]);
      assert.ok(rp > 0, R.stderr());
      assert.equal(await curlOut([`http://127.0.0.1:${rp}/`]), "behind sshd\n");
      // `ssh -O cancel -R` (cancel-tcpip-forward) closes that port on the server.
      const cancel = await new Deno.Command("ssh", {
        args: ["-S", `${dir}/ctl`, "-O", "cancel", "-R", `0:127.0.0.1:${web.addr.port}`, "x"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(cancel.code, 0, new TextDecoder().decode(cancel.stderr));
      let open = true;
      for (let i = 0; i < 100 && open; i++) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port: rp })).close();
          await new Promise((r) => setTimeout(r, 50));
        } catch {
          open = false;
        }
      }
      assert.equal(open, false, "the cancelled forwarding's port closed");

      // Without bind=true the server refuses -R (ssh exits: ExitOnForwardFailure).
      const noR = await sshClient(`${dir}/user`, closed.services[0]!.listener.addr.port, [
        "-R",
        `0:127.0.0.1:${web.addr.port}`,
      ], /remote port forwarding failed|Allocated port/);
      const st = await noR.stop();
      assert.match(noR.stderr(), /remote port forwarding failed/);
      assert.notEqual(st.code, 0);

      const bad = await sshClient(`${dir}/other`, port, [], /Permission denied/);
      await bad.stop();
      assert.match(bad.stderr(), /Permission denied/);
    } finally {
      for (const r of running) await r.stop();
      await rt.close();
      await closed.close();
      ac.abort();
      await web.finished;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("sshd: Burrow's sshd client logs in to Burrow's sshd server with a password; a wrong one fails", async () => {
  const echo = echoServer();
  const srv = await Runtime.start(cliConfig(["sshd://alice:s3cret@127.0.0.1:0"], []));
  const sp = srv.services[0]!.listener.addr.port;
  const good = await Runtime.start(cliConfig(
    [`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`],
    [`sshd://alice:s3cret@127.0.0.1:${sp}`],
  ));
  const bad = await Runtime.start(cliConfig(
    [`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`],
    [`sshd://alice:wrong@127.0.0.1:${sp}`],
  ));
  // A silent client connected first must not take over the next login (each connection has
  // its own SSH server state).
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: sp });
  try {
    const c = await Deno.connect({
      hostname: "127.0.0.1",
      port: good.services[0]!.listener.addr.port,
    });
    await c.write(new TextEncoder().encode("ping"));
    const b = new Uint8Array(4);
    let n = 0;
    while (n < 4) n += (await withTimeout(c.read(b.subarray(n)), 10_000, "echo"))!;
    assert.equal(new TextDecoder().decode(b), "ping");
    c.close();
    const d = await Deno.connect({
      hostname: "127.0.0.1",
      port: bad.services[0]!.listener.addr.port,
    });
    assert.equal(await withTimeout(d.read(new Uint8Array(4)), 10_000, "refused login"), null);
    d.close();
  } finally {
    silent.close();
    await good.close();
    await bad.close();
    await srv.close();
    await echo.close();
  }
});

Deno.test("sshd server: with BURROW_CERT_DIR its made-up host key is kept and reused across starts", async () => {
  const dir = await Deno.makeTempDir();
  const before = Deno.env.get("BURROW_CERT_DIR");
  Deno.env.set("BURROW_CERT_DIR", dir);
  try {
    const start = () => Runtime.start(cliConfig(["sshd://u:p@127.0.0.1:0"], []));
    await (await start()).close();
    const key = await Deno.readTextFile(`${dir}/auto-ssh-host-key`);
    assert.match(key, /PRIVATE KEY/);
    assert.equal((await Deno.stat(`${dir}/auto-ssh-host-key`)).mode! & 0o777, 0o600);
    await (await start()).close();
    assert.equal(await Deno.readTextFile(`${dir}/auto-ssh-host-key`), key);
  } finally {
    if (before === undefined) Deno.env.delete("BURROW_CERT_DIR");
    else Deno.env.set("BURROW_CERT_DIR", before);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sshd server: at most 256 direct-tcpip channels open per SSH connection; past that a channel is refused", async () => {
  const ssh2 = (await import("ssh2")).default;
  const net = (await import("node:net")).default;
  const echo = echoServer();
  const srv = await Runtime.start(cliConfig(["sshd://u:p@127.0.0.1:0"], []));
  const ssh = new ssh2.Client();
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ssh.on("ready", () => resolve()).on("error", reject);
        // Without TCP_NODELAY each open waits out the delayed ACK (~40 ms).
        const sock = net.connect(srv.services[0]!.listener.addr.port, "127.0.0.1");
        sock.setNoDelay(true);
        ssh.connect({ sock, username: "u", password: "p" });
      }),
      10_000,
      "ssh2 login",
    );
    const open = () =>
      new Promise<{ close(): void }>((resolve, reject) =>
        ssh.forwardOut(
          "127.0.0.1",
          0,
          "127.0.0.1",
          echo.port,
          (e, ch) => e ? reject(e) : resolve(ch),
        )
      );
    const chans = [];
    for (let i = 0; i < 256; i++) chans.push(await withTimeout(open(), 5000, `channel ${i}`));
    await assert.rejects(
      withTimeout(open(), 5000, "channel 257"),
      /open failure|refused|prohibited/i,
    );
    for (const c of chans) c.close();
  } finally {
    ssh.end();
    await srv.close();
    await echo.close();
  }
});
