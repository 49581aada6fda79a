// The card's FPGA fabric as the firmware sees it: a register file (card registers, one
// block per Ethernet port, one block per tunnel engine with its paths and SecY and, on a host card,
// the switch router's blocks; board/map/registers.ts), the MACs of the card's two Ethernet ports,
// which every tunnel shares, and the events the fabric raises. REG_WRITE / REG_READ commands from the firmware land here, and
// so do the writes of tests and benchmarks that bring a tunnel up without link training.

import {
  CardReg, TunnelReg, FABRIC_VERSION, TUNNEL_BASE, TUNNEL_STRIDE, MAX_TUNNELS, FabricEventKind, SECY_BASE, SECY_STRIDE, MACSEC_DROP_REASONS, TunnelCounter,
  PORTS, PORT_BASE, PORT_STRIDE, PORT_ADDRESS_BYTE, PortReg, PortStatus, PATH_BASE, PATH_STRIDE, PATH_SIZE,
} from "./map/registers.ts";
import { NO_TUNNEL, type TlpRxReason } from "./map/mailbox.ts";
import { SWITCH_PORTS } from "./map/pcie.ts";
import { SwitchRouter } from "./pcie/switch-router.ts";
import { CardMac, MAX_CONTROL_FRAME, type FrameSource } from "./ethernet/mac.ts";
import { ETHERTYPE_IOV, FCS_SIZE, MAC_SIZE, MIN_FRAME, macKey, payloadOffset, writeFcs } from "./ethernet/frame.ts";
import { priorityOf } from "./ethernet/pfc.ts";
import { FrameKind, TUNNEL_HEADER, TUNNEL_VERSION } from "./tunnel/wire.ts";
import type { Secy } from "./macsec/secy.ts";
import { TunnelEngine } from "./tunnel/engine.ts";
import type { TlpClass } from "./pcie/tlp.ts";
import type { Scheduler } from "./scheduler.ts";

export interface FabricConfig {
  boardId: number;
  /** The address of Ethernet port 0; port p's is portAddress(mac, p). */
  mac: Uint8Array;
  tunnels: number;
  /** A host card: the switch router between the server's root port and the tunnels. */
  switchRouter?: boolean;
  /** A chassis card: which of its slots' PCIe links are up (bit per slot), for CardReg.SlotsPresent. */
  slotsPresent?: () => number;
  /** A chassis card: how many slots it has; CardReg.SlotReset refuses bits beyond them. */
  chassisSlots?: number;
}

export interface FabricHost {
  /** An event for the firmware (FABRIC_EVENT). */
  event(kind: FabricEventKind, tunnel: number, arg: number): void;
  /** A TLP that arrived through tunnel `tunnel`, in order, for the card's PCIe side, with its chassis slot. */
  deliver(tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number): void;
  /** A TLP a tunnel threw away when its session ended (TunnelHost.discarded). */
  discarded?(tlp: Uint8Array, slot: number, tunnel: TunnelEngine, received: boolean): void;
  /** A tunnel's SecY validated the MACsec frame being received: `clear` is what the tunnel engine takes, `fresh` whether its PN was new (observers only). */
  unprotected?(clear: Uint8Array, fresh: boolean): void;
  /** A CONTROL frame for the firmware (FRAME_RX), FCS removed, with the index of the tunnel it matches or NO_TUNNEL, and the port it came in on. */
  control?(frame: Uint8Array, tunnel: number, port: number): void;
  /** The firmware wrote a tunnel's LinkState register. */
  linkState?(tunnel: TunnelEngine, state: number): void;
  /** A TLP the switch router hands to the firmware (TLP_RX). */
  tlp?(reason: TlpRxReason, port: number, tlp: Uint8Array): void;
  /** A write to the card's system registers (watchdog, entropy request, boot control); false refuses it. */
  system?(address: CardReg, value: number): boolean;
  /**
   * Chassis cards, CardReg.SlotReset: a fundamental reset (PERST#) of the device in each chassis
   * slot whose bit is set in `slots` (the fabric has checked the bits); false refuses the write.
   */
  slotReset?(slots: number): boolean;
}

/** CONTROL frames waiting for the MAC; FRAME_TX beyond this is refused. */
const CONTROL_QUEUE = 32;

/**
 * The address of a card's Ethernet port `port`, from port 0's: byte 1 plus the port number, so
 * that the ports of cards with consecutive serial numbers never share an address (02:10:<serial>
 * and 02:11:<serial>, docs/registers.md "Ethernet ports").
 */
export function portAddress(base: Uint8Array, port: number): Uint8Array {
  const address = Uint8Array.from(base);
  address[PORT_ADDRESS_BYTE] = (address[PORT_ADDRESS_BYTE] + port) & 0xff;
  return address;
}

/**
 * The firmware's transmit path of one port: a FIFO of CONTROL frames that the port's MAC serves in
 * turn with the tunnels. It only takes CONTROL frames from the port's address, so firmware cannot
 * forge data; the source address chooses the port.
 */
class ControlTransmitter implements FrameSource {
  private readonly queue: Uint8Array[] = [];

  constructor(private readonly mac: CardMac) {}

  /** Checks, pads and queues a frame (without FCS); false if refused. A port with no cable plugged in drops it (TxDropped). */
  submit(frame: Uint8Array): boolean {
    if (frame.length < MAC_SIZE * 2 + 2 + TUNNEL_HEADER || frame.length > MAX_CONTROL_FRAME || this.queue.length >= CONTROL_QUEUE) return false;
    if (macKey(frame, MAC_SIZE) !== macKey(this.mac.address)) return false;
    const wire = new Uint8Array(Math.max(frame.length, MIN_FRAME - FCS_SIZE) + FCS_SIZE);
    wire.set(frame);
    const at = payloadOffset(wire);
    if (((wire[at - 2] << 8) | wire[at - 1]) !== ETHERTYPE_IOV || at + TUNNEL_HEADER > frame.length) return false;
    if (wire[at] !== TUNNEL_VERSION || wire[at + 1] !== FrameKind.Control) return false;
    if (!this.mac.connected) {
      this.mac.counters.txDropped++;
      return true;
    }
    writeFcs(wire);
    this.queue.push(wire);
    this.mac.kick();
    return true;
  }

  nextFrame(): Uint8Array | null {
    return this.queue.shift() ?? null;
  }

  priority(): number {
    return this.queue.length > 0 ? priorityOf(this.queue[0]) : 0;
  }

  /** Whether `frame` (without FCS) is from this port's address. */
  owns(frame: Uint8Array): boolean {
    return frame.length >= MAC_SIZE * 2 && macKey(frame, MAC_SIZE) === macKey(this.mac.address);
  }

  clear(): void {
    this.queue.length = 0;
  }
}

export class Fabric {
  /** The MACs of the card's Ethernet ports, by port number. */
  readonly macs: CardMac[] = [];
  readonly tunnels: TunnelEngine[] = [];
  /** Host cards: the PCIe switch router (board/pcie/switch-router.ts). */
  readonly router: SwitchRouter | null;
  private scratch = 0;
  private regErrors = 0;
  private readonly controls: ControlTransmitter[] = [];

  constructor(private readonly config: FabricConfig, scheduler: Scheduler, private readonly host: FabricHost) {
    if (config.tunnels < 1 || config.tunnels > MAX_TUNNELS) throw new RangeError(`a card has 1..${MAX_TUNNELS} tunnels, not ${config.tunnels}`);
    for (let p = 0; p < PORTS; p++) this.macs.push(new CardMac(portAddress(config.mac, p), scheduler, p));
    const kickAll = () => {
      for (const mac of this.macs) mac.kick();
    };
    for (let i = 0; i < config.tunnels; i++) {
      const tunnel = new TunnelEngine(i, {
        scheduler,
        portAddress: (port) => this.macs[port].address,
        portIdle: (port) => this.macs[port].idle,
        transmitReady: kickAll,
        deliver: (tlp, cls, t, slot) => host.deliver(tlp, cls, t, slot),
        event: (kind, arg, t) => host.event(kind, t.index, arg),
        discarded: host.discarded ? (tlp, slot, t, received) => host.discarded!(tlp, slot, t, received) : undefined,
        unprotected: host.unprotected ? (clear, fresh) => host.unprotected!(clear, fresh) : undefined,
      });
      this.tunnels.push(tunnel);
      for (const mac of this.macs) mac.addTunnel(tunnel);
    }
    for (const mac of this.macs) {
      const control = new ControlTransmitter(mac);
      this.controls.push(control);
      mac.addSource(control);
      mac.onControl = (frame, sink) => {
        const index = sink ? this.tunnels.indexOf(sink as TunnelEngine) : -1;
        host.control?.(frame.subarray(0, frame.length - FCS_SIZE), index >= 0 ? index : NO_TUNNEL, mac.index);
      };
      mac.onCarrier = (up) => {
        for (const tunnel of this.tunnels) tunnel.carrier(mac.index, up);
        host.event(up ? FabricEventKind.CarrierUp : FabricEventKind.CarrierDown, 0, mac.index);
      };
      // A port that just took a frame is busy: what the tunnels still have may go on the other ports.
      mac.onSent = () => {
        for (const other of this.macs) if (other !== mac) other.kick();
      };
    }
    this.router = config.switchRouter
      ? new SwitchRouter({
          toFirmware: (reason, port, tlp) => host.tlp?.(reason, port, tlp),
          submit: (tunnel, slot, tlp) => this.tunnels[tunnel].submit(tlp, slot),
          hasRoom: (tunnel, cls) => this.tunnels[tunnel]?.hasRoom(cls) ?? true,
          tunnels: this.tunnels.length,
          now: () => scheduler.now,
        })
      : null;
    // The server's link waits while a tunnel it feeds is full (SwitchRouter.accepts).
    if (this.router) for (const tunnel of this.tunnels) tunnel.onRoom(() => this.router!.onRoom?.());
  }

  /**
   * A reset of the soft-core alone (reboot, watchdog, update): the data path runs on. Tunnels keep
   * their sessions, the switch router its registers and outstanding requests, the MAC its VLAN
   * filters; only the control frames the old firmware queued and that have not gone are dropped.
   */
  softcoreReset(): void {
    for (const control of this.controls) control.clear();
  }

  /** Port 0's MAC. */
  get mac(): CardMac {
    return this.macs[0];
  }

  /**
   * Power-on reset: every tunnel stops and forgets its session and queued TLPs, control frames
   * waiting are dropped, every register back to its default. A chassis card's slots lose their
   * PCIe link with it: their devices are reset (PERST#), so nothing they were doing for the last
   * session goes on into the next.
   */
  reset(): void {
    for (const tunnel of this.tunnels) tunnel.hardReset();
    for (const control of this.controls) control.clear();
    this.router?.reset();
    this.setVlans(0, 0);
    const slots = this.config.chassisSlots ?? 0;
    if (slots > 0) this.host.slotReset?.((1 << slots) - 1);
  }

  /** TLP_TX: a completion or MSI from the firmware for the server; a refused one raises TlpRejected. */
  transmitTlp(tlp: Uint8Array): boolean {
    if (this.router?.fromFirmware(tlp)) return true;
    this.host.event(FabricEventKind.TlpRejected, 0, tlp.length);
    return false;
  }

  /** FRAME_TX: queues a CONTROL frame from the firmware; a refused one raises FrameRejected. */
  transmitControl(frame: Uint8Array): boolean {
    const control = this.controls.find((c) => c.owns(frame));
    if (control?.submit(frame)) return true;
    this.host.event(FabricEventKind.FrameRejected, 0, frame.length);
    return false;
  }

  /** The SecY block and offset an address falls in, or null. */
  private secyAt(address: number): [Secy, number] | null {
    if (address < SECY_BASE || address >= SECY_BASE + MAX_TUNNELS * SECY_STRIDE) return null;
    const tunnel = this.tunnels[Math.floor((address - SECY_BASE) / SECY_STRIDE)];
    return tunnel ? [tunnel.secy, (address - SECY_BASE) % SECY_STRIDE] : null;
  }

  /** The tunnel, port and offset a path block address falls in, or null. */
  private pathAt(address: number): [TunnelEngine, number, number] | null {
    if (address < PATH_BASE || address >= PATH_BASE + MAX_TUNNELS * PATH_STRIDE) return null;
    const tunnel = this.tunnels[Math.floor((address - PATH_BASE) / PATH_STRIDE)];
    const inBlock = (address - PATH_BASE) % PATH_STRIDE;
    const port = Math.floor(inBlock / PATH_SIZE);
    return tunnel && port < PORTS ? [tunnel, port, inBlock % PATH_SIZE] : null;
  }

  private portRegister(address: number): number {
    const mac = this.macs[Math.floor((address - PORT_BASE) / PORT_STRIDE)];
    const c = mac.counters;
    const a = mac.address;
    switch ((address - PORT_BASE) % PORT_STRIDE) {
      case PortReg.MacHigh: return (a[0] << 8) | a[1];
      case PortReg.MacLow: return ((a[2] << 24) | (a[3] << 16) | (a[4] << 8) | a[5]) >>> 0;
      case PortReg.Status: return (mac.up ? PortStatus.Carrier : 0) | (mac.connected ? PortStatus.Connected : 0) | (mac.paused ? PortStatus.TxPaused : 0);
      case PortReg.RxFrames: return c.rxFrames >>> 0;
      case PortReg.RxFcsErrors: return c.rxFcsErrors >>> 0;
      case PortReg.RxDropped: return mac.rxDropped >>> 0;
      case PortReg.TxFrames: return c.txFrames >>> 0;
      case PortReg.TxDropped: return c.txDropped >>> 0;
      case PortReg.RxPause: return c.rxPause >>> 0;
      default: return 0;
    }
  }

  private setVlans(control: number, management: number): void {
    for (const mac of this.macs) {
      mac.controlVlan = control;
      mac.managementVlan = management;
    }
  }

  private tunnelAt(address: number): [TunnelEngine, number] | null {
    if (address < TUNNEL_BASE || address >= TUNNEL_BASE + MAX_TUNNELS * TUNNEL_STRIDE) return null;
    const index = Math.floor((address - TUNNEL_BASE) / TUNNEL_STRIDE);
    const tunnel = this.tunnels[index];
    return tunnel ? [tunnel, (address - TUNNEL_BASE) % TUNNEL_STRIDE] : null;
  }

  readRegister(address: number): number {
    switch (address) {
      case CardReg.BoardId: return this.config.boardId >>> 0;
      case CardReg.FabricVersion: return FABRIC_VERSION;
      case CardReg.Tunnels: return this.tunnels.length;
      case CardReg.Scratch: return this.scratch;
      case CardReg.RegErrors: return this.regErrors;
      case CardReg.SwitchPorts: return this.router ? SWITCH_PORTS : 0;
      case CardReg.SlotsPresent: return (this.config.slotsPresent?.() ?? 0) >>> 0;
      case CardReg.ControlVlan: return this.mac.controlVlan;
      case CardReg.ManagementVlan: return this.mac.managementVlan;
      case CardReg.Ports: return PORTS;
    }
    if (address >= PORT_BASE && address < PORT_BASE + PORTS * PORT_STRIDE) return this.portRegister(address);
    const path = this.pathAt(address);
    if (path) return path[0].readPathRegister(path[1], path[2]);
    const drop = (address - CardReg.MacsecDrops) / 4;
    if (Number.isInteger(drop) && drop >= 0 && drop < MACSEC_DROP_REASONS) {
      return this.tunnels.reduce((sum, t) => sum + t.counters[TunnelCounter.RxBadIcv + drop], 0) >>> 0;
    }
    if (this.router && SwitchRouter.holds(address)) return this.router.readRegister(address);
    const secy = this.secyAt(address);
    if (secy) return secy[0].readRegister(secy[1]);
    const target = this.tunnelAt(address);
    return target ? target[0].readRegister(target[1]) : 0;
  }

  /** SlotReset: chassis cards only, and only bits of slots the chassis has (0 resets nothing). */
  private slotResetAllowed(slots: number): boolean {
    const count = this.config.chassisSlots ?? 0;
    if (this.router || count < 1) return false;
    return count >= 32 || slots >>> count === 0;
  }

  /** Writes a register; a refused write is counted and raises RegisterRejected. */
  writeRegister(address: number, value: number): boolean {
    let ok = false;
    if (address === CardReg.Scratch) {
      this.scratch = value >>> 0;
      ok = true;
    } else if (address === CardReg.ControlVlan) {
      ok = (value >>> 0) <= 4094;
      if (ok) this.setVlans(value >>> 0, this.mac.managementVlan);
    } else if (address === CardReg.ManagementVlan) {
      ok = (value >>> 0) <= 4094;
      if (ok) this.setVlans(this.mac.controlVlan, value >>> 0);
    } else if (address === CardReg.SlotReset) {
      ok = this.slotResetAllowed(value >>> 0) && (this.host.slotReset?.(value >>> 0) ?? false);
    } else if (address === CardReg.WatchdogKick || address === CardReg.EntropyRequest || address === CardReg.BootControl) {
      ok = this.host.system?.(address, value >>> 0) ?? false;
    } else if (this.router && SwitchRouter.holds(address)) {
      ok = this.router.writeRegister(address, value);
    } else if (this.secyAt(address)) {
      const [secy, offset] = this.secyAt(address)!;
      ok = secy.writeRegister(offset, value);
    } else if (this.pathAt(address)) {
      const [tunnel, port, offset] = this.pathAt(address)!;
      ok = tunnel.writePathRegister(port, offset, value);
    } else {
      const target = this.tunnelAt(address);
      ok = target !== null && target[0].writeRegister(target[1], value);
      if (ok && target![1] === TunnelReg.LinkState) this.host.linkState?.(target![0], value >>> 0);
    }
    if (!ok) {
      this.regErrors++;
      this.host.event(FabricEventKind.RegisterRejected, 0, address >>> 0);
    }
    return ok;
  }
}
