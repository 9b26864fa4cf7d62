/**
 * The node `mtcp` module's `config.json` (`host`, `host_port`, `remote_port`, `local_port`,
 * `somaxconn`), run with Burrow's mtmux bundle (docs/bundle.md): `burrow mtcp-server config.json`
 * on the server forwards `host_port` (a bundle of `somaxconn` links) to `host:remote_port`;
 * `burrow mtcp-local config.json` on the client serves `local_port` through it. The same picture
 * as the module's README: `app ⇄ local:local_port ⇐ somaxconn sockets ⇒ host:host_port ⇄
 * host:remote_port`.
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import { joinHostPort } from "../core/addr.ts";

/** The module's settings. */
export interface NodeMtcpConfig {
  host: string;
  hostPort: number;
  remotePort: number;
  localPort: number;
  somaxconn: number;
}

function port(v: unknown, key: string, where: string): number {
  const n = typeof v === "number"
    ? v
    : typeof v === "string" && /^\d+$/.test(v.trim())
    ? Number(v)
    : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(`${where}: ${key}`, `expected a port number, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Reads `config.json` text (`where` names it in errors). */
export function parseNodeMtcp(text: string, where: string): NodeMtcpConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(where, `cannot parse JSON: ${e instanceof Error ? e.message : e}`);
  }
  if (typeof raw !== "object" || raw === null) throw new ConfigError(where, "expected an object");
  const o = raw as Record<string, unknown>;
  const known = ["host", "host_port", "remote_port", "local_port", "somaxconn"];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      throw new ConfigError(`${where}: ${k}`, `unknown key (known: ${known.join(", ")})`);
    }
  }
  if (typeof o.host !== "string" || o.host.trim() === "") {
    throw new ConfigError(`${where}: host`, "expected the server's address");
  }
  const somaxconn = o.somaxconn === undefined ? 4 : port(o.somaxconn, "somaxconn", where);
  if (somaxconn < 1 || somaxconn > 64) {
    throw new ConfigError(`${where}: somaxconn`, "must be 1…64 (links per bundle)");
  }
  return {
    host: o.host.trim().replace(/^\[|\]$/g, ""),
    hostPort: port(o.host_port, "host_port", where),
    remotePort: port(o.remote_port, "remote_port", where),
    localPort: port(o.local_port, "local_port", where),
    somaxconn,
  };
}

/** The Burrow flags each end runs: `mtcp-server` or `mtcp-local`. */
export function nodeMtcpArgs(c: NodeMtcpConfig, side: "server" | "local"): string[] {
  const target = joinHostPort(c.host, c.remotePort);
  const v6 = c.host.includes(":");
  if (side === "server") {
    // Every interface of the family the host address is in (the module was tested on IPv6).
    const listen = joinHostPort(v6 ? "::" : "0.0.0.0", c.hostPort);
    return ["-L", `tcp+mtmux://${listen}/${target}?tunnels=${c.somaxconn}`];
  }
  return [
    "-L",
    `tcp://${joinHostPort(v6 ? "::1" : "127.0.0.1", c.localPort)}/${target}`,
    "-F",
    `forward+mtmux://${joinHostPort(c.host, c.hostPort)}?tunnels=${c.somaxconn}`,
  ];
}
