/**
 * `host:port` parsing and formatting, IPv6-aware.
 * @module
 */

/** A parsed `host:port`. `host` is "" for the `:port` shorthand. */
export interface HostPort {
  host: string;
  port: number;
}

/** Splits `host:port`, `[v6]:port`, `:port` or `:` (port 0). Throws on a missing or bad port. */
export function splitHostPort(addr: string): HostPort {
  let host: string;
  let portText: string;
  if (addr.startsWith("[")) {
    const end = addr.indexOf("]");
    if (end < 0 || addr[end + 1] !== ":") throw new Error(`bad address ${JSON.stringify(addr)}`);
    host = addr.slice(1, end);
    portText = addr.slice(end + 2);
  } else {
    const i = addr.lastIndexOf(":");
    if (i < 0) throw new Error(`missing port in address ${JSON.stringify(addr)}`);
    host = addr.slice(0, i);
    portText = addr.slice(i + 1);
    if (host.includes(":")) throw new Error(`IPv6 address must be bracketed: ${addr}`);
  }
  // Go accepts an empty port (`:` or `host:`) and means "any free port" when listening.
  if (portText === "") return { host, port: 0 };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new Error(`bad port in address ${JSON.stringify(addr)}`);
  }
  return { host, port: Number(portText) };
}

/** Joins host and port, bracketing IPv6 literals. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** IPv4 dotted quad test. */
export function isIPv4(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  return !!m && m.slice(1).every((x) => Number(x) <= 255);
}

/** IPv6 literal test (loose: hex groups and colons, optional embedded IPv4). */
export function isIPv6(s: string): boolean {
  return s.includes(":") && /^[0-9a-fA-F:.]+$/.test(s);
}

/** Host to listen on: "" means all interfaces. */
export function listenHost(host: string): string {
  return host === "" ? "0.0.0.0" : host;
}

/** Host to dial: "" means this machine. */
export function dialHost(host: string): string {
  return host === "" ? "127.0.0.1" : host;
}
