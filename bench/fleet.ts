// Simulator speed on the built-in fleet (in-process engine): 256 servers, 64 chassis cards
// with an NVMe drive each under a light verified load, 16 leaf switches under a spine, and
// the fleet's schedule (chassis moved between servers from FLEET_SETTLED_NS, a cable pulled, a
// switch port failed, a card rebooted). Wall seconds per simulated second, measured after
// WARM_NS, once every card has booted and paired and every server has enumerated.

import { World } from "../tools/sim/world.ts";
import { fleetScenario, FLEET, FLEET_SETTLED_NS } from "../tools/sim/fleet.ts";
import { FIRMWARE } from "../tools/paths.ts";
import type { Section } from "./metrics.ts";

const MS = 1_000_000;
const SEED = 1;
const WARM_NS = FLEET_SETTLED_NS;

export async function fleetBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  // The whole schedule in a full run (a run that ends inside a move's or reboot's window would
  // leave the invariant checker a server still holding a device of a chassis that is mid-reboot).
  const measuredNs = options.quick ? 40 * MS : FLEET.durationNs - WARM_NS;
  const durationNs = WARM_NS + measuredNs;
  progress(`fleet: ${FLEET.servers} servers and ${FLEET.chassis} chassis, ${durationNs / MS} ms simulated`);
  const world = new World({ scenario: fleetScenario({ ...FLEET, durationNs }), seed: SEED, engine: "node", engineOptions: { firmware: FIRMWARE }, print: null });
  const started = performance.now();
  let warm = started;
  world.scheduler.at(WARM_NS, () => {
    warm = performance.now();
  });
  const summary = await world.run();
  const end = performance.now();
  if (summary.invariants.length > 0) throw new Error(`fleet benchmark: ${summary.invariants.length} invariant violation(s), first: ${summary.invariants[0]}`);
  const perSimSecond = (end - warm) / 1000 / (measuredNs / 1e9);
  const moved = summary.assignments.filter((a) => a.doneNs !== null).length;
  return {
    rows: [{ id: "fleet_sim_wall_s_per_sim_s", metric: { value: perSimSecond, unit: "s/s" } }],
    notes: [
      `fleet_sim_wall_s_per_sim_s: \`iov sim --scenario fleet\` (seed ${SEED}) from ${WARM_NS / MS} ms to ${durationNs / MS} ms simulated, on one core of this machine: ` +
        `${summary.cards.length} cards running firmware.wasm in-process, ${summary.servers.length} servers, ${moved} chassis move(s) done in the window; ` +
        `the first ${WARM_NS / MS} ms (every card booting and pairing, every server enumerating) took ${((warm - started) / 1000).toFixed(1)} s and are not counted; ` +
        `${summary.invariants.length} invariant violations`,
    ],
  };
}
