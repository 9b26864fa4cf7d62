/** Nothing is silently ignored: GOST keys Burrow lacks are refused, typos are warned about. */
import assert from "node:assert/strict";
import { normalizeConfig } from "../../src/config/model.ts";
import { UsageError } from "../../src/config/cli.ts";
import { cliConfig } from "../../src/builtins.ts";
import { closest, type Diagnostics } from "../../src/config/keys.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import type { Config } from "../../src/config/model.ts";

function collect(strict = false): Diagnostics & { seen: string[] } {
  const seen: string[] = [];
  return { strict, seen, warn: (p, m) => seen.push(`${p}: ${m}`) };
}

function refusedAt(raw: unknown, path: string, msg: RegExp): void {
  assert.throws(() => normalizeConfig(raw, { diagnostics: collect() }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.path, path);
    assert.match(e.message, msg);
    return true;
  });
}

Deno.test("YAML: a GOST field burrow does not implement is refused by name, at every level", () => {
  const svc = { addr: ":1" };
  refusedAt({ profiling: { addr: ":6060" } }, "profiling", /not supported/);
  refusedAt({ routers: [] }, "routers", /not supported/);
  refusedAt(
    { ingresses: [{ name: "i", file: { path: "x" } }] },
    "ingresses[0].file",
    /not supported/,
  );
  refusedAt({ services: [{ ...svc, observer: "o" }] }, "services[0].observer", /not supported/);
  refusedAt(
    { services: [{ ...svc, handler: { type: "http", chainGroup: {} } }] },
    "services[0].handler.chainGroup",
    /not supported/,
  );
  refusedAt(
    { services: [{ ...svc, listener: { type: "tcp", chainGroup: {} } }] },
    "services[0].listener.chainGroup",
    /not supported/,
  );
  refusedAt(
    { services: [{ ...svc, forwarder: { hopGroup: {} } }] },
    "services[0].forwarder.hopGroup",
    /not supported/,
  );
  refusedAt(
    { chains: [{ name: "c", hops: [{ name: "h", plugin: {}, nodes: [] }] }] },
    "chains[0].hops[0].plugin",
    /not supported/,
  );
  refusedAt(
    { hops: [{ name: "h", nodes: [{ addr: "a:1", probe: {} }] }] },
    "hops[0].nodes[0].probe",
    /not supported/,
  );
  refusedAt(
    {
      strict: true,
      hops: [{ name: "h", nodes: [{ addr: "a:1", dialer: { type: "tcp", plugin: 1 } }] }],
    },
    "hops[0].nodes[0].dialer.plugin",
    /unknown key/,
  );
  refusedAt({ log: { rotation: { maxSize: 1 } } }, "log.rotation", /not supported/);
  refusedAt(
    { services: [{ ...svc, handler: { tls: { options: {} } } }] },
    "services[0].handler.tls.options",
    /not supported/,
  );
  refusedAt({ authers: [{ name: "a", redis: {} }] }, "authers[0].redis", /not supported/);
  refusedAt(
    { chains: [{ name: "c", hops: [], metadta: {} }], strict: true },
    "chains[0].metadta",
    /did you mean "metadata"/,
  );
});

Deno.test("YAML: an unknown key is a warning naming the closest key; strict makes it an error", () => {
  const d = collect();
  const cfg = normalizeConfig({ servics: [], services: [{ addr: ":1", listner: {} }] }, {
    diagnostics: d,
  });
  assert.equal(cfg.services!.length, 1);
  assert.deepEqual(d.seen, [
    'services[0].listner: unknown key (did you mean "listener"?)',
    'servics: unknown key (did you mean "services"?)',
  ]);
  assert.throws(
    () => normalizeConfig({ services: [{ addr: ":1", listner: {} }] }, { strict: true }),
    /services\[0\]\.listner: unknown key \(did you mean "listener"\?\)/,
  );
  assert.throws(
    () =>
      normalizeConfig({ strict: true, services: [{ addr: ":1", listner: {} }] }, {
        diagnostics: collect(),
      }),
    /listner/,
  );
});

Deno.test("closest() suggests near keys only", () => {
  assert.equal(closest("admision", ["admission", "bypass"]), "admission");
  assert.equal(closest("zzzzzz", ["admission", "bypass"]), undefined);
});

async function startRefused(cfg: Config, strict: boolean, re: RegExp): Promise<string[]> {
  const d = collect(strict);
  await assert.rejects(Runtime.start(cfg, { diagnostics: d }), re);
  return d.seen;
}

Deno.test("metadata: GOST keys burrow lacks are refused; CLI typos warn once, strict refuses", async () => {
  await startRefused(
    cliConfig(["kcp://127.0.0.1:0?kcp.conn=2"], []),
    false,
    /listener\.metadata\.kcp\.conn: is not supported/,
  );
  await startRefused(
    cliConfig(["kcp://127.0.0.1:0?kcp.dscp=46"], []),
    false,
    /kcp\.dscp: is not supported yet/,
  );
  await startRefused(
    cliConfig(["socks5://127.0.0.1:0?interface=eth0"], []),
    false,
    /services\[0\]\.metadata\.interface: is not supported/,
  );
  await startRefused(
    cliConfig(["http://127.0.0.1:0?sniffing=true"], []),
    false,
    /handler\.metadata\.sniffing: is not supported/,
  );
  await startRefused(
    cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], ["socks5://127.0.0.1:1?so_mark=3"]),
    false,
    /hop\.metadata\.so_mark|metadata\.so_mark: is not supported/,
  );
  await startRefused(
    cliConfig(["socks5://127.0.0.1:0?admision=~10.0.0.0/8"], []),
    true,
    /admision: unknown key \(did you mean "admission"\?\)/,
  );
  const d = collect();
  const rt = await Runtime.start(cliConfig(["socks5://127.0.0.1:0?admision=~10.0.0.0/8"], []), {
    diagnostics: d,
  });
  await rt.close();
  assert.equal(d.seen.length, 1, d.seen.join("\n"));
  assert.match(d.seen[0]!, /admision: unknown key \(did you mean "admission"\?\)/);
});

Deno.test("metadata keys a component reads are accepted silently", async () => {
  const d = collect(true);
  const rt = await Runtime.start(
    cliConfig(["socks5://127.0.0.1:0?udp=true&readTimeout=5s&bind=true"], []),
    { diagnostics: d },
  );
  await rt.close();
  assert.deepEqual(d.seen, []);
});

Deno.test("validation matches between CLI and YAML", () => {
  assert.throws(() => cliConfig(["tcp://:0/a:1?strategy=weird"], []), UsageError);
  assert.throws(
    () => normalizeConfig({ hops: [{ name: "h", selector: { strategy: "weird" } }] }),
    /unknown strategy/,
  );
  assert.throws(() => cliConfig([":0"], ["http://h:70000"]), /bad address "h:70000"/);
  assert.throws(() => cliConfig(["tcp://:0/a:1?maxFails=-1"], []), /maxFails/);
  assert.throws(
    () => normalizeConfig({ hops: [{ name: "h", selector: { maxFails: -1 } }] }),
    /maxFails: must not be negative/,
  );
});

Deno.test("a negative duration is refused with its field path", async () => {
  await assert.rejects(
    Runtime.start(cliConfig(["udp://127.0.0.1:0/127.0.0.1:9?ttl=-5s"], [])),
    /listener\.metadata\.ttl: expected a duration/,
  );
});

Deno.test("listener auth and listener chains are refused (only ssh/rtcp use them)", async () => {
  await assert.rejects(
    Runtime.start(normalizeConfig({
      services: [{ addr: "127.0.0.1:0", listener: { type: "tcp", auth: { username: "u" } } }],
    })),
    /services\[0\]\.listener\.auth: listener auth is only used by ssh/,
  );
});
