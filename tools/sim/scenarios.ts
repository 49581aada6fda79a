// Built-in scenarios: which cards exist, when they power on, how long the run lasts.

import { CardRole, LogLevel } from "../../board/map/mailbox.ts";

export interface CardSpec {
  name: string;
  role: CardRole;
  serial: number;
  slots: number;
  powerOnNs: number;
}

export interface Scenario {
  name: string;
  description: string;
  durationNs: number;
  logLevel: LogLevel;
  cards: CardSpec[];
}

/** Board ID of the IOV card, revision A (docs/registers.md). */
export const BOARD_ID = 0x10f0_0a01;

export const SCENARIOS: Record<string, Scenario> = {
  default: {
    name: "default",
    description: "a host card in a server and a chassis card in a remote two-slot chassis power on and run",
    durationNs: 3e9,
    logLevel: LogLevel.Info,
    cards: [
      { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 1, powerOnNs: 0 },
      { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 2, powerOnNs: 250_000 },
    ],
  },
};

/** Locally administered unicast MAC derived from the card serial: 02:10:xx:xx:xx:xx. */
export function macFor(serial: number): Uint8Array {
  return Uint8Array.of(0x02, 0x10, serial >>> 24, (serial >>> 16) & 0xff, (serial >>> 8) & 0xff, serial & 0xff);
}
