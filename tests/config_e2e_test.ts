import assert from "node:assert/strict";
import { loadConfigSource } from "../src/config/file.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { ConfigError } from "../src/core/errors.ts";
import { dialTcp } from "../src/core/socket.ts";
import { echoServer, readAll, withTimeout } from "./_helpers.ts";

Deno.test("a YAML config with services, a chain and a top-level hop runs end to end", async () => {
  const echo = echoServer();
  const dir = await Deno.makeTempDir();
  const edge = await Runtime.start({
    services: [{
      name: "edge",
      addr: "127.0.0.1:0",
      handler: { type: "tcp" },
      listener: { type: "tcp" },
      forwarder: { nodes: [{ name: "echo", addr: `127.0.0.1:${echo.port}` }] },
    }],
  });
  const edgePort = edge.services[0]!.listener.addr.port;
  await Deno.writeTextFile(
    `${dir}/burrow.yaml`,
    `
services:
- name: front
  addr: 127.0.0.1:0
  handler:
    type: forward
    chain: via-edge
  listener:
    type: tcp
  forwarder:
    selector: {strategy: fifo, maxFails: 1, failTimeout: 10s}
    nodes:
    - {name: t, addr: 127.0.0.1:${echo.port}}
chains:
- name: via-edge
  hops:
  - name: edge-hop
hops:
- name: edge-hop
  nodes:
  - name: edge
    addr: 127.0.0.1:${edgePort}
    connector: {type: forward}
    dialer: {type: tcp}
`,
  );
  const cfg = await loadConfigSource(`${dir}/burrow.yaml`);
  const rt = await Runtime.start(cfg);
  try {
    const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
    await c.write(new TextEncoder().encode("through the chain"));
    await c.closeWrite();
    assert.equal(
      new TextDecoder().decode(await withTimeout(readAll(c), 5000)),
      "through the chain",
    );
    c.close();
  } finally {
    await rt.close();
    await edge.close();
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unknown types fail at start with the field path; nothing stays listening", async () => {
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "s",
        addr: "127.0.0.1:0",
        handler: { type: "nope" },
        listener: { type: "tcp" },
      }],
    }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /services\[0\]\.handler\.type: unknown handler type "nope"/.test(e.message),
  );
  await assert.rejects(
    Runtime.start({
      services: [{
        name: "s",
        addr: "127.0.0.1:0",
        handler: { type: "tcp" },
        listener: { type: "tcp" },
      }],
    }),
    /forwarding handler needs a target/,
  );
});

Deno.test("a port already in use is a clear start error and earlier services are closed", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (busy.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      Runtime.start({
        services: [
          {
            name: "ok",
            addr: "127.0.0.1:0",
            handler: { type: "tcp" },
            listener: { type: "tcp" },
            forwarder: { nodes: [{ name: "t", addr: "127.0.0.1:9" }] },
          },
          {
            name: "clash",
            addr: `127.0.0.1:${p}`,
            handler: { type: "tcp" },
            listener: { type: "tcp" },
            forwarder: { nodes: [{ name: "t", addr: "127.0.0.1:9" }] },
          },
        ],
      }),
      /services\[1\]\.listener: .*(in use|AddrInUse)/i,
    );
  } finally {
    busy.close();
  }
});
