/** Helpers for benchmarks that run Burrow in a child process, as users do. */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A free loopback TCP port (bound and released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Starts `main.ts` with `args`; resolves once `probePort` accepts connections (0: after a pause). */
export async function startBurrow(
  args: string[],
  probePort: number,
): Promise<{ stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, ...args],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // A UDP-only service has no TCP port to probe: give it a moment instead.
  if (probePort === 0) await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < 200 && probePort !== 0; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: probePort });
      c.close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
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
