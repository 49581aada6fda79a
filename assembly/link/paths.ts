// Paths (docs/link.md, "Paths"): a session's tunnel carries DATA on each Ethernet port that
// reaches the peer. The handshake made the first path, on the port it came in on; the host card
// then looks for the peer on its other port with JOIN, sent to the control multicast address,
// and the chassis card answers from the port the JOIN came in on. Each checks the other's tag,
// HMAC(session key, "IOVj" | session | sender role | sender port | sender's address), before it
// enables the path to the sender's address in the fabric (PathReg), so no one without the session
// key can add a path, and a JOIN recorded and sent again from another address does not verify.
// The fabric then carries the session on both paths and reports a path that goes silent or comes
// back (PathSilent, PathHeard); the link goes to Recovery only when no path is left.
//
// The card-wide part: which Ethernet ports have carrier, and which heard this card's own CONTROL
// frames and no other card's since their carrier came up (a port cabled back to the card).

import { ControlType, JoinBody, JoinFlag, LinkState, LinkTiming, TAG_SIZE, LINK_PROTOCOL_PATHS, PATH_FIGURES } from "../../board/map/link";
import { PORTS, MAX_TUNNELS, PATH_BASE, PATH_STRIDE, PATH_SIZE, PathReg, PathControl } from "../../board/map/registers";
import { CardRole, Counter, LogLevel } from "../../board/map/mailbox";
import * as tx from "../abi/tx";
import * as hash from "../hash";
import * as log from "../log";
import * as timers from "../timers";
import { TimerId } from "../timers";
import { Context, LINK_CONTEXTS, equal32 } from "../hash";
import { count } from "../counters";
import { load16be, load32be, store32be, sameMac } from "./be";
import { port, field, MASTER, JOIN_MAC, JOIN_TAG, OWN_TAG } from "./port";
import * as frames from "./frames";
import * as config from "./config";

/** The hash contexts of a port that the session's keys no longer use (keys.ts, KeyContext.Channel and Tx). */
export const OWN: i32 = 0; //   this card's tag for a port, to send in a JOIN
export const CHECK: i32 = 1; // the tag a received JOIN should carry

const JOIN_LABEL: u32 = 0x6a564f49; // "IOVj" as bytes
const message = memory.data(16);

/** Ethernet ports with carrier, a bit each: as BOOT said, then as CarrierUp and CarrierDown say. */
let carrier: u32 = 0;
let heardSelf: u32 = 0;
let heardOthers: u32 = 0;

export function reset(): void {
  carrier = 0;
  heardSelf = 0;
  heardOthers = 0;
}

/** BOOT's carrier bits. */
export function setCarriers(bits: u32): void {
  carrier = bits;
}

export function hasCarrier(ethPort: i32): bool {
  return (carrier & (1 << ethPort)) != 0;
}

/** Port `ethPort` heard this card's own frames and no other card's since its carrier came up: cabled back to the card. */
export function looped(ethPort: i32): bool {
  return ((heardSelf & ~heardOthers) & (1 << ethPort)) != 0;
}

/** A CONTROL frame came in on `ethPort`, from this card's own address (`own`) or another card's. */
export function heard(ethPort: i32, own: bool): void {
  const bit: u32 = 1 << ethPort;
  if (own && (heardSelf & bit) == 0 && (heardOthers & bit) == 0) {
    log.debug();
    log.str("port ");
    log.dec(ethPort);
    log.str(": hears this card's own frames (cabled back to the card?)");
    log.end();
  }
  if (own) heardSelf |= bit;
  else heardOthers |= bit;
}

/** Port `ethPort`'s carrier went down or came up; what it heard is forgotten either way. */
export function setCarrier(ethPort: i32, up: bool): void {
  const bit: u32 = 1 << ethPort;
  carrier = up ? carrier | bit : carrier & ~bit;
  heardSelf &= ~bit;
  heardOthers &= ~bit;
}

/** The Ethernet ports link port `index`'s session has a path on, a bit each. */
export function ports(index: i32): u32 {
  const p = port(index);
  return ((1 << p.ethPort) as u32) | p.paths;
}

/** Whether link port `index`'s session still has a path on a port with carrier. */
export function reachable(index: i32): bool {
  return (ports(index) & carrier) != 0;
}

/** A session starts without paths but its first (the fabric's shut cleared them), and without their figures. */
export function clear(index: i32): void {
  const p = port(index);
  p.paths = 0;
  p.silentPaths = 0;
  forgetJoin(index);
  memory.fill(health + HEALTH_STRIDE * index, 0, HEALTH_STRIDE);
}

// ---- Health: each path's figures as the fabric measures them ------------------------------
// PathReg RttNs, TxFrames, RxFrames and Resent of every path of a live session, read once a
// second (the heartbeat) and reported as last read, in management replies and on the console.

const HEALTH_STRIDE: i32 = 4 * PATH_FIGURES * PORTS;
const health = memory.data(HEALTH_STRIDE * MAX_TUNNELS);

/** Asks the fabric for the figures of every path of every live session (REG_READ; the values come back as REG_VALUE). */
export function poll(): void {
  for (let i = 0; i < config.ports; i++) {
    const s = port(i).state;
    if (s != LinkState.Active && s != LinkState.Recovery) continue;
    const on = ports(i);
    for (let q = 0; q < PORTS; q++) {
      if ((on & (1 << q)) == 0) continue;
      const base = (PATH_BASE + PATH_STRIDE * i + PATH_SIZE * q + PathReg.RttNs) as u32;
      for (let k: u32 = 0; k < (PATH_FIGURES as u32); k++) tx.regRead(base + 4 * k);
    }
  }
}

/** Keeps a REG_VALUE of a path's figure; others are not this module's. */
export function onRegValue(address: u32, value: u32): void {
  const offset = address - (PATH_BASE as u32);
  const within = offset & (PATH_SIZE - 1);
  if (offset >= ((PATH_STRIDE * MAX_TUNNELS) as u32) || within < (PathReg.RttNs as u32) || within >= ((PathReg.RttNs + 4 * PATH_FIGURES) as u32) || (within & 3) != 0) return;
  store<u32>(health + 4 * PATH_FIGURES * (offset / PATH_SIZE) + within - PathReg.RttNs, value);
}

/** Figure `k` (PathReg RttNs, TxFrames, RxFrames, Resent) of link port `index`'s path on Ethernet port `q`, as last read; 0 before the first look. */
export function figure(index: i32, q: i32, k: i32): u32 {
  return load<u32>(health + HEALTH_STRIDE * index + 4 * (PATH_FIGURES * q + k));
}

/** A join under way is forgotten: a new session, or a restart of the firmware (the hash engine's answers went with it). */
export function forgetJoin(index: i32): void {
  const p = port(index);
  p.joinHashes = 0;
  p.joinPort = -1;
  p.ownPort = -1;
}

/** Host card, Active: JOINs on every port with carrier that has no path yet, from JoinMinNs again. */
export function schedule(index: i32): void {
  const p = port(index);
  if (config.role != CardRole.Host || p.version < LINK_PROTOCOL_PATHS || !wanted(index)) return;
  p.joinInterval = LinkTiming.JoinMinNs;
  timers.start(TimerId.PortHealth + index, 0);
}

/** A port with carrier and without a path of link port `index`'s session, or -1. */
function wanted(index: i32): i32 {
  const missing = carrier & ~ports(index);
  for (let q = 0; q < PORTS; q++) if ((missing & (1 << q)) != 0) return q;
  return -1;
}

/** Host card, the join timer of Active link port `index`: a JOIN on a port that needs a path, then again later, backing off. */
export function onTimer(index: i32): void {
  const p = port(index);
  const q = wanted(index);
  if (q < 0) return;
  if (p.ownPort != q) {
    if (p.joinHashes == 0) sign(index, q); // the JOIN goes when the tag is in (onDigest)
    return;
  }
  sendJoin(index, q, frames.multicast, 0);
  timers.start(TimerId.PortHealth + index, p.joinInterval);
  p.joinInterval = min<u32>(p.joinInterval << 1, LinkTiming.JoinMaxNs);
}

/** Asks the hash engine for this card's JOIN tag on port `q` (context OWN). */
function sign(index: i32, q: i32): void {
  const p = port(index);
  p.ownPort = -1;
  p.ownPending = q;
  p.joinHashes++;
  tagOf(index, OWN, config.role, q, config.address(q));
}

/** HMAC(session key, "IOVj" | session | role | ethPort | address) on context `which` of link port `index`. */
function tagOf(index: i32, which: i32, role: i32, ethPort: i32, address: usize): void {
  store<u32>(message, JOIN_LABEL);
  store32be(message + 4, port(index).session);
  store<u8>(message + 8, role as u8);
  store<u8>(message + 9, ethPort as u8);
  memory.copy(message + 10, address, 6);
  const context = Context.Link + LINK_CONTEXTS * index + which;
  hash.startHmac(context, field(index, MASTER), TAG_SIZE);
  hash.update(context, message, 16);
  hash.finish(context);
}

function sendJoin(index: i32, q: i32, destination: usize, flags: i32): void {
  const p = port(index);
  const body = frames.begin(q, destination, ControlType.Join, p.version, p.session);
  store<u8>(body + JoinBody.Flags, flags as u8);
  store<u8>(body + JoinBody.Port, q as u8);
  memory.copy(body + JoinBody.Tag, field(index, OWN_TAG), TAG_SIZE);
  frames.send(JoinBody.Size);
}

function refuse(): void {
  count(Counter.JoinsRefused);
}

/**
 * A JOIN that frames.parse() accepted, in link port `index`'s session (or -1 for none): the
 * chassis card takes a request on a port that has no path yet, the host card a reply on a port
 * it asked on. The tags are checked by the hash engine (onDigest) before anything changes.
 */
export function onJoin(index: i32): void {
  if (frames.bodyLength < JoinBody.Size) {
    count(Counter.ControlMalformed);
    return;
  }
  const body = frames.body;
  const reply = (load<u8>(body + JoinBody.Flags) & JoinFlag.Reply) != 0;
  const from = load<u8>(body + JoinBody.Port) as i32;
  if (index < 0) return refuse();
  const p = port(index);
  const q = frames.port;
  const host = config.role == CardRole.Host;
  if (p.state != LinkState.Active || frames.session != p.session || p.version < LINK_PROTOCOL_PATHS || from >= PORTS || load16be(body + JoinBody.Reserved2) != 0) return refuse();
  // The first path's port never; a joined one again only from the address it joined (its reply was lost: answered again).
  if (host != reply || q == p.ethPort || ((p.paths & (1 << q)) != 0 && (host || !sameMac(field(index, JOIN_MAC), frames.source)))) return refuse();
  if (p.joinHashes > 0) {
    count(Counter.ControlIgnored); // busy with another: the host card sends its JOIN again
    return;
  }
  memory.copy(field(index, JOIN_MAC), frames.source, 6);
  memory.copy(field(index, JOIN_TAG), body + JoinBody.Tag, TAG_SIZE);
  p.joinPort = q;
  tagOf(index, CHECK, host ? CardRole.Chassis : CardRole.Host, from, frames.source);
  p.joinHashes++;
  if (!host && p.ownPort != q) sign(index, q); // the reply's own tag
}

/** A digest on context OWN or CHECK of link port `index` while a join is under way. */
export function onDigest(index: i32, which: i32, digest: usize): void {
  const p = port(index);
  if (p.joinHashes == 0) return;
  if (which == OWN) {
    memory.copy(field(index, OWN_TAG), digest, TAG_SIZE);
    p.ownPort = p.ownPending;
  } else if (!equal32(digest, field(index, JOIN_TAG))) p.joinPort = -1;
  if (--p.joinHashes > 0) return;
  if (which == OWN && config.role == CardRole.Host && p.joinPort < 0) {
    onTimer(index); // the host card's tag is in: its JOIN goes now
    return;
  }
  const q = p.joinPort;
  p.joinPort = -1;
  if (q < 0) {
    refuse();
    log.warn();
    log.str("link ");
    log.dec(index);
    log.str(": JOIN with a bad tag refused");
    log.end();
    return;
  }
  if ((p.paths & (1 << q)) == 0) join(index, q);
  if (config.role != CardRole.Host) sendJoin(index, q, field(index, JOIN_MAC), JoinFlag.Reply);
  else if (wanted(index) < 0) timers.stop(TimerId.PortHealth + index);
}

/** Enables link port `index`'s path on Ethernet port `q` to the address in JOIN_MAC. */
function join(index: i32, q: i32): void {
  const p = port(index);
  const base = (PATH_BASE + PATH_STRIDE * index + PATH_SIZE * q) as u32;
  const peer = field(index, JOIN_MAC);
  tx.regWrite(base + PathReg.PeerMacHigh, load16be(peer));
  tx.regWrite(base + PathReg.PeerMacLow, load32be(peer + 2));
  tx.regWrite(base + PathReg.Control, PathControl.Enable);
  p.paths |= 1 << q;
  count(Counter.PathJoins);
  log.info();
  log.str("link ");
  log.dec(index);
  log.str(": path on port ");
  log.dec(q);
  log.str(" joined, to ");
  log.mac(peer);
  log.end();
}

/** PathSilent or PathHeard for link port `index`'s path on Ethernet port `q`. */
export function onPathEvent(index: i32, q: i32, silent: bool): void {
  const p = port(index);
  if (q >= PORTS) return;
  const bit: u32 = 1 << q;
  p.silentPaths = silent ? p.silentPaths | bit : p.silentPaths & ~bit;
  if (silent) count(Counter.PathLosses);
  log.begin(silent ? LogLevel.Warn : LogLevel.Info);
  log.str("link ");
  log.dec(index);
  log.str(": path on port ");
  log.dec(q);
  log.str(silent ? " silent; the session goes on the other" : " back");
  log.end();
}
