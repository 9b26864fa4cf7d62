/**
 * KCP: per-cipher packet crypto speed (encrypt and decrypt of 1350-byte datagrams, FEC encode),
 * end-to-end throughput (Burrow client and server as two processes) per cipher with and without
 * FEC, and kcptun measured in the same run as the yardstick, in every pairing with Burrow.
 */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, pushThrough, startBurrow } from "./proc.ts";
import { createCrypt, deriveKey } from "../../src/kcp/crypt/mod.ts";
import { FecEncoder } from "../../src/kcp/fec.ts";

function cryptRows(): BenchRow[] {
  const key = deriveKey("it's a secrect");
  const pkt = crypto.getRandomValues(new Uint8Array(1350));
  const rows: BenchRow[] = [];
  for (
    const name of [
      "aes",
      "aes-128",
      "aes-192",
      "salsa20",
      "blowfish",
      "twofish",
      "cast5",
      "sm4",
      "xor",
      "tea",
      "xtea",
      "3des",
    ]
  ) {
    const c = createCrypt(name, key);
    const n = name === "3des" ? 1000 : 5000;
    const speed = (op: (b: Uint8Array) => void) => {
      for (let i = 0; i < n / 2; i++) op(pkt); // warm-up (lets WebAssembly tier up too)
      const t0 = performance.now();
      for (let i = 0; i < n; i++) op(pkt);
      return (n * 1350) / 1e6 / ((performance.now() - t0) / 1000);
    };
    const e = speed((b) => c.encrypt(b));
    const d = speed((b) => c.decrypt(b));
    rows.push({
      name: `kcp crypt ${name} (1350 B packets)`,
      mbps: Math.min(e, d),
      note: `encrypt ${e.toFixed(0)} / decrypt ${d.toFixed(0)} MB/s`,
    });
  }
  const enc = new FecEncoder(10, 3);
  const t0 = performance.now();
  for (let i = 0; i < 10000; i++) enc.encode(pkt.subarray(0, 1300));
  rows.push({
    name: "kcp FEC 10/3 encode",
    mbps: (10000 * 1300) / 1e6 / ((performance.now() - t0) / 1000),
  });
  return rows;
}

const TOTAL = 64 * 1024 * 1024;

export default async function (): Promise<BenchRow[]> {
  const rows = cryptRows();
  for (
    const [crypt, fec] of [
      ["aes", true],
      ["aes", false],
      ["aes-128", true],
      ["salsa20", true],
      ["twofish", true],
      ["cast5", true],
      ["xor", true],
      ["none", false],
    ] as const
  ) {
    const sink = countingSink();
    const kp = freePort();
    const cp = freePort();
    const q = `?kcp.crypt=${crypt}&kcp.datashard=${fec ? 10 : 0}&kcp.parityshard=${fec ? 3 : 0}`;
    const srv = await startBurrow(["-L", `kcp://127.0.0.1:${kp}/127.0.0.1:${sink.port}${q}`], 0);
    const cli = await startBurrow([
      "-L",
      `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`,
      "-F",
      `forward+kcp://127.0.0.1:${kp}${q}`,
    ], cp);
    try {
      rows.push({
        name: `kcp ${crypt}${fec ? " + FEC 10/3" : ""} (2 processes)`,
        mbps: await pushThrough(cp, TOTAL, sink.next()),
      });
    } finally {
      await cli.stop();
      await srv.stop();
      sink.close();
    }
  }
  rows.push(...await kcptunRows());
  return rows;
}

/** The yardstick, measured in the same run: kcptun → kcptun, and Burrow's client → kcptun-server. */
async function kcptunRows(): Promise<BenchRow[]> {
  const has = (c: string) =>
    new Deno.Command("sh", { args: ["-c", `command -v ${c}`], stdout: "null" }).outputSync()
      .success;
  if (!has("kcptun-client") || !has("kcptun-server")) {
    return [{ name: "kcptun yardstick", note: "kcptun not installed" }];
  }
  const flags = [
    "--key",
    "k",
    "--crypt",
    "aes",
    "--mode",
    "fast",
    "--quiet",
    "--sndwnd",
    "1024",
    "--rcvwnd",
    "1024",
  ];
  const q = "?kcp.key=k&kcp.crypt=aes";
  const rows: BenchRow[] = [];
  const spawn = (cmd: string, args: string[]) =>
    new Deno.Command(cmd, { args: [...args, ...flags], stdout: "null", stderr: "null" }).spawn();
  type Ends = { client: "kcptun" | "burrow"; server: "kcptun" | "burrow"; zeros?: boolean };
  const cases: [string, Ends][] = [
    ["kcptun → kcptun (aes + FEC 10/3)", { client: "kcptun", server: "kcptun" }],
    ["burrow → kcptun-server (aes + FEC 10/3)", { client: "burrow", server: "kcptun" }],
    ["kcptun-client → burrow (aes + FEC 10/3)", { client: "kcptun", server: "burrow" }],
    // Snappy's best case: the regime where kcptun reaches its often-quoted numbers.
    ["kcptun → kcptun, zeros (aes + FEC 10/3)", {
      client: "kcptun",
      server: "kcptun",
      zeros: true,
    }],
    ["burrow → burrow, zeros (aes + FEC 10/3)", {
      client: "burrow",
      server: "burrow",
      zeros: true,
    }],
  ];
  for (const [name, ends] of cases) {
    const sink = countingSink();
    const kp = freePort();
    const lp = freePort();
    const stops: (() => Promise<void>)[] = [];
    const child = (cmd: string, args: string[]) => {
      const c = spawn(cmd, args);
      stops.push(async () => {
        c.kill();
        await c.status;
      });
    };
    if (ends.server === "kcptun") {
      child("kcptun-server", ["-l", `127.0.0.1:${kp}`, "-t", `127.0.0.1:${sink.port}`]);
    } else {
      const b = await startBurrow(["-L", `kcp://127.0.0.1:${kp}/127.0.0.1:${sink.port}${q}`], 0);
      stops.push(b.stop);
    }
    if (ends.client === "kcptun") {
      child("kcptun-client", ["-l", `127.0.0.1:${lp}`, "-r", `127.0.0.1:${kp}`]);
      await new Promise((r) => setTimeout(r, 500));
    } else {
      const b = await startBurrow([
        "-L",
        `tcp://127.0.0.1:${lp}/127.0.0.1:1`,
        "-F",
        `forward+kcp://127.0.0.1:${kp}${q}`,
      ], lp);
      stops.push(b.stop);
    }
    try {
      rows.push({
        name,
        mbps: await pushThrough(lp, TOTAL, sink.next(), ends.zeros),
        note: "kcptun windows 1024",
      });
    } finally {
      for (const stop of stops.reverse()) await stop();
      sink.close();
    }
  }
  return rows;
}
