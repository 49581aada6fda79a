// Ethernet II frames as bytes on the wire (IEEE 802.3 clause 3): destination, source,
// optional 802.1Q tag, EtherType, payload padded to the 46-byte minimum, FCS.
// The FCS is the CRC-32 of 802.3 clause 3.2.9 (the same CRC as zlib's), sent least
// significant byte first. Preamble, start delimiter and inter-frame gap are not stored
// but are counted in the time a frame occupies the wire (WIRE_OVERHEAD).

import { crc32 } from "node:zlib";

export const ETHERTYPE_IOV = 0x88b5; //  IEEE 802 local experimental EtherType 1
export const ETHERTYPE_VLAN = 0x8100; // 802.1Q customer VLAN tag
export const MAC_SIZE = 6;
export const HEADER_SIZE = 14;
export const VLAN_TAG_SIZE = 4;
export const FCS_SIZE = 4;
export const MIN_PAYLOAD = 46;
/** Smallest frame on the wire, FCS included. */
export const MIN_FRAME = 64;
/** Preamble (7), start frame delimiter (1) and the minimum inter-frame gap (12). */
export const WIRE_OVERHEAD = 20;
export const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export interface VlanTag {
  /** Priority code point, 0..7. */
  pcp: number;
  /** Drop eligible indicator, 0 or 1. */
  dei: number;
  /** VLAN identifier, 1..4094. */
  vid: number;
}

export interface EthernetFrame {
  dst: Uint8Array;
  src: Uint8Array;
  vlan: VlanTag | null;
  etherType: number;
  payload: Uint8Array;
}

export enum FrameError {
  Runt = "runt", //               shorter than 64 bytes
  Oversize = "oversize", //       payload above the port's MTU
  BadFcs = "bad-fcs", //          FCS does not match
  BadVlan = "bad-vlan", //        802.1Q tag with VID 0xfff
}

/** Largest frame for a payload MTU, FCS included. */
export function maxFrameSize(mtu: number, tagged: boolean): number {
  return HEADER_SIZE + (tagged ? VLAN_TAG_SIZE : 0) + mtu + FCS_SIZE;
}

/** Encodes a frame with padding and FCS. */
export function encodeFrame(frame: EthernetFrame): Uint8Array {
  const tag = frame.vlan ? VLAN_TAG_SIZE : 0;
  const head = HEADER_SIZE + tag;
  const body = Math.max(frame.payload.length, MIN_PAYLOAD);
  const out = new Uint8Array(head + body + FCS_SIZE);
  out.set(frame.dst, 0);
  out.set(frame.src, MAC_SIZE);
  if (frame.vlan) {
    const { pcp, dei, vid } = frame.vlan;
    out[12] = ETHERTYPE_VLAN >> 8;
    out[13] = ETHERTYPE_VLAN & 0xff;
    out[14] = (pcp << 5) | (dei << 4) | (vid >> 8);
    out[15] = vid & 0xff;
  }
  out[head - 2] = frame.etherType >> 8;
  out[head - 1] = frame.etherType & 0xff;
  out.set(frame.payload, head);
  writeFcs(out);
  return out;
}

/** Computes the FCS over all but the last four bytes and stores it there. */
export function writeFcs(frame: Uint8Array): void {
  const end = frame.length - FCS_SIZE;
  const fcs = crc32(frame.subarray(0, end));
  frame[end] = fcs & 0xff;
  frame[end + 1] = (fcs >>> 8) & 0xff;
  frame[end + 2] = (fcs >>> 16) & 0xff;
  frame[end + 3] = fcs >>> 24;
}

export function fcsValid(frame: Uint8Array): boolean {
  if (frame.length < FCS_SIZE) return false;
  const end = frame.length - FCS_SIZE;
  const fcs = crc32(frame.subarray(0, end));
  return frame[end] === (fcs & 0xff) && frame[end + 1] === ((fcs >>> 8) & 0xff) &&
    frame[end + 2] === ((fcs >>> 16) & 0xff) && frame[end + 3] === fcs >>> 24;
}

/** VLAN ID of a tagged frame, or 0 for an untagged one. */
export function vlanOf(frame: Uint8Array): number {
  return isTagged(frame) ? ((frame[14] & 0x0f) << 8) | frame[15] : 0;
}

export function isTagged(frame: Uint8Array): boolean {
  return frame[12] === ETHERTYPE_VLAN >> 8 && frame[13] === (ETHERTYPE_VLAN & 0xff);
}

/** The 802.1Q tag's DEI bit in frame byte 14 (the TCI's first byte): set by a switch that marks the frame congestion experienced (docs/network.md#congestion). */
export const DEI_BIT = 0x10;

/** A tagged frame whose DEI bit is set: marked congestion experienced. */
export function congestionMarked(frame: Uint8Array): boolean {
  return isTagged(frame) && (frame[14] & DEI_BIT) !== 0;
}

/** EtherType after the optional tag. */
export function etherTypeOf(frame: Uint8Array): number {
  const at = payloadOffset(frame) - 2;
  return (frame[at] << 8) | frame[at + 1];
}

/** Offset of the payload (after the optional tag). */
export function payloadOffset(frame: Uint8Array): number {
  return isTagged(frame) ? HEADER_SIZE + VLAN_TAG_SIZE : HEADER_SIZE;
}

export function isMulticast(mac: Uint8Array, offset = 0): boolean {
  return (mac[offset] & 1) === 1;
}

/** A MAC address as a number (48 bits fit a double exactly), for maps. */
export function macKey(bytes: Uint8Array, offset = 0): number {
  return bytes[offset] * 2 ** 40 + bytes[offset + 1] * 2 ** 32 + bytes[offset + 2] * 2 ** 24 +
    ((bytes[offset + 3] << 16) | (bytes[offset + 4] << 8) | bytes[offset + 5]);
}

export function formatMac(bytes: Uint8Array, offset = 0): string {
  return Array.from(bytes.subarray(offset, offset + MAC_SIZE), (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Checks a received frame as a MAC does (size, FCS, tag) and decodes it. `mtu` is the
 * largest payload the port accepts (1500 standard, up to 9216 for jumbo frames).
 * The payload keeps any padding: upper layers carry their own lengths.
 */
export function decodeFrame(bytes: Uint8Array, mtu: number): EthernetFrame | FrameError {
  if (bytes.length < MIN_FRAME) return FrameError.Runt;
  const tagged = isTagged(bytes);
  if (bytes.length > maxFrameSize(mtu, tagged)) return FrameError.Oversize;
  if (!fcsValid(bytes)) return FrameError.BadFcs;
  const head = tagged ? HEADER_SIZE + VLAN_TAG_SIZE : HEADER_SIZE;
  const vlan = tagged ? { pcp: bytes[14] >> 5, dei: (bytes[14] >> 4) & 1, vid: ((bytes[14] & 0x0f) << 8) | bytes[15] } : null;
  if (vlan && vlan.vid === 0xfff) return FrameError.BadVlan;
  return {
    dst: bytes.slice(0, MAC_SIZE),
    src: bytes.slice(MAC_SIZE, 2 * MAC_SIZE),
    vlan,
    etherType: (bytes[head - 2] << 8) | bytes[head - 1],
    payload: bytes.subarray(head, bytes.length - FCS_SIZE),
  };
}
