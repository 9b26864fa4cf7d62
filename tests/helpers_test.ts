import assert from "node:assert/strict";
import { childOnPort, stopChild } from "./_helpers.ts";

/** A child that listens on `port` until killed. */
function listener(port: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const l = Deno.listen({ hostname: "127.0.0.1", port: ${port} });` +
      "for await (const c of l) c.close();",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test("test helpers: childOnPort starts a child again on another port when the first one was taken (the child exits, a stranger answers)", async () => {
  const ports: number[] = [];
  let stranger: Deno.Listener | undefined;
  const { child, port } = await childOnPort((p) => {
    ports.push(p);
    if (ports.length === 1) {
      // Someone else took the port: the child fails to bind and exits.
      stranger = Deno.listen({ hostname: "127.0.0.1", port: p });
      return new Deno.Command("sh", { args: ["-c", "exit 3"], stdout: "null", stderr: "null" })
        .spawn();
    }
    return listener(p);
  }, "listener");
  try {
    assert.equal(ports.length, 2, "a second start");
    assert.equal(port, ports[1]);
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
  } finally {
    stranger?.close();
    stopChild(child);
    await child.status;
  }
});

Deno.test("test helpers: portForChild never hands out the same port twice in a run", async () => {
  const { portForChild } = await import("./_helpers.ts");
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const p = portForChild(i % 2 === 0);
    assert.ok(!seen.has(p), `port ${p} handed out twice`);
    seen.add(p);
  }
});
