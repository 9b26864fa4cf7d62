/** Our smux against the real xtaci/smux (Debian golang-github-xtaci-smux-dev), both versions. */
import assert from "node:assert/strict";
import { clientSession, serverSession } from "../../src/mux/smux/mod.ts";
import { TcpListener } from "../../src/transport/tcp/listener.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { echoConn, randomBytes, sha256, withTimeout, writeChunks } from "../_helpers.ts";
import { readFull } from "../../src/core/conn.ts";
import { goPeer, startListeningPeer } from "../../scripts/peers/build.ts";

const bin = await goPeer("smux", "github.com/xtaci/smux");

for (const version of [1, 2]) {
  Deno.test({
    name: `interop: our smux v${version} client ⇄ xtaci/smux server, 16 streams × 1 MiB byte-exact`,
    ignore: !bin,
    fn: async () => {
      const peer = await startListeningPeer(bin!, ["-mode", "server", "-version", String(version)]);
      const session = clientSession(await dialTcp("127.0.0.1", peer.port), { version });
      try {
        await withTimeout(
          Promise.all(Array.from({ length: 16 }, async () => {
            const s = await session.openStream();
            const data = randomBytes(1 << 20);
            const got = new Uint8Array(data.length);
            await Promise.all([writeChunks(s, data, 12345), readFull(s, got)]);
            assert.equal(await sha256(got), await sha256(data));
            s.close();
          })),
          30_000,
        );
      } finally {
        session.close();
        await session.closed;
        await peer.stop();
      }
    },
  });

  Deno.test({
    name: `interop: xtaci/smux v${version} client ⇄ our smux server, 16 streams × 1 MiB byte-exact`,
    ignore: !bin,
    fn: async () => {
      const l = TcpListener.listen("127.0.0.1:0");
      const serving = (async () => {
        const c = await l.accept();
        if (!c) return;
        const session = serverSession(c, { version });
        const tasks: Promise<void>[] = [];
        for (;;) {
          const s = await session.acceptStream();
          if (!s) break;
          tasks.push(echoConn(s).then(() => s.close()));
        }
        await Promise.all(tasks);
      })();
      try {
        const out = await withTimeout(
          new Deno.Command(bin!, {
            args: [
              "-mode",
              "client",
              "-addr",
              `127.0.0.1:${l.addr.port}`,
              "-version",
              String(version),
              "-streams",
              "16",
              "-bytes",
              String(1 << 20),
            ],
            stdout: "piped",
            stderr: "piped",
          }).output(),
          30_000,
        );
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        assert.match(new TextDecoder().decode(out.stdout), /OK/);
      } finally {
        await l.close();
        await serving;
      }
    },
  });
}
