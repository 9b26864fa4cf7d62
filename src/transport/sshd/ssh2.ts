/**
 * The `ssh2` npm package, imported when an `ssh` or `sshd` listener or dialer is first built:
 * ~13 MiB of RSS that a process without SSH does not pay (core/lazy.ts).
 * @module
 */
// @ts-types="@types/ssh2"
import type ssh2 from "ssh2";
import { LazyModule } from "../../core/lazy.ts";

export const SSH2: LazyModule<typeof ssh2> = new LazyModule(
  "ssh2",
  async () => (await import("ssh2")).default,
);
