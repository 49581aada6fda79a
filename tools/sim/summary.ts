// The machine-readable summary of a run (`iov sim --summary FILE`). Everything in it is
// a function of scenario and seed: no wall-clock figures. Later subsystems fill in the
// data-path and hot-plug counters; until they exist those are zero.

import type { CardStats, CardState } from "../../board/card.ts";

export interface LinkStateChange {
  timeNs: number;
  state: string;
}

export interface CardSummary {
  name: string;
  role: "host" | "chassis";
  serial: string;
  firmware: string | null;
  state: CardState;
  linkStates: LinkStateChange[];
  stats: CardStats;
  firmwareCounters: Record<string, number> | null;
}

export interface RunSummary {
  scenario: string;
  seed: number;
  engine: string;
  simulatedNs: number;
  cards: CardSummary[];
  tlps: { sent: number; delivered: number; lost: number; duplicated: number; reordered: number };
  hostCompletionTimeouts: number;
  dataVerificationErrors: number;
  /** Hot-plug events seen by each host card's server, keyed by host card name. */
  hotplugEvents: Record<string, { removals: number; insertions: number }>;
  firmwareTraps: number;
  mailboxErrors: number;
}

/** The times card `card`'s tunnel `tunnel` entered link state `state` (lower case, as in linkStates). */
export function stateEntries(summary: RunSummary, card: string, state: string, tunnel = 0): number[] {
  const found = summary.cards.find((c) => c.name === card);
  if (!found) throw new Error(`no card named ${card} in the summary`);
  return found.linkStates.filter((s) => s.state === `tunnel${tunnel}:${state}`).map((s) => s.timeNs);
}
