/**
 * Every proxy and transport listener, fed mutated openings over real sockets (fixed seeds):
 * each bad connection ends within a deadline (a refusal or a close, never a hang), the process
 * keeps serving, and a good client right after gets its bytes through.
 */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { silentLogger } from "../../src/core/log.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { encodeSocksAddr } from "../../src/protocol/socks_addr.ts";
import { addrFeature, CMD_CONNECT, encodeMessage } from "../../src/proxy/relay/codec.ts";
import { CMD_PSH, CMD_SYN, encodeFrame as smuxFrame } from "../../src/mux/smux/frame.ts";
import { encodeJoin, joinMac } from "../../src/bundle/wire.ts";
import { echoServer, readAll, withTimeout } from "../_helpers.ts";
import { mutate, prng, ROUNDS } from "./_fuzz.ts";

const enc = new TextEncoder();

interface Case {
  /** The service (`-L`) and how a good client reaches it (`-F`), `PORT` replaced. */
  serve: string;
  node: string;
  seeds: Uint8Array[];
}

const target = encodeSocksAddr("127.0.0.1", 9);
const id = new Uint8Array(16).fill(5);
const CASES: Case[] = [
  {
    serve: "http://127.0.0.1:0",
    node: "http://127.0.0.1:PORT",
    seeds: [
      enc.encode("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"),
      enc.encode(
        "GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
      ),
    ],
  },
  {
    serve: "socks5://127.0.0.1:0",
    node: "socks5://127.0.0.1:PORT",
    seeds: [new Uint8Array([5, 1, 0, 5, 1, 0, ...target])],
  },
  {
    serve: "socks4://127.0.0.1:0",
    node: "socks4://127.0.0.1:PORT",
    seeds: [new Uint8Array([4, 1, 0, 9, 127, 0, 0, 1, 0x75, 0])],
  },
  {
    serve: "relay://127.0.0.1:0",
    node: "relay://127.0.0.1:PORT",
    seeds: [encodeMessage(CMD_CONNECT, [addrFeature("127.0.0.1:9")])],
  },
  {
    serve: "ss://aes-128-gcm:pw@127.0.0.1:0",
    node: "ss://aes-128-gcm:pw@127.0.0.1:PORT",
    seeds: [new Uint8Array(64).map((_, i) => i * 7)],
  },
  {
    serve: "auto://127.0.0.1:0",
    node: "socks5://127.0.0.1:PORT",
    seeds: [new Uint8Array([5, 1, 0]), enc.encode("CONNECT a:1 HTTP/1.1\r\n\r\n")],
  },
  {
    // Binds granted to hostile openings: MUXBIND and relay BIND seeds.
    serve: "socks5://127.0.0.1:0?bind=true",
    node: "socks5://127.0.0.1:PORT",
    seeds: [new Uint8Array([5, 1, 0, 5, 0xf2, 0, 1, 127, 0, 0, 1, 0, 0])],
  },
  {
    serve: "relay://127.0.0.1:0?bind=true",
    node: "relay://127.0.0.1:PORT",
    seeds: [encodeMessage(2, [addrFeature("127.0.0.1:0")])],
  },
  {
    serve: "relay+ws://127.0.0.1:0",
    node: "relay+ws://127.0.0.1:PORT",
    seeds: [
      enc.encode(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ),
    ],
  },
  {
    serve: "relay+mtcp://127.0.0.1:0",
    node: "relay+mtcp://127.0.0.1:PORT",
    seeds: [
      new Uint8Array([
        ...smuxFrame(2, CMD_SYN, 3),
        ...smuxFrame(2, CMD_PSH, 3, encodeMessage(CMD_CONNECT, [addrFeature("127.0.0.1:9")])),
      ]),
    ],
  },
  {
    serve: "socks5+mtmux://127.0.0.1:0?secret=s&tunnels=2",
    node: "socks5+mtmux://127.0.0.1:PORT?secret=s&tunnels=2",
    seeds: [
      encodeJoin({
        version: 1,
        flags: 0,
        linkIndex: 0,
        linkCount: 2,
        bundleId: id,
        mac: joinMac("s", id, 0),
      }),
    ],
  },
];

for (const [k, c] of CASES.entries()) {
  Deno.test(`fuzz listener ${c.serve.split(":")[0]}: bad openings end, a good client still gets through`, async () => {
    const echo = echoServer();
    const srv = await Runtime.start(cliConfig([c.serve], []), { log: silentLogger });
    const port = srv.services[0]!.listener.addr.port;
    try {
      const rnd = prng(100 + k);
      const n = 30 * ROUNDS;
      // A few at a time: each must end by itself (refusal, close or handshake deadline).
      for (let i = 0; i < n; i += 10) {
        await Promise.all(Array.from({ length: Math.min(10, n - i) }, async (_, j) => {
          const bad = mutate(c.seeds[(i + j) % c.seeds.length]!, rnd);
          const conn = await dialTcp("127.0.0.1", port);
          try {
            await conn.write(bad).catch(() => {});
            await conn.closeWrite().catch(() => {});
            await withTimeout(readAll(conn).catch(() => null), 20_000, `bad opening ${i + j}`);
          } finally {
            conn.close();
          }
        }));
      }
      const cli = await Runtime.start(
        cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [
          c.node.replace("PORT", String(port)),
        ]),
        { log: silentLogger },
      );
      try {
        const g = await dialTcp("127.0.0.1", cli.services[0]!.listener.addr.port);
        await g.write(enc.encode("still serving"));
        await g.closeWrite();
        assert.equal(
          new TextDecoder().decode(await withTimeout(readAll(g), 10_000, "good client")),
          "still serving",
        );
        g.close();
      } finally {
        await cli.close();
      }
    } finally {
      await srv.close();
      await echo.close();
    }
  });
}
