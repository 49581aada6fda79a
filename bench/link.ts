// Link training and health, run by the firmware itself (in-process engine): bring-up time,
// how fast a cut is detected and declared down, false downs under heavy loss, and hot-plug
// events caused by a short flap. A host card and a chassis card, 10 m of cable, fixed seeds.

import { World } from "../tools/sim/world.ts";
import { pairScenario, type PairOptions } from "../tools/sim/scenarios.ts";
import { stateEntries, type RunSummary } from "../tools/sim/summary.ts";
import { LinkTiming } from "../board/map/link.ts";
import { FIRMWARE } from "../tools/paths.ts";
import type { Section } from "./metrics.ts";

const MS = 1_000_000;
const CARDS = ["host", "chassis"];

async function run(options: PairOptions, seed = 11): Promise<RunSummary> {
  return new World({ scenario: pairScenario(options), seed, engine: "node", engineOptions: { firmware: FIRMWARE } }).run();
}

/** When each card's tunnel 0 first entered `state` at or after `from`. */
function firstEntry(summary: RunSummary, state: string, from: number): number[] {
  return CARDS.map((name) => stateEntries(summary, name, state).find((t) => t >= from) ?? NaN);
}

function total(summary: RunSummary, counter: string): number {
  return summary.cards.reduce((n, c) => n + (c.firmwareCounters?.[counter] ?? 0), 0);
}

export async function linkBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  progress("link bring-up, both cards powered on at 0, 10 m cable");
  const bringup = Math.max(...firstEntry(await run({ durationNs: 300 * MS }), "active", 0));
  // After pairing, which takes about 100 ms at the soft-core's 100 MHz (docs/softcore.md).
  const cut = 300 * MS;
  progress("cable cut behind a switch: detection by silence, then down after the grace window");
  const switched = await run({ durationNs: cut + LinkTiming.GraceNs + 10 * MS, switched: true, outages: [{ downAtNs: cut }] });
  progress("cable cut on a direct cable: detection by carrier loss");
  const direct = await run({ durationNs: cut + 5 * MS, outages: [{ downAtNs: cut }] });
  const seconds = options.quick ? 1 : 10;
  progress(`5 % frame loss both ways for ${seconds} s simulated`);
  const lossy = await run({ durationNs: seconds * 1000 * MS, loss: 0.05 }, 7);
  progress("10 ms cable flap");
  const flap = await run({ durationNs: cut + 50 * MS, outages: [{ downAtNs: cut, upAtNs: cut + 10 * MS }] });
  const us = (ns: number) => ns / 1000;
  const after = (summary: RunSummary, state: string) => us(Math.max(...firstEntry(summary, state, cut)) - cut);
  return {
    rows: [
      { id: "bringup_us", metric: { value: us(bringup), unit: "µs" } },
      { id: "detect_us", metric: { value: after(switched, "recovery"), unit: "µs" } },
      { id: "detect_us.carrier", metric: { value: after(direct, "recovery"), unit: "µs" }, baseline: "detect_us" },
      { id: "down_us", metric: { value: after(switched, "down"), unit: "µs" } },
      { id: `false_downs.loss5`, metric: { value: total(lossy, "LinkDowns"), unit: "count" } },
      { id: "flap_hotplug_events.10ms", metric: { value: total(flap, "LinkDowns"), unit: "count" } },
    ],
    notes: [
      `link timers (docs/link.md): keepalive ${us(LinkTiming.KeepaliveNs)} µs, silence ${us(LinkTiming.SilenceNs)} µs, grace ${us(LinkTiming.GraceNs)} µs; targets: detect_us <= 300, down_us <= grace + 1000, zero false downs, zero flap hot-plug events`,
      `bringup_us: both cards powered on at 0 to both active, at the soft-core's 100 MHz: wasm3 loading the firmware, its boot batches, discovery and the handshake's batches`,
      `false_downs.loss5: ${seconds} s simulated${options.quick ? " (--quick; 10 s in a full run)" : ""}; flap_hotplug_events.10ms counts downs (each a hot-plug removal) during a 10 ms outage`,
    ],
  };
}
