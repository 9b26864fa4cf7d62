/**
 * Checks the layering rule of docs/architecture.md §2: every module of `src/` sits in a layer,
 * and a relative import may only point to a lower layer or stay inside its own group
 * (`transport/*` may use `transport/*`, never `proxy/*`).
 *
 *     deno run --allow-read scripts/layers.ts     # prints violations, exits 1 if any
 * @module
 */

/** Layers from the bottom up; a group is a folder (or file) directly under `src/`. */
export const LAYERS: readonly (readonly string[])[] = [
  ["core", "version.ts"],
  ["protocol", "config"],
  ["mux", "kcp", "bundle"],
  ["transport", "proxy"],
  ["access", "resolver"],
  ["chain"],
  ["service.ts", "builtins.ts", "metrics"],
  ["runtime"],
  ["api"],
  ["cli.ts"],
];

/** The group of a path relative to `src/` (`proxy/http/handler.ts` → `proxy`). */
export function groupOf(srcPath: string): string {
  return srcPath.split("/")[0]!;
}

/** The layer index of a group, or -1 when the group is not placed. */
export function layerOf(group: string): number {
  return LAYERS.findIndex((l) => l.includes(group));
}

/** Why `from` may not import `to` (paths relative to `src/`), or null when it may. */
export function violation(from: string, to: string): string | null {
  const gf = groupOf(from);
  const gt = groupOf(to);
  if (gf === gt) return null;
  const lf = layerOf(gf);
  const lt = layerOf(gt);
  if (lf < 0) return `${from}: its group "${gf}" has no layer (add it to scripts/layers.ts)`;
  if (lt < 0) return `${to}: its group "${gt}" has no layer (add it to scripts/layers.ts)`;
  if (lt < lf) return null;
  const how = lt === lf ? "a sibling group of the same layer" : "a higher layer";
  return `${from} imports ${to}: ${how} ("${gt}" from "${gf}")`;
}

const IMPORT = /(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g;

/** Relative imports of one source text, resolved against its path (relative to `src/`). */
export function importsOf(srcPath: string, text: string): string[] {
  const out: string[] = [];
  const dir = srcPath.split("/").slice(0, -1);
  for (const m of text.matchAll(IMPORT)) {
    const parts = [...dir];
    for (const seg of m[1]!.split("/")) {
      if (seg === "..") parts.pop();
      else if (seg !== ".") parts.push(seg);
    }
    out.push(parts.join("/"));
  }
  return out;
}

/** Every violation under `srcDir`. */
export async function checkLayers(srcDir: string): Promise<string[]> {
  const problems: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for await (const e of Deno.readDir(`${srcDir}/${rel}`)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p);
      else if (p.endsWith(".ts")) {
        const text = await Deno.readTextFile(`${srcDir}/${p}`);
        for (const to of importsOf(p, text)) {
          if (to.startsWith("..")) problems.push(`${p} imports ${to}: outside src/`);
          const v = violation(p, to);
          if (v) problems.push(v);
        }
      }
    }
  };
  await walk("");
  return problems;
}

if (import.meta.main) {
  const src = new URL("../src", import.meta.url).pathname;
  const problems = await checkLayers(src);
  for (const p of problems) console.log(p);
  if (problems.length > 0) Deno.exit(1);
  console.log("layers: ok");
}
