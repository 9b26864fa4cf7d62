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
// @ts-types="@types/ssh2"
import ssh2 from "ssh2";
import { timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import type { Conn, NetAddr } from "../../core/conn.ts";
import { ConfigError } from "../../core/errors.ts";
import { joinHostPort } from "../../core/addr.ts";
import type { Listener, ListenerOptions } from "../../core/types.ts";
import { ServeListener } from "../../core/serve_listener.ts";
import type { SshForward } from "../../protocol/ssh_forward.ts";
import { createTcpListener } from "../tcp/listener.ts";
import { ChannelConn, type ChannelLike, conn2duplex } from "./streams.ts";

/** Seconds a client has to log in, and the failed attempts it may make (OpenSSH's defaults). */
const LOGIN_GRACE = 120_000;
const MAX_AUTH_TRIES = 6;

type ParsedKey = Exclude<ReturnType<typeof ssh2.utils.parseKey>, Error | unknown[]>;

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

function loadAuthorizedKeys(path: string, md: string): ParsedKey[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new ConfigError(`${md}.authorizedKeys`, `cannot read ${path}: ${e}`);
  }
  const keys: ParsedKey[] = [];
  for (const line of text.split("\n")) {
    const l = line.trim();
    if (!l || l.startsWith("#")) continue;
    const k = ssh2.utils.parseKey(l);
    if (!(k instanceof Error)) keys.push((Array.isArray(k) ? k[0]! : k) as ParsedKey);
  }
  return keys;
}

/**
 * The host key when none is configured: kept in `$BURROW_CERT_DIR/auto-ssh-host-key` (mode 0600)
 * when that is set, like the automatic TLS certificate, so clients see the same key after a
 * restart; otherwise made per process.
 */
function autoHostKey(): string {
  const dir = Deno.env.get("BURROW_CERT_DIR");
  const path = dir ? `${dir}/auto-ssh-host-key` : "";
  const parses = (k: string) => !(ssh2.utils.parseKey(k) instanceof Error);
  if (path) {
    try {
      const k = Deno.readTextFileSync(path);
      if (parses(k)) return k;
    } catch { /* not there yet */ }
  }
  // Under Deno's node:crypto, ssh2 now and then writes an Ed25519 key its own parser rejects
  // ("Malformed OpenSSH private key"): make another.
  let key = ssh2.utils.generateKeyPairSync("ed25519").private;
  for (let i = 0; i < 8 && !parses(key); i++) {
    key = ssh2.utils.generateKeyPairSync("ed25519").private;
  }
  if (path) {
    Deno.mkdirSync(dir!, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(path, key, { mode: 0o600 });
  }
  return key;
}

export async function createSshdListener(o: ListenerOptions): Promise<Listener> {
  const md = o.metadata;
  const keyFile = md.string("privateKeyFile");
  const passphrase = md.string("passphrase");
  let hostKey: string | Buffer;
  if (keyFile) {
    try {
      hostKey = Deno.readTextFileSync(keyFile);
    } catch (e) {
      throw new ConfigError(`${md.path}.privateKeyFile`, `cannot read ${keyFile}: ${e}`);
    }
  } else {
    hostKey = autoHostKey();
  }
  const keysFile = md.string("authorizedKeys");
  const authorized = keysFile ? loadAuthorizedKeys(keysFile, md.path) : [];
  const auther = o.auther;
  const open = !auther && authorized.length === 0;
  if (open) {
    o.log.warn(
      "sshd: no auth and no authorizedKeys: anyone may log in and forward anywhere (as in GOST)",
    );
  }
  const inner = await createTcpListener(o);
  const hostKeys = [passphrase ? { key: hostKey, passphrase } : hostKey];
  new ssh2.Server({ hostKeys }); // a bad key or passphrase fails here, at start
  return new ServeListener(inner, {
    name: "sshd",
    log: o.log,
    backlog: md.int("backlog", 128),
    guard: o.guard,
    serve: (raw, emit, signal) =>
      new Promise<void>((resolve) => {
        const duplex = conn2duplex(raw);
        // The peer gone (EOF, error) ends the SSH connection too: a Duplex whose writable side
        // ssh2 never finishes would not close by itself, and the serve task would wait forever.
        duplex.on("end", () => duplex.destroy());
        duplex.on("error", () => duplex.destroy());
        duplex.on("close", () => resolve());
        const sock = duplex as unknown as Record<string, unknown>;
        sock.remoteAddress = raw.remoteAddr.hostname;
        sock.remotePort = raw.remoteAddr.port;
        sock.remoteFamily = raw.remoteAddr.hostname.includes(":") ? "IPv6" : "IPv4";
        // One ssh2 Server per connection: a shared one hands its "connection" event to
        // whichever client's banner comes first, not to this socket's handlers.
        const server = new ssh2.Server({ hostKeys });
        server.on("error", () => {});
        const onConn = (client: ssh2.Connection) => {
          const ended = new Promise<void>((r) => client.on("close", () => r()));
          const onAbort = () => {
            client.end();
            setTimeout(() => duplex.destroy(), 100); // the goodbye goes out first
          };
          signal.addEventListener("abort", onAbort, { once: true });
          ended.then(() => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          });
          // Login within LOGIN_GRACE and MAX_AUTH_TRIES (OpenSSH's LoginGraceTime, MaxAuthTries).
          const grace = setTimeout(() => duplex.destroy(), LOGIN_GRACE);
          ended.then(() => clearTimeout(grace));
          let tries = 0;
          client.on("error", () => {});
          client.on("authentication", (ctx) => {
            if (open) return ctx.accept();
            if (ctx.method !== "none" && ++tries > MAX_AUTH_TRIES) {
              ctx.reject();
              duplex.destroy();
              return;
            }
            if (ctx.method === "password" && auther?.authenticate(ctx.username, ctx.password)) {
              return ctx.accept();
            }
            if (ctx.method === "publickey") {
              const k = authorized.find((a) => {
                const pub = a.getPublicSSH();
                return a.type === ctx.key.algo && pub.length === ctx.key.data.length &&
                  timingSafeEqual(pub, ctx.key.data);
              });
              if (
                k &&
                (!ctx.signature || k.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true)
              ) {
                return ctx.accept();
              }
            }
            const methods: ("password" | "publickey")[] = [];
            if (auther) methods.push("password");
            if (authorized.length) methods.push("publickey");
            ctx.reject(methods);
          });
          /** Granted remote forwardings by `bindAddr:port`, to cancel. */
          const forwards = new Map<string, () => void>();
          client.on("ready", () => {
            clearTimeout(grace);
            client.on("session", (_accept, reject) => reject());
            client.on("tcpip", (accept, reject, info) => {
              // The name goes into dials and maybe an upstream proxy's request line: host
              // characters only.
              if (!/^[A-Za-z0-9._:-]+$/.test(info.destIP) || !(info.destPort > 0)) return reject();
              const ch = accept();
              if (!ch) return reject();
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
        };
        server.once("connection", onConn);
        server.injectSocket(sock as never);
      }),
  });
}
