// The tunnel engine: the fabric's per-TLP data path between one local PCIe port and one
// peer card. It is the executable specification of the RTL block (docs/wire-format.md,
// docs/registers.md, docs/tunnel.md). Everything it does per frame or per TLP is here;
// everything per event (when to enable, what timeout to use, when the link is down) is
// the firmware's, through the registers of its block.
//
// Transmit: TLPs queue per flow-control class. When the card's MAC asks for a frame
// (the port is idle), the engine sends, in priority order, a due ACK or KEEPALIVE, a
// retransmission, or a new DATA frame packed with as many TLPs as the MTU, the credits
// and the window allow. A lone TLP therefore leaves at once when the port is idle, and
// TLPs that arrive while a frame is on the wire ride in the next one.
// Receive: frames are checked (session, sequence window, records), delivered in sequence
// order exactly once, and acknowledged cumulatively with SACK blocks, coalesced.

import {
  TunnelReg, TunnelControl, TunnelStatus, TunnelCounter, TunnelDefault, FabricEventKind, MTU_MIN, MTU_MAX, MACSEC_OVERHEAD, PORTS, PathReg, PathControl, PathStatus,
} from "../map/registers.ts";
import { LINK_STATE_LAST } from "../map/link.ts";
import { ETHERTYPE_IOV, ETHERTYPE_VLAN, HEADER_SIZE, VLAN_TAG_SIZE, FCS_SIZE, MIN_PAYLOAD, writeFcs, payloadOffset, congestionMarked } from "../ethernet/frame.ts";
import { TlpClass, DATA_CREDIT_BYTES, tlpClass, tlpBytes, dataBytes, dataCredits } from "../pcie/tlp.ts";
import type { Scheduler } from "../scheduler.ts";
import type { FrameSink } from "../ethernet/mac.ts";
import { allocBytes, copyBytes } from "../bytes.ts";
import { CreditGate, CreditPool, CLASSES } from "./credits.ts";
import { Path } from "./path.ts";
import { CongestionWindow, WindowChange, WindowState, type WindowLimits } from "./congestion.ts";
import { Secy } from "../macsec/secy.ts";
import type { SecTag } from "../macsec/frame.ts";
import {
  FrameKind, TUNNEL_HEADER, RECORD_HEADER, RECORD_SIZE_MASK, RECORD_SLOT_SHIFT, RECORD_SLOTS, MAX_SACK, seqDiff, writeHeader, ackBodySize, writeAckBody,
  readHeader, readAckBody, ECHO_MODULUS, type SackBlock,
} from "./wire.ts";

/** What the engine needs from the card around it. */
export interface TunnelHost {
  readonly scheduler: Scheduler;
  /** The address of the card's Ethernet port `port`: the source of the frames the engine sends there. */
  portAddress(port: number): Uint8Array;
  /** Whether port `port` could put a frame on the wire now (carrier, nothing being sent or queued). */
  portIdle(port: number): boolean;
  /** The engine has a frame to send: the card's MACs should call nextFrame() when their ports are idle. */
  transmitReady(): void;
  /** A TLP received in order, for the local PCIe side, with the chassis slot its record names. */
  deliver(tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number): void;
  /** An event for the firmware. */
  event(kind: FabricEventKind, arg: number, tunnel: TunnelEngine): void;
  /**
   * A TLP the engine throws away because its session ended: queued and never sent (a flush), or
   * sent and not yet acknowledged, or `received` out of order and held (a session reset). Neither
   * end will deliver it any more.
   */
  discarded?(tlp: Uint8Array, slot: number, tunnel: TunnelEngine, received: boolean): void;
  /** The SecY validated a MACsec frame: `clear` is the frame the engine takes now, `fresh` whether its PN was new (for observers: the audit). */
  unprotected?(clear: Uint8Array, fresh: boolean): void;
}

/** The TLP records of the DATA body of `length` bytes at `at` in `frame`: each TLP (a view) and its chassis slot. */
function* records(frame: Uint8Array, at: number, length: number): Generator<{ tlp: Uint8Array; slot: number }> {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  for (let p = at, end = at + length; p < end;) {
    const record = view.getUint16(p);
    const size = record & RECORD_SIZE_MASK;
    yield { tlp: frame.subarray(p + RECORD_HEADER, p + RECORD_HEADER + size), slot: record >> RECORD_SLOT_SHIFT };
    p += RECORD_HEADER + size;
  }
}

/** The records of a DATA frame this engine built (Ethernet header, tunnel header, body). */
function frameRecords(frame: Uint8Array): Generator<{ tlp: Uint8Array; slot: number }> {
  const at = payloadOffset(frame);
  const length = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint16(at + 2);
  return records(frame, at + TUNNEL_HEADER, length);
}

/** Register defaults at reset, from TunnelDefault whose names are the registers' (docs/registers.md explains each for a 10GbE link). */
export const TUNNEL_DEFAULTS: Partial<Record<TunnelReg, number>> = Object.fromEntries(
  Object.entries(TunnelDefault)
    .filter(([, value]) => typeof value === "number")
    .map(([name, value]) => [TunnelReg[name as keyof typeof TunnelReg], value]),
);

const REGISTER_WORDS = 0x100 / 4;
const FAST_RETRANSMIT_THRESHOLD = 3; // frames received beyond a hole before it is resent
const MAX_BACKOFF_SHIFT = 3;
/** The congestion window a session starts with, in frames of Mtu bytes (docs/congestion.md). */
const INITIAL_WINDOW_FRAMES = 2;
/** Pacing runs ahead of the window's rate by these factors: 2 in slow start, 1.25 after (docs/congestion.md). */
const PACING_GAIN_SLOW_START = 2;
/** Under congestion control a DATA frame carries at most 1/FRAMES_PER_WINDOW of the window. */
const FRAMES_PER_WINDOW = 4;
const PACING_GAIN = 1.25;
/** Sequence numbers further ahead than this are outside the window whatever the buffer. */
const SEQ_WINDOW = 1 << 16;

interface Sent {
  seq: number;
  frame: Uint8Array;
  /** The port of the path it went on last. */
  path: number;
  sentAt: number;
  transmissions: number;
  sacked: boolean;
  /** Queued for retransmission and not yet resent. */
  pending: boolean;
}

interface Held {
  frame: Uint8Array;
  body: number; // offset of the DATA body in `frame`
  length: number;
}

/** One FIFO of TLPs of a class, with submission order numbers for the ordering rules. */
class TlpQueue {
  tlps: Uint8Array[] = [];
  order: number[] = [];
  slots: number[] = [];
  head = 0;

  get size(): number {
    return this.tlps.length - this.head;
  }

  push(tlp: Uint8Array, order: number, slot: number): void {
    this.tlps.push(tlp);
    this.order.push(order);
    this.slots.push(slot);
  }

  clear(): void {
    this.tlps = [];
    this.order = [];
    this.slots = [];
    this.head = 0;
  }

  shift(): void {
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.tlps.length) {
      this.tlps = this.tlps.slice(this.head);
      this.order = this.order.slice(this.head);
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }
}

export class TunnelEngine implements FrameSink {
  readonly counters = new Array<number>(TunnelCounter.Count).fill(0);
  private readonly regs = new Uint32Array(REGISTER_WORDS);
  private readonly queues = [new TlpQueue(), new TlpQueue(), new TlpQueue()];
  private submitted = 0;
  /** Bytes of the TLPs queued to send per class (QueueBytes each), and which classes are full. */
  private readonly queuedBytes = [0, 0, 0];
  private readonly queueFull = [false, false, false];
  /** What feeds the send queue and waits while it is full (onRoom). */
  private readonly roomListeners: (() => void)[] = [];
  private readonly gate = new CreditGate();
  private readonly pool = new CreditPool();
  private stalled = [false, false, false];

  // Transmit state.
  private nextSeq = 0;
  private sndUna = 0;
  private readonly sent = new Map<number, Sent>();
  /** Where DATA frames are packed before they are copied out at their own size. */
  private packing = new Uint8Array(0);
  private replayBytes = 0;
  private readonly resend: number[] = [];
  private consecutiveTimeouts = 0;
  private duplicateAcks = 0;
  private recoverSeq = 0;
  /** The congestion window (TunnelControl.CongestionControl), and what feeds it. */
  private readonly cwnd = new CongestionWindow();
  /** The peer's last echo of marked frames, and the marks it echoed since the window last heard of them. */
  private echoSeen = 0;
  private marksEchoed = 0;
  /** The window or the pacing held back a frame since the last acknowledgement: it limits the sender and may grow. */
  private windowLimited = false;
  /** Under congestion control, new DATA frames are paced: the next may start at paceAt (docs/congestion.md, "Pacing"). */
  private paceAt = 0;
  private paceTimer: number | null = null;

  // Receive state.
  private rcvNext = 0;
  /** DATA frames received marked congestion experienced this session: echoed mod ECHO_MODULUS in every ACK and KEEPALIVE. */
  private marksReceived = 0;
  private readonly held = new Map<number, Held>();
  private heldBytes = 0;
  private unacked = 0;
  /** Credits released since the last ACK or KEEPALIVE announced the limits. */
  private creditsReleased = false;
  private ackDue = false;
  private lastHeardAt = 0;

  private rtoTimer: number | null = null;
  private ackTimer: number | null = null;
  private silenceTimer: number | null = null;
  /** One path per Ethernet port of the card: the first (TunnelReg.Port) is on while the tunnel is, another once its block enables it. */
  private readonly paths = Array.from({ length: PORTS }, (_, port) => new Path(port));
  /** RttChanged: the value last reported, when, and the report waiting for RttReportNs to pass. */
  private rttReported = 0;
  private rttReportedAt = -Infinity;
  private rttReportTimer: number | null = null;

  /** The tunnel's MAC Security Entity: protects what nextFrame() sends, validates what receiveMacsec() gets. */
  readonly secy: Secy;

  constructor(readonly index: number, private readonly host: TunnelHost) {
    for (const [reg, value] of Object.entries(TUNNEL_DEFAULTS)) this.regs[Number(reg) / 4] = value;
    this.secy = new Secy({
      now: () => this.now,
      count: (counter) => this.count(counter),
      event: (kind, arg) => this.host.event(kind, arg, this),
      transmitReady: () => {
        if (this.enabled) this.host.transmitReady();
      },
    });
  }

  private reg(r: TunnelReg): number {
    return this.regs[r / 4];
  }

  private get now(): number {
    return this.host.scheduler.now;
  }

  get enabled(): boolean {
    return (this.reg(TunnelReg.Status) & TunnelStatus.Enabled) !== 0;
  }

  /** Bytes of tunnel header and body a frame may carry: the Mtu, less what MACsec adds while it protects the tunnel. */
  private payloadMtu(): number {
    return this.reg(TunnelReg.Mtu) - (this.secy.protecting ? MACSEC_OVERHEAD : 0);
  }

  private get goBackN(): boolean {
    return (this.reg(TunnelReg.Control) & TunnelControl.GoBackN) !== 0;
  }

  private get congestionControl(): boolean {
    return (this.reg(TunnelReg.Control) & TunnelControl.CongestionControl) !== 0;
  }

  private setStatus(bit: TunnelStatus, on: boolean): void {
    const i = TunnelReg.Status / 4;
    this.regs[i] = on ? this.regs[i] | bit : this.regs[i] & ~bit;
  }

  private status(bit: TunnelStatus): boolean {
    return (this.reg(TunnelReg.Status) & bit) !== 0;
  }

  /**
   * The peer's address through port `port` as a number (see macKey), for the MAC's receive
   * demultiplexing: the first path's whether or not the tunnel is on (frames of a tunnel that is off
   * are counted there), another path's once its address is written; -1 for none. Without a port:
   * the first path's, the peer the session was made with.
   */
  peerKey(port = this.firstPort): number {
    const [high, low] = this.peerOf(port);
    if (port !== this.firstPort && high === 0 && low === 0) return -1;
    return (high & 0xffff) * 2 ** 32 + low;
  }

  /** PeerMacHigh and PeerMacLow of the path on port `port`. */
  private peerOf(port: number): [number, number] {
    if (port === this.firstPort) return [this.reg(TunnelReg.PeerMacHigh), this.reg(TunnelReg.PeerMacLow)];
    const path = this.paths[port];
    return path ? [path.peerHigh, path.peerLow] : [0, 0];
  }

  /** The port of the session's first path. */
  private get firstPort(): number {
    return this.reg(TunnelReg.Port);
  }

  /** The path on port `port` carries the session: the tunnel is on, and it is the first path or enabled. */
  private pathOn(port: number): boolean {
    return this.enabled && (port === this.firstPort || this.paths[port].enableBit);
  }

  /** Two paths or more carry the session: paths are watched one by one (PathSilent, PathHeard). */
  private get multipath(): boolean {
    let on = 0;
    for (let p = 0; p < PORTS; p++) if (this.pathOn(p)) on++;
    return on > 1;
  }

  /**
   * The path on `port` may carry DATA and ACK frames: it is on and, when the session has several,
   * not silent, unless every path is (an outage of them all: each is tried, as one path is in Recovery).
   */
  private carries(port: number): boolean {
    if (!this.pathOn(port) || !this.paths[port].heard) return false;
    if (!this.paths[port].silent) return true;
    for (let p = 0; p < PORTS; p++) if (this.pathOn(p) && this.paths[p].heard && !this.paths[p].silent) return false;
    return true;
  }

  /** Another path than `port` carries DATA now. */
  private carriedElsewhere(port: number): boolean {
    for (let p = 0; p < PORTS; p++) if (p !== port && this.carries(p) && !this.paths[p].silent) return true;
    return false;
  }

  /** The VLAN ID frames are tagged with (0: untagged). */
  vlan(): number {
    return this.reg(TunnelReg.Vlan) & 0xfff;
  }

  /** The 802.1p priority of its frames: the PCP of the Vlan register, 0 untagged. */
  priority(): number {
    return this.vlan() ? (this.reg(TunnelReg.Vlan) >> 13) & 7 : 0;
  }

  /** The session ID its frames carry. */
  session(): number {
    return this.reg(TunnelReg.Session);
  }

  // ---- Registers -----------------------------------------------------------------

  /** A register of the path block of port `port` (PathReg). */
  readPathRegister(port: number, offset: number): number {
    const path = this.paths[port];
    if (!path) return 0;
    switch (offset) {
      case PathReg.PeerMacHigh: return this.peerOf(port)[0];
      case PathReg.PeerMacLow: return this.peerOf(port)[1];
      case PathReg.Control: return path.control;
      case PathReg.Status: return (this.pathOn(port) ? PathStatus.Enabled : 0) | (this.pathOn(port) && path.silent ? PathStatus.Silent : 0);
      case PathReg.RttNs: return path.srtt >>> 0;
      case PathReg.TxFrames: return path.txFrames >>> 0;
      case PathReg.RxFrames: return path.rxFrames >>> 0;
      case PathReg.Resent: return path.resent >>> 0;
      default: return 0;
    }
  }

  /**
   * Writes a register of the path block of port `port`; false (and no change) for the first path's
   * block (the tunnel block programs it), read-only registers, an address written while the path is
   * on, and bad values.
   */
  writePathRegister(port: number, offset: number, value: number): boolean {
    value >>>= 0;
    const path = this.paths[port];
    if (!path || port === this.firstPort) return false;
    switch (offset) {
      case PathReg.PeerMacHigh:
      case PathReg.PeerMacLow:
        if (path.enableBit || (offset === PathReg.PeerMacHigh && value > 0xffff)) return false;
        if (offset === PathReg.PeerMacHigh) path.peerHigh = value;
        else path.peerLow = value;
        return true;
      case PathReg.Control: {
        if (value & ~PathControl.Enable) return false;
        const on = (value & PathControl.Enable) !== 0;
        if (on && path.peerHigh === 0 && path.peerLow === 0) return false;
        const was = this.pathOn(port);
        path.control = value;
        if (!was && this.pathOn(port)) this.startPath(path, true);
        else if (was && !this.pathOn(port)) this.stopPath(path);
        return true;
      }
      default:
        return false;
    }
  }

  readRegister(offset: number): number {
    if (offset < 0 || offset >= 0x100 || offset & 3) return 0;
    if (offset === TunnelReg.CwndBytes) return this.windowBytes() >>> 0;
    if (offset === TunnelReg.MinRttNs) return this.paths[this.firstPort].minRtt >>> 0;
    return this.regs[offset / 4];
  }

  /** Writes a register; false (and no change) for read-only registers and out-of-range values. */
  writeRegister(offset: number, value: number): boolean {
    value >>>= 0;
    if (offset < 0 || offset >= 0x100 || offset & 3) return false;
    switch (offset) {
      case TunnelReg.Control:
        return this.writeControl(value);
      case TunnelReg.Status:
      case TunnelReg.RttNs:
      case TunnelReg.CwndBytes:
      case TunnelReg.MinRttNs:
        return false;
      case TunnelReg.Snapshot:
        if (value & 1) this.snapshot();
        return true;
      case TunnelReg.Mtu:
        if (value < MTU_MIN || value > MTU_MAX) return false;
        break;
      case TunnelReg.MaxPayload:
        if (value < 128 || value > 4096 || (value & (value - 1)) !== 0) return false;
        break;
      case TunnelReg.AckFrames:
      case TunnelReg.RetryLimit:
        if (value < 1 || value > 255) return false;
        break;
      case TunnelReg.RtoNs:
      case TunnelReg.KeepaliveNs:
      case TunnelReg.SilenceNs:
      case TunnelReg.AckDelayNs:
      case TunnelReg.RttReportNs:
        if (value < 1000) return false;
        break;
      case TunnelReg.Vlan:
        if ((value & 0xfff) === 0xfff || value > 0xffff) return false;
        break;
      case TunnelReg.PeerMacHigh:
        if (value > 0xffff) return false;
        break;
      case TunnelReg.LinkState:
        if (value > LINK_STATE_LAST) return false;
        break;
      case TunnelReg.Port:
        if (value >= PORTS || this.enabled || this.paths[value].enableBit) return false;
        break;
      case TunnelReg.CreditPh: case TunnelReg.CreditNph: case TunnelReg.CreditCplh:
        if (value < 1 || value > 0x7fff) return false;
        break;
      case TunnelReg.CreditPd: case TunnelReg.CreditNpd: case TunnelReg.CreditCpld:
        if (value < 1 || value > 0x7fff) return false;
        break;
      default:
        if (offset >= TunnelReg.CountTxFrames) return false;
    }
    this.regs[offset / 4] = value;
    return true;
  }

  private writeControl(value: number): boolean {
    if (value & ~(TunnelControl.Enable | TunnelControl.GoBackN | TunnelControl.Reset | TunnelControl.Flush | TunnelControl.CongestionControl)) return false;
    const wasEnabled = this.enabled;
    if (value & TunnelControl.Enable && !wasEnabled) {
      if (TUNNEL_HEADER + this.largestRecord() > this.payloadMtu()) return false; // a largest TLP must fit a frame
    }
    if (value & TunnelControl.Flush) this.flush();
    if (value & TunnelControl.Reset) this.resetSession();
    if (value & TunnelControl.Reset && !(value & TunnelControl.Enable)) this.forgetPeer();
    this.regs[TunnelReg.Control / 4] = value & ~(TunnelControl.Reset | TunnelControl.Flush);
    if (value & TunnelControl.Enable && !wasEnabled) this.start();
    else if (!(value & TunnelControl.Enable) && wasEnabled) this.stop();
    else if (value & TunnelControl.Reset && wasEnabled) {
      this.paths[this.firstPort].keepaliveDue = true; // a fresh session: announce the credits at once
      this.host.transmitReady();
    }
    return true;
  }

  /**
   * A shut (Reset without Enable) ends the session for good: the block forgets its peer and session
   * ID, so no frame of that peer is routed to it any more (sessionSink) and a new session of the
   * same peer on another tunnel gets every frame.
   */
  private forgetPeer(): void {
    for (const r of [TunnelReg.PeerMacHigh, TunnelReg.PeerMacLow, TunnelReg.Session]) this.regs[r / 4] = 0;
    for (const path of this.paths) path.forget();
    this.secy.clear();
  }

  /** Clears sequence numbers, buffers and credits; TLPs waiting to be sent stay queued. */
  private resetSession(): void {
    if (this.host.discarded) {
      for (const entry of this.sent.values()) if (!entry.sacked) for (const r of frameRecords(entry.frame)) this.host.discarded(r.tlp, r.slot, this, false);
      for (const h of this.held.values()) for (const r of records(h.frame, h.body, h.length)) this.host.discarded(r.tlp, r.slot, this, true);
    }
    this.nextSeq = this.sndUna = this.rcvNext = this.recoverSeq = 0;
    this.sent.clear();
    this.replayBytes = 0;
    this.resend.length = 0;
    this.held.clear();
    this.heldBytes = 0;
    this.unacked = 0;
    this.consecutiveTimeouts = 0;
    this.duplicateAcks = 0;
    this.cwnd.reset(INITIAL_WINDOW_FRAMES * this.reg(TunnelReg.Mtu), 0);
    this.echoSeen = this.marksEchoed = this.marksReceived = this.paceAt = 0;
    this.gate.reset();
    this.pool.reset([TunnelReg.CreditPh, TunnelReg.CreditPd, TunnelReg.CreditNph, TunnelReg.CreditNpd, TunnelReg.CreditCplh, TunnelReg.CreditCpld].map((r) => this.reg(r)));
    this.setStatus(TunnelStatus.PeerSeen, false);
    this.setStatus(TunnelStatus.Silent, false);
    this.setStatus(TunnelStatus.RetryExhausted, false);
    this.setStatus(TunnelStatus.Stalled, false);
    // A new session reports its first RTT sample, whatever the last one's was.
    this.rttReported = 0;
    this.rttReportedAt = -Infinity;
    for (const path of this.paths) path.newSession();
  }

  /**
   * A round-trip sample (a frame sent once, acknowledged): into RttNs, and reported with
   * RttChanged when it moved by more than 1/8 from the last report, at most once per
   * RttReportNs (a move within that time is reported at its end, if it still stands). So the
   * firmware hears of the RTT when it changes, and a steady link costs it nothing.
   */
  private rttSample(sample: number): void {
    this.regs[TunnelReg.RttNs / 4] = sample;
    if (!this.rttMoved() || this.rttReportTimer !== null) return;
    const due = this.rttReportedAt + this.reg(TunnelReg.RttReportNs);
    if (this.now >= due) {
      this.reportRtt();
      return;
    }
    this.rttReportTimer = this.host.scheduler.at(due, () => {
      this.rttReportTimer = null;
      if (this.enabled && this.rttMoved()) this.reportRtt();
    });
  }

  private rttMoved(): boolean {
    const sample = this.reg(TunnelReg.RttNs);
    return this.rttReported === 0 ? sample > 0 : Math.abs(sample - this.rttReported) * 8 > this.rttReported;
  }

  private reportRtt(): void {
    this.rttReported = this.reg(TunnelReg.RttNs);
    this.rttReportedAt = this.now;
    this.host.event(FabricEventKind.RttChanged, this.rttReported, this);
  }

  /** Discards the TLPs waiting to be sent (a session that ended must not carry them into the next). */
  private flush(): void {
    for (const queue of this.queues) {
      this.add(TunnelCounter.TlpsFlushed, queue.size);
      if (this.host.discarded) for (let i = queue.head; i < queue.tlps.length; i++) this.host.discarded(queue.tlps[i], queue.slots[i], this, false);
      queue.clear();
    }
    this.stalled = [false, false, false];
    this.queuedBytes.fill(0);
    this.queueRoom();
  }

  private start(): void {
    if (!this.gate.known && this.sent.size === 0 && this.nextSeq === 0) this.resetSession();
    this.setStatus(TunnelStatus.Enabled, true);
    this.setStatus(TunnelStatus.RetryExhausted, false);
    this.consecutiveTimeouts = 0;
    this.lastHeardAt = this.now;
    for (const path of this.paths) if (this.pathOn(path.port)) this.startPath(path, false);
    // Resuming a session: whatever was in flight goes again now rather than at a timeout.
    for (let seq = this.sndUna; seqDiff(seq, this.nextSeq) < 0; seq = (seq + 1) >>> 0) {
      const entry = this.sent.get(seq);
      if (entry) this.queueResend(entry);
    }
    this.armSilence();
    this.armRto();
    this.host.transmitReady();
  }

  private stop(): void {
    this.setStatus(TunnelStatus.Enabled, false);
    for (const timer of [this.rtoTimer, this.ackTimer, this.silenceTimer, this.rttReportTimer, this.paceTimer]) {
      if (timer !== null) this.host.scheduler.cancel(timer);
    }
    this.rtoTimer = this.ackTimer = this.silenceTimer = this.rttReportTimer = this.paceTimer = null;
    for (const path of this.paths) this.cancelPathTimers(path);
  }

  /**
   * A path starts carrying the session (`joined`: a path added to a running session, else the
   * tunnel's start): it announces the credits at once, so the peer hears it. A joined path carries
   * nothing but keepalives until it hears the peer (which may enable its side later); a path is
   * watched for silence, once heard, while the session has several.
   */
  private startPath(path: Path, joined: boolean): void {
    path.silent = false;
    path.lastHeardAt = this.now;
    path.keepaliveDue = true;
    if (!joined && path.port === this.firstPort) path.heard = true;
    if (this.multipath) for (const p of this.paths) if (this.pathOn(p.port) && p.heard && p.silenceTimer === null) this.armPathSilence(p);
    if (joined) this.host.transmitReady();
  }

  /** A path stops carrying the session: what it had in flight goes again on the others. */
  private stopPath(path: Path): void {
    this.cancelPathTimers(path);
    path.silent = false;
    path.heard = false;
    path.keepaliveDue = false;
    this.moveInFlight(path.port);
  }

  private cancelPathTimers(path: Path): void {
    for (const timer of [path.keepaliveTimer, path.silenceTimer]) if (timer !== null) this.host.scheduler.cancel(timer);
    path.keepaliveTimer = path.silenceTimer = null;
  }

  /** The frames sent on `port` and not acknowledged go again, on another path if one carries DATA. */
  private moveInFlight(port: number): void {
    for (let seq = this.sndUna; seqDiff(seq, this.nextSeq) < 0; seq = (seq + 1) >>> 0) {
      const entry = this.sent.get(seq);
      if (entry && entry.path === port) this.queueResend(entry);
    }
    this.host.transmitReady();
  }

  /** The path went silent (its silence timer, or its port's carrier): PathSilent, and its frames move. */
  private pathSilent(path: Path): void {
    path.silent = true;
    if (path.silenceTimer !== null) this.host.scheduler.cancel(path.silenceTimer);
    path.silenceTimer = null;
    this.host.event(FabricEventKind.PathSilent, path.port, this);
    this.moveInFlight(path.port);
  }

  /** Port `port` of the card lost or regained its carrier: a path of a session with several goes silent at once on a loss. */
  carrier(port: number, up: boolean): void {
    const path = this.paths[port];
    if (!up && path && this.multipath && this.pathOn(port) && !path.silent) this.pathSilent(path);
  }

  /** The block's reset: registers back to their defaults, session and queued TLPs gone, the engine stopped. */
  hardReset(): void {
    this.writeControl(TunnelControl.Reset | TunnelControl.Flush);
    this.regs.fill(0);
    for (const [reg, value] of Object.entries(TUNNEL_DEFAULTS)) this.regs[Number(reg) / 4] = value;
    this.secy.hardReset();
  }

  private snapshot(): void {
    this.counters.forEach((value, i) => (this.regs[TunnelReg.CountTxFrames / 4 + i] = value >>> 0));
    this.host.event(FabricEventKind.CountersReady, 0, this);
  }

  // ---- Transmit ------------------------------------------------------------------

  /**
   * Queues a TLP from the local PCIe side, for (or from) chassis slot `slot`. Returns false,
   * without queuing, for a TLP the tunnel cannot carry: unknown class, size not matching its
   * header, data beyond MaxPayload, or a slot beyond RECORD_SLOTS.
   */
  submit(tlp: Uint8Array, slot = 0): boolean {
    const found = tlpClass(tlp);
    if (found < 0 || tlp.length !== tlpBytes(tlp) || dataBytes(tlp) > this.reg(TunnelReg.MaxPayload)) return false;
    if (!(slot >= 0 && slot < RECORD_SLOTS)) return false;
    const cls = found as TlpClass;
    this.queues[cls].push(tlp, this.submitted++, slot);
    this.queuedBytes[cls] += tlp.length;
    if (!this.queueFull[cls] && !this.hasRoom(cls)) {
      this.queueFull[cls] = true;
      this.count(TunnelCounter.QueueFull);
    }
    if (this.enabled) this.host.transmitReady();
    return true;
  }

  /**
   * Whether the send queue takes more TLPs of class `cls` (posted without one) from the card's PCIe
   * side: fewer than QueueBytes of that class queued, or no limit. Each class has its own, as PCIe
   * credits are per class: a read is not held back at the card's edge by writes (in the queue it
   * still waits behind the older ones, as the ordering rules say). The card holds its PCIe side back
   * while a class is full (its link's flow control); what is submitted anyway is queued, never lost.
   */
  hasRoom(cls: TlpClass = TlpClass.Posted): boolean {
    const limit = this.reg(TunnelReg.QueueBytes);
    return limit === 0 || this.queuedBytes[cls] < limit;
  }

  /**
   * TLPs left the send queue: if a class was full and has room now, the card's PCIe side may go on.
   * It hears so from an event at the same time rather than at once: what it sends then may kick the
   * MACs, which must not happen while they are taking a frame from this engine.
   */
  private queueRoom(): void {
    let freed = false;
    for (let cls = 0; cls < CLASSES; cls++) {
      if (!this.queueFull[cls] || !this.hasRoom(cls)) continue;
      this.queueFull[cls] = false;
      freed = true;
    }
    if (freed) {
      this.host.scheduler.at(this.now, () => {
        for (const listener of this.roomListeners) listener();
      });
    }
  }

  /** Calls `listener` whenever the send queue, a class of it full, has room again: for what feeds it (the card's PCIe side, a traffic source), in the order they asked. */
  onRoom(listener: () => void): void {
    this.roomListeners.push(listener);
  }

  /** TLPs waiting to be sent, all classes. */
  get queuedTlps(): number {
    return this.queues[0].size + this.queues[1].size + this.queues[2].size;
  }

  /** The TLPs of chassis slot `slot` this engine still has to send (queued, or sent and not acknowledged). */
  tlpsToSend(slot: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const queue of this.queues) for (let i = queue.head; i < queue.tlps.length; i++) if (queue.slots[i] === slot) out.push(queue.tlps[i]);
    for (const entry of this.sent.values()) for (const r of frameRecords(entry.frame)) if (r.slot === slot) out.push(r.tlp);
    return out;
  }

  /** The TLPs of chassis slot `slot` this engine received out of order and holds until the gap before them fills. */
  tlpsHeld(slot: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const h of this.held.values()) for (const r of records(h.frame, h.body, h.length)) if (r.slot === slot) out.push(r.tlp);
    return out;
  }

  /** Frames sent and not yet acknowledged. */
  get inFlight(): number {
    return seqDiff(this.nextSeq, this.sndUna);
  }

  /**
   * The next frame to put on the wire, or null. Called by the MAC when its port is idle. While
   * MACsec protects the tunnel, nothing goes before a transmit SA is installed, and what goes is
   * a MACsec frame.
   */
  nextFrame(port: number): Uint8Array | null {
    if (!this.pathOn(port)) return null;
    if (this.secy.protecting && !this.secy.canTransmit()) return null;
    const clear = this.clearFrame(port);
    if (!clear) return null;
    this.paths[port].txFrames++;
    return this.secy.protecting ? this.secy.protect(clear) : clear;
  }

  /**
   * The next frame in clear for the path on `port`. ACKs and DATA go on any path that carries them
   * (a silent path carries keepalives only); a frame to send again goes on another path than the
   * one it was lost on, when another carries DATA. An ACK or a new DATA frame goes on the path
   * whose port asks first, except that an idle path with a clearly shorter round trip (or none
   * measured yet) takes it instead: a lone request and its acknowledgement go the quick way, and a
   * stream fills every path (docs/wire-format.md, "Paths").
   */
  private clearFrame(port: number): Uint8Array | null {
    const carries = this.carries(port);
    const quicker = carries && this.quickerPathIdle(port);
    if (this.ackDue && carries && !quicker) return this.ackFrame(FrameKind.Ack, port);
    if (this.paths[port].keepaliveDue) return this.ackFrame(FrameKind.Keepalive, port); // the periodic credit update goes before data
    if (!carries) return null;
    while (this.resend.length > 0) {
      const entry = this.sent.get(this.resend[0]);
      if (!entry || !entry.pending || entry.sacked) {
        this.resend.shift();
        continue;
      }
      if (entry.path === port && this.carriedElsewhere(port)) break;
      this.resend.shift();
      return this.retransmit(entry, port);
    }
    if (quicker || this.paced()) return null;
    const frame = this.dataFrame(port);
    if (frame && this.congestionControl) this.pace(frame.length, port);
    return frame;
  }

  /**
   * Bytes of tunnel header and body a DATA frame may carry: the payload MTU, and under congestion
   * control at most 1/FRAMES_PER_WINDOW of the window, so that a small window still goes as several
   * frames, each queued and marked apart, rather than one burst.
   */
  private frameRoom(mtu: number): number {
    if (!this.congestionControl) return mtu;
    const share = Math.floor(this.cwnd.bytes / FRAMES_PER_WINDOW) - HEADER_SIZE - VLAN_TAG_SIZE - FCS_SIZE;
    return Math.max(Math.min(mtu, share), TUNNEL_HEADER + this.largestRecord());
  }

  /** A new DATA frame must wait for paceAt: true, with a timer that asks the MACs again then. */
  private paced(): boolean {
    if (!this.congestionControl || this.now >= this.paceAt) return false;
    if (this.queuedTlps > 0) this.windowLimited = true;
    if (this.paceTimer === null) {
      this.paceTimer = this.host.scheduler.at(this.paceAt, () => {
        this.paceTimer = null;
        if (this.enabled) this.host.transmitReady();
      });
    }
    return true;
  }

  /**
   * Spreads the window over the round trip: after a DATA frame of `bytes`, the next starts no sooner
   * than the time the window's rate (window / smoothed round trip of the path, times PACING_GAIN)
   * takes to send it. Without a round trip measured yet, no pacing.
   */
  private pace(bytes: number, port: number): void {
    const srtt = this.paths[port].srtt;
    if (srtt === 0) return;
    const gain = this.cwnd.state === WindowState.SlowStart ? PACING_GAIN_SLOW_START : PACING_GAIN;
    this.paceAt = this.now + Math.floor((bytes * srtt) / (this.windowBytes() * gain));
  }

  /**
   * Another path whose port is idle carries DATA and has a round trip under 7/8 of this one's, or
   * has none measured yet while this one has (so that it gets one).
   */
  private quickerPathIdle(port: number): boolean {
    const own = this.paths[port].srtt;
    if (own === 0) return false;
    for (const other of this.paths) {
      if (other.port === port || other.srtt * 8 >= own * 7) continue;
      if (this.carries(other.port) && !other.silent && this.host.portIdle(other.port)) return true;
    }
    return false;
  }

  /**
   * The Ethernet header of a frame to the peer with `payload` bytes after it: in a new buffer
   * of the frame's size, or at the start of `into` (which must be large enough; only the
   * header's bytes are written).
   */
  private frameHead(payload: number, port: number, into?: Uint8Array): { frame: Uint8Array; view: DataView; at: number } {
    const vlan = this.reg(TunnelReg.Vlan);
    const tag = this.vlan() ? VLAN_TAG_SIZE : 0;
    const head = HEADER_SIZE + tag;
    const frame = into ?? allocBytes(head + Math.max(payload, MIN_PAYLOAD) + FCS_SIZE);
    this.address(frame, port);
    if (tag) {
      frame[12] = ETHERTYPE_VLAN >> 8;
      frame[13] = ETHERTYPE_VLAN & 0xff;
      frame[14] = (vlan >> 8) & 0xef; // PCP in 7-5, DEI 0, VID 11-8
      frame[15] = vlan & 0xff;
    }
    frame[head - 2] = ETHERTYPE_IOV >> 8;
    frame[head - 1] = ETHERTYPE_IOV & 0xff;
    return { frame, view: new DataView(frame.buffer, frame.byteOffset, frame.length), at: head };
  }

  /** Writes the destination and source addresses of the path on `port` into `frame`. */
  private address(frame: Uint8Array, port: number): void {
    const [high, low] = this.peerOf(port);
    frame[0] = high >> 8;
    frame[1] = high & 0xff;
    frame[2] = low >>> 24;
    frame[3] = (low >> 16) & 0xff;
    frame[4] = (low >> 8) & 0xff;
    frame[5] = low & 0xff;
    frame.set(this.host.portAddress(port), 6);
  }

  private ackFrame(kind: FrameKind.Ack | FrameKind.Keepalive, port: number): Uint8Array {
    const sack = this.goBackN ? [] : this.sackBlocks();
    const length = ackBodySize(sack.length);
    const { frame, view, at } = this.frameHead(TUNNEL_HEADER + length, port);
    writeHeader(view, at, kind, length, this.reg(TunnelReg.Session), this.nextSeq, this.rcvNext);
    writeAckBody(view, at + TUNNEL_HEADER, { credits: this.pool.limit, sack, keys: this.secy.advertisement(), echo: this.marksReceived % ECHO_MODULUS });
    writeFcs(frame);
    this.count(TunnelCounter.TxFrames);
    this.count(kind === FrameKind.Ack ? TunnelCounter.TxAckFrames : TunnelCounter.TxKeepalives);
    this.ackSent(this.paths[port]);
    return frame;
  }

  private ackSent(path: Path): void {
    this.ackDue = false;
    path.keepaliveDue = false;
    this.unacked = 0;
    this.creditsReleased = false;
    if (this.ackTimer !== null) this.host.scheduler.cancel(this.ackTimer);
    this.ackTimer = null;
    // Credits and acknowledgements go out at least every KeepaliveNs on each path, busy or idle, so a
    // lost ACK costs at most that long (as PCIe repeats its flow-control updates), and the peer hears every path.
    path.lastAnnouncedAt = this.now;
    if (path.keepaliveTimer === null) this.armKeepalive(path);
  }

  private sackBlocks(): SackBlock[] {
    if (this.held.size === 0) return [];
    const seqs = [...this.held.keys()].sort((a, b) => seqDiff(a, b));
    const blocks: SackBlock[] = [];
    for (const seq of seqs) {
      const last = blocks[blocks.length - 1];
      if (last && last.end === seq) last.end = (seq + 1) >>> 0;
      else if (blocks.length === MAX_SACK) break;
      else blocks.push({ first: seq, end: (seq + 1) >>> 0 });
    }
    return blocks;
  }

  /** The record of a largest TLP: its record header, a 4-DW TLP header and MaxPayload bytes of data. */
  private largestRecord(): number {
    return RECORD_HEADER + 16 + this.reg(TunnelReg.MaxPayload);
  }

  /** Bytes of DATA frames in flight the replay buffer and WindowBytes allow, congestion control or not. */
  private fixedWindow(): number {
    return Math.min(this.reg(TunnelReg.ReplayBytes), this.reg(TunnelReg.WindowBytes));
  }

  /** Bytes of DATA frames allowed in flight: the fixed window and, under congestion control, the congestion window. */
  private windowBytes(): number {
    return this.congestionControl ? Math.min(this.fixedWindow(), this.cwnd.bytes) : this.fixedWindow();
  }

  private windowAllows(frameBytes: number): boolean {
    if (this.replayBytes + frameBytes <= this.windowBytes() && this.inFlight < SEQ_WINDOW / 2) return true;
    this.windowLimited = true;
    return false;
  }

  /** What bounds the congestion window: one frame with one largest TLP (its floor and its growth per round trip), the fixed window, TargetNs. */
  private windowLimits(): WindowLimits {
    const tag = this.vlan() ? VLAN_TAG_SIZE : 0;
    const overhead = HEADER_SIZE + tag + FCS_SIZE + TUNNEL_HEADER;
    return {
      minBytes: overhead + this.largestRecord() + (this.secy.protecting ? MACSEC_OVERHEAD : 0),
      maxBytes: this.fixedWindow(),
      targetNs: this.reg(TunnelReg.TargetNs),
    };
  }

  /**
   * The class whose head TLP may go next under the PCIe ordering rules, or -1: the oldest
   * head that has credits, where non-posted requests and completions never pass an older
   * posted request, and a posted request may pass anything that waits for credits.
   */
  private nextEligible(): TlpClass | -1 {
    const posted = this.queues[TlpClass.Posted];
    const postedOrder = posted.size ? posted.order[posted.head] : Infinity;
    let best: TlpClass | -1 = -1;
    let bestOrder = Infinity;
    for (let cls = 0; cls < CLASSES; cls++) {
      const queue = this.queues[cls];
      if (!queue.size) continue;
      const order = queue.order[queue.head];
      if (cls !== TlpClass.Posted && order > postedOrder) continue;
      const tlp = queue.tlps[queue.head];
      if (!this.gate.canSend(cls, dataCredits(tlp))) {
        if (!this.stalled[cls]) {
          this.stalled[cls] = true;
          this.count(TunnelCounter.CreditStalls);
        }
        continue;
      }
      this.stalled[cls] = false;
      if (order < bestOrder) {
        best = cls;
        bestOrder = order;
      }
    }
    return best;
  }

  /**
   * Packs the next DATA frame: TLPs in ordering-rule order while they fit the MTU, the
   * credits and the window. Records are written into the engine's packing buffer, of the
   * MTU's size; the frame is a copy of the part used.
   */
  private dataFrame(port: number): Uint8Array | null {
    let cls = this.nextEligible();
    if (cls === -1) return null;
    const mtu = this.payloadMtu();
    const largest = HEADER_SIZE + VLAN_TAG_SIZE + Math.max(mtu, MIN_PAYLOAD) + FCS_SIZE;
    if (this.packing.length < largest) this.packing = new Uint8Array(largest);
    const { frame: buffer, view, at } = this.frameHead(mtu, port, this.packing);
    const overhead = at + TUNNEL_HEADER + FCS_SIZE;
    const end = at + this.frameRoom(mtu);
    let p = at + TUNNEL_HEADER;
    let tlps = 0;
    let payload = 0;
    for (; cls !== -1; cls = this.nextEligible()) {
      const queue = this.queues[cls];
      const tlp = queue.tlps[queue.head];
      const record = RECORD_HEADER + tlp.length;
      if (p + record > end || !this.windowAllows(overhead + (p - at - TUNNEL_HEADER) + record)) break;
      const slot = queue.slots[queue.head];
      queue.shift();
      this.queuedBytes[cls] -= tlp.length;
      const data = dataBytes(tlp);
      this.gate.consume(cls, Math.ceil(data / DATA_CREDIT_BYTES));
      view.setUint16(p, (slot << RECORD_SLOT_SHIFT) | tlp.length);
      buffer.set(tlp, p + RECORD_HEADER);
      p += record;
      tlps++;
      payload += data;
    }
    if (tlps === 0) return null;
    this.queueRoom();
    const bytes = p - at - TUNNEL_HEADER;
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    writeHeader(view, at, FrameKind.Data, bytes, this.reg(TunnelReg.Session), seq, this.rcvNext);
    const padded = Math.max(p, at + MIN_PAYLOAD);
    buffer.fill(0, p, padded); // the last frame's bytes are still there
    const frame = copyBytes(buffer.subarray(0, padded + FCS_SIZE));
    writeFcs(frame);
    this.sent.set(seq, { seq, frame, path: port, sentAt: this.now, transmissions: 1, sacked: false, pending: false });
    this.replayBytes += frame.length;
    this.count(TunnelCounter.TxFrames);
    this.count(TunnelCounter.TxDataFrames);
    this.add(TunnelCounter.TxTlps, tlps);
    this.add(TunnelCounter.TxPayloadBytes, payload);
    if (this.paths[port].keepaliveTimer === null) this.armKeepalive(this.paths[port]);
    if (this.rtoTimer === null) this.armRto();
    return frame;
  }

  private retransmit(entry: Sent, port: number): Uint8Array {
    // The first copy may still be on the wire: send a fresh copy with the current ack, addressed for the path it takes now.
    const frame = copyBytes(entry.frame);
    this.address(frame, port);
    new DataView(frame.buffer, frame.byteOffset, frame.length).setUint32(payloadOffset(frame) + 12, this.rcvNext >>> 0);
    writeFcs(frame);
    this.paths[entry.path].resent++;
    entry.path = port;
    entry.pending = false;
    entry.sentAt = this.now;
    entry.transmissions++;
    this.count(TunnelCounter.TxFrames);
    this.count(TunnelCounter.TxDataFrames);
    this.count(TunnelCounter.Retransmits);
    if (this.paths[port].keepaliveTimer === null) this.armKeepalive(this.paths[port]);
    if (this.rtoTimer === null) this.armRto();
    return frame;
  }

  private queueResend(entry: Sent): void {
    if (entry.pending || entry.sacked) return;
    entry.pending = true;
    this.resend.push(entry.seq);
  }

  // ---- Acknowledgements received ---------------------------------------------------

  private onAck(ack: number): void {
    const advance = seqDiff(ack, this.sndUna);
    if (advance > 0 && seqDiff(ack, this.nextSeq) <= 0) {
      let bytes = 0;
      let newest: { rtt: number; queueing: number } | null = null;
      for (let seq = this.sndUna; seqDiff(seq, ack) < 0; seq = (seq + 1) >>> 0) {
        const entry = this.sent.get(seq);
        if (!entry) continue;
        newest = null;
        if (entry.transmissions === 1) {
          const sample = Math.min(this.now - entry.sentAt, 0xffffffff);
          const path = this.paths[entry.path];
          this.rttSample(sample);
          path.rttSample(sample, this.now);
          newest = { rtt: sample, queueing: sample - path.minRtt };
        }
        bytes += entry.frame.length;
        this.replayBytes -= entry.frame.length;
        this.sent.delete(seq);
      }
      this.sndUna = ack;
      if (this.congestionControl) this.windowAcked(advance, bytes, newest);
      this.consecutiveTimeouts = 0;
      this.setStatus(TunnelStatus.Stalled, false);
      this.duplicateAcks = 0;
      if (this.rtoTimer !== null) this.host.scheduler.cancel(this.rtoTimer);
      this.rtoTimer = null;
      this.armRto();
      this.host.transmitReady();
    } else if (advance === 0 && this.inFlight > 0 && this.goBackN) {
      // Go-back-N: three duplicate cumulative acks mean the frame at sndUna was lost.
      if (++this.duplicateAcks === FAST_RETRANSMIT_THRESHOLD && seqDiff(this.sndUna, this.recoverSeq) >= 0) {
        this.recoverSeq = this.nextSeq;
        this.goBack();
        this.count(TunnelCounter.FastRetransmits);
      }
    }
  }

  /** An acknowledgement moved the window on by `frames` frames of `bytes`; `newest`: the round trip of the newest of them, if sent once. */
  private windowAcked(frames: number, bytes: number, newest: { rtt: number; queueing: number } | null): void {
    const change = this.cwnd.acked({
      frames, bytes, marked: this.marksEchoed, queueingNs: newest ? newest.queueing : -1, rttNs: newest ? newest.rtt : 0,
      nextSeq: this.nextSeq, sndUna: this.sndUna, limited: this.windowLimited,
    }, this.windowLimits());
    if (change === WindowChange.EcnDecrease) this.count(TunnelCounter.EcnDecreases);
    if (change === WindowChange.DelayDecrease) this.count(TunnelCounter.DelayDecreases);
    this.marksEchoed = 0;
    this.windowLimited = false;
  }

  private onSack(blocks: SackBlock[]): void {
    if (this.goBackN || blocks.length === 0) return;
    let highest = this.sndUna;
    for (const block of blocks) {
      // Only sequence numbers actually in flight: a bogus block cannot make this loop long.
      const first = seqDiff(block.first, this.sndUna) > 0 ? block.first : this.sndUna;
      const end = seqDiff(block.end, this.nextSeq) < 0 ? block.end : this.nextSeq;
      for (let seq = first; seqDiff(seq, end) < 0; seq = (seq + 1) >>> 0) {
        const entry = this.sent.get(seq);
        if (entry && !entry.sacked) {
          entry.sacked = true;
          entry.pending = false;
        }
      }
      if (seqDiff(end, highest) > 0) highest = end;
    }
    // Fast retransmit: a hole with enough frames received beyond it was lost.
    for (let seq = this.sndUna; seqDiff(seq, highest) < 0; seq = (seq + 1) >>> 0) {
      const entry = this.sent.get(seq);
      if (!entry || entry.sacked || entry.pending) continue;
      if (seqDiff(highest, seq) > FAST_RETRANSMIT_THRESHOLD && this.now - entry.sentAt >= this.fastRetransmitGuard(entry)) {
        this.queueResend(entry);
        this.count(TunnelCounter.FastRetransmits);
        if (this.congestionControl) this.cwnd.lost(this.nextSeq, this.sndUna, this.windowLimits());
      }
    }
    if (this.resend.length) this.host.transmitReady();
  }

  /**
   * A frame is not fast-retransmitted twice within one round trip, nor within one of the path it
   * went on: frames of a longer path arrive after later ones of a shorter, a hole that is no loss.
   */
  private fastRetransmitGuard(entry: Sent): number {
    return Math.max(this.reg(TunnelReg.RttNs), this.paths[entry.path].srtt, 1);
  }

  private goBack(): void {
    for (let seq = this.sndUna; seqDiff(seq, this.nextSeq) < 0; seq = (seq + 1) >>> 0) {
      const entry = this.sent.get(seq);
      if (entry) this.queueResend(entry);
    }
    this.host.transmitReady();
  }

  // ---- Timers --------------------------------------------------------------------

  private armRto(): void {
    if (!this.enabled || this.rtoTimer !== null || this.inFlight === 0 || this.status(TunnelStatus.RetryExhausted)) return;
    // The clock runs from the oldest frame's last transmission, or from now while it waits
    // in the retransmission queue.
    const oldest = this.sent.get(this.sndUna);
    const base = oldest && !oldest.pending ? oldest.sentAt : this.now;
    this.rtoTimer = this.host.scheduler.at(Math.max(base + this.rto(), this.now), () => this.onRto());
  }

  /** The retransmission timeout, doubled per timeout in a row up to 2^MAX_BACKOFF_SHIFT times. */
  private rto(): number {
    return this.reg(TunnelReg.RtoNs) * 2 ** Math.min(this.consecutiveTimeouts, MAX_BACKOFF_SHIFT);
  }

  private onRto(): void {
    this.rtoTimer = null;
    if (!this.enabled || this.inFlight === 0) return;
    const oldest = this.sent.get(this.sndUna);
    const rto = this.rto();
    if (oldest && !oldest.pending && this.now - oldest.sentAt < rto) {
      this.armRto();
      return;
    }
    this.consecutiveTimeouts++;
    if (this.congestionControl) this.cwnd.timedOut(this.nextSeq, this.windowLimits());
    this.setStatus(TunnelStatus.Stalled, true);
    this.count(TunnelCounter.Timeouts);
    this.host.event(FabricEventKind.RetransmitTimeout, this.consecutiveTimeouts, this);
    if (this.consecutiveTimeouts >= this.reg(TunnelReg.RetryLimit)) {
      this.setStatus(TunnelStatus.RetryExhausted, true);
      this.host.event(FabricEventKind.RetryLimit, this.reg(TunnelReg.RetryLimit), this);
      return;
    }
    if (this.goBackN) this.goBack();
    else {
      for (let seq = this.sndUna; seqDiff(seq, this.nextSeq) < 0; seq = (seq + 1) >>> 0) {
        const entry = this.sent.get(seq);
        if (entry && this.now - entry.sentAt >= rto) this.queueResend(entry);
      }
      this.host.transmitReady();
    }
    this.armRto();
  }

  private armAckTimer(): void {
    if (this.ackTimer !== null) return;
    this.ackTimer = this.host.scheduler.at(this.now + this.reg(TunnelReg.AckDelayNs), () => {
      this.ackTimer = null;
      if ((this.unacked > 0 || this.creditsReleased) && this.enabled) {
        this.ackDue = true;
        this.host.transmitReady();
      }
    });
  }

  private armKeepalive(path: Path): void {
    path.keepaliveTimer = this.host.scheduler.at(Math.max(path.lastAnnouncedAt + this.reg(TunnelReg.KeepaliveNs), this.now), () => {
      path.keepaliveTimer = null;
      if (!this.pathOn(path.port)) return;
      if (this.now - path.lastAnnouncedAt >= this.reg(TunnelReg.KeepaliveNs)) {
        path.keepaliveDue = true;
        this.host.transmitReady();
      } else this.armKeepalive(path);
    });
  }

  /** While the session has several paths: checks the path for silence at its lastHeardAt + SilenceNs; once silent, heard() re-arms it. */
  private armPathSilence(path: Path): void {
    path.silenceTimer = this.host.scheduler.at(Math.max(path.lastHeardAt + this.reg(TunnelReg.SilenceNs), this.now), () => {
      path.silenceTimer = null;
      if (!this.pathOn(path.port) || !this.multipath || path.silent) return;
      if (this.now - path.lastHeardAt < this.reg(TunnelReg.SilenceNs)) this.armPathSilence(path);
      else this.pathSilent(path);
    });
  }

  /** Checks for silence at lastHeardAt + SilenceNs; once silent, heard() re-arms it. */
  private armSilence(): void {
    this.silenceTimer = this.host.scheduler.at(Math.max(this.lastHeardAt + this.reg(TunnelReg.SilenceNs), this.now), () => {
      this.silenceTimer = null;
      if (!this.enabled) return;
      const quiet = this.now - this.lastHeardAt;
      if (quiet < this.reg(TunnelReg.SilenceNs)) {
        this.armSilence();
        return;
      }
      this.setStatus(TunnelStatus.Silent, true);
      this.host.event(FabricEventKind.PeerSilent, Math.min(quiet, 0xffffffff), this);
    });
  }

  // ---- Receive -------------------------------------------------------------------

  /**
   * A frame in clear from the peer (the MAC has checked FCS, destination, EtherType and VLAN);
   * `at` is the offset of the tunnel header, `end` the end of the Ethernet payload. Refused while
   * MACsec protects the tunnel.
   */
  receive(frame: Uint8Array, at: number, end: number, port: number): void {
    if (!this.enabled) {
      this.count(TunnelCounter.RxWhileDisabled);
      return;
    }
    if (this.secy.protecting) {
      this.count(TunnelCounter.RxUntagged);
      return;
    }
    this.accept(frame, at, end, port);
  }

  /** Whether MACsec frames under `sci` are this tunnel's: it protects, and `sci` is its peer's. */
  acceptsSci(sci: Uint8Array | null): boolean {
    return sci !== null && this.secy.protecting && this.secy.receives(sci);
  }

  /**
   * A MACsec frame from the peer's address (the MAC has checked FCS, destination and VLAN), with
   * its SecTAG (or why it is invalid) and SCI: validated by the SecY, then taken as a frame in
   * clear.
   */
  receiveMacsec(frame: Uint8Array, tag: SecTag | string, sci: Uint8Array | null, port: number): void {
    if (!this.enabled) {
      this.count(TunnelCounter.RxWhileDisabled);
      return;
    }
    if (typeof tag === "string") {
      this.count(TunnelCounter.RxBadTag);
      return;
    }
    if (!this.acceptsSci(sci)) {
      this.count(TunnelCounter.RxUnknownSci);
      return;
    }
    const valid = this.secy.validate(frame, tag, sci!);
    if (!valid) return;
    this.host.unprotected?.(valid.clear, valid.fresh);
    const onPath = this.paths[port].newOnPath(tag.an, valid.pn);
    this.accept(valid.clear, payloadOffset(valid.clear), valid.clear.length - FCS_SIZE, port, valid.fresh, onPath);
  }

  /**
   * A frame in clear that passed the MAC (and MACsec): `fresh` is false for a MACsec frame whose PN
   * its SA had already passed (a duplicate the replay window lets through, or a reordered frame):
   * its sequence and acknowledgement numbers count as ever (the tunnel's checks make an old one
   * harmless), but it is no news that the peer is alive, of its credits or of its keys, so that a
   * replayed frame can neither hold a silent link up nor set the credits back. `freshOnPath` is
   * whether it is news on the path it came by (Path.newOnPath): a frame that took the long path
   * arrives after later ones that took the short one, old for the SecY but new on its path.
   */
  private accept(frame: Uint8Array, at: number, end: number, port: number, fresh = true, freshOnPath = fresh): void {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const header = readHeader(view, at, end - at);
    if ("malformed" in header) {
      this.count(TunnelCounter.RxMalformed);
      return;
    }
    if (header.session !== this.reg(TunnelReg.Session)) {
      this.count(TunnelCounter.RxWrongSession);
      return;
    }
    if (header.kind === FrameKind.Control) return; // the firmware's, routed by the MAC
    const body = at + TUNNEL_HEADER;
    let ackBody = null;
    if (header.kind !== FrameKind.Data) {
      ackBody = readAckBody(view, body, header.length);
      if ("malformed" in ackBody) {
        this.count(TunnelCounter.RxMalformed);
        return;
      }
    } else if (!this.recordsValid(view, body, header.length)) {
      this.count(TunnelCounter.RxMalformed);
      return;
    }
    this.count(TunnelCounter.RxFrames);
    if (congestionMarked(frame)) {
      this.count(TunnelCounter.RxCongested);
      if (header.kind === FrameKind.Data) this.marksReceived++;
    }
    this.paths[port].rxFrames++;
    if (fresh) this.heard();
    if (freshOnPath) this.heardOn(port);
    // Marks echoed only from a fresh frame, as credits: a replayed ACK must not count them twice.
    if (ackBody && fresh) {
      this.marksEchoed += (ackBody.echo - this.echoSeen + ECHO_MODULUS) % ECHO_MODULUS;
      this.echoSeen = ackBody.echo;
    }
    this.onAck(header.ack);
    if (ackBody) {
      // Credit limits only from a fresh frame: an older ACK inside the replay window may hold limits
      // more than 2^15 behind (posted data credits wrap every 4096 writes of 256 bytes), which the
      // modular comparison would take for newer ones, stalling the class for good.
      if (fresh) {
        if (this.secy.protecting) this.secy.peerAdvertised(ackBody.keys);
        this.gate.update(ackBody.credits);
      }
      this.onSack(ackBody.sack);
      this.host.transmitReady();
      return;
    }
    this.onData(header.seq, frame, body, header.length);
  }

  private heard(): void {
    this.lastHeardAt = this.now;
    this.setStatus(TunnelStatus.PeerSeen, true);
    if (this.status(TunnelStatus.Silent)) {
      this.setStatus(TunnelStatus.Silent, false);
      this.host.event(FabricEventKind.PeerHeard, 0, this);
    }
    if (this.silenceTimer === null) this.armSilence();
  }

  /** News of the peer on the path of `port` (a frame of the session that is not a replay on it). */
  private heardOn(port: number): void {
    const path = this.paths[port];
    if (!this.pathOn(port)) return;
    path.lastHeardAt = this.now;
    if (!path.heard) {
      path.heard = true;
      this.host.transmitReady();
    }
    if (path.silent) {
      path.silent = false;
      this.host.event(FabricEventKind.PathHeard, port, this);
      this.host.transmitReady();
    }
    if (this.multipath && path.silenceTimer === null) this.armPathSilence(path);
  }

  private recordsValid(view: DataView, at: number, length: number): boolean {
    if (length === 0) return false;
    const end = at + length;
    const maxPayload = this.reg(TunnelReg.MaxPayload);
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    for (let p = at; p < end; ) {
      if (p + RECORD_HEADER > end) return false;
      const size = view.getUint16(p) & RECORD_SIZE_MASK;
      const tlp = bytes.subarray(p + RECORD_HEADER, p + RECORD_HEADER + size);
      if (size < 12 || p + RECORD_HEADER + size > end || tlpClass(tlp) < 0 || tlpBytes(tlp) !== size || dataBytes(tlp) > maxPayload) return false;
      p += RECORD_HEADER + size;
    }
    return true;
  }

  private onData(seq: number, frame: Uint8Array, body: number, length: number): void {
    const ahead = seqDiff(seq, this.rcvNext);
    if (ahead < 0) {
      this.count(TunnelCounter.RxDuplicates);
      this.requestAck(true); // our ack was probably lost
      return;
    }
    if (ahead > 0) {
      if (this.goBackN) {
        this.count(TunnelCounter.RxOutOfOrder);
        this.requestAck(true);
        return;
      }
      if (this.held.has(seq)) {
        this.count(TunnelCounter.RxDuplicates);
      } else if (ahead >= SEQ_WINDOW || this.heldBytes + frame.length > this.reg(TunnelReg.ReorderBytes)) {
        this.count(TunnelCounter.RxOutsideWindow);
      } else {
        this.held.set(seq, { frame, body, length });
        this.heldBytes += frame.length;
        this.count(TunnelCounter.RxOutOfOrder);
      }
      this.requestAck(true); // tell the sender about the hole now
      return;
    }
    this.deliverRecords(frame, body, length);
    this.rcvNext = (this.rcvNext + 1) >>> 0;
    for (let next = this.held.get(this.rcvNext); next; next = this.held.get(this.rcvNext)) {
      this.held.delete(this.rcvNext);
      this.heldBytes -= next.frame.length;
      this.deliverRecords(next.frame, next.body, next.length);
      this.rcvNext = (this.rcvNext + 1) >>> 0;
    }
    this.unacked++;
    this.requestAck(this.unacked >= this.reg(TunnelReg.AckFrames));
  }

  private requestAck(now: boolean): void {
    if (now) {
      this.ackDue = true;
      this.host.transmitReady();
    } else this.armAckTimer();
  }

  private deliverRecords(frame: Uint8Array, at: number, length: number): void {
    for (const { tlp, slot } of records(frame, at, length)) {
      const cls = tlpClass(tlp) as TlpClass;
      this.pool.take(cls, dataCredits(tlp));
      this.count(TunnelCounter.RxTlps);
      this.host.deliver(tlp, cls, this, slot);
    }
  }

  /** The local PCIe side has consumed a delivered TLP: its buffer space returns to the peer. */
  release(cls: TlpClass, tlp: Uint8Array): void {
    this.pool.release(cls, dataCredits(tlp));
    // DATA frames do not carry credits: announce the released ones in an ACK within
    // AckDelayNs, even when nothing is left to acknowledge and this side is busy sending.
    this.creditsReleased = true;
    if (this.enabled) this.armAckTimer();
  }

  // ---- Counters ------------------------------------------------------------------

  private count(counter: TunnelCounter): void {
    this.counters[counter]++;
  }

  private add(counter: TunnelCounter, amount: number): void {
    this.counters[counter] += amount;
  }

  /** Credits the peer currently allows us, and what we have used (for tests and traces). */
  creditState(): { limit: number[]; consumed: number[]; held: number[] } {
    return { limit: [...this.gate.limit], consumed: [...this.gate.consumed], held: [...this.pool.held] };
  }
}
