/** One set of value rules for config fields and metadata. */
import assert from "node:assert/strict";
import { toBool, toDurationMs, toInt, toStr } from "../../src/core/values.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { normalizeConfig } from "../../src/config/model.ts";

Deno.test("values: Go's weak typing, one rule set", () => {
  for (const t of [true, 1, "1", "t", "TRUE", "yes", "on", "2"]) assert.equal(toBool(t, "p"), true);
  for (const f of [false, 0, "0", "F", "false", "no", "off", ""]) {
    assert.equal(toBool(f, "p"), false);
  }
  assert.equal(toBool(undefined, "p"), undefined);
  assert.throws(() => toBool("maybe", "a.b"), /a\.b: expected true or false/);
  assert.equal(toInt(" 42 ", "p"), 42);
  assert.equal(toInt(true, "p"), 1);
  assert.throws(() => toInt("4.2", "x"), /x: expected an integer/);
  assert.equal(toDurationMs("1m30s", "p"), 90_000);
  assert.equal(toDurationMs(2, "p"), 2000);
  assert.throws(() => toDurationMs("-1s", "d"), /d: expected a duration/);
  assert.equal(toStr(5, "p"), "5");
  assert.throws(() => toStr({}, "s"), /s: expected a string, got a object/);
});

Deno.test("config fields and metadata read a value the same way", () => {
  const md = new Metadata({ keepalive: "on", ttl: "-5s" }, "m");
  assert.equal(md.bool("keepalive"), true);
  assert.throws(() => md.duration("ttl"), /m\.ttl: expected a duration/);
  assert.throws(
    () =>
      normalizeConfig({
        chains: [{
          name: "c",
          hops: [{
            name: "h",
            selector: { failTimeout: "-5s" },
            nodes: [{ name: "x", addr: "a:1" }],
          }],
        }],
      }),
    /chains\[0\]\.hops\[0\]\.selector\.failTimeout: expected a duration/,
  );
});
