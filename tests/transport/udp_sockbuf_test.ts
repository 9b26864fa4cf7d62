import assert from "node:assert/strict";
import { setUdpBuffers } from "../../src/core/sockbuf.ts";
import { KcpListener } from "../../src/kcp/session.ts";
import { finish, KCP_DEFAULTS } from "../../src/kcp/config.ts";

Deno.test("udp sockbuf: the kernel grants the requested receive buffer (kcptun's sockbuf)", async (t) => {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const before = setUdpBuffers(sock, 64 * 1024);
    if (before === 0) {
      await t.step({ name: "skipped: not Linux, or no FFI permission", ignore: true, fn() {} });
      return;
    }
    // Linux doubles the request for bookkeeping; the cap is net.core.rmem_max (≥ 208 KiB).
    assert.equal(before, 128 * 1024);
    const big = setUdpBuffers(sock, 1024 * 1024);
    assert.ok(big > before, `granted ${big}`);
    assert.equal(setUdpBuffers(sock, 0), 0);
  } finally {
    sock.close();
  }
});

Deno.test("kcp listener asks for kcp.sockbuf on its socket", () => {
  const l = new KcpListener("127.0.0.1:0", finish({ ...KCP_DEFAULTS, sockbuf: 65536 }));
  try {
    // 0 where it cannot be set (then the system default applies); twice the request on Linux.
    assert.ok(l.sockbuf === 0 || l.sockbuf === 131072, `sockbuf ${l.sockbuf}`);
  } finally {
    l.close();
  }
});
