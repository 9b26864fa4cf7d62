/** A local HTTP origin for proxy tests: /bytes?n=N serves N deterministic pseudo-random bytes. */

export function pseudoRandom(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface Origin {
  port: number;
  requests: string[];
  close(): Promise<void>;
}

export function startOrigin(): Origin {
  const requests: string[] = [];
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      const u = new URL(req.url);
      requests.push(`${req.method} ${u.pathname}${u.search}`);
      if (u.pathname === "/bytes") {
        const n = Number(u.searchParams.get("n") ?? "0");
        return new Response(pseudoRandom(n, n));
      }
      if (u.pathname === "/echo") return new Response(req.body);
      if (u.pathname === "/headers") return Response.json(Object.fromEntries(req.headers));
      return new Response("not found", { status: 404 });
    },
  );
  return {
    port: server.addr.port,
    requests,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

export async function curl(
  args: string[],
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "20", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/** Downloads `/bytes?n=N` from the origin with curl through `proxyArgs`; asserts byte-exact. */
export async function fetchVia(proxyArgs: string[], originPort: number, n: number): Promise<void> {
  const r = await curl([...proxyArgs, `http://127.0.0.1:${originPort}/bytes?n=${n}`]);
  if (r.code !== 0) throw new Error(`curl ${proxyArgs.join(" ")} failed (${r.code}): ${r.stderr}`);
  if (r.stdout.length !== n) throw new Error(`got ${r.stdout.length} of ${n} bytes`);
  const want = pseudoRandom(n, n);
  for (let i = 0; i < n; i++) if (r.stdout[i] !== want[i]) throw new Error(`byte ${i} differs`);
}
