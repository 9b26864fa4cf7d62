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
