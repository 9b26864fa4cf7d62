/**
 * The transparent proxy `red` (issue #19) inside two network namespaces the test creates: a client
 * namespace whose traffic to 10.199.1.5:80 crosses a veth pair into a proxy namespace, where
 * iptables sends it to Burrow — by REDIRECT (NAT; Burrow reads the original destination from the
 * kernel) or by TPROXY (`tproxy=true`; the conn keeps its destination). Burrow connects to the real
 * server there. A conn that was not diverted is refused, not looped.
 */
import assert from "node:assert/strict";
import { BurrowChild } from "../_burrow.ts";
import { Namespaces, nsSteps, run, tproxySteps, vethSteps } from "../_netns.ts";

const id = `${Deno.pid % 10000}`;
const NS_C = `brw-c${id}`, NS_P = `brw-p${id}`;
const VETH_C = `bc${id}`, VETH_P = `bp${id}`;

/** netfilter's REDIRECT to Burrow's port (the NAT way: SO_ORIGINAL_DST). */
const REDIRECT_RULE = [
  ...["ip", "netns", "exec", NS_P],
  ..."iptables -t nat -A PREROUTING -i".split(" "),
  VETH_P,
  ..."-p tcp -d 10.199.1.5 --dport 80 -j REDIRECT --to-ports 12345".split(" "),
];

const ns = new Namespaces("red", [NS_C, NS_P], ["iptables", "curl", "python3"], (variant) => [
  ...nsSteps(NS_C, NS_P),
  ...vethSteps(
    { ns: NS_C, dev: VETH_C, addr: "10.199.0.1/24" },
    { ns: NS_P, dev: VETH_P, addr: "10.199.0.2/24" },
  ),
  ["ip", "-n", NS_P, "addr", "add", "10.199.1.5/32", "dev", "lo"],
  ["ip", "-n", NS_C, "route", "add", "10.199.1.0/24", "via", "10.199.0.2"],
  ...(variant === "tproxy"
    ? tproxySteps(NS_P, VETH_P, "tcp", "10.199.1.5", 80, 12346)
    : [REDIRECT_RULE]),
]);

/** The client's request reaches the real server through Burrow; one to Burrow's port is refused. */
async function scenario(mode: "redirect" | "tproxy"): Promise<void> {
  assert.equal(ns.up(mode), null);
  const port = mode === "tproxy" ? 12346 : 12345;
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/tag.txt`, "the real server\n");
  const web = new Deno.Command("ip", {
    args: [
      ...ns.exec(NS_P).slice(1),
      ..."python3 -m http.server 80 --bind 10.199.1.5 --directory".split(" "),
      dir,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const burrow = new BurrowChild(
    ["-L", mode === "tproxy" ? `red://:${port}?tproxy=true` : `red://:${port}`],
    { prefix: ns.exec(NS_P) },
  );
  try {
    await burrow.servicePort("service-0");
    // The real server answers inside its namespace before the client tries (local traffic there
    // is not diverted).
    for (let i = 0; i < 100; i++) {
      const probe = [
        ...ns.exec(NS_P),
        "curl",
        "-s",
        "--max-time",
        "1",
        "http://10.199.1.5/tag.txt",
      ];
      if (run(probe).ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const curl = (url: string, retry: boolean) =>
      run([
        ...ns.exec(NS_C),
        ..."curl -s -S --max-time 5".split(" "),
        ...(retry ? "--retry 20 --retry-connrefused --retry-delay 0".split(" ") : []),
        url,
      ]);
    const r = curl("http://10.199.1.5/tag.txt", true);
    assert.ok(r.ok, r.out);
    assert.equal(r.out, "the real server\n");
    await burrow.waitFor((x) => x.kind === "handler" && /10\.199\.0\.1:\d+ <> /.test(x.msg));
    // Straight to the proxy's port: its "original destination" is itself.
    const direct = curl(`http://10.199.0.2:${port}/tag.txt`, false);
    assert.ok(!direct.ok, "a conn that was not diverted gets nothing");
    await burrow.waitFor((x) => /was not redirected: refused/.test(x.msg));
  } finally {
    await burrow.stop();
    try {
      web.kill();
    } catch { /* gone */ }
    await web.status;
    ns.down();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "red: REDIRECTed connections reach their original destination (SO_ORIGINAL_DST); a direct one is refused",
  ignore: ns.why !== null,
  fn: () => scenario("redirect"),
});

Deno.test({
  name:
    "red with tproxy=true: TPROXY-diverted connections reach their original destination (the conn's own local address); a direct one is refused",
  ignore: ns.why !== null,
  fn: () => scenario("tproxy"),
});
