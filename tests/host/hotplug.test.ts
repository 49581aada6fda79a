// A pulled cable is a surprise removal the server survives, a reconnect a hot-plug insertion
// after which the devices work again: the whole system (firmware on both cards, the fabric's
// switch router, the network, the server's pciehp and drivers), with fixed seeds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { hotplugScenario, type HotplugOptions } from "../../tools/sim/scenarios.ts";
import type { RunSummary } from "../../tools/sim/summary.ts";
import { RequestFailed } from "../../tools/server/root-complex.ts";
import { spawn, wait, type Task } from "../../tools/server/task.ts";
import { CplStatus } from "../../board/pcie/tlp.ts";
import { LinkTiming } from "../../board/map/link.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;

/** A read of the NVMe drive's registers, with when it was issued and how it ended. */
interface Probe {
  issuedNs: number;
  endedNs: number;
  outcome: "data" | "unsupported" | "timeout" | "other";
}

async function run(options: HotplugOptions, seed: number, probes?: { fromNs: number; toNs: number; everyNs: number; out: Probe[] }): Promise<RunSummary> {
  const world = new World({ scenario: hotplugScenario(options), seed, engine: "node", engineOptions: { firmware: FIRMWARE } });
  if (probes) {
    // A monitoring task reads the drive's CAP register over and over, as a health daemon would.
    world.startHooks.push((w) => {
      w.scheduler.at(probes.fromNs, () => {
        const { os, rc } = w.servers[0];
        const disk = os.functions.find((f) => f.classCode === 0x010802 && !f.removed);
        assert.ok(disk, "the NVMe drive is enumerated before the probes start");
        const address = disk.bars[0].address;
        spawn((function* (): Task<void> {
          while (rc.now < probes.toNs) {
            const probe: Probe = { issuedNs: rc.now, endedNs: 0, outcome: "other" };
            probes.out.push(probe);
            spawn((function* (): Task<void> {
              try {
                yield* wait(rc.memoryRead(address, 4));
                probe.outcome = "data";
              } catch (error) {
                if (error instanceof RequestFailed) probe.outcome = error.status === "timeout" ? "timeout" : error.status === CplStatus.UnsupportedRequest ? "unsupported" : "other";
              }
              probe.endedNs = rc.now;
            })());
            yield* wait(rc.delay(probes.everyNs));
          }
        })());
      });
    });
  }
  return world.run();
}

const unbound = (s: RunSummary, fn: string) => s.servers[0].drivers.filter((d) => d.fn === fn && d.event === "unbound").map((d) => d.timeNs);
const bound = (s: RunSummary, fn: string) => s.servers[0].drivers.filter((d) => d.fn === fn && d.event === "bound").map((d) => d.timeNs);

test("a cable pulled under NVMe load: surprise removal, drivers unbound, every outstanding read completed with UR, no completion timeout", async () => {
  const pull = 100 * MS;
  const probes: Probe[] = [];
  const s = await run({ durationNs: 200 * MS, pulls: [{ downAtNs: pull }] }, 5, { fromNs: 90 * MS, toNs: 140 * MS, everyNs: 250_000, out: probes });
  const server = s.servers[0];
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  assert.equal(server.requestsOutstanding, 0, "nothing is left waiting");
  // The host card declares the link down after the grace window; pciehp removes both slots at once.
  const removals = server.hotplug.filter((h) => h.change === "removal");
  assert.deepEqual(removals.map((h) => h.slot).sort(), [1, 2]);
  const down = removals[0].timeNs;
  assert.ok(down - pull >= LinkTiming.GraceNs && down - pull < LinkTiming.GraceNs + MS, `removal ${(down - pull) / 1000} µs after the pull`);
  for (const fn of ["3:0.0", "4:0.0"]) assert.deepEqual(unbound(s, fn).length, 1, `${fn} unbound`);
  // The drivers go during the removal, which pciehp records once it has turned the power indicator off.
  assert.ok(unbound(s, "3:0.0")[0] >= pull + LinkTiming.GraceNs && unbound(s, "3:0.0")[0] <= down);
  // The load stopped cleanly: the command caught by the pull was aborted by the driver, nothing failed.
  assert.equal(server.nvme.length, 1);
  assert.equal(server.nvme[0].ended, "removed");
  assert.ok(server.nvme[0].commandsAborted >= 1);
  assert.deepEqual([server.nvme[0].errors, server.nvme[0].mismatches], [0, 0]);
  // Reads before the pull return data; reads held by the grace window end with UR when the link goes
  // down (the router hands them back to the firmware); reads after it get UR at once.
  assert.ok(probes.length >= 190);
  assert.ok(probes.every((p) => p.endedNs > 0 && p.outcome !== "timeout" && p.outcome !== "other"), "every read completed");
  const before = probes.filter((p) => p.issuedNs < pull - 10_000);
  const held = probes.filter((p) => p.issuedNs > pull && p.issuedNs < down);
  const after = probes.filter((p) => p.issuedNs > down);
  assert.ok(before.every((p) => p.outcome === "data"));
  assert.ok(held.length >= 70 && held.every((p) => p.outcome === "unsupported" && p.endedNs - down < 10_000), "held reads end with UR as the link goes down");
  assert.ok(after.every((p) => p.outcome === "unsupported" && p.endedNs - p.issuedNs < 10_000), "later reads get UR at once");
  assert.equal(s.cards[0].firmwareCounters!.OrphansCompleted, held.length, "each held read was an orphan the firmware completed");
});

test("a reconnect is a hot-plug insertion: the server re-enumerates, the drivers bind again and the NVMe load verifies again", async () => {
  const pull = 100 * MS;
  const back = 200 * MS;
  const s = await run({ durationNs: 400 * MS, pulls: [{ downAtNs: pull, upAtNs: back }] }, 6);
  const server = s.servers[0];
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  assert.deepEqual(s.hotplugEvents.host, { removals: 2, insertions: 2 });
  const insertions = server.hotplug.filter((h) => h.change === "insertion");
  assert.deepEqual(insertions.map((h) => h.slot).sort(), [1, 2]);
  // pciehp waits 100 ms after DL Link Active before touching the device (docs/hotplug.md), then
  // finds the device, assigns it and binds its driver: the insertion is complete.
  assert.ok(insertions.every((h) => h.timeNs - back >= 100 * MS && h.timeNs - back < 200 * MS), `insertions at ${insertions.map((h) => h.timeNs)}`);
  for (const fn of ["3:0.0", "4:0.0"]) {
    const times = bound(s, fn);
    assert.equal(times.length, 2, `${fn} bound at boot and again after the reconnect`);
    assert.ok(times[1] - back >= 100 * MS);
  }
  assert.equal(server.nvme.length, 2);
  const again = server.nvme[1];
  assert.ok(again.boundNs > back && again.firstVerifiedNs !== null && again.firstVerifiedNs > again.boundNs);
  assert.equal(again.ended, "running");
  assert.ok(again.bytesVerified > 0);
  assert.deepEqual([again.errors, again.mismatches, again.commandsAborted], [0, 0, 0]);
});

test("pull and reconnect, 20 seeds with different timings: never a completion timeout or a data error, always usable again", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const pull = Math.round((30 + 3.7 * seed) * MS);
    const back = pull + Math.round((25 + 4.3 * seed) * MS);
    const s = await run({ durationNs: back + 160 * MS, pulls: [{ downAtNs: pull, upAtNs: back }] }, seed);
    const server = s.servers[0];
    const where = `seed ${seed}, pull at ${pull / MS} ms for ${(back - pull) / MS} ms`;
    assert.equal(s.hostCompletionTimeouts, 0, where);
    assert.equal(s.dataVerificationErrors, 0, where);
    assert.equal(server.requestsOutstanding, 0, where);
    assert.deepEqual(s.hotplugEvents.host, { removals: 2, insertions: 2 }, where);
    assert.equal(server.nvme.length, 2, where);
    assert.equal(server.nvme[0].ended, "removed", where);
    assert.ok(server.nvme[1].firstVerifiedNs !== null && server.nvme[1].firstVerifiedNs > back, where);
  }
});

test("two chassis cards on one host card: pulling one removes its slots only, the other's NVMe load goes on", async () => {
  const pull = 100 * MS;
  const s = await run({ durationNs: 300 * MS, pulls: [{ downAtNs: pull }], twoChassis: true }, 8);
  const server = s.servers[0];
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  // Ports 1-2 are the first chassis card's slots, ports 3-4 the second's.
  assert.deepEqual(server.hotplug.filter((h) => h.change === "removal").map((h) => h.slot).sort(), [1, 2]);
  assert.deepEqual(unbound(s, "5:0.0"), [], "the second chassis card's drive stays bound");
  const [pulled, kept] = [server.nvme.find((r) => r.fn === "3:0.0")!, server.nvme.find((r) => r.fn === "5:0.0")!];
  assert.equal(pulled.ended, "removed");
  assert.equal(kept.ended, "running");
  // One 32 KiB round a millisecond for 300 ms: the kept drive never paused for the other's removal.
  assert.ok(kept.bytesVerified >= 290 * 32 * 1024, `${kept.bytesVerified} bytes verified`);
  assert.deepEqual([kept.errors, kept.mismatches, kept.commandsAborted], [0, 0, 0]);
  const states = s.cards[0].linkStates.map((c) => c.state);
  assert.ok(!states.includes("tunnel1:down") && !states.includes("tunnel1:recovery"), "the second tunnel never left Active");
  // The second chassis card's slot 1 is empty: its port (4) is an empty slot, not a card pciehp waits for.
  assert.deepEqual(server.hotplug.filter((h) => h.change === "insertionFailed"), []);
  assert.equal(s.cards[0].firmwareCounters!.HotplugEvents, 3 + 2, "slots 1-3 inserted at pairing, 1-2 removed; slot 4 never");
});
