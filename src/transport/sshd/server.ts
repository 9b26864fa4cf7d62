/**
 * The `sshd` listener: Burrow as an SSH server for standard clients (`ssh -D`, `-L`, `-R`),
 * built on the ssh2 npm package. Every raw TCP conn gets an SSH handshake; after login, each
 * `direct-tcpip` channel and each `tcpip-forward` request becomes an accepted Conn carrying its
 * request (protocol/ssh_forward.ts) for the `sshd` handler. Sessions (shells, exec) are refused:
 * this is a forwarding server. Authentication: the listener's user/password (`auth`, an auther)
 * and `authorizedKeys` (OpenSSH format); with neither, GOST accepts anyone, and so does Burrow.
 * The host key is `privateKeyFile` (with `passphrase`), or an Ed25519 key made at start and kept
 * in `$BURROW_CERT_DIR` when that is set (otherwise clients see a new host key after a restart).
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import { joinHostPort } from "../../core/addr.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import { ServeListener } from "../../core/serve_listener.ts";
import type { SshForward } from "../../protocol/ssh_forward.ts";
import { createTcpListener } from "../tcp/listener.ts";
import { MAX_CHANNELS, serveSsh, sshServerConfig } from "./host.ts";
import { ChannelConn, type ChannelLike } from "./streams.ts";

/** A channel conn that carries its SSH request. */
class ForwardConn extends ChannelConn {
  constructor(ch: ChannelLike, local: NetAddr, remote: NetAddr, readonly sshForward: SshForward) {
    super(ch, local, remote);
  }
}

/** A request without a channel (tcpip-forward): nothing to read or write. */
class RequestConn {
  readonly datagram = false;
  constructor(
    readonly localAddr: NetAddr,
    readonly remoteAddr: NetAddr,
    readonly sshForward: SshForward,
  ) {}
  get readable(): ReadableStream<Uint8Array> {
    return new ReadableStream();
  }
  get writable(): WritableStream<Uint8Array> {
    return new WritableStream();
  }
  read(): Promise<number | null> {
    return this.sshForward.kind === "remote"
      ? this.sshForward.ended.then(() => null)
      : Promise.resolve(null);
  }
  write(p: Uint8Array): Promise<number> {
    return Promise.resolve(p.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

export async function createSshdListener(o: ListenerOptions): Promise<Listener> {
  const cfg = await sshServerConfig(
    o,
    "sshd: no auth and no authorizedKeys: anyone may log in and forward anywhere (as in GOST)",
  );
  const inner = await createTcpListener(o);
  return new ServeListener(inner, {
    name: "sshd",
    log: o.log,
    backlog: o.metadata.int("backlog", 128),
    guard: o.guard,
    serve: (raw, emit, signal) =>
      serveSsh(raw, signal, cfg, (client, ended) => {
        /** Granted remote forwardings by `bindAddr:port`, to cancel. */
        const forwards = new Map<string, () => void>();
        /** direct-tcpip channels open now, at most MAX_CHANNELS. */
        let openChannels = 0;
        client.on("ready", () => {
          client.on("session", (_accept, reject) => reject());
          client.on("tcpip", (accept, reject, info) => {
            // The name goes into dials and maybe an upstream proxy's request line: host
            // characters only.
            if (!/^[A-Za-z0-9._:-]+$/.test(info.destIP) || !(info.destPort > 0)) return reject();
            if (openChannels >= MAX_CHANNELS) return reject();
            const ch = accept();
            if (!ch) return reject();
            openChannels++;
            ch.once("close", () => openChannels--);
            const target = joinHostPort(info.destIP, info.destPort);
            emit(
              new ForwardConn(ch as unknown as ChannelLike, raw.localAddr, raw.remoteAddr, {
                kind: "direct",
                target,
              }),
            );
          });
          client.on("request", (accept, reject, name, info) => {
            const i = info as { bindAddr: string; bindPort: number };
            if (name === "cancel-tcpip-forward") {
              // `ssh -O cancel -R ...`: end that forwarding (its listener closes).
              const stop = forwards.get(`${i.bindAddr}:${i.bindPort}`);
              if (!stop) return reject?.();
              forwards.delete(`${i.bindAddr}:${i.bindPort}`);
              stop();
              return accept?.();
            }
            if (name !== "tcpip-forward") return reject?.();
            let cancel = () => {};
            const cancelled = new Promise<void>((r) => (cancel = r));
            const fwd: SshForward = {
              kind: "remote",
              bindAddr: i.bindAddr,
              bindPort: i.bindPort,
              accept: (port) => {
                forwards.set(`${i.bindAddr}:${i.bindPort === 0 ? port : i.bindPort}`, cancel);
                accept?.(port);
              },
              reject: () => reject?.(),
              ended: Promise.race([ended, cancelled]),
              open: (peerAddr, peerPort, boundPort) =>
                new Promise<Conn>((res, rej) => {
                  client.forwardOut(i.bindAddr, boundPort, peerAddr, peerPort, (err, ch) => {
                    if (err) rej(err);
                    else {
                      res(
                        new ChannelConn(ch as unknown as ChannelLike, raw.localAddr, {
                          transport: "ssh",
                          hostname: peerAddr,
                          port: peerPort,
                        }),
                      );
                    }
                  });
                }),
            };
            if (!emit(new RequestConn(raw.localAddr, raw.remoteAddr, fwd) as unknown as Conn)) {
              reject?.();
            }
          });
        });
      }),
  });
}
