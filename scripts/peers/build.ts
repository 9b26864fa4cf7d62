/**
 * Builds our Go interop peers (scripts/peers/<name>) against Debian's Go libraries; the tests
 * and the benchmarks share them.
 * @module
 */
/** True when `cmd` is on PATH. */
function hasCommand(cmd: string): boolean {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const cache = new Map<string, Promise<string | null>>();

/** Path of the built peer binary, or null (with a reason logged) when Go or the library is missing. */
export function goPeer(name: string, needs: string): Promise<string | null> {
  let p = cache.get(name);
  if (!p) {
    p = build(name, needs);
    cache.set(name, p);
  }
  return p;
}

async function build(name: string, needs: string): Promise<string | null> {
  if (!hasCommand("go")) {
    console.warn(`go not found: skipping ${name} interop tests (CI installs golang-go)`);
    return null;
  }
  try {
    Deno.statSync(`/usr/share/gocode/src/${needs}`);
  } catch {
    console.warn(`${needs} not in /usr/share/gocode: skipping ${name} interop tests`);
    return null;
  }
  const dir = Deno.makeTempDirSync({ prefix: `burrow-${name}-` });
  const src = new URL(`./${name}/main.go`, import.meta.url).pathname;
  Deno.mkdirSync(`${dir}/src/${name}`, { recursive: true });
  Deno.copyFileSync(src, `${dir}/src/${name}/main.go`);
  const out = await new Deno.Command("go", {
    args: ["build", "-o", `${dir}/${name}`, name],
    cwd: dir,
    env: {
      GO111MODULE: "off",
      GOPATH: `${dir}:/usr/share/gocode`,
      GOCACHE: `${dir}/cache`,
      GOFLAGS: "-mod=mod",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    console.warn(`building ${name} peer failed: ${new TextDecoder().decode(out.stderr)}`);
    return null;
  }
  return `${dir}/${name}`;
}

/** Starts a peer that prints `LISTEN <addr>` and resolves its port. */
export async function startListeningPeer(
  bin: string,
  args: string[],
): Promise<{ port: number; child: Deno.ChildProcess; stop: () => Promise<void> }> {
  const child = new Deno.Command(bin, { args, stdout: "piped", stderr: "inherit" }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!/LISTEN \S+:(\d+)/.test(text)) {
    const r = await reader.read();
    if (r.done) throw new Error(`peer exited before listening: ${text}`);
    text += new TextDecoder().decode(r.value);
  }
  reader.releaseLock();
  const port = Number(/LISTEN \S+:(\d+)/.exec(text)![1]);
  return {
    port,
    child,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}
