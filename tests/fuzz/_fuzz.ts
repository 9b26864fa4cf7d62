/**
 * Fuzzing helpers: a seeded PRNG (fixed seeds, so a failure replays), mutations of valid inputs,
 * and the property every parser must keep: it returns, or throws one of our own errors (a
 * TunnelError or UsageError) — never a TypeError, RangeError or a hang.
 *
 * `FUZZ_LONG=1 deno task test tests/fuzz/` (or `deno task fuzz`) runs 50× the cases.
 */
import { TunnelError } from "../../src/core/errors.ts";
import { UsageError } from "../../src/config/cli.ts";

export const ROUNDS = Deno.env.get("FUZZ_LONG") ? 50 : 1;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One mutation of `seed`: bit flips, byte sets, truncation, insertion, duplication, or noise. */
export function mutate(seed: Uint8Array, rnd: () => number): Uint8Array {
  const int = (n: number) => Math.floor(rnd() * n);
  let b = seed.slice();
  const steps = 1 + int(4);
  for (let s = 0; s < steps; s++) {
    switch (int(7)) {
      case 0: // flip a bit
        if (b.length) b[int(b.length)]! ^= 1 << int(8);
        break;
      case 1: // an interesting byte
        if (b.length) b[int(b.length)] = [0, 0xff, 0x7f, 0x80, 1, 0x0d, 0x0a][int(7)]!;
        break;
      case 2: // truncate
        b = b.subarray(0, int(b.length + 1));
        break;
      case 3: { // insert random bytes
        const at = int(b.length + 1);
        const ins = new Uint8Array(1 + int(16)).map(() => int(256));
        const o = new Uint8Array(b.length + ins.length);
        o.set(b.subarray(0, at));
        o.set(ins, at);
        o.set(b.subarray(at), at + ins.length);
        b = o;
        break;
      }
      case 4: { // duplicate a slice
        const from = int(b.length + 1);
        const part = b.subarray(from, from + 1 + int(32));
        const o = new Uint8Array(b.length + part.length);
        o.set(b);
        o.set(part, b.length);
        b = o;
        break;
      }
      case 5: // big-endian length fields go extreme
        if (b.length > 2) {
          const i = int(b.length - 1);
          b[i] = 0xff;
          b[i + 1] = 0xff;
        }
        break;
      default: // pure noise
        b = new Uint8Array(int(64)).map(() => int(256));
    }
  }
  return b;
}

/** True for the errors a parser may throw on bad input. */
export function expected(e: unknown): boolean {
  return e instanceof TunnelError || e instanceof UsageError;
}

/**
 * Runs `f` on `cases` mutations of each seed; fails on the first unexpected error, naming the
 * seed, case number and input so it can be replayed.
 */
export async function fuzz(
  name: string,
  seeds: Uint8Array[],
  cases: number,
  f: (input: Uint8Array) => unknown,
  seed = 1,
): Promise<void> {
  const rnd = prng(seed);
  for (let k = 0; k < seeds.length; k++) {
    for (let i = 0; i < cases * ROUNDS; i++) {
      const input = i === 0 ? seeds[k]! : mutate(seeds[k]!, rnd);
      try {
        await f(input);
      } catch (e) {
        if (!expected(e)) {
          const hex = Array.from(input.subarray(0, 64), (x) => x.toString(16).padStart(2, "0"));
          throw new Error(
            `${name}: seed ${k} case ${i}: unexpected ${e instanceof Error ? e.name : typeof e}: ${
              e instanceof Error ? e.message : String(e)
            } on ${hex.join("")}`,
            { cause: e },
          );
        }
      }
    }
  }
}
