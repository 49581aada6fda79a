// Scenario files (tools/sim/scenario-file.ts, docs/scenarios.md): the example a lab engineer
// starts from loads and runs; a bad file is one line naming the JSON path; every built-in
// scenario can be written in the format and read back unchanged; `iov sim` takes a file
// wherever it takes a built-in's name.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadScenarioFile, parseScenario, parseScenarioText, scenarioToJson, ScenarioError } from "../../tools/sim/scenario-file.ts";
import { hotplugScenario, pairScenario, SCENARIOS, type Scenario } from "../../tools/sim/scenarios.ts";
import { World } from "../../tools/sim/world.ts";
import { FIRMWARE, ROOT, assertOneLineError, iov } from "./helpers.ts";

const LAB = `${ROOT}scenarios/lab.json`;
const lab = () => JSON.parse(readFileSync(LAB, "utf8"));

test("the example lab file loads: four servers, two chassis cards, a leaf and a spine, the station, a schedule; and it runs", async () => {
  const s = loadScenarioFile(LAB);
  assert.equal(s.name, "lab");
  assert.equal(s.servers.length, 4);
  assert.deepEqual(s.cards.map((c) => [c.name, c.role, c.link?.group]), [
    ["host1", 0, 101], ["host2", 0, 102], ["host3", 0, 103], ["host4", 0, 104], ["chassis1", 1, 101], ["chassis2", 1, 102],
  ]);
  assert.deepEqual(s.switches!.map((x) => x.name), ["leaf", "spine"]);
  assert.deepEqual(s.management, { switch: "spine", port: 1 });
  assert.deepEqual(s.actions!.map((a) => [a.atNs / 1e6, a.kind]), [
    [400, "pull-cable"], [450, "assign"], [600, "plug-cable"], [900, "fail-port"], [1000, "restore-port"], [1200, "reboot"],
  ]);
  assert.equal(s.durationNs, 1.5e9);
  assert.equal(s.cards[5].powerOnNs, 250_000);
  assert.equal(s.cables[6].config.rateBps, 25e9);
  // Long enough for the assignment to finish, at the soft-cores' 100 MHz: chassis1 moves after the
  // 45 ms flash write that follows the assign at 450 ms (~500 ms), pairs with host3 within a few ms,
  // and server3's pciehp configures its devices 120 ms later (~630 ms), when the NVMe load verifies
  // its first read. 700 ms ends before the schedule fails host3's leaf port (900 ms).
  const w = new World({ scenario: s, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, durationNs: 700e6 });
  const summary = await w.run();
  assert.deepEqual(summary.invariants, []);
  assert.equal(summary.hostCompletionTimeouts + summary.dataVerificationErrors + summary.firmwareTraps, 0);
  assert.deepEqual(summary.assignments.map((a) => [a.card, a.from, a.to, a.outcome, a.doneNs !== null]), [["chassis1", 101, 103, "ok", true]]);
  assert.deepEqual(summary.cards.find((c) => c.name === "chassis1")!.owners!.map((o) => o.host), ["host1", null, "host3"]);
  assert.ok(summary.servers[2].nvme.some((r) => r.firstVerifiedNs !== null));
});

test("a bad scenario file is one line naming the JSON path of what is wrong", () => {
  const cases: [string, (j: any) => void, string][] = [
    ["a cable to a switch that is not there", (j) => (j.cables[3].b.switch = "leaf9"), `cables[3].b.switch: no switch named "leaf9"`],
    ["an unknown key", (j) => (j.cards[2].slot = 2), "cards[2].slot: unknown key (expected one of name, role, serial, slots, powerOnNs, link)"],
    ["a misspelt top-level key", (j) => (j.duraton = "1s"), "duraton: unknown key (expected one of name, description, durationNs, logLevel, link, cards, cables, switches, servers, devices, traffic, actions, management, attacker, uartBaud)"],
    ["a string for a number", (j) => (j.cards[0].slots = "two"), `cards[0].slots: expected a whole number, got "two"`],
    ["an unknown role", (j) => (j.cards[4].role = "storage"), `cards[4].role: expected one of "host", "chassis", got "storage"`],
    ["a time without a unit", (j) => (j.durationNs = "soon"), `durationNs: expected a time such as "2s", "300ms", "10us" or "500ns", got "soon"`],
    ["a missing serial", (j) => delete j.cards[0].serial, "cards[0].serial: missing"],
    ["two cards with one serial", (j) => (j.cards[1].serial = "0x10000001"), `cards[1].serial: 0x10000001 is card "host1"'s too (a serial is a card's MAC address)`],
    ["an action on a card that is not there", (j) => (j.actions[1].card = "chassis9"), `actions[1].card: no card named "chassis9" (assign at 0.45 s)`],
    ["an unknown action", (j) => (j.actions[2].kind = "unplug-cable"), `actions[2].kind: expected one of "reboot", "power-cut", "power-on", "assign", "pull-cable", "plug-cable", "fail-port", "restore-port", "fail-switch", "restore-switch", got "unplug-cable"`],
    ["a switch failure of a switch that is not there", (j) => (j.actions[3] = { atNs: "900ms", kind: "fail-switch", switch: "leaf2" }), `actions[3].switch: no switch named "leaf2" (fail-switch at 0.9 s)`],
    ["a port with a switch failure", (j) => (j.actions[3] = { atNs: "900ms", kind: "fail-switch", switch: "leaf", port: 1 }), "actions[3].port: unknown key (expected one of atNs, kind, switch)"],
    ["a port the switch does not have", (j) => (j.actions[3].port = 9), `actions[3].port: switch "leaf" has ports 0..6, not 9 (fail-port at 0.9 s)`],
    ["a cable that is not there", (j) => (j.actions[0].cable = "nope"), `actions[0].cable: no cable named "nope" (pull-cable at 0.4 s)`],
    ["a key of another action kind", (j) => (j.actions[1].cable = "uplink"), "actions[1].cable: unknown key (expected one of atNs, kind, card, group)"],
    ["two cables in one port", (j) => (j.cables[1].b.port = 0), `cables[1].b.port: port 0 of switch "leaf" already has cable "cable-host1"`],
    ["a port the card does not have", (j) => (j.cables[1].a = { card: "host2", port: 2 }), "cables[1].a.port: expected 0..1, got 2"],
    ["two cables in one card port", (j) => (j.cables[1].a = { card: "host1", port: 0 }), `cables[1].a.card: port 0 of card "host1" already has cable "cable-host1"`],
    ["a cable to a card that is not there", (j) => (j.cables[1].a = { card: "host9", port: 1 }), `cables[1].a.card: no card named "host9"`],
    ["a device beyond the chassis slots", (j) => (j.devices[0].slot = 5), `devices[0].slot: chassis "chassis1" has slots 0..1, not 5`],
    ["a server on a chassis card", (j) => (j.servers[0].host = "chassis1"), `servers[0].host: "chassis1" is a chassis card, not a host card`],
    ["the station on a port in use", (j) => (j.management.port = 0), `management.port: port 0 of switch "spine" already has cable "uplink"`],
    ["a group that is the management VLAN", (j) => (j.cards[0].link.group = 4000), "cards[0].link.group: group 4000 is the management VLAN"],
    ["a loss that is no probability", (j) => (j.cables[5].config.aToB.loss = 2), "cables[5].config.aToB.loss: expected 0..1, got 2"],
    ["an assignment without a station", (j) => delete j.management, "actions[1]: an assign needs the scenario's management station (`management`) (assign at 0.45 s)"],
    ["a trunk with a bad VLAN", (j) => (j.switches[1].config.ports[1].allowed = [5000]), "switches[1].config.ports[1].allowed[0]: expected 1..4094, got 5000"],
    ["a port mode that is neither", (j) => (j.switches[0].config.ports[2] = { mode: "hybrid" }), `switches[0].config.ports[2].mode: expected "access" or "trunk", got "hybrid"`],
    ["a PFC priority beyond 7", (j) => (j.switches[0].config.pfc = { priorities: [8] }), "switches[0].config.pfc.priorities[0]: expected 0..7, got 8"],
    ["PFC without a shared buffer", (j) => (j.switches[0].config.pfc = { priorities: [0] }), "switches[0].config.pfc: needs a shared buffer (config.buffer): priority flow control works in one"],
    ["silence shorter than four keepalives", (j) => (j.link.silenceNs = "2ms"), "link.silenceNs: must be at least 4 keepalive intervals (4000000 ns), got 2000000"],
    ["an egress buffer of nothing", (j) => (j.cables[0].config.a = { bufferBytes: 0 }), "cables[0].config.a.bufferBytes: must hold at least one largest frame, 9022 bytes, got 0"],
    ["traffic between two host cards", (j) => (j.traffic = [{ from: "host1", to: "host2", count: 10, startNs: "1ms", payload: 64, mix: { posted: 1, nonPosted: 0, completion: 0 } }]), `traffic[0].to: traffic crosses a tunnel, between a host card and a chassis card; "host1" and "host2" are both host cards`],
  ];
  for (const [what, change, message] of cases) {
    const json = lab();
    change(json);
    assert.throws(() => parseScenario(json), (error: Error) => {
      assert.ok(error instanceof ScenarioError, `${what}: ${error.stack}`);
      assert.equal(error.message, message, what);
      assert.ok(!error.message.includes("\n"), what);
      return true;
    });
  }
  assert.throws(() => parseScenarioText('{\n  "name": "x",\n  "cards": [],\n}\n'), { name: "ScenarioError", message: /^not valid JSON at line 4, column 1: / });
  assert.throws(() => parseScenarioText("[]"), { message: "expected an object, got a list" });
  assert.throws(() => loadScenarioFile("/nonexistent/lab.json"), { message: "/nonexistent/lab.json: cannot read it (ENOENT)" });
});

test("every built-in scenario written as a scenario file reads back the same", () => {
  const plain = (s: Scenario) => JSON.parse(JSON.stringify({ ...s, switches: s.switches ?? [], actions: s.actions ?? [] }));
  const scenarios = [
    ...Object.values(SCENARIOS),
    pairScenario({ durationNs: 1e9, management: true, loss: 0.01, outages: [{ downAtNs: 1e6, upAtNs: 2e6 }], actions: [{ atNs: 5e6, kind: "reboot", card: "chassis" }] }),
    hotplugScenario({ durationNs: 1e9, pulls: [{ downAtNs: 1e8 }], twoChassis: true, load: { queueDepth: 2, blocksPerCommand: 8, intervalNs: 0 } }),
  ];
  for (const s of scenarios) {
    const text = JSON.stringify(scenarioToJson(s), null, 2);
    assert.deepEqual(plain(parseScenarioText(text)), plain(s), s.name);
  }
});

test("iov sim takes a scenario file for --scenario, lists the built-ins, and refuses a bad file in one line", () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-scenario-"));
  const bad = lab();
  bad.cables[3].b.switch = "leaf9";
  writeFileSync(join(dir, "bad.json"), JSON.stringify(bad));
  assertOneLineError(iov(["sim", "--scenario", join(dir, "bad.json")]), 1, new RegExp(`^iov: ${join(dir, "bad.json")}: cables\\[3\\]\\.b\\.switch: no switch named "leaf9"$`));
  assertOneLineError(iov(["sim", "--scenario", "missing.json"]), 1, /^iov: missing\.json: cannot read it \(ENOENT\)$/);
  assertOneLineError(iov(["sim", "--scenario", "fleets"]), 1, /^iov: unknown scenario 'fleets'; built-in: default, console, handover, attack, dual, dual-switch, asym, fleet, fleet-dual \(or a scenario file, PATH\.json\)$/);
  const list = iov(["sim", "--list"]);
  assert.equal(list.status, 0, list.stderr);
  const fleetSeconds = String(SCENARIOS.fleet.durationNs / 1e9).replace(".", "\\.");
  assert.match(list.stdout, new RegExp(`^fleet\\s+${fleetSeconds} s\\s+320 cards, 256 server\\(s\\), management station: 256 servers and 64 chassis cards`, "m"));
  assert.match(list.stdout, /^handover /m);
  // 100 ms: at the soft-cores' 100 MHz every card is running (its first batch done) by ~40 ms.
  const run = iov(["sim", "--scenario", "scenarios/lab.json", "--duration", "100ms", "--quiet"]);
  assert.equal(run.status, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /^summary: lab, seed 1, 0\.1 s simulated on node, soft-cores at 100 MHz$/m);
  assert.match(run.stdout, /^  invariants: all held \(0 cross-deliveries, 0 handovers without a device reset\)$/m);
});

test("a keyboard's typing waits for a driver: typed from 0 s, before the server has even enumerated, every key arrives", () => {
  // The default scenario without its cable pull, its typist starting at power-on: the driver
  // listens only once the server has enumerated through the host card (~200 ms at 100 MHz), and
  // keys typed before would be dropped by the device (a data verification error).
  const json = scenarioToJson(SCENARIOS.default) as any;
  const keyboard = json.devices.find((d: any) => d.kind === "keyboard-mouse");
  keyboard.typing.startNs = "0s";
  for (const cable of json.cables) delete cable.config.outages;
  const file = join(mkdtempSync(join(tmpdir(), "iov-scenario-")), "typing.json");
  writeFileSync(file, JSON.stringify(json));
  const run = iov(["sim", "--scenario", file, "--duration", "400ms"]);
  assert.equal(run.status, 0, run.stderr + run.stdout);
  const listening = /^\s+(\d+\.\d+)  server   os      keyboard\/mouse 5:0\.0: driver listening$/m.exec(run.stdout);
  assert.ok(listening && Number(listening[1]) > 0.05, "the driver listens well after power-on");
  assert.match(run.stdout, /keyboard\/mouse 5:0\.0: received "hello from the chassis" \(44 reports\)/);
});
