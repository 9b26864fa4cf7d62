/** The package publishes: `deno publish --dry-run` finds no slow types and a license (issue #18). */
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
