/**
 * `mtmux`: a bundle of `tunnels` TCP links (default 4) carrying one reliable ordered stream,
 * with smux (v2) on top so many logical streams share it (design in docs/bundle.md §3, wire format in docs/mtmux-wire.md). Options: `tunnels`, `secret` (link MAC key; `key` in YAML), `keepaliveInterval`,
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
import type { MuxFactory } from "../../core/mux.ts";
import { smuxConfigFromMetadata, smuxFactory, verifyConfig } from "../../mux/smux/mod.ts";
import { BundleListener, dialBundle, type JoinOptions, pinJoin } from "../../bundle/join.ts";
import type { Dialer } from "../../core/types.ts";
import { MuxDialer, MuxListener } from "../mux.ts";
import { TcpListener } from "../tcp/listener.ts";

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
    maxBundles: md.int("maxBundles", 256),
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
 * smux on a bundle, the same for listener and dialer: v2, and (unless `mux.*` says otherwise)
 * windows sized for the bundle's bandwidth rather than smux's 64 KiB default, which would cap
 * one stream at 64 KiB per RTT.
 */
function bundleMux(md: Metadata, log: Logger): MuxFactory {
  const c = smuxConfigFromMetadata(md, 2);
  if (!md.has("mux.maxReceiveBuffer")) c.maxReceiveBuffer = 16 << 20;
  if (!md.has("mux.maxStreamBuffer")) c.maxStreamBuffer = 4 << 20;
  return smuxFactory(verifyConfig(c, `${md.path}.mux`), { log });
}

export function register(reg: Registries): void {
  reg.listeners.register("mtmux", (o) => {
    const j = joinOptions(o.metadata, o.log);
    if (!j.key) {
      o.log.warn("mtmux: no secret set, so any client can open bundles here; set secret=...");
    }
    const { host, port } = splitHostPort(o.addr);
    const n = j.portRange ? j.tunnels : 1;
    const inners = Array.from(
      { length: n },
      (_, i) => TcpListener.listen(joinHostPort(host, port === 0 ? 0 : port + i)),
    );
    const bundles = new BundleListener(inners, j, o.metadata.int("backlog", 128));
    return Promise.resolve(
      new MuxListener(bundles, bundleMux(o.metadata, o.log), o.log, 128, o.guard),
    );
  });
  reg.dialers.register("mtmux", (o): Dialer => {
    const j = joinOptions(o.metadata, o.log);
    const mux = bundleMux(o.metadata, o.log);
    const mode = o.metadata.string("mode", "stripe");
    const linkAddr = (addr: string, i: number) => {
      if (!j.portRange) return addr;
      const { host, port } = splitHostPort(addr);
      return joinHostPort(dialHost(host), port + i);
    };
    if (mode === "pin") {
      // Each of the `tunnels` links carries its own session; a new stream goes to the one with
      // the fewest streams. No striping, so no reordering (and one stream never goes faster
      // than one link).
      const id = crypto.getRandomValues(new Uint8Array(16));
      return new MuxDialer(
        async (addr, ctx, i) => {
          const raw = await ctx.netDial(linkAddr(addr, i));
          try {
            await pinJoin(raw, id, i, j.tunnels, j.key, ctx.signal);
          } catch (e) {
            raw.close();
            throw e;
          }
          return raw;
        },
        mux,
        { sessions: j.tunnels },
      );
    }
    if (mode !== "stripe") {
      throw new ConfigError(`${o.metadata.path}.mode`, "expected stripe or pin");
    }
    return new MuxDialer(
      (addr, ctx) => dialBundle((i) => ctx.netDial(linkAddr(addr, i)), j, ctx.signal),
      mux,
    );
  });
}
