/** The layering rule (docs/architecture.md §2) holds for the whole tree, and the checker bites. */
import assert from "node:assert/strict";
import { checkLayers, importsOf, violation } from "../scripts/layers.ts";

Deno.test("src/ imports point only down the layers", async () => {
  const problems = await checkLayers(new URL("../src", import.meta.url).pathname);
  assert.deepEqual(problems, []);
});

Deno.test("layer checker refuses upward and sideways imports", () => {
  assert.deepEqual(violation("proxy/http/handler.ts", "core/conn.ts"), null);
  assert.deepEqual(violation("transport/ws/mod.ts", "transport/tls/mod.ts"), null);
  assert(violation("core/conn.ts", "proxy/common.ts")?.includes("a higher layer"));
  assert(violation("transport/ws/mod.ts", "proxy/common.ts")?.includes("sibling"));
  assert(violation("kcp/session.ts", "mux/smux/mod.ts")?.includes("sibling"));
  assert(violation("newthing/x.ts", "core/conn.ts")?.includes("has no layer"));
  assert.deepEqual(importsOf("proxy/http/handler.ts", 'import { a } from "../../core/conn.ts";'), [
    "core/conn.ts",
  ]);
  assert.deepEqual(importsOf("cli.ts", 'const m = await import("./runtime.ts");'), ["runtime.ts"]);
});
