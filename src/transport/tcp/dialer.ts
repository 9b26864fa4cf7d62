/**
 * The `tcp` dialer: the raw conn as is, and the direct dial every route starts from.
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import { dialHost, splitHostPort } from "../../core/addr.ts";
import { TimeoutError, TunnelError } from "../../core/errors.ts";
import type { DialContext, Dialer } from "../../core/types.ts";
import { dialTcp } from "../../core/socket.ts";

/** `tcp` dialer: whatever reaches the node's address is the transport. */
export class TcpDialer implements Dialer {
  dial(addr: string, ctx: DialContext): Promise<Conn> {
    return ctx.netDial(addr);
  }
}

/** Direct TCP dial of `host:port` ("" host = loopback), aborted by `signal`. */
export async function directDialTcp(addr: string, signal?: AbortSignal): Promise<Conn> {
  const { host, port } = splitHostPort(addr);
  if (signal?.aborted) throw new TimeoutError(`dial ${addr}: ${signal.reason ?? "aborted"}`);
  const p = dialTcp(dialHost(host), port);
  if (!signal) return await wrapDialError(p, addr);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, rej) => {
    onAbort = () => rej(new TimeoutError(`dial ${addr}: timeout`));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([wrapDialError(p, addr), aborted]);
  } catch (e) {
    // A late success after the timeout must not leak a socket.
    p.then((c) => c.close(), () => {});
    throw e;
  } finally {
    signal.removeEventListener("abort", onAbort!);
  }
}

async function wrapDialError(p: Promise<Conn>, addr: string): Promise<Conn> {
  try {
    return await p;
  } catch (e) {
    throw new TunnelError(`dial tcp ${addr}: ${e instanceof Error ? e.message : e}`, {
      cause: e,
      temporary: true,
    });
  }
}
