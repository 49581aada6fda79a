// The chassis card's PCIe side: the root of the chassis slots. TLPs that arrive through the
// tunnel are replayed on the link of the slot their record names; everything a device sends
// (completions, DMA requests, MSI writes) goes back through the tunnel tagged with its slot.
// A non-posted request for an empty slot is completed with Unsupported Request, as a
// downstream port with no device behind it would. The card's SlotReset register asserts a
// slot's PERST#: the device returns to its power-on state and the slot's link retrains,
// losing what was in flight.

import { PcieLink, type PcieDevice, type PcieLinkConfig } from "./link.ts";
import { decodeTlp, encodeTlp, isMalformed, tlpClass, CplStatus, TlpClass } from "./tlp.ts";
import { errorCompletion, isNonPosted } from "./completer.ts";
import type { Scheduler } from "../scheduler.ts";

/**
 * What a slot holds: anything that takes TLPs and can be given a way to send them, and
 * that a fundamental reset (PERST#) returns to its power-on state.
 */
export interface SlotDevice extends PcieDevice {
  reset?(): void;
}

/** Where the chassis sends upstream TLPs: its tunnel toward the host card. */
export interface Uplink {
  submit(tlp: Uint8Array, slot: number): boolean;
  /** Flow control: whether its send queue takes more TLPs of class `cls` now (TunnelEngine.hasRoom); without it, always. */
  hasRoom?(cls: TlpClass): boolean;
  /** Flow control: calls `listener` when the send queue has room again (TunnelEngine.onRoom). */
  onRoom?(listener: () => void): void;
}

export interface ChassisCounters {
  downstreamTlps: number;
  upstreamTlps: number;
  /** Requests for an empty slot (answered UR when non-posted). */
  emptySlot: number;
  /** TLPs the tunnel refused or that were malformed on the way to an empty slot. */
  dropped: number;
}

export const DEFAULT_SLOT_LINK: PcieLinkConfig = { generation: 3, lanes: 4, latencyNs: 150 };

export class ChassisRoot {
  readonly counters: ChassisCounters = { downstreamTlps: 0, upstreamTlps: 0, emptySlot: 0, dropped: 0 };
  private readonly links: (PcieLink | null)[];
  private readonly devices: (SlotDevice | null)[];
  /** Per slot: resumes its device's sending once the tunnel has room; the slot served first next time. */
  private readonly resumers: ((max?: number) => number)[] = [];
  private nextResumed = 0;

  constructor(private readonly scheduler: Scheduler, private readonly uplink: Uplink, slots: number) {
    this.links = new Array(slots).fill(null);
    this.devices = new Array(slots).fill(null);
    uplink.onRoom?.(() => this.room());
  }

  /** Number of slots. */
  get slots(): number {
    return this.links.length;
  }

  /** The device in `slot`, or null. */
  device(slot: number): SlotDevice | null {
    return this.devices[slot] ?? null;
  }

  /**
   * CardReg.SlotReset: a fundamental reset of the device in each slot whose bit is set in
   * `slots`: the link drops what is in flight and the device returns to its power-on state.
   * An empty slot's bit does nothing. False, and nothing reset, for a bit beyond the slots.
   */
  resetSlots(slots: number): boolean {
    if (this.links.length < 32 && slots >>> this.links.length !== 0) return false;
    this.links.forEach((link, slot) => {
      if (!link || ((slots >>> slot) & 1) === 0) return;
      link.reset();
      this.devices[slot]?.reset?.();
    });
    return true;
  }

  /** Which slots hold a device, bit per slot: what the card's slot links report (CardReg.SlotsPresent). */
  slotsPresent(): number {
    return this.links.reduce((bits, link, slot) => (link ? bits | (1 << slot) : bits), 0);
  }

  /** Plugs `device` into `slot` over a PCIe link. */
  plug(slot: number, device: SlotDevice, config: PcieLinkConfig = DEFAULT_SLOT_LINK): void {
    if (this.links[slot]) throw new Error(`slot ${slot} is occupied`);
    const link = new PcieLink(this.scheduler, config);
    link.plugDown(device);
    link.up.onTlp = (tlp) => this.toHost(tlp, slot);
    if (this.uplink.hasRoom) this.resumers.push(link.holdUpstream((tlp) => this.uplink.hasRoom!(tlpClass(tlp) as TlpClass)));
    this.links[slot] = link;
    this.devices[slot] = device;
  }

  /**
   * The tunnel's send queue has room again: the slots' devices may go on sending, a TLP each in
   * turn (round robin, from the slot after the one served first last time), while there is room.
   */
  room(): void {
    const n = this.resumers.length;
    if (n === 0) return;
    const first = this.nextResumed;
    this.nextResumed = (first + 1) % n;
    for (let progress = true; progress;) {
      progress = false;
      for (let i = 0; i < n; i++) if (this.resumers[(first + i) % n](1) > 0) progress = true;
    }
  }

  private toHost(tlp: Uint8Array, slot: number): void {
    this.counters.upstreamTlps++;
    if (!this.uplink.submit(tlp, slot)) this.counters.dropped++;
  }

  /** A TLP from the tunnel for chassis slot `slot`. */
  fromHost(tlp: Uint8Array, slot: number): void {
    const link = this.links[slot];
    if (link) {
      this.counters.downstreamTlps++;
      link.up.send(tlp);
      return;
    }
    this.counters.emptySlot++;
    const decoded = decodeTlp(tlp);
    if (isMalformed(decoded)) {
      this.counters.dropped++;
      return;
    }
    if (isNonPosted(decoded)) this.toHost(encodeTlp(errorCompletion(decoded, 0, CplStatus.UnsupportedRequest)), slot);
  }
}
