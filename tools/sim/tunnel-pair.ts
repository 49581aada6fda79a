// Two cards' fabrics joined by one Ethernet link (or two: a path per port), with a tunnel brought
// up by writing the registers the firmware's Configure state writes: for tests and benchmarks of
// the fabric's data path on its own, without firmware or link training.

import { createHash } from "node:crypto";
import { Fabric, portAddress } from "../../board/fabric.ts";
import {
  TunnelReg, TunnelControl, TUNNEL_BASE, TUNNEL_STRIDE, FabricEventKind, SECY_BASE, SECY_STRIDE, SecyReg, SecyControl, SecyInstall,
  PATH_BASE, PATH_STRIDE, PATH_SIZE, PathReg, PathControl,
} from "../../board/map/registers.ts";
import type { TlpClass } from "../../board/pcie/tlp.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import type { Scheduler } from "../../board/scheduler.ts";
import { Link, type LinkConfig } from "./net/link.ts";
import { EthernetSwitch, type SwitchConfig } from "./net/switch.ts";

export interface PairOptions {
  /** Which tunnel of the fabric (default 0). */
  tunnel?: number;
  /** How many tunnels each fabric has (default 1, or enough for `tunnel`). */
  tunnels?: number;
  mtu?: number;
  goBackN?: boolean;
  /** Congestion control on (TunnelControl.CongestionControl). */
  congestionControl?: boolean;
  session?: number;
  /** Extra tunnel register writes, by register, applied to both sides before Enable. */
  registers?: Partial<Record<TunnelReg, number>>;
  link?: LinkConfig;
  /**
   * MACsec on the tunnel, keyed and rekeyed as the firmware does it (assembly/link/keys.ts) but
   * with keys from macsecTestKey(): GCM-AES-XPN-128 unless `xpn256`; extra SecY register writes.
   */
  macsec?: { xpn256?: boolean; registers?: Partial<Record<SecyReg, number>> };
  /**
   * A second path, between both cards' port 1: its cable (`link`), or with `switched` two cables
   * through a switch (`link` from card a to the switch, `far` from the switch to card b), so that
   * a cut of `far` leaves card a's carrier up. The tunnel uses it from the start.
   */
  second?: { link?: LinkConfig; switched?: boolean; far?: LinkConfig; switchConfig?: Omit<SwitchConfig, "ports"> };
}

export interface PairSide {
  fabric: Fabric;
  tunnel: TunnelEngine;
  events: { kind: FabricEventKind; arg: number; timeNs: number }[];
  /** Called with each TLP delivered to this side; the default releases its credits at once. */
  onTlp: (tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number) => void;
  /** Each TLP this side's tunnel threw away when its session ended, with its slot and whether it had been received. */
  discarded: { tlp: Uint8Array; slot: number; received: boolean }[];
  /** With MACsec: what stands in for the firmware's key handling. */
  keys: KeyAgent | null;
}

export const MAC_A = Uint8Array.of(0x02, 0x10, 0x10, 0x00, 0x00, 0x01);
export const MAC_B = Uint8Array.of(0x02, 0x10, 0x20, 0x00, 0x00, 0x01);

function side(scheduler: Scheduler, mac: Uint8Array, tunnels: number, index: number): PairSide {
  const events: PairSide["events"] = [];
  let s: PairSide | null = null;
  const fabric = new Fabric({ boardId: 0x10f00a01, mac, tunnels }, scheduler, {
    event: (kind, _tunnel, arg) => {
      events.push({ kind, arg, timeNs: scheduler.now });
      s!.keys?.event(kind, arg);
    },
    deliver: (tlp, cls, tunnel, slot) => s!.onTlp(tlp, cls, tunnel, slot),
    discarded: (tlp, slot, _tunnel, received) => s!.discarded.push({ tlp, slot, received }),
  });
  s = { fabric, tunnel: fabric.tunnels[index], events, onTlp: (tlp, cls, tunnel) => tunnel.release(cls, tlp), discarded: [], keys: null };
  return s;
}

/** A SAK for tests and benchmarks: SHA-256 of the direction (0 a to b, 1 b to a) and generation. */
export function macsecTestKey(dir: number, generation: number): Buffer {
  return createHash("sha256").update(`iov macsec test key ${dir} ${generation}`).digest();
}

/** The salt of direction `dir`'s SC in tests and benchmarks. */
export function macsecTestSalt(dir: number): Uint8Array {
  return createHash("sha256").update(`iov macsec test salt ${dir}`).digest().subarray(0, 12);
}

/**
 * The firmware's part of MACsec for one side (assembly/link/keys.ts): programs the SecY with
 * generations 0 and 1 of both SCs, then installs each next generation when the fabric switches its
 * transmit SA (TxSaSwitched) or sees the peer's first frame under the newest receive SA (RxSaInUse).
 */
export class KeyAgent {
  private txGen = 0;
  private rxGen = 1;

  constructor(private readonly fabric: Fabric, private readonly tunnel: number, private readonly dir: number, private readonly xpn256: boolean) {}

  private write(reg: SecyReg, value: number): void {
    const address = SECY_BASE + SECY_STRIDE * this.tunnel + reg;
    if (!this.fabric.writeRegister(address, value >>> 0)) throw new Error(`SecY register 0x${address.toString(16)} refused ${value}`);
  }

  private install(transmit: boolean, generation: number): void {
    const dir = transmit ? this.dir : this.dir ^ 1;
    const key = macsecTestKey(dir, generation);
    const salt = macsecTestSalt(dir);
    const words = this.xpn256 ? 8 : 4;
    for (let w = 0; w < words; w++) this.write(SecyReg.Key0 + 4 * w, Buffer.from(key).readUInt32BE(4 * w));
    for (let w = 0; w < 3; w++) this.write(SecyReg.Salt0 + 4 * w, Buffer.from(salt).readUInt32BE(4 * w));
    this.write(SecyReg.Install, (generation & 3) | (transmit ? SecyInstall.Transmit : 0));
  }

  program(own: Uint8Array, peer: Uint8Array, registers: Partial<Record<SecyReg, number>> = {}): void {
    const sciLow = (mac: Uint8Array, dir: number) => ((mac[4] << 24) | (mac[5] << 16) | (dir + 1)) >>> 0;
    this.write(SecyReg.Control, SecyControl.Protect | (this.xpn256 ? SecyControl.Xpn256 : 0));
    this.write(SecyReg.TxSciHigh, Buffer.from(own).readUInt32BE(0));
    this.write(SecyReg.TxSciLow, sciLow(own, this.dir));
    this.write(SecyReg.RxSciHigh, Buffer.from(peer).readUInt32BE(0));
    this.write(SecyReg.RxSciLow, sciLow(peer, this.dir ^ 1));
    this.write(SecyReg.TxSsci, this.dir + 1);
    this.write(SecyReg.RxSsci, (this.dir ^ 1) + 1);
    for (const [reg, value] of Object.entries(registers)) this.write(Number(reg), value!);
    this.install(true, 0);
    this.install(false, 0);
    this.install(false, 1);
    this.install(true, 1);
    this.txGen = 0;
    this.rxGen = 1;
  }

  /** A fabric event of this side's tunnel. */
  event(kind: FabricEventKind, an: number): void {
    if (kind === FabricEventKind.TxSaSwitched && an === ((this.txGen + 1) & 3)) {
      this.txGen++;
      this.install(true, this.txGen + 1);
    } else if (kind === FabricEventKind.RxSaInUse && an === (this.rxGen & 3)) {
      this.rxGen++;
      this.install(false, this.rxGen);
      if (this.rxGen >= 3) this.write(SecyReg.Install, ((this.rxGen - 3) & 3) | SecyInstall.Remove);
    }
  }
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
  write(TunnelReg.Control, TunnelControl.Enable | (options.goBackN ? TunnelControl.GoBackN : 0) | (options.congestionControl ? TunnelControl.CongestionControl : 0));
}

/** Enables the path on `port` of a tunnel of `fabric`, to `peer`'s address there. */
export function enablePath(fabric: Fabric, tunnel: number, port: number, peer: Uint8Array): void {
  const base = PATH_BASE + PATH_STRIDE * tunnel + PATH_SIZE * port;
  const write = (reg: PathReg, value: number) => {
    if (!fabric.writeRegister(base + reg, value)) throw new Error(`path register 0x${(base + reg).toString(16)} refused ${value}`);
  };
  write(PathReg.PeerMacHigh, (peer[0] << 8) | peer[1]);
  write(PathReg.PeerMacLow, ((peer[2] << 24) | (peer[3] << 16) | (peer[4] << 8) | peer[5]) >>> 0);
  write(PathReg.Control, PathControl.Enable);
}

export interface Pair {
  a: PairSide;
  b: PairSide;
  /** Port 0's cable. */
  link: Link;
  /** The second path's cables, from card a's port 1 to card b's (one, or two through a switch). */
  second: Link[];
}

export function tunnelPair(scheduler: Scheduler, options: PairOptions = {}): Pair {
  const tunnels = Math.max(options.tunnels ?? 1, (options.tunnel ?? 0) + 1);
  const a = side(scheduler, MAC_A, tunnels, options.tunnel ?? 0);
  const b = side(scheduler, MAC_B, tunnels, options.tunnel ?? 0);
  const link = new Link(scheduler, "cable", options.link ?? {});
  a.fabric.mac.connect(link.a);
  b.fabric.mac.connect(link.b);
  const second: Link[] = [];
  if (options.second) {
    const near = new Link(scheduler, "cable1", options.second.link ?? {});
    second.push(near);
    a.fabric.macs[1].connect(near.a);
    if (options.second.switched) {
      // Trunks whose native VLAN carries untagged frames: a tunnel with a VLAN crosses tagged.
      const port = { mode: "trunk" as const, native: 1 };
      const sw = new EthernetSwitch(scheduler, "switch1", { ports: [port, port], ...options.second.switchConfig });
      const far = new Link(scheduler, "cable1-far", options.second.far ?? {});
      second.push(far);
      sw.plug(0, near.b);
      sw.plug(1, far.a);
      b.fabric.macs[1].connect(far.b);
    } else b.fabric.macs[1].connect(near.b);
  }
  if (options.macsec) {
    const index = options.tunnel ?? 0;
    a.keys = new KeyAgent(a.fabric, index, 0, options.macsec.xpn256 ?? false);
    b.keys = new KeyAgent(b.fabric, index, 1, options.macsec.xpn256 ?? false);
    a.keys.program(MAC_A, MAC_B, options.macsec.registers);
    b.keys.program(MAC_B, MAC_A, options.macsec.registers);
  }
  programTunnel(a.fabric, MAC_B, options);
  programTunnel(b.fabric, MAC_A, options);
  if (options.second) {
    enablePath(a.fabric, options.tunnel ?? 0, 1, portAddress(MAC_B, 1));
    enablePath(b.fabric, options.tunnel ?? 0, 1, portAddress(MAC_A, 1));
  }
  return { a, b, link, second };
}
