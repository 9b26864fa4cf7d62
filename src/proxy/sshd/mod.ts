/**
 * The `sshd` handler: serves what the `sshd` listener accepted from standard SSH clients.
 * `direct-tcpip` channels (`ssh -L`, `ssh -D`) are relayed to their target through the chain;
 * `tcpip-forward` requests (`ssh -R`) listen on the asked address and send each peer back over
 * SSH as a `forwarded-tcpip` channel. Unlike GOST, remote forwarding needs `bind=true` (and
 * `bind.ports` limits the ports), as for the other binding handlers: a login alone does not
 * open ports on the server. Wildcard addresses bind loopback (OpenSSH without GatewayPorts), and
 * at most 64 forwardings are open per service.
 * @module
 */
import type { Conn } from "../../core/conn.ts";
import { SocketConn } from "../../core/socket.ts";
import { errorText } from "../../core/errors.ts";
import { relay } from "../../core/relay.ts";
import type { Registries } from "../../core/registry.ts";
import type { HandleContext, Handler, HandlerOptions } from "../../core/types.ts";
import { sshForwardOf, type SshRemoteForward } from "../../protocol/ssh_forward.ts";
import { BindPolicy } from "../bind.ts";

export class SshdHandler implements Handler {
  readonly #o: HandlerOptions;
  readonly #bind: BindPolicy;
  #forwards = 0;

  constructor(o: HandlerOptions) {
    this.#o = o;
    this.#bind = BindPolicy.from(o.metadata);
  }

  async handle(conn: Conn, ctx: HandleContext): Promise<void> {
    const f = sshForwardOf(conn);
    if (!f) {
      ctx.log.warn("sshd handler: not an SSH request (the sshd handler needs the sshd listener)");
      return;
    }
    if (f.kind === "remote") return await this.#remote(f, ctx);
    let up: Conn;
    try {
      up = await this.#o.router.dial("tcp", f.target, {
        signal: ctx.signal,
        client: conn.remoteAddr.hostname,
        log: ctx.log,
      });
    } catch (e) {
      ctx.log.error(`sshd: ${f.target}: ${errorText(e)}`, { dst: f.target });
      return;
    }
    await relay(conn, up, { signal: ctx.signal });
  }

  async #remote(f: SshRemoteForward, ctx: HandleContext): Promise<void> {
    const why = this.#bind.refusal(f.bindPort);
    if (why) {
      ctx.log.warn(`sshd: remote forwarding of port ${f.bindPort} refused: ${why}`);
      return f.reject();
    }
    if (this.#forwards >= MAX_FORWARDS) {
      ctx.log.warn(`sshd: remote forwarding refused: ${MAX_FORWARDS} already open`);
      return f.reject();
    }
    // As OpenSSH without GatewayPorts: a wildcard or empty address binds loopback only.
    const host = ["", "*", "0.0.0.0", "::", "localhost"].includes(f.bindAddr)
      ? "127.0.0.1"
      : f.bindAddr;
    let l: Deno.Listener;
    try {
      l = Deno.listen({ hostname: host, port: f.bindPort });
    } catch (e) {
      ctx.log.warn(`sshd: cannot listen on ${host}:${f.bindPort}: ${errorText(e)}`);
      return f.reject();
    }
    const port = (l.addr as Deno.NetAddr).port;
    this.#forwards++;
    f.accept(port);
    ctx.log.info(`sshd: remote forwarding: listening on ${host}:${port}`);
    const stop = () => {
      try {
        l.close();
      } catch { /* closed */ }
    };
    f.ended.then(stop);
    ctx.signal.addEventListener("abort", stop, { once: true });
    const tasks = new Set<Promise<void>>();
    try {
      for await (const c of l) {
        const peer = c.remoteAddr as Deno.NetAddr;
        const t = (async () => {
          const local = new SocketConn(c);
          try {
            const up = await f.open(peer.hostname, peer.port, port);
            await relay(local, up, { signal: ctx.signal });
          } catch (e) {
            local.close();
            ctx.log.debug(`sshd: forwarded-tcpip: ${errorText(e)}`);
          }
        })();
        tasks.add(t);
        t.finally(() => tasks.delete(t));
      }
    } catch { /* closed */ }
    await Promise.all(tasks);
    this.#forwards--;
  }
}

/** Remote forwardings one sshd service keeps open at once. */
const MAX_FORWARDS = 64;

export function register(reg: Registries): void {
  reg.handlers.register("sshd", (o) => new SshdHandler(o));
}
