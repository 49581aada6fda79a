// A pulled cable is a surprise removal the server survives, a reconnect a hot-plug insertion
// after which the devices work again: the whole system (firmware on both cards, the fabric's
// switch router, the network, the server's pciehp and drivers), with fixed seeds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { hotplugScenario, type HotplugOptions } from "../../tools/sim/scenarios.ts";
import { stateEntries, type RunSummary } from "../../tools/sim/summary.ts";
import { RequestFailed } from "../../tools/server/root-complex.ts";
import { spawn, wait, type Task } from "../../tools/server/task.ts";
import { CplStatus } from "../../board/pcie/tlp.ts";
import { LinkState, LinkTiming } from "../../board/map/link.ts";
import { TunnelReg, SwitchReg, SwitchControl, SWITCH_BASE, SWITCH_STRIDE } from "../../board/map/registers.ts";
import { SWITCH_DOWNSTREAM_PORTS } from "../../board/map/pcie.ts";
import { FIRMWARE } from "./helpers.ts";
import { BATCH_LIMIT_NS_DEFAULT } from "../../board/softcore.ts";

const MS = 1_000_000;
/**
 * The NVMe drive's driver binds about 200 ms after power-on at the soft-cores' 100 MHz (pairing,
 * then the server's enumeration through the host card: docs/softcore.md); runs allow this much.
 */
const BOUND_BY = 300 * MS;
/**
 * docs/link.md, "The hold bound": a read caught by any pattern of outages ends within the grace
 * window, the detection of the train's first outage and of its last (the silence threshold and the
 * batch that enters Recovery, each), and the batch that goes Down.
 */
const HOLD_BOUND_NS = LinkTiming.GraceNs + 2 * (LinkTiming.SilenceNs + BATCH_LIMIT_NS_DEFAULT) + BATCH_LIMIT_NS_DEFAULT;
/** How often run() looks whether the cards' soft-cores have compiled the whole firmware. */
const WARM_POLL_NS = 100_000;

/** A read of the NVMe drive's registers, with when it was issued and how it ended. */
interface Probe {
  issuedNs: number;
  endedNs: number;
  outcome: "data" | "unsupported" | "timeout" | "other";
}

/**
 * What a run does to the first chassis card's cable, from the moment the server's NVMe drivers
 * have bound every drive and the cards' soft-cores have compiled the whole firmware (the steady
 * state whose reaction times docs/link.md promises; docs/softcore.md, "First calls").
 */
interface Plan {
  /** The cable is pulled this long after that moment. */
  pullNs: number;
  /** ... and plugged back this long after the pull (never, if absent). */
  backNs?: number;
  /** Instead of one pull: a train of outages from the pull, each `downNs` long and followed by `upNs` of working cable. */
  train?: { outages: number; downNs: number; upNs: number };
  /** The run goes on at least this long after the pull. */
  runNs: number;
  /** A monitoring task reads the drive's CAP register every `everyNs`, from `fromNs` to `toNs` relative to the pull. */
  probes?: { fromNs: number; toNs: number; everyNs: number; out: Probe[] };
}

/** A downstream port of the host card's switch that forwarded to a chassis slot at the pull. */
interface BoundPort {
  port: number;
  /** The host card's tunnel, and the slot of the chassis card behind it. */
  tunnel: number;
  slot: number;
}

/** The run's summary, when the cable was pulled and plugged back (null: never), the host card's tunnel it cut, and the switch's bound ports then. */
interface Outcome {
  s: RunSummary;
  pull: number;
  back: number | null;
  tunnel: number;
  ports: BoundPort[];
}

/** The bus the server gives what sits below downstream port `port` (bridge 2:(port-1).0 takes bus port+2). */
const driveBehind = (port: number) => `${port + 2}:0.0`;

async function run(options: Omit<HotplugOptions, "pulls" | "durationNs">, seed: number, plan: Plan): Promise<Outcome> {
  const durationNs = BOUND_BY + plan.pullNs + plan.runNs;
  const world = new World({ scenario: hotplugScenario({ ...options, durationNs, pulls: [] }), seed, engine: "node", engineOptions: { firmware: FIRMWARE } });
  const drives = options.twoChassis ? 2 : 1;
  const outcome = { pull: null as number | null, back: null as number | null, tunnel: -1, ports: [] as BoundPort[] };
  world.startHooks.push((w) => {
    const { os, rc } = w.servers[0];
    const cable = w.network.link(options.twoChassis ? "cable-chassis" : "cable");
    const warm = () => w.softcore.mhz === 0 || w.cards.every((c) => c.stats.warmNs !== null);
    const start = () => {
      if (!warm()) {
        w.scheduler.at(w.scheduler.now + WARM_POLL_NS, start);
        return;
      }
      const pull = (outcome.pull = w.scheduler.now + plan.pullNs);
      const chassis = w.fabrics.get("chassis")!.mac.address.reduce((key, byte) => key * 256 + byte, 0);
      w.scheduler.at(pull, () => {
        const host = w.fabrics.get("host")!;
        outcome.tunnel = host.tunnels.findIndex((t) => t.peerKey() === chassis && t.readRegister(TunnelReg.LinkState) === LinkState.Active);
        for (let port = 1; port <= SWITCH_DOWNSTREAM_PORTS; port++) {
          const reg = (r: SwitchReg) => host.readRegister(SWITCH_BASE + port * SWITCH_STRIDE + r);
          if (reg(SwitchReg.Control) & SwitchControl.Forward) outcome.ports.push({ port, tunnel: reg(SwitchReg.Binding) & 0xff, slot: (reg(SwitchReg.Binding) >>> 8) & 0xff });
        }
        cable.hold("pulled", true);
      });
      if (plan.backNs !== undefined) {
        const back = (outcome.back = pull + plan.backNs);
        w.scheduler.at(back, () => cable.hold("pulled", false));
      }
      const train = plan.train;
      for (let i = 0, at = pull; train && i < train.outages; i++, at += train.downNs + train.upNs) {
        if (i > 0) w.scheduler.at(at, () => cable.hold("pulled", true));
        w.scheduler.at(at + train.downNs, () => cable.hold("pulled", false));
      }
      const probes = plan.probes;
      if (!probes) return;
      w.scheduler.at(pull + probes.fromNs, () => {
        const disk = os.functions.find((f) => f.classCode === 0x010802 && !f.removed);
        assert.ok(disk, "the NVMe drive is enumerated before the probes start");
        const address = disk.bars[0].address;
        // A monitoring task reads the drive's CAP register over and over, as a health daemon would.
        spawn((function* (): Task<void> {
          while (rc.now < pull + probes.toNs) {
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
    };
    let bound = 0;
    const stop = os.onEvent((event) => {
      if (event.kind !== "bound" || event.driver !== "nvme" || ++bound < drives) return;
      stop();
      start();
    });
  });
  const s = await world.run();
  assert.ok(outcome.pull !== null && outcome.pull - plan.pullNs <= BOUND_BY, `the NVMe drivers bound and the cards were warm by ${BOUND_BY / MS} ms (pull at ${outcome.pull} ns)`);
  return { s, pull: outcome.pull, back: outcome.back, tunnel: outcome.tunnel, ports: outcome.ports };
}

const unbound = (s: RunSummary, fn: string) => s.servers[0].drivers.filter((d) => d.fn === fn && d.event === "unbound").map((d) => d.timeNs);
const bound = (s: RunSummary, fn: string) => s.servers[0].drivers.filter((d) => d.fn === fn && d.event === "bound").map((d) => d.timeNs);

test("a cable pulled under NVMe load: surprise removal, drivers unbound, every outstanding read completed with UR, no completion timeout", async () => {
  const probes: Probe[] = [];
  const { s, pull } = await run({}, 5, { pullNs: 50 * MS, runNs: 100 * MS, probes: { fromNs: -10 * MS, toNs: 40 * MS, everyNs: 250_000, out: probes } });
  const server = s.servers[0];
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  assert.equal(server.requestsOutstanding, 0, "nothing is left waiting");
  // The host card declares the link down after the grace window (from the batch that takes the
  // carrier loss, to the batch that goes Down: docs/link.md), and pciehp removes both slots.
  const linkDown = stateEntries(s, "host", "down")[0];
  assert.ok(linkDown - pull >= LinkTiming.GraceNs && linkDown - pull <= LinkTiming.GraceNs + 2 * BATCH_LIMIT_NS_DEFAULT, `link down ${(linkDown - pull) / 1000} µs after the pull`);
  const removals = server.hotplug.filter((h) => h.change === "removal");
  assert.deepEqual(removals.map((h) => h.slot).sort(), [1, 2]);
  const removal = removals[0].timeNs;
  // pciehp reads and clears the slot's status through the host card's firmware, whose mailbox holds
  // the reads the router handed it first (below): the removal follows their answers.
  assert.ok(removal >= linkDown, `removal ${(removal - pull) / 1000} µs after the pull, ${(removal - linkDown) / 1000} µs after the link went down`);
  for (const fn of ["3:0.0", "4:0.0"]) assert.deepEqual(unbound(s, fn).length, 1, `${fn} unbound`);
  // The drivers go during the removal, which pciehp records once it has turned the power indicator off.
  assert.ok(unbound(s, "3:0.0")[0] >= linkDown && unbound(s, "3:0.0")[0] <= removal);
  // The load stopped cleanly: the command caught by the pull was aborted by the driver, nothing failed.
  assert.equal(server.nvme.length, 1);
  assert.equal(server.nvme[0].ended, "removed");
  assert.ok(server.nvme[0].commandsAborted >= 1);
  assert.deepEqual([server.nvme[0].errors, server.nvme[0].mismatches], [0, 0]);
  // Reads before the pull return data; reads held by the grace window end with UR the moment the
  // link goes down (the router completes them itself); reads after it get UR from the firmware
  // (the port no longer routes).
  assert.ok(probes.length >= 190);
  assert.ok(probes.every((p) => p.endedNs > 0 && p.outcome !== "timeout" && p.outcome !== "other"), "every read completed");
  const before = probes.filter((p) => p.issuedNs < pull - 10_000);
  // A read still on its way up the server's link when the port stopped forwarding is no held read:
  // the router hands it to the firmware (unrouted), which answers UR in its next batch.
  const held = probes.filter((p) => p.issuedNs >= pull && p.issuedNs < linkDown - 1_000);
  const after = probes.filter((p) => p.issuedNs > linkDown);
  assert.ok(before.every((p) => p.outcome === "data"));
  assert.ok(held.length >= 70 && held.every((p) => p.outcome === "unsupported" && p.endedNs >= linkDown), `${held.length} held reads end with UR once the link is down`);
  assert.ok(after.every((p) => p.outcome === "unsupported"), "later reads get UR");
  // Held reads all end within a microsecond of the link going down (the completions' way up the
  // server's PCIe link), however many.
  const last = Math.max(...held.map((p) => p.endedNs));
  assert.ok(last - linkDown <= 1_000, `the last held read ended ${last - linkDown} ns after the link went down`);
});

test("a train of flaps each shorter than the grace window, with resumes of 80 µs between them, is one outage: every held read ends within the hold bound, one removal, one insertion once the cable is stable", async () => {
  // Four 19.9 ms outages, each followed by 80 µs of working cable: each resume restarted the grace
  // window, and the reads caught by the first outage waited for 80 ms and timed out.
  const probes: Probe[] = [];
  const train = { outages: 4, downNs: 19_900_000, upNs: 80_000 };
  const { s, pull } = await run({}, 5, { pullNs: 50 * MS, runNs: 400 * MS, train, probes: { fromNs: -10 * MS, toNs: 30 * MS, everyNs: 250_000, out: probes } });
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  assert.ok(probes.every((p) => p.endedNs > 0 && p.outcome !== "timeout"), "every read completed");
  const worst = Math.max(...probes.map((p) => p.endedNs - p.issuedNs));
  assert.ok(worst <= HOLD_BOUND_NS, `the longest read took ${worst} ns, the hold bound is ${HOLD_BOUND_NS} ns`);
  // The grace window runs from the first outage's detection, whatever the resumes.
  const downs = stateEntries(s, "host", "down");
  assert.equal(downs.length, 1, "one down for the whole train");
  assert.ok(downs[0] - pull <= HOLD_BOUND_NS, `down ${downs[0] - pull} ns after the train began`);
  const removals = s.servers[0].hotplug.filter((h) => h.change === "removal");
  const insertions = s.servers[0].hotplug.filter((h) => h.change === "insertion" && h.timeNs > pull);
  assert.deepEqual([removals.length, insertions.length], [2, 2], "both slots removed once and inserted once");
  const stable = pull + train.outages * (train.downNs + train.upNs) - train.upNs;
  assert.ok(insertions.every((h) => h.timeNs > stable), "inserted again once the cable stopped flapping");
});

test("a reconnect is a hot-plug insertion: the server re-enumerates, the drivers bind again and the NVMe load verifies again", async () => {
  const { s, back } = await run({}, 6, { pullNs: 50 * MS, backNs: 100 * MS, runNs: 300 * MS });
  const server = s.servers[0];
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  assert.deepEqual(s.hotplugEvents.host, { removals: 2, insertions: 2 });
  const insertions = server.hotplug.filter((h) => h.change === "insertion");
  assert.deepEqual(insertions.map((h) => h.slot).sort(), [1, 2]);
  // pciehp waits 100 ms after DL Link Active before touching the device (docs/hotplug.md), then
  // finds the device, assigns it and binds its driver: the insertion is complete.
  assert.ok(insertions.every((h) => h.timeNs - back! >= 100 * MS && h.timeNs - back! < 200 * MS), `insertions at ${insertions.map((h) => h.timeNs)}`);
  for (const fn of ["3:0.0", "4:0.0"]) {
    const times = bound(s, fn);
    assert.equal(times.length, 2, `${fn} bound at boot and again after the reconnect`);
    assert.ok(times[1] - back! >= 100 * MS);
  }
  assert.equal(server.nvme.length, 2);
  const again = server.nvme[1];
  assert.ok(again.boundNs > back! && again.firstVerifiedNs !== null && again.firstVerifiedNs > again.boundNs);
  assert.equal(again.ended, "running");
  assert.ok(again.bytesVerified > 0);
  assert.deepEqual([again.errors, again.mismatches, again.commandsAborted], [0, 0, 0]);
});

test("pull and reconnect, 20 seeds with different timings: never a completion timeout or a data error, always usable again", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const pullNs = Math.round((30 + 3.7 * seed) * MS);
    const backNs = Math.round((25 + 4.3 * seed) * MS);
    const { s, pull, back } = await run({}, seed, { pullNs, backNs, runNs: backNs + 160 * MS });
    const server = s.servers[0];
    const where = `seed ${seed}, pull at ${pull / MS} ms for ${(back! - pull) / MS} ms`;
    assert.equal(s.hostCompletionTimeouts, 0, where);
    assert.equal(s.dataVerificationErrors, 0, where);
    assert.equal(server.requestsOutstanding, 0, where);
    assert.deepEqual(s.hotplugEvents.host, { removals: 2, insertions: 2 }, where);
    assert.equal(server.nvme.length, 2, where);
    assert.equal(server.nvme[0].ended, "removed", where);
    assert.ok(server.nvme[1].firstVerifiedNs !== null && server.nvme[1].firstVerifiedNs > back!, where);
  }
});

test("two chassis cards on one host card: pulling one removes its slots only, the other's NVMe load goes on", async () => {
  const { s, tunnel, ports } = await run({ twoChassis: true }, 8, { pullNs: 50 * MS, runNs: 200 * MS });
  const server = s.servers[0];
  assert.equal(s.hostCompletionTimeouts, 0);
  assert.equal(s.dataVerificationErrors, 0);
  // The host card gives each chassis card's occupied slots switch ports as its link comes up: which
  // ports the pulled card had depends on which card paired first, so they are read at the pull.
  assert.ok(tunnel === 0 || tunnel === 1, `the pulled chassis card was on the host card's link port ${tunnel}`);
  const pulledPorts = ports.filter((p) => p.tunnel === tunnel);
  const keptPorts = ports.filter((p) => p.tunnel !== tunnel);
  assert.deepEqual([pulledPorts.length, keptPorts.length], [2, 2], `ports bound at the pull: ${JSON.stringify(ports)}`);
  const [pulledDrive, keptDrive] = [pulledPorts, keptPorts].map((bound) => driveBehind(bound.find((p) => p.slot === 0)!.port));
  assert.deepEqual(server.hotplug.filter((h) => h.change === "removal").map((h) => h.slot).sort(), pulledPorts.map((p) => p.port));
  assert.deepEqual(unbound(s, keptDrive), [], "the second chassis card's drive stays bound");
  const [pulledRun, keptRun] = [server.nvme.find((r) => r.fn === pulledDrive)!, server.nvme.find((r) => r.fn === keptDrive)!];
  assert.equal(pulledRun.ended, "removed");
  assert.equal(keptRun.ended, "running");
  // One 32 KiB round a millisecond from its binding to the end of the run, less 10: the kept drive
  // never paused for the other's removal.
  const rounds = Math.floor((s.simulatedNs - keptRun.boundNs) / MS) - 10;
  assert.ok(keptRun.bytesVerified >= rounds * 32 * 1024, `${keptRun.bytesVerified} bytes verified, ${rounds} rounds due`);
  assert.deepEqual([keptRun.errors, keptRun.mismatches, keptRun.commandsAborted], [0, 0, 0]);
  const states = s.cards[0].linkStates.map((c) => c.state);
  const kept = 1 - tunnel;
  assert.ok(!states.includes(`tunnel${kept}:down`) && !states.includes(`tunnel${kept}:recovery`), "the second tunnel never left Active");
  // The second chassis card's slot 1 is empty: its port is an empty slot, not a card pciehp waits for.
  assert.deepEqual(server.hotplug.filter((h) => h.change === "insertionFailed"), []);
  assert.equal(s.cards[0].firmwareCounters!.HotplugEvents, 3 + 2, "three occupied slots inserted at pairing, the pulled card's two removed; the empty one never");
});
