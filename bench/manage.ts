// Reassignment (in-process engine): the `handover` scenario with an NVMe drive in the chassis,
// a management station on the switch. At ASSIGN the station moves the chassis card from
// server1's group to server2's; the figure is the time from that command to server2's first
// verified NVMe read-back. Idle, the old server removes the drive in order (pciehp's 5 s
// attention-button blink); under load, at once (a surprise removal).

import { World } from "../tools/sim/world.ts";
import { SCENARIOS, type NvmeLoadSpec, type Scenario } from "../tools/sim/scenarios.ts";
import type { RunSummary } from "../tools/sim/summary.ts";
import { RELEASE_IDLE_US } from "../board/map/link.ts";
import { FIRMWARE } from "../tools/paths.ts";
import type { Section } from "./metrics.ts";

const MS = 1_000_000;
const SEED = 13;
/** The assign command, after server1's driver has bound the drive (at the soft-core's 100 MHz its first read-back is verified at ~250 ms). */
const ASSIGN = 400 * MS;
/** Idle: one verified write and read-back when the driver binds, then nothing for 100 s. */
const IDLE: NvmeLoadSpec = { queueDepth: 1, blocksPerCommand: 8, intervalNs: 100_000 * MS };
/** Busy: a 4 KiB write and read-back every millisecond. */
const BUSY: NvmeLoadSpec = { queueDepth: 1, blocksPerCommand: 8, intervalNs: 1 * MS };

function scenario(load: NvmeLoadSpec, durationNs: number): Scenario {
  const base = SCENARIOS.handover;
  return {
    ...base,
    durationNs,
    devices: [{ chassis: "chassis", slot: 0, kind: "nvme", load }],
    actions: [{ kind: "assign", atNs: ASSIGN, card: "chassis", group: 200 }],
  };
}

/** ms from the assign command to server2's first verified NVMe read-back; `orderly` says which removal server1 must have seen. */
async function reassign(load: NvmeLoadSpec, durationNs: number, orderly: boolean): Promise<{ ms: number; summary: RunSummary }> {
  const summary = await new World({ scenario: scenario(load, durationNs), seed: SEED, engine: "node", engineOptions: { firmware: FIRMWARE }, print: null }).run();
  const server = summary.servers.find((s) => s.name === "server2");
  const run = server?.nvme.find((r) => r.firstVerifiedNs !== null);
  if (!run || run.firstVerifiedNs === null) throw new Error(`reassignment benchmark: server2 never verified an NVMe read-back (load every ${load.intervalNs / MS} ms)`);
  const releases = summary.cards.find((c) => c.name === "host1")?.firmwareCounters?.Releases;
  if (releases !== (orderly ? 1 : 0)) throw new Error(`reassignment benchmark: host1 counted ${releases} orderly release(s), expected ${orderly ? 1 : 0}`);
  return { ms: (run.firstVerifiedNs - ASSIGN) / MS, summary };
}

export async function manageBenchmarks(_options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  progress("reassignment: an idle chassis moved between servers (orderly removal)");
  const idle = await reassign(IDLE, ASSIGN + 6_000 * MS, true);
  progress("reassignment: a chassis under NVMe load moved between servers (surprise removal)");
  const busy = await reassign(BUSY, ASSIGN + 500 * MS, false);
  const timeouts = idle.summary.hostCompletionTimeouts + busy.summary.hostCompletionTimeouts;
  return {
    rows: [
      { id: "reassign_ms", metric: { value: idle.ms, unit: "ms" } },
      { id: "reassign_ms.busy", metric: { value: busy.ms, unit: "ms" }, baseline: "reassign_ms" },
      { id: "cto_count.reassign", metric: { value: timeouts, unit: "count" } },
    ],
    notes: [
      `reassign_ms: the station's SetGroup (the scenario's assign action; what \`iov manage assign\` sends) in scenario handover (seed ${SEED}; an NVMe drive idle for more than ${RELEASE_IDLE_US / 1000} ms) ` +
        "to server2's first verified NVMe read-back: the station finds the card, the card writes its configuration record (a 45 ms sector erase), " +
        "RELEASE, the attention button and pciehp's 5 s blink before the orderly removal, re-pairing in the new group, pciehp's 100 ms wait, enumeration, the driver's init and a 4 KiB write and read-back",
      "reassign_ms.busy: the same under a 4 KiB write and read-back every millisecond: the old server loses the drive at once (a surprise removal), no 5 s blink",
      "cto_count.reassign: completion timeouts of both servers in both runs; must be 0",
    ],
  };
}
