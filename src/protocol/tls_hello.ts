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

/** A parsed ClientHello record: the bytes before the extensions, and the extensions in order. */
interface HelloParts {
  /** Record header's version bytes (2). */
  recordVersion: Uint8Array;
  /** Handshake body up to the extensions length (version, random, session id, suites, compression). */
  prefix: Uint8Array;
  extensions: { type: number; data: Uint8Array }[];
}

/** Splits one whole ClientHello record; null when it is not one or its lengths disagree. */
function splitHello(record: Uint8Array): HelloParts | null {
  const len = tlsRecordLength(record);
  if (len === null || len !== record.length || record[5] !== 0x01) return null;
  const hsLen = (record[6]! << 16) | (record[7]! << 8) | record[8]!;
  if (9 + hsLen !== record.length) return null; // one handshake message filling the record
  let p = 9 + 2 + 32;
  const need = (n: number) => p + n <= record.length;
  if (!need(1)) return null;
  p += 1 + record[p]!;
  if (!need(2)) return null;
  p += 2 + ((record[p]! << 8) | record[p + 1]!);
  if (!need(1)) return null;
  p += 1 + record[p]!;
  if (!need(2)) return null;
  const prefix = record.subarray(9, p);
  const extEnd = p + 2 + ((record[p]! << 8) | record[p + 1]!);
  if (extEnd !== record.length) return null;
  p += 2;
  const extensions: { type: number; data: Uint8Array }[] = [];
  while (p < extEnd) {
    if (p + 4 > extEnd) return null;
    const type = (record[p]! << 8) | record[p + 1]!;
    const l = (record[p + 2]! << 8) | record[p + 3]!;
    p += 4;
    if (p + l > extEnd) return null;
    extensions.push({ type, data: record.subarray(p, p + l) });
    p += l;
  }
  return { recordVersion: record.subarray(1, 3), prefix, extensions };
}

function joinHello(h: HelloParts): Uint8Array {
  const extLen = h.extensions.reduce((n, e) => n + 4 + e.data.length, 0);
  const body = h.prefix.length + 2 + extLen;
  const out = new Uint8Array(9 + body);
  out[0] = 0x16;
  out.set(h.recordVersion, 1);
  out[3] = (4 + body) >> 8;
  out[4] = (4 + body) & 0xff;
  out[5] = 0x01;
  out[6] = body >> 16;
  out[7] = (body >> 8) & 0xff;
  out[8] = body & 0xff;
  out.set(h.prefix, 9);
  let p = 9 + h.prefix.length;
  out[p++] = extLen >> 8;
  out[p++] = extLen & 0xff;
  for (const e of h.extensions) {
    out[p++] = e.type >> 8;
    out[p++] = e.type & 0xff;
    out[p++] = e.data.length >> 8;
    out[p++] = e.data.length & 0xff;
    out.set(e.data, p);
    p += e.data.length;
  }
  return out;
}

function sniData(name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  const d = new Uint8Array(5 + n.length);
  d[0] = (n.length + 3) >> 8;
  d[1] = (n.length + 3) & 0xff;
  d[2] = 0; // host_name
  d[3] = n.length >> 8;
  d[4] = n.length & 0xff;
  d.set(n, 5);
  return d;
}

/**
 * The ClientHello record with its SNI replaced by `front` and the original name appended as
 * extension `hiddenType` holding `hidden` (GOST's `sni` connector); null when the record is not a
 * whole ClientHello with an SNI.
 */
export function rewriteServerName(
  record: Uint8Array,
  front: string,
  hiddenType: number,
  hidden: (realName: string) => string,
): Uint8Array | null {
  const h = splitHello(record);
  if (!h) return null;
  const i = h.extensions.findIndex((e) => e.type === 0);
  if (i < 0) return null;
  const real = clientHelloServerName(record);
  if (real === null) return null;
  h.extensions[i] = { type: 0, data: sniData(front) };
  h.extensions.push({ type: hiddenType, data: new TextEncoder().encode(hidden(real)) });
  return joinHello(h);
}

/**
 * Undoes {@link rewriteServerName}: when the last extension is `hiddenType` and `decode` accepts
 * it, the ClientHello as the client's TLS stack wrote it (its handshake transcript needs those
 * exact bytes) and the real name; otherwise null.
 */
export function restoreServerName(
  record: Uint8Array,
  hiddenType: number,
  decode: (s: string) => string | null,
): { record: Uint8Array; name: string } | null {
  const h = splitHello(record);
  if (!h) return null;
  const last = h.extensions.at(-1);
  if (!last || last.type !== hiddenType) return null;
  const name = decode(new TextDecoder().decode(last.data));
  if (name === null) return null;
  const i = h.extensions.findIndex((e) => e.type === 0);
  if (i < 0) return null;
  h.extensions.pop();
  h.extensions[i] = { type: 0, data: sniData(name) };
  return { record: joinHello(h), name };
}
