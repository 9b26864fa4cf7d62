import { cliConfig } from "../src/builtins.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { portOf } from "./_helpers.ts";

/**
 * Every carrier and proxy end to end, for tests that run the same check through each: [name, the
 * server's -L, the client's -F], with {T} for the target's port and {S} for the server's. The
 * client is `tcp://127.0.0.1:0/127.0.0.1:{T}` with the node as its one hop.
 */
export const CARRIERS: [string, string, string][] = [
  ["tls", "forward+tls://127.0.0.1:0/127.0.0.1:{T}", "forward+tls://127.0.0.1:{S}"],
  ["wss", "forward+wss://127.0.0.1:0/127.0.0.1:{T}", "forward+wss://127.0.0.1:{S}"],
  ["mtls", "forward+mtls://127.0.0.1:0/127.0.0.1:{T}", "forward+mtls://127.0.0.1:{S}"],
  ["mwss", "forward+mwss://127.0.0.1:0/127.0.0.1:{T}", "forward+mwss://127.0.0.1:{S}"],
  ["ws", "forward+ws://127.0.0.1:0/127.0.0.1:{T}", "forward+ws://127.0.0.1:{S}"],
  ["mws", "forward+mws://127.0.0.1:0/127.0.0.1:{T}", "forward+mws://127.0.0.1:{S}"],
  ["mtcp", "forward+mtcp://127.0.0.1:0/127.0.0.1:{T}", "forward+mtcp://127.0.0.1:{S}"],
  ["kcp", "forward+kcp://127.0.0.1:0/127.0.0.1:{T}", "forward+kcp://127.0.0.1:{S}"],
  ["ssh", "forward+ssh://127.0.0.1:0/127.0.0.1:{T}", "forward+ssh://127.0.0.1:{S}"],
  ["relay", "relay://127.0.0.1:0", "relay://127.0.0.1:{S}"],
  ["socks5", "socks5://127.0.0.1:0", "socks5://127.0.0.1:{S}"],
  ["http", "http://127.0.0.1:0", "http://127.0.0.1:{S}"],
  ["socks4", "socks4://127.0.0.1:0", "socks4://127.0.0.1:{S}"],
  ["auto", "auto://127.0.0.1:0", "socks5://127.0.0.1:{S}"],
  ["tcp", "tcp://127.0.0.1:0/127.0.0.1:{T}", "forward://127.0.0.1:{S}"],
  ["sshd", "sshd://127.0.0.1:0", "sshd+sshd://127.0.0.1:{S}"],
  [
    "mtmux",
    "socks5+mtmux://127.0.0.1:0?secret=s&tunnels=2",
    "socks5+mtmux://127.0.0.1:{S}?secret=s&tunnels=2",
  ],
  [
    "ss",
    "ss://chacha20-ietf-poly1305:bp@127.0.0.1:0",
    "ss://chacha20-ietf-poly1305:bp@127.0.0.1:{S}",
  ],
];

/** A server (`serve`) and a client whose one hop is `node`, in front of the target's port. */
export async function startTunnel(
  serve: string,
  node: string,
  targetPort: number,
): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = await Runtime.start(cliConfig([serve.replace("{T}", String(targetPort))], []));
  try {
    const cli = await Runtime.start(
      cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${targetPort}`], [
        node.replace("{S}", String(portOf(srv))),
      ]),
    );
    return {
      port: portOf(cli),
      close: async () => {
        await cli.close();
        await srv.close();
      },
    };
  } catch (e) {
    await srv.close();
    throw e;
  }
}
