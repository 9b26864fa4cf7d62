/**
 * What the two SSH server transports share (`sshd`: GOST's forwarding mode; `ssh`: GOST's
 * tunnel channels): the host key, the authorized keys, and one SSH connection served over a raw
 * conn, with login checked before the transport's own channel handling starts. Built on the ssh2
 * npm package.
 * @module
 */
// @ts-types="@types/ssh2"
import type ssh2 from "ssh2";
import { timingSafeEqual } from "node:crypto";
import type { Buffer } from "node:buffer";
import type { Conn } from "../../core/conn.ts";
import { ConfigError } from "../../core/errors.ts";
import type { Auther, ListenerOptions } from "../../core/types.ts";
import { conn2duplex } from "./streams.ts";
import { SSH2 } from "./ssh2.ts";

/** Seconds a client has to log in, and the failed attempts it may make (OpenSSH's defaults). */
const LOGIN_GRACE = 120_000;
const MAX_AUTH_TRIES = 6;

/**
 * Forwarding channels one SSH connection may hold open at once. Each may buffer up to ssh2's 2
 * MiB window when its far side is slow, so a client with unlimited channels could hold
 * unlimited memory (GOST sets no limit). Past it a channel is refused as a resource shortage.
 */
export const MAX_CHANNELS = 256;

type ParsedKey = Exclude<ReturnType<typeof ssh2.utils.parseKey>, Error | unknown[]>;

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
    const k = SSH2.get().utils.parseKey(l);
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
  const { utils } = SSH2.get();
  const parses = (k: string) => !(utils.parseKey(k) instanceof Error);
  if (path) {
    try {
      const k = Deno.readTextFileSync(path);
      if (parses(k)) return k;
    } catch { /* not there yet */ }
  }
  // Under Deno's node:crypto, ssh2 now and then writes an Ed25519 key its own parser rejects
  // ("Malformed OpenSSH private key"): make another.
  let key = utils.generateKeyPairSync("ed25519").private;
  for (let i = 0; i < 8 && !parses(key); i++) {
    key = utils.generateKeyPairSync("ed25519").private;
  }
  if (path) {
    Deno.mkdirSync(dir!, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(path, key, { mode: 0o600 });
  }
  return key;
}

/** An SSH server's settings, read once from the listener's metadata and auther. */
export interface SshServerConfig {
  hostKeys: (string | Buffer | { key: string | Buffer; passphrase: string })[];
  auther?: Auther;
  authorized: ParsedKey[];
  /** No auther and no authorized keys: anyone may log in (as in GOST). */
  open: boolean;
}

/**
 * Reads `privateKeyFile`/`passphrase` (else the automatic host key) and `authorizedKeys`; a bad
 * key or passphrase fails here, at start. With no way to log in checked, warns `openWarning`.
 */
export async function sshServerConfig(
  o: ListenerOptions,
  openWarning: string,
): Promise<SshServerConfig> {
  const { Server } = await SSH2.load();
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
  const open = !o.auther && authorized.length === 0;
  if (open) o.log.warn(openWarning);
  const hostKeys = [passphrase ? { key: hostKey, passphrase } : hostKey];
  new Server({ hostKeys }); // a bad key or passphrase fails here
  return { hostKeys, auther: o.auther, authorized, open };
}

/**
 * Serves one SSH connection over `raw` until it ends or `signal` aborts. `setup` gets the ssh2
 * connection as soon as it exists (before any channel can arrive) and a promise of its end;
 * login (password through the auther, public keys from `authorizedKeys`, at most
 * {@link MAX_AUTH_TRIES} tries within {@link LOGIN_GRACE}) is handled here.
 */
export function serveSsh(
  raw: Conn,
  signal: AbortSignal,
  cfg: SshServerConfig,
  setup: (client: ssh2.Connection, ended: Promise<void>) => void,
): Promise<void> {
  return new Promise<void>((resolve) => {
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
    const server = new (SSH2.get().Server)({ hostKeys: cfg.hostKeys });
    server.on("error", () => {});
    const { auther, authorized, open } = cfg;
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
      client.on("ready", () => clearTimeout(grace));
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
      setup(client, ended);
    };
    server.once("connection", onConn);
    server.injectSocket(sock as never);
  });
}
