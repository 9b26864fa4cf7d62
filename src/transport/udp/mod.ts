/** The `udp` transport: the listener of UDP port forwarding and a direct datagram dialer. @module */
import type { Registries } from "../../core/registry.ts";
import type { Dialer } from "../../core/types.ts";
import { dialUdp } from "../../core/udp.ts";
import { createUdpListener } from "./listener.ts";

export function register(reg: Registries): void {
  reg.listeners.register("udp", createUdpListener);
  // A udp node is reached directly by datagrams; there is no stream to tunnel through.
  reg.dialers.register("udp", (): Dialer => ({ directOnly: true, dial: (addr) => dialUdp(addr) }));
}
