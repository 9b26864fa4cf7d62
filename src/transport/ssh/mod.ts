/**
 * `ssh`: GOST's SSH tunnel transport (docs/gost-proxies.md "ssh"). Every tunnel is one SSH channel
 * of type `gost-tunnel` on a shared SSH connection, and whatever proxy protocol the node speaks
 * runs inside it (`-L ssh://user:pass@:2222` serves `auto` in channels; `-F ssh://user:pass@host:2222`
 * speaks `http` in them; `-L ssh://:2222/target` forwards each channel). Not for standard SSH
 * software: OpenSSH neither opens nor accepts `gost-tunnel` channels (that is `sshd`).
 *
 * - Listener: an SSH server (host key, authorized keys and password login shared with `sshd`);
 *   after login each `gost-tunnel` channel is an accepted conn, anything else (`session`,
 *   `direct-tcpip`) is refused with "unsupported channel type", as GOST does.
 * - Dialer: one SSH connection per node address, reused while it lives (`sshd`'s sessions), and a
 *   new channel per dial; a channel the server will not open ends that connection, so the next
 *   dial logs in anew.
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import type { Registries } from "../../core/registry.ts";
import type { Dialer, DialerOptions, Listener, ListenerOptions } from "../../core/types.ts";
import type { DialContext } from "../../core/types.ts";
import { ServeListener } from "../../core/serve_listener.ts";
import { createTcpListener } from "../tcp/listener.ts";
import { SshdDialer } from "../sshd/client.ts";
import { MAX_CHANNELS, serveSsh, sshServerConfig } from "../sshd/host.ts";
import { ChannelConn } from "../sshd/streams.ts";
import { acceptChannels, loadSsh2Internals, openChannel } from "./channel.ts";

/** The channel type GOST's ssh transport carries tunnels in. */
export const GOST_TUNNEL = "gost-tunnel";

export async function createSshListener(o: ListenerOptions): Promise<Listener> {
  await loadSsh2Internals();
  const cfg = await sshServerConfig(
    o,
    "ssh: no auth and no authorizedKeys: anyone may log in and open tunnels (as in GOST)",
  );
  const inner = await createTcpListener(o);
  return new ServeListener(inner, {
    name: "ssh",
    log: o.log,
    backlog: o.metadata.int("backlog", 128),
    guard: o.guard,
    serve: (raw, emit, signal) =>
      serveSsh(raw, signal, cfg, (client) => {
        acceptChannels(client, GOST_TUNNEL, (ch) => {
          const conn = new ChannelConn(ch, raw.localAddr, raw.remoteAddr);
          if (!emit(conn)) conn.close(); // backlog full: GOST accepts and closes too
        }, MAX_CHANNELS);
      }),
  });
}

/** Opens a `gost-tunnel` channel per dial on the node's SSH connection. */
export class SshDialer implements Dialer {
  readonly #sessions: SshdDialer;
  readonly #openMs: number;

  /** Call after {@link loadSsh2Internals} (the factory does). */
  constructor(o: DialerOptions) {
    this.#sessions = new SshdDialer(o, "ssh");
    this.#openMs = o.metadata.duration("handshakeTimeout", 30_000);
  }

  async dial(addr: string, ctx: DialContext): Promise<Conn> {
    const s = await this.#sessions.session(addr, ctx);
    try {
      const ch = await openChannel(s.client, GOST_TUNNEL, this.#openMs, ctx.signal);
      return new ChannelConn(ch, s.conn.localAddr, s.conn.remoteAddr);
    } catch (e) {
      // GOST forgets a connection that could not open a channel; an aborted dial says nothing
      // about the connection.
      if (!ctx.signal?.aborted) this.#sessions.drop(addr, s);
      throw e;
    }
  }

  close(): Promise<void> {
    return this.#sessions.close();
  }
}

export function register(reg: Registries): void {
  reg.listeners.register("ssh", createSshListener);
  reg.dialers.register("ssh", async (o) => {
    await loadSsh2Internals();
    return new SshDialer(o);
  });
}
