// Two cards' fabrics joined by one Ethernet link, with a tunnel brought up by writing the
// registers the firmware's Configure state writes: for tests and benchmarks of the fabric's
// data path on its own, without firmware or link training.

import { Fabric } from "../../board/fabric.ts";
import { TunnelReg, TunnelControl, TUNNEL_BASE, TUNNEL_STRIDE, type FabricEventKind } from "../../board/map/registers.ts";
import type { TlpClass } from "../../board/pcie/tlp.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import type { Scheduler } from "../../board/scheduler.ts";
import { Link, type LinkConfig } from "./net/link.ts";

export interface PairOptions {
  /** Which tunnel of the fabric (default 0). */
  tunnel?: number;
  /** How many tunnels each fabric has (default 1, or enough for `tunnel`). */
  tunnels?: number;
  mtu?: number;
  goBackN?: boolean;
  session?: number;
  /** Extra tunnel register writes, by register, applied to both sides before Enable. */
  registers?: Partial<Record<TunnelReg, number>>;
  link?: LinkConfig;
}

export interface PairSide {
  fabric: Fabric;
  tunnel: TunnelEngine;
  events: { kind: FabricEventKind; arg: number; timeNs: number }[];
  /** Called with each TLP delivered to this side; the default releases its credits at once. */
  onTlp: (tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number) => void;
  /** Each TLP this side's tunnel threw away when its session ended, with its slot and whether it had been received. */
  discarded: { tlp: Uint8Array; slot: number; received: boolean }[];
}

export const MAC_A = Uint8Array.of(0x02, 0x10, 0x10, 0x00, 0x00, 0x01);
export const MAC_B = Uint8Array.of(0x02, 0x10, 0x20, 0x00, 0x00, 0x01);

function side(scheduler: Scheduler, mac: Uint8Array, tunnels: number, index: number): PairSide {
  const events: PairSide["events"] = [];
  let s: PairSide | null = null;
  const fabric = new Fabric({ boardId: 0x10f00a01, mac, tunnels }, scheduler, {
    event: (kind, _tunnel, arg) => events.push({ kind, arg, timeNs: scheduler.now }),
    deliver: (tlp, cls, tunnel, slot) => s!.onTlp(tlp, cls, tunnel, slot),
    discarded: (tlp, slot, _tunnel, received) => s!.discarded.push({ tlp, slot, received }),
  });
  s = { fabric, tunnel: fabric.tunnels[index], events, onTlp: (tlp, cls, tunnel) => tunnel.release(cls, tlp), discarded: [] };
  return s;
}

/** Programs a tunnel of `fabric` to talk to `peer`, the way the firmware does. */
export function programTunnel(fabric: Fabric, peer: Uint8Array, options: PairOptions): void {
  const base = TUNNEL_BASE + TUNNEL_STRIDE * (options.tunnel ?? 0);
  const write = (reg: TunnelReg, value: number) => {
    if (!fabric.writeRegister(base + reg, value)) throw new Error(`register 0x${(base + reg).toString(16)} refused ${value}`);
  };
  write(TunnelReg.PeerMacHigh, (peer[0] << 8) | peer[1]);
  write(TunnelReg.PeerMacLow, ((peer[2] << 24) | (peer[3] << 16) | (peer[4] << 8) | peer[5]) >>> 0);
  write(TunnelReg.Session, options.session ?? 0x5e55_1011);
  write(TunnelReg.Mtu, options.mtu ?? 1500);
  for (const [reg, value] of Object.entries(options.registers ?? {})) write(Number(reg), value!);
  write(TunnelReg.Control, TunnelControl.Enable | (options.goBackN ? TunnelControl.GoBackN : 0));
}

export function tunnelPair(scheduler: Scheduler, options: PairOptions = {}): { a: PairSide; b: PairSide; link: Link } {
  const tunnels = Math.max(options.tunnels ?? 1, (options.tunnel ?? 0) + 1);
  const a = side(scheduler, MAC_A, tunnels, options.tunnel ?? 0);
  const b = side(scheduler, MAC_B, tunnels, options.tunnel ?? 0);
  const link = new Link(scheduler, "cable", options.link ?? {});
  a.fabric.mac.connect(link.a);
  b.fabric.mac.connect(link.b);
  programTunnel(a.fabric, MAC_B, options);
  programTunnel(b.fabric, MAC_A, options);
  return { a, b, link };
}
