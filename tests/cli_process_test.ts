import assert from "node:assert/strict";
import { dialTcp } from "../src/core/socket.ts";
import { echoServer, readAll, withTimeout } from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function run(args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
}

Deno.test("bad flags and malformed URLs exit 2 with a one-line message", async () => {
  for (
    const [args, re] of [
      [["-X"], /flag provided but not defined: -X/],
      [["-L", "tcp://:70000"], /bad address ":70000"/],
      [["-L", ":1", "-F", "socks5://h"], /bad address "h"/],
    ] as [string[], RegExp][]
  ) {
    const out = await run(args);
    assert.equal(out.code, 2, args.join(" "));
    const err = new TextDecoder().decode(out.stderr).trim();
    assert.match(err, re);
    assert.equal(err.split("\n").length, 1);
  }
});

Deno.test("-V prints the version; -O yaml prints the config without serving", async () => {
  const v = await run(["-V"]);
  assert.equal(v.code, 0);
  assert.match(new TextDecoder().decode(v.stdout), /^burrow \d+\.\d+\.\d+/);
  const o = await run(["-L", "socks5://:1080", "-F", "relay+mtcp://srv:8443", "-O", "yaml"]);
  assert.equal(o.code, 0);
  const text = new TextDecoder().decode(o.stdout);
  assert.match(text, /type: socks5/);
  assert.match(text, /type: mtcp/);
});

Deno.test("a running forwarder serves, then SIGTERM stops it cleanly with exit 0 and JSON logs", async () => {
  const echo = echoServer();
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      MAIN,
      "-L",
      `tcp://127.0.0.1:${p}/127.0.0.1:${echo.port}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    let conn;
    for (let i = 0; i < 100 && !conn; i++) {
      conn = await dialTcp("127.0.0.1", p).catch(() => undefined);
      if (!conn) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(conn, "service did not come up");
    await conn.write(new TextEncoder().encode("hello"));
    await conn.closeWrite();
    assert.equal(new TextDecoder().decode(await withTimeout(readAll(conn), 5000)), "hello");
    conn.close();
    child.kill("SIGTERM");
    const st = await withTimeout(child.status, 10_000);
    assert.equal(st.code, 0);
    const lines = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer()).trim()
      .split("\n");
    const recs = lines.map((l) => JSON.parse(l));
    assert.ok(recs.some((r) => r.msg === `listening on 127.0.0.1:${p}/tcp`));
    assert.ok(recs.some((r) => / <> /.test(r.msg) && r.service === "service-0" && r.sid));
    assert.ok(recs.every((r) => r.time && r.level && r.msg));
  } finally {
    try {
      child.kill();
    } catch { /* exited */ }
    await child.status;
    await echo.close();
  }
});

Deno.test("` -- ` splits independent groups, each with its own chain", async () => {
  const o = await run([
    "-L",
    "tcp://:1/a:1",
    "-F",
    "forward://h:1",
    "--",
    "-L",
    "tcp://:2/b:2",
    "-F",
    "forward://g:2",
    "-O",
    "json",
  ]);
  assert.equal(o.code, 0);
  const cfg = JSON.parse(new TextDecoder().decode(o.stdout));
  assert.deepEqual(cfg.services.map((s: { handler: { chain: string } }) => s.handler.chain), [
    "chain-0",
    "chain-1",
  ]);
  assert.deepEqual(
    cfg.chains.map((c: { hops: { nodes: { addr: string }[] }[] }) => c.hops[0]!.nodes[0]!.addr),
    ["h:1", "g:2"],
  );
});

Deno.test("unsupported keys exit 2 naming them; a busy port exits 1 naming the address", async () => {
  for (
    const [args, re] of [
      [["-L", "socks5://127.0.0.1:0?interface=eth0"], /metadata\.interface: is not supported/],
      [["--strict", "-L", "socks5://127.0.0.1:0?admision=~10.0.0.0/8"], /did you mean "admission"/],
      [
        ["-C", '{"services":[{"addr":":0"}],"profiling":{"addr":":6060"}}'],
        /profiling: is not supported/,
      ],
    ] as [string[], RegExp][]
  ) {
    const out = await run(args);
    assert.equal(out.code, 2, args.join(" "));
    assert.match(new TextDecoder().decode(out.stderr), re);
  }
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const addr = `127.0.0.1:${(busy.addr as Deno.NetAddr).port}`;
    const out = await run(["-L", `tcp://${addr}/127.0.0.1:9`]);
    assert.equal(out.code, 1);
    assert.match(
      new TextDecoder().decode(out.stderr),
      new RegExp(`cannot listen on ${addr}: address already in use`),
    );
  } finally {
    busy.close();
  }
});
