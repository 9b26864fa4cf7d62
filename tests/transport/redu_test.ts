/**
 * `redu`, the transparent UDP proxy (issue #19), inside three network namespaces the test creates:
 * a client namespace whose datagrams to 10.199.1.5:53 cross a veth pair into a proxy namespace,
 * where iptables TPROXY hands them to Burrow; Burrow sends them on to the real server (a third
 * namespace behind the proxy) and the answers come back to the client from 10.199.1.5:53, the
 * address it sent to. Skipped with a message where namespaces or TPROXY are not available.
 */
import assert from "node:assert/strict";
import { BurrowChild } from "../_burrow.ts";
import { Namespaces, nsSteps, tproxySteps, vethSteps } from "../_netns.ts";

const id = `${Deno.pid % 10000}`;
const NS_C = `brw-uc${id}`, NS_P = `brw-up${id}`, NS_S = `brw-us${id}`;
const V_C = `uc${id}`, V_PC = `upc${id}`, V_PS = `ups${id}`, V_S = `us${id}`;

const ns = new Namespaces("redu", [NS_C, NS_P, NS_S], ["iptables", "python3"], () => [
  ...nsSteps(NS_C, NS_P, NS_S),
  ...vethSteps(
    { ns: NS_C, dev: V_C, addr: "10.199.0.1/24" },
    { ns: NS_P, dev: V_PC, addr: "10.199.0.2/24" },
  ),
  ...vethSteps(
    { ns: NS_S, dev: V_S, addr: "10.199.3.2/24" },
    { ns: NS_P, dev: V_PS, addr: "10.199.3.1/24" },
  ),
  ["ip", "-n", NS_S, "addr", "add", "10.199.1.5/32", "dev", "lo"],
  ["ip", "-n", NS_C, "route", "add", "10.199.1.0/24", "via", "10.199.0.2"],
  ["ip", "-n", NS_P, "route", "add", "10.199.1.5/32", "via", "10.199.3.2"],
  ["ip", "-n", NS_S, "route", "add", "10.199.0.0/24", "via", "10.199.3.1"],
  // Datagrams from the client side to 10.199.1.5:53 go to Burrow's port, unchanged.
  ...tproxySteps(NS_P, V_PC, "udp", "10.199.1.5", 53, 12347),
  // The same over IPv6 (nodad: the addresses are usable at once).
  ["ip", "-n", NS_C, "addr", "add", "fd00:199::1/64", "dev", V_C, "nodad"],
  ["ip", "-n", NS_P, "addr", "add", "fd00:199::2/64", "dev", V_PC, "nodad"],
  ["ip", "-n", NS_P, "addr", "add", "fd00:199:3::1/64", "dev", V_PS, "nodad"],
  ["ip", "-n", NS_S, "addr", "add", "fd00:199:3::2/64", "dev", V_S, "nodad"],
  ["ip", "-n", NS_S, "addr", "add", "fd00:199:1::5/128", "dev", "lo", "nodad"],
  ["ip", "-n", NS_C, "-6", "route", "add", "fd00:199:1::/64", "via", "fd00:199::2"],
  ["ip", "-n", NS_P, "-6", "route", "add", "fd00:199:1::5/128", "via", "fd00:199:3::2"],
  ["ip", "-n", NS_S, "-6", "route", "add", "fd00:199::/64", "via", "fd00:199:3::1"],
  [
    ...["ip", "netns", "exec", NS_P],
    ..."ip6tables -t mangle -A PREROUTING -i".split(" "),
    V_PC,
    ..."-p udp -d fd00:199:1::5 --dport 53 -j TPROXY --on-port 12348 --tproxy-mark 1".split(" "),
  ],
  ["ip", "-n", NS_P, "-6", "rule", "add", "fwmark", "1", "lookup", "100"],
  ["ip", "-n", NS_P, "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100"],
]);

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
# Straight to the proxy's own port: not diverted, so nowhere to go (and no loop).
s.sendto(b"direct", ("10.199.0.2", 12347))
# Longer than readBufferSize (4096): dropped whole, never cut.
s.settimeout(1)
s.sendto(b"y" * 5000, ("10.199.1.5", 53))
try:
    d, a = s.recvfrom(65535)
    out.append("big answered %d" % len(d))
except socket.timeout:
    out.append("big dropped")
s.settimeout(5)
s.sendto(b"after", ("10.199.1.5", 53))
d, a = s.recvfrom(65535)
out.append("%s:%d %d %s" % (a[0], a[1], len(d), d.decode()))
print("\\n".join(out))
`;

/**
 * Builds the namespaces, starts the real server (`echo`) and Burrow (`listen`), runs `body` with
 * a function that runs a python client in the client namespace (its output), and cleans up.
 */
async function scenario(
  echo: string,
  listen: string,
  body: (burrow: BurrowChild, client: (script: string) => Promise<string>) => Promise<void>,
): Promise<void> {
  assert.equal(ns.up(), null);
  const server = new Deno.Command("ip", {
    args: [...ns.exec(NS_S).slice(1), "python3", "-c", echo],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const burrow = new BurrowChild(["-L", listen], { prefix: ns.exec(NS_P) });
  try {
    const r = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.match((await r.read()).value ?? "", /ready/);
    r.releaseLock();
    await burrow.servicePort("service-0");
    await body(burrow, async (script) => {
      const o = await new Deno.Command("timeout", {
        args: ["20", ...ns.exec(NS_C), "python3", "-c", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
      assert.ok(o.success, out);
      return out;
    });
  } finally {
    await burrow.stop();
    try {
      server.kill();
    } catch { /* gone */ }
    await server.status;
    await server.stdout.cancel().catch(() => {});
    ns.down();
  }
}

Deno.test({
  name:
    "redu: TPROXY-diverted datagrams reach their original destination, the answers come back from it, oversized and self-addressed ones go nowhere, idle sessions end after ttl",
  ignore: ns.why !== null,
  fn: () =>
    scenario(ECHO, "redu://:12347?ttl=5s", async (burrow, client) => {
      const out = await client(CLIENT);
      assert.deepEqual(out.trim().split("\n"), [
        "10.199.1.5:53 10 echo:0:one",
        "10.199.1.5:53 10 echo:0:two",
        "10.199.1.5:53 3007 echo:0:xxxxx",
        "10.199.1.5:53 10 echo:1:one",
        "10.199.1.5:53 10 echo:1:two",
        "10.199.1.5:53 3007 echo:1:xxxxx",
        "big dropped",
        "10.199.1.5:53 10 echo:after",
      ]);
      await burrow.waitFor((x) =>
        /datagrams longer than readBufferSize \(4096\) dropped/.test(x.msg)
      );
      assert.ok(
        !burrow.records.some((x) => /own listeners|<> 10\.199\.0\.2:12347/.test(x.msg)),
        `the datagram to the listener itself went nowhere (${burrow.tail()})`,
      );
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
    }),
});

const ECHO6 = ECHO.replace("AF_INET,", "AF_INET6,").replace('"10.199.1.5"', '"fd00:199:1::5"');

const CLIENT6 = `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(5)
for body in [b"one", b"two"]:
    s.sendto(body, ("fd00:199:1::5", 53))
    d, a = s.recvfrom(65535)
    print(a[0], a[1], d.decode())
`;

Deno.test({
  name:
    "redu over IPv6 ([::] listener): diverted datagrams reach their destination, answers come back from it",
  ignore: ns.why !== null,
  fn: () =>
    scenario(ECHO6, "redu://[::]:12348?ttl=5s", async (_burrow, client) => {
      assert.deepEqual((await client(CLIENT6)).trim().split("\n"), [
        "fd00:199:1::5 53 echo:one",
        "fd00:199:1::5 53 echo:two",
      ]);
    }),
});
