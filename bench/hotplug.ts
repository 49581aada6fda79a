// Hot-plug as the server sees it (in-process engine): a server, its host card and a chassis
// card with an NVMe drive under its verified load, 10 m of direct cable. How long after the
// cable is pulled the server's pciehp removes the devices, how long after it is plugged back
// the drive serves verified I/O again, and that nothing waiting on a device times out.

import { World } from "../tools/sim/world.ts";
import { hotplugScenario, type HotplugOptions } from "../tools/sim/scenarios.ts";
import type { NvmeRun, RunSummary } from "../tools/sim/summary.ts";
import { LinkTiming } from "../board/map/link.ts";
import { FIRMWARE } from "../tools/paths.ts";
import type { Section } from "./metrics.ts";

const MS = 1_000_000;
const SEED = 11;
/** The pull, well after the NVMe load has started (its first read-back is verified at ~4 ms). */
const PULL = 50 * MS;
/** The plug-back: far past the grace window, so the pull was a surprise removal. */
const PLUG = PULL + 100 * MS;

async function run(options: HotplugOptions): Promise<RunSummary> {
  return new World({ scenario: hotplugScenario(options), seed: SEED, engine: "node", engineOptions: { firmware: FIRMWARE } }).run();
}

/** The time of the server's first hot-plug `change` at or after `from`. */
function firstHotplug(summary: RunSummary, change: "removal" | "insertion", from: number): number {
  const event = summary.servers[0].hotplug.find((h) => h.change === change && h.timeNs >= from);
  if (!event) throw new Error(`hot-plug benchmark: the server saw no ${change} after ${from / MS} ms`);
  return event.timeNs;
}

/** The first NVMe run bound after `from` that verified a read-back. */
function firstRunAfter(summary: RunSummary, from: number): NvmeRun & { firstVerifiedNs: number } {
  const run = summary.servers[0].nvme.find((r) => r.boundNs > from);
  if (!run || run.firstVerifiedNs === null) throw new Error(`hot-plug benchmark: no NVMe read-back verified after the drive came back at ${from / MS} ms`);
  return run as NvmeRun & { firstVerifiedNs: number };
}

export async function hotplugBenchmarks(_options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  progress(`hot-plug: cable pulled at ${PULL / MS} ms under NVMe load, never plugged back`);
  const pull = await run({ durationNs: PULL + 30 * MS, pulls: [{ downAtNs: PULL }] });
  progress(`hot-plug: cable pulled at ${PULL / MS} ms, plugged back at ${PLUG / MS} ms`);
  const replug = await run({ durationNs: PLUG + 140 * MS, pulls: [{ downAtNs: PULL, upAtNs: PLUG }] });
  const removal = firstHotplug(pull, "removal", PULL) - PULL;
  const back = firstRunAfter(replug, PLUG);
  const insertion = firstHotplug(replug, "insertion", PLUG) - PLUG;
  const aborted = pull.servers[0].nvme.reduce((n, r) => n + r.commandsAborted, 0);
  const us = (ns: number) => ns / 1000;
  const ms = (ns: number) => ns / MS;
  return {
    rows: [
      { id: "hotplug_remove_us", metric: { value: us(removal), unit: "µs" } },
      { id: "reconnect_usable_ms", metric: { value: ms(back.firstVerifiedNs - PLUG), unit: "ms" } },
      { id: "cto_count.pull", metric: { value: pull.hostCompletionTimeouts + replug.hostCompletionTimeouts, unit: "count" } },
    ],
    notes: [
      `hotplug_remove_us: cable (direct, 10 m) pulled at ${PULL / MS} ms under the NVMe load (seed ${SEED}) to the server's first hot-plug removal; ` +
        `the host card's firmware declares the link Down when the ${us(LinkTiming.GraceNs)} µs grace expires (docs/link.md), and the removal is the server's pciehp ` +
        `handling the slot's MSI (docs/hotplug.md), ${(us(removal) - us(LinkTiming.GraceNs)).toFixed(3)} µs later; ${aborted} NVMe command(s) in flight aborted by the removal; target <= grace + 1000 µs`,
      `reconnect_usable_ms: cable plugged back ${(PLUG - PULL) / MS} ms after the pull to the first verified NVMe read-back of the new binding: link re-pairing (µs on 10 m), ` +
        `pciehp's 20 ms before reading DL Link Active and the 100 ms owed to the device (docs/hotplug.md), the Vendor ID read and enumeration ` +
        `(first slot inserted at +${ms(insertion).toFixed(3)} ms), NVMe init until the driver bound (+${ms(back.boundNs - PLUG).toFixed(3)} ms), then the first 32 KiB write and read-back`,
      `cto_count.pull: completion timeouts of the server in both pull runs; must be 0 (the removal completes what is outstanding with Unsupported Request inside the 50 ms timeout); ` +
        `the same runs in --quick and full mode`,
    ],
  };
}
