// Host side of the CONTROL frame format (board/map/link.ts, docs/wire-format.md): builds
// and reads the frames the firmware's link protocol exchanges, for tests, traces and tools.
// The firmware has its own implementation (assembly/link/frames.ts); tests hold the two
// to the same bytes.

import { ControlHeader, ControlType, CONTROL_MULTICAST_HIGH, CONTROL_MULTICAST_LOW } from "./map/link.ts";
import { ETHERTYPE_IOV, ETHERTYPE_VLAN, FCS_SIZE, writeFcs } from "./ethernet/frame.ts";
import { FrameKind, TUNNEL_HEADER, TUNNEL_VERSION } from "./tunnel/wire.ts";

export const CONTROL_MULTICAST = Uint8Array.of(
  CONTROL_MULTICAST_HIGH >> 8, CONTROL_MULTICAST_HIGH & 0xff,
  CONTROL_MULTICAST_LOW >>> 24, (CONTROL_MULTICAST_LOW >> 16) & 0xff, (CONTROL_MULTICAST_LOW >> 8) & 0xff, CONTROL_MULTICAST_LOW & 0xff,
);

export interface ControlMessage {
  destination: Uint8Array;
  source: Uint8Array;
  /** VLAN ID of the 802.1Q tag (the sender's group), or null for an untagged frame. */
  vlan: number | null;
  session: number;
  type: ControlType;
  version: number;
  role: number;
  group: number;
  serial: number;
  bootId: number;
  body: Uint8Array;
}

/** The Ethernet frame of a CONTROL message, without FCS (as FRAME_TX and FRAME_RX carry it). */
export function encodeControl(m: ControlMessage): Uint8Array {
  const ethernet = m.vlan === null ? 14 : 18;
  const frame = new Uint8Array(ethernet + TUNNEL_HEADER + ControlHeader.Size + m.body.length);
  const view = new DataView(frame.buffer);
  frame.set(m.destination.subarray(0, 6), 0);
  frame.set(m.source.subarray(0, 6), 6);
  if (m.vlan !== null) {
    view.setUint16(12, ETHERTYPE_VLAN);
    view.setUint16(14, m.vlan & 0xfff);
  }
  view.setUint16(ethernet - 2, ETHERTYPE_IOV);
  view.setUint8(ethernet, TUNNEL_VERSION);
  view.setUint8(ethernet + 1, FrameKind.Control);
  view.setUint16(ethernet + 2, ControlHeader.Size + m.body.length);
  view.setUint32(ethernet + 4, m.session >>> 0);
  const control = ethernet + TUNNEL_HEADER;
  view.setUint8(control + ControlHeader.Type, m.type);
  view.setUint8(control + ControlHeader.Version, m.version);
  view.setUint8(control + ControlHeader.Role, m.role);
  view.setUint16(control + ControlHeader.Group, m.group);
  view.setUint32(control + ControlHeader.Serial, m.serial >>> 0);
  view.setUint32(control + ControlHeader.BootId, m.bootId >>> 0);
  frame.set(m.body, control + ControlHeader.Size);
  return frame;
}

/** The same frame as it goes on the wire: padded to 60 bytes, with its FCS. */
export function wireFrame(frame: Uint8Array): Uint8Array {
  const wire = new Uint8Array(Math.max(frame.length, 60) + FCS_SIZE);
  wire.set(frame);
  writeFcs(wire);
  return wire;
}

/** Reads a CONTROL frame (FCS off or on: the tunnel header's length bounds the body), or null if it is not one. */
export function decodeControl(frame: Uint8Array): ControlMessage | null {
  if (frame.length < 14) return null;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const tagged = view.getUint16(12) === ETHERTYPE_VLAN;
  const ethernet = tagged ? 18 : 14;
  if (frame.length < ethernet + TUNNEL_HEADER + ControlHeader.Size || view.getUint16(ethernet - 2) !== ETHERTYPE_IOV) return null;
  if (view.getUint8(ethernet + 1) !== FrameKind.Control) return null;
  const length = view.getUint16(ethernet + 2);
  const control = ethernet + TUNNEL_HEADER;
  if (length < ControlHeader.Size || control + length > frame.length) return null;
  return {
    destination: frame.slice(0, 6),
    source: frame.slice(6, 12),
    vlan: tagged ? view.getUint16(14) & 0xfff : null,
    session: view.getUint32(ethernet + 4),
    type: view.getUint8(control + ControlHeader.Type),
    version: view.getUint8(control + ControlHeader.Version),
    role: view.getUint8(control + ControlHeader.Role),
    group: view.getUint16(control + ControlHeader.Group),
    serial: view.getUint32(control + ControlHeader.Serial),
    bootId: view.getUint32(control + ControlHeader.BootId),
    body: frame.slice(control + ControlHeader.Size, control + length),
  };
}
