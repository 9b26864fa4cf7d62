/** The `tcp` transport. @module */
import type { Registries } from "../../core/registry.ts";
import { TcpDialer } from "./dialer.ts";
import { createTcpListener } from "./listener.ts";

export function register(reg: Registries): void {
  reg.listeners.register("tcp", createTcpListener);
  reg.dialers.register("tcp", () => new TcpDialer());
}
