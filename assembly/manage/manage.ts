// Management requests (docs/management.md): a station on the management VLAN discovers the
// cards, reads their status and moves them between groups. Every request is authenticated
// with the installation's admin key (HMAC-SHA-256) and must be fresh: it names this boot of
// the card (a Discover may name none) and carries a counter above the last one accepted.
// Refused requests are counted and get no answer, so a station without the key learns nothing.
//
// A group change is written to the flash configuration first (store.ts); only once it is
// there does the card answer Ok and move (link.reassign).
//
// The fabric's hash engine checks a request's tag and signs the reply (Context.Manage), each
// answered by a HASH_DONE in a later batch (onDigest()). One exchange runs at a time: requests
// that come meanwhile wait in a queue of QUEUE (past it they are dropped and counted as
// ControlIgnored; the station asks again), and so does the answer to a group change whose write
// ends meanwhile.

import {
  ControlType, ManageOp, ManageRequestBody, ManageReplyBody, ManageStatus, MANAGE_OP_LAST, ALL_CARDS, TAG_SIZE,
  ADMIN_KEY_SIZE, LINK_PROTOCOL_MIN, REPLY_COUNTERS, ControlHeader, LinkState, REPLY_SILENT_SHIFT, PATH_FIGURES,
} from "../../board/map/link";
import { BootFlag, Counter, LogLevel, MAX_SLOTS } from "../../board/map/mailbox";
import { MACSEC_DROP_REASONS, PORTS } from "../../board/map/registers";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../version";
import { count, get } from "../counters";
import * as retain from "../retain";
import * as hash from "../hash";
import { Context, equal32 } from "../hash";
import * as log from "../log";
import { Text } from "../text";
import * as system from "../system";
import * as update from "../update/update";
import * as config from "../link/config";
import * as frames from "../link/frames";
import * as link from "../link/link";
import * as drops from "../link/drops";
import * as paths from "../link/paths";
import { port } from "../link/port";
import { load16be, load32be, store16be, store32be } from "../link/be";
import * as configStore from "./store";

const REQUEST_LABEL = memory.data<u8>([0x49, 0x4f, 0x56, 0x6d]); // "IOVm"
const REPLY_LABEL = memory.data<u8>([0x49, 0x4f, 0x56, 0x72]); //   "IOVr"

enum Phase {
  Idle = 0,
  Checking = 1, // the request's tag
  Signing = 2, //  the reply
}

let phase = Phase.Idle;
/** A group change's write that ended while another exchange ran: 0, or 1 + whether it was written. */
let storedLater: i32 = 0;
/** The request being checked: its sender's address, the Ethernet port it came in on (byte 6), then its ControlHeader and body. */
const REQUEST: i32 = 8 + ControlHeader.Size + ManageRequestBody.Size;
const requester = memory.data(REQUEST);
const request = requester + 8;
/** Requests waiting for the exchange before them, oldest first, each laid out as `requester`. */
const QUEUE: i32 = 4;
const queue = memory.data(QUEUE * REQUEST);
let queued: i32 = 0;
/** The reply being signed: its destination and Ethernet port (as in `requester`), then its ControlHeader and body. */
const replyTo = memory.data(8);
const replyMessage = memory.data(ControlHeader.Size + ManageReplyBody.Size);

/** The counter of the last request accepted in this boot; none yet while `accepted` is false. */
let lastCounter: u64 = 0;
let accepted = false;

/** The SetGroup waiting for its flash write: whom to answer, and the group. */
const station = memory.data(8);
let pendingCounter: u64 = 0;
let pendingGroup: u32 = 0;

const REPORTED = memory.data<u8>([
  <u8>Counter.LinkUps, <u8>Counter.LinkDowns, <u8>Counter.Recoveries, <u8>Counter.AuthFailures,
  <u8>Counter.HotplugEvents, <u8>Counter.ManageRequests, <u8>Counter.ManageAuthFailures, <u8>Counter.ManageReplays,
]);

/** The replay state a previous firmware of this boot left (retain.ts): the last counter accepted, and whether there was one. */
export function restore(counter: u64, wasAccepted: bool): void {
  lastCounter = counter;
  accepted = wasAccepted;
}

/** The counter of the last request accepted in this boot, and whether there was one (retain.ts). */
export function lastAccepted(): u64 {
  return lastCounter;
}

export function anyAccepted(): bool {
  return accepted;
}

export function reset(): void {
  lastCounter = 0;
  accepted = false;
  pendingGroup = 0;
  phase = Phase.Idle;
  storedLater = 0;
  queued = 0;
  configStore.reset();
}

/** Asks the engine for HMAC-SHA-256 under the admin key of `label` and the `length` bytes at `message` (ControlHeader and body). */
function sign(label: usize, message: usize, length: i32, next: Phase): void {
  hash.startHmac(Context.Manage, config.adminKey, ADMIN_KEY_SIZE);
  hash.update(Context.Manage, label, 4);
  hash.update(Context.Manage, message, length);
  hash.finish(Context.Manage);
  phase = next;
}

function refuse(counter: i32, why: Text): void {
  count(counter);
  log.begin(LogLevel.Warn);
  log.str("manage: request from ");
  log.mac(requester);
  log.str(" refused: ");
  log.str(why);
  log.end();
}

/** A MANAGE_REQUEST that frames.parse() accepted (on the management VLAN, from a station). */
export function onRequest(): void {
  const body = frames.body;
  if (frames.bodyLength < ManageRequestBody.Size) {
    count(Counter.ControlMalformed);
    return;
  }
  const op = load<u8>(body + ManageRequestBody.Op) as i32;
  const target = load32be(body + ManageRequestBody.Target);
  if (op < ManageOp.Discover || op > MANAGE_OP_LAST || load<u8>(body + ManageRequestBody.Reserved1) != 0) {
    count(Counter.ControlMalformed);
    return;
  }
  if ((target != config.serial && !(target == ALL_CARDS && op == ManageOp.Discover)) || queued == QUEUE) {
    count(Counter.ControlIgnored); // for another card, or more than the queue holds
    return;
  }
  const entry = phase == Phase.Idle ? requester : queue + queued++ * REQUEST;
  memory.copy(entry, frames.source, 6);
  store<u8>(entry + 6, frames.port as u8); // the Ethernet port the answer goes out on
  memory.copy(entry + 8, body - ControlHeader.Size, ControlHeader.Size + ManageRequestBody.Size);
  if (phase == Phase.Idle) check();
}

/** Asks the engine for the tag the request in `requester` should carry. */
function check(): void {
  sign(REQUEST_LABEL, request, ControlHeader.Size + ManageRequestBody.Tag, Phase.Checking);
}

/** The engine's answer on Context.Manage: the request's expected tag, or the reply's. */
export function onDigest(digest: usize): void {
  if (phase == Phase.Checking) checked(digest);
  else if (phase == Phase.Signing) {
    phase = Phase.Idle;
    const body = frames.beginOn(config.managementVlan, load<u8>(replyTo + 6) as i32, replyTo, ControlType.ManageReply, LINK_PROTOCOL_MIN, 0);
    memory.copy(body - ControlHeader.Size, replyMessage, ControlHeader.Size + ManageReplyBody.Tag);
    memory.copy(body + ManageReplyBody.Tag, digest, TAG_SIZE);
    frames.send(ManageReplyBody.Size);
  }
  if (phase == Phase.Idle && storedLater != 0) {
    const written = storedLater == 2;
    storedLater = 0;
    stored(written);
  }
  if (phase == Phase.Idle && queued > 0) {
    memory.copy(requester, queue, REQUEST);
    memory.copy(queue, queue + REQUEST, --queued * REQUEST);
    check();
  }
}

/** The request in `request` whose tag should be `expected`. */
function checked(expected: usize): void {
  phase = Phase.Idle;
  const body = request + ControlHeader.Size;
  const op = load<u8>(body + ManageRequestBody.Op) as i32;
  if (!equal32(expected, body + ManageRequestBody.Tag)) return refuse(Counter.ManageAuthFailures, "bad tag (no or another admin key)");
  const boot = load32be(body + ManageRequestBody.BootId);
  const counter = ((load32be(body + ManageRequestBody.CounterHigh) as u64) << 32) | (load32be(body + ManageRequestBody.CounterLow) as u64);
  if (boot != frames.bootId && !(boot == 0 && op == ManageOp.Discover)) return refuse(Counter.ManageReplays, "for another boot of this card");
  if (accepted && counter <= lastCounter) return refuse(Counter.ManageReplays, "old counter (replayed)");
  accepted = true;
  lastCounter = counter;
  // A restart that keeps this boot ID (retain.ts) keeps the counter: no request replays across it.
  retain.headerChanged();
  count(Counter.ManageRequests);
  if (op == ManageOp.SetGroup) setGroup(load16be(body + ManageRequestBody.NewGroup), counter);
  else reply(requester, counter, op, ManageStatus.Ok, config.group);
}

function setGroup(group: u32, counter: u64): void {
  const busy = configStore.busy() || !update.idle() || link.reassigning();
  if (group < 1 || group > 4094 || group == config.managementVlan) reply(requester, counter, ManageOp.SetGroup, ManageStatus.BadGroup, config.group);
  else if (group == config.group && !busy) reply(requester, counter, ManageOp.SetGroup, ManageStatus.Ok, group);
  else if (busy) reply(requester, counter, ManageOp.SetGroup, ManageStatus.Busy, config.group);
  else {
    memory.copy(station, requester, 7);
    pendingCounter = counter;
    pendingGroup = group;
    configStore.write(config.record, group);
  }
}

/** The configuration record for the pending SetGroup is written (`ok`) or not. */
export function onStored(ok: bool): void {
  if (phase == Phase.Idle) stored(ok);
  else storedLater = ok ? 2 : 1;
}

function stored(ok: bool): void {
  const group = pendingGroup;
  pendingGroup = 0;
  if (!ok) {
    reply(station, pendingCounter, ManageOp.SetGroup, ManageStatus.FlashFailed, config.group);
    return;
  }
  count(Counter.GroupChanges);
  log.info();
  log.str("manage: group ");
  log.dec(config.group);
  log.str(" -> ");
  log.dec(group);
  log.str(", saved in flash");
  log.end();
  reply(station, pendingCounter, ManageOp.SetGroup, ManageStatus.Ok, group);
  link.reassign(group);
}

function reply(destination: usize, counter: u64, op: i32, status: i32, group: u32): void {
  const body = frames.beginOn(config.managementVlan, load<u8>(destination + 6) as i32, destination, ControlType.ManageReply, LINK_PROTOCOL_MIN, 0);
  store<u8>(body + ManageReplyBody.Op, op as u8);
  store<u8>(body + ManageReplyBody.Status, status as u8);
  store16be(body + ManageReplyBody.Group, group);
  store32be(body + ManageReplyBody.CounterHigh, (counter >> 32) as u32);
  store32be(body + ManageReplyBody.CounterLow, counter as u32);
  store<u8>(body + ManageReplyBody.FirmwareMajor, FIRMWARE_MAJOR as u8);
  store<u8>(body + ManageReplyBody.FirmwareMinor, FIRMWARE_MINOR as u8);
  store<u8>(body + ManageReplyBody.FirmwarePatch, FIRMWARE_PATCH as u8);
  store<u8>(body + ManageReplyBody.Slots, config.slots as u8);
  store<u8>(body + ManageReplyBody.BootSlot, system.bootSlot as u8);
  store<u8>(body + ManageReplyBody.BootFlags, (system.trial ? BootFlag.Trial : 0) as u8);
  store<u8>(body + ManageReplyBody.SlotsPresent, config.slotsPresent as u8);
  store<u8>(body + ManageReplyBody.Ports, config.ports as u8);
  for (let i = 0; i < config.ports && i < MAX_SLOTS; i++) {
    store<u8>(body + ManageReplyBody.LinkStates + i, link.state(i) as u8);
    store32be(body + ManageReplyBody.PeerSerials + 4 * i, port(i).peerSerial);
  }
  for (let i = 0; i < REPLY_COUNTERS; i++) store32be(body + ManageReplyBody.Counters + 4 * i, get(load<u8>(REPORTED + i) as i32));
  for (let i = 0; i < MACSEC_DROP_REASONS; i++) store32be(body + ManageReplyBody.MacsecDrops + 4 * i, drops.get(i));
  for (let i = 0; i < config.ports && i < MAX_SLOTS; i++) {
    const s = link.state(i);
    if (s != LinkState.Active && s != LinkState.Recovery) continue;
    store<u8>(body + ManageReplyBody.Paths + i, (paths.ports(i) | (port(i).silentPaths << REPLY_SILENT_SHIFT)) as u8);
    for (let q = 0; q < PORTS; q++) {
      for (let k = 0; k < PATH_FIGURES; k++) store32be(body + ManageReplyBody.PathHealth + 4 * (PATH_FIGURES * (PORTS * i + q) + k), paths.figure(i, q, k));
    }
  }
  memory.copy(replyTo, destination, 7);
  memory.copy(replyMessage, body - ControlHeader.Size, ControlHeader.Size + ManageReplyBody.Tag);
  sign(REPLY_LABEL, replyMessage, ControlHeader.Size + ManageReplyBody.Tag, Phase.Signing);
}
