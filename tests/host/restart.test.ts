// A restart of a card's firmware under load (docs/registers.md, "What survives a reset"): a
// reboot, a watchdog expiry or an update's trial resets the soft-core alone; the fabric keeps the
// sessions and the switch the server enumerated, the new firmware adopts them from the retained
// RAM, and neither the server nor the peer card sees anything. A power cut of the host card takes
// the switch away: the server sees what a real root port reports. The default scenario without
// its cable pull, fixed seed, the soft-cores at 100 MHz.

import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS } from "../../tools/sim/scenarios.ts";
import { ResetCause } from "../../board/map/mailbox.ts";
import { ROOT_PORT_SLOT } from "../../tools/server/root-complex.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;
/** The server's NVMe load verifies reads from about 240 ms; the restart comes well after. */
const RESTART_NS = 400 * MS;
const END_NS = 700 * MS;

function world(durationNs = END_NS): World {
  const scenario = SCENARIOS.default;
  return new World({
    scenario: { ...scenario, durationNs, cables: scenario.cables.map((c) => ({ ...c, config: { ...c.config, outages: [] } })) },
    seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE },
  });
}

const causes: [string, ResetCause][] = [["reboot", ResetCause.Software], ["watchdog expiry", ResetCause.Watchdog], ["update's trial reset", ResetCause.Update]];

for (const card of ["host", "chassis"]) {
  for (const [what, cause] of card === "host" ? causes : causes.slice(0, 1)) {
    test(`${/^[aeiou]/.test(what) ? "an" : "a"} ${what} of the ${card} card under NVMe load: the new firmware adopts the state the fabric kept, the server sees nothing and its load goes on`, async () => {
      const w = world();
      let verifiedAtRestart = 0;
      w.scheduler.at(RESTART_NS, () => {
        verifiedAtRestart = w.nvmeVerifiedBytes();
        void w.cards.find((c) => c.name === card)!.reset(cause);
      });
      const s = await w.run();
      assert.deepEqual(s.invariants, []);
      assert.deepEqual(s.hotplugEvents.host, { removals: 0, insertions: 0 }, "no hot-plug event");
      assert.equal(s.hostCompletionTimeouts, 0);
      assert.equal(s.dataVerificationErrors, 0);
      assert.deepEqual({ lost: s.tlps.lost, duplicated: s.tlps.duplicated, reordered: s.tlps.reordered, aborted: s.tlps.abortedByRemoval }, { lost: 0, duplicated: 0, reordered: 0, aborted: 0 });
      assert.equal(s.tlps.delivered, s.tlps.sent, "the test traffic all arrived");
      const [run] = s.servers[0].nvme;
      assert.equal(s.servers[0].nvme.length, 1, "one binding of the drive: never removed");
      assert.equal(run.ended, "running");
      // 32 KiB a millisecond: some 9 MiB in the 300 ms after the restart.
      assert.ok(run.bytesVerified - verifiedAtRestart > 8 * 2 ** 20, `${run.bytesVerified - verifiedAtRestart} bytes verified after the restart`);
      const peer = card === "host" ? "chassis" : "host";
      const counters = s.cards.find((c) => c.name === peer)!.firmwareCounters!;
      assert.deepEqual([counters.LinkDowns, counters.PeerReboots], [0, 0], `${peer} saw nothing`);
      assert.ok(w.timeline.entries.some((e) => e.card === card && e.text.includes("link 0: session adopted after a restart of the firmware")));
    });
  }
}

test("a power cut of the host card under NVMe load: the server's root port reports its link down and pciehp removes the switch below it; when the card is back the server finds it all again", async () => {
  // The card's boot, pairing, pciehp's waits and the enumeration of the switch below take some 300 ms.
  const w = world(END_NS + 400 * MS);
  const host = w.cards.find((c) => c.name === "host")!;
  w.scheduler.at(RESTART_NS, () => void host.powerCut());
  w.scheduler.at(RESTART_NS + 50 * MS, () => host.powerOn(ResetCause.PowerOn));
  const s = await w.run();
  assert.deepEqual(s.invariants, [], "no device left that nothing reaches");
  assert.equal(s.hostCompletionTimeouts, 0, "requests held by the cut end with Unsupported Request at once");
  assert.equal(s.dataVerificationErrors, 0);
  const server = s.servers[0];
  assert.deepEqual(server.hotplug.filter((h) => h.slot === ROOT_PORT_SLOT).map((h) => h.change), ["removal", "insertion"], "the root port's slot: the switch went and came back");
  const removal = server.hotplug.find((h) => h.slot === ROOT_PORT_SLOT && h.change === "removal")!;
  assert.equal(removal.timeNs, RESTART_NS, "removed the moment the link went down with the card's power");
  assert.deepEqual(server.nvme.map((r) => r.ended), ["removed", "running"], "the drive went with the switch, and came back with it");
  assert.ok(server.nvme[1].bytesVerified > 4 * 2 ** 20, `${server.nvme[1].bytesVerified} bytes verified after the card came back`);
  assert.equal(server.nvme[0].errors + server.nvme[0].mismatches, 0);
});
