/**
 * The transparent proxy `red` (issue #19) inside two network namespaces the test creates: a client
 * namespace whose traffic to 10.199.1.5:80 crosses a veth pair into a proxy namespace, where
 * iptables REDIRECTs it to Burrow; Burrow reads the original destination from the kernel and
 * connects to the real server there. A conn that was not redirected is refused, not looped.
 */
import assert from "node:assert/strict";
import { BurrowChild } from "../_burrow.ts";
import { hasCommand } from "../_helpers.ts";

const id = `${Deno.pid % 10000}`;
const NS_C = `brw-c${id}`, NS_P = `brw-p${id}`;
const VETH_C = `bc${id}`, VETH_P = `bp${id}`;

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

/** netfilter's REDIRECT to Burrow's port (the NAT way: SO_ORIGINAL_DST). */
const REDIRECT_RULE: string[] = [
  "ip",
  "netns",
  "exec",
  NS_P,
  "iptables",
  "-t",
  "nat",
  "-A",
  "PREROUTING",
  "-i",
  VETH_P,
  "-p",
  "tcp",
  "-d",
  "10.199.1.5",
  "--dport",
  "80",
  "-j",
  "REDIRECT",
  "--to-ports",
  "12345",
];

/** TPROXY to Burrow's port (the transparent way: the conn keeps its destination). */
const TPROXY_RULES: string[][] = [
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
    VETH_P,
    "-p",
    "tcp",
    "-d",
    "10.199.1.5",
    "--dport",
    "80",
    "-j",
    "TPROXY",
    "--on-port",
    "12346",
    "--tproxy-mark",
    "1",
  ],
  ["ip", "-n", NS_P, "rule", "add", "fwmark", "1", "lookup", "100"],
  ["ip", "-n", NS_P, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"],
];

/** Builds the namespaces; a reason string when this machine cannot. */
function setUp(tproxy = false): string | null {
  if (Deno.build.os !== "linux") return "not Linux";
  for (const c of ["ip", "iptables", "curl", "python3"]) if (!hasCommand(c)) return `${c} missing`;
  const steps = [
    ["ip", "netns", "add", NS_C],
    ["ip", "netns", "add", NS_P],
    ["ip", "link", "add", VETH_C, "type", "veth", "peer", "name", VETH_P],
    ["ip", "link", "set", VETH_C, "netns", NS_C],
    ["ip", "link", "set", VETH_P, "netns", NS_P],
    ["ip", "-n", NS_C, "addr", "add", "10.199.0.1/24", "dev", VETH_C],
    ["ip", "-n", NS_P, "addr", "add", "10.199.0.2/24", "dev", VETH_P],
    ["ip", "-n", NS_C, "link", "set", VETH_C, "up"],
    ["ip", "-n", NS_P, "link", "set", VETH_P, "up"],
    ["ip", "-n", NS_C, "link", "set", "lo", "up"],
    ["ip", "-n", NS_P, "link", "set", "lo", "up"],
    ["ip", "-n", NS_P, "addr", "add", "10.199.1.5/32", "dev", "lo"],
    ["ip", "-n", NS_C, "route", "add", "10.199.1.0/24", "via", "10.199.0.2"],
    ...(tproxy ? TPROXY_RULES : [REDIRECT_RULE]),
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
  run(["ip", "netns", "del", NS_C]);
  run(["ip", "netns", "del", NS_P]);
}

const why = setUp();
if (why) console.warn(`red: cannot build network namespaces (${why}): skipping`);
else tearDown(); // built per test below

Deno.test({
  name:
    "red: REDIRECTed connections reach their original destination (SO_ORIGINAL_DST); a direct one is refused",
  ignore: why !== null,
  async fn() {
    assert.equal(setUp(), null);
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/tag.txt`, "the real server\n");
    const web = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        NS_P,
        "python3",
        "-m",
        "http.server",
        "80",
        "--bind",
        "10.199.1.5",
        "--directory",
        dir,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const burrow = new BurrowChild(["-L", "red://:12345"], {
      prefix: ["ip", "netns", "exec", NS_P],
    });
    try {
      await burrow.servicePort("service-0");
      // The real server answers inside its namespace before the client tries (local traffic
      // there is not redirected).
      for (let i = 0; i < 100; i++) {
        if (
          run([
            "ip",
            "netns",
            "exec",
            NS_P,
            "curl",
            "-s",
            "--max-time",
            "1",
            "http://10.199.1.5/tag.txt",
          ]).ok
        ) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const curl = (url: string) =>
        run([
          "ip",
          "netns",
          "exec",
          NS_C,
          "curl",
          "-s",
          "-S",
          "--max-time",
          "5",
          "--retry",
          "20",
          "--retry-connrefused",
          "--retry-delay",
          "0",
          url,
        ]);
      const r = curl("http://10.199.1.5/tag.txt");
      assert.ok(r.ok, r.out);
      assert.equal(r.out, "the real server\n");
      await burrow.waitFor((x) => x.kind === "handler" && /10\.199\.0\.1:\d+ <> /.test(x.msg));
      // Straight to the proxy's port: its "original destination" is itself.
      const direct = run([
        "ip",
        "netns",
        "exec",
        NS_C,
        "curl",
        "-s",
        "--max-time",
        "5",
        "http://10.199.0.2:12345/tag.txt",
      ]);
      assert.ok(!direct.ok, "a conn that was not redirected gets nothing");
      await burrow.waitFor((x) => /was not redirected: refused/.test(x.msg));
    } finally {
      await burrow.stop();
      try {
        web.kill();
      } catch { /* gone */ }
      await web.status;
      tearDown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "red with tproxy=true: TPROXY-diverted connections reach their original destination (the conn's own local address); a direct one is refused",
  ignore: why !== null,
  async fn() {
    assert.equal(setUp(true), null);
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/tag.txt`, "the real server\n");
    const web = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        NS_P,
        "python3",
        "-m",
        "http.server",
        "80",
        "--bind",
        "10.199.1.5",
        "--directory",
        dir,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const burrow = new BurrowChild(["-L", "red://:12346?tproxy=true"], {
      prefix: ["ip", "netns", "exec", NS_P],
    });
    try {
      await burrow.servicePort("service-0");
      // The real server answers inside its namespace before the client tries (local traffic
      // there is not redirected).
      for (let i = 0; i < 100; i++) {
        if (
          run([
            "ip",
            "netns",
            "exec",
            NS_P,
            "curl",
            "-s",
            "--max-time",
            "1",
            "http://10.199.1.5/tag.txt",
          ]).ok
        ) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const curl = (url: string) =>
        run([
          "ip",
          "netns",
          "exec",
          NS_C,
          "curl",
          "-s",
          "-S",
          "--max-time",
          "5",
          "--retry",
          "20",
          "--retry-connrefused",
          "--retry-delay",
          "0",
          url,
        ]);
      const r = curl("http://10.199.1.5/tag.txt");
      assert.ok(r.ok, r.out);
      assert.equal(r.out, "the real server\n");
      await burrow.waitFor((x) => x.kind === "handler" && /10\.199\.0\.1:\d+ <> /.test(x.msg));
      // Straight to the proxy's port: its "original destination" is itself.
      const direct = run([
        "ip",
        "netns",
        "exec",
        NS_C,
        "curl",
        "-s",
        "--max-time",
        "5",
        "http://10.199.0.2:12346/tag.txt",
      ]);
      assert.ok(!direct.ok, "a conn that was not redirected gets nothing");
      await burrow.waitFor((x) => /was not redirected: refused/.test(x.msg));
    } finally {
      await burrow.stop();
      try {
        web.kill();
      } catch { /* gone */ }
      await web.status;
      tearDown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
