import assert from "node:assert/strict";
import { DRAIN_MAX, UdpDrain } from "../../src/core/udp_drain.ts";

const linux = Deno.build.os === "linux";

Deno.test({
  name:
    "udp drain: after a receive, the datagrams queued behind it come out in order with their source, then -1; at most what the buffer holds",
  ignore: !linux,
  async fn() {
    const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const drain = UdpDrain.for(b);
      assert.ok(drain, "an IPv4 socket on Linux with FFI gets a drain");
      const to = b.addr as Deno.NetAddr;
      const from = (s: Deno.DatagramConn) => (s.addr as Deno.NetAddr).port;
      for (let i = 0; i < 10; i++) {
        await (i === 5 ? c : a).send(new Uint8Array(100 + i).fill(i), to);
      }
      await b.send(new Uint8Array(3000).fill(7), to); // bigger than the buffer below
      const buf = new Uint8Array(2048);
      const [first] = await b.receive(buf);
      assert.equal(first.length, 100);
      const got: [number, number, number, string][] = [];
      for (;;) {
        const n = drain!.next(buf);
        if (n < 0) break;
        got.push([n, buf[0]!, drain!.port, drain!.hostname]);
      }
      assert.deepEqual(got, [
        ...[1, 2, 3, 4].map((i) => [100 + i, i, from(a), "127.0.0.1"]),
        [105, 5, from(c), "127.0.0.1"],
        ...[6, 7, 8, 9].map((i) => [100 + i, i, from(a), "127.0.0.1"]),
        [2048, 7, from(b), "127.0.0.1"],
      ]);
      assert.equal(drain!.next(buf), -1, "nothing queued: -1 at once, no wait");
      // The socket still works through Deno afterwards.
      await a.send(new Uint8Array([42]), to);
      const [again] = await b.receive(buf);
      assert.deepEqual([...again], [42]);
      assert.ok(DRAIN_MAX >= 16);
    } finally {
      a.close();
      b.close();
      c.close();
    }
  },
});

Deno.test("udp drain: none for an IPv6 socket (callers receive one datagram at a time)", () => {
  let s: Deno.DatagramConn;
  try {
    s = Deno.listenDatagram({ transport: "udp", hostname: "::1", port: 0 });
  } catch {
    return; // no IPv6 loopback here
  }
  try {
    assert.equal(UdpDrain.for(s), null);
  } finally {
    s.close();
  }
});

Deno.test({
  name:
    "udp drain: none without permission to read /proc (and no prompt): the socket is received from one datagram at a time",
  ignore: !linux,
  async fn() {
    const mod = new URL("../../src/core/udp_drain.ts", import.meta.url).href;
    const code = `import { UdpDrain } from ${JSON.stringify(mod)};
const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
console.log(UdpDrain.for(s) === null ? "none" : "drain");
s.close();`;
    const dir = await Deno.makeTempDir();
    try {
      const file = `${dir}/probe.ts`;
      await Deno.writeTextFile(file, code);
      const run = (...perms: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-prompt", "--unstable-net", ...perms, file],
          stdout: "piped",
          stderr: "piped",
          stdin: "null",
        }).output();
      const without = await run(
        "--allow-ffi",
        "--allow-net",
        `--allow-read=${dir},${new URL("../../", import.meta.url).pathname}`,
      );
      assert.equal(
        new TextDecoder().decode(without.stdout).trim(),
        "none",
        new TextDecoder().decode(without.stderr),
      );
      const withProc = await run("-A"); // (Deno gives /proc/self/fd only with every permission)
      assert.equal(
        new TextDecoder().decode(withProc.stdout).trim(),
        "drain",
        new TextDecoder().decode(withProc.stderr),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
