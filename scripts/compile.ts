/**
 * `deno task compile [target...]`: one self-contained executable per target (default: this
 * machine), named `burrow` or `burrow-<target>`. Flags must precede `main.ts`: anything after it
 * would be baked into the executable as its arguments, so `deno compile ... main.ts --target x`
 * is a trap this script avoids. `--print` shows the commands without running them.
 * @module
 */

/** The targets `deno compile` supports. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/** The `deno` arguments that build `target` (undefined: this machine). */
export function compileArgs(target?: string): string[] {
  const out = target ? `burrow-${target}` : "burrow";
  return [
    "compile",
    "-A",
    "--unstable-net",
    ...(target ? ["--target", target] : []),
    "--output",
    target?.includes("windows") ? `${out}.exe` : out,
    "main.ts",
  ];
}

if (import.meta.main) {
  const print = Deno.args.includes("--print");
  const targets = Deno.args.filter((a) => a !== "--print");
  for (const t of targets) {
    if (!TARGETS.includes(t)) {
      console.error(`unknown target ${t}; one of: ${TARGETS.join(", ")}`);
      Deno.exit(2);
    }
  }
  for (const t of targets.length ? targets : [undefined]) {
    const args = compileArgs(t);
    console.log(`deno ${args.join(" ")}`);
    if (print) continue;
    const { code } = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: new URL("..", import.meta.url).pathname,
    }).spawn().status;
    if (code !== 0) Deno.exit(code);
  }
}
