// One of the card's Ethernet MACs: one port, shared by the card's tunnel engines. Receive checks
// every frame as 802.3 requires (size, FCS), keeps only frames addressed to the card with
// the tunnel EtherType, and hands each to the tunnel whose peer, VLAN and session it belongs
// to (sessionSink), or, for a MACsec frame, whose peer SCI it carries (macsecSink); tunnel control
// frames go to the firmware. Transmit arbitrates round-robin between the tunnels, one frame at a
// time, whenever the port is idle. The MAC honours IEEE 802.1Qbb priority flow control: a PFC
// frame from the switch pauses the priorities it names, and a source whose next frame has a
// paused priority is passed over until the pause ends or the switch lifts it (pfc.ts).

import {
  ETHERTYPE_IOV, FCS_SIZE, MAC_SIZE, MIN_FRAME, fcsValid, isMulticast, isTagged, macKey, maxFrameSize, payloadOffset, vlanOf,
} from "./frame.ts";
import type { EthernetPort, PortDevice } from "./port.ts";
import { FrameKind, TUNNEL_HEADER } from "../tunnel/wire.ts";
import { ETHERTYPE_MACSEC, frameSci, parseSecTag, type SecTag } from "../macsec/frame.ts";
import { PauseState, decodePfc, isMacControl } from "./pfc.ts";
import type { Scheduler } from "../scheduler.ts";

/** A transmitter that shares the MAC: a tunnel engine, or the firmware's control path. */
export interface FrameSource {
  /** The next frame for port `port` (the MAC's index on the card), or null. */
  nextFrame(port: number): Uint8Array | null;
  /** The 802.1p priority of the frame nextFrame(port) would return (the PCP of its VLAN tag, 0 untagged). */
  priority(port: number): number;
}

/** A tunnel as the receive side sees it: which peer, VLAN and session it talks to, and whether it is on. */
export interface FrameSink extends FrameSource {
  /** The peer's address through port `port` as a number (macKey), or -1 when the tunnel has no path there. */
  peerKey(port: number): number;
  vlan(): number;
  session(): number;
  readonly enabled: boolean;
  receive(frame: Uint8Array, at: number, end: number, port: number): void;
  /** Whether MACsec frames under `sci` belong to this tunnel (it protects, and `sci` is its peer's). */
  acceptsSci(sci: Uint8Array | null): boolean;
  receiveMacsec(frame: Uint8Array, tag: SecTag | string, sci: Uint8Array | null, port: number): void;
}

/**
 * The tunnel a frame from `peer` through port `port` on VLAN `vid` with tunnel session `session` goes to: the enabled
 * tunnel of that peer and VLAN whose session it is; else, so that the frame is counted there by
 * reason, an enabled tunnel of that peer and VLAN (RxWrongSession: an old or foreign session), else
 * a disabled one (RxWhileDisabled); null when no tunnel has that peer and VLAN (rxUnknownPeer: no
 * session at all). Several tunnels can name the same peer (a host card that pairs again with a
 * rebooted chassis card on another port while the old port is still shutting): the one in
 * session wins, whatever the order of the tunnels.
 */
export function sessionSink(sinks: readonly FrameSink[], port: number, peer: number, vid: number, session: number): FrameSink | null {
  let best: FrameSink | null = null;
  let rank = 0;
  for (const sink of sinks) {
    if (sink.peerKey(port) !== peer || sink.vlan() !== vid) continue;
    const r = !sink.enabled ? 1 : sink.session() !== session ? 2 : 3;
    if (r === 3) return sink;
    if (r > rank) [best, rank] = [sink, r];
  }
  return best;
}

/**
 * The tunnel a MACsec frame from `peer` through port `port` on VLAN `vid` under `sci` goes to: the enabled tunnel of
 * that peer and VLAN whose receive SC it is; else, to be counted there (RxUnknownSci, or
 * RxWhileDisabled), one of that peer and VLAN; null when none has that peer and VLAN.
 */
export function macsecSink(sinks: readonly FrameSink[], port: number, peer: number, vid: number, sci: Uint8Array | null): FrameSink | null {
  let best: FrameSink | null = null;
  let rank = 0;
  for (const sink of sinks) {
    if (sink.peerKey(port) !== peer || sink.vlan() !== vid) continue;
    const r = !sink.enabled ? 1 : !sink.acceptsSci(sci) ? 2 : 3;
    if (r === 3) return sink;
    if (r > rank) [best, rank] = [sink, r];
  }
  return best;
}

/** Largest CONTROL frame, FCS excluded: a tagged frame with a 1500-byte payload. */
export const MAX_CONTROL_FRAME = 1518;

export interface MacCounters {
  rxFrames: number;
  rxRunts: number;
  rxOversize: number;
  rxFcsErrors: number;
  rxNotForUs: number;
  rxOtherEtherType: number;
  rxUnknownPeer: number;
  rxControl: number;
  /** CONTROL frames longer than the firmware's mailbox takes (1518 bytes without FCS), dropped. */
  rxControlOversize: number;
  /** CONTROL frames of a VLAN other than `controlVlan` and `managementVlan` (or untagged while `controlVlan` is set), dropped. */
  rxControlFiltered: number;
  txFrames: number;
  txDropped: number;
  /** PFC frames received (802.1Qbb), honoured; other MAC Control frames count in rxOtherEtherType. */
  rxPause: number;
}

export class CardMac implements PortDevice {
  readonly counters: MacCounters = {
    rxFrames: 0, rxRunts: 0, rxOversize: 0, rxFcsErrors: 0, rxNotForUs: 0, rxOtherEtherType: 0, rxUnknownPeer: 0, rxControl: 0, rxControlOversize: 0,
    rxControlFiltered: 0, txFrames: 0, txDropped: 0, rxPause: 0,
  };
  private port: EthernetPort | null = null;
  private readonly sinks: FrameSink[] = [];
  private readonly sources: FrameSource[] = [];
  private turn = 0;
  private readonly key: number;
  private readonly pause = new PauseState();
  private readonly resume = () => this.kick();
  /**
   * CardReg.ControlVlan: the VLAN whose CONTROL frames reach the firmware (its group's), or 0
   * for every frame. Filtering here keeps the other groups' discovery traffic, flooded through
   * a switched network, off the firmware's mailbox.
   */
  controlVlan = 0;
  /**
   * CardReg.ManagementVlan: a second VLAN whose CONTROL frames reach the firmware while
   * `controlVlan` filters (management requests, docs/management.md), or 0 for none.
   */
  managementVlan = 0;
  /** Control frames (FrameKind.Control) for the firmware, with the tunnel they came through or null. */
  onControl: ((frame: Uint8Array, tunnel: FrameSink | null) => void) | null = null;
  /** The port's link went down or came up. */
  onCarrier: ((up: boolean) => void) | null = null;
  /** A frame went to the port: the card's other MACs may take what this one's sources still have. */
  onSent: (() => void) | null = null;

  /** `index`: the port's number on the card (PortReg blocks, a tunnel's paths). */
  constructor(readonly address: Uint8Array, private readonly scheduler: Scheduler, readonly index = 0, readonly maxMtu = 9000) {
    this.key = macKey(address);
  }

  /** Whether a cable is plugged in (PortStatus.Connected). */
  get connected(): boolean {
    return this.port !== null;
  }

  /** Carrier (PortStatus.Carrier). */
  get up(): boolean {
    return this.port?.up ?? false;
  }

  /** The port is free to take a frame now (connected, carrier, nothing on the wire or queued). */
  get idle(): boolean {
    return this.port !== null && this.port.up && !this.port.busy;
  }

  /** Whether some priority is paused by the switch now (PortStatus.TxPaused). */
  get paused(): boolean {
    return this.pause.any(this.scheduler.now);
  }

  /** Frames dropped on receive other than for a bad FCS (PortReg.RxDropped). */
  get rxDropped(): number {
    const c = this.counters;
    return c.rxRunts + c.rxOversize + c.rxNotForUs + c.rxOtherEtherType + c.rxUnknownPeer + c.rxControlOversize + c.rxControlFiltered;
  }

  connect(port: EthernetPort): void {
    this.port = port;
    port.attach(this);
  }

  addTunnel(tunnel: FrameSink): void {
    this.sinks.push(tunnel);
    this.sources.push(tunnel);
  }

  addSource(source: FrameSource): void {
    this.sources.push(source);
  }

  /** Something has a frame to send: start at once if the port is idle. */
  kick(): void {
    if (this.port && !this.port.busy) this.pump();
  }

  transmitIdle(): void {
    this.pump();
  }

  private pump(): void {
    const port = this.port;
    if (!port || !port.up) return;
    const n = this.sources.length;
    const now = this.scheduler.now;
    for (let i = 0; i < n; i++) {
      const source = this.sources[(this.turn + i) % n];
      if (this.pause.mask !== 0 && this.pause.paused(source.priority(this.index), now)) continue;
      const frame = source.nextFrame(this.index);
      if (!frame) continue;
      this.turn = (this.turn + i + 1) % n;
      if (port.send(frame)) this.counters.txFrames++;
      else this.counters.txDropped++;
      this.onSent?.();
      return;
    }
  }

  carrier(up: boolean): void {
    if (!up) this.pause.clear();
    this.onCarrier?.(up);
    if (up) this.kick();
  }

  receive(frame: Uint8Array): void {
    const c = this.counters;
    if (frame.length < MIN_FRAME) {
      c.rxRunts++;
      return;
    }
    if (frame.length > maxFrameSize(this.maxMtu, isTagged(frame))) {
      c.rxOversize++;
      return;
    }
    if (!fcsValid(frame)) {
      c.rxFcsErrors++;
      return;
    }
    if (macKey(frame, 0) !== this.key && !isMulticast(frame, 0)) {
      c.rxNotForUs++;
      return;
    }
    if (isMacControl(frame)) {
      const request = decodePfc(frame);
      if (request === null) {
        c.rxOtherEtherType++;
        return;
      }
      c.rxPause++;
      const port = this.port;
      if (port === null) return;
      const ends = this.pause.apply(request, this.scheduler.now, port.rateBps);
      if (ends > 0) this.scheduler.at(ends, this.resume);
      this.kick();
      return;
    }
    const at = payloadOffset(frame);
    const etherType = (frame[at - 2] << 8) | frame[at - 1];
    if (etherType === ETHERTYPE_MACSEC) {
      c.rxFrames++;
      const tag = parseSecTag(frame);
      const sci = typeof tag === "string" ? null : frameSci(frame, tag);
      const sink = macsecSink(this.sinks, this.index, macKey(frame, MAC_SIZE), vlanOf(frame), sci);
      if (sink) sink.receiveMacsec(frame, tag, sci, this.index);
      else c.rxUnknownPeer++;
      return;
    }
    if (etherType !== ETHERTYPE_IOV) {
      c.rxOtherEtherType++;
      return;
    }
    c.rxFrames++;
    const end = frame.length - FCS_SIZE;
    const session = end - at >= TUNNEL_HEADER ? ((frame[at + 4] << 24) | (frame[at + 5] << 16) | (frame[at + 6] << 8) | frame[at + 7]) >>> 0 : 0;
    const vid = vlanOf(frame);
    const sink = sessionSink(this.sinks, this.index, macKey(frame, MAC_SIZE), vid, session);
    if (end - at >= TUNNEL_HEADER && frame[at + 1] === FrameKind.Control) {
      if (end > MAX_CONTROL_FRAME) {
        c.rxControlOversize++;
        return;
      }
      if (this.controlVlan !== 0 && vid !== this.controlVlan && (this.managementVlan === 0 || vid !== this.managementVlan)) {
        c.rxControlFiltered++;
        return;
      }
      c.rxControl++;
      this.onControl?.(frame, sink);
      return;
    }
    if (!sink) {
      c.rxUnknownPeer++;
      return;
    }
    sink.receive(frame, at, end, this.index);
  }
}
