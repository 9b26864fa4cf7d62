/**
 * The `dns` listener and handler (issue #19) against Debian's `dig`, with a small upstream DNS
 * server on loopback (UDP and TCP on one port): answers, the cache, hosts, bypass, truncation
 * both ways (client over UDP gets TC and retries over TCP; an upstream's TC is retried over TCP),
 * garbage, and upstreams through a chain.
 */
import assert from "node:assert/strict";
// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { type Config, Runtime } from "../../mod.ts";
import { hasCommand, listenUdpAndTcp, withTimeout } from "../_helpers.ts";

const haveDig = hasCommand("dig");
if (!haveDig) console.warn("dig missing (dnsutils): skipping the dns handler tests");

const txt = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    name: "",
    type: "TXT",
    ttl: 300,
    data: `record ${i} ${"x".repeat(40)}`,
  }));

/** A nameserver on 127.0.0.1 (UDP and TCP, one port) that counts the questions it gets. */
function upstream() {
  const asked = new Map<string, number>();
  const answer = (raw: Uint8Array, udp: boolean): Uint8Array => {
    const q = dnsPacket.decode(Buffer.from(raw));
    const question = q.questions![0]!;
    asked.set(question.name, (asked.get(question.name) ?? 0) + 1);
    let answers: dnsPacket.Answer[] = [];
    let flags = 0;
    if (question.name === "a.test" && question.type === "A") {
      answers = [{ name: "a.test", type: "A", ttl: 300, data: "10.0.0.1" }];
    } else if (question.name === "big.test") {
      answers = txt(60).map((a) => ({ ...a, name: "big.test" })) as dnsPacket.Answer[];
    } else if (question.name === "huge.test") {
      if (udp) flags = 0x0200; // TC: ask me over TCP
      else answers = txt(100).map((a) => ({ ...a, name: "huge.test" })) as dnsPacket.Answer[];
    }
    return dnsPacket.encode({
      type: "response",
      id: q.id,
      flags: flags | 0x0080,
      questions: q.questions,
      answers,
    });
  };
  const { udp, tcp, port } = listenUdpAndTcp();
  const loops = [
    (async () => {
      for await (const [d, from] of udp) await udp.send(answer(d, true), from).catch(() => {});
    })(),
    (async () => {
      for await (const c of tcp) {
        (async () => {
          const len = new Uint8Array(2);
          while ((await c.read(len).catch(() => null)) === 2) {
            const body = new Uint8Array((len[0]! << 8) | len[1]!);
            let got = 0;
            while (got < body.length) got += (await c.read(body.subarray(got)))!;
            const r = answer(body, false);
            await c.write(new Uint8Array([r.length >> 8, r.length & 0xff, ...r]));
          }
          c.close();
        })();
      }
    })(),
  ];
  return {
    port,
    asked,
    close: async () => {
      udp.close();
      tcp.close();
      await Promise.allSettled(loops);
    },
  };
}

async function dig(port: number, ...args: string[]): Promise<string> {
  const o = await new Deno.Command("dig", {
    args: [`@127.0.0.1`, "-p", String(port), "+tries=1", "+time=3", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
}

function dnsConfig(up: number, port = 0, extra: Record<string, string> = {}): Config {
  const svc = (name: string, mode: string) => ({
    name,
    addr: `127.0.0.1:${port}`,
    hosts: "h",
    bypass: "b",
    handler: { type: "dns", metadata: { dns: `udp://127.0.0.1:${up}`, ...extra } },
    listener: { type: "dns", metadata: { mode } },
  });
  return {
    hosts: [{ name: "h", mappings: [{ ip: "10.9.9.9", hostname: "host.test" }] }],
    bypasses: [{ name: "b", matchers: ["blocked.test"] }],
    services: port === 0 ? [svc("dns-udp", "udp")] : [svc("dns-udp", "udp"), svc("dns-tcp", "tcp")],
  };
}

Deno.test({
  name:
    "dns: dig gets answers, the cache and hosts spare the upstream, bypass answers empty, TC sends dig to TCP, an upstream's TC is retried over TCP, garbage is ignored",
  ignore: !haveDig,
  async fn() {
    const up = upstream();
    await using rt = await Runtime.start(dnsConfig(up.port));
    let port = rt.services[0]!.listener.addr.port;
    // The same port over TCP (as GOST: a second service with mode=tcp). The UDP port's number may
    // be taken over TCP by some other socket: then try another pair.
    for (let i = 0;; i++) {
      try {
        await rt.apply(dnsConfig(up.port, port));
        break;
      } catch (e) {
        if (i === 10 || !/in use/.test(String(e))) throw e;
        await rt.apply(dnsConfig(up.port));
        port = rt.services[0]!.listener.addr.port;
      }
    }
    try {
      assert.equal((await dig(port, "a.test", "+short")).trim(), "10.0.0.1");
      assert.equal((await dig(port, "a.test", "+short")).trim(), "10.0.0.1");
      assert.equal(up.asked.get("a.test"), 1, "the second answer came from the cache");
      const cached = await dig(port, "a.test");
      assert.match(cached, /a\.test\.\s+(\d+)\s+IN\s+A\s+10\.0\.0\.1/);
      assert.ok(Number(/a\.test\.\s+(\d+)/.exec(cached)![1]) <= 300);

      assert.equal((await dig(port, "host.test", "+short")).trim(), "10.9.9.9");
      assert.equal(up.asked.get("host.test"), undefined, "hosts answered");

      const blocked = await dig(port, "blocked.test");
      assert.match(blocked, /status: NOERROR/);
      assert.match(blocked, /ANSWER: 0/);
      assert.equal(up.asked.get("blocked.test"), undefined, "bypass answered");

      // ~3 KB of TXT: too big for dig's 1232-byte UDP buffer.
      const tcpBefore = rt.service("dns-tcp")!.stats.totalConns;
      const big = await dig(port, "big.test", "TXT", "+bufsize=1232");
      assert.match(big, /Truncated, retrying in TCP mode/);
      assert.equal((big.match(/^\S+\s+\d+\s+IN\s+TXT/gm) ?? []).length, 60, big.slice(0, 1500));
      assert.ok(rt.service("dns-tcp")!.stats.totalConns > tcpBefore, "dig came back over TCP");

      // The upstream truncates over UDP: Burrow asks it again over TCP.
      const huge = await dig(port, "huge.test", "TXT", "+tcp");
      assert.equal((huge.match(/^\S+\s+\d+\s+IN\s+TXT/gm) ?? []).length, 100, huge.slice(0, 500));
      assert.equal(up.asked.get("huge.test"), 2);

      // Garbage gets no answer; the next query still does.
      const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      await s.send(new Uint8Array([1, 2, 3]), { transport: "udp", hostname: "127.0.0.1", port });
      const silent = await Promise.race([
        s.receive().then(() => "answered"),
        new Promise((r) => setTimeout(() => r("silent"), 300)),
      ]);
      s.close();
      assert.equal(silent, "silent");
      assert.equal((await dig(port, "a.test", "+short", "+tcp")).trim(), "10.0.0.1");

      // DNS over TLS (mode=tls) on another port.
      await rt.update((c) => ({
        ...c,
        services: [...c.services!, {
          name: "dns-tls",
          addr: "127.0.0.1:0",
          handler: { type: "dns", metadata: { dns: `udp://127.0.0.1:${up.port}` } },
          listener: { type: "dns", metadata: { mode: "tls" } },
        }],
      }));
      const tlsPort = rt.service("dns-tls")!.listener.addr.port;
      assert.equal((await dig(tlsPort, "a.test", "+short", "+tls")).trim(), "10.0.0.1");

      // DNS over HTTPS (mode=https, HTTP/1.1): a GET with ?dns= and a POST.
      await rt.update((c) => ({
        ...c,
        services: [...c.services!, {
          name: "dns-https",
          addr: "127.0.0.1:0",
          handler: { type: "dns", metadata: { dns: `udp://127.0.0.1:${up.port}` } },
          listener: { type: "dns", metadata: { mode: "https" } },
        }],
      }));
      const dohPort = rt.service("dns-https")!.listener.addr.port;
      const q = dnsPacket.encode({
        type: "query",
        id: 0,
        questions: [{ name: "a.test", type: "A" }],
      });
      const b64 = btoa(String.fromCharCode(...q)).replace(/\+/g, "-").replace(/\//g, "_")
        .replace(/=+$/, "");
      const got = await new Deno.Command("curl", {
        args: ["-s", "-k", "--max-time", "5", `https://127.0.0.1:${dohPort}/dns-query?dns=${b64}`],
        stdout: "piped",
      }).output();
      const ans = dnsPacket.decode(Buffer.from(got.stdout));
      assert.equal((ans.answers?.[0] as { data?: string })?.data, "10.0.0.1");
      const dir = await Deno.makeTempDir();
      await Deno.writeFile(`${dir}/q`, q);
      const posted = await new Deno.Command("curl", {
        args: [
          "-s",
          "-k",
          "--max-time",
          "5",
          "-H",
          "Content-Type: application/dns-message",
          "--data-binary",
          `@${dir}/q`,
          `https://127.0.0.1:${dohPort}/dns-query`,
        ],
        stdout: "piped",
      }).output();
      await Deno.remove(dir, { recursive: true });
      const pa = dnsPacket.decode(Buffer.from(posted.stdout));
      assert.equal((pa.answers?.[0] as { data?: string })?.data, "10.0.0.1");
      // Bad input: a DoH POST of another media type gets 415; garbage framed over TCP ends the
      // connection (its framing can no longer be trusted).
      const wrong = await new Deno.Command("curl", {
        args: [
          "-s",
          "-k",
          "--max-time",
          "5",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-H",
          "Content-Type: text/plain",
          "--data",
          "hello",
          `https://127.0.0.1:${dohPort}/dns-query`,
        ],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(wrong.stdout), "415");
      // curl negotiated HTTP/2 above (ALPN offers h2); HTTP/1.1 is served too, and dig +https
      // (HTTP/2 only) gets its answer.
      for (const [flag, version] of [["--http1.1", "1.1"], ["--http2", "2"]]) {
        const v = await new Deno.Command("curl", {
          args: [
            ..."-s -k --max-time 5 -o /dev/null -w %{http_version}".split(" "),
            flag!,
            `https://127.0.0.1:${dohPort}/dns-query?dns=${b64}`,
          ],
          stdout: "piped",
        }).output();
        assert.equal(new TextDecoder().decode(v.stdout), version);
      }
      assert.equal((await dig(dohPort, "a.test", "+short", "+https")).trim(), "10.0.0.1");
      const t = await Deno.connect({ hostname: "127.0.0.1", port });
      await t.write(new Uint8Array([0, 5, 1, 2, 3, 4, 5]));
      assert.equal(
        await withTimeout(t.read(new Uint8Array(64)), 5000, "closed after garbage"),
        null,
      );
      t.close();

      // A resolver's A and AAAA, back to back from one port: both answered.
      const r = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
      for (const [id, type] of [[1, "A"], [2, "AAAA"]] as const) {
        await r.send(
          dnsPacket.encode({
            type: "query",
            id,
            flags: 0x0100,
            questions: [{ name: "a.test", type }],
          }),
          to,
        );
      }
      const ids = new Set<number>();
      for (let i = 0; i < 2; i++) {
        const [d] = await withTimeout(r.receive(), 3000, "both answers");
        ids.add(dnsPacket.decode(Buffer.from(d)).id!);
      }
      r.close();
      assert.deepEqual([...ids].sort(), [1, 2]);
    } finally {
      await up.close();
    }
  },
});

Deno.test({
  name:
    "dns: upstreams are reached through the handler's chain (socks5 to a tcp:// nameserver); a dead upstream fails over to the next",
  ignore: !haveDig,
  async fn() {
    const up = upstream();
    await using proxy = await Runtime.start({
      services: [{
        name: "socks",
        addr: "127.0.0.1:0",
        handler: { type: "socks5" },
        listener: { type: "tcp" },
      }],
    });
    const socks = proxy.services[0]!.listener.addr.port;
    const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = dead.addr.port;
    dead.close(); // nothing listens there now: a refused upstream
    await using rt = await Runtime.start({
      services: [{
        name: "dns",
        addr: "127.0.0.1:0",
        handler: {
          type: "dns",
          chain: "c",
          metadata: { dns: `tcp://127.0.0.1:${deadPort},tcp://127.0.0.1:${up.port}` },
        },
        listener: { type: "dns" },
      }],
      chains: [{
        name: "c",
        hops: [{
          name: "h",
          nodes: [{
            name: "n",
            addr: `127.0.0.1:${socks}`,
            connector: { type: "socks5" },
            dialer: { type: "tcp" },
          }],
        }],
      }],
    });
    const port = rt.services[0]!.listener.addr.port;
    try {
      for (let i = 0; i < 2; i++) {
        // Twice: whichever upstream the rotation starts with, the answer comes.
        up.asked.clear();
        assert.equal(
          (await dig(port, `a.test`, "+short", "+nocookie")).trim(),
          i === 0 ? "10.0.0.1" : "10.0.0.1",
        );
      }
      assert.ok(proxy.services[0]!.stats.totalConns >= 1, "the query went through the socks5 node");
    } finally {
      await up.close();
    }
  },
});

Deno.test("dns: configs GOST accepts but Burrow cannot honour are refused by name", async () => {
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "d",
        addr: "127.0.0.1:0",
        handler: { type: "dns", metadata: { dns: "udp://127.0.0.1:53" } },
        listener: { type: "dns", metadata: { mode: "quic" } },
      }],
    }),
    /unknown mode "quic"/,
  );
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "d",
        addr: "127.0.0.1:0",
        handler: { type: "dns" },
        listener: { type: "dns" },
      }],
    }),
    /name the upstream nameservers/,
  );
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "d",
        addr: "127.0.0.1:0",
        handler: { type: "dns", metadata: { dns: "udp://127.0.0.1:53" } },
        listener: { type: "dns", metadata: { mode: "tcp", writeTimeout: "1s" } },
      }],
    }),
    /writetimeout: is not supported/i,
  );
});

Deno.test({
  name:
    "dns over HTTPS/2: a connection ended by its client or by readTimeout leaves nothing behind (the bridge's server and socket go)",
  ignore: !haveDig,
  async fn() {
    const http2 = await import("node:http2");
    const up = upstream();
    const bridges = () => {
      let n = 0;
      for (const e of Deno.readDirSync("/tmp")) if (e.name.startsWith("burrow-doh-")) n++;
      return n;
    };
    const before = bridges();
    await using rt = await Runtime.start({
      services: [{
        name: "doh",
        addr: "127.0.0.1:0",
        handler: { type: "dns", metadata: { dns: `udp://127.0.0.1:${up.port}` } },
        listener: { type: "dns", metadata: { mode: "https", readTimeout: "1s" } },
      }],
    });
    const port = rt.service("doh")!.listener.addr.port;
    const q = dnsPacket.encode({
      type: "query",
      id: 0,
      questions: [{ name: "a.test", type: "A" }],
    });
    const b64 = btoa(String.fromCharCode(...q)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
    try {
      // Two h2 connections: one the client ends, one left idle past readTimeout.
      for (const end of [true, false]) {
        const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
        const body = await new Promise<Buffer>((resolve, reject) => {
          const r = s.request({ ":path": `/dns-query?dns=${b64}` });
          const parts: Buffer[] = [];
          r.on("data", (d: Buffer) => parts.push(d));
          r.on("end", () => resolve(Buffer.concat(parts)));
          r.on("error", reject);
          r.end();
        });
        const a = dnsPacket.decode(body);
        assert.equal((a.answers?.[0] as { data?: string })?.data, "10.0.0.1");
        if (end) s.close();
        await withTimeout(
          (async () => {
            while (bridges() > before) await new Promise((r) => setTimeout(r, 50));
          })(),
          5000,
          end ? "the bridge to go after the client closed" : "the idle connection's bridge to go",
        );
        s.destroy();
      }
    } finally {
      await up.close();
    }
  },
});
