import assert from "node:assert/strict";
import { mergeConfigs, normalizeConfig } from "../../src/config/model.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { formatConfig, loadConfigSource } from "../../src/config/file.ts";
import { cliConfig } from "../../src/builtins.ts";

function throwsAt(raw: unknown, path: string, msg: RegExp): void {
  assert.throws(() => normalizeConfig(raw), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.path, path);
    assert.match(e.message, msg);
    return true;
  });
}

Deno.test("config defaults: handler auto, listener tcp, connector http, dialer tcp", () => {
  const cfg = normalizeConfig({
    services: [{ addr: ":8080" }],
    chains: [{ name: "c", hops: [{ name: "h", nodes: [{ addr: "a:1" }] }] }],
  });
  assert.equal(cfg.services![0]!.name, "service-0");
  assert.equal(cfg.services![0]!.handler.type, "auto");
  assert.equal(cfg.services![0]!.listener.type, "tcp");
  assert.equal(cfg.chains![0]!.hops[0]!.nodes![0]!.connector.type, "http");
  assert.equal(cfg.chains![0]!.hops[0]!.nodes![0]!.dialer.type, "tcp");
});

Deno.test("config keys match case-insensitively", () => {
  const cfg = normalizeConfig({
    Services: [{ Name: "a", ADDR: ":1", Handler: { Type: "socks5" } }],
  });
  assert.equal(cfg.services![0]!.handler.type, "socks5");
  assert.equal(cfg.services![0]!.name, "a");
});

Deno.test("validation errors name the field path", () => {
  throwsAt({ services: {} }, "services", /expected a list/);
  throwsAt({ services: [{ addr: ":1" }, { name: "x" }] }, "services[1].addr", /required/);
  throwsAt(
    { services: [{ addr: ":1", listener: { type: ["tcp"] } }] },
    "services[0].listener.type",
    /expected a string/,
  );
  throwsAt(
    { services: [{ addr: ":1", handler: { retries: "x" } }] },
    "services[0].handler.retries",
    /integer/,
  );
  throwsAt(
    { services: [{ addr: ":1", handler: { chain: "nope" } }] },
    "services[0].handler.chain",
    /no chain named "nope"/,
  );
  throwsAt(
    { services: [{ addr: ":1", handler: { auther: "a" } }] },
    "services[0].handler.auther",
    /no auther/,
  );
  throwsAt(
    { services: [{ addr: ":1", forwarder: { nodes: [{ name: "t" }] } }] },
    "services[0].forwarder.nodes[0].addr",
    /required/,
  );
  throwsAt(
    { services: [{ addr: ":1", listener: { metadata: [1] } }] },
    "services[0].listener.metadata",
    /mapping/,
  );
  throwsAt(
    { chains: [{ name: "c", hops: [{ name: "h", selector: { strategy: "best" } }] }] },
    "chains[0].hops[0].selector.strategy",
    /unknown strategy/,
  );
  throwsAt(
    { chains: [{ name: "c", hops: [{ name: "h", selector: { failTimeout: "soon" } }] }] },
    "chains[0].hops[0].selector.failTimeout",
    /duration/,
  );
  throwsAt(
    { chains: [{ name: "c", hops: [{ name: "missing" }] }] },
    "chains[0].hops[0]",
    /no nodes/,
  );
  throwsAt(
    { services: [{ name: "a", addr: ":1" }, { name: "a", addr: ":2" }] },
    "services[1].name",
    /duplicate/,
  );
  throwsAt({ log: { level: "loud" } }, "log.level", /unknown level/);
});

Deno.test("merge: lists concatenate, singletons last wins", () => {
  const a = normalizeConfig({ services: [{ name: "a", addr: ":1" }], log: { level: "debug" } });
  const b = normalizeConfig({ services: [{ name: "b", addr: ":2" }], log: { level: "warn" } });
  const m = mergeConfigs(a, b);
  assert.deepEqual(m.services!.map((s) => s.name), ["a", "b"]);
  assert.equal(m.log!.level, "warn");
});

Deno.test("YAML and JSON files load; a broken file names itself and the field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/ok.yaml`,
      "services:\n- name: s\n  addr: :8080\n  handler:\n    type: socks5\n",
    );
    await Deno.writeTextFile(
      `${dir}/ok.json`,
      JSON.stringify({ services: [{ name: "j", addr: ":1" }] }),
    );
    await Deno.writeTextFile(`${dir}/bad.yaml`, "services:\n- name: s\n  addr: [1, 2]\n");
    await Deno.writeTextFile(`${dir}/broken.yaml`, "services: [\n");
    assert.equal((await loadConfigSource(`${dir}/ok.yaml`)).services![0]!.handler.type, "socks5");
    assert.equal((await loadConfigSource(`${dir}/ok.json`)).services![0]!.name, "j");
    assert.equal((await loadConfigSource('{"services":[{"addr":":9"}]}')).services![0]!.addr, ":9");
    await assert.rejects(
      loadConfigSource(`${dir}/bad.yaml`),
      /bad\.yaml: services\[0\]\.addr: expected a string/,
    );
    await assert.rejects(loadConfigSource(`${dir}/broken.yaml`), /broken\.yaml: cannot parse YAML/);
    await assert.rejects(loadConfigSource(`${dir}/none.yaml`), /cannot read config file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-O output round-trips: CLI config → YAML/JSON → same config", async () => {
  const cfg = cliConfig(["socks5://u:p@:1080?udp=true", "tcp://:2222/a:22,b:22?strategy=fifo"], [
    "relay+mtcp://s:8443",
  ]);
  for (const fmt of ["yaml", "json"] as const) {
    const text = formatConfig(cfg, fmt);
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/c.${fmt}`, text);
      assert.deepEqual(await loadConfigSource(`${dir}/c.${fmt}`), cfg);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("api/metrics auth.file is refused by name (a named auther takes user files)", () => {
  for (const k of ["api", "metrics"]) {
    assert.throws(
      () => normalizeConfig({ [k]: { addr: ":1", auth: { file: "/etc/users" } } }),
      new RegExp(`${k}\\.auth\\.file: is not supported`),
    );
  }
});
