import assert from "node:assert/strict";
import { Logger, textLine } from "../../src/core/log.ts";

Deno.test("logger writes one JSON object a line with GOST field names, filtered by level", () => {
  const lines: string[] = [];
  const log = new Logger("info", { service: "s" }, (l) => lines.push(l)).with({ kind: "handler" });
  log.debug("hidden");
  log.info("10.0.0.1:5 <> 127.0.0.1:80", { sid: "x" });
  log.error("boom", { error: new Error("bad") });
  assert.equal(lines.length, 2);
  const r = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(r), ["time", "level", "msg", "service", "kind", "sid"]);
  assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$/);
  assert.equal(JSON.parse(lines[1]!).error, "bad");
});

Deno.test("text format: time level msg key=value", () => {
  assert.equal(
    textLine({ time: "T", level: "info", msg: "hi there", service: "s-0", note: "a b" }),
    'T info "hi there" service=s-0 note="a b"',
  );
});
