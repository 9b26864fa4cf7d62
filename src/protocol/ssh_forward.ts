/**
 * What the `sshd` listener hands the `sshd` handler: each accepted SSH channel or request arrives
 * as a Conn carrying one of these (found through wrapping conns with {@link sshForwardOf}). The
 * listener speaks SSH; the handler decides where things go (through its chain) — the two meet
 * here, below both.
 * @module
 */
import { attachedTo, type Conn } from "../core/conn.ts";

/** `direct-tcpip` (ssh -L, -D): a channel to relay to `target`. */
export interface SshDirect {
  kind: "direct";
  /** `host:port` the client asked for. */
  target: string;
}

/** `tcpip-forward` (ssh -R): listen on `bindAddr:bindPort`, send each peer back over SSH. */
export interface SshRemoteForward {
  kind: "remote";
  bindAddr: string;
  bindPort: number;
  /** Grants the request; `port` is the one bound (when 0 was asked). */
  accept(port: number): void;
  /** Refuses the request. */
  reject(): void;
  /** A `forwarded-tcpip` channel to the client for one peer. */
  open(peerAddr: string, peerPort: number, boundPort: number): Promise<Conn>;
  /** Resolves when the SSH connection ends or the client cancels this forwarding. */
  ended: Promise<void>;
}

/** One of the above. */
export type SshForward = SshDirect | SshRemoteForward;

/** The request a conn (or a conn it wraps) carries, if any. */
export function sshForwardOf(conn: Conn): SshForward | undefined {
  return attachedTo<SshForward>(conn, "sshForward");
}
