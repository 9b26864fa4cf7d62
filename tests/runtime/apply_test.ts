/** The live runtime moves between configs, rebuilding only what changed (docs/runtime.md). */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { type Config, mergeConfigs } from "../../src/config/model.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { askTag, echoServer, portOf, sendThrough, tagServer, withTimeout } from "../_helpers.ts";

/** A forward service named `name` on `port` (0: any) to `target`. */
function fwd(name: string, port: number, target: number): Config {
  const c = cliConfig([`tcp://127.0.0.1:${port}/127.0.0.1:${target}`], []);
  c.services![0]!.name = name;
  return c;
}

async function refused(port: number): Promise<boolean> {
  try {
    (await dialTcp("127.0.0.1", port)).close();
    return false;
  } catch {
    return true;
  }
}

/** `cfg` with service `name`'s forward target set to `port`. */
function retarget(cfg: Config, name: string, port: number): Config {
  const s = cfg.services!.find((x) => x.name === name)!;
  s.forwarder = { nodes: [{ name: "target-0", addr: `127.0.0.1:${port}` }] };
  return cfg;
}

Deno.test("apply: add, replace and remove services; an unchanged service's transfer goes on byte-exact", async () => {
  const echo = echoServer();
  const a = tagServer("A");
  const b = tagServer("B");
  const rt = await Runtime.start(mergeConfigs(fwd("keep", 0, echo.port), fwd("tag", 0, a.port)));
  try {
    const keepPort = portOf(rt, 0);
    const tagPort = portOf(rt, 1);
    const keep = rt.service("keep")!;
    const tagListener = rt.service("tag")!.listener;
    assert.equal(await askTag(tagPort), "A");
    // A transfer through "keep" spans every apply below.
    const live = await dialTcp("127.0.0.1", keepPort);
    const transfer = sendThrough(live, live, 8 << 20, "live transfer");

    // Replace: same listener, new target: the port stays bound (same listener object).
    let r = await rt.apply(retarget(rt.config, "tag", b.port));
    assert.deepEqual(r.replaced, ["services/tag"]);
    assert.deepEqual(r.added, []);
    assert.equal(rt.service("tag")!.listener, tagListener, "the listener is kept");
    assert.equal(await askTag(tagPort), "B");
    assert.equal(rt.service("keep"), keep, "an unchanged service is untouched");

    // Add a third, then remove "tag": its port closes.
    r = await rt.apply(mergeConfigs(rt.config, fwd("new", 0, a.port)));
    assert.deepEqual(r.added, ["services/new"]);
    assert.equal(await askTag(portOf(rt, 2)), "A");
    const only = rt.config;
    only.services = only.services!.filter((s) => s.name === "keep");
    r = await rt.apply(only);
    assert.deepEqual(r.removed.sort(), ["services/new", "services/tag"]);
    assert.equal(await refused(tagPort), true, "a removed service's port is closed");
    assert.equal(rt.services.length, 1);
    assert.equal(rt.service("keep"), keep);

    await transfer;
    live.close();
  } finally {
    await rt.close();
    await Promise.all([echo.close(), a.close(), b.close()]);
  }
});

Deno.test("apply: a broken config is refused whole and the old one keeps serving", async () => {
  const a = tagServer("A");
  const rt = await Runtime.start(fwd("tag", 0, a.port));
  try {
    const port = portOf(rt);
    const before = rt.config;
    // Good new service + a service with a dangling chain: nothing of it is applied.
    const bad = mergeConfigs(rt.config, fwd("other", 0, a.port));
    bad.services![1]!.handler.chain = "nope";
    await assert.rejects(() => rt.apply(bad), /no chain named "nope"/);
    // A handler type nobody registered: refused when built, the old service unchanged.
    const bad2 = mergeConfigs(fwd("other", 0, a.port), rt.config);
    bad2.services![1]!.handler.type = "nosuch";
    await assert.rejects(() => rt.apply(bad2), /nosuch/);
    assert.deepEqual(rt.config, before);
    assert.equal(rt.services.length, 1);
    assert.equal(await askTag(port), "A");
    // A port in use by something else: refused, nothing half-applied.
    const squat = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const busy = mergeConfigs(rt.config, fwd("other", squat.addr.port, a.port));
    await assert.rejects(() => rt.apply(busy), /address already in use/);
    squat.close();
    assert.deepEqual(rt.config, before);
    assert.equal(await askTag(port), "A");
  } finally {
    await rt.close();
    await a.close();
  }
});

Deno.test("apply: a changed listener on the same port is re-bound; a changed auth file rebuilds its service", async () => {
  const a = tagServer("A");
  const dir = await Deno.makeTempDir();
  const users = `${dir}/users`;
  await Deno.writeTextFile(users, "alice secret\n");
  const rt = await Runtime.start(fwd("tag", 0, a.port));
  try {
    const port = portOf(rt);
    const first = rt.service("tag")!;
    // Same port, another listener setting: the old listener gives the port up, the new binds it.
    const changed = rt.config;
    changed.services![0]!.addr = `127.0.0.1:${port}`;
    changed.services![0]!.listener.metadata = { backlog: 64 };
    const r = await rt.apply(changed);
    assert.deepEqual(r.replaced, ["services/tag"]);
    assert.notEqual(rt.service("tag"), first);
    assert.equal(await askTag(port), "A");

    // A socks5 service with auth.file: editing the file (same config) rebuilds the service.
    const socks = (file: string): Config => {
      const c = cliConfig([`socks5://127.0.0.1:0`], []);
      c.services![0]!.name = "socks";
      c.services![0]!.handler.auth = { username: "", password: "", file };
      return mergeConfigs(changed, c);
    };
    await rt.apply(socks(users));
    const socksCfg = rt.config;
    assert.deepEqual((await rt.apply(socksCfg)).replaced, [], "same config, same file: nothing");
    await Deno.writeTextFile(users, "bob other\n");
    assert.deepEqual((await rt.apply(socksCfg)).replaced, ["services/socks"]);
  } finally {
    await rt.close();
    await a.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** One round trip of 3 bytes through an echo path; false when the conn is dead. */
async function ping(c: Awaited<ReturnType<typeof dialTcp>>): Promise<boolean> {
  try {
    await c.write(new Uint8Array([1, 2, 3]));
    const n = await withTimeout(c.read(new Uint8Array(3)), 2000, "ping");
    return n === 3;
  } catch {
    return false;
  }
}

Deno.test("apply: a chain replaced later is not closed under a conn still draining from an earlier apply", async () => {
  const echo = echoServer();
  const server = await Runtime.start(cliConfig(["socks5+mtcp://127.0.0.1:0"], []));
  const rt = await Runtime.start(
    cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [
      `socks5+mtcp://127.0.0.1:${portOf(server)}`,
    ]),
  );
  const c = await dialTcp("127.0.0.1", portOf(rt));
  try {
    assert.equal(await ping(c), true);
    const noService = rt.config;
    noService.services = [];
    await rt.apply(noService, { graceMs: 5000 }); // the conn drains on the chain for 5 s
    const renamed = rt.config;
    renamed.chains![0]!.hops[0]!.nodes![0]!.name = "node-renamed";
    assert.deepEqual((await rt.apply(renamed)).replaced, ["chains/chain-0"]);
    assert.equal(await ping(c), true, "the draining conn still works on the old chain");
  } finally {
    c.close();
    await rt.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("apply: two services exchange ports", async () => {
  const a = tagServer("A");
  const b = tagServer("B");
  const rt = await Runtime.start(mergeConfigs(fwd("a", 0, a.port), fwd("b", 0, b.port)));
  try {
    const [pa, pb] = [portOf(rt, 0), portOf(rt, 1)];
    const swap = rt.config;
    swap.services![0]!.addr = `127.0.0.1:${pb}`;
    swap.services![1]!.addr = `127.0.0.1:${pa}`;
    assert.deepEqual((await rt.apply(swap)).replaced.sort(), ["services/a", "services/b"]);
    assert.equal(await askTag(pa), "B");
    assert.equal(await askTag(pb), "A");
  } finally {
    await rt.close();
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("apply: the top-level tls touches TLS listeners only", async () => {
  const rt = await Runtime.start(
    cliConfig([
      "tcp://127.0.0.1:0/127.0.0.1:9",
      "udp://127.0.0.1:0/127.0.0.1:9",
      "tls://127.0.0.1:0",
    ], []),
  );
  try {
    const next = rt.config;
    next.tls = { serverName: "example.com" };
    const r = await rt.apply(next);
    assert.deepEqual(r.replaced, ["services/service-2"]);
  } finally {
    await rt.close();
  }
});

Deno.test("apply: a swapped handler's metadata is checked as a fresh build would check it", async () => {
  const strict = { strict: true, warn: () => {} };
  const rt = await Runtime.start(cliConfig(["socks5://127.0.0.1:0?udp=true"], []), {
    diagnostics: strict,
  });
  try {
    const next = rt.config;
    const s = next.services![0]!;
    // `udp` was the socks5 handler's key; the tcp forwarder reads no such key.
    s.handler = { type: "tcp", metadata: { udp: true } };
    s.forwarder = { nodes: [{ name: "t", addr: "127.0.0.1:9" }] };
    // (the CLI put `udp` in the listener's metadata too: nothing reads it there now either)
    await assert.rejects(() => rt.apply(next), /metadata\.udp: unknown key/);
    s.listener.metadata = {};
    delete s.metadata;
    await assert.rejects(() => rt.apply(next), /handler\.metadata\.udp: unknown key/);
  } finally {
    await rt.close();
  }
});
