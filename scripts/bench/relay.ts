/** Raw TCP baseline and our relay() between two TCP sockets, MB/s on loopback. */
import type { BenchRow } from "./types.ts";
import { SocketConn } from "../../src/transport/tcp/conn.ts";
import { relay } from "../../src/core/relay.ts";

const TOTAL = 512 * 1024 * 1024;

/** Sends TOTAL bytes to `port` and waits for the sink to count them. */
async function push(port: number, sink: Promise<number>): Promise<number> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(64 * 1024);
  const t0 = performance.now();
  const conn = new SocketConn(c);
  for (let sent = 0; sent < TOTAL; sent += buf.length) await conn.write(buf);
  await conn.closeWrite();
  const got = await sink;
  const ms = performance.now() - t0;
  conn.close();
  if (got !== TOTAL) throw new Error(`sink got ${got} of ${TOTAL}`);
  return TOTAL / 1e6 / (ms / 1000);
}

/** A sink that counts bytes of one connection. */
function sink(): { port: number; done: Promise<number> } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const c = await l.accept();
    l.close();
    const buf = new Uint8Array(256 * 1024);
    let n = 0;
    for (;;) {
      const r = await c.read(buf);
      if (r === null) break;
      n += r;
    }
    c.close();
    return n;
  })();
  return { port: (l.addr as Deno.NetAddr).port, done };
}

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const s1 = sink();
  rows.push({ name: "raw TCP (Deno read/write)", mbps: await push(s1.port, s1.done) });

  const s2 = sink();
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const relayDone = (async () => {
    const a = new SocketConn(await l.accept());
    l.close();
    const b = new SocketConn(await Deno.connect({ hostname: "127.0.0.1", port: s2.port }));
    await relay(a, b);
  })();
  rows.push({ name: "tcp relay() hop", mbps: await push((l.addr as Deno.NetAddr).port, s2.done) });
  await relayDone;
  return rows;
}
