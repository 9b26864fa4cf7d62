/**
 * What the program imports before it knows its config: no npm package. Each costs the process
 * RSS whether the config uses it or not (ssh2, prom-client, yaml, dns-packet: ~9 MiB together
 * for a `-L socks5://` proxy, docs/performance.md); they are imported by the factory or flag that
 * needs them (src/core/lazy.ts).
 */
import assert from "node:assert/strict";
import { LazyModule } from "../src/core/lazy.ts";
import { createRegistries, type Registries } from "../src/core/registry.ts";
import { builtinRegistries, LAZY_TYPES } from "../src/builtins.ts";

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** Every module main.ts loads at start: its static imports, transitively (types excluded). */
async function staticGraph(entry: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
    redirects: Record<string, string>;
  };
  const bySpec = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const s0 = stack.pop()!;
    const s = info.redirects[s0] ?? s0;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpec.get(s)?.dependencies ?? []) {
      if (!d.isDynamic && d.code) stack.push(d.code.specifier);
    }
  }
  return seen;
}

Deno.test("main.ts imports no npm package at start-up (each is imported when a config needs it)", async () => {
  const graph = await staticGraph("main.ts");
  assert.ok(graph.size > 50, `the walk found the program (${graph.size} modules)`);
  assert.ok([...graph].some((s) => s.endsWith("/src/cli.ts")));
  assert.deepEqual([...graph].filter((s) => s.startsWith("npm:")), []);
  // Nor the types registered lazily (builtins.ts LAZY_TYPES), e.g. KCP and its ciphers.
  for (const dir of ["/src/kcp/", "/src/bundle/", "/src/transport/ws/", "/src/transport/tun/"]) {
    assert.deepEqual([...graph].filter((s) => s.includes(dir)), [], dir);
  }
});

Deno.test("every lazily registered group's modules register exactly the names builtins.ts gives them", async () => {
  const kinds: (keyof Registries)[] = ["listeners", "handlers", "dialers", "connectors"];
  const all = builtinRegistries();
  for (const t of LAZY_TYPES) {
    const own = createRegistries();
    for (const m of await t.load()) m.register(own);
    for (const k of kinds) {
      const declared = [...(t.names[k] ?? [])].sort();
      assert.deepEqual(own[k].names(), declared, `${k}: ${JSON.stringify(t.names)}`);
      for (const n of declared) assert.ok(all[k].has(n), `${k} ${n} is a built-in`);
    }
  }
});

Deno.test("LazyModule: one import for concurrent loads, get() only after, a failed import tried again", async () => {
  let imports = 0;
  let fail = true;
  const m = new LazyModule("thing", () => {
    imports++;
    return fail ? Promise.reject(new Error("not yet")) : Promise.resolve({ v: 1 });
  });
  assert.throws(() => m.get(), /thing was used before it was loaded/);
  await assert.rejects(m.load(), /not yet/);
  fail = false;
  const [a, b] = await Promise.all([m.load(), m.load()]);
  assert.equal(a, b);
  assert.equal(imports, 2);
  assert.equal(m.get().v, 1);
  await m.load();
  assert.equal(imports, 2);
});
