import assert from "node:assert/strict";
import { pipe } from "../../src/core/pipe.ts";
import { relay } from "../../src/core/relay.ts";
import { randomBytes, readAll, sha256, withTimeout, writeChunks } from "../_helpers.ts";

Deno.test("relay copies both ways byte-exact and propagates half-close", async () => {
  const [client, a] = pipe();
  const [b, server] = pipe();
  const done = relay(a, b);
  const up = randomBytes(1 << 20);
  const down = randomBytes(300_000);
  const serverSide = (async () => {
    const got = await readAll(server);
    await writeChunks(server, down);
    await server.closeWrite();
    return got;
  })();
  await writeChunks(client, up, 7000);
  await client.closeWrite();
  const back = await readAll(client);
  const got = await withTimeout(serverSide, 5000);
  assert.equal(await sha256(got), await sha256(up));
  assert.equal(await sha256(back), await sha256(down));
  const r = await withTimeout(done, 5000);
  assert.equal(r.aToB, up.length);
  assert.equal(r.bToA, down.length);
  assert.equal(r.error, undefined);
});

Deno.test("relay closes both sides when one side fails", async () => {
  const [client, a] = pipe();
  const [b, server] = pipe();
  const done = relay(a, b);
  await client.write(new Uint8Array([1, 2, 3]));
  const buf = new Uint8Array(3);
  assert.equal(await server.read(buf), 3);
  server.close(); // the upstream dies: the next write towards it fails
  await client.write(new Uint8Array([4]));
  const r = await withTimeout(done, 2000);
  assert.ok(r.error instanceof Error);
  assert.equal(await withTimeout(client.read(buf), 2000), null);
});
