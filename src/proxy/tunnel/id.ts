/**
 * GOST tunnel ids (docs/reverse.md §tunnel): 20 bytes, `UUID(16) | FLAG(1) | RSV(2) | WEIGHT(1)`,
 * carried in the relay protocol's Tunnel feature (type 0x03). Two ids are the same tunnel when
 * their UUIDs match; the flag marks a private tunnel (0x80) or a UDP connector (0x01).
 * @module
 */
import { ProtocolError } from "../../core/errors.ts";

export const FLAG_PRIVATE = 0x80;
export const FLAG_UDP = 0x01;

/** A 20-byte tunnel or connector id. */
export class TunnelId {
  constructor(readonly bytes: Uint8Array) {
    if (bytes.length !== 20) throw new ProtocolError("tunnel id: expected 20 bytes");
  }

  /** From a UUID text (`8-4-4-4-12` hex), with flags and weight. */
  static parse(uuid: string, weight = 0, flags = 0): TunnelId {
    const hex = uuid.trim().toLowerCase().replace(/-/g, "");
    if (!/^[0-9a-f]{32}$/.test(hex)) throw new ProtocolError(`not a UUID: ${JSON.stringify(uuid)}`);
    const b = new Uint8Array(20);
    for (let i = 0; i < 16; i++) b[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    b[16] = flags;
    b[19] = weight;
    return new TunnelId(b);
  }

  /** A random (v4) id. */
  static random(flags = 0): TunnelId {
    return TunnelId.parse(crypto.randomUUID(), 0, flags);
  }

  /** The UUID text (the tunnel's name: flags and weight are not part of it). */
  get uuid(): string {
    const h = Array.from(this.bytes.subarray(0, 16), (x) => x.toString(16).padStart(2, "0"))
      .join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${
      h.slice(20)
    }`;
  }

  get isZero(): boolean {
    return this.bytes.subarray(0, 16).every((x) => x === 0);
  }

  get weight(): number {
    return this.bytes[19]!;
  }

  get flags(): number {
    return this.bytes[16]!;
  }
}
