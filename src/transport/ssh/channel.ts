/**
 * Channels of a type of one's own on ssh2 connections: GOST's `ssh` transport carries each tunnel
 * in a channel of type `gost-tunnel` (docs/gost-proxies.md "ssh"), and ssh2 (pinned in deno.json)
 * has no public call for either side of that. Both sides use the same internals the library's
 * own channel types do, loaded and checked once at start ({@link loadSsh2Internals}), so a changed ssh2
 * fails loudly there rather than hanging a dial:
 * - opening: `_chanMgr.add(cb)` reserves the local id and keeps `cb`, whose `type` becomes the
 *   channel's; the packet goes out through `sendPacket` like ssh2's own (it waits out re-keying);
 *   CHANNEL_OPEN_CONFIRMATION / _FAILURE call `cb`;
 * - accepting: the connection's CHANNEL_OPEN handler is wrapped; ssh2's own one answers every
 *   type it does not know with UNKNOWN_CHANNEL_TYPE and says nothing.
 * @module
 */
import { Buffer } from "node:buffer";
// @ts-types="@types/ssh2"
import type ssh2 from "ssh2";
import { TimeoutError, TunnelError, UnsupportedError } from "../../core/errors.ts";
import type { ChannelLike } from "../sshd/streams.ts";

/** ssh2's internals used here (JavaScript without types). */
interface Internals {
  Channel: new (client: unknown, info: unknown, opts?: unknown) => ChannelLike;
  MAX_WINDOW: number;
  PACKET_SIZE: number;
  sendPacket: (proto: unknown, packet: Buffer) => void;
}

/** Set by {@link loadSsh2Internals}, which every factory of the ssh transport awaits. */
let internals: Internals;

const MSG_CHANNEL_OPEN = 90;
/** RFC 4254 §5.1 reason codes. */
const UNKNOWN_CHANNEL_TYPE = 3;
const RESOURCE_SHORTAGE = 4;

/**
 * Imports ssh2's internals used here (with ssh2 itself, on first need: core/lazy.ts) and throws
 * when they are not what this module was written against.
 */
export async function loadSsh2Internals(): Promise<void> {
  if (internals) return;
  const [channelModule, protocolUtils] = await Promise.all([
    import("ssh2/lib/Channel.js").then((m) => m.default as Record<string, unknown>),
    import("ssh2/lib/protocol/utils.js").then((m) => m.default as Record<string, unknown>),
  ]);
  const found: Internals = {
    Channel: channelModule.Channel as Internals["Channel"],
    MAX_WINDOW: channelModule.MAX_WINDOW as number,
    PACKET_SIZE: channelModule.PACKET_SIZE as number,
    sendPacket: protocolUtils.sendPacket as Internals["sendPacket"],
  };
  const { Channel, MAX_WINDOW, PACKET_SIZE, sendPacket } = found;
  if (
    typeof Channel !== "function" || MAX_WINDOW !== 2 * 1024 * 1024 ||
    PACKET_SIZE !== 32 * 1024 || typeof sendPacket !== "function"
  ) {
    throw new UnsupportedError(
      "ssh: this ssh2 version lacks the internals GOST's ssh transport needs (see deno.json)",
    );
  }
  internals = found;
}

/** The private fields of an ssh2 Client or server-side Connection used here. */
interface ConnInternals {
  _protocol?: {
    _packetRW?: {
      write?: {
        allocStart: number;
        alloc(n: number): Buffer;
        finalize(b: Buffer): Buffer;
      };
    };
    _handlers?: Record<string, unknown>;
    channelOpenFail(recipient: number, reason: number, desc: string): void;
    channelOpenConfirm(recipient: number, id: number, window: number, packetSize: number): void;
  };
  _chanMgr?: { add(v?: unknown): number; update(id: number, v: unknown): void };
  authenticated?: boolean;
}

/**
 * Opens a channel of `type` (no extra data) on a connected ssh2 client. Rejects when the server
 * refuses it, when the connection ends first, or after `timeoutMs` / on `signal`.
 */
export function openChannel(
  client: ssh2.Client,
  type: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ChannelLike> {
  const c = client as unknown as ConnInternals;
  const proto = c._protocol, w = proto?._packetRW?.write, mgr = c._chanMgr;
  if (!proto || !w || !mgr) return Promise.reject(new TunnelError("ssh: not connected"));
  return new Promise<ChannelLike>((resolve, reject) => {
    let settled = false;
    const done = () => {
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const cb = ((err: (Error & { reason?: number }) | undefined, ch?: ChannelLike) => {
      if (settled) {
        ch?.close?.(); // answered after we gave up: give the channel back
        return;
      }
      done();
      if (err) reject(new TunnelError(`ssh: ${type} channel refused: ${err.message}`));
      else resolve(ch!);
    }) as ((err?: Error, ch?: ChannelLike) => void) & { type: string };
    cb.type = type;
    const onAbort = () => {
      if (settled) return;
      done();
      reject(signal?.reason ?? new TimeoutError(`ssh: opening a ${type} channel: aborted`));
    };
    const timer = setTimeout(() => {
      if (settled) return;
      done();
      reject(new TimeoutError(`ssh: no answer to opening a ${type} channel`));
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) return onAbort();
    const id = mgr.add(cb);
    if (id === -1) {
      done();
      return reject(new TunnelError("ssh: no free channel ids on this connection"));
    }
    const t = Buffer.from(type, "utf8");
    let p = w.allocStart;
    const pkt = w.alloc(1 + 4 + t.length + 12);
    pkt[p] = MSG_CHANNEL_OPEN;
    pkt.writeUInt32BE(t.length, ++p);
    pkt.set(t, p += 4);
    pkt.writeUInt32BE(id, p += t.length);
    pkt.writeUInt32BE(internals.MAX_WINDOW, p += 4);
    pkt.writeUInt32BE(internals.PACKET_SIZE, p += 4);
    internals.sendPacket(proto, w.finalize(pkt));
  });
}

/**
 * Makes a server-side ssh2 connection accept channels of `type` once its client has logged in,
 * handing each to `onChannel`, at most `maxOpen` at once; every other type is refused with
 * UNKNOWN_CHANNEL_TYPE and `unsupported channel type: <type>`, as GOST's listener does. Call it as soon as the connection
 * exists, before any channel can arrive.
 */
export function acceptChannels(
  conn: ssh2.Connection,
  type: string,
  onChannel: (ch: ChannelLike) => void,
  maxOpen: number,
): void {
  /** Channels of `type` open now: past `maxOpen`, new ones are refused (resource shortage). */
  let open = 0;
  const c = conn as unknown as ConnInternals;
  const proto = c._protocol, handlers = proto?._handlers, mgr = c._chanMgr;
  const original = handlers?.CHANNEL_OPEN;
  if (!proto || !handlers || !mgr || typeof original !== "function") {
    throw new UnsupportedError("ssh: ssh2's connection internals are not as expected");
  }
  interface OpenInfo {
    type: string;
    sender: number;
    window: number;
    packetSize: number;
  }
  handlers.CHANNEL_OPEN = (p: typeof proto, info: OpenInfo) => {
    // Before login ssh2's own handler refuses (administratively prohibited).
    if (!c.authenticated) return original(p, info);
    if (info.type !== type) {
      return p.channelOpenFail(
        info.sender,
        UNKNOWN_CHANNEL_TYPE,
        `unsupported channel type: ${info.type}`,
      );
    }
    if (open >= maxOpen) {
      return p.channelOpenFail(info.sender, RESOURCE_SHORTAGE, `more than ${maxOpen} channels`);
    }
    const id = mgr.add();
    if (id === -1) return p.channelOpenFail(info.sender, RESOURCE_SHORTAGE, "");
    const { MAX_WINDOW, PACKET_SIZE } = internals;
    // Not in ssh2's server mode, whose `end()` closes the whole channel: ending our side sends
    // EOF only, so the other direction can finish (half-close).
    const ch = new internals.Channel(conn, {
      type,
      incoming: { id, window: MAX_WINDOW, packetSize: PACKET_SIZE, state: "open" },
      outgoing: {
        id: info.sender,
        window: info.window,
        packetSize: info.packetSize,
        state: "open",
      },
    });
    mgr.update(id, ch);
    open++;
    ch.once("close", () => open--);
    p.channelOpenConfirm(info.sender, id, MAX_WINDOW, PACKET_SIZE);
    onChannel(ch);
  };
}
