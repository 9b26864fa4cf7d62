/** The ARQ engine drops malformed datagrams and says why, keeping state intact. */
import assert from "node:assert/strict";
import { Kcp } from "../../src/kcp/arq.ts";

Deno.test("kcp input: short, foreign, truncated and unknown-command datagrams are refused by name", () => {
  const k = new Kcp(7, () => {}, () => 0);
  assert.equal(k.input(new Uint8Array(10)), "short");
  const seg = (conv: number, cmd: number, len: number, extra = 0) => {
    const d = new Uint8Array(24 + extra);
    const v = new DataView(d.buffer);
    v.setUint32(0, conv, true);
    d[4] = cmd;
    v.setUint32(20, len, true);
    return d;
  };
  assert.equal(k.input(seg(8, 81, 0)), "conv");
  assert.equal(k.input(seg(7, 81, 100, 10)), "truncated");
  assert.equal(k.input(seg(7, 99, 0)), "command");
  assert.equal(k.input(seg(7, 84, 0)), null, "a window probe answer (WINS) is taken");
});
