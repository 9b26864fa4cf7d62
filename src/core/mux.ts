/**
 * The shape every stream multiplexer has, whatever runs it (smux today; QUIC's native streams or
 * another engine later): sessions over one carrier conn that open and accept streams, each a
 * {@link Conn}. Transports build their listeners and dialers from a {@link MuxFactory}, never
 * from an engine directly.
 * @module
 */
import type { Conn } from "./conn.ts";

/** One multiplexed session over one carrier conn. */
export interface MuxSession {
  /** Opens a stream to the peer. */
  openStream(): Promise<Conn>;
  /** The next stream the peer opened; `null` once the session is closed. */
  acceptStream(): Promise<Conn | null>;
  /** Closes the session, its streams and its carrier. */
  close(): void;
  /** Ends every stream cleanly (the peer reads EOF), then closes; bounded by `ms`. */
  shutdown(ms?: number): Promise<void>;
  /** Resolves once the session is closed and its loops have ended. */
  readonly closed: Promise<void>;
  /** True once the session is closed. */
  readonly isClosed: boolean;
  /** Streams open now (for least-loaded picking). */
  readonly streamCount: number;
  /**
   * Streams a session takes at once (`mux.maxStreams`), when the multiplexer has such a limit:
   * a peer configured alike refuses more, so a dialer opens another session past it.
   */
  readonly maxStreams?: number;
}

/** Which end of the carrier a session runs on. */
export type MuxRole = "client" | "server";

/** Starts a session on a carrier conn: one factory per transport serves both directions. */
export type MuxFactory = (carrier: Conn, role: MuxRole) => MuxSession;

/**
 * Every multiplexed session alive in this process and its role, for the metrics endpoint
 * (`burrow_mux_sessions`, `burrow_mux_streams`). Sessions leave it when they close.
 */
export const liveMuxSessions: Map<MuxSession, MuxRole> = new Map();

/** Records `s` in {@link liveMuxSessions} until it closes; returns it. */
export function trackMux<S extends MuxSession>(s: S, role: MuxRole): S {
  liveMuxSessions.set(s, role);
  s.closed.finally(() => liveMuxSessions.delete(s));
  return s;
}
