/** Pattern semantics of admission and bypass, IP parsing, sizes. */
import assert from "node:assert/strict";
import { AddrMatcher, IpMatcher } from "../../src/access/matchers.ts";
import { Bypass, BypassGroup } from "../../src/access/bypass.ts";
import { Admission } from "../../src/access/admission.ts";
import { parseBytes, TokenBucket } from "../../src/access/limiter.ts";
import { Cidr, formatIp, parseIp } from "../../src/core/ip.ts";
import { silentLogger } from "../../src/core/log.ts";

Deno.test("IP parsing: v4, v6, mapped v4, brackets; garbage refused", () => {
  assert.deepEqual([...parseIp("10.1.2.3")!], [10, 1, 2, 3]);
  assert.deepEqual([...parseIp("::ffff:10.1.2.3")!], [10, 1, 2, 3]);
  assert.equal(formatIp(parseIp("[2001:db8::1]")!), "2001:db8::1");
  assert.equal(formatIp(parseIp("fe80::1:0:0:2")!), "fe80::1:0:0:2");
  for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "::1::2", "x", "1:2:3:4:5:6:7:8:9"]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
  assert.ok(Cidr.parse("10.0.0.0/8")!.contains(parseIp("10.9.9.9")!));
  assert.ok(!Cidr.parse("10.0.0.0/8")!.contains(parseIp("11.0.0.1")!));
  assert.ok(Cidr.parse("fd00::/8")!.contains(parseIp("fd12::1")!));
  assert.equal(Cidr.parse("10.0.0.0/33"), undefined);
});

Deno.test("bypass patterns: names, .suffix, wildcards, ports, ranges, CIDRs (GOST rules)", () => {
  const m = new AddrMatcher([
    "example.com",
    ".example.org",
    "*.wild.test",
    "ports.test:443",
    "range.test:8000-8010",
    "10.0.0.0/8",
    "192.168.1.10-192.168.1.20",
    "172.16.0.1",
  ]);
  const yes = [
    "example.com:80",
    "EXAMPLE.com:1",
    "example.com",
    "example.org:1",
    "a.b.example.org:2",
    "x.wild.test:5",
    "x.y.wild.test:5",
    "ports.test:443",
    "range.test:8005",
    "10.2.3.4:99",
    "192.168.1.15:1",
    "172.16.0.1:22",
  ];
  const no = [
    "www.example.com:80",
    "wild.test:5",
    "ports.test:80",
    "ports.test",
    "range.test:8011",
    "11.0.0.1:1",
    "192.168.1.21:1",
    "notexample.org:1",
    "",
  ];
  for (const a of yes) assert.ok(m.match(a), a);
  for (const a of no) assert.ok(!m.match(a), a);
});

Deno.test("bypass whitelist, network and groups", () => {
  const black = new Bypass(false);
  black.load(["*.bad.test"]);
  const white = new Bypass(true);
  white.load(["good.test"]);
  assert.equal(black.contains("tcp", "x.bad.test:80"), true);
  assert.equal(black.contains("tcp", "ok.test:80"), false);
  assert.equal(white.contains("tcp", "good.test:80"), false);
  assert.equal(white.contains("tcp", "other.test:80"), true);
  const udpOnly = new Bypass(false, "udp");
  udpOnly.load(["x.test"]);
  assert.equal(udpOnly.contains("tcp", "x.test:53"), false);
  assert.equal(udpOnly.contains("udp", "x.test:53"), true);
  const g = new BypassGroup([black, white]);
  assert.equal(g.contains("tcp", "other.test:1"), true); // the whitelist refuses it
  assert.equal(g.contains("tcp", "good.test:1"), false);
  // An empty reload keeps the old patterns (GOST).
  black.load([]);
  assert.equal(black.contains("tcp", "x.bad.test:80"), true);
});

Deno.test("admission: IPs and CIDRs, port ignored, mapped v4 matches v4", async () => {
  const a = new Admission(true, silentLogger);
  await a.load(["127.0.0.1", "10.0.0.0/8"]);
  assert.equal(a.admit("127.0.0.1:5555"), true);
  assert.equal(a.admit("[::ffff:10.1.1.1]:1"), true);
  assert.equal(a.admit("127.0.0.2:5555"), false);
  const b = new Admission(false, silentLogger);
  await b.load(["127.0.0.2"]);
  assert.equal(b.admit("127.0.0.2:1"), false);
  assert.equal(b.admit("127.0.0.1:1"), true);
  const ip = new IpMatcher();
  assert.equal(ip.add("not-an-ip"), false);
});

Deno.test("a 300,000-line admission file loads and is enforced (spreading its lines as call arguments overflowed the stack)", async () => {
  const { LineSource } = await import("../../src/access/source.ts");
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/allow.txt`;
    const lines = Array.from(
      { length: 300_000 },
      (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
    );
    await Deno.writeTextFile(file, lines.join("\n") + "\n127.0.0.1 # us\n");
    const a = new Admission(true, silentLogger);
    let count = 0;
    const src = await LineSource.start(
      { file, path: "admissions[0]", log: silentLogger },
      (items) => {
        count = items.length;
        return a.load(items);
      },
    );
    src.close();
    assert.equal(count, 300_001);
    assert.equal(a.admit("10.4.147.223:1"), true, "the last of the file's addresses");
    assert.equal(a.admit("127.0.0.1:1"), true);
    assert.equal(a.admit("10.5.0.0:1"), false, "past the list");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sizes are base 2 (GOST); bad sizes are errors, not 'unlimited'", () => {
  assert.equal(parseBytes("1KB", "x"), 1024);
  assert.equal(parseBytes("1MB", "x"), 1 << 20);
  assert.equal(parseBytes("1.5MB", "x"), 1.5 * (1 << 20));
  assert.equal(parseBytes("1mb", "x"), 1 << 20);
  assert.equal(parseBytes("512", "x"), 512);
  assert.throws(() => parseBytes("fast", "limits[0]"), /limits\[0\]: expected a size/);
  assert.throws(() => parseBytes("1XB", "limits[0]"), /expected a size/);
});

Deno.test("token bucket: starts full, then charges debt at the rate", () => {
  const b = new TokenBucket(1000, 1000);
  assert.equal(b.reserve(1000), 0);
  const wait = b.reserve(500);
  assert.ok(wait > 400 && wait <= 500, String(wait));
});
