/**
 * The Conn contract, run against every implementation: ordered bytes both ways, half-close
 * (where the transport has it), close wakes a blocked reader, write-after-close fails, and
 * back-pressure (a writer to a stalled reader does not run away).
 *
 * `makePair` returns two connected conns and a cleanup; the suite closes the conns itself.
 */
import assert from "node:assert/strict";
import type { Conn } from "../../src/core/conn.ts";
import { randomBytes, readAll, sha256, withTimeout, writeChunks } from "../_helpers.ts";

export interface ConnPair {
  a: Conn;
  b: Conn;
  cleanup?: () => Promise<void>;
}

export interface SuiteOptions {
  /** The transport ends both directions on closeWrite (smux FIN). */
  noHalfClose?: boolean;
  /** Bytes per direction for the ordered-bytes test. Default 1 MiB. */
  size?: number;
  /** Skip the back-pressure check (transports with unbounded kernel buffering). */
  noBackPressure?: boolean;
  /** Buffering allowed before a writer to a stalled reader must block. Default 16 MiB. */
  maxBuffered?: number;
}

export function runConnSuite(
  name: string,
  makePair: () => Promise<ConnPair>,
  opts: SuiteOptions = {},
): void {
  const size = opts.size ?? 1 << 20;

  Deno.test(`${name}: bytes arrive in order, byte-exact, both directions at once`, async () => {
    const { a, b, cleanup } = await withTimeout(makePair(), 30_000, `${name}: connecting the pair`);
    try {
      const up = randomBytes(size);
      const down = randomBytes(size / 2);
      const readN = async (c: Conn, n: number) => {
        const buf = new Uint8Array(n);
        let off = 0;
        while (off < n) {
          const k = await c.read(buf.subarray(off));
          if (k === null) break;
          off += k;
        }
        return buf.subarray(0, off);
      };
      // Without half-close each side reads the known length, then closes its write side.
      const sideB = async () => {
        const r = opts.noHalfClose ? readN(b, up.length) : readAll(b);
        await writeChunks(b, down, 3000);
        if (!opts.noHalfClose) await b.closeWrite();
        return await r;
      };
      const sideA = async () => {
        const r = opts.noHalfClose ? readN(a, down.length) : readAll(a);
        await writeChunks(a, up, 5000);
        if (!opts.noHalfClose) await a.closeWrite();
        return await r;
      };
      const [gotB, gotA] = await withTimeout(Promise.all([sideB(), sideA()]), 20_000, "transfer");
      assert.equal(await sha256(gotB), await sha256(up));
      assert.equal(await sha256(gotA), await sha256(down));
    } finally {
      a.close();
      b.close();
      await cleanup?.();
    }
  });

  if (!opts.noHalfClose) {
    Deno.test(`${name}: half-close — the peer reads EOF and can still answer`, async () => {
      const { a, b, cleanup } = await withTimeout(
        makePair(),
        30_000,
        `${name}: connecting the pair`,
      );
      try {
        await a.write(new TextEncoder().encode("question"));
        await a.closeWrite();
        const q = await withTimeout(readAll(b), 5000);
        assert.equal(new TextDecoder().decode(q), "question");
        await b.write(new TextEncoder().encode("answer"));
        await b.closeWrite();
        assert.equal(new TextDecoder().decode(await withTimeout(readAll(a), 5000)), "answer");
      } finally {
        a.close();
        b.close();
        await cleanup?.();
      }
    });
  }

  Deno.test(`${name}: close ends the peer's read and fails later writes`, async () => {
    const { a, b, cleanup } = await withTimeout(makePair(), 30_000, `${name}: connecting the pair`);
    try {
      await a.write(new Uint8Array([1]));
      const buf = new Uint8Array(8);
      assert.equal(await withTimeout(b.read(buf), 5000), 1);
      const pending = b.read(buf);
      a.close();
      assert.equal(await withTimeout(pending.catch(() => null), 5000), null);
      await assert.rejects(
        (async () => {
          for (let i = 0; i < 50; i++) {
            await a.write(new Uint8Array(1024));
            await new Promise((r) => setTimeout(r, 10));
          }
        })(),
      );
    } finally {
      a.close();
      b.close();
      await cleanup?.();
    }
  });

  if (!opts.noBackPressure) {
    Deno.test(`${name}: a writer to a stalled reader blocks instead of buffering without bound`, async () => {
      const { a, b, cleanup } = await withTimeout(
        makePair(),
        30_000,
        `${name}: connecting the pair`,
      );
      const limit = opts.maxBuffered ?? 16 << 20;
      try {
        let written = 0;
        // Incompressible, so bytes written ahead measure bytes buffered: a transport that
        // compresses (kcp's snappy) bounds its windows in wire bytes, and zeros shrink ~20×.
        const chunk = randomBytes(64 * 1024);
        let stalled = false;
        const writer = (async () => {
          while (written < limit * 2) {
            await a.write(chunk);
            written += chunk.length;
          }
        })().catch(() => {});
        const t = setTimeout(() => (stalled = true), 1500);
        while (!stalled && written < limit * 2) await new Promise((r) => setTimeout(r, 50));
        clearTimeout(t);
        assert.ok(written <= limit, `writer got ${written} bytes ahead of a stalled reader`);
        a.close();
        b.close();
        await writer;
      } finally {
        a.close();
        b.close();
        await cleanup?.();
      }
    });
  }
}
