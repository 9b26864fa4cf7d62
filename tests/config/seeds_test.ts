/**
 * Every CLI and YAML example of the user's reference pages (kept in tests/fixtures/seeds) parses
 * into a config. (Running them end to end is tested per transport.)
 */
import assert from "node:assert/strict";
import { parseArgs } from "../../src/config/cli.ts";
import { cliConfig } from "../../src/builtins.ts";
import { normalizeConfig } from "../../src/config/model.ts";
import { parseYaml } from "../../src/config/yaml.ts";

const SEEDS = new URL("../fixtures/seeds/", import.meta.url);

function seedFiles(): string[] {
  try {
    return [...Deno.readDirSync(SEEDS)].filter((e) => e.name.endsWith(".txt")).map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** Splits a shell command line (double and single quotes). */
function shellWords(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** Code blocks of a seed page: [language, dedented text]. */
function codeBlocks(text: string): [string, string][] {
  const out: [string, string][] = [];
  const re = /^([ \t]*)```(\w*)\n([\s\S]*?)^[ \t]*```/gm;
  for (const m of text.matchAll(re)) {
    const indent = m[1]!.length;
    const body = m[3]!.split("\n").map((
      l,
    ) => (l.startsWith(" ".repeat(indent)) ? l.slice(indent) : l.replace(/^\t/, ""))).join("\n");
    out.push([m[2]!, body]);
  }
  return out;
}

const files = seedFiles();
Deno.test({
  name: "seed pages are present",
  ignore: files.length === 0,
  fn: () => assert.ok(files.length >= 5),
});

for (const f of files) {
  const text = Deno.readTextFileSync(new URL(f, SEEDS));
  const blocks = codeBlocks(text);
  const cmds = blocks.filter(([lang]) => lang === "bash" || lang === "sh" || lang === "")
    .flatMap(([, b]) => b.split("\n")).map((l) => l.trim()).filter((l) => /^gost\s/.test(l));
  const yamls = blocks.filter(([lang]) => lang === "yaml").map(([, b]) => b);
  if (cmds.length === 0 && yamls.length === 0) continue;
  Deno.test(`seed ${f}: ${cmds.length} CLI and ${yamls.length} YAML examples parse`, () => {
    for (const cmd of cmds) {
      const args = parseArgs(shellWords(cmd).slice(1));
      const cfg = cliConfig(args.services, args.nodes);
      assert.ok((cfg.services?.length ?? 0) > 0 || (cfg.chains?.length ?? 0) > 0, cmd);
    }
    for (const y of yamls) {
      const raw = parseYaml(y);
      // Some pages show fragments (a kcptun config.json as YAML, a lone metadata map): only
      // whole GOST configs are validated.
      if (raw && typeof raw === "object" && ("services" in raw || "chains" in raw)) {
        normalizeConfig(raw);
      }
    }
  });
}
