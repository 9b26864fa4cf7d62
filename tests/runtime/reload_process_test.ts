/** Hot reload of a running process: SIGHUP and -R re-read the -C file and apply the difference. */
import assert from "node:assert/strict";
import { dialTcp } from "../../src/core/socket.ts";
import {
  askTag,
  echoServer,
  randomBytes,
  readAll,
  sha256,
  tagServer,
  withTimeout,
  writeChunks,
} from "../_helpers.ts";
import { BurrowChild } from "../_burrow.ts";

const svc = (name: string, target: number) => `
- name: ${name}
  addr: 127.0.0.1:0
  handler: {type: tcp}
  listener: {type: tcp}
  forwarder: {nodes: [{name: t, addr: "127.0.0.1:${target}"}]}`;

Deno.test("SIGHUP adds and removes services while a transfer on an unchanged one goes on byte-exact; a broken file keeps the running config", async () => {
  const echo = echoServer();
  const tag = tagServer("A");
  const dir = await Deno.makeTempDir();
  const file = `${dir}/burrow.yaml`;
  await Deno.writeTextFile(file, `services:${svc("keep", echo.port)}\n`);
  const child = new BurrowChild(["-C", file]);
  try {
    const keepPort = await child.servicePort("keep");
    const conn = await dialTcp("127.0.0.1", keepPort);
    const data = randomBytes(16 << 20);
    const echoed = readAll(conn);
    await writeChunks(conn, data.subarray(0, 8 << 20));

    const reloaded = (n: number) =>
      child.waitFor(
        () => child.records.filter((r) => /config reloaded/.test(r.msg)).length >= n,
        15_000,
        `reload ${n}`,
      );
    await Deno.writeTextFile(file, `services:${svc("keep", echo.port)}${svc("added", tag.port)}\n`);
    child.kill("SIGHUP");
    await reloaded(1);
    assert.match(
      child.records.findLast((r) => /config reloaded/.test(r.msg))!.msg,
      /\+services\/added/,
    );
    const addedPort = await child.servicePort("added");
    assert.equal(await askTag(addedPort), "A");
    await writeChunks(conn, data.subarray(8 << 20, 12 << 20));

    await Deno.writeTextFile(file, `log: {level: debug}\nservices:${svc("keep", echo.port)}\n`);
    child.kill("SIGHUP");
    await reloaded(2);
    await child.waitFor((r) => r.msg === "log level: info → debug", 5000, "level change");
    await assert.rejects(
      () => dialTcp("127.0.0.1", addedPort),
      "the removed service's port is closed",
    );

    await Deno.writeTextFile(file, `services:\n- name: keep\n  addr: [not yaml\n`);
    child.kill("SIGHUP");
    const failed = await child.waitFor(
      (r) => /reload failed/.test(r.msg),
      15_000,
      "reload failure",
    );
    assert.equal(failed.level, "error");
    assert.match(failed.msg, /keeping the running config/);

    // The new level reached loggers built before it (the unchanged service's).
    const ask2 = await dialTcp("127.0.0.1", keepPort);
    ask2.close();
    await child.waitFor((r) => r.level === "debug" && r.service === "keep", 5000, "a debug line");
    await writeChunks(conn, data.subarray(12 << 20));
    await conn.closeWrite();
    const got = await withTimeout(echoed, 20_000, "echo");
    conn.close();
    assert.equal(got.length, data.length);
    assert.equal(
      await sha256(got),
      await sha256(data),
      "the transfer across three reloads is byte-exact",
    );
    assert.equal(
      child.records.filter((r) => r.service === "keep" && /^listening on/.test(r.msg)).length,
      1,
      "keep was never re-bound",
    );
  } finally {
    const st = await child.stop();
    assert.equal(st.code, 0);
    await echo.close();
    await tag.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-R re-reads the file on its own; an edited auth file changes who may use the proxy", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/burrow.yaml`;
  const users = `${dir}/users`;
  await Deno.writeTextFile(users, "alice one\n");
  await Deno.writeTextFile(
    file,
    `services:\n- name: socks\n  addr: 127.0.0.1:0\n  handler: {type: socks5, auth: {file: ${users}}}\n`,
  );
  const child = new BurrowChild(["-C", file, "-R", "200ms"]);
  try {
    const port = await child.servicePort("socks");
    // RFC 1929 user/password sub-negotiation; true when the server accepts.
    const login = async (user: string, pass: string): Promise<boolean> => {
      const c = await dialTcp("127.0.0.1", port);
      try {
        await c.write(new Uint8Array([5, 1, 2]));
        const m = new Uint8Array(2);
        await withTimeout(c.read(m), 5000, "method");
        const enc = new TextEncoder();
        const u = enc.encode(user);
        const p = enc.encode(pass);
        await c.write(new Uint8Array([1, u.length, ...u, p.length, ...p]));
        const r = new Uint8Array(2);
        const n = await withTimeout(c.read(r), 5000, "auth reply");
        return n === 2 && r[1] === 0;
      } finally {
        c.close();
      }
    };
    assert.equal(await login("alice", "one"), true);
    assert.equal(await login("bob", "two"), false);
    await Deno.writeTextFile(users, "bob two\n");
    await child.waitFor(
      (r) => /auto reload: config reloaded \(~services\/socks\)/.test(r.msg),
      15_000,
      "auto reload",
    );
    assert.equal(await login("bob", "two"), true);
    assert.equal(await login("alice", "one"), false);
  } finally {
    await child.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("POST /config/reload answers before it restarts the API whose settings changed", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/burrow.yaml`;
  const write = (accesslog: boolean) =>
    Deno.writeTextFile(
      file,
      `api: {addr: "127.0.0.1:0", accesslog: ${accesslog}}\nservices:\n- {name: s, addr: "127.0.0.1:0", handler: {type: socks5}}\n`,
    );
  await write(false);
  const child = new BurrowChild(["-C", file]);
  try {
    const port = await child.endpointPort("api");
    await write(true);
    const res = await fetch(`http://127.0.0.1:${port}/config/reload`, { method: "POST" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { msg: "OK" });
    // The API comes back with its new settings (on a new port: it asked for port 0).
    await child.waitFor(
      () =>
        child.records.filter((r) => r.kind === "api" && /^listening on/.test(r.msg)).length === 2,
      10_000,
      "the API restarted",
    );
  } finally {
    await child.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
