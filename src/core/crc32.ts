/**
 * CRC-32/IEEE (zlib's crc32): kcp-go's packet checksum and GOST's `hash` node selector.
 * @module
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `b[from..]`. */
export function crc32(b: Uint8Array, from = 0): number {
  let c = 0xffffffff;
  for (let i = from; i < b.length; i++) c = TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
