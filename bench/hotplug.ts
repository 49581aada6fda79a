// Hot-plug as the server sees it (in-process engine): a server, its host card and a chassis
// card with an NVMe drive under its verified load, 10 m of direct cable. How long after the
// cable is pulled the server's pciehp removes the devices, how long after it is plugged back
// the drive serves verified I/O again, and that nothing waiting on a device times out.

import { World } from "../tools/sim/world.ts";
import { hotplugScenario, type HotplugOptions } from "../tools/sim/scenarios.ts";
import type { NvmeRun, RunSummary } from "../tools/sim/summary.ts";
import { LinkTiming } from "../board/map/link.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { timelineChart, type Lane, type Point } from "./svg.ts";
import type { Figure, Section } from "./metrics.ts";

const MS = 1_000_000;
const SEED = 11;
/** The pull, well after the NVMe load has started (at the soft-core's 100 MHz the cards pair at ~100 ms and the first read-back is verified at ~230 ms). */
const PULL = 300 * MS;
/** The plug-back: far past the grace window, so the pull was a surprise removal. */
const PLUG = PULL + 100 * MS;
/** How long the reconnect run goes on after the plug-back: the drive serves again ~140 ms after it. */
const AFTER_PLUG = 200 * MS;

/** NVMe throughput is sampled in buckets of this length for the timeline. */
const BUCKET = 1 * MS;

async function run(options: HotplugOptions, throughput?: Point[]): Promise<RunSummary> {
  const world = new World({ scenario: hotplugScenario(options), seed: SEED, engine: "node", engineOptions: { firmware: FIRMWARE }, print: null });
  if (throughput) {
    let last = 0;
    for (let t = BUCKET; t <= options.durationNs; t += BUCKET) {
      world.scheduler.at(t, () => {
        const bytes = world.nvmeVerifiedBytes();
        throughput.push({ x: (t - BUCKET) / MS, y: ((bytes - last) * 8) / BUCKET });
        last = bytes;
      });
    }
  }
  return world.run();
}

/** The cable pull and reconnect as the host card, the server's pciehp and the NVMe load saw them. */
function timeline(summary: RunSummary, throughput: Point[], from: number, to: number): Figure {
  const changes = summary.cards.find((c) => c.name === "host")!.linkStates.filter((s) => s.state.startsWith("tunnel0:"));
  const states: NonNullable<Lane["states"]> = [];
  changes.forEach((change, i) => {
    const start = Math.max(change.timeNs, from);
    const end = Math.min(changes[i + 1]?.timeNs ?? to, to);
    if (end > start) states.push({ from: start / MS, to: end / MS, state: change.state.slice("tunnel0:".length) });
  });
  const hotplug = summary.servers[0].hotplug.filter((h) => h.timeNs >= from && h.timeNs <= to);
  return {
    file: "cable-pull.svg",
    title: "A cable pull and reconnect under NVMe load",
    svg: timelineChart({
      title: `Cable pulled at ${PULL / MS} ms and plugged back at ${PLUG / MS} ms, NVMe load running`,
      xLabel: "simulated time (ms)",
      from: from / MS,
      to: to / MS,
      markers: [{ at: PULL / MS, label: "cable pulled" }, { at: PLUG / MS, label: "plugged back" }],
      lanes: [
        { label: "host card link", kind: "states", states },
        { label: "server pciehp", kind: "events", events: hotplug.map((h) => ({ at: h.timeNs / MS, label: `slot ${h.slot} ${h.change === "insertionFailed" ? "failed" : h.change}` })) },
        { label: "NVMe verified", kind: "series", unit: "Gb/s", series: throughput.filter((p) => p.x * MS >= from && p.x * MS <= to) },
      ],
    }),
    caption: `The hotplugScenario (a server, its host card, a chassis card with an NVMe drive and a DMA test device, 10 m of direct cable; seed ${SEED}) with the NVMe load of one verified 32 KiB write and read-back a millisecond. ` +
      `The host card's link state as its firmware wrote it, the slot events the server's pciehp handled, and the NVMe data written, read back and found equal, per ${BUCKET / MS} ms. ` +
      `The link rides out the first ${LinkTiming.GraceNs / MS} ms (recovery), then goes down: a surprise removal. After the plug-back the cards pair again (a few handshake batches of their soft-cores); pciehp waits 20 ms and then the 100 ms owed to a new device before it enumerates, and the load resumes.`,
  };
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
  const throughput: Point[] = [];
  const replug = await run({ durationNs: PLUG + AFTER_PLUG, pulls: [{ downAtNs: PULL, upAtNs: PLUG }] }, throughput);
  const removal = firstHotplug(pull, "removal", PULL) - PULL;
  const back = firstRunAfter(replug, PLUG);
  const insertion = firstHotplug(replug, "insertion", PLUG) - PLUG;
  const aborted = pull.servers[0].nvme.reduce((n, r) => n + r.commandsAborted, 0);
  const us = (ns: number) => ns / 1000;
  const ms = (ns: number) => ns / MS;
  return {
    figures: [timeline(replug, throughput, PULL - 10 * MS, PLUG + AFTER_PLUG)],
    rows: [
      { id: "hotplug_remove_us", metric: { value: us(removal), unit: "µs" } },
      { id: "reconnect_usable_ms", metric: { value: ms(back.firstVerifiedNs - PLUG), unit: "ms" } },
      { id: "cto_count.pull", metric: { value: pull.hostCompletionTimeouts + replug.hostCompletionTimeouts, unit: "count" } },
    ],
    notes: [
      `hotplug_remove_us: cable (direct, 10 m) pulled at ${PULL / MS} ms under the NVMe load (seed ${SEED}) to the server's first hot-plug removal; ` +
        `the host card's firmware declares the link Down when the ${us(LinkTiming.GraceNs)} µs grace expires (docs/link.md), and the removal is the server's pciehp ` +
        `handling the slot's MSI (docs/hotplug.md), ${(us(removal) - us(LinkTiming.GraceNs)).toFixed(3)} µs later; ${aborted} NVMe command(s) in flight aborted by the removal; target <= grace + 1000 µs`,
      `reconnect_usable_ms: cable plugged back ${(PLUG - PULL) / MS} ms after the pull to the first verified NVMe read-back of the new binding: link re-pairing (the soft-cores' handshake batches), ` +
        `pciehp's 20 ms before reading DL Link Active and the 100 ms owed to the device (docs/hotplug.md), the Vendor ID read and enumeration ` +
        `(first slot inserted at +${ms(insertion).toFixed(3)} ms), NVMe init until the driver bound (+${ms(back.boundNs - PLUG).toFixed(3)} ms), then the first 32 KiB write and read-back`,
      `cto_count.pull: completion timeouts of the server in both pull runs; must be 0 (the removal completes what is outstanding with Unsupported Request inside the 50 ms timeout); ` +
        `the same runs in --quick and full mode`,
    ],
  };
}
