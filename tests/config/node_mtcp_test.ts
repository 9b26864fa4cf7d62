/** The node mtcp module's config.json, run as written (seed page 002): IPv6, somaxconn links. */
import assert from "node:assert/strict";
import { nodeMtcpArgs, parseNodeMtcp } from "../../src/config/node_mtcp.ts";
import { BurrowChild } from "../_burrow.ts";
import { portForChild, randomBytes, readAll, sha256, withTimeout } from "../_helpers.ts";
import { SocketConn } from "../../src/core/socket.ts";

Deno.test("node mtcp config.json: strings or numbers; unknown keys and bad ports are refused by name", () => {
  const c = parseNodeMtcp(
    '{"host":"::1","host_port":"8443","remote_port":22,"local_port":"2222","somaxconn":10}',
    "config.json",
  );
  assert.deepEqual(c, {
    host: "::1",
    hostPort: 8443,
    remotePort: 22,
    localPort: 2222,
    somaxconn: 10,
  });
  assert.deepEqual(nodeMtcpArgs(c, "server"), ["-L", "tcp+mtmux://[::]:8443/[::1]:22?tunnels=10"]);
  assert.deepEqual(nodeMtcpArgs(c, "local"), [
    "-L",
    "tcp://[::1]:2222/[::1]:22",
    "-F",
    "forward+mtmux://[::1]:8443?tunnels=10",
  ]);
  assert.throws(() => parseNodeMtcp('{"host":"h","host_port":"x"}', "c.json"), /host_port/);
  assert.throws(
    () => parseNodeMtcp('{"host":"h","hostport":1}', "c.json"),
    /hostport: unknown key/,
  );
  assert.throws(
    () =>
      parseNodeMtcp(
        '{"host":"h","host_port":1,"remote_port":2,"local_port":3,"somaxconn":999}',
        "c.json",
      ),
    /somaxconn/,
  );
});

Deno.test("node mtcp: burrow mtcp-server and mtcp-local with one config.json carry a stream over IPv6", async () => {
  let echo: Deno.TcpListener;
  try {
    echo = Deno.listen({ hostname: "::1", port: 0 });
  } catch {
    return console.log("skipped: no IPv6 loopback here");
  }
  const loop = (async () => {
    for await (const c of echo) {
      (async () => {
        const b = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await c.read(b).catch(() => null);
            if (n === null) break;
            // A Deno socket's write may take less than it is given.
            for (let o = 0; o < n;) o += await c.write(b.subarray(o, n));
          }
          await c.closeWrite();
        } catch { /* the peer went away */ }
      })();
    }
  })().catch(() => {});
  const dir = await Deno.makeTempDir();
  const local = portForChild();
  const cfg = {
    host: "::1",
    host_port: String(portForChild()),
    remote_port: String(echo.addr.port),
    local_port: String(local),
    somaxconn: 10,
  };
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
  const server = new BurrowChild(["mtcp-server", "config.json"], { cwd: dir });
  const client = new BurrowChild(["mtcp-local"], { cwd: dir }); // config.json by default
  try {
    await server.servicePort("service-0");
    await client.servicePort("service-0");
    const conn = new SocketConn(await Deno.connect({ hostname: "::1", port: local }));
    const data = randomBytes(1 << 20);
    const [, got] = await withTimeout(
      Promise.all([conn.write(data).then(() => conn.closeWrite()), readAll(conn)]),
      15_000,
      "echo over the bundle",
    );
    assert.equal(await sha256(got), await sha256(data));
    conn.close();
  } finally {
    await client.stop();
    await server.stop();
    echo.close();
    await loop;
    await Deno.remove(dir, { recursive: true });
  }
});
