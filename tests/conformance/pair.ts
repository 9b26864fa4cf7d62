/** A listener and a dialer of one registered type, connected over loopback. */
import { builtinRegistries } from "../../src/builtins.ts";
import { silentLogger } from "../../src/core/log.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { directDialTcp } from "../../src/transport/tcp/dialer.ts";
import type { ConnPair } from "./conn_suite.ts";

/**
 * Types whose dialer returns a session, not a stream: their connector opens each stream (an SSH
 * session and its direct-tcpip channels). The suite then runs over those streams.
 */
const SESSION_DIALERS = new Set(["sshd"]);

/** `direct` lets the dialer open the first hop itself (native TLS socket for tls/wss). */
export async function transportPair(
  type: string,
  md: Record<string, string> = {},
  direct = false,
): Promise<ConnPair> {
  const reg = builtinRegistries();
  const l = await reg.listeners.get(type)({
    addr: "127.0.0.1:0",
    metadata: new Metadata(md),
    log: silentLogger,
    service: "t",
  });
  const d = await reg.dialers.get(type)({ metadata: new Metadata(md), log: silentLogger });
  const dialed = d.dial(`127.0.0.1:${l.addr.port}`, {
    netDial: (x) => directDialTcp(x),
    direct,
    log: silentLogger,
  }).then(async (c) =>
    SESSION_DIALERS.has(type)
      ? await (await reg.connectors.get(type)({ metadata: new Metadata({}), log: silentLogger }))
        .connect(c, "tcp", "127.0.0.1:9", { log: silentLogger })
      : c
  );
  const [a, b] = await Promise.all([dialed, l.accept()]);
  return {
    a,
    b: b!,
    cleanup: async () => {
      a.close();
      b?.close();
      await d.close?.();
      await l.close();
    },
  };
}
