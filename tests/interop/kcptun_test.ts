/** Our kcp transport against Debian's kcptun (kcptun-client / kcptun-server), both directions. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { readFull } from "../../src/core/conn.ts";
import {
  echoServer,
  hasCommand,
  portForChild,
  portOf,
  randomBytes,
  sha256,
  withTimeout,
} from "../_helpers.ts";

const HAVE = hasCommand("kcptun-client") && hasCommand("kcptun-server");
if (!HAVE) {
  console.warn("kcptun not found: skipping kcptun interop tests (CI installs Debian's kcptun)");
}

interface Combo {
  crypt: string;
  fec: boolean;
  comp: boolean;
  smux: number;
}

const COMBOS: Combo[] = [
  { crypt: "aes", fec: true, comp: true, smux: 1 },
  { crypt: "none", fec: false, comp: false, smux: 2 },
  { crypt: "salsa20", fec: true, comp: false, smux: 1 },
  { crypt: "aes-128", fec: false, comp: true, smux: 2 },
  { crypt: "xor", fec: true, comp: true, smux: 2 },
  { crypt: "blowfish", fec: false, comp: false, smux: 1 },
  { crypt: "tea", fec: true, comp: false, smux: 2 },
  { crypt: "twofish", fec: true, comp: true, smux: 1 },
  { crypt: "sm4", fec: false, comp: true, smux: 2 },
  { crypt: "cast5", fec: true, comp: false, smux: 2 },
  { crypt: "3des", fec: false, comp: true, smux: 1 },
  { crypt: "xtea", fec: true, comp: true, smux: 1 },
  { crypt: "aes-192", fec: true, comp: false, smux: 2 },
];

function kcptunFlags(c: Combo): string[] {
  return [
    "--key",
    "burrow-test",
    "--crypt",
    c.crypt,
    "--mode",
    "fast",
    "--smuxver",
    String(c.smux),
    ...(c.fec ? ["--ds", "10", "--ps", "3"] : ["--ds", "0", "--ps", "0"]),
    ...(c.comp ? [] : ["--nocomp"]),
    "--quiet",
  ];
}

function ourQuery(c: Combo): string {
  return `?kcp.key=burrow-test&kcp.crypt=${c.crypt}&kcp.smuxver=${c.smux}&kcp.datashard=${
    c.fec ? 10 : 0
  }&kcp.parityshard=${c.fec ? 3 : 0}&kcp.nocomp=${!c.comp}`;
}

async function roundTrip(port: number, size: number): Promise<void> {
  let c;
  for (let i = 0; i < 50 && !c; i++) {
    c = await dialTcp("127.0.0.1", port).catch(() => undefined);
    if (!c) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(c, "port never opened");
  try {
    const data = randomBytes(size);
    const got = new Uint8Array(size);
    await Promise.all([c.write(data), readFull(c, got)]);
    assert.equal(await sha256(got), await sha256(data));
  } finally {
    c.close();
  }
}

function name(c: Combo): string {
  return `${c.crypt}, FEC ${c.fec ? "10/3" : "off"}, ${
    c.comp ? "snappy" : "nocomp"
  }, smux v${c.smux}`;
}

for (const combo of COMBOS) {
  Deno.test({
    name: `interop: kcptun-client → our kcp listener (${name(combo)}), 3 conns × 512 KiB`,
    ignore: !HAVE,
    fn: async () => {
      const echo = echoServer();
      const rt = await Runtime.start(
        cliConfig([`kcp://127.0.0.1:0/127.0.0.1:${echo.port}${ourQuery(combo)}`], []),
      );
      const kp = portOf(rt);
      const lp = portForChild();
      const client = new Deno.Command("kcptun-client", {
        args: ["-l", `127.0.0.1:${lp}`, "-r", `127.0.0.1:${kp}`, ...kcptunFlags(combo)],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await withTimeout(
          Promise.all([1, 2, 3].map(() => roundTrip(lp, 512 * 1024))),
          30_000,
          "kcptun-client round trips",
        );
      } finally {
        client.kill("SIGTERM");
        await client.status;
        await rt.close();
        await echo.close();
      }
    },
  });

  Deno.test({
    name: `interop: our kcp dialer → kcptun-server (${name(combo)}), 3 conns × 512 KiB`,
    ignore: !HAVE,
    fn: async () => {
      const echo = echoServer();
      const kp = portForChild(true);
      const server = new Deno.Command("kcptun-server", {
        args: ["-l", `127.0.0.1:${kp}`, "-t", `127.0.0.1:${echo.port}`, ...kcptunFlags(combo)],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await new Promise((r) => setTimeout(r, 300));
      const rt = await Runtime.start(
        cliConfig(["tcp://127.0.0.1:0/127.0.0.1:1"], [
          `forward+kcp://127.0.0.1:${kp}${ourQuery(combo)}`,
        ]),
      );
      try {
        const port = rt.services[0]!.listener.addr.port;
        await withTimeout(
          Promise.all([1, 2, 3].map(() => roundTrip(port, 512 * 1024))),
          30_000,
          "round trips via kcptun-server",
        );
      } finally {
        await rt.close();
        server.kill("SIGTERM");
        await server.status;
        await echo.close();
      }
    },
  });
}
