// Two Ethernet ports per card in whole-system runs (docs/link.md#paths): the firmware pairs over
// one port, joins the other as a second path, and a pulled cable of two is nothing the server
// notices; a port cabled back to its own card is never used, and says so.

import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS, pairScenario, type Scenario } from "../../tools/sim/scenarios.ts";
import { failures } from "../../tools/cli/sim.ts";
import { LinkState } from "../../board/map/link.ts";
import { TunnelReg } from "../../board/map/registers.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;

function world(scenario: Scenario, seed: number): World {
  return new World({ scenario, seed, engine: "node", engineOptions: { firmware: FIRMWARE } });
}

const counter = (w: World, card: string, name: string) => w.cards.find((c) => c.name === card)!.firmwareCounters?.[name] ?? 0;

for (const [name, cut] of [["dual", "its second cable pulled"], ["dual-switch", "the second switch failing"], ["asym", "no cut, 1 % loss on the 2 km path"]] as const) {
  test(`${name}: the tunnel joins its second path and carries DATA on both; ${cut} costs the server nothing`, async () => {
    // dual runs past the firmware's first heartbeat (a second after its boot), which reads each path's figures, and asks the host card's console then.
    const scenario = name === "dual" ? { ...SCENARIOS[name], durationNs: 1_150 * MS } : SCENARIOS[name];
    const w = world(scenario, 1);
    let consoleText = "";
    if (name === "dual") {
      w.startHooks.push((x) => {
        const host = x.cards.find((c) => c.name === "host")!;
        host.uart.line = (bytes) => (consoleText += Buffer.from(bytes).toString("latin1"));
        x.scheduler.at(1_060 * MS, () => host.uart.receive(new TextEncoder().encode("link\r")));
      });
    }
    const summary = await w.run();
    assert.deepEqual(failures(summary, scenario), [], "the run's own checks");
    assert.deepEqual(summary.tlps, { sent: 360_000, delivered: 360_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
    assert.deepEqual(summary.hotplugEvents.host, { removals: 0, insertions: 0 }, "no hot-plug event");
    assert.equal(summary.hostCompletionTimeouts + summary.deviceCompletionTimeouts, 0);
    const nvme = summary.servers[0].nvme;
    assert.equal(nvme.length, 1, "the drive stayed bound");
    assert.equal(nvme[0].ended, "running");
    assert.equal(nvme[0].commandsAborted + nvme[0].errors + nvme[0].mismatches, 0);
    const log = w.timeline.entries.filter((e) => e.source === "fw").map((e) => `${e.card} ${e.text}`);
    for (const card of ["host", "chassis"]) {
      const peer = card === "host" ? "chassis" : "host";
      assert.equal(counter(w, card, "PathJoins"), 1, `${card}: one path joined`);
      assert.equal(counter(w, card, "PathLosses"), name === "asym" ? 0 : 1, `${card}: the cut`);
      assert.equal(counter(w, card, "JoinsRefused"), 0);
      assert.equal(counter(w, card, "LinkDowns") + counter(w, card, "Recoveries"), 0, `${card}: the session never left Active`);
      const paths = summary.cards.find((c) => c.name === card)!.paths;
      assert.deepEqual(paths.map((p) => [p.port, p.first, p.silent, p.peer]), [[0, true, false, peer], [1, false, false, peer]], `${card}: both paths live at the end`);
      assert.ok(paths.every((p) => p.txFrames > 10_000 && p.rttNs > 0), `${card}: both carried DATA`);
      assert.ok(log.some((l) => l.startsWith(`${card} I link 0: path on port 1 joined, to 02:11:`)), `${card} joined`);
      if (name === "asym") {
        // Its 10 µs each way, the acknowledgement coming back the short way, and both paths' queues under load.
        assert.ok(paths[1].rttNs > paths[0].rttNs, `${card}: the 2 km path measures the longer round trip (${paths[0].rttNs} / ${paths[1].rttNs} ns)`);
        assert.ok(paths[1].resent > 0, `${card}: the long path's losses went again`);
        continue;
      }
      assert.ok(log.some((l) => l === `${card} W link 0: path on port 1 silent; the session goes on the other`), `${card} saw the path go`);
      assert.ok(log.some((l) => l === `${card} I link 0: path on port 1 back`), `${card} saw it come back`);
    }
    if (name === "dual") {
      // Both paths with a round trip of some microseconds and frames each way.
      const figures = "\\(RTT [1-9]\\d{3,4} ns, frames [1-9]\\d* out, [1-9]\\d* in, \\d+ resent\\)";
      assert.match(consoleText, new RegExp(`, paths eth0 first ${figures} eth1 joined ${figures}\r\n`), consoleText);
    }
  });
}

test("a host card whose second port shares a switch with its first hears its own frames come back: counted, never a path to itself, and its session goes on", async () => {
  const base = pairScenario({ durationNs: 300 * MS, switched: true });
  const scenario: Scenario = {
    ...base,
    cables: [...base.cables, { id: "back", a: { card: "host", port: 1 }, b: { switch: "switch", port: 2 }, config: { lengthM: 1 } }],
    switches: base.switches!.map((s) => ({ ...s, config: { ...s.config, ports: [...s.config.ports, { mode: "trunk" as const }] } })),
  };
  const w = world(scenario, 4);
  const summary = await w.run();
  assert.deepEqual(failures(summary, scenario), []);
  assert.equal(w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.LinkState), LinkState.Active, "paired with the chassis card");
  assert.ok(counter(w, "host", "OwnFrames") > 0, "its own DISCOVERs and JOINs came back through the switch");
  assert.equal(counter(w, "host", "PathJoins"), 0, "no path to itself, and the chassis card has one port cabled");
  assert.equal(counter(w, "host", "NegotiationFailures") + counter(w, "host", "AuthFailures") + counter(w, "host", "LinkDowns"), 0, "no handshake with itself");
  assert.equal(summary.cards.find((c) => c.name === "host")!.paths.length, 1);
});

test("a card whose two ports are cabled to each other detects the loop: it never pairs with itself, counts its own frames, and its console says each port hears only this card", async () => {
  const base = pairScenario({ durationNs: 200 * MS });
  const scenario: Scenario = { ...base, cables: [{ id: "loop", a: { card: "host", port: 0 }, b: { card: "host", port: 1 }, config: { lengthM: 1 } }] };
  const w = world(scenario, 5);
  let consoleText = "";
  w.startHooks.push((x) => {
    const host = x.cards.find((c) => c.name === "host")!;
    host.uart.line = (bytes) => (consoleText += Buffer.from(bytes).toString("latin1"));
    x.scheduler.at(150 * MS, () => host.uart.receive(new TextEncoder().encode("link\r")));
  });
  await w.run();
  assert.equal(w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.LinkState), LinkState.Discover, "no session");
  assert.ok(counter(w, "host", "OwnFrames") >= 4, `${counter(w, "host", "OwnFrames")} of its own DISCOVERs came back`);
  assert.equal(counter(w, "host", "NegotiationFailures") + counter(w, "host", "AuthFailures") + counter(w, "host", "HandshakeTimeouts"), 0, "no handshake began");
  assert.match(consoleText, /Ethernet: eth0 up \(hears only this card\) eth1 up \(hears only this card\)\r\n/);
});
