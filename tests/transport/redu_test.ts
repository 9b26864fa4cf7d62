/**
 * `redu`, the transparent UDP proxy (issue #19), inside three network namespaces the test creates:
 * a client namespace whose datagrams to 10.199.1.5:53 cross a veth pair into a proxy namespace,
 * where iptables TPROXY hands them to Burrow; Burrow sends them on to the real server (a third
 * namespace behind the proxy) and the answers come back to the client from 10.199.1.5:53, the
 * address it sent to. Skipped with a message where namespaces or TPROXY are not available.
 */
import assert from "node:assert/strict";
import { BurrowChild } from "../_burrow.ts";
import { hasCommand } from "../_helpers.ts";

const id = `${Deno.pid % 10000}`;
const NS_C = `brw-uc${id}`, NS_P = `brw-up${id}`, NS_S = `brw-us${id}`;
const V_C = `uc${id}`, V_PC = `upc${id}`, V_PS = `ups${id}`, V_S = `us${id}`;

function run(cmd: string[]): { ok: boolean; out: string } {
  try {
    const o = new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
      .outputSync();
    return {
      ok: o.success,
      out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr),
    };
  } catch (e) {
    return { ok: false, out: String(e) };
  }
}

function setUp(): string | null {
  if (Deno.build.os !== "linux") return "not Linux";
  for (const c of ["ip", "iptables", "python3"]) if (!hasCommand(c)) return `${c} missing`;
  const steps = [
    ["ip", "netns", "add", NS_C],
    ["ip", "netns", "add", NS_P],
    ["ip", "netns", "add", NS_S],
    ["ip", "link", "add", V_C, "type", "veth", "peer", "name", V_PC],
    ["ip", "link", "add", V_S, "type", "veth", "peer", "name", V_PS],
    ["ip", "link", "set", V_C, "netns", NS_C],
    ["ip", "link", "set", V_PC, "netns", NS_P],
    ["ip", "link", "set", V_PS, "netns", NS_P],
    ["ip", "link", "set", V_S, "netns", NS_S],
    ["ip", "-n", NS_C, "addr", "add", "10.199.0.1/24", "dev", V_C],
    ["ip", "-n", NS_P, "addr", "add", "10.199.0.2/24", "dev", V_PC],
    ["ip", "-n", NS_P, "addr", "add", "10.199.3.1/24", "dev", V_PS],
    ["ip", "-n", NS_S, "addr", "add", "10.199.3.2/24", "dev", V_S],
    ["ip", "-n", NS_S, "addr", "add", "10.199.1.5/32", "dev", "lo"],
    ...[[NS_C, V_C], [NS_P, V_PC], [NS_P, V_PS], [NS_S, V_S]].map(([ns, v]) => [
      "ip",
      "-n",
      ns!,
      "link",
      "set",
      v!,
      "up",
    ]),
    ...[NS_C, NS_P, NS_S].map((ns) => ["ip", "-n", ns, "link", "set", "lo", "up"]),
    ["ip", "-n", NS_C, "route", "add", "10.199.1.0/24", "via", "10.199.0.2"],
    ["ip", "-n", NS_P, "route", "add", "10.199.1.5/32", "via", "10.199.3.2"],
    ["ip", "-n", NS_S, "route", "add", "10.199.0.0/24", "via", "10.199.3.1"],
    // Datagrams from the client side to 10.199.1.5:53 go to Burrow's port, unchanged.
    [
      "ip",
      "netns",
      "exec",
      NS_P,
      "iptables",
      "-t",
      "mangle",
      "-A",
      "PREROUTING",
      "-i",
      V_PC,
      "-p",
      "udp",
      "-d",
      "10.199.1.5",
      "--dport",
      "53",
      "-j",
      "TPROXY",
      "--on-port",
      "12347",
      "--tproxy-mark",
      "1",
    ],
    ["ip", "-n", NS_P, "rule", "add", "fwmark", "1", "lookup", "100"],
    ["ip", "-n", NS_P, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"],
  ];
  for (const s of steps) {
    const r = run(s);
    if (!r.ok) {
      tearDown();
      return `${s.join(" ")}: ${r.out.trim()}`;
    }
  }
  return null;
}

function tearDown(): void {
  for (const ns of [NS_C, NS_P, NS_S]) run(["ip", "netns", "del", ns]);
}

const why = setUp();
if (why) console.warn(`redu: cannot build network namespaces (${why}): skipping`);
else tearDown(); // built per test below

/** The real server: answers each datagram with "echo:" + it. */
const ECHO = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.199.1.5", 53))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(b"echo:" + d, a)
`;

/** Two clients, three datagrams each (one of 3000 bytes); prints each answer and its source. */
const CLIENT = `
import socket, sys
out = []
for c in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for i, body in enumerate([b"one", b"two", b"x" * 3000]):
        s.sendto(b"%d:%s" % (c, body), ("10.199.1.5", 53))
        d, a = s.recvfrom(65535)
        out.append("%s:%d %d %s" % (a[0], a[1], len(d), d[:12].decode()))
print("\\n".join(out))
`;

Deno.test({
  name:
    "redu: TPROXY-diverted datagrams reach their original destination, the answers come back from it, idle sessions end after ttl",
  ignore: why !== null,
  async fn() {
    assert.equal(setUp(), null);
    const server = new Deno.Command("ip", {
      args: ["netns", "exec", NS_S, "python3", "-c", ECHO],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const burrow = new BurrowChild(["-L", "redu://:12347?ttl=5s"], {
      prefix: ["ip", "netns", "exec", NS_P],
    });
    try {
      const r = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
      assert.match((await r.read()).value ?? "", /ready/);
      r.releaseLock();
      await burrow.servicePort("service-0");
      const o = await new Deno.Command("timeout", {
        args: ["20", "ip", "netns", "exec", NS_C, "python3", "-c", CLIENT],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
      assert.ok(o.success, out);
      assert.deepEqual(out.trim().split("\n"), [
        "10.199.1.5:53 10 echo:0:one",
        "10.199.1.5:53 10 echo:0:two",
        "10.199.1.5:53 3007 echo:0:xxxxx",
        "10.199.1.5:53 10 echo:1:one",
        "10.199.1.5:53 10 echo:1:two",
        "10.199.1.5:53 3007 echo:1:xxxxx",
      ]);
      // Idle for the ttl (5 s), both sessions end (their sockets go with them).
      for (const c of [0, 1]) {
        await burrow.waitFor(
          (x) =>
            x.kind === "handler" && / >< 10\.199\.1\.5:53$/.test(x.msg) &&
            burrow.records.filter((y) => / >< 10\.199\.1\.5:53$/.test(y.msg)).length > c,
          12_000,
          "an idle session to end",
        );
      }
    } finally {
      await burrow.stop();
      try {
        server.kill();
      } catch { /* gone */ }
      await server.status;
      await server.stdout.cancel().catch(() => {});
      tearDown();
    }
  },
});
