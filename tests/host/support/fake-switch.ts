// A TypeScript fake of the host card as the server sees it, for testing the server's pciehp
// without firmware, tunnels or chassis: a PCIe switch — upstream port (1fff:0001) and
// downstream ports (1fff:0002) on its internal bus, devices 0..N-1 — whose downstream ports
// keep the hot-plug contract of the real card's virtual ports (docs/hotplug.md, "The device
// side"), and behind each port a chassis device on a PCIe link of its own instead of a tunnel.
//
// Each downstream port: Type 1 header; PCI Express capability v2 at 0x40 (Downstream Port,
// Slot Implemented; LnkCap DL Link Active Reporting; SltCap Hot-Plug Capable and Surprise,
// Command Completed supported, Physical Slot Number index + 1, no power controller or MRL;
// optionally an Attention Button, a Power Indicator and an Attention Indicator); MSI at 0x80
// (64-bit, one vector). Every Slot Control write sets Command Completed at once; an MSI goes
// out when (MSI Enable && Bus Master && Hot-Plug Interrupt Enable && an enabled event is set)
// goes from false to true. A cable pull cuts the device off at once and, after the card's
// 20 ms grace, clears Presence Detect State and DL Link Active, sets Presence Detect Changed
// and DL State Changed, and completes every request held for the slot with Unsupported
// Request; later requests below the port get UR at once. An insertion sets presence and DL
// Link Active and both events. A press of the Attention Button (a chassis asking for an
// orderly removal) sets Attention Button Pressed; the card then takes the first Slot Control
// write that turns the Power Indicator Off as the removal being complete.

import { ConfigSpace, Command, defineType1Header, type Type1Header } from "../../../board/pcie/config-space.ts";
import { addExpress, addMsi, PortType, LinkSpeed, SltCtl, SltSta, Indicator, type ExpressCapability, type MsiCapability } from "../../../board/pcie/capabilities.ts";
import { decodeTlp, encodeTlp, isMalformed, CplStatus, TlpType, DEFAULT_COMMON, type Tlp } from "../../../board/pcie/tlp.ts";
import { configCompletion, errorCompletion, isNonPosted } from "../../../board/pcie/completer.ts";
import { PcieLink, type PcieDevice } from "../../../board/pcie/link.ts";
import { DEFAULT_SLOT_LINK } from "../../../board/pcie/chassis-root.ts";
import { SWITCH_VENDOR_ID, SWITCH_UPSTREAM_DEVICE_ID, SWITCH_DOWNSTREAM_DEVICE_ID, SwitchCapability } from "../../../board/map/pcie.ts";
import type { Scheduler } from "../../../board/scheduler.ts";

/** The card's grace before a lost cable counts as a link down. */
export const CABLE_GRACE_NS = 20_000_000;
/** Link width a port reports while its link is up. */
const LINK_WIDTH = 4;

export interface FakeSwitchOptions {
  /** Downstream ports (default 8). */
  ports?: number;
  /** Ports set Command Completed when Slot Control is written (default true); false: a broken port that never does. */
  commandCompleted?: boolean;
  /** LnkCap DL Link Active Reporting Capable (default true). */
  dlActiveReporting?: boolean;
  /** From a cable pull to the link reported down (default CABLE_GRACE_NS). */
  graceNs?: number;
  /** SltCap Attention Button Present (default false). */
  attentionButton?: boolean;
  /** SltCap Power Indicator Present (default false); resets to On. */
  powerIndicator?: boolean;
  /** SltCap Attention Indicator Present (default false); resets to Off. */
  attentionIndicator?: boolean;
}

/** A Slot Control write a port received: the register after it. */
export interface SlotControlWrite {
  timeNs: number;
  value: number;
}

/** A request below a downstream port, as the fake saw it (tests check timings and what was polled). */
export interface RequestBelow {
  timeNs: number;
  port: number;
  kind: Tlp["kind"];
  /** Configuration register number (DW) for configuration requests. */
  register?: number;
  device?: number;
  /** What happened to it: sent down the slot's link, held during the grace, or answered Unsupported Request. */
  outcome: "forwarded" | "held" | "unsupported";
}

type LinkState = "down" | "up" | "grace";

export class FakePort {
  readonly config = new ConfigSpace(4096);
  readonly header: Type1Header;
  readonly express: ExpressCapability;
  readonly msi: MsiCapability;
  /** "up": device connected; "grace": cable lost, not declared yet; "down": empty slot. */
  link: LinkState = "down";
  device: PcieDevice | null = null;
  /** Set Command Completed on Slot Control writes. */
  completesCommands: boolean;
  /** MSIs this port sent. */
  msiSent = 0;
  /** Slot Control writes it received. */
  slotControlWrites = 0;
  /** Every Slot Control write, with the register's value after it. */
  readonly slotControlLog: SlotControlWrite[] = [];
  /** When the Attention Button was last pressed; null once the removal it asked for is complete (or never pressed). */
  buttonPressedAt: number | null = null;
  /** When the last removal asked for by a press completed: the first write after the press that turned the Power Indicator Off. */
  removalCompletedAt: number | null = null;
  /** The interrupt condition as last evaluated: an MSI is sent on its rising edge. */
  private interruptLine = false;
  private physical: PcieLink | null = null;
  /** Non-posted requests sent below and not completed, by requester ID and tag. */
  readonly outstanding = new Map<number, Tlp>();

  constructor(readonly index: number, options: FakeSwitchOptions, private readonly scheduler: Scheduler, onRemovalComplete: (port: FakePort) => void) {
    this.completesCommands = options.commandCompleted ?? true;
    this.header = defineType1Header(this.config, { vendorId: SWITCH_VENDOR_ID, deviceId: SWITCH_DOWNSTREAM_DEVICE_ID, io: false, prefetchable: 64 });
    this.express = addExpress(this.config, {
      portType: PortType.DownstreamPort, at: SwitchCapability.Express,
      link: { maxSpeed: LinkSpeed.Gen3, maxWidth: LINK_WIDTH, portNumber: index + 1, dlActiveReporting: options.dlActiveReporting ?? true },
      slot: {
        physicalSlot: index + 1, hotPlugCapable: true, hotPlugSurprise: true,
        attentionButton: options.attentionButton ?? false, powerIndicator: options.powerIndicator ?? false, attentionIndicator: options.attentionIndicator ?? false,
      },
    });
    this.msi = addMsi(this.config, { vectors: 1, address64: true, at: SwitchCapability.Msi });
    this.express.link.negotiatedWidth.set(0);
    this.express.registers.slotControl.onWrite((write) => {
      this.slotControlWrites++;
      this.slotControlLog.push({ timeNs: this.scheduler.now, value: write.value });
      if (this.completesCommands) this.slot.commandCompleted.set(1);
      const powerIndicator = (write.value & SltCtl.PowerIndicator) >> 8;
      if (this.buttonPressedAt !== null && powerIndicator === Indicator.Off && ((write.old & SltCtl.PowerIndicator) >> 8) !== Indicator.Off) {
        this.buttonPressedAt = null;
        this.removalCompletedAt = this.scheduler.now;
        onRemovalComplete(this);
      }
    });
  }

  get slot() {
    return this.express.slot!;
  }

  get reportsDlActive(): boolean {
    return this.express.link.dlLinkActive.reserved === undefined;
  }

  /** Presence, DL Link Active and link width as the link is now. */
  setLinkStatus(up: boolean): void {
    this.slot.presenceDetectState.set(up ? 1 : 0);
    if (this.reportsDlActive) this.express.link.dlLinkActive.set(up ? 1 : 0);
    this.express.link.negotiatedWidth.set(up ? LINK_WIDTH : 0);
  }

  /** The slot's physical link: a new one per insertion, so that nothing of an old one arrives later. */
  attach(scheduler: Scheduler, device: PcieDevice, onTlp: (tlp: Uint8Array) => void): void {
    const link = new PcieLink(scheduler, DEFAULT_SLOT_LINK);
    link.plugDown(device);
    link.up.onTlp = onTlp;
    this.physical = link;
    this.device = device;
  }

  /** Cuts the link: what is on its way in either direction is lost. */
  detach(): void {
    if (this.physical) {
      this.physical.up.onTlp = null;
      this.physical.down.onTlp = null;
    }
    this.physical = null;
  }

  sendDown(tlp: Uint8Array): void {
    this.physical?.up.send(tlp);
  }

  /**
   * The rising-edge rule of PCIe 6.7.3.4 for MSI: returns true when the interrupt condition
   * has just become true (an MSI is due).
   */
  interruptEdge(): boolean {
    const control = this.express.registers.slotControl.get();
    const status = this.express.registers.slotStatus.get();
    const enabled = (control & SltCtl.PresenceDetectEnable ? SltSta.PresenceDetectChanged : 0) |
      (control & SltCtl.CommandCompletedEnable ? SltSta.CommandCompleted : 0) |
      (control & SltCtl.DlStateChangedEnable ? SltSta.DlStateChanged : 0) |
      (control & SltCtl.AttentionButtonEnable ? SltSta.AttentionButtonPressed : 0) |
      (control & SltCtl.PowerFaultEnable ? SltSta.PowerFaultDetected : 0) |
      (control & SltCtl.MrlSensorEnable ? SltSta.MrlSensorChanged : 0);
    const line = this.msi.enabled() && this.header.command.test(Command.BusMaster) && (control & SltCtl.HotPlugInterruptEnable) !== 0 && (status & enabled) !== 0;
    const rising = line && !this.interruptLine;
    this.interruptLine = line;
    return rising;
  }
}

export class FakeHostSwitch implements PcieDevice {
  readonly upstream: { config: ConfigSpace; header: Type1Header };
  readonly ports: FakePort[] = [];
  readonly requestsBelow: RequestBelow[] = [];
  /** Called after a port answered a configuration read of `register` (DW): a test's chance to change the hardware between a driver's read and write. */
  afterPortRead: ((port: FakePort, register: number) => void) | null = null;
  /** Called when a removal asked for by the Attention Button is complete (the Power Indicator went Off): what the card does next, e.g. close the slot. */
  onRemovalComplete: ((index: number) => void) | null = null;
  private upstreamId = 0;
  private send: ((tlp: Uint8Array) => void) | null = null;
  private readonly graceNs: number;

  constructor(private readonly scheduler: Scheduler, options: FakeSwitchOptions = {}) {
    const config = new ConfigSpace(4096);
    const header = defineType1Header(config, { vendorId: SWITCH_VENDOR_ID, deviceId: SWITCH_UPSTREAM_DEVICE_ID, io: false, prefetchable: 64 });
    addExpress(config, { portType: PortType.UpstreamPort, at: SwitchCapability.Express, link: { maxSpeed: LinkSpeed.Gen3, maxWidth: 8 } });
    addMsi(config, { vectors: 1, at: SwitchCapability.Msi });
    this.upstream = { config, header };
    for (let i = 0; i < (options.ports ?? 8); i++) this.ports.push(new FakePort(i, options, scheduler, (port) => this.onRemovalComplete?.(port.index)));
    this.graceNs = options.graceNs ?? CABLE_GRACE_NS;
  }

  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
  }

  // ---- the slots, as the test drives them ------------------------------------------------

  /** A device in the slot from power-on: link up, presence set, no events. */
  plug(index: number, device: PcieDevice): void {
    const port = this.ports[index];
    if (port.link !== "down") throw new Error(`slot ${index + 1} is occupied`);
    this.connectDevice(port, device);
    port.setLinkStatus(true);
  }

  /** A device arrives (the cable is back): link up, presence set, Presence Detect Changed and DL State Changed. */
  insert(index: number, device: PcieDevice): void {
    const port = this.ports[index];
    if (port.link !== "down") throw new Error(`slot ${index + 1} is ${port.link === "up" ? "occupied" : "in its grace period"}`);
    this.connectDevice(port, device);
    port.setLinkStatus(true);
    this.raise(index, SltSta.PresenceDetectChanged | (port.reportsDlActive ? SltSta.DlStateChanged : 0));
  }

  /**
   * The cable is pulled: the device is cut off at once; requests for it are held for the
   * grace, then the link is declared down — presence and DL Link Active clear, both events
   * set, every held request completed with Unsupported Request.
   */
  pull(index: number): void {
    const port = this.ports[index];
    if (port.link !== "up") throw new Error(`slot ${index + 1} has no device`);
    port.detach();
    port.link = "grace";
    this.scheduler.at(this.scheduler.now + this.graceNs, () => {
      port.link = "down";
      port.device = null;
      port.setLinkStatus(false);
      for (const request of port.outstanding.values()) this.toServer(errorCompletion(request, this.portId(port), CplStatus.UnsupportedRequest));
      port.outstanding.clear();
      this.raise(index, SltSta.PresenceDetectChanged | (port.reportsDlActive ? SltSta.DlStateChanged : 0));
    });
  }

  /**
   * The chassis behind the slot asks for an orderly removal: Attention Button Pressed is set
   * and an MSI sent if that is a rising edge (an enabled event, as for the other events).
   * Pressing again while the server blinks cancels, as the button does on any slot.
   */
  pressAttentionButton(index: number): void {
    const port = this.ports[index];
    if (port.slot.attentionButtonPressed.reserved !== undefined) throw new Error(`slot ${index + 1} has no attention button`);
    port.buttonPressedAt = this.scheduler.now;
    port.removalCompletedAt = null;
    this.raise(index, SltSta.AttentionButtonPressed);
  }

  /** Sets Slot Status event bits from the hardware side and sends an MSI if that is a rising edge. */
  raise(index: number, events: number): void {
    const port = this.ports[index];
    port.express.registers.slotStatus.setBits(events);
    this.evaluateInterrupt(port);
  }

  private connectDevice(port: FakePort, device: PcieDevice): void {
    port.attach(this.scheduler, device, (tlp) => this.fromSlot(port, tlp));
    port.link = "up";
  }

  private portId(port: FakePort): number {
    return (this.upstream.header.secondaryBus.get() << 8) | (port.index << 3);
  }

  private evaluateInterrupt(port: FakePort): void {
    if (!port.interruptEdge()) return;
    const message = port.msi.signal(0);
    if (!message) return;
    port.msiSent++;
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint16(0, message.data, true);
    this.toServer({ kind: "MWr", ...DEFAULT_COMMON, requester: this.portId(port), tag: 0, firstBe: 0xf, lastBe: 0, address: Number(message.address), data });
  }

  // ---- TLPs ------------------------------------------------------------------------------

  private toServer(tlp: Tlp | Uint8Array): void {
    this.send?.(tlp instanceof Uint8Array ? tlp : encodeTlp(tlp));
  }

  private unsupported(tlp: Tlp, completer: number): void {
    if (isNonPosted(tlp)) this.toServer(errorCompletion(tlp, completer, CplStatus.UnsupportedRequest));
  }

  /** A TLP from the server. */
  receive(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) return;
    switch (tlp.kind) {
      case "CfgRd0":
      case "CfgWr0":
        this.upstreamId = (tlp.bus << 8) | (tlp.device << 3);
        if (tlp.fn !== 0) this.unsupported(tlp, this.upstreamId);
        else this.toServer(configCompletion(this.upstream.config, tlp, this.upstreamId));
        return;
      case "CfgRd1":
      case "CfgWr1": {
        const secondary = this.upstream.header.secondaryBus.get();
        if (tlp.bus === secondary) {
          const port = this.ports[tlp.device];
          if (!port || tlp.fn !== 0) return this.unsupported(tlp, this.upstreamId);
          this.toServer(configCompletion(port.config, tlp, this.portId(port)));
          if (tlp.kind === "CfgWr1") this.evaluateInterrupt(port);
          else this.afterPortRead?.(port, tlp.register);
          return;
        }
        const port = this.ports.find((p) => p.header.forwardsBus(tlp.bus));
        if (!port || !this.upstream.header.forwardsBus(tlp.bus)) return this.unsupported(tlp, this.upstreamId);
        if (tlp.bus === port.header.secondaryBus.get()) {
          if (tlp.device !== 0) return this.unsupported(tlp, this.portId(port)); // only device 0 sits below a downstream port
          const type0 = bytes.slice();
          type0[0] = (type0[0] & 0xe0) | TlpType.Cfg0;
          return this.down(port, tlp, type0);
        }
        return this.down(port, tlp, bytes);
      }
      case "MRd":
      case "MWr": {
        const port = this.memoryTarget(tlp.address);
        if (port) this.down(port, tlp, bytes);
        else this.unsupported(tlp, this.upstreamId);
        return;
      }
      case "Cpl":
      case "CplD": {
        const port = this.ports.find((p) => p.header.forwardsBus(tlp.requester >> 8));
        if (port?.link === "up") port.sendDown(bytes);
        return;
      }
      default:
        this.unsupported(tlp, this.upstreamId); // messages are dropped by isNonPosted
    }
  }

  /** A request for the slot below `port`: sent, held during the grace, or answered UR when the slot is empty. */
  private down(port: FakePort, tlp: Tlp, bytes: Uint8Array): void {
    const config = tlp.kind.startsWith("Cfg") ? (tlp as Extract<Tlp, { register: number }>) : null;
    const note = (outcome: RequestBelow["outcome"]) => this.requestsBelow.push({
      timeNs: this.scheduler.now, port: port.index, kind: tlp.kind, register: config?.register, device: config?.device, outcome,
    });
    const nonPosted = isNonPosted(tlp);
    const key = nonPosted ? ((tlp as Extract<Tlp, { requester: number }>).requester << 8) | (tlp as Extract<Tlp, { tag: number }>).tag : -1;
    if (port.link === "up") {
      note("forwarded");
      if (nonPosted) port.outstanding.set(key, tlp);
      port.sendDown(bytes);
    } else if (port.link === "grace") {
      note("held");
      if (nonPosted) port.outstanding.set(key, tlp);
    } else {
      note("unsupported");
      this.unsupported(tlp, this.portId(port));
    }
  }

  /** A TLP from the device in a slot: a completion ends its request's wait; everything goes up. */
  private fromSlot(port: FakePort, bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) return;
    if (tlp.kind === "Cpl" || tlp.kind === "CplD") {
      const key = (tlp.requester << 8) | tlp.tag;
      const last = !tlp.data || tlp.byteCount === 0 || tlp.byteCount <= tlp.data.length;
      if (last) port.outstanding.delete(key);
    }
    this.toServer(bytes.slice());
  }

  /** The downstream port whose memory or prefetchable window holds `address`, behind an enabled upstream port. */
  private memoryTarget(address: number): FakePort | null {
    const at = BigInt(address);
    const inside = (header: Type1Header) => header.command.test(Command.Memory) &&
      [header.memoryWindow(), header.prefetchableWindow()].some((w) => w !== null && at >= w.base && at <= w.limit);
    if (!inside(this.upstream.header)) return null;
    return this.ports.find((p) => inside(p.header)) ?? null;
  }
}
