import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS, type Scenario } from "../../tools/sim/scenarios.ts";
import { FIRMWARE } from "./helpers.ts";
import { TunnelCounter, TunnelReg, TunnelControl, TUNNEL_BASE } from "../../board/map/registers.ts";
import { LinkTiming } from "../../board/map/link.ts";

const MS = 1_000_000;

function world(durationNs: number, seed = 3, scenario: Scenario = SCENARIOS.default): World {
  return new World({ scenario, seed, engine: "node", engineOptions: { firmware: FIRMWARE }, durationNs });
}

test("start hooks run at time 0 before anything, stop hooks when simulated time is up", async () => {
  const w = world(5_000_000);
  const seen: string[] = [];
  w.startHooks.push((x) => void seen.push(`start@${x.scheduler.now} cards ${x.cards.map((c) => c.state).join(",")}`));
  w.stopHooks.push(async (x) => void seen.push(`stop@${x.scheduler.now} cards ${x.cards.map((c) => c.state).join(",")}`));
  await w.run();
  // At 5 ms both soft-cores are still loading the firmware (about 11 ms at 100 MHz: docs/softcore.md).
  assert.deepEqual(seen, ["start@0 cards off,off", "stop@5000000 cards booting,booting"]);
});

test("the default scenario's tunnel carries its traffic with the cable's losses repaired", async () => {
  // Its traffic starts once the cards have paired (docs/softcore.md); 30 ms carries all of it.
  const start = Math.max(...SCENARIOS.default.traffic.map((t) => t.startNs));
  const w = world(start + 30 * MS);
  const summary = await w.run();
  assert.deepEqual(summary.tlps, { sent: 120_000, delivered: 120_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
  const cable = w.network.counters().links.cable;
  assert.ok(cable.aToB.lostFrames > 0 && cable.bToA.lostFrames > 0, "the 0.1 % loss did happen");
  const host = w.fabrics.get("host")!.tunnels[0];
  assert.ok(host.counters[TunnelCounter.Retransmits] > 0, "and was repaired by retransmission");
});

test("keys typed at the chassis reach the server within microseconds even while the tunnel is saturated the other way", async () => {
  // The default scenario types while the host floods the chassis; a credit update lost to
  // the 0.1 % frame loss once held the keyboard's reports until the flood ended (12 ms).
  // The keys can only be typed once the server's driver listens, which at the cards' 100 MHz
  // comes well after pairing (its enumeration goes through the host card's firmware): here the
  // typist starts then, and so does the scenario's test traffic, so that the keys go up while
  // the flood goes down. The cable stays in.
  const base = SCENARIOS.default;
  const scenario: Scenario = {
    ...base,
    traffic: [],
    cables: base.cables.map((c) => ({ ...c, config: { ...c.config, outages: [] } })),
    devices: base.devices.map((d) => (d.typing ? { ...d, typing: { ...d.typing, startNs: 0 } } : d)),
  };
  const w = world(300 * MS, 1, scenario);
  let floodAt: number | null = null;
  w.startHooks.push((x) => {
    const stop = x.servers[0].os.onEvent((event) => {
      if (event.kind !== "bound" || event.driver !== "input") return;
      stop();
      floodAt = x.scheduler.now;
      base.traffic.forEach((spec, i) => x.startTraffic(spec, i));
    });
  });
  const summary = await w.run();
  assert.ok(floodAt !== null, "the keyboard's driver bound");
  assert.deepEqual(summary.tlps, { sent: 120_000, delivered: 120_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
  const floodEnd = w.timeline.entries.find((e) => e.card === "chassis" && e.text.startsWith("traffic from host: all"))!.timeNs;
  const { keys, latenciesNs, typedAt } = w.inputs[0];
  const duringFlood = typedAt.filter((t) => t >= floodAt! && t < floodEnd).length;
  assert.ok(duringFlood >= 5, `${duringFlood} keys typed while the host flooded the chassis (${floodAt} to ${floodEnd} ns)`);
  assert.equal(keys, "hello from the chassis");
  assert.ok(Math.max(...latenciesNs) < 200_000, `worst report latency ${Math.max(...latenciesNs)} ns`);
});

test("keys typed into a cable pull that ends in a surprise removal are counted lost with it, not as data errors; the keys before it arrive", async () => {
  // The typist starts once the driver listens and types one key every 2 ms across the pull at
  // 300 ms: the keys typed after the cut are held in the tunnel and discarded at the removal
  // (Down at the grace window's end, the driver unbound after it), or dropped by the reset device.
  const base = SCENARIOS.default;
  const scenario: Scenario = {
    ...base,
    traffic: [],
    devices: base.devices.map((d) => (d.typing ? { ...d, typing: { text: "abcdefghijklmnopqrstuvwxyz0123456789", startNs: 0, intervalNs: 2_000_000 } } : d)),
  };
  const w = world(450 * MS, 1, scenario);
  const summary = await w.run();
  assert.equal(summary.dataVerificationErrors, 0);
  const { keys, typed, typedAt, bindings } = w.inputs[0];
  assert.equal(bindings.length, 1);
  assert.ok(bindings[0].removedNs! > 320 * MS, "removed after the grace window");
  const beforeCut = typedAt.filter((t) => t < 300 * MS).length;
  assert.ok(beforeCut >= 5 && beforeCut < typed.length, `${beforeCut} of ${typed.length} keys typed before the cut`);
  assert.equal(keys, typed.slice(0, beforeCut), "every key typed before the cut arrived, in order, and none after");
  const line = w.timeline.entries.find((e) => e.text.startsWith("keyboard/mouse") && e.text.includes("received"))!;
  assert.match(line.text, new RegExp(`, ${typed.length - beforeCut} key\\(s\\) lost with a surprise removal;`));
  assert.equal(line.level, "info");
});

test("a chassis card whose power is cut leaves its server's devices in place through the grace window without breaking isolation, then they are removed", async () => {
  const cut = 260 * MS;
  for (const end of [cut + 5 * MS, cut + 60 * MS]) {
    const scenario = { ...SCENARIOS.default, cables: SCENARIOS.default.cables.map((c) => ({ ...c, config: { ...c.config, outages: [] } })), actions: [{ kind: "power-cut" as const, card: "chassis", atNs: cut }] };
    const summary = await new World({ scenario, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, durationNs: end, print: null }).run();
    assert.deepEqual(summary.invariants, [], `run ending ${(end - cut) / MS} ms after the cut`);
    assert.equal(summary.cards.find((c) => c.name === "chassis")!.state, "off");
    const removals = summary.servers[0].hotplug.filter((h) => h.change === "removal" && h.timeNs >= cut).length;
    if (end - cut > LinkTiming.GraceNs + 10 * MS) assert.ok(removals > 0, "past the grace window the server removed the devices");
    else assert.equal(removals, 0, "inside the grace window the server keeps them");
  }
});

test("the run summary reports each switch's drops, marks and queues: a port that congests shows its queue's p99 and peak, a quiet switch nothing", async () => {
  const { pairScenario } = await import("../../tools/sim/scenarios.ts");
  const { formatSummary } = await import("../../tools/cli/sim.ts");
  const base = pairScenario({
    switched: true, durationNs: 250_000_000,
    traffic: [{ from: "host", to: "chassis", count: 40_000, startNs: 150_000_000, payload: 256, mix: { posted: 1, nonPosted: 0, completion: 0 } }],
  });
  // The chassis card's cable at 1 Gb/s behind the switch: the switch's queue to it fills.
  const scenario: Scenario = {
    ...base,
    cables: base.cables.map((c) => (c.id === "cable-chassis" ? { ...c, config: { ...c.config, rateBps: 1e9, b: { bufferBytes: 1 << 20 } } } : c)),
    switches: base.switches!.map((sw) => ({ ...sw, config: { ...sw.config, buffer: { bytes: 256 * 1024 }, ecn: { kMinBytes: 20_000, kMaxBytes: 20_000 } } })),
  };
  const w = new World({ scenario, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE } });
  // The host card's sender made to ignore the marks, as a lab engineer would by its register, so
  // that the queue reaches the shared buffer's threshold (docs/congestion.md).
  w.startHooks.push((x) => {
    x.scheduler.at(140_000_000, () => {
      const fabric = x.fabrics.get("host")!;
      const control = fabric.readRegister(TUNNEL_BASE + TunnelReg.Control);
      assert.ok(fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, control & ~TunnelControl.CongestionControl));
    });
  });
  const s = await w.run();
  assert.equal(s.tlps.lost + s.tlps.duplicated + s.tlps.reordered, 0, "what the switch dropped went again");
  const [sw] = s.switches;
  const toChassis = sw.ports.find((p) => p.port === 1)!;
  assert.ok(sw.ecnMarked > 0 && toChassis.ecnMarked === sw.ecnMarked, JSON.stringify(sw));
  assert.ok(toChassis.egressDrops > 0 && sw.bufferDrops === toChassis.egressDrops, "the shared buffer's threshold, half of 256 KiB, is where frames went");
  assert.ok(toChassis.peakQueuedBytes > 100_000 && toChassis.peakQueuedBytes <= 128 * 1024 + 9_100, `${toChassis.peakQueuedBytes}`);
  assert.ok(toChassis.queueP99Bytes > 20_000 && toChassis.queueP99Bytes <= 1.13 * toChassis.peakQueuedBytes, `${toChassis.queueP99Bytes}`);
  assert.equal(sw.ports.find((p) => p.port === 0)!.egressDrops, 0, "the host card's way back is quiet");
  assert.match(formatSummary(s), new RegExp(`\\n  switch switch: ${sw.egressDrops} frame\\(s\\) dropped \\(${sw.bufferDrops} by the shared buffer\\), ${sw.ecnMarked} marked congestion experienced; port 1: queue p99 [0-9.]+ KiB, peak [0-9.]+ KiB\\n`));
  const quiet = await new World({ scenario: base, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE } }).run();
  assert.doesNotMatch(formatSummary(quiet), /\n {2}switch /, "nothing dropped or marked: no line");
});
