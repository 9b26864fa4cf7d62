import assert from "node:assert/strict";
import { parseAuthFile, UserAuther } from "../../src/access/auther.ts";
import { constantTimeEqual } from "../../src/core/secret.ts";
import { loadConfigSource } from "../../src/config/file.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { hasCommand } from "../_helpers.ts";
import { curl, startOrigin } from "./_server.ts";

Deno.test("auth file parsing and constant-time comparison", () => {
  // As GOST: only leading-# lines are comments; the password is the rest of the line.
  assert.deepEqual(parseAuthFile("# users\nalice secret\n\nbob\t two words #x \n"), [
    { username: "alice", password: "secret" },
    { username: "bob", password: "two words #x" },
  ]);
  const a = new UserAuther([{ username: "alice", password: "secret" }]);
  assert.equal(a.authenticate("alice", "secret"), true);
  assert.equal(a.authenticate("alice", "secreT"), false);
  assert.equal(a.authenticate("mallory", "secret"), false);
  assert.equal(constantTimeEqual("abc", "abcd"), false);
});

Deno.test({
  name: "authers from config (users list and a file) protect an http proxy",
  ignore: !hasCommand("curl"),
  fn: async () => {
    const origin = startOrigin();
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/users.txt`, "# file users\nbob hunter2\n");
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `
services:
- name: p
  addr: 127.0.0.1:0
  handler:
    type: http
    authers: [listed, filed]
  listener:
    type: tcp
authers:
- name: listed
  auths:
  - {username: alice, password: s3cret}
- name: filed
  file: {path: ${dir}/users.txt}
`,
    );
    const rt = await Runtime.start(await loadConfigSource(`${dir}/c.yaml`));
    try {
      const p = rt.services[0]!.listener.addr.port;
      const code = async (user: string) =>
        new TextDecoder().decode(
          (await curl([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
            `http://${user}@127.0.0.1:${p}`,
            `http://127.0.0.1:${origin.port}/bytes?n=1`,
          ])).stdout,
        );
      assert.equal(await code("alice:s3cret"), "200");
      assert.equal(await code("bob:hunter2"), "200");
      assert.equal(await code("bob:wrong"), "407");
      assert.equal(await code("eve:s3cret"), "407");
    } finally {
      await rt.close();
      await origin.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
