/** Transparent listeners tell a conn addressed to themselves from a diverted one (no loops). */
import assert from "node:assert/strict";
import { addressedToListener, unmapV4 } from "../../src/transport/redirect/self.ts";
import { SelfAddresses } from "../../src/chain/self.ts";

const at = (hostname: string, port: number) => ({ transport: "tcp", hostname, port });

Deno.test("transparent listeners: self-addressed conns are recognised, IPv4-mapped forms included", () => {
  assert.equal(unmapV4("::ffff:10.0.0.2"), "10.0.0.2");
  assert.equal(unmapV4("[::ffff:10.0.0.2]"), "10.0.0.2");
  assert.equal(unmapV4("fd00::1"), "fd00::1");
  // A dual-stack listener sees an IPv4 client's destination as ::ffff:a.b.c.d.
  assert.ok(addressedToListener(at("::ffff:127.0.0.1", 12348), at("::", 12348)));
  assert.ok(addressedToListener(at("127.0.0.1", 12348), at("0.0.0.0", 12348)));
  assert.ok(addressedToListener(at("10.9.9.9", 80), at("10.9.9.9", 80)));
  // Diverted: another port, or a remote address on the listener's port.
  assert.ok(!addressedToListener(at("127.0.0.1", 80), at("0.0.0.0", 12348)));
  assert.ok(!addressedToListener(at("192.0.2.7", 12348), at("0.0.0.0", 12348)));
  const self = new SelfAddresses();
  self.add(at("::", 12348));
  assert.ok(self.has("tcp", "::ffff:127.0.0.1", 12348), "the router's own-listener check too");
});
