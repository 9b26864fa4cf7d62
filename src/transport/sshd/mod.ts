/**
 * `sshd`: GOST's SSH forwarding mode, compatible with standard SSH software. Client side: the
 * `sshd` dialer and connector reach targets through an SSH server's `direct-tcpip` channels
 * (`-F sshd://user:pass@host:22`). Server side: the `sshd` listener accepts standard SSH clients
 * and hands their forwarding requests to the `sshd` handler (`-L sshd://user:pass@:2222`). Built on the ssh2 npm package (SSH protocol and crypto; it runs
 * under Deno), never on hand-written SSH.
 * @module
 */
import type { Registries } from "../../core/registry.ts";
import { SshdConnector, SshdDialer } from "./client.ts";
import { createSshdListener } from "./server.ts";
import { SSH2 } from "./ssh2.ts";

export function register(reg: Registries): void {
  reg.listeners.register("sshd", createSshdListener);
  // ssh2 loads with the first sshd node, not with the first dial through it.
  reg.dialers.register("sshd", async (o) => {
    await SSH2.load();
    return new SshdDialer(o);
  });
  reg.connectors.register("sshd", () => new SshdConnector());
}
