// CONTROL frames: the only code that lays out or parses their bytes (docs/wire-format.md,
// "CONTROL body"). Frames are built in one static buffer and handed to the MAC with
// FRAME_TX; received ones are checked field by field before the state machine sees them.

import {
  ControlHeader, ControlType, CONTROL_TYPE_LAST, CONTROL_MULTICAST_HIGH, CONTROL_MULTICAST_LOW,
  LINK_PROTOCOL_MIN, LINK_PROTOCOL_MAX, MANAGEMENT_ROLE,
} from "../../board/map/link";
import { CardRole, Counter } from "../../board/map/mailbox";
import { PORTS } from "../../board/map/registers";
import * as tx from "../abi/tx";
import { count } from "../counters";
import * as config from "./config";
import { load16be, load32be, store16be, store32be, sameMac } from "./be";

const ETHERTYPE_VLAN: u32 = 0x8100;
const ETHERTYPE_IOV: u32 = 0x88b5;
const TUNNEL_VERSION: u8 = 1;
const KIND_CONTROL: u8 = 0x10;
/** Ethernet header with the 802.1Q tag, as every frame this card sends has. */
const ETHERNET: i32 = 18;
const TUNNEL_HEADER: i32 = 16;
/** Offset of the ControlHeader in a frame this card builds. */
const CONTROL: i32 = ETHERNET + TUNNEL_HEADER;
export const BODY: i32 = CONTROL + ControlHeader.Size;

const FRAME_SIZE: i32 = 1536;
const frame = memory.data(FRAME_SIZE);
export const multicast = memory.data<u8>([0x03, 0x49, 0x4f, 0x56, 0x00, 0x01, 0, 0]);

/** Starts a CONTROL message of `type` to `destination` from Ethernet port `from`; returns where its body goes, zeroed. */
export function begin(from: i32, destination: usize, type: i32, version: i32, session: u32): usize {
  return beginOn(config.group, from, destination, type, version, session);
}

/** begin() on VLAN `vlan`: the group's, or the management VLAN for a MANAGE_REPLY. The source address chooses the port (the fabric's FRAME_TX). */
export function beginOn(vlan: u32, from: i32, destination: usize, type: i32, version: i32, session: u32): usize {
  memory.fill(frame, 0, FRAME_SIZE); // the body's reserved bytes too, not the last message's
  memory.copy(frame, destination, 6);
  memory.copy(frame + 6, config.address(from), 6);
  store16be(frame + 12, ETHERTYPE_VLAN);
  store16be(frame + 14, vlan);
  store16be(frame + 16, ETHERTYPE_IOV);
  const tunnel = frame + ETHERNET;
  store<u8>(tunnel, TUNNEL_VERSION);
  store<u8>(tunnel + 1, KIND_CONTROL);
  store32be(tunnel + 4, session);
  const control = frame + CONTROL;
  store<u8>(control + ControlHeader.Type, type as u8);
  store<u8>(control + ControlHeader.Version, version as u8);
  store<u8>(control + ControlHeader.Role, config.role as u8);
  store16be(control + ControlHeader.Group, config.group);
  store32be(control + ControlHeader.Serial, config.serial);
  store32be(control + ControlHeader.BootId, bootId);
  return frame + BODY;
}

/** Sends the message begun with begin(), whose body is `length` bytes. */
export function send(length: i32): void {
  store16be(frame + ETHERNET + 2, (ControlHeader.Size + length) as u32);
  tx.frameTx(frame, BODY + length);
  count(Counter.ControlTx);
}

export let bootId: u32 = 0;

export function setBootId(id: u32): void {
  bootId = id;
}

// ---- Receive -----------------------------------------------------------------------

export enum Parsed {
  Ok = 0,
  Malformed = 1, //    counted in ControlMalformed
  ForeignGroup = 2, // counted in ForeignGroup
  Ignored = 3, //      not for this card (another multicast group, another address), counted in ControlIgnored
  Own = 4, //          from one of this card's own addresses: it came back (a loop), counted in OwnFrames
}

// The message parse() accepted.
export let source: usize = 0; //  the sender's MAC (6 bytes in the received frame)
/** The Ethernet port the frame came in on (FRAME_RX). */
export let port: i32 = 0;
export let type: i32 = 0;
export let version: i32 = 0;
export let senderRole: i32 = 0;
export let senderSerial: u32 = 0;
export let senderBootId: u32 = 0;
export let session: u32 = 0;
export let body: usize = 0;
export let bodyLength: i32 = 0;
export let toMulticast = false;
/** The frame came on the management VLAN (a MANAGE_REQUEST; nothing else is accepted there). */
export let management = false;

function isOurMulticast(at: usize): bool {
  return load16be(at) == CONTROL_MULTICAST_HIGH && load32be(at + 2) == CONTROL_MULTICAST_LOW;
}

/**
 * Checks a received CONTROL frame (Ethernet header on, FCS off) and, if it is for this
 * card's group, exposes its fields. Counts what it refuses.
 */
export function parse(at: usize, length: i32, rxPort: i32): i32 {
  port = rxPort;
  const result = check(at, length);
  if (result == Parsed.Malformed) count(Counter.ControlMalformed);
  else if (result == Parsed.ForeignGroup) count(Counter.ForeignGroup);
  else if (result == Parsed.Ignored) count(Counter.ControlIgnored);
  else if (result == Parsed.Own) count(Counter.OwnFrames);
  return result;
}

/** Whether `at` is the address of one of this card's Ethernet ports. */
function own(at: usize): bool {
  for (let p = 0; p < PORTS; p++) if (sameMac(at, config.address(p))) return true;
  return false;
}

function check(at: usize, length: i32): i32 {
  if (length < 14 + TUNNEL_HEADER + ControlHeader.Size) return Parsed.Malformed;
  source = at + 6;
  toMulticast = (load<u8>(at) & 1) != 0;
  if (own(source)) return Parsed.Own;
  if (toMulticast ? !isOurMulticast(at) : !sameMac(at, config.address(port))) return Parsed.Ignored;
  let tunnel = 14;
  if (load16be(at + 12) == ETHERTYPE_VLAN) {
    const vlan = load16be(at + 14) & 0xfff;
    management = vlan == config.managementVlan;
    if (!management && vlan != config.group) return Parsed.ForeignGroup;
    tunnel = 18;
  } else return Parsed.ForeignGroup; // every card tags its frames with its group, a station with the management VLAN
  if (load16be(at + tunnel - 2) != ETHERTYPE_IOV) return Parsed.Malformed;
  const head = at + tunnel;
  const declared = load16be(head + 2) as i32;
  if (length < tunnel + TUNNEL_HEADER + ControlHeader.Size) return Parsed.Malformed;
  if (load<u8>(head) != TUNNEL_VERSION || load<u8>(head + 1) != KIND_CONTROL) return Parsed.Malformed;
  if (declared < ControlHeader.Size || tunnel + TUNNEL_HEADER + declared > length) return Parsed.Malformed;
  if (load32be(head + 8) != 0 || load32be(head + 12) != 0) return Parsed.Malformed;
  const control = head + TUNNEL_HEADER;
  type = load<u8>(control + ControlHeader.Type) as i32;
  version = load<u8>(control + ControlHeader.Version) as i32;
  senderRole = load<u8>(control + ControlHeader.Role) as i32;
  if (type < ControlType.Discover || type > CONTROL_TYPE_LAST) return Parsed.Malformed;
  if (version < LINK_PROTOCOL_MIN || version > LINK_PROTOCOL_MAX) return Parsed.Malformed;
  if (load<u8>(control + ControlHeader.Reserved3) != 0 || load<u16>(control + ControlHeader.Reserved6) != 0) return Parsed.Malformed;
  if (management != (type == ControlType.ManageRequest)) return Parsed.ForeignGroup;
  if (management) {
    if (senderRole != MANAGEMENT_ROLE || load16be(control + ControlHeader.Group) != 0) return Parsed.Malformed;
  } else {
    if (senderRole > CardRole.Chassis) return Parsed.Malformed;
    if (load16be(control + ControlHeader.Group) != config.group) return Parsed.ForeignGroup;
  }
  senderSerial = load32be(control + ControlHeader.Serial);
  senderBootId = load32be(control + ControlHeader.BootId);
  session = load32be(head + 4);
  body = control + ControlHeader.Size;
  bodyLength = declared - ControlHeader.Size;
  return Parsed.Ok;
}
