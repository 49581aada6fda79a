// The machine-readable summary of a run (`iov sim --summary FILE`). Everything in it is
// a function of scenario and seed: no wall-clock figures.

import type { CardStats, CardState } from "../../board/card.ts";
import type { UartStats } from "../../board/uart.ts";
import type { AttackerStats } from "./attacker.ts";

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
  /** Its console line: bytes each way, and bytes dropped (received while no firmware ran, or past the transmit queue). */
  uart: UartStats;
  firmwareCounters: Record<string, number> | null;
  /** Chassis cards: the host card of each session, from when it began; `host: null` from when a session ended. */
  owners?: Owner[];
  /** Its Ethernet ports at the end (PortReg): cable, carrier, frames each way, frames dropped. */
  ports: PortSummary[];
  /** The paths of its tunnels in a session at the end (PathReg), a tunnel's first path first. */
  paths: PathSummary[];
}

export interface PortSummary {
  port: number;
  connected: boolean;
  carrier: boolean;
  rxFrames: number;
  txFrames: number;
  rxFcsErrors: number;
  rxDropped: number;
  txDropped: number;
}

/** A path of a tunnel in a session: its port, the peer card, whether it is silent, its round trip and frames. */
export interface PathSummary {
  tunnel: number;
  port: number;
  peer: string | null;
  first: boolean;
  silent: boolean;
  /** Smoothed round trip of frames sent once on it (0: none measured). */
  rttNs: number;
  txFrames: number;
  rxFrames: number;
  /** Frames sent on it that went again (lost, late, or the path went silent). */
  resent: number;
}

/** A chassis card's owner from `timeNs`: the host card of its session (null: none) and the group (ControlVlan) it was in. */
export interface Owner {
  timeNs: number;
  host: string | null;
  group: number;
}

/** A scenario's assign action: when the station was told, the card, its group then and the new one. */
export interface Assignment {
  timeNs: number;
  card: string;
  from: number;
  to: number;
  /** A chassis card: when its first session in the new group began; a host card: when the station had its Ok. Null: not by the end of the run. */
  doneNs: number | null;
  /** "ok", "pending" (no answer by the end), or the station's error. */
  outcome: string;
}

/** What a server went through: its hot-plug events, its drivers coming and going, its NVMe load. */
export interface ServerSummary {
  name: string;
  /** Its host card. */
  host: string;
  /** Slot events its pciehp handled, in order. */
  hotplug: { timeNs: number; slot: number; change: "removal" | "insertion" | "insertionFailed" }[];
  /** Drivers bound to and unbound from functions (bus:device.function), in order. */
  drivers: { timeNs: number; fn: string; driver: string; event: "bound" | "unbound" | "probeFailed" }[];
  /** Requests the root complex saw completed with Unsupported Request or Completer Abort. */
  errorCompletions: number;
  /** Requests of the root complex still waiting for their completion when the run ended. */
  requestsOutstanding: number;
  /** Configuration reads below the root port that completed, and their latency (ns) at the 50th and 99th percentile and at most. */
  configReads: { count: number; p50Ns: number; p99Ns: number; maxNs: number };
  /** The verified NVMe load, one record each time a disk was bound. */
  nvme: NvmeRun[];
}

/** One verified NVMe load, from the driver binding the disk until the run ended or the disk went. */
export interface NvmeRun {
  /** bus:device.function of the disk. */
  fn: string;
  boundNs: number;
  /** When the first read-back was verified, if one was. */
  firstVerifiedNs: number | null;
  /** "running" at the end of the run, else why it ended and when. */
  ended: "running" | "stopped" | "removed" | "error";
  endedNs: number | null;
  bytesVerified: number;
  commands: number;
  /** Commands the driver failed because the disk was removed while they waited. */
  commandsAborted: number;
  errors: number;
  mismatches: number;
}

/** The MACsec counters of all tunnels of all cards, summed (board/map/registers.ts TunnelCounter). */
export interface MacsecSummary {
  /** DATA, ACK and KEEPALIVE frames sent as MACsec frames, and sent in clear (sessions with MACsec off on both cards). */
  protectedFrames: number;
  clearFrames: number;
  validated: number;
  /** Frames dropped: ICV wrong, PN below the replay window, AN without an SA, unknown SCI, in clear while protected, bad SecTAG. */
  badIcv: number;
  late: number;
  unknownSa: number;
  unknownSci: number;
  untagged: number;
  badTag: number;
  /** Transmit SA switches. */
  rekeys: number;
}

export interface RunSummary {
  scenario: string;
  seed: number;
  engine: string;
  /** The cards' soft-core clock; 0: the zero-time model. */
  softcoreMhz: number;
  simulatedNs: number;
  cards: CardSummary[];
  /** Test traffic (scenario `traffic`): each fault counted once; TLPs discarded at a removal are aborted, not lost. */
  tlps: { sent: number; delivered: number; lost: number; duplicated: number; reordered: number; abortedByRemoval: number };
  hostCompletionTimeouts: number;
  /** DMA reads of the chassis devices that got no completion within their completion timeout. */
  deviceCompletionTimeouts: number;
  /**
   * The longest any non-posted request waited for its completion, until it completed, timed out or
   * was dropped at a device reset, or until the end of the run: the servers' requests and the
   * chassis devices' DMA reads (0: none was issued).
   */
  worstRequestNs: number;
  /** Which request that was, whose, how it ended and when it was issued; empty when none was issued. */
  worstRequest: string;
  dataVerificationErrors: number;
  /** Hot-plug events seen by each host card's server, keyed by host card name. */
  hotplugEvents: Record<string, { removals: number; insertions: number }>;
  servers: ServerSummary[];
  firmwareTraps: number;
  mailboxErrors: number;
  /** MACsec on every card's tunnels (docs/wire-format.md#macsec): frames sent, frames refused by reason, rekeys. */
  macsec: MacsecSummary;
  /**
   * The rogue station of a scenario with one (tools/sim/attacker.ts): what it read and sent, and what
   * got through: `accepted` (a frame of its validated with a new PN, or delivering a TLP) must be 0;
   * `validatedReplays` are its replays of frames the card had already taken, inside the replay
   * window, which MACsec lets through by design and the tunnel drops as duplicates; `reached` its
   * frames that reached a card, `uncounted` those no counter of that card counted (must be 0);
   * `relayed` its replays of a card's frame that the network had lost before it reached its peer,
   * which the peer then takes as the genuine frame it is, once.
   */
  attack?: AttackerStats & { accepted: number; validatedReplays: number; relayed: number; reached: number; uncounted: number };
  /** Each switch of the scenario: what it dropped and marked, and per port how deep its egress queue got (docs/network.md#congestion). */
  switches: SwitchSummary[];
  /** TLPs a tunnel delivered that did not come from its pair in its group and session (docs/scenarios.md#invariants). */
  crossDeliveries: number;
  /** Sessions of a chassis card with a new host card that began before every device was reset. */
  unresetHandovers: number;
  /** The scenario's assign actions and how they went. */
  assignments: Assignment[];
  /** Every fleet invariant that did not hold, one line each; empty when all did. */
  invariants: string[];
}

export interface SwitchSummary {
  name: string;
  /** Frames its egress ports refused: a full queue or shared buffer (`bufferDrops` of them), or a link down. */
  egressDrops: number;
  bufferDrops: number;
  /** Frames it marked congestion experienced. */
  ecnMarked: number;
  /** PFC frames it sent to pause a sender, and lossless frames it dropped past a port's headroom (docs/network.md#priority-flow-control). */
  pauseSent: number;
  headroomDrops: number;
  /** Each plugged port that sent anything: its drops and marks, the deepest its egress queue got, and the depth 99 % of its frames found ahead of them. */
  ports: { port: number; txFrames: number; egressDrops: number; ecnMarked: number; peakQueuedBytes: number; queueP99Bytes: number }[];
}

/** The times card `card`'s tunnel `tunnel` entered link state `state` (lower case, as in linkStates). */
export function stateEntries(summary: RunSummary, card: string, state: string, tunnel = 0): number[] {
  const found = summary.cards.find((c) => c.name === card);
  if (!found) throw new Error(`no card named ${card} in the summary`);
  return found.linkStates.filter((s) => s.state === `tunnel${tunnel}:${state}`).map((s) => s.timeNs);
}

/** The `p`th percentile of ascending `sorted` samples (the sample at rank floor(p% of n), the last at most). */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
