/**
 * Forming bundles: the dialing side opens `tunnels` links with an authenticated join and
 * re-dials dead links with back-off; the listening side groups incoming links by bundle id
 * and refuses links whose MAC does not match the key.
 * @module
 */
import { type Conn, formatAddr, readFull } from "../core/conn.ts";
import { errorText, ProtocolError, TunnelError } from "../core/errors.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { type Emit, ServeListener } from "../core/serve_listener.ts";
import type { Listener } from "../core/types.ts";
import { constantTimeEqual } from "../core/secret.ts";
import { withDeadline, withSignal } from "../core/deadline.ts";
import { Bundle, type BundleOptions } from "./bundle.ts";
import {
  encodeJoin,
  encodeReply,
  joinMac,
  MAX_PAYLOAD,
  readJoin,
  REPLY_SIZE,
  ST_BAD_MAC,
  ST_FULL,
  ST_OK,
  ST_VERSION,
  u32,
  VERSION,
} from "./wire.ts";

/** How links join a bundle (docs/bundle.md). */
export interface JoinOptions {
  /** Links per bundle. */
  tunnels: number;
  /** Shared secret: every link proves it with an HMAC. */
  key: string;
  /** Settings of each bundle. */
  bundle: Partial<BundleOptions>;
  /** Where joins log (default: silent). */
  log?: Logger;
  /** Bundles one listener holds at once (`maxBundles`, default 256); more joins get "full". */
  maxBundles?: number;
}

const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** How long a link may take to be joined (both sides). */
const JOIN_TIMEOUT = 10_000;

/**
 * Sends the join on a fresh link and checks the reply; returns the peer's window in frames. A
 * silent peer fails it after JOIN_TIMEOUT, an abort at once (the link is closed either way).
 */
function join(
  conn: Conn,
  id: Uint8Array,
  index: number,
  count: number,
  key: string,
  flags = 0,
  signal?: AbortSignal,
): Promise<number> {
  return withDeadline(
    conn,
    JOIN_TIMEOUT,
    () => withSignal(conn, signal, () => exchangeJoin(conn, id, index, count, key, flags)),
  );
}

async function exchangeJoin(
  conn: Conn,
  id: Uint8Array,
  index: number,
  count: number,
  key: string,
  flags: number,
): Promise<number> {
  await conn.write(
    encodeJoin({
      version: VERSION,
      flags,
      linkIndex: index,
      linkCount: count,
      bundleId: id,
      mac: joinMac(key, id, index),
    }),
  );
  const r = await readFull(conn, new Uint8Array(REPLY_SIZE));
  if (r[0] !== ST_OK) {
    const why =
      ["ok", "bad MAC (wrong key)", "bundle full", "unknown bundle", "version mismatch"][r[0]!] ??
        `status ${r[0]}`;
    throw new TunnelError(`mtmux: link ${index} refused: ${why}`);
  }
  return Math.max(1, Math.floor(u32(r, 1) / MAX_PAYLOAD));
}

/** Join flag: this link carries its own smux session (`pin` mode), not bundle frames. */
export const FLAG_PIN = 1;

/** Joins one `pin`-mode link (its own smux session); `id` groups a client's links. */
export async function pinJoin(
  conn: Conn,
  id: Uint8Array,
  index: number,
  count: number,
  key: string,
  signal?: AbortSignal,
): Promise<void> {
  await join(conn, id, index, count, key, FLAG_PIN, signal);
}

/**
 * Opens a bundle of `tunnels` links; `dial(i)` opens the raw conn of link i. Dead links are
 * re-dialed with back-off (200 ms doubling to 5 s) while the bundle lives.
 */
export async function dialBundle(
  dial: (index: number) => Promise<Conn>,
  o: JoinOptions,
  signal?: AbortSignal,
): Promise<Bundle> {
  const id = crypto.getRandomValues(new Uint8Array(16));
  const log = o.log ?? silentLogger;
  const conns: (Conn | null)[] = [];
  let window = 64;
  let firstErr: unknown;
  await Promise.all(Array.from({ length: o.tunnels }, async (_, i) => {
    try {
      const c = await dial(i);
      try {
        window = await join(c, id, i, o.tunnels, o.key, 0, signal);
        conns[i] = c;
      } catch (e) {
        c.close();
        throw e;
      }
    } catch (e) {
      firstErr ??= e;
      conns[i] = null;
    }
  }));
  const up = conns.filter((c) => c !== null) as Conn[];
  if (up.length < (o.bundle.minLinks ?? 1) || up.length === 0) {
    for (const c of up) c.close();
    throw firstErr instanceof Error ? firstErr : new TunnelError("mtmux: no link could join");
  }
  const backoff = new Map<number, number>();
  // deno-lint-ignore prefer-const -- assigned once below; redial closes over it first
  let bundle: Bundle;
  const redial = (i: number) => {
    const wait = Math.min(5000, (backoff.get(i) ?? 100) * 2);
    backoff.set(i, wait);
    const t = setTimeout(async () => {
      if (bundle.isClosed) return;
      try {
        const c = await dial(i);
        await join(c, id, i, o.tunnels, o.key).catch((e) => {
          c.close();
          throw e;
        });
        backoff.delete(i);
        bundle.addLink(i, c);
      } catch (e) {
        log.debug(`mtmux: re-dial of link ${i} failed: ${errorText(e)}`);
        if (!bundle.isClosed) redial(i);
      }
    }, wait);
    bundle.closed.then(() => clearTimeout(t));
  };
  bundle = new Bundle(
    up[0]!.localAddr,
    up[0]!.remoteAddr,
    { ...o.bundle, log, onLinkDead: redial },
    window,
  );
  conns.forEach((c, i) => {
    if (c) bundle.addLink(i, c);
    else redial(i);
  });
  return bundle;
}

/** Accepts links on one or more listeners and yields a Bundle per bundle id. */
export class BundleListener extends ServeListener {
  readonly #o: JoinOptions;
  readonly #log: Logger;
  readonly #bundles = new Map<string, Bundle>();
  /** Links refused (bad MAC, version, full). */
  refused = 0;

  /** Joins the links accepted by `inners` into bundles; up to `backlog` bundles wait for `accept`. */
  constructor(inners: Listener[], o: JoinOptions, backlog = 128) {
    const log = o.log ?? silentLogger;
    super(inners, { name: "mtmux", log, backlog, serve: (c, emit) => this.#onLink(c, emit) });
    this.#o = o;
    this.#log = log;
  }

  async #onLink(c: Conn, emit: Emit): Promise<void> {
    try {
      const j = await withDeadline(c, JOIN_TIMEOUT, () => readJoin(c));
      const win = (this.#o.bundle.windowFrames ?? 256) * MAX_PAYLOAD;
      if (j.version !== VERSION) {
        await c.write(encodeReply(ST_VERSION, 0));
        throw new ProtocolError(`mtmux: link speaks version ${j.version}`);
      }
      const want = joinMac(this.#o.key, j.bundleId, j.linkIndex, j.version);
      if (!constantTimeEqual(hexOf(want), hexOf(j.mac))) {
        this.refused++;
        await c.write(encodeReply(ST_BAD_MAC, 0));
        throw new ProtocolError(
          `mtmux: link from ${formatAddr(c.remoteAddr)} has a bad MAC (wrong key)`,
        );
      }
      if (j.flags & FLAG_PIN) {
        // pin mode: the link itself is handed on; smux runs on it directly.
        await c.write(encodeReply(ST_OK, win));
        emit(c);
        return;
      }
      const key = hexOf(j.bundleId);
      let b = this.#bundles.get(key);
      if (b && (b.isClosed || j.linkIndex >= Math.max(j.linkCount, 1) + 8)) {
        if (!b.isClosed) {
          this.refused++;
          await c.write(encodeReply(ST_FULL, 0));
          throw new ProtocolError("mtmux: bundle full");
        }
        this.#bundles.delete(key);
        b = undefined;
      }
      // Find or create the bundle before any await, so links racing in together meet.
      if (!b && this.#bundles.size >= (this.#o.maxBundles ?? 256)) {
        this.refused++;
        await c.write(encodeReply(ST_FULL, 0));
        throw new ProtocolError(`mtmux: ${this.#bundles.size} bundles open, refused (maxBundles)`);
      }
      if (!b) {
        b = new Bundle(c.localAddr, c.remoteAddr, { ...this.#o.bundle, log: this.#log });
        const bundle = b;
        this.#bundles.set(key, b);
        b.closed.then(() => {
          if (this.#bundles.get(key) === bundle) this.#bundles.delete(key);
        });
        if (!emit(b)) throw new TunnelError("mtmux: accept backlog full");
      }
      await c.write(encodeReply(ST_OK, win));
      b.addLink(j.linkIndex, c);
    } catch (e) {
      this.#log.debug(`mtmux: link refused: ${errorText(e)}`);
      c.close();
    }
  }

  /** Stops accepting and closes every bundle. */
  override async close(): Promise<void> {
    await super.close();
    for (const b of this.#bundles.values()) b.close();
  }
}
