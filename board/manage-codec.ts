// Host side of the management protocol (board/map/link.ts, docs/management.md): a station
// builds MANAGE_REQUEST frames and reads the MANAGE_REPLY frames cards answer with. The
// inverse pair (decodeRequest, encodeReply) plays the card's side for tests and fake cards;
// the firmware has its own implementation. Frames are CONTROL frames (link-codec.ts) on
// the management VLAN, without FCS, every field big-endian; both directions carry an
// HMAC-SHA-256 tag under the installation's admin key over a 4-byte label, the 16-byte
// ControlHeader and the body up to the tag.

import { createHmac } from "node:crypto";
import {
  ADMIN_KEY_SIZE, ALL_CARDS, ControlHeader, ControlType, LINK_STATE_LAST, MANAGEMENT_ROLE, MANAGE_OP_LAST, MANAGE_STATUS_LAST,
  ManageOp, ManageReplyBody, ManageRequestBody, ManageStatus, PATH_FIGURES, REPLY_COUNTERS, REPLY_TAG_WITHOUT_DROPS, REPLY_TAG_WITHOUT_HEALTH, REPLY_TAG_WITHOUT_PATHS,
  REPLY_SILENT_SHIFT, TAG_SIZE, type LinkState,
} from "./map/link.ts";
import { PORTS } from "./map/registers.ts";
import { CardRole } from "./map/mailbox.ts";
import { decodeControl, encodeControl, type ControlMessage } from "./link-codec.ts";
import { TUNNEL_HEADER } from "./tunnel/wire.ts";

/** ControlHeader.Version of every management message. */
export const MANAGE_VERSION = 1;
/** Ports a reply has room for (LinkStates, PeerSerials). */
export const REPLY_PORTS = 8;
/** The label of a request's tag and of a reply's tag. */
export const REQUEST_LABEL = Uint8Array.of(0x49, 0x4f, 0x56, 0x6d); // "IOVm"
export const REPLY_LABEL = Uint8Array.of(0x49, 0x4f, 0x56, 0x72); //   "IOVr"
const U64_MAX = (1n << 64n) - 1n;

/** ManageReplyBody.Counters in order: the names of a reply's counters. */
export const REPLY_COUNTER_NAMES = [
  "linkUps", "linkDowns", "recoveries", "authFailures", "hotplugEvents", "manageRequests", "manageAuthFailures", "manageReplays",
] as const;

export type ReplyCounters = Record<(typeof REPLY_COUNTER_NAMES)[number], number>;

/** ManageReplyBody.MacsecDrops in order (CardReg.MacsecDrops): why the card dropped MACsec frames. */
export const MACSEC_DROP_NAMES = ["badIcv", "late", "unknownAn", "unknownSci", "inClear", "badTag"] as const;

export type MacsecDrops = Record<(typeof MACSEC_DROP_NAMES)[number], number>;

/** Who sent a frame: the ControlHeader's identity and the Ethernet source address. */
export interface Sender {
  role: number;
  serial: number;
  bootId: number;
  mac: Uint8Array;
}

/** Addressing common to both directions. */
export interface ManageAddress {
  /** Ethernet destination: CONTROL_MULTICAST or a card's (request) / the station's (reply) address. */
  destination: Uint8Array;
  /** Ethernet source: the sender's address. */
  source: Uint8Array;
  /** The management VLAN (802.1Q VID), or null for an untagged frame. */
  vlan: number | null;
}

export interface ManageRequest extends ManageAddress {
  op: ManageOp;
  /** SetGroup: the new group; otherwise 0. */
  newGroup: number;
  /** The serial of the card addressed, or ALL_CARDS. */
  target: number;
  /** The target's current boot ID; 0 only in a Discover. */
  bootId: number;
  /** The station's request counter: strictly increasing, 0 .. 2^64-1. */
  counter: bigint;
  /** The station: its serial and boot ID, in the ControlHeader. */
  station: { serial: number; bootId: number };
}

/** A decoded request, with who sent it. */
export interface DecodedRequest extends ManageRequest {
  sender: Sender;
}

export interface FirmwareVersion {
  major: number;
  minor: number;
  patch: number;
}

/** What a card reports about itself (Discover, Status and SetGroup replies alike). */
export interface CardReport {
  op: ManageOp;
  status: ManageStatus;
  /** The card's group now (SetGroup Ok: the new one). */
  group: number;
  /** The request's counter. */
  counter: bigint;
  firmware: FirmwareVersion;
  /** Chassis slots (chassis card) or downstream ports (host card). */
  slots: number;
  /** Flash slot running. */
  bootSlot: number;
  /** BootFlag bits (board/map/mailbox.ts). */
  bootFlags: number;
  /** Chassis card: bit s set when slot s holds a device; host card: 0. */
  slotsPresent: number;
  /** Link state machines: the host card's downstream ports, 1 on a chassis card (at most REPLY_PORTS). */
  ports: number;
  /** LinkState of each port: `ports` entries. */
  linkStates: LinkState[];
  /** Each port's peer serial in a handshake or session, else 0: `ports` entries. */
  peerSerials: number[];
  counters: ReplyCounters;
  /** MACsec frames the card dropped, by reason, as of its firmware's last look; null from a firmware that reports none (a 124-byte reply). */
  macsecDrops: MacsecDrops | null;
  /** Each port's session paths: the Ethernet ports it has one on, and those silent (`ports` entries); null from a firmware that reports none (a reply of 148 bytes or fewer). */
  paths: PortPaths[] | null;
}

/** A port's session paths (ManageReplyBody.Paths): the Ethernet ports it has a path on, and which of those are silent; none without a session. */
export interface PortPaths {
  on: number[];
  silent: number[];
  /**
   * The figures of the path on each Ethernet port (PORTS entries, all 0 where there is none), as
   * the card read them within the last second (ManageReplyBody.PathHealth); null from a firmware
   * that reports none (a 156-byte reply).
   */
  health: PathHealth[] | null;
}

/** A path's figures, PathReg RttNs to Resent (board/map/registers.ts): counts since the session began. */
export interface PathHealth {
  /** Smoothed round trip; 0 before the first measured. */
  rttNs: number;
  txFrames: number;
  rxFrames: number;
  /** Frames sent on the path that went again (lost, late, or the path went silent). */
  resent: number;
}

/** PathHealth's fields in PathReg order. */
export const PATH_HEALTH_NAMES = ["rttNs", "txFrames", "rxFrames", "resent"] as const satisfies readonly (keyof PathHealth)[];

/** ManageReplyBody.Paths byte of `p`. */
function pathsByte(p: PortPaths): number {
  let byte = 0;
  for (const e of p.on) byte |= 1 << e;
  for (const e of p.silent) byte |= 1 << (REPLY_SILENT_SHIFT + e);
  return byte;
}

function pathsOf(byte: number, health: PathHealth[] | null): PortPaths {
  const bits = (base: number) => Array.from({ length: REPLY_SILENT_SHIFT }, (_, e) => e).filter((e) => (byte >> (base + e)) & 1);
  return { on: bits(0), silent: bits(REPLY_SILENT_SHIFT), health };
}

/** ManageReplyBody.PathHealth's offset of figure `k` of port `port`'s path on Ethernet port `e`. */
function healthAt(port: number, e: number, k: number): number {
  return ManageReplyBody.PathHealth + 4 * (PATH_FIGURES * (PORTS * port + e) + k);
}

export interface ManageReply extends ManageAddress, CardReport {
  /** The card: role and serial, and its boot ID now (ControlHeader), its address (Ethernet source). */
  sender: Sender;
  /** ControlHeader.Group of the reply. */
  headerGroup: number;
}

/** The reply a card builds: its report, and its identity for the ControlHeader. */
export interface ReplyInput extends ManageAddress, Omit<CardReport, "linkStates" | "peerSerials" | "paths"> {
  /** Each port's paths; null: the reply of a firmware from before paths (148 bytes). */
  paths: readonly PortPaths[] | null;
  linkStates: readonly number[];
  peerSerials: readonly number[];
  card: { role: CardRole; serial: number; bootId: number; group: number };
}

export type ManageFrameProblem =
  /** Not a CONTROL frame at all (another EtherType or tunnel kind, or too short for the headers). */
  | "not-control"
  /** A CONTROL frame of another type than the one expected. */
  | "wrong-type"
  /** The right type, but a field is out of range or the body is too short. */
  | "malformed"
  /** The tag does not verify: another admin key, or the frame was altered. */
  | "bad-tag"
  /** A reply whose counter is not the one the caller expected. */
  | "unexpected-counter";

/** Why a frame is not an acceptable management message. */
export class ManageFrameError extends Error {
  constructor(readonly problem: ManageFrameProblem, message: string) {
    super(message);
    this.name = "ManageFrameError";
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== ADMIN_KEY_SIZE) throw new RangeError(`an admin key has ${ADMIN_KEY_SIZE} bytes, not ${key.length}`);
}

function checkUint(value: number, bits: 8 | 16 | 32, what: string): void {
  if (!(Number.isInteger(value) && value >= 0 && value < 2 ** bits)) throw new RangeError(`${what} must be a ${bits}-bit unsigned integer, got ${value}`);
}

/** HMAC-SHA-256(key, label | header | covered). */
export function manageTag(key: Uint8Array, label: Uint8Array, header: Uint8Array, covered: Uint8Array): Uint8Array {
  checkKey(key);
  return new Uint8Array(createHmac("sha256", key).update(label).update(header).update(covered).digest());
}

/** Constant-time comparison of two tags. */
function sameTag(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Where the ControlHeader starts in a frame built by encodeControl. */
function controlOffset(frame: Uint8Array): number {
  return (frame[12] === 0x81 && frame[13] === 0x00 ? 18 : 14) + TUNNEL_HEADER;
}

/** Builds the frame, then writes the tag over the last TAG_SIZE bytes of the body's signed part. */
function sealed(message: ControlMessage, tagAt: number, label: Uint8Array, key: Uint8Array): Uint8Array {
  const frame = encodeControl(message);
  const control = controlOffset(frame);
  const header = frame.subarray(control, control + ControlHeader.Size);
  const body = frame.subarray(control + ControlHeader.Size);
  body.set(manageTag(key, label, header, body.subarray(0, tagAt)), tagAt);
  return frame;
}

function readCounter(view: DataView, high: number): bigint {
  return (BigInt(view.getUint32(high)) << 32n) | BigInt(view.getUint32(high + 4));
}

function writeCounter(view: DataView, high: number, counter: bigint): void {
  if (counter < 0n || counter > U64_MAX) throw new RangeError(`a request counter is 0 .. 2^64-1, got ${counter}`);
  view.setUint32(high, Number(counter >> 32n));
  view.setUint32(high + 4, Number(counter & 0xffff_ffffn));
}

/** The CONTROL message of `frame` if it is of `type`, with its header bytes; throws ManageFrameError. */
function open(frame: Uint8Array, type: ControlType, size: number, what: string): { message: ControlMessage; header: Uint8Array } {
  const message = decodeControl(frame);
  if (!message) throw new ManageFrameError("not-control", `not a CONTROL frame (${frame.length} bytes)`);
  if (message.type !== type) throw new ManageFrameError("wrong-type", `a CONTROL frame of type ${ControlType[message.type] ?? message.type}, not ${ControlType[type]}`);
  if (message.version !== MANAGE_VERSION) throw new ManageFrameError("malformed", `${what}: version ${message.version}, not ${MANAGE_VERSION}`);
  if (message.body.length < size) throw new ManageFrameError("malformed", `${what}: body of ${message.body.length} bytes, shorter than ${size}`);
  const control = controlOffset(frame);
  return { message, header: frame.slice(control, control + ControlHeader.Size) };
}

function verify(key: Uint8Array, label: Uint8Array, header: Uint8Array, body: Uint8Array, tagAt: number, what: string): void {
  const expected = manageTag(key, label, header, body.subarray(0, tagAt));
  if (!sameTag(expected, body.subarray(tagAt, tagAt + TAG_SIZE))) throw new ManageFrameError("bad-tag", `${what}: the tag does not verify (another admin key, or the frame was altered)`);
}

/** The MANAGE_REQUEST frame of `r`, tagged under `key`. */
export function encodeRequest(r: ManageRequest, key: Uint8Array): Uint8Array {
  checkKey(key);
  if (!(r.op >= 1 && r.op <= MANAGE_OP_LAST)) throw new RangeError(`unknown management operation ${r.op}`);
  checkUint(r.newGroup, 16, "newGroup");
  checkUint(r.target, 32, "target");
  checkUint(r.bootId, 32, "bootId");
  const body = new Uint8Array(ManageRequestBody.Size);
  const view = new DataView(body.buffer);
  view.setUint8(ManageRequestBody.Op, r.op);
  view.setUint16(ManageRequestBody.NewGroup, r.newGroup);
  view.setUint32(ManageRequestBody.Target, r.target);
  view.setUint32(ManageRequestBody.BootId, r.bootId);
  writeCounter(view, ManageRequestBody.CounterHigh, r.counter);
  return sealed({
    destination: r.destination, source: r.source, vlan: r.vlan, session: 0,
    type: ControlType.ManageRequest, version: MANAGE_VERSION, role: MANAGEMENT_ROLE, group: 0,
    serial: r.station.serial, bootId: r.station.bootId, body,
  }, ManageRequestBody.Tag, REQUEST_LABEL, key);
}

/** Reads a MANAGE_REQUEST and checks its tag under `key`; throws ManageFrameError. The card's replay rules are the caller's. */
export function decodeRequest(frame: Uint8Array, key: Uint8Array): DecodedRequest {
  checkKey(key);
  const { message, header } = open(frame, ControlType.ManageRequest, ManageRequestBody.Size, "request");
  const body = message.body;
  verify(key, REQUEST_LABEL, header, body, ManageRequestBody.Tag, "request");
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const op = view.getUint8(ManageRequestBody.Op);
  if (!(op >= 1 && op <= MANAGE_OP_LAST)) throw new ManageFrameError("malformed", `request: unknown operation ${op}`);
  if (message.role !== MANAGEMENT_ROLE) throw new ManageFrameError("malformed", `request: role ${message.role}, not the management role ${MANAGEMENT_ROLE}`);
  const target = view.getUint32(ManageRequestBody.Target);
  const bootId = view.getUint32(ManageRequestBody.BootId);
  if (op !== ManageOp.Discover && target === ALL_CARDS) throw new ManageFrameError("malformed", `request: ${ManageOp[op]} addressed to every card`);
  if (op !== ManageOp.Discover && bootId === 0) throw new ManageFrameError("malformed", `request: ${ManageOp[op]} without a boot ID`);
  return {
    destination: message.destination, source: message.source, vlan: message.vlan,
    op, newGroup: view.getUint16(ManageRequestBody.NewGroup), target, bootId,
    counter: readCounter(view, ManageRequestBody.CounterHigh),
    station: { serial: message.serial, bootId: message.bootId },
    sender: { role: message.role, serial: message.serial, bootId: message.bootId, mac: message.source },
  };
}

/** The MANAGE_REPLY frame a card sends for `r`, tagged under `key`. */
export function encodeReply(r: ReplyInput, key: Uint8Array): Uint8Array {
  checkKey(key);
  if (!(Number.isInteger(r.ports) && r.ports >= 0 && r.ports <= REPLY_PORTS)) throw new RangeError(`a reply has room for ${REPLY_PORTS} ports, not ${r.ports}`);
  const body = new Uint8Array(ManageReplyBody.Size);
  const view = new DataView(body.buffer);
  view.setUint8(ManageReplyBody.Op, r.op);
  view.setUint8(ManageReplyBody.Status, r.status);
  view.setUint16(ManageReplyBody.Group, r.group);
  writeCounter(view, ManageReplyBody.CounterHigh, r.counter);
  view.setUint8(ManageReplyBody.FirmwareMajor, r.firmware.major);
  view.setUint8(ManageReplyBody.FirmwareMinor, r.firmware.minor);
  view.setUint8(ManageReplyBody.FirmwarePatch, r.firmware.patch);
  view.setUint8(ManageReplyBody.Slots, r.slots);
  view.setUint8(ManageReplyBody.BootSlot, r.bootSlot);
  view.setUint8(ManageReplyBody.BootFlags, r.bootFlags);
  view.setUint8(ManageReplyBody.SlotsPresent, r.slotsPresent);
  view.setUint8(ManageReplyBody.Ports, r.ports);
  for (let p = 0; p < r.ports; p++) {
    view.setUint8(ManageReplyBody.LinkStates + p, r.linkStates[p] ?? 0);
    view.setUint32(ManageReplyBody.PeerSerials + 4 * p, (r.peerSerials[p] ?? 0) >>> 0);
  }
  REPLY_COUNTER_NAMES.forEach((name, i) => view.setUint32(ManageReplyBody.Counters + 4 * i, r.counters[name] >>> 0));
  const drops = r.macsecDrops;
  if (drops) MACSEC_DROP_NAMES.forEach((name, i) => view.setUint32(ManageReplyBody.MacsecDrops + 4 * i, drops[name] >>> 0));
  if (r.paths && !drops) throw new RangeError("a reply with paths reports MACsec drops too");
  if (r.paths) for (let p = 0; p < r.ports; p++) view.setUint8(ManageReplyBody.Paths + p, r.paths[p] ? pathsByte(r.paths[p]) : 0);
  const withHealth = r.paths !== null && r.paths.slice(0, r.ports).every((p) => p.health !== null);
  if (withHealth) {
    r.paths!.slice(0, r.ports).forEach((p, port) => p.health!.forEach((h, e) => PATH_HEALTH_NAMES.forEach((name, k) => view.setUint32(healthAt(port, e, k), h[name] >>> 0))));
  }
  // Older firmware: no path health (156 bytes), before that no paths (148), and before that no MACsec drops (124).
  const tagAt = withHealth ? ManageReplyBody.Tag : r.paths ? REPLY_TAG_WITHOUT_HEALTH : drops ? REPLY_TAG_WITHOUT_PATHS : REPLY_TAG_WITHOUT_DROPS;
  return sealed({
    destination: r.destination, source: r.source, vlan: r.vlan, session: 0,
    type: ControlType.ManageReply, version: MANAGE_VERSION, role: r.card.role, group: r.card.group,
    serial: r.card.serial, bootId: r.card.bootId, body: body.subarray(0, tagAt + TAG_SIZE),
  }, tagAt, REPLY_LABEL, key);
}

/**
 * Reads a MANAGE_REPLY and checks its tag under `key`; with `expect.counter`, also that it
 * answers that request. Throws ManageFrameError.
 */
export function decodeReply(frame: Uint8Array, key: Uint8Array, expect: { counter?: bigint } = {}): ManageReply {
  checkKey(key);
  const { message, header } = open(frame, ControlType.ManageReply, REPLY_TAG_WITHOUT_DROPS + TAG_SIZE, "reply");
  const body = message.body;
  // A firmware that reports no path health sends 156 bytes, its tag where the health is now; one
  // that reports no paths either, 148; one that reports no MACsec drops either, 124.
  const withHealth = body.length >= ManageReplyBody.Size;
  const withPaths = body.length >= REPLY_TAG_WITHOUT_HEALTH + TAG_SIZE;
  const withDrops = body.length >= REPLY_TAG_WITHOUT_PATHS + TAG_SIZE;
  verify(key, REPLY_LABEL, header, body, withHealth ? ManageReplyBody.Tag : withPaths ? REPLY_TAG_WITHOUT_HEALTH : withDrops ? REPLY_TAG_WITHOUT_PATHS : REPLY_TAG_WITHOUT_DROPS, "reply");
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const op = view.getUint8(ManageReplyBody.Op);
  const status = view.getUint8(ManageReplyBody.Status);
  const ports = view.getUint8(ManageReplyBody.Ports);
  if (!(op >= 1 && op <= MANAGE_OP_LAST)) throw new ManageFrameError("malformed", `reply: unknown operation ${op}`);
  if (status > MANAGE_STATUS_LAST) throw new ManageFrameError("malformed", `reply: unknown status ${status}`);
  if (ports > REPLY_PORTS) throw new ManageFrameError("malformed", `reply: ${ports} ports, more than the ${REPLY_PORTS} a reply holds`);
  if (message.role !== CardRole.Host && message.role !== CardRole.Chassis) throw new ManageFrameError("malformed", `reply: role ${message.role} is not a card's`);
  const linkStates: LinkState[] = [];
  const peerSerials: number[] = [];
  for (let p = 0; p < ports; p++) {
    const state = view.getUint8(ManageReplyBody.LinkStates + p);
    if (state > LINK_STATE_LAST) throw new ManageFrameError("malformed", `reply: port ${p} in unknown link state ${state}`);
    linkStates.push(state);
    peerSerials.push(view.getUint32(ManageReplyBody.PeerSerials + 4 * p));
  }
  const counter = readCounter(view, ManageReplyBody.CounterHigh);
  if (expect.counter !== undefined && counter !== expect.counter) {
    throw new ManageFrameError("unexpected-counter", `reply: counter ${counter} answers no request of ours (expected ${expect.counter})`);
  }
  const counters = Object.fromEntries(REPLY_COUNTER_NAMES.map((name, i) => [name, view.getUint32(ManageReplyBody.Counters + 4 * i)])) as ReplyCounters;
  const macsecDrops = withDrops ? Object.fromEntries(MACSEC_DROP_NAMES.map((name, i) => [name, view.getUint32(ManageReplyBody.MacsecDrops + 4 * i)])) as MacsecDrops : null;
  const healthOf = (port: number): PathHealth[] =>
    Array.from({ length: PORTS }, (_, e) => Object.fromEntries(PATH_HEALTH_NAMES.map((name, k) => [name, view.getUint32(healthAt(port, e, k))])) as unknown as PathHealth);
  const paths = withPaths ? Array.from({ length: ports }, (_, p) => pathsOf(view.getUint8(ManageReplyBody.Paths + p), withHealth ? healthOf(p) : null)) : null;
  return {
    destination: message.destination, source: message.source, vlan: message.vlan,
    op, status, group: view.getUint16(ManageReplyBody.Group), counter,
    firmware: {
      major: view.getUint8(ManageReplyBody.FirmwareMajor), minor: view.getUint8(ManageReplyBody.FirmwareMinor), patch: view.getUint8(ManageReplyBody.FirmwarePatch),
    },
    slots: view.getUint8(ManageReplyBody.Slots),
    bootSlot: view.getUint8(ManageReplyBody.BootSlot),
    bootFlags: view.getUint8(ManageReplyBody.BootFlags),
    slotsPresent: view.getUint8(ManageReplyBody.SlotsPresent),
    ports, linkStates, peerSerials, counters, macsecDrops, paths,
    sender: { role: message.role, serial: message.serial, bootId: message.bootId, mac: message.source },
    headerGroup: message.group,
  };
}

/** Status names as the tools print them. */
export const STATUS_TEXT: Record<ManageStatus, string> = {
  [ManageStatus.Ok]: "ok",
  [ManageStatus.Busy]: "busy (the flash is busy with an update, or a group change is still in progress)",
  [ManageStatus.BadGroup]: "bad group (outside 1..4094, or the management VLAN)",
  [ManageStatus.FlashFailed]: "flash failed (the configuration could not be written; nothing changed)",
};

/** A serial as the firmware logs it: 0x and 8 hex digits. */
export function formatSerial(serial: number): string {
  return `0x${(serial >>> 0).toString(16).padStart(8, "0")}`;
}

export function formatFirmware(v: FirmwareVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}
