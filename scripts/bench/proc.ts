/** Helpers for benchmarks that run Burrow in a child process, as users do. */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A free loopback TCP port (bound and released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Writes all of `b`: a Deno socket's `write` may take less than it is given. */
export async function writeAll(c: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let o = 0; o < b.length;) o += await c.write(o === 0 ? b : b.subarray(o));
}

/**
 * `BENCH_V8_FLAGS` passes V8 flags to the Burrow processes (for A/B runs of heap settings);
 * `BENCH_STDOUT=1` shows their stdout (where `--trace-gc` writes).
 */
function v8Flags(): string[] {
  const f = Deno.env.get("BENCH_V8_FLAGS");
  return f ? [`--v8-flags=${f}`] : [];
}

/**
 * Starts `main.ts` with `args` and resolves once every `-L` service has logged that it listens
 * (a UDP service has no TCP port to probe, and a fixed pause is a race on a busy machine).
 * `ports` are the bound ports, in `-L` order. `_probePort` is kept for older callers.
 */
export async function startBurrow(
  args: string[],
  _probePort = 0,
): Promise<{ stop: () => Promise<void>; ports: number[]; pid: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      ...v8Flags(),
      ...(Deno.env.get("BENCH_DENO_ARGS")?.split(" ").filter(Boolean) ?? []), // e.g. --cpu-prof
      MAIN,
      ...args,
    ],
    stdout: Deno.env.get("BENCH_STDOUT") ? "inherit" : "null",
    stderr: "piped",
  }).spawn();
  const want = args.filter((a) => a === "-L").length;
  const ports: number[] = [];
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 15_000;
  while (ports.length < want && Date.now() < deadline) {
    const r = await lines.read();
    if (r.done) break;
    text += r.value;
    let i: number;
    while ((i = text.indexOf("\n")) >= 0) {
      const line = text.slice(0, i);
      text = text.slice(i + 1);
      const m = /listening on .*:(\d+)\/(tcp|udp)/.exec(line);
      if (m) ports.push(Number(m[1]));
    }
  }
  if (ports.length < want) throw new Error(`burrow ${args.join(" ")}: did not start`);
  // Keep draining the log so the child never blocks on a full pipe.
  const draining = (async () => {
    try {
      while (!(await lines.read()).done) { /* discard */ }
    } catch { /* closed */ }
  })();
  return {
    ports,
    pid: child.pid,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await draining;
    },
  };
}

/**
 * A sink counting the bytes of every connection; `next()` resolves the count of the next
 * connection to finish with data (readiness probes' empty connections are ignored).
 */
export function countingSink(): { port: number; next: () => Promise<number>; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const waiting: ((n: number) => void)[] = [];
  const ready: number[] = [];
  (async () => {
    for await (const c of l) {
      (async () => {
        const buf = new Uint8Array(256 * 1024);
        let n = 0;
        try {
          for (;;) {
            const r = await c.read(buf);
            if (r === null) break;
            n += r;
          }
        } catch {
          /* reset */
        } finally {
          c.close();
        }
        if (n === 0) return; // readiness probes carry nothing
        const w = waiting.shift();
        if (w) w(n);
        else ready.push(n);
      })();
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    next: () => {
      if (ready.length > 0) return Promise.resolve(ready.shift()!);
      return new Promise<number>((res) => waiting.push(res));
    },
    close: () => l.close(),
  };
}

/**
 * Pushes `total` bytes into `port` (one connection), waits for `counted`; returns MB/s.
 * Random bytes unless `zeros`: compressing layers (kcp's snappy) must not flatter themselves.
 */
export async function pushThrough(
  port: number,
  total: number,
  counted: Promise<number>,
  zeros = false,
): Promise<number> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  c.setNoDelay(true);
  const buf = new Uint8Array(64 * 1024);
  if (!zeros) crypto.getRandomValues(buf);
  const t0 = performance.now();
  for (let sent = 0; sent < total;) {
    sent += await c.write(buf);
  }
  await c.closeWrite();
  const got = await counted;
  const ms = performance.now() - t0;
  c.close();
  if (got < total) throw new Error(`sink got ${got} of ${total} bytes`);
  return total / 1e6 / (ms / 1000);
}

/** A process's resident memory (KiB), from /proc (Linux). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

/** A process's peak resident memory so far (KiB, VmHWM), from /proc (Linux). */
export function peakKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

/** Waits until a TCP port accepts (for peers that print nothing). */
export async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

export /** Starts a peer program with its output discarded; returns its stop. */
function spawned(cmd: string, args: string[]): () => Promise<void> {
  const c = new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).spawn();
  return async () => {
    try {
      c.kill();
    } catch { /* gone */ }
    await c.status;
  };
}
