// Built-in scenarios: which cards exist, when they power on, how long the run lasts.

import { CardRole, LogLevel } from "../../board/map/mailbox.ts";
import type { LinkConfig } from "./net/link.ts";
import type { TrafficMix } from "./traffic.ts";

export interface CardSpec {
  name: string;
  role: CardRole;
  serial: number;
  slots: number;
  powerOnNs: number;
}

/** A cable between two cards (switched networks come with fleet scenarios). */
export interface CableSpec {
  id: string;
  a: string;
  b: string;
  config: Omit<LinkConfig, "seed">;
}

/**
 * A tunnel brought up by writing both fabrics' registers at `atNs`, as the firmware will
 * once it trains links itself: `host` card's tunnel `port` to `chassis` card's tunnel 0.
 */
export interface TunnelSpec {
  host: string;
  port: number;
  chassis: string;
  atNs: number;
  mtu: number;
}

/** TLPs from one card to another through their tunnel, `count` of them from `startNs`, as fast as the tunnel takes them. */
export interface TrafficSpec {
  from: string;
  to: string;
  count: number;
  startNs: number;
  payload: number;
  mix: TrafficMix;
}

/** A device in a chassis slot. */
export interface DeviceSpec {
  chassis: string;
  slot: number;
  kind: "dma-test" | "graphics" | "keyboard-mouse" | "nvme";
  /** keyboard-mouse: text typed at the chassis, one character (and a mouse move) every intervalNs from startNs. */
  typing?: { text: string; startNs: number; intervalNs: number };
}

/**
 * A server with the host card `host` in its root port. Its OS enumerates at `enumerateNs`
 * and then runs the drivers of the devices it finds.
 */
export interface ServerSpec {
  name: string;
  host: string;
  enumerateNs: number;
}

export interface Scenario {
  name: string;
  description: string;
  durationNs: number;
  logLevel: LogLevel;
  cards: CardSpec[];
  cables: CableSpec[];
  tunnels: TunnelSpec[];
  traffic: TrafficSpec[];
  devices: DeviceSpec[];
  servers: ServerSpec[];
}

/** Board ID of the IOV card, revision A (docs/registers.md). */
export const BOARD_ID = 0x10f0_0a01;

export const SCENARIOS: Record<string, Scenario> = {
  default: {
    name: "default",
    description: "a server's host card and a chassis card 100 m apart (10GbE, 0.1 % frame loss) bring their tunnel up; the server enumerates the remote graphics adapter, DMA test device, keyboard/mouse and NVMe drive, draws on the remote screen, runs verified DMA and NVMe I/O and reads what is typed, while test traffic crosses both ways",
    durationNs: 3e9,
    logLevel: LogLevel.Info,
    cards: [
      { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 2, powerOnNs: 0 },
      { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 4, powerOnNs: 250_000 },
    ],
    cables: [{ id: "cable", a: "host", b: "chassis", config: { lengthM: 100, aToB: { loss: 0.001 }, bToA: { loss: 0.001 } } }],
    tunnels: [{ host: "host", port: 0, chassis: "chassis", atNs: 1_000_000, mtu: 9000 }],
    traffic: [
      { from: "host", to: "chassis", count: 100_000, startNs: 10_000_000, payload: 256, mix: { posted: 1, nonPosted: 0, completion: 0 } },
      { from: "chassis", to: "host", count: 20_000, startNs: 10_000_000, payload: 64, mix: { posted: 6, nonPosted: 1, completion: 3 } },
    ],
    devices: [
      { chassis: "chassis", slot: 0, kind: "graphics" },
      { chassis: "chassis", slot: 1, kind: "dma-test" },
      { chassis: "chassis", slot: 2, kind: "keyboard-mouse", typing: { text: "hello from the chassis", startNs: 20_000_000, intervalNs: 2_000_000 } },
      { chassis: "chassis", slot: 3, kind: "nvme" },
    ],
    servers: [{ name: "server", host: "host", enumerateNs: 2_000_000 }],
  },
};

/** Locally administered unicast MAC derived from the card serial: 02:10:xx:xx:xx:xx. */
export function macFor(serial: number): Uint8Array {
  return Uint8Array.of(0x02, 0x10, serial >>> 24, (serial >>> 16) & 0xff, (serial >>> 8) & 0xff, serial & 0xff);
}
