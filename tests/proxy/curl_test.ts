/** Real clients (curl) against our http, socks5, socks4a and auto handlers, on loopback. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { Logger } from "../../src/core/log.ts";
import { hasCommand, sha256 } from "../_helpers.ts";
import { curl, pseudoRandom, startOrigin } from "./_server.ts";

const HAVE_CURL = hasCommand("curl");
if (!HAVE_CURL) {
  console.warn("curl not found: skipping proxy tests with real clients (CI installs it)");
}

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !HAVE_CURL, fn });
}

async function start(
  url: string,
  nodes: string[] = [],
  log?: Logger,
): Promise<{ rt: Runtime; port: number }> {
  const rt = await Runtime.start(cliConfig([url], nodes), log ? { log } : {});
  return { rt, port: rt.services[0]!.listener.addr.port };
}

test("curl -x http://u:p@ downloads byte-exact; keep-alive serves two requests on one connection", async () => {
  const origin = startOrigin();
  const lines: string[] = [];
  const { rt, port } = await start(
    "http://u:p@127.0.0.1:0",
    [],
    new Logger("info", {}, (l) => lines.push(l)),
  );
  try {
    const n = 1 << 20;
    const r = await curl([
      "-x",
      `http://u:p@127.0.0.1:${port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
    lines.length = 0;
    const two = await curl([
      "-x",
      `http://u:p@127.0.0.1:${port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=1000`,
      `http://localhost:${origin.port}/bytes?n=2000`,
    ]);
    assert.equal(two.code, 0, two.stderr);
    assert.equal(two.stdout.length, 3000);
    const accepted = lines.filter((l) => JSON.parse(l).msg.includes(" <> ")).length;
    assert.equal(accepted, 1, "curl reused one proxy connection for both hosts");
  } finally {
    await rt.close();
    await origin.close();
  }
});

test("http proxy: wrong password gets 407 with Proxy-Authenticate", async () => {
  const origin = startOrigin();
  const { rt, port } = await start("http://u:p@127.0.0.1:0");
  try {
    const r = await curl([
      "-i",
      "-x",
      `http://u:wrong@127.0.0.1:${port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=10`,
    ]);
    const text = new TextDecoder().decode(r.stdout);
    assert.match(text, /^HTTP\/1\.1 407/);
    assert.match(text, /Proxy-Authenticate: Basic realm="gost"/);
    assert.equal(origin.requests.length, 0);
  } finally {
    await rt.close();
    await origin.close();
  }
});

test("http proxy: POST body and hop-by-hop headers", async () => {
  const origin = startOrigin();
  const { rt, port } = await start("http://127.0.0.1:0");
  try {
    const r = await curl([
      "-x",
      `http://127.0.0.1:${port}`,
      "-H",
      "Proxy-Connection: keep-alive",
      "--data-binary",
      "hello body",
      `http://127.0.0.1:${origin.port}/echo`,
    ]);
    assert.equal(new TextDecoder().decode(r.stdout), "hello body");
    const h = await curl([
      "-x",
      `http://127.0.0.1:${port}`,
      "-H",
      "Proxy-Connection: keep-alive",
      `http://127.0.0.1:${origin.port}/headers`,
    ]);
    const seen = JSON.parse(new TextDecoder().decode(h.stdout));
    assert.equal(seen["proxy-connection"], undefined);
    assert.equal(seen.host, `127.0.0.1:${origin.port}`);
  } finally {
    await rt.close();
    await origin.close();
  }
});

test("http proxy: upstream down gives 502; CONNECT (curl -p) tunnels byte-exact", async () => {
  const origin = startOrigin();
  const { rt, port } = await start("http://127.0.0.1:0");
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  try {
    const bad = await curl([
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-x",
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${deadPort}/`,
    ]);
    assert.equal(new TextDecoder().decode(bad.stdout), "502");
    const n = 3 << 20;
    const r = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
  } finally {
    await rt.close();
    await origin.close();
  }
});

test("curl --socks5-hostname with user/pass; a wrong password is refused by RFC 1929", async () => {
  const origin = startOrigin();
  const { rt, port } = await start("socks5://u:p@127.0.0.1:0");
  try {
    const n = 1 << 20;
    const r = await curl([
      "--socks5-hostname",
      `u:p@127.0.0.1:${port}`,
      `http://localhost:${origin.port}/bytes?n=${n}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
    const bad = await curl([
      "--socks5-hostname",
      `u:nope@127.0.0.1:${port}`,
      `http://localhost:${origin.port}/bytes?n=1`,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /authentication|auth|User was rejected/i);
  } finally {
    await rt.close();
    await origin.close();
  }
});

test("auto handler serves curl over socks4a, socks5 and http on one port", async () => {
  const origin = startOrigin();
  const { rt, port } = await start("127.0.0.1:0");
  try {
    for (
      const args of [["--socks4a", `127.0.0.1:${port}`], ["--socks5", `127.0.0.1:${port}`], [
        "-x",
        `http://127.0.0.1:${port}`,
      ]]
    ) {
      const r = await curl([...args, `http://localhost:${origin.port}/bytes?n=5000`]);
      assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
      assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(5000, 5000)));
    }
  } finally {
    await rt.close();
    await origin.close();
  }
});

test("chain http → socks5 → relay delivers a 16 MiB download byte-exact", async () => {
  const origin = startOrigin();
  const c = await start("relay://127.0.0.1:0");
  const b = await start("socks5://127.0.0.1:0", [`relay://127.0.0.1:${c.port}`]);
  const a = await start("http://127.0.0.1:0", [`socks5://127.0.0.1:${b.port}`]);
  try {
    const n = 16 << 20;
    const r = await curl([
      "-x",
      `http://127.0.0.1:${a.port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=${n}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, n);
    assert.equal(await sha256(r.stdout), await sha256(pseudoRandom(n, n)));
  } finally {
    await a.rt.close();
    await b.rt.close();
    await c.rt.close();
    await origin.close();
  }
});

test("http probe resistance: a prober without credentials sees a 404 page, a knock host still gets 407", async () => {
  const origin = startOrigin();
  const { rt, port } = await start(
    "http://u:p@127.0.0.1:0?probeResist=code:404&knock=secret.example",
  );
  try {
    const code = async (url: string, user = "") =>
      new TextDecoder().decode(
        (await curl([
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-x",
          `http://${user}127.0.0.1:${port}`,
          url,
        ])).stdout,
      );
    assert.equal(await code(`http://127.0.0.1:${origin.port}/bytes?n=1`), "404");
    assert.equal(await code("http://secret.example/"), "407");
    assert.equal(await code(`http://127.0.0.1:${origin.port}/bytes?n=1`, "u:p@"), "200");
  } finally {
    await rt.close();
    await origin.close();
  }
});
