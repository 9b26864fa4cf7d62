/** GOST's web API against a running runtime (docs/api.md). */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { ApiServer } from "../../src/api/server.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { startOrigin } from "../proxy/_server.ts";
import { curl } from "../proxy/_server.ts";
import { hasCommand } from "../_helpers.ts";

const AUTH = "Basic " + btoa("admin:pw");

async function call(
  port: number,
  method: string,
  path: string,
  body?: unknown,
  auth: string | null = AUTH,
): Promise<{ status: number; json: unknown; text: string; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = auth;
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

async function start(prefix = "") {
  const rt = await Runtime.start(cliConfig(["socks5://127.0.0.1:0"], []));
  const api = await ApiServer.start({
    runtime: rt,
    config: {
      addr: "127.0.0.1:0",
      auth: { username: "admin", password: "pw" },
      ...(prefix ? { pathPrefix: prefix } : {}),
    },
  });
  return {
    rt,
    api,
    close: async () => {
      await api.close();
      await rt.close();
    },
  };
}

async function closedPort(port: number): Promise<boolean> {
  try {
    (await dialTcp("127.0.0.1", port)).close();
    return false;
  } catch {
    return true;
  }
}

Deno.test("api: add a service over HTTP, curl through it, replace it, delete it: the port closes", async () => {
  if (!hasCommand("curl")) return console.log("skipped: curl is not installed");
  const origin = startOrigin();
  const { rt, api, close } = await start();
  try {
    let r = await call(api.port, "POST", "/config/services", {
      name: "web",
      addr: "127.0.0.1:0",
      handler: { type: "http" },
      listener: { type: "tcp" },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { msg: "OK" });
    const port = rt.service("web")!.listener.addr.port;
    const out = await curl([
      "-x",
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=100000`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.length, 100000);

    r = await call(api.port, "GET", "/config/services/web");
    const got = (r.json as { data: { status: { stats: { outputBytes: number } } } }).data;
    assert.ok(got.status.stats.outputBytes >= 100000, "status counts what curl received");
    r = await call(api.port, "GET", "/config/services");
    assert.equal((r.json as { data: { count: number } }).data.count, 2);

    // PUT replaces (the body's name is ignored, the path names it): now it wants a user.
    r = await call(api.port, "PUT", "/config/services/web", {
      name: "ignored",
      addr: "127.0.0.1:0", // the same listener: the port stays
      handler: { type: "http", auth: { username: "u", password: "p" } },
    });
    assert.equal(r.status, 200, r.text);
    const denied = await curl([
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-x",
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=10`,
    ]);
    assert.equal(new TextDecoder().decode(denied.stdout), "407");
    assert.equal(rt.service("web")?.listener.addr.port, port);

    r = await call(api.port, "DELETE", "/config/services/web");
    assert.equal(r.status, 200, r.text);
    assert.equal(await closedPort(port), true, "the deleted service's port is closed");
    r = await call(api.port, "GET", "/config/services/web");
    assert.deepEqual(r.json, { data: null });
    r = await call(api.port, "DELETE", "/config/services/web");
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { code: 40004, msg: "service web not found" });
  } finally {
    await close();
    await origin.close();
  }
});

Deno.test("api: bad bodies get 400 with the field path and change nothing", async () => {
  const { rt, api, close } = await start();
  try {
    const before = rt.config;
    const cases: [unknown, number, RegExp][] = [
      ["{not json", 40001, /invalid JSON body/],
      [[1, 2], 40001, /must be a service object/],
      [{ addr: ":0" }, 40001, /service name is required/],
      [
        { name: "x", addr: "127.0.0.1:0", handler: { type: "socks5", bogus: 1 } },
        40001,
        /handler\.bogus/,
      ],
      [{ name: "x", addr: "127.0.0.1:0", handler: { type: "nosuch" } }, 40001, /nosuch/],
      [
        { name: "x", addr: "127.0.0.1:0", handler: { chain: "missing" } },
        40001,
        /no chain named "missing"/,
      ],
      [{ name: before.services![0]!.name, addr: "127.0.0.1:0" }, 40002, /already exists/],
    ];
    for (const [body, code, msg] of cases) {
      const r = await call(api.port, "POST", "/config/services", body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      const j = r.json as { code: number; msg: string };
      assert.equal(j.code, code, r.text);
      assert.match(j.msg, msg);
    }
    // A port someone else holds: the build fails (500, 40003), nothing changes.
    const squat = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const r = await call(api.port, "POST", "/config/services", {
      name: "busy",
      addr: `127.0.0.1:${squat.addr.port}`,
    });
    squat.close();
    assert.equal(r.status, 500, r.text);
    assert.equal((r.json as { code: number }).code, 40003);
    assert.deepEqual(rt.config, before);
    // Deleting a chain a service uses is refused by reference.
    await call(api.port, "POST", "/config/chains", {
      name: "c1",
      hops: [{
        name: "h",
        nodes: [{
          name: "n",
          addr: "127.0.0.1:1",
          connector: { type: "socks5" },
          dialer: { type: "tcp" },
        }],
      }],
    });
    const svc = rt.config.services![0]!;
    assert.equal(
      (await call(api.port, "PUT", `/config/services/${svc.name}`, {
        ...svc,
        handler: { ...svc.handler, chain: "c1" },
      })).status,
      200,
    );
    const del = await call(api.port, "DELETE", "/config/chains/c1");
    assert.equal(del.status, 400);
    assert.match((del.json as { msg: string }).msg, /no chain named "c1"/);
    assert.equal(rt.chains.has("c1"), true);
  } finally {
    await close();
  }
});

Deno.test("api: auth, CORS, prefix, GOST's 404s and kinds Burrow lacks", async () => {
  const { api, close } = await start("/api");
  try {
    let r = await call(api.port, "GET", "/api/config", undefined, null);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("www-authenticate")?.startsWith("Basic"), true);
    assert.deepEqual(r.json, { code: 401, msg: "Unauthorized" });
    r = await call(api.port, "GET", "/api/config", undefined, "Basic " + btoa("admin:wrong"));
    assert.equal(r.status, 401);
    r = await call(api.port, "GET", "/api/config");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "application/json");
    r = await call(api.port, "GET", "/api/config?format=yaml");
    assert.equal(r.headers.get("content-type"), "text/x-yaml");
    assert.match(r.text, /^services:/);
    r = await call(api.port, "GET", "/config");
    assert.equal(r.status, 404);
    assert.equal(r.text, "404 page not found");
    r = await call(api.port, "GET", "/api/config/routers");
    assert.equal(r.status, 400);
    assert.match((r.json as { msg: string }).msg, /routers are not supported/);
    // Preflight: 204 before auth, GOST's headers.
    const pre = await fetch(`http://127.0.0.1:${api.port}/api/config/services`, {
      method: "OPTIONS",
      headers: { origin: "http://example.test", "access-control-request-method": "POST" },
    });
    await pre.body?.cancel();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    assert.equal(pre.headers.get("access-control-allow-methods"), "GET,POST,PUT,DELETE,OPTIONS");
    const cross = await fetch(`http://127.0.0.1:${api.port}/api/config/services`, {
      headers: { origin: "http://example.test", authorization: AUTH },
    });
    await cross.body?.cancel();
    assert.equal(cross.headers.get("access-control-allow-origin"), "*");
    // The dashboard needs the API's auth too.
    r = await call(api.port, "GET", "/api/", undefined, null);
    assert.equal(r.status, 401);
    r = await call(api.port, "GET", "/api/");
    assert.match(r.text, /<title>Burrow<\/title>/);
    r = await call(api.port, "GET", "/api/dashboard/data");
    assert.equal((r.json as { services: unknown[] }).services.length, 1);
  } finally {
    await close();
  }
});

Deno.test("api: POST /config saves the running config to ?path=", async () => {
  const { api, close } = await start();
  const dir = await Deno.makeTempDir();
  try {
    const r = await call(api.port, "POST", `/config?path=${dir}/saved.json`);
    assert.equal(r.status, 200, r.text);
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/saved.json`));
    assert.equal(saved.services[0].handler.type, "socks5");
  } finally {
    await close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("api: concurrent changes queue and none is lost", async () => {
  const { rt, api, close } = await start();
  try {
    const replies = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        call(api.port, "POST", "/config/services", {
          name: `s${i}`,
          addr: "127.0.0.1:0",
          handler: { type: "socks5" },
        })),
    );
    for (const r of replies) assert.equal(r.status, 200, r.text);
    assert.equal(rt.services.length, 9);
    const again = await Promise.all(
      Array.from({ length: 8 }, (_, i) => call(api.port, "DELETE", `/config/services/s${i}`)),
    );
    for (const r of again) assert.equal(r.status, 200, r.text);
    assert.equal(rt.services.length, 1);
  } finally {
    await close();
  }
});

/** A raw HTTP/1.1 request (to set headers fetch would not), returning the status code. */
async function rawStatus(port: number, head: string): Promise<number> {
  const c = await dialTcp("127.0.0.1", port);
  try {
    await c.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(256);
    const n = await c.read(buf);
    return Number(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split(" ")[1]);
  } finally {
    c.close();
  }
}

Deno.test("api: browser-borne requests are refused; bodies are capped; unknown metadata is refused", async () => {
  const { api, close } = await start();
  const rt = await Runtime.start(cliConfig(["socks5://127.0.0.1:0"], []));
  const open = await ApiServer.start({ runtime: rt, config: { addr: "127.0.0.1:0" } });
  try {
    // With auth: a cross-site form-style post (cached basic credentials ride along) is refused.
    const form = await fetch(`http://127.0.0.1:${api.port}/config/services`, {
      method: "POST",
      headers: {
        origin: "https://evil.example",
        "content-type": "text/plain",
        authorization: AUTH,
      },
      body: JSON.stringify({ name: "evil", addr: "127.0.0.1:0" }),
    });
    assert.equal(form.status, 403, await form.text());
    const jsonPost = await fetch(`http://127.0.0.1:${api.port}/config/services`, {
      method: "POST",
      headers: {
        origin: "https://ui.example",
        "content-type": "application/json",
        authorization: AUTH,
      },
      body: JSON.stringify({ name: "ok", addr: "127.0.0.1:0" }),
    });
    assert.equal(jsonPost.status, 200, await jsonPost.text());
    // Without auth: no cross-origin use at all, and only IP hosts (DNS rebinding).
    const cross = await fetch(`http://127.0.0.1:${open.port}/config`, {
      headers: { origin: "https://evil.example" },
    });
    assert.equal(cross.status, 403, await cross.text());
    assert.equal(
      await rawStatus(open.port, "GET /config HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
      403,
    );
    assert.equal(
      await rawStatus(open.port, `GET /config HTTP/1.1\r\nHost: 127.0.0.1:${open.port}\r\n\r\n`),
      200,
    );
    let r = await call(open.port, "POST", "/config?path=/tmp/x.yaml", undefined, null);
    assert.equal(r.status, 403, "no-auth API: ?path= refused");
    r = await call(api.port, "POST", "/config?path=/tmp/bashrc");
    assert.equal(r.status, 400, "only .yaml/.yml/.json");
    // Bodies over 1 MiB.
    r = await call(api.port, "POST", "/config/services", "x".repeat(2 << 20));
    assert.equal(r.status, 413);
    // Unknown metadata keys in a body: refused even though the runtime only warns.
    r = await call(api.port, "POST", "/config/services", {
      name: "m",
      addr: "127.0.0.1:0",
      handler: { type: "socks5", metadata: { udpp: true } },
    });
    assert.equal(r.status, 400, r.text);
    assert.match((r.json as { msg: string }).msg, /handler\.metadata\.udpp: unknown key/);
  } finally {
    await open.close();
    await rt.close();
    await close();
  }
});
