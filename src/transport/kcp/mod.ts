/**
 * The `kcp` transport (docs/kcp.md §9): KCP sessions over UDP with kcptun's envelope, snappy
 * framing unless `nocomp`, and smux (`smuxver`) on top; each smux stream is a connection.
 * @module
 */
import type { Conn, NetAddr } from "../../core/conn.ts";
import type { Registries } from "../../core/registry.ts";
import type { Listener } from "../../core/types.ts";
import { DEFAULT_CONFIG, type SmuxConfig, smuxFactory } from "../../mux/smux/mod.ts";
import { verifyConfig } from "../../mux/smux/config.ts";
import { type KcpConfig, kcpConfigFromMetadata } from "../../kcp/config.ts";
import { deriveKey } from "../../kcp/crypt/mod.ts";
import { dialKcp, KcpListener } from "../../kcp/session.ts";
import { SnappyConn } from "../../kcp/snappy.ts";
import { MuxDialer, MuxListener } from "../mux.ts";

/** smux settings as kcptun derives them. */
export function kcpSmuxConfig(c: KcpConfig, maxStreams = DEFAULT_CONFIG.maxStreams): SmuxConfig {
  return verifyConfig({
    version: c.smuxver,
    keepAliveDisabled: false,
    keepAliveInterval: (c.keepalive || 10) * 1000,
    keepAliveTimeout: 30_000,
    maxFrameSize: 32768,
    maxReceiveBuffer: c.smuxbuf || c.sockbuf,
    maxStreamBuffer: c.streambuf || Math.floor(c.sockbuf / 2),
    maxStreams,
  }, "kcp");
}

/** Wraps each accepted KCP session in snappy framing (unless `nocomp`). */
class CompressedListener implements Listener {
  constructor(readonly inner: KcpListener, readonly nocomp: boolean) {}
  get addr(): NetAddr {
    return this.inner.addr;
  }
  async accept(): Promise<Conn | null> {
    const c = await this.inner.accept();
    return c && !this.nocomp ? new SnappyConn(c) : c;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function register(reg: Registries): void {
  reg.listeners.register("kcp", async (o) => {
    const cfg = await kcpConfigFromMetadata(o.metadata);
    const kl = new KcpListener(o.addr, cfg, o.log);
    if (cfg.sockbuf > 0 && kl.sockbuf === 0) {
      o.log.warn(
        `kcp: UDP socket buffer left at the system default (kcp.sockbuf=${cfg.sockbuf} needs Linux and --allow-ffi); bursts from kcptun peers may be dropped`,
      );
    }
    const inner = new CompressedListener(kl, cfg.nocomp);
    // Burrow's stream cap (the README's limits table) applies to kcp sessions too.
    const maxStreams = o.metadata.int("mux.maxStreams", DEFAULT_CONFIG.maxStreams);
    const mux = smuxFactory(kcpSmuxConfig(cfg, maxStreams), { log: o.log });
    return new MuxListener(inner, mux, o.log, o.metadata.int("backlog", 128), o.guard);
  });
  reg.dialers.register("kcp", async (o) => {
    const cfg = await kcpConfigFromMetadata(o.metadata);
    const key = deriveKey(cfg.key);
    // Past this many streams in a session the dialer opens another (a Burrow server refuses more).
    const maxStreams = o.metadata.int("mux.maxStreams", DEFAULT_CONFIG.maxStreams);
    // KCP dials its own UDP socket: it cannot ride inside an earlier TCP hop.
    return new MuxDialer(
      async (addr) => {
        const s = await dialKcp(addr, cfg, key);
        return cfg.nocomp ? s : new SnappyConn(s);
      },
      smuxFactory(kcpSmuxConfig(cfg, maxStreams), { log: o.log }),
      { directOnly: true },
    );
  });
}
