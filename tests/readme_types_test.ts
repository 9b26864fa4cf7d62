/** The README's type table and the registries list the same types. */
import assert from "node:assert/strict";
import { builtinRegistries } from "../src/builtins.ts";

Deno.test("README type table names exactly the registered types", async () => {
  const text = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = text.slice(text.indexOf("## Supported types"), text.indexOf("### Where Burrow"));
  const listed = new Set<string>();
  for (const line of table.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    if (cells.length < 4 || !/^(transport|handler|connector)/.test(cells[1]!)) continue;
    for (const m of cells[2]!.matchAll(/`([a-z0-9]+)`/g)) listed.add(m[1]!);
  }
  const reg = builtinRegistries();
  const registered = new Set([
    ...reg.listeners.names(),
    ...reg.handlers.names(),
    ...reg.dialers.names(),
    ...reg.connectors.names(),
  ]);
  assert.deepEqual([...listed].sort(), [...registered].sort());
});

Deno.test("the README's access-control YAML example is a valid strict config", async () => {
  const { parseYaml } = await import("../src/config/yaml.ts");
  const { normalizeConfig } = await import("../src/config/model.ts");
  const text = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = text.slice(text.indexOf("## Access control"));
  const yaml = section.slice(
    section.indexOf("```yaml") + 7,
    section.indexOf("```", section.indexOf("```yaml") + 7),
  );
  const cfg = normalizeConfig(parseYaml(yaml), { strict: true });
  assert.equal(cfg.services![0]!.admission, "office");
  assert.equal(cfg.limiters![0]!.limits!.length, 3);
});

Deno.test("the README's reverse-tunnel YAML example is a valid strict config", async () => {
  const { parseYaml } = await import("../src/config/yaml.ts");
  const { normalizeConfig } = await import("../src/config/model.ts");
  const text = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = text.slice(text.indexOf("## Reverse tunnels"));
  const yaml = section.slice(
    section.indexOf("```yaml") + 7,
    section.indexOf("```", section.indexOf("```yaml") + 7),
  );
  const cfg = normalizeConfig(parseYaml(yaml), { strict: true });
  assert.equal(cfg.services![0]!.listener.chain, "to-srv");
});
