/**
 * Every wire and config parser, fed mutations of valid inputs (fixed seeds): it returns or throws
 * one of our errors, never crashes or hangs. Stream parsers read from an in-memory pipe that ends
 * after the input, so a parser waiting for more bytes sees EOF rather than hanging.
 */
import { fuzz } from "./_fuzz.ts";
import { parseRequestHead, parseResponseHead, requestFraming } from "../../src/protocol/http1.ts";
import { encodeSocksAddr, parseSocksAddr, readSocksAddr } from "../../src/protocol/socks_addr.ts";
import { encodeUdpFrame, readUdpFrame } from "../../src/protocol/udp_frame.ts";
import {
  addrFeature,
  CMD_CONNECT,
  decodeRequest,
  encodeMessage,
  readMessage,
  userAuthFeature,
} from "../../src/proxy/relay/codec.ts";
import { BufReader } from "../../src/core/bufio.ts";
import { pipe } from "../../src/core/pipe.ts";
import type { Conn } from "../../src/core/conn.ts";
import { compressBlock, decompressBlock, encodeChunk, SnappyConn } from "../../src/kcp/snappy.ts";
import { Kcp } from "../../src/kcp/arq.ts";
import { Envelope } from "../../src/kcp/envelope.ts";
import { createCrypt, deriveKey } from "../../src/kcp/crypt/mod.ts";
import { FecDecoder, FecEncoder } from "../../src/kcp/fec.ts";
import { encodeJoin, joinMac, readJoin } from "../../src/bundle/wire.ts";
import { encodeFrame as wsFrame, OP_BINARY, OP_PING } from "../../src/transport/ws/frame.ts";
import { WsConn } from "../../src/transport/ws/conn.ts";
import { serverUpgrade } from "../../src/transport/ws/handshake.ts";
import { CMD_PSH, CMD_SYN, encodeFrame as smuxFrame } from "../../src/mux/smux/frame.ts";
import { serverSession } from "../../src/mux/smux/mod.ts";
import { SsConn } from "../../src/proxy/ss/conn.ts";
import { SsCipher } from "../../src/protocol/ss_aead.ts";
import { parseNodeUrl, parseServiceUrl } from "../../src/config/cli.ts";
import { parseYaml } from "../../src/config/yaml.ts";
import { normalizeConfig } from "../../src/config/model.ts";
import {
  clientHelloServerName,
  restoreServerName,
  rewriteServerName,
  tlsRecordLength,
} from "../../src/protocol/tls_hello.ts";
import {
  decodeServerName,
  encodeServerName,
  EXT_HIDDEN_NAME,
} from "../../src/protocol/server_name.ts";
import { Ingress } from "../../src/proxy/tunnel/ingress.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A conn that yields `bytes` and then EOF. */
async function source(bytes: Uint8Array): Promise<Conn> {
  const [a, b] = pipe({ capacity: bytes.length + 1 });
  if (bytes.length) await a.write(bytes);
  await a.closeWrite();
  return b;
}

/** Reads `c` to its end (or its first error). */
async function drain(c: Conn): Promise<void> {
  const buf = new Uint8Array(65536);
  try {
    while (await c.read(buf) !== null) { /* discard */ }
  } finally {
    c.close();
  }
}

Deno.test("fuzz: HTTP/1 heads", async () => {
  const seeds = [
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
    "GET http://a/b?c HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n",
  ].map((s) => enc.encode(s));
  await fuzz("http head", seeds, 400, (b) => {
    const text = dec.decode(b).replace(/\r\n\r\n[\s\S]*$/, "");
    const r = parseRequestHead(text);
    requestFraming(r.headers);
  });
  await fuzz("http response head", seeds, 200, (b) => parseResponseHead(dec.decode(b)));
});

Deno.test("fuzz: SOCKS addresses and UDP-over-TCP frames", async () => {
  const seeds = [
    encodeSocksAddr("127.0.0.1", 80),
    encodeSocksAddr("example.com", 443),
    encodeSocksAddr("::1", 53),
    encodeUdpFrame("example.com:53", new Uint8Array(20)),
  ];
  await fuzz("socks addr", seeds, 300, (b) => parseSocksAddr(b, 0));
  await fuzz("socks addr stream", seeds, 100, async (b) => {
    await readSocksAddr(new BufReader(await source(b)));
  });
  await fuzz("udp frame", seeds, 200, async (b) => {
    const br = new BufReader(await source(b));
    while (await readUdpFrame(br) !== null) { /* next */ }
  });
});

Deno.test("fuzz: relay messages", async () => {
  const seeds = [
    encodeMessage(CMD_CONNECT, [userAuthFeature("u", "p"), addrFeature("example.com:80")]),
    encodeMessage(CMD_CONNECT, [addrFeature("10.0.0.1:22")]),
  ];
  await fuzz("relay", seeds, 400, async (b) => {
    decodeRequest(await readMessage(new BufReader(await source(b))));
  });
});

Deno.test("fuzz: snappy blocks and framed streams", async () => {
  const data = enc.encode("hello hello hello hello, snappy ".repeat(40));
  const seeds = [compressBlock(data), encodeChunk(data), encodeChunk(new Uint8Array(100))];
  await fuzz("snappy block", seeds, 400, (b) => decompressBlock(b));
  await fuzz("snappy stream", seeds, 150, async (b) => {
    await drain(new SnappyConn(await source(b)));
  });
});

Deno.test("fuzz: KCP datagrams (envelope, FEC, ARQ)", async () => {
  const key = deriveKey("k");
  const kcp = new Kcp(1, () => {}, () => 0);
  const out: Uint8Array[] = [];
  const sender = new Kcp(1, (d) => out.push(d.slice()), () => 0);
  sender.send(new Uint8Array(3000));
  sender.flush(false);
  const fecEnc = new FecEncoder(3, 2);
  const seeds = [...out, ...out.flatMap((d) => fecEnc.encode(d))];
  const fecDec = new FecDecoder(3, 2);
  await fuzz("kcp input", seeds, 300, (b) => void kcp.input(b));
  await fuzz("fec decode", seeds, 300, (b) => {
    for (const r of fecDec.decode(b)) kcp.input(r, false);
  });
  const env = new Envelope(createCrypt("aes", key), 3, 2);
  await fuzz("kcp envelope", seeds, 300, (b) => void env.open(b));
});

Deno.test("fuzz: mtmux joins", async () => {
  const id = new Uint8Array(16).fill(3);
  const seeds = [
    encodeJoin({
      version: 1,
      flags: 0,
      linkIndex: 1,
      linkCount: 4,
      bundleId: id,
      mac: joinMac("k", id, 1),
    }),
  ];
  await fuzz("mtmux join", seeds, 300, async (b) => void await readJoin(await source(b)));
});

Deno.test("fuzz: WebSocket handshakes and frames", async () => {
  const up = enc.encode(
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  await fuzz("ws handshake", [up], 300, async (b) => {
    const c = await source(b);
    await serverUpgrade(c, "/ws").finally(() => c.close());
  });
  const m = new Uint8Array([1, 2, 3, 4]);
  const frames = [
    wsFrame(OP_BINARY, new Uint8Array(300), m),
    wsFrame(OP_PING, new Uint8Array(5), m),
    wsFrame(OP_BINARY, new Uint8Array(70000), m),
  ];
  await fuzz("ws frames", frames, 200, async (b) => {
    const c = await source(b);
    await drain(new WsConn(c, new BufReader(c), { client: false }));
  });
});

Deno.test("fuzz: smux frames (the session fails cleanly, never throws out of its loops)", async () => {
  const seeds = [1, 2].flatMap((v) => [
    smuxFrame(v, CMD_SYN, 3),
    new Uint8Array([...smuxFrame(v, CMD_SYN, 3), ...smuxFrame(v, CMD_PSH, 3, new Uint8Array(40))]),
  ]);
  await fuzz("smux", seeds, 150, async (b) => {
    const s = serverSession(await source(b), {
      version: b[0] === 2 ? 2 : 1,
      keepAliveDisabled: true,
    });
    for (;;) {
      const st = await s.acceptStream();
      if (!st) break;
      await drain(st);
    }
    await s.closed;
  });
});

Deno.test("fuzz: shadowsocks AEAD chunks", async () => {
  const cipher = new SsCipher("aes-128-gcm", "pw");
  const [a, b] = pipe({ capacity: 1 << 20 });
  const w = new SsConn(a, cipher);
  await w.write(new Uint8Array(100));
  await w.write(new Uint8Array(20000));
  a.close();
  const buf = new Uint8Array(1 << 20);
  const n = await b.read(buf) ?? 0;
  const seeds = [buf.slice(0, n)];
  await fuzz("ss", seeds, 150, async (x) => void await drain(new SsConn(await source(x), cipher)));
});

Deno.test("fuzz: CLI URLs and YAML configs", async () => {
  const urls = [
    "socks5+mtcp://u:p@127.0.0.1:1080?bypass=~10.0.0.0/8&limiter.in=1MB&ttl=5s",
    "tcp://:8000-8002/10.0.0.1:22,10.0.0.2:22?strategy=hash&maxFails=3",
    "relay+mwss://[::1]:443/path?host=x&header=a:b",
  ].map((s) => enc.encode(s));
  await fuzz("cli service url", urls, 300, (b) => parseServiceUrl(dec.decode(b), 0));
  await fuzz("cli node url", urls, 300, (b) => parseNodeUrl(dec.decode(b), 0));
  const yaml = enc.encode(`services:
- name: s
  addr: :8080
  handler: {type: http, auth: {username: u, password: p}}
  listener: {type: tcp, metadata: {keepalive: true}}
  admission: a
admissions:
- name: a
  whitelist: true
  matchers: [127.0.0.1, 10.0.0.0/8]
chains:
- name: c
  hops:
  - name: h
    selector: {strategy: fifo, maxFails: 2, failTimeout: 10s}
    nodes: [{name: n, addr: "1.2.3.4:1080", connector: {type: socks5}, dialer: {type: tcp}}]
`);
  await fuzz("yaml config", [yaml], 300, (b) => {
    let raw: unknown;
    try {
      raw = parseYaml(dec.decode(b));
    } catch {
      return; // a YAML syntax error: reported by the loader as a ConfigError
    }
    normalizeConfig(raw);
  });
});

/** A minimal TLS 1.3-style ClientHello record carrying `sni`. */
function clientHello(sni: string): Uint8Array {
  const name = enc.encode(sni);
  const sniExt = [0, 0, 0, name.length + 5, 0, name.length + 3, 0, 0, name.length, ...name];
  const body = [
    3,
    3,
    ...new Array(32).fill(7),
    0,
    0,
    2,
    0x13,
    0x01,
    1,
    0,
    (sniExt.length >> 8) & 0xff,
    sniExt.length & 0xff,
    ...sniExt,
  ];
  const hs = [1, 0, (body.length >> 8) & 0xff, body.length & 0xff, ...body];
  return new Uint8Array([0x16, 3, 1, (hs.length >> 8) & 0xff, hs.length & 0xff, ...hs]);
}

Deno.test("fuzz: TLS ClientHello SNI, tunnel ingress rules", async () => {
  const hello = clientHello("a.example.com");
  const len = tlsRecordLength(hello);
  if (len !== hello.length || clientHelloServerName(hello) !== "a.example.com") {
    throw new Error("the seed ClientHello does not parse");
  }
  const fronted = rewriteServerName(hello, "front.example", EXT_HIDDEN_NAME, encodeServerName)!;
  await fuzz("client hello", [hello, clientHello("x"), fronted], 1000, (b) => {
    tlsRecordLength(b);
    clientHelloServerName(b);
    rewriteServerName(b, "f", EXT_HIDDEN_NAME, encodeServerName);
    restoreServerName(b, EXT_HIDDEN_NAME, decodeServerName);
  });
  const rules = [
    enc.encode(
      ".example.com:11111111-2222-3333-4444-555555555555,a.b:$aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    ),
  ];
  await fuzz("ingress", rules, 300, (b) => {
    const ing = Ingress.parse(dec.decode(b));
    ing.lookup("a.example.com:80");
    ing.lookup("[::1]:80");
  });
});
