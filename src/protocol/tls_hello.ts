/**
 * The server name (SNI) of a TLS ClientHello, read from the first record without consuming it:
 * enough to route a TLS connection by host name (RFC 8446 §4.1.2, RFC 6066 §3).
 * @module
 */

/** Bytes of the first TLS record needed to parse a ClientHello: its 5-byte header plus length. */
export function tlsRecordLength(head: Uint8Array): number | null {
  if (head.length < 5 || head[0] !== 0x16) return null;
  return 5 + ((head[3]! << 8) | head[4]!);
}

/**
 * The SNI host name in a ClientHello record (`record` = the whole first record), or null when
 * there is none or the record is not a ClientHello.
 */
export function clientHelloServerName(record: Uint8Array): string | null {
  let p = 5;
  const need = (n: number) => p + n <= record.length;
  if (!need(4) || record[p] !== 0x01) return null; // handshake type client_hello
  p += 4; // type + 3-byte length
  if (!need(2 + 32)) return null;
  p += 2 + 32; // version + random
  if (!need(1)) return null;
  p += 1 + record[p]!; // session id
  if (!need(2)) return null;
  p += 2 + ((record[p]! << 8) | record[p + 1]!); // cipher suites
  if (!need(1)) return null;
  p += 1 + record[p]!; // compression methods
  if (!need(2)) return null;
  const extEnd = p + 2 + ((record[p]! << 8) | record[p + 1]!);
  p += 2;
  while (p + 4 <= Math.min(extEnd, record.length)) {
    const type = (record[p]! << 8) | record[p + 1]!;
    const len = (record[p + 2]! << 8) | record[p + 3]!;
    p += 4;
    if (type === 0 && need(len)) {
      // server_name_list: u16 length, then entries of type(1) len(2) name
      let q = p + 2;
      const end = p + len;
      while (q + 3 <= end) {
        const nameType = record[q]!;
        const nl = (record[q + 1]! << 8) | record[q + 2]!;
        q += 3;
        if (q + nl > end) return null;
        if (nameType === 0) return new TextDecoder().decode(record.subarray(q, q + nl));
        q += nl;
      }
      return null;
    }
    p += len;
  }
  return null;
}
