/** The package publishes: `deno publish --dry-run` finds no slow types and a license, and `deno doc --lint` finds every export documented (issue #18). */
import assert from "node:assert/strict";

Deno.test("deno publish --dry-run is clean", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text.slice(-3000));
  assert.match(text, /Dry run complete/);
});

Deno.test("deno doc --lint mod.ts: every public symbol is documented and every type it uses is public", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", "mod.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  // Strip colours and the npm type-resolution warnings (@types/node), keep the lint errors.
  const text = (new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout))
    // deno-lint-ignore no-control-regex
    .replace(/\x1b\[[0-9;]*m/g, "").split("\n").filter((l) =>
      !l.startsWith("Warning") && !l.startsWith("    at ")
    ).join("\n");
  assert.equal(out.code, 0, text.slice(0, 3000));
});

Deno.test("deno task compile puts --target before main.ts (after it, flags would become the executable's baked-in arguments)", async () => {
  const { compileArgs, TARGETS } = await import("../scripts/compile.ts");
  for (const t of [undefined, ...TARGETS]) {
    const args = compileArgs(t);
    assert.equal(args.at(-1), "main.ts");
    if (t) assert.equal(args[args.indexOf("--target") + 1], t);
    if (t?.includes("windows")) assert.match(args[args.indexOf("--output") + 1]!, /\.exe$/);
  }
});
