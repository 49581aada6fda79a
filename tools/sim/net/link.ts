// A full-duplex point-to-point cable between two Ethernet ports (docs/network.md).
//
// Each direction: the sending end's egress queue (finite, tail drop) → serialisation at the
// line rate, (frame + WIRE_OVERHEAD) × 8 bits → PHY latency → propagation, 5 ns per metre →
// impairments → the receiving device's receive(). Times are tracked exactly: the wire's
// "free at" instant is kept as whole ns plus a picosecond remainder, so back-to-back frames
// leave at exactly the line rate; every event lands on the next whole ns at or after the
// exact instant (ceil).
//
// The per-frame path allocates nothing but the scheduler entry: a frame's start and arrival
// times live in a ring (ring.ts), arrivals are in FIFO order so only the head's delivery is
// ever scheduled (one pre-bound action, re-armed by each delivery), and the egress queue is
// drained lazily by comparing start times with `now` instead of by a "transmit done" event.

import { WIRE_OVERHEAD } from "../../../board/ethernet/frame.ts";
import type { EthernetPort, PortDevice } from "../../../board/ethernet/port.ts";
import type { Scheduler } from "../../../board/scheduler.ts";
import { FrameRing } from "./ring.ts";
import { Impairments, impairmentsActive, type ImpairmentConfig, type Outage } from "./impairments.ts";

/** Signal propagation in copper or fibre: about two thirds of c. */
export const PROPAGATION_NS_PER_M = 5;

export const LINK_DEFAULTS = {
  /** 10 Gb/s. */
  rateBps: 10e9,
  /** A 3 m patch cable or direct-attach copper cable. */
  lengthM: 3,
  /** Transmit plus receive PHY (PCS/PMA and SerDes) of 10GBASE-SR/25GBASE-SR optics: 2 × 40 ns. */
  phyLatencyNs: 80,
  /** Egress buffer per port: 128 KiB, about 105 µs of drain at 10 Gb/s. */
  bufferBytes: 128 * 1024,
} as const;

export interface LinkEndConfig {
  /** Port name; default "<link id>.a" / "<link id>.b". */
  name?: string;
  /** Egress buffer in bytes for frames waiting behind the one on the wire. */
  bufferBytes?: number;
}

export interface LinkConfig {
  /** Line rate in bit/s, the same both ways (1e9, 10e9, 25e9, 40e9; any rate that is a whole number of ps per bit). */
  rateBps?: number;
  /** Cable length in metres. */
  lengthM?: number;
  /** Transmit + receive PHY latency per direction, in ns. */
  phyLatencyNs?: number;
  a?: LinkEndConfig;
  b?: LinkEndConfig;
  /** Impairments of frames sent by end a (delivered to b). */
  aToB?: ImpairmentConfig;
  /** Impairments of frames sent by end b (delivered to a). */
  bToA?: ImpairmentConfig;
  /** Scheduled outages of the whole cable, in time order, not overlapping. */
  outages?: Outage[];
  /** Scenario seed for the impairment streams. Default 0. */
  seed?: number;
}

/** Counters of one direction. Invariant: sent + duplicated = delivered + tailDrop + lost + downDrop + in flight. */
export interface DirectionCounters {
  /** Every send() call, accepted or not. */
  sentFrames: number;
  sentBytes: number;
  /** Frames handed to the receiving device (corrupted frames and duplicates included). */
  deliveredFrames: number;
  deliveredBytes: number;
  tailDropFrames: number;
  tailDropBytes: number;
  /** Lost by the Bernoulli or Gilbert–Elliott loss models. */
  lostFrames: number;
  corruptedFrames: number;
  duplicatedFrames: number;
  /** Frames held back by the reorder impairment. */
  reorderedFrames: number;
  /** Refused while down, flushed from the queue or lost in flight at link down. */
  downDropFrames: number;
  /** Highest egress queue occupancy seen, in bytes. */
  peakQueuedBytes: number;
}

function zeroCounters(): DirectionCounters {
  return {
    sentFrames: 0, sentBytes: 0, deliveredFrames: 0, deliveredBytes: 0, tailDropFrames: 0, tailDropBytes: 0,
    lostFrames: 0, corruptedFrames: 0, duplicatedFrames: 0, reorderedFrames: 0, downDropFrames: 0, peakQueuedBytes: 0,
  };
}

/** One end of a link: the EthernetPort a device sends on, and the state of its egress direction. */
export class LinkPort implements EthernetPort {
  readonly name: string;
  readonly rateBps: number;
  readonly bufferBytes: number;
  /** Counters of the direction this end transmits. */
  readonly counters: DirectionCounters = zeroCounters();
  device: PortDevice | null = null;
  peer!: LinkPort;

  private readonly scheduler: Scheduler;
  private readonly psPerByte: number;
  private readonly latencyPs: number;
  private readonly impair: Impairments | null;
  // Frames accepted and not yet delivered; x = ceil(start of serialisation), y = arrival (ns).
  private readonly ring = new FrameRing();
  // The first `started` ring entries have begun serialisation (as of the last retire()).
  private started = 0;
  private queued = 0;
  // Exact end of the last serialisation: freeNs + freePs / 1000.
  private freeNs = 0;
  private freePs = 0;
  private busyUntil = 0;
  private deliverHandle = 0;
  private idleHandle = 0;
  // Frames held back by reordering, not yet delivered.
  private held = 0;
  private readonly deliverAction = () => this.deliver();
  private readonly idleAction = () => this.idle();

  constructor(readonly link: Link, name: string, scheduler: Scheduler, rateBps: number, bufferBytes: number, latencyPs: number, impair: Impairments | null) {
    this.name = name;
    this.rateBps = rateBps;
    this.bufferBytes = bufferBytes;
    this.scheduler = scheduler;
    this.psPerByte = 8e12 / rateBps;
    this.latencyPs = latencyPs;
    this.impair = impair;
  }

  get up(): boolean {
    return this.link.up;
  }

  get busy(): boolean {
    return this.busyUntil > this.scheduler.now;
  }

  get queuedBytes(): number {
    this.retire(this.scheduler.now);
    return this.queued;
  }

  /** Frames accepted and not yet delivered or dropped (queued, on the wire, propagating, held back). */
  get inFlight(): number {
    return this.ring.size + this.held;
  }

  attach(device: PortDevice): void {
    this.device = device;
  }

  send(frame: Uint8Array): boolean {
    const c = this.counters;
    const len = frame.length;
    c.sentFrames++;
    c.sentBytes += len;
    if (!this.link.up) {
      c.downDropFrames++;
      return false;
    }
    const now = this.scheduler.now;
    const ring = this.ring;
    let startNs: number;
    let startPs: number;
    if (this.busyUntil > now) {
      // The wire is busy: the frame waits in the egress buffer.
      this.retire(now);
      if (this.queued + len > this.bufferBytes) {
        c.tailDropFrames++;
        c.tailDropBytes += len;
        return false;
      }
      startNs = this.freeNs;
      startPs = this.freePs;
      this.queued += len;
      if (this.queued > c.peakQueuedBytes) c.peakQueuedBytes = this.queued;
    } else {
      // The wire is idle: everything before has left the queue; this frame starts now.
      startNs = now;
      startPs = 0;
      this.queued = 0;
      this.started = ring.size + 1;
    }
    let endPs = startPs + (len + WIRE_OVERHEAD) * this.psPerByte;
    const endNs = startNs + Math.floor(endPs / 1000);
    endPs %= 1000;
    this.freeNs = endNs;
    this.freePs = endPs;
    this.busyUntil = endPs > 0 ? endNs + 1 : endNs;
    const arriveNs = endNs + Math.ceil((endPs + this.latencyPs) / 1000);
    ring.push(frame, startPs > 0 ? startNs + 1 : startNs, arriveNs);
    if (this.deliverHandle === 0) this.deliverHandle = this.scheduler.at(arriveNs, this.deliverAction);
    if (this.idleHandle === 0 && this.device?.transmitIdle) this.idleHandle = this.scheduler.at(this.busyUntil, this.idleAction);
    return true;
  }

  /** Moves frames whose serialisation has begun out of the queue count. */
  private retire(now: number): void {
    const ring = this.ring;
    while (this.started < ring.size) {
      const i = ring.index(this.started);
      if (ring.x[i] > now) break;
      this.queued -= ring.frames[i]!.length;
      this.started++;
    }
  }

  private deliver(): void {
    this.deliverHandle = 0;
    const ring = this.ring;
    if (this.started > 0) this.started--;
    else this.queued -= ring.frames[ring.head]!.length; // still counted as waiting: retire() is lazy
    const frame = ring.shift();
    if (ring.size > 0) this.deliverHandle = this.scheduler.at(ring.y[ring.head], this.deliverAction);
    if (this.impair === null) this.hand(frame);
    else this.impaired(frame, this.impair);
  }

  private hand(frame: Uint8Array): void {
    const c = this.counters;
    c.deliveredFrames++;
    c.deliveredBytes += frame.length;
    const peer = this.peer;
    if (this.link.tap !== null) this.link.tap(frame, peer);
    if (peer.device !== null) peer.device.receive(frame, peer);
  }

  private impaired(original: Uint8Array, imp: Impairments): void {
    const c = this.counters;
    if (imp.lose()) {
      c.lostFrames++;
      return;
    }
    let frame = original;
    const corrupted = imp.corrupt(original);
    if (corrupted !== null) {
      frame = corrupted;
      c.corruptedFrames++;
    }
    const twice = imp.duplicate();
    if (twice) c.duplicatedFrames++;
    const delay = imp.holdBack();
    if (delay > 0) {
      c.reorderedFrames++;
      const copies = twice ? 2 : 1;
      this.held += copies;
      const epoch = this.link.epoch;
      this.scheduler.at(this.scheduler.now + delay, () => {
        if (epoch !== this.link.epoch) return; // lost at a link down meanwhile, already counted
        this.held -= copies;
        this.handCopies(frame, twice);
      });
      return;
    }
    this.handCopies(frame, twice);
  }

  private handCopies(frame: Uint8Array, twice: boolean): void {
    this.hand(frame);
    if (!twice) return;
    if (this.link.up) this.hand(frame);
    else this.counters.downDropFrames++; // the receiver took the link down on the first copy
  }

  private idle(): void {
    this.idleHandle = 0;
    if (this.busyUntil > this.scheduler.now) {
      this.idleHandle = this.scheduler.at(this.busyUntil, this.idleAction);
      return;
    }
    this.device?.transmitIdle?.(this);
  }

  /** Link down (called by Link.setUp): everything queued, on the wire, propagating or held back is lost. */
  flush(): void {
    const now = this.scheduler.now;
    this.counters.downDropFrames += this.ring.size + this.held;
    this.ring.clear();
    this.held = 0;
    this.started = 0;
    this.queued = 0;
    this.freeNs = now;
    this.freePs = 0;
    this.busyUntil = now;
    if (this.deliverHandle !== 0) this.scheduler.cancel(this.deliverHandle);
    if (this.idleHandle !== 0) this.scheduler.cancel(this.idleHandle);
    this.deliverHandle = 0;
    this.idleHandle = 0;
  }
}

/** The hold a scheduled outage (LinkConfig.outages) puts on its cable. */
const OUTAGE = "outage";

/** A cable: `a` and `b` are its two ends. */
export class Link {
  readonly a: LinkPort;
  readonly b: LinkPort;
  readonly rateBps: number;
  readonly lengthM: number;
  readonly phyLatencyNs: number;
  /** PHY latency plus propagation, in ps. */
  readonly latencyPs: number;
  up = true;
  /** Incremented at every link down; frames held back from before are discarded. */
  epoch = 0;
  /** Link up/down history: [time ns, up]. */
  readonly history: { timeNs: number; up: boolean }[] = [];
  /** Sees every frame handed to a receiver (after impairments), e.g. for a pcap writer. */
  tap: ((frame: Uint8Array, to: LinkPort) => void) | null = null;
  private readonly downFor = new Set<string>();

  constructor(private readonly scheduler: Scheduler, readonly id: string, config: LinkConfig = {}) {
    const rate = config.rateBps ?? LINK_DEFAULTS.rateBps;
    if (!(rate > 0) || !Number.isInteger(1e12 / rate)) throw new RangeError(`link ${id}: rateBps ${rate} is not a whole number of picoseconds per bit`);
    const lengthM = config.lengthM ?? LINK_DEFAULTS.lengthM;
    const phy = config.phyLatencyNs ?? LINK_DEFAULTS.phyLatencyNs;
    if (!(lengthM >= 0 && Number.isFinite(lengthM))) throw new RangeError(`link ${id}: lengthM must be >= 0, got ${lengthM}`);
    if (!(phy >= 0 && Number.isFinite(phy))) throw new RangeError(`link ${id}: phyLatencyNs must be >= 0, got ${phy}`);
    this.rateBps = rate;
    this.lengthM = lengthM;
    this.phyLatencyNs = phy;
    this.latencyPs = Math.round(phy * 1000 + lengthM * PROPAGATION_NS_PER_M * 1000);
    const seed = config.seed ?? 0;
    const end = (side: "a" | "b", cfg: LinkEndConfig | undefined, impairments: ImpairmentConfig | undefined) => {
      const buffer = cfg?.bufferBytes ?? LINK_DEFAULTS.bufferBytes;
      if (!(Number.isSafeInteger(buffer) && buffer >= 0)) throw new RangeError(`link ${id}: ${side}.bufferBytes must be a non-negative integer, got ${buffer}`);
      const impair = impairmentsActive(impairments) ? new Impairments(impairments!, seed, `${id}/${side === "a" ? "a>b" : "b>a"}`) : null;
      return new LinkPort(this, cfg?.name ?? `${id}.${side}`, scheduler, rate, buffer, this.latencyPs, impair);
    };
    this.a = end("a", config.a, config.aToB);
    this.b = end("b", config.b, config.bToA);
    this.a.peer = this.b;
    this.b.peer = this.a;
    let last = scheduler.now;
    for (const { downAtNs, upAtNs } of config.outages ?? []) {
      if (!(Number.isSafeInteger(downAtNs) && downAtNs >= last)) throw new RangeError(`link ${id}: outage at ${downAtNs} ns is not an integer time after ${last} ns`);
      if (upAtNs !== undefined && !(Number.isSafeInteger(upAtNs) && upAtNs > downAtNs)) throw new RangeError(`link ${id}: outage up time ${upAtNs} ns must be an integer after ${downAtNs} ns`);
      scheduler.at(downAtNs, () => this.hold(OUTAGE, true));
      if (upAtNs === undefined) {
        last = Infinity;
      } else {
        scheduler.at(upAtNs, () => this.hold(OUTAGE, false));
        last = upAtNs;
      }
    }
  }

  /**
   * Holds the link down for `reason` (a scheduled outage, a pulled cable, a failed switch
   * port), or lets go of that hold; the link is up while nothing holds it down, so a cable
   * pulled while its switch port is failed stays down when the port comes back.
   */
  hold(reason: string, down: boolean): void {
    if (down) this.downFor.add(reason);
    else this.downFor.delete(reason);
    this.setUp(this.downFor.size === 0);
  }

  /** What holds the link down now (empty while it is up, unless setUp(false) took it down directly). */
  holds(): string[] {
    return [...this.downFor];
  }

  /** Takes the cable down or up now; both devices get carrier(up) (end a first). */
  setUp(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    this.history.push({ timeNs: this.scheduler.now, up });
    if (!up) {
      this.epoch++;
      this.a.flush();
      this.b.flush();
    }
    this.a.device?.carrier?.(up, this.a);
    this.b.device?.carrier?.(up, this.b);
  }

  /** The time a lone frame of `bytes` (FCS included) sent at an integer ns on an idle link takes to arrive. */
  transitNs(bytes: number): number {
    return Math.ceil(((bytes + WIRE_OVERHEAD) * (8e12 / this.rateBps) + this.latencyPs) / 1000);
  }

  counters(): { up: boolean; aToB: DirectionCounters; bToA: DirectionCounters } {
    return { up: this.up, aToB: { ...this.a.counters }, bToA: { ...this.b.counters } };
  }
}
