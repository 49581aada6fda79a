import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS } from "../../tools/sim/scenarios.ts";
import { FIRMWARE } from "./helpers.ts";
import { TunnelCounter } from "../../board/map/registers.ts";

function world(durationNs: number, seed = 3): World {
  return new World({ scenario: SCENARIOS.default, seed, engine: "node", engineOptions: { firmware: FIRMWARE }, durationNs });
}

test("start hooks run at time 0 before anything, stop hooks when simulated time is up", async () => {
  const w = world(5_000_000);
  const seen: string[] = [];
  w.startHooks.push((x) => void seen.push(`start@${x.scheduler.now} cards ${x.cards.map((c) => c.state).join(",")}`));
  w.stopHooks.push(async (x) => void seen.push(`stop@${x.scheduler.now} cards ${x.cards.map((c) => c.state).join(",")}`));
  await w.run();
  assert.deepEqual(seen, ["start@0 cards off,off", "stop@5000000 cards running,running"]);
});

test("the default scenario's tunnel carries its traffic with the cable's losses repaired", async () => {
  const w = world(40_000_000);
  const summary = await w.run();
  assert.deepEqual(summary.tlps, { sent: 120_000, delivered: 120_000, lost: 0, duplicated: 0, reordered: 0 });
  const cable = w.network.counters().links.cable;
  assert.ok(cable.aToB.lostFrames > 0 && cable.bToA.lostFrames > 0, "the 0.1 % loss did happen");
  const host = w.fabrics.get("host")!.tunnels[0];
  assert.ok(host.counters[TunnelCounter.Retransmits] > 0, "and was repaired by retransmission");
});

test("keys typed at the chassis reach the server within microseconds even while the tunnel is saturated the other way", async () => {
  // The default scenario types while the host floods the chassis; a credit update lost to
  // the 0.1 % frame loss once held the keyboard's reports until the flood ended (12 ms).
  const w = world(80_000_000, 1);
  await w.run();
  const { keys, latenciesNs } = w.inputs[0];
  assert.equal(keys, "hello from the chassis");
  assert.ok(Math.max(...latenciesNs) < 200_000, `worst report latency ${Math.max(...latenciesNs)} ns`);
});
