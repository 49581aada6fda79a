// The tunnel link state machine (docs/link.md): one per port, written as explicit states
// with an entry action, a timeout and exit conditions each. A host card runs one per
// downstream port and pairs each with a chassis card; a chassis card runs one (port 0).
//
//   Disabled -> Discover -> Negotiate -> Authenticate -> Configure -> Active <-> Recovery
//   Recovery -> Down -> Discover; any handshake state -> Discover on failure
//
// Inputs: CONTROL frames (FRAME_RX), fabric events, register values, and two timers per
// port (the state's timeout, and the health/probe period).

import {
  ControlType, DiscoverBody, DiscoverFlag, HandshakeBody, HANDSHAKE_TRAILER, Proposal, AuthBody, ReadyBody, ReadyFlag, ReasonBody,
  RejectReason, LinkState, LinkTiming, LinkCipher, NONCE_SIZE, TAG_SIZE, LINK_PROTOCOL_MIN, REJECT_REASON_LAST, RELEASE_TIMEOUT_NS,
} from "../../board/map/link";
import { TunnelReg, TunnelStatus, FabricEventKind, CardReg, MAX_TUNNELS, SecyReg } from "../../board/map/registers";
import { CardRole, Counter, LogLevel } from "../../board/map/mailbox";
import * as tx from "../abi/tx";
import * as clock from "../clock";
import * as log from "../log";
import { Text } from "../text";
import * as timers from "../timers";
import * as entropy from "../entropy";
import { TimerId } from "../timers";
import { count } from "../counters";
import { equal32 } from "../hash";
import { sameMac, load32be, store32be } from "./be";
import { port, field, resetAll, PEER_MAC, NONCE, PEER_NONCE, PROPOSAL, PEER_PROPOSAL, SAVED as PORT_SAVED } from "./port";
import * as retain from "../retain";
import * as frames from "./frames";
import * as fabric from "./fabric";
import * as config from "./config";
import * as penalty from "./penalty";
import * as vswitch from "../pcie/switch";
import { writeProposal, proposalSize, intersect, commonVersion } from "./negotiate";
import { startTags, onTag, tag, sessionId, TranscriptTag } from "./auth";
import { LINK_CONTEXTS } from "../hash";
import * as keys from "./keys";
import * as paths from "./paths";
import { PORTS } from "../../board/map/registers";

let started = false;
let beaconInterval: u64 = LinkTiming.DiscoverMinNs;
/** The group management moved this card to, while the move is under way (0: none). */
let pendingGroup: u32 = 0;
/** Chassis card: RELEASE sent, waiting for the host card's CLOSE. */
let releasing = false;
/** DISCOVERs this card has sent in this boot: each carries its number, each OFFER and ACCEPT the count. */
let discoversSent: u32 = 0;
/** The boot IDs of the last BOOTS_SEEN peers a handshake began with, a ring (a power of 2). */
const BOOTS_SEEN = 8;
const bootsSeen = memory.data(BOOTS_SEEN * 4);
let bootsNext = 0;
/** The cause of a Recovery entered to take over a session a previous firmware left (neither a RejectReason nor a FabricEventKind). */
const ADOPTED: i32 = -1;

/** Where link port `index`'s retained bytes are. */
export function saved(index: i32): usize {
  return field(index, 0);
}

/** DISCOVERs sent in this boot, or in the boot whose sessions this one adopted. */
export function discovers(): u32 {
  return discoversSent;
}

/** The link ports as a previous firmware left them (retain.ts); tryStart() takes over their sessions. */
export function restore(from: usize, discovers: u32): void {
  for (let i = 0; i < MAX_TUNNELS; i++) memory.copy(field(i, 0), from + i * PORT_SAVED, PORT_SAVED);
  discoversSent = discovers;
}

export function reset(): void {
  started = false;
  beaconInterval = LinkTiming.DiscoverMinNs;
  pendingGroup = 0;
  releasing = false;
  discoversSent = 0;
  memory.fill(bootsSeen, 0, BOOTS_SEEN * 4);
  bootsNext = 0;
  resetAll();
  penalty.reset();
  paths.reset();
}

/** Leaves Disabled once CONFIG and the first ENTROPY (for the boot ID) have arrived; a no-op before, or after. */
export function tryStart(): void {
  if (started || !config.configured || !entropy.has(4)) return;
  started = true;
  // The sessions a previous firmware left in the fabric go on under its boot ID: to the peers
  // nothing rebooted (docs/link.md, "Reboots"). Without a session to adopt, a new boot ID tells
  // the peers of a handshake under way that it is over.
  let sessions = 0;
  for (let i = 0; i < config.ports; i++) if (port(i).state == LinkState.Active || port(i).state == LinkState.Recovery) sessions++;
  const adopting = retain.adopted() && frames.bootId != 0 && sessions > 0;
  if (!adopting) frames.setBootId(entropy.word32());
  retain.headerChanged();
  // Only this group's CONTROL frames reach the mailbox; the MAC drops the other groups' in hardware.
  tx.regWrite(CardReg.ControlVlan, config.group);
  tx.regWrite(CardReg.ManagementVlan, config.managementVlan);
  log.info();
  log.str("link: group ");
  log.dec(config.group);
  log.str(", protocol ");
  log.dec(LINK_PROTOCOL_MIN);
  log.str("..");
  log.dec(config.protocolMax);
  log.str(", MTU ");
  log.dec(config.mtu);
  log.str(", boot ID ");
  log.hex(frames.bootId, 8);
  log.str(adopting ? ", adopted" : "");
  log.end();
  for (let i = 0; i < config.ports; i++) {
    const s = port(i).state;
    // An adopted session goes on; what the fabric reported while no firmware listened is read
    // from the tunnel's Status (onRegValue). A handshake under way is lost with the old firmware.
    port(i).probes = 0; // the old firmware's reads were answered to it, or not at all
    paths.forgetJoin(i);
    if (adopting && (s == LinkState.Active || s == LinkState.Recovery)) enter(i, LinkState.Active, ADOPTED);
    else {
      if (s == LinkState.Configure) fabric.shut(i); // programmed for a handshake the old firmware did not finish
      enter(i, LinkState.Discover, 0);
    }
  }
}

/** True once the link left Disabled. */
export function isStarted(): bool {
  return started;
}

export function state(index: i32): i32 {
  return port(index).state;
}

/** A port carries a session (Active, or in Recovery). */
export function sessionsLive(): bool {
  for (let i = 0; i < config.ports; i++) {
    const s = port(i).state;
    if (s == LinkState.Active || s == LinkState.Recovery) return true;
  }
  return false;
}

// ---- States ------------------------------------------------------------------------

function isHost(): bool {
  return config.role == CardRole.Host;
}

function inSession(state: i32): bool {
  return state == LinkState.Configure || state == LinkState.Active || state == LinkState.Recovery;
}

function inHandshake(state: i32): bool {
  return state == LinkState.Negotiate || state == LinkState.Authenticate || state == LinkState.Configure;
}

export function stateName(state: i32): Text {
  switch (state) {
    case LinkState.Disabled: return "disabled";
    case LinkState.Discover: return "discover";
    case LinkState.Negotiate: return "negotiate";
    case LinkState.Authenticate: return "authenticate";
    case LinkState.Configure: return "configure";
    case LinkState.Active: return "active";
    case LinkState.Recovery: return "recovery";
    default: return "down";
  }
}

function reasonName(reason: i32): Text {
  switch (reason) {
    case RejectReason.Busy: return "busy with another host card";
    case RejectReason.NoCommonVersion: return "no common protocol version";
    case RejectReason.NoCommonAckPolicy: return "no common acknowledgement policy";
    case RejectReason.PayloadUnfit: return "no TLP payload of 128 bytes or more fits both MTU and credits";
    case RejectReason.AuthFailed: return "authentication failed (another pairing key?)";
    case RejectReason.ConfigureFailed: return "the fabric refused the negotiated settings";
    case RejectReason.Timeout: return "the peer stopped answering";
    case RejectReason.GraceExpired: return "the peer stayed silent past the grace window";
    case RejectReason.PeerRebooted: return "the peer rebooted";
    case RejectReason.PeerLost: return "the peer ended the session";
    case RejectReason.PeerClosed: return "the peer closed the session";
    case RejectReason.Reassigned: return "moved to another group";
    case RejectReason.Released: return "slots released for another server";
    case RejectReason.NoCommonCipher: return "no common data path protection (MACsec on one card, off on the other?)";
    default: return "unknown reason";
  }
}

function begin(level: i32, index: i32): void {
  log.begin(level);
  log.str("link ");
  log.dec(index);
  log.str(": ");
}

function logPeer(index: i32): void {
  log.str(isHost() ? "chassis card " : "host card ");
  log.hex(port(index).peerSerial, 8);
  log.str(" (");
  log.mac(field(index, PEER_MAC));
  log.str(")");
}

/** Moves port `index` to `next`; `cause` is the RejectReason or FabricEventKind behind it, if any. */
function enter(index: i32, next: i32, cause: i32): void {
  // A chassis card that is moving away does not ride out an outage for its old host card.
  if (releasing && next == LinkState.Recovery) {
    next = LinkState.Down;
    cause = RejectReason.Reassigned;
  }
  const p = port(index);
  const previous = p.state;
  const since = p.enteredAt;
  p.state = next;
  p.enteredAt = clock.now;
  p.attempts = 0;
  p.cause = cause;
  timers.stop(TimerId.PortState + index);
  timers.stop(TimerId.PortHealth + index);
  fabric.write(index, TunnelReg.LinkState, next as u32);
  retain.portChanged(index);
  switch (next) {
    case LinkState.Discover:
      memory.fill(field(index, PEER_MAC), 0, 8);
      p.peerSerial = 0;
      p.probes = 0; // a session's probes were answered a millisecond ago and more (the Down hold)
      if (previous != LinkState.Discover) wakeBeacon();
      begin(LogLevel.Debug, index);
      log.str("discover");
      log.end();
      break;
    case LinkState.Negotiate:
      entropy.take(field(index, NONCE), NONCE_SIZE);
      sendHandshake(index);
      timers.start(TimerId.PortState + index, LinkTiming.HandshakeTimeoutNs);
      // A step of the handshake: Debug (its outcome, up or failed, is Info). At Info it was a
      // fifth of the batch that answers an OFFER.
      begin(LogLevel.Debug, index);
      log.str("negotiate with ");
      logPeer(index);
      log.str(", protocol ");
      log.dec(p.version);
      log.end();
      break;
    case LinkState.Authenticate:
      if (p.tagsPending == 0) sendAuth(index); // the host card's tags may still be on their way (onDigest)
      timers.start(TimerId.PortState + index, LinkTiming.HandshakeTimeoutNs);
      break;
    case LinkState.Configure:
      paths.clear(index);
      p.fabricReady = false;
      // The chassis card configures on the host card's READY; the host card waits for the chassis card's.
      p.peerReady = !isHost();
      p.retryExhausted = false;
      p.srtt = 0;
      p.rttvar = 0;
      p.rto = LinkTiming.RtoInitialNs;
      // The session's keys may still be on their way from the hash engine (onDigest programs then).
      if (p.keysPending == 0) fabric.program(index, p, field(index, PEER_MAC));
      timers.start(TimerId.PortState + index, LinkTiming.HandshakeTimeoutNs);
      break;
    case LinkState.Active:
      // No timer while Active: the fabric reports RTT changes (RttChanged) and trouble itself.
      timers.stop(TimerId.PortHealth + index);
      if (cause == ADOPTED) {
        begin(LogLevel.Info, index);
        log.str("session adopted after a restart of the firmware");
        log.end();
        // A retry limit the fabric reached while no firmware listened stopped its retransmission:
        // whatever is in flight goes again now, not after the Status read (the boot's first
        // batches can hold its answer for tens of milliseconds).
        fabric.kick(index, p);
        fabric.read(index, TunnelReg.Status);
        keys.readStatus(index);
      } else if (previous == LinkState.Recovery) {
        count(Counter.Resumes);
        begin(LogLevel.Info, index);
        log.str("resumed after ");
        log.dec((clock.now - since) / 1000);
        log.str(" us in recovery, session kept");
        log.end();
        p.resumedAt = clock.now;
      } else {
        count(Counter.LinkUps);
        p.upAt = clock.now;
        p.trainStart = 0;
        logUp(index);
        // A new session: the chassis card's slots appear in the server (a resume changes nothing).
        if (isHost()) vswitch.attach(index, p.peerSerial, p.peerSlots, p.peerSlotsPresent);
      }
      paths.schedule(index);
      break;
    case LinkState.Recovery: {
      count(Counter.Recoveries);
      // One grace window for a whole train of outages: an outage that comes before the link has
      // stayed up for StableNs since the last resume continues that train (docs/link.md, "The hold bound").
      if (p.trainStart == 0 || clock.now - p.resumedAt >= (LinkTiming.StableNs as u64)) p.trainStart = clock.now;
      const end = p.trainStart + p.graceNs;
      const left = end > clock.now ? end - clock.now : 0;
      timers.start(TimerId.PortState + index, left);
      timers.start(TimerId.PortHealth + index, LinkTiming.ProbeIntervalNs);
      begin(LogLevel.Warn, index);
      log.str(
        cause == FabricEventKind.PeerSilent ? "peer silent" :
        cause == FabricEventKind.RetryLimit ? "retransmission retry limit" : "carrier lost",
      );
      log.str("; recovery, TLPs held for up to ");
      log.dec(left / 1000);
      log.str(" us");
      log.end();
      break;
    }
    case LinkState.Down:
      // Surprise removal of the slots behind this tunnel, before the tunnel drops its TLPs.
      if (isHost()) vswitch.detach(index);
      count(Counter.LinkDowns);
      fabric.shut(index);
      // Hysteresis: a session that could not ride out its outages keeps its peer away for a
      // penalty that doubles with each such down in a row; a session that lasted FlapForgiveNs clears the count.
      if (clock.now - p.upAt >= (LinkTiming.FlapForgiveNs as u64)) penalty.forgive(field(index, PEER_MAC));
      if (cause == RejectReason.GraceExpired) penalty.add(field(index, PEER_MAC));
      if (cause != RejectReason.PeerClosed && cause != RejectReason.PeerRebooted && cause != RejectReason.PeerLost) {
        sendReason(index, ControlType.Close, cause);
      }
      // The next owner finds the chassis's devices as after power-on: nothing of this session stays in them.
      if (!isHost()) tx.regWrite(CardReg.SlotReset, ((1 << config.slots) - 1) as u32);
      timers.start(TimerId.PortState + index, LinkTiming.DownHoldNs);
      begin(LogLevel.Warn, index);
      log.str("down: ");
      log.str(reasonName(cause));
      log.str("; ");
      logPeer(index);
      log.end();
      if (releasing) applyGroup();
      break;
  }
}

function logUp(index: i32): void {
  const p = port(index);
  begin(LogLevel.Info, index);
  log.str("up with ");
  logPeer(index);
  log.str(", session ");
  log.hex(p.session, 8);
  log.str(", MACsec ");
  log.str(keys.cipherName(p.cipher));
  log.end();
  if (p.cipher == LinkCipher.Clear) {
    begin(LogLevel.Warn, index);
    log.str("data path in clear: MACsec is off by configuration on both cards");
    log.end();
  }
  // What was negotiated (the console's `link` shows it too): Debug, since at Info the whole line
  // was a third of the link-up batch.
  begin(LogLevel.Debug, index);
  log.str("protocol ");
  log.dec(p.version);
  log.str(", MTU ");
  log.dec(p.mtu);
  log.str(", max payload ");
  log.dec(p.maxPayload);
  log.str(p.ackPolicy == 1 ? ", selective repeat" : ", go-back-N");
  log.str(", keepalive ");
  log.dec(p.keepaliveNs / 1000);
  log.str(" us, silence ");
  log.dec(p.silenceNs / 1000);
  log.str(" us, grace ");
  log.dec(p.graceNs / 1000);
  log.str(" us");
  log.end();
}

/** This card ends a handshake without a session, telling the peer why if `tell`. */
function fail(index: i32, reason: i32, tell: bool): void {
  const p = port(index);
  if (reason == RejectReason.AuthFailed) count(Counter.AuthFailures);
  else if (reason == RejectReason.Timeout) count(Counter.HandshakeTimeouts);
  else if (reason != RejectReason.Busy) count(Counter.NegotiationFailures);
  if (tell) sendReason(index, ControlType.Reject, reason);
  begin(LogLevel.Warn, index);
  log.str("handshake with ");
  logPeer(index);
  log.str(" failed in ");
  log.str(stateName(p.state));
  log.str(": ");
  log.str(reasonName(reason));
  log.end();
  abandon(index, reason);
}

/** Ends a handshake: the peer is penalised (back-off), a configured tunnel shut, the SecY's keys removed, and the port discovers again. */
function abandon(index: i32, reason: i32): void {
  penalty.add(field(index, PEER_MAC));
  if (port(index).state == LinkState.Configure) fabric.shut(index);
  keys.abandon(index);
  enter(index, LinkState.Discover, reason);
}

// ---- Sending -----------------------------------------------------------------------

function sendHandshake(index: i32): void {
  const p = port(index);
  const body = frames.begin(p.ethPort, field(index, PEER_MAC), isHost() ? ControlType.Offer : ControlType.Accept, p.version, 0);
  memory.copy(body + HandshakeBody.Nonce, field(index, NONCE), NONCE_SIZE);
  memory.copy(body + HandshakeBody.Proposal, field(index, PROPOSAL), p.proposalLength);
  store32be(body + HandshakeBody.Proposal + p.proposalLength, discoversSent);
  frames.send(HandshakeBody.Proposal + p.proposalLength + HANDSHAKE_TRAILER);
}

function sendAuth(index: i32): void {
  const body = frames.begin(port(index).ethPort, field(index, PEER_MAC), ControlType.Auth, port(index).version, 0);
  memory.copy(body + AuthBody.Tag, tag(index, isHost() ? TranscriptTag.Host : TranscriptTag.Chassis), TAG_SIZE);
  frames.send(AuthBody.Size);
}

function sendReady(index: i32, flags: i32): void {
  const p = port(index);
  const body = frames.begin(p.ethPort, field(index, PEER_MAC), ControlType.Ready, p.version, p.session);
  store<u8>(body + ReadyBody.Flags, flags as u8);
  frames.send(ReadyBody.Size);
}

function sendReason(index: i32, type: i32, reason: i32): void {
  const p = port(index);
  const version = p.version >= LINK_PROTOCOL_MIN ? p.version : LINK_PROTOCOL_MIN;
  const body = frames.begin(p.ethPort, field(index, PEER_MAC), type, version, type == ControlType.Close ? p.session : 0);
  store<u8>(body + ReasonBody.Reason, reason as u8);
  frames.send(ReasonBody.Size);
}

/** DISCOVER number `number` to `destination` (the control multicast address, or one card) from Ethernet port `from`. */
function sendDiscover(from: i32, destination: usize, number: u32): void {
  let free = 0;
  for (let i = 0; i < config.ports; i++) if (port(i).state == LinkState.Discover) free++;
  const body = frames.begin(from, destination, ControlType.Discover, LINK_PROTOCOL_MIN, 0);
  store32be(body + DiscoverBody.Number, number);
  store<u8>(body + DiscoverBody.VersionMin, LINK_PROTOCOL_MIN as u8);
  store<u8>(body + DiscoverBody.VersionMax, config.protocolMax as u8);
  store<u8>(body + DiscoverBody.Flags, (free > 0 ? DiscoverFlag.Unpaired : 0) | (isHost() && free > 0 ? DiscoverFlag.Solicit : 0));
  store<u8>(body + DiscoverBody.Slots, (isHost() ? free : config.slots) as u8);
  frames.send(DiscoverBody.Size);
}

// ---- Discovery beacon (card-wide) ----------------------------------------------------

function discovering(): bool {
  for (let i = 0; i < config.ports; i++) if (port(i).state == LinkState.Discover) return true;
  return false;
}

/** DISCOVER now (at the next timer expiry, in this instant) and restart the back-off. */
function wakeBeacon(): void {
  beaconInterval = LinkTiming.DiscoverMinNs;
  timers.startAt(TimerId.Beacon, clock.now);
}

/** `interval` scaled by a random factor in [0.75, 1.25). */
export function jitter(interval: u64): u64 {
  const r = entropy.jitter16() as u64;
  return interval - (interval >> 2) + (((interval >> 1) * r) >> 16);
}

/** The next DISCOVER's number in this boot. */
function nextDiscover(): u32 {
  retain.headerChanged();
  return ++discoversSent;
}

function onBeacon(): void {
  if (!discovering()) return;
  // One beacon, one number: on every port with carrier, so a peer is found through either.
  const number = nextDiscover();
  for (let q = 0; q < PORTS; q++) if (paths.hasCarrier(q)) sendDiscover(q, frames.multicast, number);
  timers.start(TimerId.Beacon, jitter(beaconInterval));
  beaconInterval = min<u64>(beaconInterval << 1, LinkTiming.DiscoverMaxNs);
}

// ---- Receiving CONTROL frames -------------------------------------------------------

/**
 * The port whose handshake or session peer sent the frame being handled, or -1. The peer is known
 * by its serial number: its frames may come from either of its Ethernet ports.
 */
function peerPort(): i32 {
  for (let i = 0; i < config.ports; i++) {
    const s = port(i).state;
    if ((inHandshake(s) || s == LinkState.Active || s == LinkState.Recovery) && port(i).peerSerial == frames.senderSerial) return i;
  }
  return -1;
}

function ignored(): void {
  count(Counter.ControlIgnored);
}

function malformed(): void {
  count(Counter.ControlMalformed);
}

/** A FRAME_RX: `frame` is the Ethernet frame without FCS, from Ethernet port `ethPort`. True when it is a MANAGE_REQUEST, for the caller to serve. */
export function onControl(frame: usize, length: i32, ethPort: i32): bool {
  count(Counter.ControlRx);
  const parsed = frames.parse(frame, length, ethPort);
  if (parsed == frames.Parsed.Own) paths.heard(ethPort, true);
  if (parsed != frames.Parsed.Ok) return false;
  if (!frames.management) paths.heard(ethPort, false);
  if (!started) {
    ignored();
    return false;
  }
  const type = frames.type;
  if (type == ControlType.ManageRequest) return true;
  if (type == ControlType.ManageReply) ignored(); // for a station
  else if (type == ControlType.Release) onRelease();
  else if (type == ControlType.Discover) onDiscover();
  else if (type == ControlType.Offer) onOffer();
  else if (type == ControlType.Accept) onAccept();
  else if (type == ControlType.Auth) onAuth();
  else if (type == ControlType.Ready) onReady();
  else if (type == ControlType.Join) paths.onJoin(peerPort());
  else onReason(type);
  return false;
}

function remember(index: i32): void {
  const p = port(index);
  memory.copy(field(index, PEER_MAC), frames.source, 6);
  p.ethPort = frames.port;
  p.peerSerial = frames.senderSerial;
  p.peerBootId = frames.senderBootId;
  p.peerDiscovers = 0;
  if (!bootSeen(frames.senderBootId)) {
    store<u32>(bootsSeen + (bootsNext << 2), frames.senderBootId);
    bootsNext = (bootsNext + 1) & (BOOTS_SEEN - 1);
  }
}

/** Whether a peer's boot ID is one a handshake already began with (the last BOOTS_SEEN of them). */
function bootSeen(id: u32): bool {
  for (let i = 0; i < BOOTS_SEEN; i++) if (load<u32>(bootsSeen + (i << 2)) == id) return true;
  return false;
}

function onDiscover(): void {
  if (frames.bodyLength < DiscoverBody.Number) return malformed();
  const body = frames.body;
  const flags = load<u8>(body + DiscoverBody.Flags) as i32;
  if (frames.senderRole == config.role) return; // cards of the same role do not pair
  const index = peerPort();
  if (index >= 0) {
    const p = port(index);
    const rebooted = frames.senderBootId != p.peerBootId;
    const number = frames.bodyLength >= DiscoverBody.Size ? load32be(body + DiscoverBody.Number) : 0;
    // Sent by a boot of the peer older than this session's, or in this boot before its ACCEPT:
    // reordered or late, it says nothing about the session now.
    if (rebooted ? bootSeen(frames.senderBootId) : number != 0 && number <= p.peerDiscovers) return count(Counter.StaleControl);
    // A chassis card announces itself only without a session; a host card also does so for its other ports.
    if (inSession(p.state) && (rebooted || (isHost() && (flags & DiscoverFlag.Unpaired) != 0))) {
      if (rebooted) count(Counter.PeerReboots);
      enter(index, LinkState.Down, rebooted ? RejectReason.PeerRebooted : RejectReason.PeerLost);
      return;
    }
    if (!rebooted || !inHandshake(p.state)) return ignored();
    // The peer rebooted in the middle of a handshake, which can never finish now: pair with its new boot at once.
    count(Counter.PeerReboots);
    if (p.state == LinkState.Configure) fabric.shut(index);
    enter(index, LinkState.Discover, RejectReason.PeerRebooted);
  }
  if ((flags & DiscoverFlag.Unpaired) == 0) return ignored();
  if (penalty.active(frames.source)) return ignored();
  if (!isHost()) {
    // A host card asks unpaired chassis cards to answer now rather than at their next beacon.
    if ((flags & DiscoverFlag.Solicit) != 0 && port(0).state == LinkState.Discover) sendDiscover(frames.port, frames.source, nextDiscover());
    else ignored();
    return;
  }
  let free = -1;
  for (let i = 0; i < config.ports; i++) {
    if (port(i).state == LinkState.Discover) {
      free = i;
      break;
    }
  }
  if (free < 0 || !entropy.has(NONCE_SIZE)) return ignored(); // no nonce at hand: the chassis card beacons again
  const p = port(free);
  remember(free);
  const version = commonVersion(load<u8>(body + DiscoverBody.VersionMin) as i32, load<u8>(body + DiscoverBody.VersionMax) as i32);
  if (version == 0) {
    p.version = LINK_PROTOCOL_MIN;
    return fail(free, RejectReason.NoCommonVersion, true);
  }
  p.version = version;
  p.proposalLength = writeProposal(field(free, PROPOSAL), version);
  enter(free, LinkState.Negotiate, 0);
}

function hasHandshake(version: i32): bool {
  return frames.bodyLength >= HandshakeBody.Proposal + proposalSize(version);
}

function onOffer(): void {
  if (isHost() || frames.senderRole != CardRole.Host) return ignored();
  const version = frames.version;
  if (!hasHandshake(version)) return malformed();
  const p = port(0);
  const same = sameMac(field(0, PEER_MAC), frames.source);
  if (p.state == LinkState.Negotiate && same && memory.compare(field(0, PEER_NONCE), frames.body + HandshakeBody.Nonce, NONCE_SIZE) == 0) {
    answer(0); // our ACCEPT was lost
    return;
  }
  if (inSession(p.state) || p.state == LinkState.Negotiate || p.state == LinkState.Authenticate) {
    if (!same) {
      // One host card at a time: tell the other one, without touching this handshake or session.
      const body = frames.begin(frames.port, frames.source, ControlType.Reject, version, 0);
      store<u8>(body + ReasonBody.Reason, RejectReason.Busy as u8);
      frames.send(ReasonBody.Size);
      return;
    }
    if (inSession(p.state)) {
      // Our host card starts over: it has lost the session.
      enter(0, LinkState.Down, RejectReason.PeerLost);
      return;
    }
  } else if (p.state != LinkState.Discover) return ignored();
  if (penalty.active(frames.source) || !entropy.has(NONCE_SIZE)) return ignored(); // no nonce at hand: the host card offers again
  // A repeat of the OFFER of a handshake this card has just refused: its REJECT is on the way.
  if (memory.compare(field(0, PEER_NONCE), frames.body + HandshakeBody.Nonce, NONCE_SIZE) == 0) return ignored();
  remember(0);
  memory.copy(field(0, PEER_NONCE), frames.body + HandshakeBody.Nonce, NONCE_SIZE);
  const size = proposalSize(version);
  memory.copy(field(0, PEER_PROPOSAL), frames.body + HandshakeBody.Proposal, size);
  p.proposalLength = writeProposal(field(0, PROPOSAL), version);
  p.version = version;
  const reason = intersect(p, field(0, PROPOSAL), field(0, PEER_PROPOSAL), version);
  if (reason != 0) return fail(0, reason, true);
  enter(0, LinkState.Negotiate, 0);
  startTags(0); // the transcript is complete with this card's nonce
}

function onAccept(): void {
  const index = peerPort();
  if (!isHost() || index < 0) return ignored();
  const p = port(index);
  if (p.state != LinkState.Negotiate && p.state != LinkState.Authenticate) return ignored();
  if (frames.version != p.version || !hasHandshake(p.version)) return malformed();
  if (p.state == LinkState.Authenticate) {
    if (memory.compare(field(index, PEER_NONCE), frames.body + HandshakeBody.Nonce, NONCE_SIZE) == 0) answer(index); // our AUTH was lost
    else ignored();
    return;
  }
  memory.copy(field(index, PEER_NONCE), frames.body + HandshakeBody.Nonce, NONCE_SIZE);
  memory.copy(field(index, PEER_PROPOSAL), frames.body + HandshakeBody.Proposal, p.proposalLength);
  p.peerSlots = load<u8>(field(index, PEER_PROPOSAL) + Proposal.Slots) as i32;
  p.peerSlotsPresent = load<u8>(field(index, PEER_PROPOSAL) + Proposal.SlotsPresent) as u32;
  p.peerBootId = frames.senderBootId;
  const extended = HandshakeBody.Proposal + p.proposalLength;
  if (frames.bodyLength >= extended + HANDSHAKE_TRAILER) p.peerDiscovers = load32be(frames.body + extended);
  const reason = intersect(p, field(index, PROPOSAL), field(index, PEER_PROPOSAL), p.version);
  if (reason != 0) return fail(index, reason, true);
  startTags(index);
  enter(index, LinkState.Authenticate, 0);
}

/** A digest of a link context (`offset` past Context.Link): a transcript tag, or a key (keys.ts). */
export function onDigest(offset: i32, digest: usize): void {
  const index = offset / LINK_CONTEXTS;
  const which = offset % LINK_CONTEXTS;
  const p = port(index);
  // In a session the first contexts, done with the first keys, check and sign JOINs.
  if (p.tagsPending == 0 && p.keysPending == 0 && which <= paths.CHECK && (p.state == LinkState.Active || p.state == LinkState.Recovery)) {
    paths.onDigest(index, which, digest);
    return;
  }
  if (p.tagsPending == 0) {
    // A key of a handshake since abandoned, or of a session since ended: its SecY is not this one's.
    if (p.keysPending > 0 ? !inHandshake(p.state) : !inSession(p.state)) return;
    // The last of the session's keys: the SecY is programmed now, in a batch of its own, before the
    // tunnel is (Configure); so no frame of the session goes unprotected.
    if (!keys.onDigest(index, which, digest)) return;
    keys.program(index, p);
    if (p.state == LinkState.Configure) fabric.program(index, p, field(index, PEER_MAC));
    return;
  }
  if (!onTag(index, which, digest)) return;
  keys.begin(index);
  if (p.keysPending == 0) keys.program(index, p); // a session in clear: MACsec off
  if (isHost() && p.state == LinkState.Authenticate) {
    p.session = sessionId(index);
    sendAuth(index);
  }
}

function onAuth(): void {
  const index = peerPort();
  if (index < 0) return ignored();
  const p = port(index);
  if (frames.bodyLength < AuthBody.Size) return malformed();
  const waiting = isHost() ? p.state == LinkState.Authenticate : p.state == LinkState.Negotiate;
  if (!waiting) {
    // The chassis card's AUTH was lost and the host card sends its own again.
    if (!isHost() && p.state == LinkState.Authenticate) answer(index);
    else ignored();
    return;
  }
  if (p.tagsPending != 0) return ignored(); // the peer's AUTH came before the engine's tags: it sends it again
  if (!equal32(tag(index, isHost() ? TranscriptTag.Chassis : TranscriptTag.Host), frames.body + AuthBody.Tag)) return fail(index, RejectReason.AuthFailed, true);
  if (isHost()) enter(index, LinkState.Configure, 0);
  else {
    p.session = sessionId(index);
    enter(index, LinkState.Authenticate, 0);
  }
}

function onReady(): void {
  const index = peerPort();
  if (index < 0) return ignored();
  if (frames.bodyLength < ReadyBody.Size) return malformed();
  const p = port(index);
  if (frames.session != p.session) return ignored();
  const reply = (load<u8>(frames.body + ReadyBody.Flags) & ReadyFlag.Reply) != 0;
  if (!isHost() && p.state == LinkState.Authenticate) enter(index, LinkState.Configure, 0);
  else if (isHost() && p.state == LinkState.Configure) {
    p.peerReady = true;
    if (p.fabricReady) enter(index, LinkState.Active, 0);
  } else if ((p.state == LinkState.Active || p.state == LinkState.Recovery) && !reply) sendReady(index, ReadyFlag.Reply);
  else ignored();
}

function onReason(type: i32): void {
  const index = peerPort();
  if (index < 0) return ignored();
  if (frames.bodyLength < ReasonBody.Size) return malformed();
  const p = port(index);
  const reason = load<u8>(frames.body + ReasonBody.Reason) as i32;
  if (reason < 1 || reason > REJECT_REASON_LAST) return malformed();
  if (type == ControlType.Close) {
    if (!inSession(p.state) || frames.session != p.session) return ignored();
    begin(LogLevel.Warn, index);
    log.str("peer closed the session: ");
    log.str(reasonName(reason));
    log.end();
    if (releasing && reason == RejectReason.Released) count(Counter.Releases);
    enter(index, LinkState.Down, RejectReason.PeerClosed);
    return;
  }
  if (!inHandshake(p.state)) return ignored();
  count(Counter.PeerRejects);
  begin(LogLevel.Warn, index);
  log.str("rejected by ");
  logPeer(index);
  log.str(": ");
  log.str(reasonName(reason));
  log.end();
  abandon(index, reason);
}

// ---- Timers ------------------------------------------------------------------------

/** Sends the current handshake state's message again. */
function resend(index: i32): void {
  const p = port(index);
  p.attempts++;
  answer(index);
}

/** Sends the current handshake state's message again, in answer to the peer's repeat: no attempt of ours. */
function answer(index: i32): void {
  const p = port(index);
  if (p.state == LinkState.Negotiate) sendHandshake(index);
  else if (p.state == LinkState.Authenticate && p.tagsPending == 0) sendAuth(index);
  else if (p.state == LinkState.Configure && p.fabricReady) sendReady(index, 0);
}

export function onTimer(id: i32): void {
  if (id == TimerId.Beacon) onBeacon();
  else if (id >= TimerId.PortHealth) onHealthTimer(id - TimerId.PortHealth);
  else if (id >= TimerId.PortState) onStateTimer(id - TimerId.PortState);
}

function onStateTimer(index: i32): void {
  const p = port(index);
  if (inHandshake(p.state)) {
    if (p.attempts + 1 >= LinkTiming.HandshakeAttempts) return fail(index, RejectReason.Timeout, true);
    resend(index);
    timers.start(TimerId.PortState + index, LinkTiming.HandshakeTimeoutNs);
  } else if (p.state == LinkState.Recovery) enter(index, LinkState.Down, RejectReason.GraceExpired);
  else if (p.state == LinkState.Down) enter(index, LinkState.Discover, 0);
  else if (p.state == LinkState.Active && releasing) enter(index, LinkState.Down, RejectReason.Reassigned); // the host card did not release in time
}

function onHealthTimer(index: i32): void {
  const p = port(index);
  if (p.state == LinkState.Active && releasing) {
    // A lost RELEASE would cost the whole release timeout: send it again while the host card has not answered.
    sendRelease();
    if (p.attempts < LinkTiming.HandshakeAttempts) timers.start(TimerId.PortHealth + index, LinkTiming.ReleaseRepeatNs);
  } else if (p.state == LinkState.Recovery) {
    fabric.read(index, TunnelReg.Status);
    p.probes++;
    timers.start(TimerId.PortHealth + index, LinkTiming.ProbeIntervalNs);
  } else if (p.state == LinkState.Active) paths.onTimer(index);
}

// ---- Fabric ------------------------------------------------------------------------

export function onFabricEvent(tunnel: i32, kind: i32, arg: u32): void {
  if (!started) return;
  if (kind == FabricEventKind.CarrierDown || kind == FabricEventKind.CarrierUp) {
    const up = kind == FabricEventKind.CarrierUp;
    if (arg >= (PORTS as u32)) return;
    paths.setCarrier(arg as i32, up);
    for (let i = 0; i < config.ports; i++) {
      const p = port(i);
      // A session goes to Recovery when no port it has a path on has carrier any more.
      if (!up && p.state == LinkState.Active && !paths.reachable(i)) enter(i, LinkState.Recovery, kind);
      else if (up && p.state == LinkState.Recovery) fabric.kick(i, p);
      else if (up && p.state == LinkState.Active) paths.schedule(i);
    }
    if (up && discovering()) wakeBeacon();
    return;
  }
  if (kind == FabricEventKind.RegisterRejected) {
    // A refused write of Configure, or of the SecY (programmed as soon as the keys come, in the handshake).
    const index = fabric.portOf(arg);
    if (index < 0 || index >= config.ports) return;
    const state = port(index).state;
    if (state == LinkState.Configure || (fabric.isSecy(arg) && inHandshake(state))) fail(index, RejectReason.ConfigureFailed, true);
    return;
  }
  if (tunnel >= config.ports) return;
  const p = port(tunnel);
  if (kind == FabricEventKind.PeerSilent) {
    if (p.state == LinkState.Active) enter(tunnel, LinkState.Recovery, kind);
  } else if (kind == FabricEventKind.RetryLimit) {
    p.retryExhausted = true;
    // Raised before a resume's kick took effect, it may be news of the outage just over: the
    // tunnel's Status says whether retransmission is still stopped (onRegValue).
    if (p.state == LinkState.Active) fabric.read(tunnel, TunnelReg.Status);
  } else if (kind == FabricEventKind.RttChanged) {
    if (p.state == LinkState.Active) updateRto(tunnel, arg);
  } else if (kind == FabricEventKind.TxSaSwitched) {
    if (inSession(p.state)) keys.onTxSwitched(tunnel, arg);
  } else if (kind == FabricEventKind.RxSaInUse) {
    if (inSession(p.state)) keys.onRxInUse(tunnel, arg);
  } else if (kind == FabricEventKind.PathSilent || kind == FabricEventKind.PathHeard) {
    if (inSession(p.state)) paths.onPathEvent(tunnel, arg as i32, kind == FabricEventKind.PathSilent);
  } else if (kind == FabricEventKind.PeerHeard && p.state == LinkState.Recovery) {
    // The peer is back in this session: restart retransmission now, without back-off.
    fabric.kick(tunnel, p);
    p.retryExhausted = false;
    enter(tunnel, LinkState.Active, 0);
  }
}

export function onRegValue(address: u32, value: u32): void {
  const index = fabric.portOf(address);
  if (!started || index < 0 || index >= config.ports) return;
  const reg = fabric.regOf(address);
  const p = port(index);
  if (fabric.isSecy(address)) {
    if (reg == SecyReg.Status && inSession(p.state)) keys.onStatus(index, value);
    return;
  }
  if (reg == TunnelReg.Status) {
    // A probe's answer is news for Recovery alone: after a resume it is stale.
    const probe = p.probes > 0;
    if (probe) p.probes--;
    if (probe && p.state != LinkState.Recovery) return;
    if (p.state == LinkState.Configure && !p.fabricReady) {
      if ((value & TunnelStatus.Enabled) == 0) return fail(index, RejectReason.ConfigureFailed, true);
      p.fabricReady = true;
      sendReady(index, 0);
      if (p.peerReady) enter(index, LinkState.Active, 0);
    } else if (p.state == LinkState.Active) {
      // An adopted session's health, or a retry limit's: trouble while no firmware listened, or still now.
      if ((value & TunnelStatus.Silent) != 0) enter(index, LinkState.Recovery, FabricEventKind.PeerSilent);
      else if ((value & TunnelStatus.RetryExhausted) != 0) enter(index, LinkState.Recovery, FabricEventKind.RetryLimit);
    } else if (p.state == LinkState.Recovery) {
      if ((value & (TunnelStatus.Silent | TunnelStatus.Stalled | TunnelStatus.RetryExhausted)) == 0) enter(index, LinkState.Active, 0);
      else if ((value & TunnelStatus.RetryExhausted) != 0) {
        p.attempts++;
        fabric.kick(index, p);
      }
    }
  }
}

/**
 * The retransmission timeout from RTT samples (docs/link.md, "Retransmission timeout"),
 * after RFC 6298: SRTT and RTTVAR smoothed with gains 1/8 and 1/4, then
 * RTO = SRTT + max(4 RTTVAR, 1 us) + ack delay, clamped to [RtoMinNs, RtoMaxNs].
 * The register is written only when the result moves by more than 1/8.
 */
function updateRto(index: i32, sample: u32): void {
  if (sample == 0) return;
  const p = port(index);
  if (p.srtt == 0) {
    p.srtt = sample;
    p.rttvar = sample >> 1;
  } else {
    const delta = p.srtt > sample ? p.srtt - sample : sample - p.srtt;
    p.rttvar = ((3 * (p.rttvar as u64) + delta) >> 2) as u32;
    p.srtt = ((7 * (p.srtt as u64) + sample) >> 3) as u32;
  }
  let rto = (p.srtt as u64) + max<u64>(4 * (p.rttvar as u64), 1000) + p.ackDelayNs;
  rto = min<u64>(max<u64>(rto, LinkTiming.RtoMinNs), LinkTiming.RtoMaxNs);
  const change = rto > p.rto ? rto - p.rto : p.rto - rto;
  if (change * 8 <= p.rto) return;
  p.rto = rto as u32;
  fabric.write(index, TunnelReg.RtoNs, p.rto);
  count(Counter.RtoUpdates);
}

// ---- Reassignment (docs/management.md) -----------------------------------------------

/** A group change is under way: the card has not settled in its new group yet. */
export function reassigning(): bool {
  return pendingGroup != 0;
}

/**
 * Management moved the card to `group` (already saved in flash). A chassis card with an
 * active session asks its host card to release the slots (RELEASE) and moves once the host
 * card closes the session, or after RELEASE_TIMEOUT_NS. Otherwise the card ends its sessions
 * and handshakes at once, and discovers in the new group.
 */
export function reassign(group: u32): void {
  pendingGroup = group;
  if (!started) return applyGroup();
  if (!isHost() && port(0).state == LinkState.Active) {
    releasing = true;
    sendRelease();
    timers.start(TimerId.PortHealth, LinkTiming.ReleaseRepeatNs);
    timers.start(TimerId.PortState, RELEASE_TIMEOUT_NS);
    begin(LogLevel.Info, 0);
    log.str("asking ");
    logPeer(0);
    log.str(" to release the slots");
    log.end();
    return;
  }
  for (let i = 0; i < config.ports; i++) {
    const s = port(i).state;
    if (inSession(s)) enter(i, LinkState.Down, RejectReason.Reassigned);
    else if (inHandshake(s)) enter(i, LinkState.Discover, RejectReason.Reassigned);
  }
  applyGroup();
}

/** Chassis card: RELEASE to the host card of the session (sent again every ReleaseRepeatNs, HandshakeAttempts times in all). */
function sendRelease(): void {
  const p = port(0);
  const body = frames.begin(p.ethPort, field(0, PEER_MAC), ControlType.Release, p.version, p.session);
  store<u8>(body + ReasonBody.Reason, RejectReason.Reassigned as u8);
  frames.send(ReasonBody.Size);
  p.attempts++;
}

/** The card takes its new group: CONTROL frames of that VLAN only, a fresh discovery. */
function applyGroup(): void {
  config.setGroup(pendingGroup);
  pendingGroup = 0;
  releasing = false;
  penalty.reset();
  if (!started) return;
  tx.regWrite(CardReg.ControlVlan, config.group);
  log.info();
  log.str("link: now in group ");
  log.dec(config.group);
  log.end();
  if (discovering()) wakeBeacon();
}

/** Host card: the chassis card of a session asks for its slots back (it moves to another group). */
function onRelease(): void {
  const index = peerPort();
  if (!isHost() || index < 0) return ignored();
  const p = port(index);
  if (p.state != LinkState.Active || frames.session != p.session || vswitch.releasing(index)) return ignored();
  begin(LogLevel.Info, index);
  logPeer(index);
  log.str(" moves to another group; releasing its slots");
  log.end();
  // The server's view decides how: ask how long each of its ports has been idle.
  if (!vswitch.releasePorts(index)) enter(index, LinkState.Down, RejectReason.Released);
}

/**
 * Host card: every port of tunnel `index` answered its idle time. All idle: the server is
 * asked for an orderly removal (the attention button); otherwise the slots go at once, a
 * surprise removal, as a pulled cable would.
 */
export function onPortsIdle(index: i32): void {
  if (port(index).state != LinkState.Active) return;
  if (vswitch.pressButtons(index)) {
    begin(LogLevel.Info, index);
    log.str("slots idle: attention button pressed, waiting for the server to remove them");
    log.end();
  } else enter(index, LinkState.Down, RejectReason.Released);
}

/** Host card: the server finished the orderly removal of every slot of tunnel `index`. */
export function onReleased(index: i32): void {
  if (port(index).state != LinkState.Active) return;
  count(Counter.Releases);
  enter(index, LinkState.Down, RejectReason.Released);
}
