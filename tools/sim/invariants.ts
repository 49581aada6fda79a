// The fleet invariants a world checks during every run (docs/scenarios.md#invariants). It
// watches, without changing anything: every TLP a tunnel hands to a chassis device or to a
// server's switch router (with the frame it came in), every LinkState a firmware writes, every
// reset of a card's fabric, every CONTROL frame a firmware sends; and at the end it compares
// what it saw with the firmware's own counters and with what each server has enumerated.
//
// - No cross-delivery: the frame that carried a delivered TLP comes from the card the receiving
//   tunnel is paired with, in the same group, in the same session (board/ethernet frame bytes,
//   tunnel registers, both MACs' ControlVlan).
// - Devices reset between owners: a chassis card's session with a host card other than its
//   last one begins only after each of its devices' fundamental resets (Endpoint.resets) went
//   up since the previous session ended.
// - Every server sees only its own devices, at the end of the run (a device of a chassis card
//   that lost its session while the host card still rides it out, the grace window, included).
// - Counters consistent, at the end of the run: both ends of every session saw it start; each
//   card's LinkUps, ManageRequests and (host cards) MsiSent since its last reset match what
//   the world had seen of them when the card reported them.

import { CardRole, HashOp } from "../../board/map/mailbox.ts";
import { LinkState, LinkTiming, ControlType, ControlHeader } from "../../board/map/link.ts";
import { CardReg, SwitchControl, SwitchReg, SWITCH_BASE, SWITCH_STRIDE, TunnelReg } from "../../board/map/registers.ts";
import { SWITCH_DOWNSTREAM_PORTS } from "../../board/map/pcie.ts";
import { ETHERTYPE_IOV, macKey, payloadOffset, vlanOf } from "../../board/ethernet/frame.ts";
import { FrameKind, TUNNEL_HEADER } from "../../board/tunnel/wire.ts";
import { routingId } from "../../board/pcie/tlp.ts";
import { Endpoint } from "../../board/pcie/endpoint.ts";
import type { Card } from "../../board/card.ts";
import type { HashCommand } from "../../board/hash-engine.ts";
import type { Fabric } from "../../board/fabric.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import type { SlotDevice } from "../../board/pcie/chassis-root.ts";
import { functionName, type OperatingSystem } from "../server/os.ts";
import type { Level } from "./timeline.ts";
import type { Assignment, Owner } from "./summary.ts";

/** A card as the audit knows it. */
export interface AuditedCard {
  name: string;
  role: CardRole;
  card: Card;
  fabric: Fabric;
  /** Its port 0's MAC as a number (macKey). */
  mac: number;
}

/** The addresses of every Ethernet port of a card, as numbers (macKey). */
function addresses(card: AuditedCard): number[] {
  return card.fabric.macs.map((mac) => macKey(mac.address));
}

/** A server as the audit knows it. */
export interface AuditedServer {
  name: string;
  host: string;
  os: OperatingSystem;
}

export interface AuditHost {
  now(): number;
  /** A line for the timeline. */
  report(card: string, text: string, level: Level): void;
  /** The devices in a chassis card's slots (null: empty slot). */
  devices(chassis: string): (SlotDevice | null)[];
  servers(): AuditedServer[];
}

/**
 * A TLP is delivered while the frame that carried it is being received, or later, when the
 * tunnel releases the frame from its reorder buffer. The audit remembers, per card, the
 * headers of DATA frames none of whose TLPs came out while they were received (held back, or
 * dropped), up to this many, oldest forgotten first. It holds their buffers only weakly: a
 * frame's bytes live in a slab shared with other frames (board/bytes.ts), which the audit
 * must not keep alive.
 */
export const HELD_FRAMES = 4096;

/** What a received frame's headers say, and where its bytes are. */
interface FrameInfo {
  buffer: WeakRef<ArrayBufferLike> | ArrayBufferLike;
  start: number;
  end: number;
  /** Destination and source MAC (macKey), VLAN ID (0: untagged), the tunnel header's kind and session. */
  destination: number;
  source: number;
  vid: number;
  kind: number;
  session: number;
}

/** The headers of a frame long enough to hold a tunnel header, else null. */
function frameInfo(frame: Uint8Array, weak: boolean): FrameInfo | null {
  if (frame.length < 18 + TUNNEL_HEADER) return null;
  const at = payloadOffset(frame);
  if (((frame[at - 2] << 8) | frame[at - 1]) !== ETHERTYPE_IOV) return null;
  return {
    buffer: weak ? new WeakRef(frame.buffer) : frame.buffer,
    start: frame.byteOffset,
    end: frame.byteOffset + frame.length,
    destination: macKey(frame, 0),
    source: macKey(frame, 6),
    vid: vlanOf(frame),
    kind: frame[at + 1],
    session: ((frame[at + 4] << 24) | (frame[at + 5] << 16) | (frame[at + 6] << 8) | frame[at + 7]) >>> 0,
  };
}

/** Everything a card's MAC and tunnels have counted, summed: it moves with every frame they take or drop. */
function counted(card: AuditedCard): number {
  let n = 0;
  for (const mac of card.fabric.macs) for (const value of Object.values(mac.counters)) n += value;
  for (const tunnel of card.fabric.tunnels) for (const value of tunnel.counters) n += value;
  return n;
}

/** Cross-deliveries and unreset handovers described on the timeline; the rest are only counted. */
export const DESCRIBED = 5;

/**
 * A session that became Active this close to the end of the run may not have reached its
 * other end yet: the last READY of a handshake is a frame's flight away, and the peer's
 * soft-core takes it when it has finished what it is busy with and run the batch (milliseconds
 * at 100 MHz). The handshake itself waits this long for an answer before it sends again.
 */
export const SESSION_SLACK_NS = LinkTiming.HandshakeTimeoutNs;

/**
 * How long a half-open session may last: one end went Active with the peer's READY while the
 * peer's own Active never came (every READY of its lost: under a flap train), so the peer gave
 * the handshake up after its last send; the end that is Active then hears nothing and goes Down
 * when its grace window ends. Two generals: no handshake can rule it out, only bound it.
 */
export const HALF_OPEN_NS = LinkTiming.HandshakeTimeoutNs * LinkTiming.HandshakeAttempts + LinkTiming.GraceNs + 5_000_000;

/** The label a management reply's tag begins with (docs/management.md#authentication-and-replay). */
const REPLY_LABEL = [0x49, 0x4f, 0x56, 0x72]; // "IOVr"

interface Session {
  card: string;
  peer: string | null;
  session: number;
  timeNs: number;
  /** When the card left it (its link state no longer Active or Recovery, or its fabric reset); null while live. */
  endNs: number | null;
  /** The card's fabric resets before this session (its counters started again at each). */
  epoch: number;
}

const live = (state: number) => state === LinkState.Active || state === LinkState.Recovery;
const hex8 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, "0")}`;
const seconds = (ns: number) => `${(ns / 1e9).toFixed(6)} s`;

export class FleetAudit {
  crossDeliveries = 0;
  unresetHandovers = 0;
  /** TLPs checked for cross-delivery. */
  deliveries = 0;
  /** Each chassis card's owners over time; `host: null` from when a session ended. */
  readonly owners = new Map<string, Owner[]>();
  readonly assignments: Assignment[] = [];
  private readonly byMac = new Map<number, AuditedCard>();
  private readonly byName = new Map<string, AuditedCard>();
  private readonly tunnelOf = new Map<TunnelEngine, AuditedCard>();
  private readonly states = new Map<TunnelEngine, number>();
  private readonly sessions: Session[] = [];
  /** Per card: each session it went active in, with whom and in which group. */
  private readonly opened = new Map<AuditedCard, Map<number, { peer: AuditedCard | null; group: number }>>();
  /**
   * Per card: fabric resets so far, management replies it sent since the last, replies whose tag
   * its hash engine is computing (taken requests not answered yet: one at a time), its server's
   * hot-plug interrupts at the last reset.
   */
  private readonly epochs = new Map<string, { epoch: number; replies: number; signing: number; interruptsBase: number }>();
  /** Per card: hash contexts started (HMAC or SHA-256) whose first bytes have not come yet. */
  private readonly freshContexts = new Map<string, Set<number>>();
  /** Per card: what the world had seen of its counters when its firmware's last counters report took effect. */
  private readonly atReport = new Map<string, { ups: number; replies: number; signing: number; owed: number; handled: number }>();
  /** Per chassis card: its last owner, and its devices' resets when that session began or, once seen, ended. */
  private readonly lastOwner = new Map<string, { host: string | null; resets: number[] }>();
  /**
   * Frames a rogue station sent (tools/sim/attacker.ts), and what became of them: validated by a
   * SecY with a new PN or delivering a TLP (`accepted`: must stay 0), or validated as a duplicate
   * inside the replay window, which the tunnel then drops (MACsec lets those through by design).
   */
  injected: WeakSet<Uint8Array> | null = null;
  /** Of those, the cards' own frames resent unchanged: validated with a new PN they are `relayed` (a frame the network had lost, taken once), not accepted. */
  verbatim: WeakSet<Uint8Array> | null = null;
  /**
   * `reached`: its frames that reached a card's MAC (the others the network dropped: a cable down);
   * `uncounted`: of those, frames no counter of the card's MAC or tunnels counted (must stay 0).
   */
  readonly attack = { accepted: 0, validatedReplays: 0, relayed: 0, reached: 0, uncounted: 0 };
  private currentInjected = false;
  private currentVerbatim = false;
  /** The frame a card's MAC is being handed now, and whether a TLP of it came out meanwhile. */
  private current: Uint8Array | null = null;
  private currentInfo: FrameInfo | null = null;
  private currentDelivered = false;
  /** Per card: DATA frames received whose TLPs did not come out at once (HELD_FRAMES at most). */
  private readonly held = new Map<AuditedCard, FrameInfo[]>();

  constructor(private readonly host: AuditHost, cards: AuditedCard[]) {
    for (const card of cards) {
      for (const address of addresses(card)) this.byMac.set(address, card);
      this.byName.set(card.name, card);
      for (const tunnel of card.fabric.tunnels) this.tunnelOf.set(tunnel, card);
      this.epochs.set(card.name, { epoch: 0, replies: 0, signing: 0, interruptsBase: 0 });
      this.freshContexts.set(card.name, new Set());
      this.held.set(card, []);
      if (card.role === CardRole.Chassis) this.owners.set(card.name, []);
    }
  }

  private group(card: AuditedCard): number {
    return card.fabric.readRegister(CardReg.ControlVlan);
  }

  private resets(chassis: string): number[] {
    return this.host.devices(chassis).map((d) => (d instanceof Endpoint ? d.resets : 0));
  }

  // ---- during the run ---------------------------------------------------------------------

  /** `card`'s MAC (`mac`) is handed `frame` from its cable. */
  receiving(card: AuditedCard, frame: Uint8Array, mac: { receive(frame: Uint8Array): void }): void {
    const outer = this.current;
    const outerInfo = this.currentInfo;
    const outerDelivered = this.currentDelivered;
    const outerInjected = this.currentInjected;
    const outerVerbatim = this.currentVerbatim;
    this.currentInjected = this.injected?.has(frame) ?? false;
    this.currentVerbatim = this.verbatim?.has(frame) ?? false;
    this.current = frame;
    this.currentInfo = null;
    this.currentDelivered = false;
    const before = this.currentInjected ? counted(card) : 0;
    try {
      mac.receive(frame);
    } finally {
      if (this.currentInjected) {
        this.attack.reached++;
        if (counted(card) === before) this.attack.uncounted++;
      }
      // The frame as the card took it: from the cable, or its cleartext once MACsec validated it (unprotected()).
      const received = this.current;
      if (!this.currentDelivered) {
        const info = frameInfo(received, true);
        if (info && info.kind === FrameKind.Data && this.byMac.get(info.destination) === card) {
          const held = this.held.get(card)!;
          if (held.length >= HELD_FRAMES) held.shift();
          held.push(info);
        }
      }
      this.current = outer;
      this.currentInfo = outerInfo;
      this.currentDelivered = outerDelivered;
      this.currentInjected = outerInjected;
      this.currentVerbatim = outerVerbatim;
    }
  }

  /** The SecY of the card receiving now validated its MACsec frame: the TLPs it carries are views into `clear`. */
  unprotected(clear: Uint8Array, fresh: boolean): void {
    if (this.current === null) return;
    if (this.currentInjected) {
      if (!fresh) this.attack.validatedReplays++;
      else if (this.currentVerbatim) this.attack.relayed++;
      else this.attack.accepted++;
    }
    this.current = clear;
    this.currentInfo = null;
  }

  /** The headers of the received frame `tlp` is a view into: the one being received, or one held back; null when none is. */
  private frameOf(card: AuditedCard, tlp: Uint8Array): FrameInfo | null {
    const start = tlp.byteOffset;
    const end = start + tlp.length;
    const f = this.current;
    if (f !== null && f.buffer === tlp.buffer && f.byteOffset <= start && f.byteOffset + f.length >= end) {
      this.currentDelivered = true;
      return (this.currentInfo ??= frameInfo(f, false));
    }
    const held = this.held.get(card)!;
    for (let k = held.length - 1; k >= 0; k--) {
      const h = held[k];
      const buffer = h.buffer instanceof WeakRef ? h.buffer.deref() : h.buffer;
      if (buffer === tlp.buffer && h.start <= start && h.end >= end) return h;
    }
    return null;
  }

  /**
   * A tunnel of `receiver` delivered `tlp`, a view into the frame that carried it: that
   * frame's Ethernet header names the sender and the VLAN, its tunnel header the session.
   */
  delivered(receiver: AuditedCard, tunnel: TunnelEngine, tlp: Uint8Array, slot: number): void {
    this.deliveries++;
    if (this.currentInjected && !this.currentVerbatim && this.frameOf(receiver, tlp) === this.currentInfo) this.attack.accepted++;
    const problem = this.deliveryProblem(receiver, tunnel, tlp);
    if (problem === null) return;
    this.crossDeliveries++;
    if (this.crossDeliveries <= DESCRIBED) {
      this.host.report(receiver.name, `cross-delivery: a TLP for ${receiver.role === CardRole.Host ? "the server" : `slot ${slot}`} through tunnel ${tunnel.index}: ${problem}`, "error");
    }
  }

  private deliveryProblem(receiver: AuditedCard, tunnel: TunnelEngine, tlp: Uint8Array): string | null {
    const frame = this.frameOf(receiver, tlp);
    if (!frame) return "it is in no frame the card received";
    if (this.byMac.get(frame.destination) !== receiver || frame.kind !== FrameKind.Data) return "the frame that carried it is no DATA frame to this card";
    const { session, vid, source } = frame;
    const sender = this.byMac.get(source);
    if (!sender) return `it came from ${source.toString(16).padStart(12, "0")}, which is no card's address`;
    if (sender.role === receiver.role) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: a ${receiver.role === CardRole.Host ? "host" : "chassis"} card, as this one`;
    const group = this.group(receiver);
    if (vid !== group) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: this card is in group ${group}`;
    if (this.byMac.get(tunnel.peerKey()) !== sender) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: the tunnel is paired with ${this.byMac.get(tunnel.peerKey())?.name ?? "no card"}`;
    if (tunnel.readRegister(TunnelReg.Session) !== session) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: the tunnel's session is ${hex8(tunnel.readRegister(TunnelReg.Session))}`;
    // Configure too: the tunnel is enabled for the session, and the peer, Active with this card's
    // READY, may send before this card's own Active (the peer's READY) takes effect.
    const state = tunnel.readRegister(TunnelReg.LinkState);
    if (state !== LinkState.Configure && !live(state)) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: the tunnel's link is ${LinkState[tunnel.readRegister(TunnelReg.LinkState)]}`;
    // The sender went active in this session with this card, in this group (it may have left the
    // session since: a frame it sent before is still the session's).
    const theirs = this.opened.get(sender)?.get(session);
    if (theirs === undefined || theirs.peer !== receiver) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: the sender never went active in that session with this card`;
    if (theirs.group !== vid) return `from ${sender.name} on VLAN ${vid}, session ${hex8(session)}: the sender was in group ${theirs.group} in that session`;
    return null;
  }

  /** The firmware of `card` wrote LinkState `state` into `tunnel`. */
  linkState(card: AuditedCard, tunnel: TunnelEngine, state: number): void {
    const previous = this.states.get(tunnel) ?? LinkState.Disabled;
    this.states.set(tunnel, state);
    if (state === LinkState.Active && previous !== LinkState.Recovery && previous !== LinkState.Active) this.sessionStarted(card, tunnel);
    else if (live(previous) && !live(state)) this.sessionEnded(card, tunnel);
  }

  /** The card's fabric is reset (a reboot, the watchdog, an update, a power cut): its sessions end, its firmware's counters start again. */
  fabricReset(card: AuditedCard): void {
    for (const tunnel of card.fabric.tunnels) {
      if (live(this.states.get(tunnel) ?? LinkState.Disabled)) this.sessionEnded(card, tunnel);
      this.states.set(tunnel, LinkState.Disabled);
    }
    this.softcoreReset(card);
  }

  /** `card`'s soft-core is reset: a new firmware instance, its fabric (and the sessions in it) running on. */
  softcoreReset(card: AuditedCard): void {
    const e = this.epochs.get(card.name)!;
    e.epoch++;
    e.replies = 0;
    e.signing = 0;
    e.interruptsBase = this.interrupts(card.name);
    this.freshContexts.get(card.name)!.clear();
  }

  /** The firmware of `card` sends a CONTROL frame. */
  controlSent(card: AuditedCard, frame: Uint8Array): void {
    if (frame.length < 18 + TUNNEL_HEADER + ControlHeader.Size) return;
    const at = payloadOffset(frame) + TUNNEL_HEADER;
    if (frame[at + ControlHeader.Type] !== ControlType.ManageReply) return;
    const e = this.epochs.get(card.name)!;
    e.replies++;
    e.signing = Math.max(0, e.signing - 1);
  }

  /**
   * The firmware of `card` gives its hash engine a command. A context whose first bytes are a
   * management reply's label is the tag of a reply to a request the firmware has taken (and
   * counted in ManageRequests): owed until the reply is sent.
   */
  hashCommand(card: AuditedCard, command: HashCommand): void {
    const fresh = this.freshContexts.get(card.name)!;
    if (command.op === HashOp.Start || command.op === HashOp.StartHmac) {
      fresh.add(command.context);
      return;
    }
    if (!fresh.delete(command.context) || command.op !== HashOp.Update) return;
    const data = command.data;
    if (data.length >= REPLY_LABEL.length && REPLY_LABEL.every((b, i) => data[i] === b)) this.epochs.get(card.name)!.signing++;
  }

  /**
   * The firmware of card `name` reported its counters (its Card.firmwareCounters): they are
   * compared, at the end of the run, with what the world had seen by then. The soft-cores run
   * on after the run's time until every card has answered, and the others' answers come later.
   */
  countersReported(name: string): void {
    const e = this.epochs.get(name);
    if (!e) return;
    this.atReport.set(name, {
      ups: this.sessions.filter((s) => s.card === name && s.epoch === e.epoch).length,
      replies: e.replies,
      signing: e.signing,
      // A SetGroup is answered once its configuration record is in flash: one reply may still be owed while a move is under way.
      owed: this.assignments.some((a) => a.card === name && a.doneNs === null) ? 1 : 0,
      handled: this.interrupts(name) - e.interruptsBase,
    });
  }

  /** The station is told to move `card` to `to` (a scenario's assign action). */
  assigning(card: string, to: number): Assignment {
    const found = this.byName.get(card);
    const assignment: Assignment = { timeNs: this.host.now(), card, from: found ? this.group(found) : 0, to, doneNs: null, outcome: "pending" };
    this.assignments.push(assignment);
    return assignment;
  }

  /** The station's SetGroup for `assignment` ended: for a host card the move is done with it. */
  assigned(assignment: Assignment, error: Error | null): void {
    assignment.outcome = error ? error.message : "ok";
    const card = this.byName.get(assignment.card);
    if (!error && card?.role === CardRole.Host && assignment.doneNs === null) assignment.doneNs = this.host.now();
  }

  private sessionStarted(card: AuditedCard, tunnel: TunnelEngine): void {
    const now = this.host.now();
    const peer = this.byMac.get(tunnel.peerKey()) ?? null;
    const session = tunnel.readRegister(TunnelReg.Session);
    const group = this.group(card);
    this.sessions.push({ card: card.name, peer: peer?.name ?? null, session, timeNs: now, endNs: null, epoch: this.epochs.get(card.name)!.epoch });
    let opened = this.opened.get(card);
    if (!opened) this.opened.set(card, (opened = new Map()));
    opened.set(session, { peer, group });
    if (card.role !== CardRole.Chassis) return;
    const resets = this.resets(card.name);
    const last = this.lastOwner.get(card.name);
    if (last && last.host !== (peer?.name ?? null)) {
      const devices = this.host.devices(card.name);
      const stale = resets.map((n, slot) => ({ n, slot, was: last.resets[slot] ?? 0 })).filter((d) => devices[d.slot] && d.n <= d.was);
      if (stale.length > 0) {
        this.unresetHandovers++;
        if (this.unresetHandovers <= DESCRIBED) {
          this.host.report(card.name, `handed from ${last.host ?? "no host card"} to ${peer?.name ?? "an unknown card"} without a reset of the device${stale.length > 1 ? "s" : ""} in slot${stale.length > 1 ? "s" : ""} ${stale.map((d) => d.slot).join(", ")} (resets: ${stale.map((d) => `${d.was} then, ${d.n} now`).join("; ")})`, "error");
        }
      }
    }
    this.lastOwner.set(card.name, { host: peer?.name ?? null, resets });
    this.owners.get(card.name)!.push({ timeNs: now, host: peer?.name ?? null, group });
    for (const a of this.assignments) if (a.card === card.name && a.doneNs === null && a.to === group) a.doneNs = now;
  }

  private sessionEnded(card: AuditedCard, tunnel: TunnelEngine): void {
    const session = tunnel.readRegister(TunnelReg.Session);
    for (const s of this.sessions) if (s.card === card.name && s.session === session && s.endNs === null) s.endNs = this.host.now();
    if (card.role !== CardRole.Chassis) return;
    const last = this.lastOwner.get(card.name);
    if (last) last.resets = this.resets(card.name);
    this.owners.get(card.name)!.push({ timeNs: this.host.now(), host: null, group: this.group(card) });
  }

  /** Hot-plug interrupts the server of host card `name` has handled for the card's switch ports (not for its own root port's slot), all together. */
  private interrupts(name: string): number {
    const server = this.host.servers().find((s) => s.host === name);
    return server ? server.os.hotplugCounters((port) => port.bus !== 0).interrupts : 0;
  }

  // ---- at the end ---------------------------------------------------------------------------

  /** The host card `host` is paired with `chassis` now (both ends live, the same session and group), through which of its tunnels. */
  private pairedTunnel(host: AuditedCard, chassis: AuditedCard): TunnelEngine | null {
    const c = chassis.fabric.tunnels[0];
    if (!live(c.readRegister(TunnelReg.LinkState)) || this.byMac.get(c.peerKey()) !== host) return null;
    if (this.group(host) !== this.group(chassis)) return null;
    const session = c.readRegister(TunnelReg.Session);
    return host.fabric.tunnels.find((t) => this.byMac.get(t.peerKey()) === chassis && t.readRegister(TunnelReg.Session) === session && live(t.readRegister(TunnelReg.LinkState))) ?? null;
  }

  /** Every invariant checked at the end of the run: one line per violation. */
  finish(endNs: number): string[] {
    const out: string[] = [];
    if (this.crossDeliveries > 0) out.push(`${this.crossDeliveries} TLP(s) delivered across pairings or groups (cross-deliveries; the first ${Math.min(DESCRIBED, this.crossDeliveries)} on the timeline)`);
    if (this.unresetHandovers > 0) out.push(`${this.unresetHandovers} chassis handover(s) to a new host card without a reset of every device`);
    this.checkSessions(out, endNs);
    this.checkCounters(out);
    this.checkServers(out);
    return out;
  }

  private checkSessions(out: string[], endNs: number): void {
    const seen = new Set(this.sessions.map((s) => `${s.card}|${s.peer}|${s.session}`));
    for (const s of this.sessions) {
      if (s.peer === null) {
        out.push(`${s.card} had session ${hex8(s.session)} from ${seconds(s.timeNs)} with a peer that is no card of the scenario`);
        continue;
      }
      if (s.timeNs > endNs - SESSION_SLACK_NS) continue;
      const halfOpen = s.endNs !== null && s.endNs - s.timeNs <= HALF_OPEN_NS;
      if (!seen.has(`${s.peer}|${s.card}|${s.session}`) && !halfOpen) out.push(`${s.card} had session ${hex8(s.session)} with ${s.peer} from ${seconds(s.timeNs)}, but ${s.peer} never went active in it`);
    }
  }

  /** Each running card's counters against what the world had seen when the card reported them (countersReported). */
  private checkCounters(out: string[]): void {
    for (const card of this.byName.values()) {
      const fw = card.card.firmwareCounters;
      const seen = this.atReport.get(card.name);
      if (card.card.state !== "running" || !fw || !seen) continue;
      if (fw.LinkUps !== seen.ups) out.push(`${card.name} counted ${fw.LinkUps} link up(s) since its last reset, the world saw ${seen.ups} session(s) start`);
      // Taken and answered, or taken and answer being signed; a SetGroup's answer may wait for the flash.
      const answered = seen.replies + seen.signing;
      if (fw.ManageRequests !== answered && fw.ManageRequests !== answered + seen.owed) {
        out.push(`${card.name} counted ${fw.ManageRequests} management request(s) taken since its last reset, but sent ${seen.replies} repl${seen.replies === 1 ? "y" : "ies"}${seen.signing ? ` (${seen.signing} more being signed)` : ""}`);
      }
      if (card.role === CardRole.Host && this.host.servers().some((s) => s.host === card.name)) {
        if (fw.MsiSent !== seen.handled) out.push(`${card.name} sent ${fw.MsiSent} hot-plug MSI(s) since its last reset, its server's pciehp handled ${seen.handled}`);
      }
    }
  }

  private checkServers(out: string[]): void {
    for (const server of this.host.servers()) {
      const host = this.byName.get(server.host);
      if (!host?.fabric.router) continue;
      const router = host.fabric.router;
      const reg = (port: number, r: SwitchReg) => router.readRegister(SWITCH_BASE + port * SWITCH_STRIDE + r);
      for (const fn of server.os.functions) {
        if (fn.bridge || fn.removed || fn.disconnected) continue;
        const what = `${server.name} has ${functionName(fn)} [${fn.vendorId.toString(16).padStart(4, "0")}:${fn.deviceId.toString(16).padStart(4, "0")}]`;
        let port = 0;
        for (let p = 1; p <= SWITCH_DOWNSTREAM_PORTS && port === 0; p++) {
          const buses = reg(p, SwitchReg.Buses);
          const secondary = (buses >>> 8) & 0xff;
          if ((reg(p, SwitchReg.Control) & SwitchControl.Forward) !== 0 && secondary !== 0 && fn.bus >= secondary && fn.bus <= ((buses >>> 16) & 0xff)) port = p;
        }
        if (port === 0) {
          out.push(`${what}, but no port of ${host.name} forwards to bus ${fn.bus}`);
          continue;
        }
        const binding = reg(port, SwitchReg.Binding);
        const tunnel = host.fabric.tunnels[binding & 0xff];
        const slot = (binding >>> 8) & 0xff;
        const chassis = tunnel ? this.byMac.get(tunnel.peerKey()) : undefined;
        if (!chassis || chassis.role !== CardRole.Chassis) {
          out.push(`${what} through port ${port} of ${host.name}, whose tunnel ${binding & 0xff} has no chassis card`);
          continue;
        }
        if (this.pairedTunnel(host, chassis) !== tunnel) {
          // The grace window: the chassis card lost the session (a power cut, a reboot) and the
          // host card still rides it out (Active until it notices, then Recovery), holding what
          // the server sends; the server keeps the device until the host card declares the link
          // Down. Nothing crosses meanwhile (the cross-delivery audit would say so).
          if (live(tunnel.readRegister(TunnelReg.LinkState)) && !live(chassis.fabric.tunnels[0].readRegister(TunnelReg.LinkState))) continue;
          const owner = chassis.fabric.tunnels[0].peerKey();
          out.push(`${what} in slot ${slot} of ${chassis.name}, which is paired with ${this.byMac.get(owner)?.name ?? "no host card"} in group ${this.group(chassis)}, not with ${host.name} in group ${this.group(host)}`);
          continue;
        }
        const device = this.host.devices(chassis.name)[slot] ?? null;
        if (!(device instanceof Endpoint)) {
          out.push(`${what} in slot ${slot} of ${chassis.name}, which holds no device`);
          continue;
        }
        if (device.routingId !== routingId(fn.bus, fn.device, fn.fn) || device.header.vendorId.get() !== fn.vendorId) {
          out.push(`${what} in slot ${slot} of ${chassis.name}, but the device there was not configured as that function since its last reset`);
        }
      }
    }
  }
}
