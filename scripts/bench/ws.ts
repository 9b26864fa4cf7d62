/** ws, wss and mws throughput: Burrow client and server as two processes, one stream. */
import type { BenchRow } from "./types.ts";
import { countingSink, freePort, peakKiB, pushThrough, startBurrow } from "./proc.ts";
import { goPeer, startListeningPeer } from "../peers/build.ts";

const ECHO_BYTES = 64 << 20;

/** A TCP echo server in this process. */
function echoServer(): { port: number; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) {
      (async () => {
        const b = new Uint8Array(256 * 1024);
        for (;;) {
          const n = await c.read(b).catch(() => null);
          if (n === null) break;
          let o = 0;
          while (o < n) o += await c.write(b.subarray(o, n)).catch(() => n);
        }
        c.close();
      })();
    }
  })().catch(() => {});
  return { port: l.addr.port, close: () => l.close() };
}

/** MB/s of a gorilla client echoing ECHO_BYTES through `url` (both directions counted). */
async function gorillaEcho(bin: string, url: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(bin, {
    args: ["-mode", "client", "-url", url, "-bytes", String(ECHO_BYTES)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return (2 * ECHO_BYTES) / 1e6 / ((performance.now() - t0) / 1000);
}

/**
 * gorilla/websocket's default client (4 KiB write buffer: many small frames) echoing through
 * Burrow's ws listener (forwarding to an echo server), against gorilla's own echo server; median
 * of three, same run.
 */
async function gorillaRows(): Promise<BenchRow[]> {
  const bin = await goPeer("ws", "github.com/gorilla/websocket");
  if (!bin) return [{ name: "gorilla ws echo", note: "skipped: Go or gorilla/websocket missing" }];
  const echo = echoServer();
  const gorilla = await startListeningPeer(bin, ["-mode", "server", "-addr", "127.0.0.1:0"]);
  const bp = freePort();
  const burrow = await startBurrow(["-L", `ws://127.0.0.1:${bp}/127.0.0.1:${echo.port}`], bp);
  try {
    const median = async (url: string) => {
      const r = [];
      for (let i = 0; i < 3; i++) r.push(await gorillaEcho(bin, url));
      return r.sort((a, b) => a - b)[1]!;
    };
    const peer = await median(`ws://127.0.0.1:${gorilla.port}/ws`);
    const ours = await median(`ws://127.0.0.1:${bp}/ws`);
    return [
      { name: "gorilla client ⇄ gorilla echo server (64 MiB each way)", mbps: peer },
      {
        name: "gorilla client ⇄ burrow ws listener → echo (64 MiB each way)",
        mbps: ours,
        note: `${(ours / peer).toFixed(2)}× gorilla's own pair`,
      },
    ];
  } finally {
    await burrow.stop();
    await gorilla.stop();
    echo.close();
  }
}

const TOTAL = 512 * 1024 * 1024;

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const t of ["ws", "wss", "mws", "tls"]) {
    const sink = countingSink();
    const [sp, cp] = [freePort(), freePort()];
    const srv = await startBurrow(["-L", `${t}://127.0.0.1:${sp}/127.0.0.1:${sink.port}`], sp);
    const cli = await startBurrow([
      "-L",
      `tcp://127.0.0.1:${cp}/127.0.0.1:${sink.port}`,
      "-F",
      `forward+${t}://127.0.0.1:${sp}`,
    ], cp);
    try {
      rows.push({
        name: `${t} 1 stream (2 process hops)`,
        mbps: await pushThrough(cp, TOTAL, sink.next()),
      });
    } finally {
      await cli.stop();
      await srv.stop();
      sink.close();
    }
  }
  for (const t of ["wss", "tls"]) rows.push(await downRow(t));
  rows.push(...await gorillaRows());
  return rows;
}

/**
 * TLS clients on the way down, where Deno's node:tls hands every chunk over in a fresh buffer
 * (docs/performance.md, "Buffers V8 does not collect for"): MB/s and the client's peak RSS.
 */
async function downRow(t: string): Promise<BenchRow> {
  // A source that sends TOTAL bytes to each conn, then closes it.
  const src = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of src) {
      (async () => {
        const b = new Uint8Array(256 * 1024);
        try {
          for (let sent = 0; sent < TOTAL;) sent += await c.write(b.subarray(0, TOTAL - sent));
        } catch { /* the reader left */ }
        c.close();
      })();
    }
  })().catch(() => {});
  const srv = await startBurrow(["-L", `${t}://127.0.0.1:0/127.0.0.1:${src.addr.port}`]);
  const cli = await startBurrow([
    "-L",
    `tcp://127.0.0.1:0/127.0.0.1:${src.addr.port}`,
    "-F",
    `forward+${t}://127.0.0.1:${srv.ports[0]}`,
  ]);
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: cli.ports[0]! });
    const b = new Uint8Array(256 * 1024);
    const t0 = performance.now();
    let got = 0;
    for (;;) {
      const n = await c.read(b);
      if (n === null) break;
      got += n;
    }
    c.close();
    if (got !== TOTAL) throw new Error(`${t} down: ${got} of ${TOTAL} bytes`);
    return {
      name: `${t} 1 stream, down (2 process hops)`,
      mbps: got / 1e6 / ((performance.now() - t0) / 1000),
      note: `client peak ${(peakKiB(cli.pid) / 1024).toFixed(0)} MiB`,
    };
  } finally {
    await cli.stop();
    await srv.stop();
    src.close();
  }
}
