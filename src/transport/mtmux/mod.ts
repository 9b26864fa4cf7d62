/**
 * `mtmux`: a bundle of `tunnels` TCP links (default 4) carrying one reliable ordered stream,
 * with smux (v2) on top so many logical streams share it (mtmux.md §4; wire format in
 * docs/mtmux-wire.md). Options: `tunnels`, `secret` (link MAC key; `key` in YAML), `keepaliveInterval`,
 * `keepaliveTimeout`, `timeout` (missing frame), `minLinks`, `window` (frames of 16 KiB), `scheduler`
 * (`lowest-rtt` | `round-robin`), `portRange` (link i uses port+i, like the original),
 * `mode` (`stripe` default | `pin`: each link its own smux session, set on the dialer).
 * @module
 */
import { dialHost, joinHostPort, splitHostPort } from "../../core/addr.ts";
import type { Metadata } from "../../core/metadata.ts";
import type { Registries } from "../../core/registry.ts";
import { ConfigError } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import {
  clientSession,
  type SmuxConfig,
  smuxConfigFromMetadata,
  type SmuxSession,
  verifyConfig,
} from "../../mux/smux/mod.ts";
import { BundleListener, dialBundle, type JoinOptions, pinJoin } from "../../bundle/join.ts";
import type { Conn } from "../../core/conn.ts";
import type { DialContext, Dialer } from "../../core/types.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";

/**
 * `mode=pin`: each of the `tunnels` links carries its own smux session; new streams go to the
 * session with the fewest open streams. No striping, so no reordering (and one stream never
 * goes faster than one link).
 */
class PinDialer implements Dialer {
  readonly #sessions = new Map<string, (Promise<SmuxSession> | undefined)[]>();
  readonly #id = crypto.getRandomValues(new Uint8Array(16));
  constructor(readonly j: JoinOptions & { portRange: boolean }, readonly cfg: SmuxConfig) {}

  #open(addr: string, i: number, ctx: DialContext): Promise<SmuxSession> {
    const { host, port } = splitHostPort(addr);
    return (async () => {
      const raw: Conn = await ctx.netDial(
        this.j.portRange ? joinHostPort(dialHost(host), port + i) : addr,
      );
      try {
        await pinJoin(raw, this.#id, i, this.j.tunnels, this.j.key);
      } catch (e) {
        raw.close();
        throw e;
      }
      return clientSession(raw, this.cfg, { log: this.j.log });
    })();
  }

  async dial(addr: string, ctx: DialContext): Promise<Conn> {
    const slots = this.#sessions.get(addr) ?? new Array(this.j.tunnels).fill(undefined);
    this.#sessions.set(addr, slots);
    const live: SmuxSession[] = [];
    await Promise.all(slots.map(async (p, i) => {
      let s = p ? await p.catch(() => undefined) : undefined;
      if (!s || s.isClosed) {
        const np = this.#open(addr, i, ctx);
        slots[i] = np;
        s = await np.catch(() => {
          slots[i] = undefined;
          return undefined;
        });
      }
      if (s && !s.isClosed) live.push(s);
    }));
    if (live.length === 0) throw new ConfigError("mtmux", `no pin link to ${addr} could be opened`);
    live.sort((a, b) => a.streamCount - b.streamCount);
    return await live[0]!.openStream();
  }

  async close(): Promise<void> {
    for (const slots of this.#sessions.values()) {
      for (const p of slots) (await p?.catch(() => undefined))?.close();
    }
    this.#sessions.clear();
  }
}

function joinOptions(md: Metadata, log: Logger): JoinOptions & { portRange: boolean } {
  const tunnels = md.int(["tunnels", "Tunnels"], 4);
  if (tunnels < 1 || tunnels > 64) throw new ConfigError(`${md.path}.tunnels`, "must be 1…64");
  const scheduler = md.string("scheduler", "lowest-rtt");
  if (scheduler !== "lowest-rtt" && scheduler !== "round-robin") {
    throw new ConfigError(`${md.path}.scheduler`, "expected lowest-rtt or round-robin");
  }
  return {
    tunnels,
    // `key=` on a GOST command line means a TLS key file, so the CLI spelling is `secret=`.
    key: md.string(["key", "secret", "mtmux.key"]),
    portRange: md.bool("portRange"),
    log,
    bundle: {
      keepaliveInterval: md.duration(["keepaliveInterval", "KeepAliveInterval"], 10_000),
      keepaliveTimeout: md.duration(["keepaliveTimeout", "KeepAliveTimeout"], 30_000),
      minLinks: md.int("minLinks", 1),
      timeout: md.duration(["timeout", "Timeout"], 5_000),
      windowFrames: md.int("window", 256),
      scheduler,
    },
  };
}

/**
 * smux on a bundle: v2, and (unless `mux.*` says otherwise) windows sized for the bundle's
 * bandwidth rather than smux's 64 KiB default, which would cap one stream at 64 KiB per RTT.
 */
function bundleSmux(md: Metadata): SmuxConfig {
  const c = smuxConfigFromMetadata(md, 2);
  if (!md.has("mux.maxReceiveBuffer")) c.maxReceiveBuffer = 16 << 20;
  if (!md.has("mux.maxStreamBuffer")) c.maxStreamBuffer = 4 << 20;
  return verifyConfig(c, `${md.path}.mux`);
}

export function register(reg: Registries): void {
  reg.listeners.register("mtmux", (o) => {
    const j = joinOptions(o.metadata, o.log);
    const { host, port } = splitHostPort(o.addr);
    const n = j.portRange ? j.tunnels : 1;
    const inners = Array.from(
      { length: n },
      (_, i) => TcpListener.listen(joinHostPort(host, port === 0 ? 0 : port + i)),
    );
    const bundles = new BundleListener(inners, j, o.metadata.int("backlog", 128));
    return Promise.resolve(new MuxListener(bundles, bundleSmux(o.metadata), o.log));
  });
  reg.dialers.register("mtmux", (o): Dialer => {
    const j = joinOptions(o.metadata, o.log);
    const mode = o.metadata.string("mode", "stripe");
    if (mode === "pin") return new PinDialer(j, bundleSmux(o.metadata));
    if (mode !== "stripe") {
      throw new ConfigError(`${o.metadata.path}.mode`, "expected stripe or pin");
    }
    return new MuxDialer(
      (addr, ctx) => {
        const { host, port } = splitHostPort(addr);
        return dialBundle(
          (i) => ctx.netDial(j.portRange ? joinHostPort(dialHost(host), port + i) : addr),
          j,
        );
      },
      smuxConfigFromMetadata(o.metadata, 2),
      o.log,
    );
  });
}
