// A PCIe link between two ports, as the transaction layer sees it: TLPs leave in order at the
// link's data rate, each paying its physical and data link layer framing, and arrive after a
// fixed latency. Used for the server's root port to the host card, and for each chassis slot.
// Flow control: a receiver that offers it (PcieDevice.accepts, the card: its tunnels' send
// queues, TunnelReg.QueueBytes) holds TLPs back at the sender until it has room, as its credits
// would, per class under the ordering rules (PCIe Base 2.4.1): a posted request passes requests
// and completions that wait, nothing passes a posted request, and each class stays in order. A
// receiver without it takes everything at once, as the server's memory and the devices do.

import { TlpClass, tlpClass } from "./tlp.ts";
import type { Scheduler } from "../scheduler.ts";

export interface PcieLinkConfig {
  /** Generation: 1 (2.5 GT/s, 8b/10b), 2 (5 GT/s, 8b/10b), 3 (8 GT/s, 128b/130b), 4 (16 GT/s), 5 (32 GT/s). */
  generation: 1 | 2 | 3 | 4 | 5;
  lanes: 1 | 2 | 4 | 8 | 16;
  /** One-way latency of PHY, data link layer and flight: from the last byte sent to the last byte received. */
  latencyNs: number;
}

const TRANSFER_RATE_GT = { 1: 2.5, 2: 5, 3: 8, 4: 16, 5: 32 } as const;

/**
 * Framing a TLP pays on the link, in bytes. Gen1/2: STP and END symbols (2), sequence number
 * (2), LCRC (4). Gen3 and later: a 4-byte STP token that holds the sequence number, LCRC (4).
 * Eight bytes either way.
 */
export const TLP_FRAMING_BYTES = 8;

/** Payload bytes per ns of the link after line encoding. */
export function linkBytesPerNs(config: Pick<PcieLinkConfig, "generation" | "lanes">): number {
  const efficiency = config.generation <= 2 ? 8 / 10 : 128 / 130;
  return (TRANSFER_RATE_GT[config.generation] * config.lanes * efficiency) / 8;
}

/**
 * Sustained payload rate of a stream of writes of `payload` bytes with a `header`-byte
 * header, allowing `dllpShare` of the link for acknowledgement and flow-control DLLPs.
 */
export function writeStreamBytesPerNs(config: Pick<PcieLinkConfig, "generation" | "lanes">, payload: number, header: number, dllpShare = 0.03): number {
  const perTlp = payload + header + TLP_FRAMING_BYTES;
  return linkBytesPerNs(config) * (1 - dllpShare) * (payload / perTlp);
}

/** Anything at one end of a link: it is given a way to send, and receives what arrives. */
export interface PcieDevice {
  connect(send: (tlp: Uint8Array) => void): void;
  receive(tlp: Uint8Array): void;
  /** Flow control: whether the device has room for `tlp` now; without it, it always has. */
  accepts?(tlp: Uint8Array): boolean;
  /** Set by the link when the device offers flow control: the device calls it when it has room again. */
  onRoom?: () => void;
}

export interface PcieEnd {
  /** Called with each TLP arriving at this end. */
  onTlp: ((tlp: Uint8Array) => void) | null;
  send(tlp: Uint8Array): void;
}

/**
 * Under flow control a sender has at most the link's latency times its rate in flight, plus this:
 * enough to keep the link busy, while the receiver, which cannot see what is in flight, takes at
 * most that much beyond its limit (its credits would cover the same).
 */
const FLIGHT_MARGIN_BYTES = 512;

/** The TLPs of one class a sender holds back for want of room at the receiver, with their submission order: a FIFO. */
class Waiting {
  private tlps: Uint8Array[] = [];
  private order: number[] = [];
  private head = 0;

  get size(): number {
    return this.tlps.length - this.head;
  }

  /** The submission order of the oldest, Infinity when empty. */
  get first(): number {
    return this.size ? this.order[this.head] : Infinity;
  }

  peek(): Uint8Array {
    return this.tlps[this.head];
  }

  push(tlp: Uint8Array, order: number): void {
    this.tlps.push(tlp);
    this.order.push(order);
  }

  shift(): Uint8Array {
    const tlp = this.tlps[this.head++];
    if (this.head > 1024 && this.head * 2 > this.tlps.length) {
      this.tlps = this.tlps.slice(this.head);
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    return tlp;
  }

  clear(): void {
    this.tlps = [];
    this.order = [];
    this.head = 0;
  }
}

class Direction implements PcieEnd {
  onTlp: ((tlp: Uint8Array) => void) | null = null;
  peer!: Direction;
  /** The receiver's flow control (PcieDevice.accepts), or null: it takes everything. */
  gate: ((tlp: Uint8Array) => boolean) | null = null;
  private freeAt = 0;
  /** Bumped when the link goes down: TLPs sent before it are lost. */
  private epoch = 0;
  private readonly waiting = [new Waiting(), new Waiting(), new Waiting()];
  private submitted = 0;
  /** Bytes sent and not yet arrived; with flow control, at most `flightLimit`. */
  private flightBytes = 0;
  private readonly flightLimit: number;

  constructor(private readonly scheduler: Scheduler, private readonly config: PcieLinkConfig, private readonly bytesPerNs: number) {
    this.flightLimit = Math.ceil(config.latencyNs * bytesPerNs) + FLIGHT_MARGIN_BYTES;
  }

  /** Under flow control: the receiver has room (as far as it can tell: what is in flight has not reached it) and the flight window is open. */
  private mayGo(tlp: Uint8Array): boolean {
    return this.flightBytes < this.flightLimit && this.gate!(tlp);
  }

  /** TLPs held back for want of room at the receiver. */
  get held(): number {
    return this.waiting[0].size + this.waiting[1].size + this.waiting[2].size;
  }

  send(tlp: Uint8Array): void {
    const cls = tlpClass(tlp);
    if (this.gate === null || cls < 0 || (this.held === 0 && this.mayGo(tlp))) {
      this.transmit(tlp);
      return;
    }
    this.waiting[cls].push(tlp, this.submitted++);
    this.resume();
  }

  /**
   * The receiver has room again: sends what waits while it takes it, at most `max` TLPs, oldest first
   * among the heads the ordering rules let go (a request or completion never passes an older posted
   * request). Returns how many went.
   */
  resume(max = Infinity): number {
    if (this.gate === null) return 0;
    for (let sent = 0; ; sent++) {
      if (sent === max) return sent;
      const postedOrder = this.waiting[TlpClass.Posted].first;
      let go = -1;
      for (let cls = 0; cls < this.waiting.length; cls++) {
        const w = this.waiting[cls];
        if (w.size === 0 || (cls !== TlpClass.Posted && w.first > postedOrder)) continue;
        if ((go === -1 || w.first < this.waiting[go].first) && this.mayGo(w.peek())) go = cls;
      }
      if (go === -1) return sent;
      this.transmit(this.waiting[go].shift());
    }
  }

  private transmit(tlp: Uint8Array): void {
    const start = Math.max(this.scheduler.now, this.freeAt);
    this.freeAt = start + (tlp.length + TLP_FRAMING_BYTES) / this.bytesPerNs;
    const arrival = Math.ceil(this.freeAt + this.config.latencyNs);
    const epoch = this.epoch;
    this.flightBytes += tlp.length;
    this.scheduler.at(arrival, () => {
      if (epoch !== this.epoch) return;
      this.flightBytes -= tlp.length;
      this.peer.onTlp?.(tlp);
      if (this.held > 0) this.resume();
    });
  }

  /** The link went down: what is in flight is lost. */
  drop(): void {
    this.epoch++;
    this.freeAt = 0;
    this.flightBytes = 0;
    for (const w of this.waiting) w.clear();
  }
}

export class PcieLink {
  /** The upstream end (root port, or the chassis card's slot port). */
  readonly up: PcieEnd;
  /** The downstream end (the card or device plugged in). */
  readonly down: PcieEnd;
  private readonly directions: Direction[];

  constructor(scheduler: Scheduler, readonly config: PcieLinkConfig) {
    const rate = linkBytesPerNs(config);
    const up = new Direction(scheduler, config, rate);
    const down = new Direction(scheduler, config, rate);
    up.peer = down;
    down.peer = up;
    this.up = up;
    this.down = down;
    this.directions = [up, down];
  }

  /** A fundamental reset retrains the link: TLPs in flight either way are lost. */
  reset(): void {
    for (const d of this.directions) d.drop();
  }

  /** Plugs `device` into the downstream end of the link. */
  plugDown(device: PcieDevice): void {
    device.connect((tlp) => this.down.send(tlp));
    this.down.onTlp = (tlp) => device.receive(tlp);
    this.offerFlowControl(device, this.directions[0]);
  }

  /** Plugs `device` (a root port, a slot's port) into the upstream end of the link. */
  plugUp(device: PcieDevice): void {
    device.connect((tlp) => this.up.send(tlp));
    this.up.onTlp = (tlp) => device.receive(tlp);
    this.offerFlowControl(device, this.directions[1]);
  }

  /** A device with flow control holds back `toward`, the direction that sends to it. */
  private offerFlowControl(device: PcieDevice, toward: Direction): void {
    if (!device.accepts) return;
    toward.gate = (tlp) => device.accepts!(tlp);
    device.onRoom = () => toward.resume();
  }

  /**
   * Flow control for what arrives at the upstream end (a slot's port: what its device sends):
   * `accepts` says whether there is room; the returned function resumes the device's sending, at
   * most `max` TLPs, and says how many went.
   */
  holdUpstream(accepts: (tlp: Uint8Array) => boolean): (max?: number) => number {
    const toward = this.directions[1];
    toward.gate = accepts;
    return (max) => toward.resume(max);
  }
}
