import assert from "node:assert/strict";
import { FecDecoder, FecEncoder, ReedSolomon } from "../../src/kcp/fec.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("Reed–Solomon matrix and known answers match klauspost/reedsolomon (docs/kcp.md §5.3–5.4)", () => {
  const rs = new ReedSolomon(10, 3);
  assert.deepEqual([...rs.matrix[10]!], [129, 150, 175, 184, 210, 196, 254, 232, 3, 2]);
  assert.deepEqual([...rs.matrix[11]!], [150, 129, 184, 175, 196, 210, 232, 254, 2, 3]);
  assert.deepEqual([...rs.matrix[12]!], [191, 214, 98, 10, 6, 111, 223, 183, 5, 4]);
  const rs32 = new ReedSolomon(3, 2);
  assert.deepEqual([...rs32.matrix[3]!], [1, 1, 1]);
  assert.deepEqual([...rs32.matrix[4]!], [15, 8, 6]);
  const kat = new ReedSolomon(5, 5).encode(
    [[0, 1], [4, 5], [2, 3], [6, 7], [8, 9]].map((x) => new Uint8Array(x)),
  );
  assert.deepEqual(kat.map((p) => [...p]), [[12, 13], [10, 11], [14, 15], [90, 91], [94, 95]]);
});

Deno.test("FEC encoder group vector (10+3) is byte-identical to kcp-go", () => {
  const enc = new FecEncoder(10, 3);
  const out: Uint8Array[] = [];
  for (let k = 0; k < 10; k++) {
    out.push(...enc.encode(Uint8Array.from({ length: k + 1 }, (_, j) => 16 * k + j)));
  }
  assert.equal(out.length, 13);
  assert.equal(hex(out[0]!), "00000000f100030000");
  assert.equal(hex(out[9]!), "09000000f1000c0090919293949596979899");
  assert.equal(hex(out[10]!), "0a000000f2008e00a02019a7a4a6e7f7a82f");
  assert.equal(hex(out[11]!), "0b000000f2003d00b0276439b4118aebb8b6");
  assert.equal(hex(out[12]!), "0c000000f200f900c07ef1e300838affc85e");
});

Deno.test("FEC decoder recovers lost data packets from parity (seeded random losses)", () => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const enc = new FecEncoder(10, 3);
  const dec = new FecDecoder(10, 3);
  let recovered = 0;
  for (let group = 0; group < 20; group++) {
    const payloads = Array.from(
      { length: 10 },
      () => crypto.getRandomValues(new Uint8Array(20 + Math.floor(rnd() * 1000))),
    );
    const pkts = payloads.flatMap((p) => enc.encode(p));
    // Drop up to 3 of the 13 packets of the group.
    const drop = new Set<number>();
    while (drop.size < Math.floor(rnd() * 4)) drop.add(Math.floor(rnd() * 13));
    const got = new Map<number, Uint8Array>();
    pkts.forEach((p, i) => {
      if (drop.has(i)) return;
      if (i < 10) got.set(i, p.subarray(8));
      for (const r of dec.decode(p)) {
        const idx = payloads.findIndex((x) =>
          x.length === r.length && x.every((b, j) => b === r[j])
        );
        assert.ok(idx >= 0, "recovered payload is one of the lost ones");
        got.set(idx, r);
        recovered++;
      }
    });
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(got.get(i), payloads[i], `group ${group} packet ${i}`);
    }
  }
  assert.ok(recovered > 0);
});

/** Shift-and-add GF(2^8) multiply (polynomial 0x11d): independent of the engine's tables. */
function slowMul(a: number, b: number): number {
  let r = 0;
  for (; b > 0; b >>= 1) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x11d;
  }
  return r;
}

Deno.test("Reed–Solomon parity: word-at-a-time path equals the byte path and a bitwise reference", () => {
  const rs = new ReedSolomon(10, 3);
  const len = 1301; // not a multiple of 4: the tail runs bytewise
  const backing = crypto.getRandomValues(new Uint8Array(10 * (len + 3) + 8));
  const aligned = Array.from({ length: 10 }, (_, i) => backing.slice(i * len, (i + 1) * len));
  // Same bytes at odd offsets: forces the bytewise path.
  const odd = aligned.map((s) => {
    const b = new Uint8Array(len + 1);
    b.set(s, 1);
    return b.subarray(1);
  });
  const fast = rs.encode(aligned);
  const slow = rs.encode(odd);
  assert.deepEqual(fast, slow);
  for (let p = 0; p < 3; p++) {
    const row = rs.matrix[10 + p]!;
    for (const i of [0, 1, 2, 3, 4, 517, 1296, 1299, 1300]) {
      let want = 0;
      for (let j = 0; j < 10; j++) want ^= slowMul(row[j]!, aligned[j]![i]!);
      assert.equal(fast[p]![i], want, `parity ${p} byte ${i}`);
    }
  }
});

Deno.test("FEC in-place framing with envelope headroom equals the plain encoder, byte for byte", () => {
  const plain = new FecEncoder(10, 3);
  const inPlace = new FecEncoder(10, 3);
  for (let k = 0; k < 25; k++) {
    const kcp = crypto.getRandomValues(new Uint8Array(24 + ((k * 97) % 1300)));
    const want = plain.encode(kcp);
    const d = new Uint8Array(20 + 8 + kcp.length);
    d.set(kcp, 28);
    const parity = inPlace.encodeInPlace(d, 20);
    assert.deepEqual(d.subarray(20), want[0]);
    assert.equal(parity.length, want.length - 1);
    parity.forEach((p, i) => assert.deepEqual(p.subarray(20), want[i + 1]));
  }
});

Deno.test("FEC encoder parity equals Reed–Solomon's reference for several shapes and ragged sizes", () => {
  for (const [ds, ps] of [[1, 1], [2, 1], [3, 2], [5, 5], [10, 3]] as const) {
    const enc = new FecEncoder(ds, ps);
    const rs = new ReedSolomon(ds, ps);
    for (let g = 0; g < 3; g++) {
      const shards: Uint8Array[] = [];
      let parity: Uint8Array[] = [];
      for (let k = 0; k < ds; k++) {
        const kcp = crypto.getRandomValues(new Uint8Array(1 + ((k * 131 + g * 57) % 1390)));
        const out = enc.encode(kcp);
        shards.push(out[0]!.subarray(6)); // size ‖ KCP bytes
        parity = out.slice(1);
      }
      assert.equal(parity.length, ps, `${ds}+${ps}: a group ends with its parity`);
      const len = Math.max(...shards.map((s) => s.length));
      const padded = shards.map((s) => {
        const b = new Uint8Array(len);
        b.set(s);
        return b;
      });
      const want = rs.encode(padded);
      parity.forEach((p, i) => assert.deepEqual(p.subarray(6), want[i], `${ds}+${ps} parity ${i}`));
    }
  }
});
