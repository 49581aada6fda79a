// A server, its host card, one tunnel and a chassis card with devices in its slots: the whole
// PCIe path without firmware, for tests and benchmarks. Tunnels are programmed through the
// fabric registers, as tunnel-pair.ts does.

import { PcieLink } from "../../board/pcie/link.ts";
import { SwitchModel } from "./switch-model.ts";
import { ChassisRoot, type SlotDevice } from "../../board/pcie/chassis-root.ts";
import type { Scheduler } from "../../board/scheduler.ts";
import { RootComplex, ROOT_PORT_LINK } from "../server/root-complex.ts";
import { OperatingSystem } from "../server/os.ts";
import { tunnelPair, type PairSide, type PairOptions } from "./tunnel-pair.ts";
import type { ImpairmentConfig } from "./net/impairments.ts";

export interface RemoteOptions {
  slots: (SlotDevice | null)[];
  mtu?: number;
  lengthM?: number;
  impair?: ImpairmentConfig;
  seed?: number;
  /** MACsec on the tunnel (tunnelPair's `macsec`). */
  macsec?: PairOptions["macsec"];
  /** A second path between the cards' ports 1 (tunnelPair's `second`). */
  second?: PairOptions["second"];
  /** Tunnel registers and congestion control, both sides (tunnelPair's). */
  registers?: PairOptions["registers"];
  congestionControl?: boolean;
  /** Called with TLPs that arrive on a slot no device uses (test traffic). */
  onTraffic?: (tlp: Uint8Array, side: "host" | "chassis") => void;
  trafficSlot?: number;
}

export interface Remote {
  rc: RootComplex;
  os: OperatingSystem;
  host: PairSide;
  chassis: PairSide;
  hostSwitch: SwitchModel;
  chassisRoot: ChassisRoot;
  log: string[];
}

export function remotePcie(scheduler: Scheduler, options: RemoteOptions): Remote {
  const { a, b } = tunnelPair(scheduler, {
    mtu: options.mtu ?? 9000,
    link: { lengthM: options.lengthM ?? 10, seed: options.seed ?? 1, aToB: options.impair ?? {}, bToA: options.impair ?? {} },
    ...(options.macsec ? { macsec: options.macsec } : {}),
    ...(options.second ? { second: options.second } : {}),
    registers: options.registers,
    congestionControl: options.congestionControl,
  });
  const hostSwitch = new SwitchModel(options.slots.map((_, slot) => ({ tunnel: a.tunnel, slot })));
  const chassisRoot = new ChassisRoot(scheduler, b.tunnel, options.slots.length);
  options.slots.forEach((device, slot) => device && chassisRoot.plug(slot, device));
  const traffic = options.trafficSlot ?? -1;
  a.onTlp = (tlp, cls, tunnel, slot) => {
    if (slot === traffic) options.onTraffic?.(tlp, "host");
    else hostSwitch.fromTunnel(tlp.slice());
    tunnel.release(cls, tlp);
  };
  b.onTlp = (tlp, cls, tunnel, slot) => {
    if (slot === traffic) options.onTraffic?.(tlp, "chassis");
    else chassisRoot.fromHost(tlp.slice(), slot);
    tunnel.release(cls, tlp);
  };
  const rc = new RootComplex(scheduler);
  const link = new PcieLink(scheduler, ROOT_PORT_LINK);
  link.plugUp(rc);
  link.plugDown(hostSwitch);
  const log: string[] = [];
  const os = new OperatingSystem(rc, (line) => log.push(line));
  return { rc, os, host: a, chassis: b, hostSwitch, chassisRoot, log };
}
