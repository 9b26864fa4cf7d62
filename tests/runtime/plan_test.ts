/** Which changes a reload applies to a service's listener (src/runtime/plan.ts). */
import assert from "node:assert/strict";
import { planConfig } from "../../src/runtime/plan.ts";
import type { Config } from "../../src/config/model.ts";

const tun = (forwarder: boolean): Config => ({
  services: [{
    name: "t",
    addr: ":8421",
    handler: { type: "tun" },
    listener: { type: "tun", metadata: { net: "10.1.0.1/24" } },
    ...(forwarder ? { forwarder: { nodes: [{ name: "s", addr: "10.0.0.1:8421" }] } } : {}),
  }],
});

Deno.test("plan: a tun service turned from client to server (or back) needs a new listener; a forwarder change elsewhere does not", async () => {
  const client = await planConfig(tun(true)), server = await planConfig(tun(false));
  assert.notEqual(client.listenerKey("t"), server.listenerKey("t"));
  const tcp = (addr: string): Config => ({
    services: [{
      name: "f",
      addr: ":8080",
      handler: { type: "tcp" },
      listener: { type: "tcp" },
      forwarder: { nodes: [{ name: "n", addr }] },
    }],
  });
  const a = await planConfig(tcp("10.0.0.1:80")), b = await planConfig(tcp("10.0.0.2:80"));
  assert.equal(a.listenerKey("f"), b.listenerKey("f"), "a tcp listener stays");
});
