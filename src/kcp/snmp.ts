/**
 * Process-wide KCP counters, as kcp-go keeps its `DefaultSnmp`: every session adds to them, the
 * metrics endpoint reads them (`burrow_kcp_*`).
 * @module
 */

/** Counters since the process started. */
export const kcpSnmp = {
  /** Segments sent again, for any reason. */
  retransSegs: 0,
  /** Of those, resent after duplicate ACKs (fast retransmit). */
  fastRetransSegs: 0,
  /** Of those, resent after their retransmission timeout (a loss). */
  lostSegs: 0,
  /** KCP packets rebuilt from FEC parity. */
  fecRecovered: 0,
  /** FEC groups whose parity could not rebuild a packet. */
  fecErrors: 0,
};
