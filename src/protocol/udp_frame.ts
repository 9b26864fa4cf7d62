/**
 * The UDP-over-TCP frame GOST uses for SOCKS5 command 0xF3, relay UDP and HTTP UDP tunnels:
 * `RSV=len u16 BE | FRAG (0xff, ignored) | SOCKS address | data` (docs/gost-proxies.md).
 * @module
 */
import type { BufReader } from "../core/bufio.ts";
import { ProtocolError } from "../core/errors.ts";
import { encodeSocksAddrString, readSocksAddr } from "./socks_addr.ts";

/** Encodes a UDP-over-TCP frame: `RSV=len(2) FRAG=0xff ATYP ADDR PORT DATA`. */
export function encodeUdpFrame(addr: string, data: Uint8Array): Uint8Array {
  if (data.length > 0xffff) throw new ProtocolError("datagram larger than 65535 bytes");
  const a = encodeSocksAddrString(addr);
  const out = new Uint8Array(3 + a.length + data.length);
  out[0] = data.length >> 8;
  out[1] = data.length & 0xff;
  out[2] = 0xff;
  out.set(a, 3);
  out.set(data, 3 + a.length);
  return out;
}

/** Reads one UDP-over-TCP frame; `null` at a clean end of stream. */
export async function readUdpFrame(
  br: BufReader,
): Promise<{ addr: string; data: Uint8Array } | null> {
  if (br.buffered === 0) {
    try {
      await br.peek(1);
    } catch {
      return null;
    }
  }
  const len = await br.readU16();
  await br.readByte(); // FRAG: ignored
  const addr = await readSocksAddr(br);
  // RSV 0 would mean "rest of the read is data" (plain SOCKS5); on a stream there is no such
  // boundary, so only length-prefixed frames are accepted.
  if (len === 0) return { addr, data: new Uint8Array(0) };
  return { addr, data: await br.readN(len) };
}
