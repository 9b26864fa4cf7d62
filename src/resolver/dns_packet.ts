/**
 * The `dns-packet` npm package (DNS message encoding), imported when a resolver or a DNS handler
 * is first built: ~7 MiB of RSS that a process without either does not pay (core/lazy.ts).
 * @module
 */
// @ts-types="@types/dns-packet"
import type * as DnsPacket from "dns-packet";
import { LazyModule } from "../core/lazy.ts";

export const DNS_PACKET: LazyModule<typeof DnsPacket> = new LazyModule(
  "dns-packet",
  () => import("dns-packet"),
);

/** The loaded package (after `await DNS_PACKET.load()`). */
export const packets = (): typeof DnsPacket => DNS_PACKET.get();
