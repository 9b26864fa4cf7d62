/**
 * A small HTTP endpoint for the API and metrics servers: `Deno.serve` on a GOST-style
 * `host:port` (`:18080` means every interface), closed with the runtime.
 * @module
 */
import { listenHost, splitHostPort } from "../core/addr.ts";
import { errorText, TunnelError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";

/** A running endpoint. */
export interface HttpEndpoint {
  readonly port: number;
  /** True when it listens on a loopback address only. */
  readonly loopback: boolean;
  close(): Promise<void>;
}

/** Serves `handler` on `addr`. */
export async function listen(
  addr: string,
  handler: (req: Request, info: { remote: string }) => Response | Promise<Response>,
  log: Logger,
): Promise<HttpEndpoint> {
  let hp;
  try {
    hp = splitHostPort(addr);
  } catch (e) {
    throw new TunnelError(`${addr}: ${errorText(e)}`);
  }
  const hostname = listenHost(hp.host);
  const ready = Promise.withResolvers<number>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port: hp.port,
      onListen: (a) => ready.resolve(a.port),
      onError: (e) => {
        log.error(errorText(e));
        return new Response("internal error", { status: 500 });
      },
    }, (req, info) => handler(req, { remote: info.remoteAddr.hostname }));
  } catch (e) {
    const what = e instanceof Deno.errors.AddrInUse ? "address already in use" : errorText(e);
    throw new TunnelError(`cannot listen on ${addr}: ${what}`, { cause: e });
  }
  const port = await ready.promise;
  log.info(`listening on ${hostname}:${port}`);
  return {
    port,
    loopback: hostname === "localhost" || hostname.startsWith("127.") || hostname === "::1",
    // Graceful: a request being answered (the API's own reload) gets its answer first.
    close: () => server.shutdown(),
  };
}
