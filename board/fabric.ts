// The card's FPGA fabric as the firmware sees it: a register file (card registers and one
// block per tunnel engine, board/map/registers.ts), the MAC the tunnels share, and the
// events the fabric raises. REG_WRITE / REG_READ commands from the firmware land here, and
// so do the writes of tests and benchmarks that bring a tunnel up without link training.

import { CardReg, FABRIC_VERSION, TUNNEL_BASE, TUNNEL_STRIDE, MAX_TUNNELS, FabricEventKind } from "./map/registers.ts";
import { CardMac } from "./ethernet/mac.ts";
import { TunnelEngine } from "./tunnel/engine.ts";
import type { TlpClass } from "./pcie/tlp.ts";
import type { Scheduler } from "./scheduler.ts";

export interface FabricConfig {
  boardId: number;
  mac: Uint8Array;
  tunnels: number;
}

export interface FabricHost {
  /** An event for the firmware (FABRIC_EVENT). */
  event(kind: FabricEventKind, tunnel: number, arg: number): void;
  /** A TLP that arrived through tunnel `tunnel`, in order, for the card's PCIe side, with its chassis slot. */
  deliver(tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number): void;
}

export class Fabric {
  readonly mac: CardMac;
  readonly tunnels: TunnelEngine[] = [];
  private scratch = 0;
  private regErrors = 0;

  constructor(private readonly config: FabricConfig, scheduler: Scheduler, private readonly host: FabricHost) {
    if (config.tunnels < 1 || config.tunnels > MAX_TUNNELS) throw new RangeError(`a card has 1..${MAX_TUNNELS} tunnels, not ${config.tunnels}`);
    this.mac = new CardMac(config.mac);
    for (let i = 0; i < config.tunnels; i++) {
      const tunnel = new TunnelEngine(i, {
        scheduler,
        mac: config.mac,
        transmitReady: () => this.mac.kick(),
        deliver: (tlp, cls, t, slot) => host.deliver(tlp, cls, t, slot),
        event: (kind, arg, t) => host.event(kind, t.index, arg),
      });
      this.tunnels.push(tunnel);
      this.mac.addTunnel(tunnel);
    }
  }

  private tunnelAt(address: number): [TunnelEngine, number] | null {
    if (address < TUNNEL_BASE) return null;
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
    }
    const target = this.tunnelAt(address);
    return target ? target[0].readRegister(target[1]) : 0;
  }

  /** Writes a register; a refused write is counted and raises RegisterRejected. */
  writeRegister(address: number, value: number): boolean {
    let ok = false;
    if (address === CardReg.Scratch) {
      this.scratch = value >>> 0;
      ok = true;
    } else {
      const target = this.tunnelAt(address);
      ok = target !== null && target[0].writeRegister(target[1], value);
    }
    if (!ok) {
      this.regErrors++;
      this.host.event(FabricEventKind.RegisterRejected, 0, address >>> 0);
    }
    return ok;
  }
}
