// Session boundaries (docs/link.md, "Stale control frames" and "Reboots"): frames reach only the
// tunnel in session, a peer that reboots at any moment pairs again without a black hole, and
// CONTROL frames of an earlier session or boot, arriving late, are ignored and counted.
// Whole-system runs: two cards' firmware at the soft-cores' clock, fixed seeds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { pairScenario, type PairOptions, type TrafficSpec } from "../../tools/sim/scenarios.ts";
import { stateEntries, type RunSummary } from "../../tools/sim/summary.ts";
import { CardRole, ResetCause } from "../../board/map/mailbox.ts";
import { ControlType, LinkState } from "../../board/map/link.ts";
import { TunnelCounter } from "../../board/map/registers.ts";
import { decodeControl } from "../../board/link-codec.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;
/**
 * Longer than a chassis card's silence across a power cycle (about 65 ms at 100 MHz: its boot,
 * then its first DISCOVER some 24 ms after the link starts), so that the host card still holds
 * the session when the chassis card comes back.
 */
const LONG_GRACE = { graceNs: 100 * MS };

function world(options: PairOptions, seed: number): World {
  return new World({ scenario: pairScenario({ switched: true, ...options }), seed, engine: "node", engineOptions: { firmware: FIRMWARE } });
}

function counters(summary: RunSummary, card: string): Record<string, number> {
  return summary.cards.find((c) => c.name === card)!.firmwareCounters!;
}

/** A reset of `card`'s soft-core: its fabric, and the sessions in it, go on. */
function reboot(w: World, card: string): void {
  void w.cards.find((c) => c.name === card)!.reset(ResetCause.Software);
}

/** `card` loses power and gets it back `offNs` later: a new boot, nothing of the old sessions left. */
function powerCycle(w: World, card: string, offNs = 1 * MS): void {
  const target = w.cards.find((c) => c.name === card)!;
  void target.powerCut();
  w.scheduler.at(w.scheduler.now + offNs, () => target.powerOn(ResetCause.PowerOn));
}

const flood = (count: number): TrafficSpec[] => [
  { from: "host", to: "chassis", count, startNs: 0, payload: 256, mix: { posted: 4, nonPosted: 1, completion: 1 } },
  { from: "chassis", to: "host", count: count / 4, startNs: 0, payload: 64, mix: { posted: 2, nonPosted: 1, completion: 3 } },
];

/** Every DISCOVER the chassis card sends, as it went on the wire, with the boot it came from. */
function captureDiscovers(w: World): { frame: Uint8Array; bootId: number; atNs: number }[] {
  const captured: { frame: Uint8Array; bootId: number; atNs: number }[] = [];
  w.network.link("cable-chassis").tap = (frame) => {
    const m = decodeControl(frame);
    if (m && m.type === ControlType.Discover && m.role === CardRole.Chassis) captured.push({ frame: frame.slice(), bootId: m.bootId, atNs: w.scheduler.now });
  };
  return captured;
}

test("a chassis card that loses power while its host card holds the session pairs again on a host card port, and every frame of the new session reaches the tunnel in session", async () => {
  // The host card has two ports: the new session may be on port 0 again or on port 1, while port
  // 0's tunnel, just shut, named the same peer (tests/host/tunnel.test.ts has the fabric's rule
  // on its own). Either way nothing of the new session may go to another tunnel.
  const w = world({ durationNs: 300 * MS, host: { slots: 2, link: LONG_GRACE }, chassis: { link: LONG_GRACE } }, 4);
  let cut = false;
  let repaired: number | null = null;
  let repairedAt = 0;
  w.onLinkStateChange((card, tunnel, state) => {
    if (card !== "host" || state !== LinkState.Active) return;
    if (!cut) {
      cut = true;
      w.scheduler.at(w.scheduler.now + 7 * MS, () => powerCycle(w, "chassis", 5 * MS));
    } else if (repaired === null) {
      repaired = tunnel;
      repairedAt = w.scheduler.now;
      flood(8_000).forEach((spec, i) => w.startTraffic(spec, i));
    }
  });
  const summary = await w.run();
  assert.ok(repaired !== null, "paired again");
  const host = w.fabrics.get("host")!;
  assert.ok(host.tunnels[repaired].counters[TunnelCounter.RxFrames] > 0, "the tunnel in session hears its peer");
  for (const tunnel of host.tunnels) assert.equal(tunnel.counters[TunnelCounter.RxWhileDisabled], 0, "nothing goes to a shut tunnel");
  assert.deepEqual(stateEntries(summary, "host", "recovery", repaired).filter((t) => t > repairedAt), [], "no silence on the new session");
  assert.equal(counters(summary, "host").LinkDowns, 1, "the one down the power cut implies");
  assert.deepEqual(summary.tlps, { sent: 10_000, delivered: 10_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
});

test("a DISCOVER the chassis card sent before the session, arriving during it, is stale: ignored and counted, the session goes on", async () => {
  const w = world({ durationNs: 250 * MS }, 5);
  const captured = captureDiscovers(w);
  let replayed = 0;
  w.whenActive(["host", "chassis"], () => {
    w.scheduler.at(w.scheduler.now + 5 * MS, () => {
      // Late copies of every DISCOVER of this boot from before the session: multicast beacons and unicast answers.
      for (const { frame } of captured) w.fabrics.get("host")!.mac.receive(frame);
      replayed = captured.length;
    });
  });
  const summary = await w.run();
  assert.ok(replayed >= 1, `${replayed} DISCOVERs replayed`);
  assert.equal(counters(summary, "host").LinkDowns, 0);
  assert.equal(counters(summary, "host").StaleControl, replayed);
  assert.equal(stateEntries(summary, "host", "active").length, 1);
});

test("a DISCOVER of the chassis card's boot before a power cut, arriving during the session with its new boot, is stale: no second down", async () => {
  const w = world({ durationNs: 400 * MS, host: { link: LONG_GRACE }, chassis: { link: LONG_GRACE } }, 3);
  const captured = captureDiscovers(w);
  let firstBoot = 0;
  let ups = 0;
  w.onLinkStateChange((card, _tunnel, state) => {
    if (card !== "host" || state !== LinkState.Active) return;
    ups++;
    if (ups === 1) {
      firstBoot = captured[0].bootId;
      w.scheduler.at(w.scheduler.now + 2 * MS, () => powerCycle(w, "chassis"));
    } else if (ups === 2) {
      w.scheduler.at(w.scheduler.now + 5 * MS, () => {
        for (const { frame, bootId } of captured) if (bootId === firstBoot) w.fabrics.get("host")!.mac.receive(frame);
      });
    }
  });
  const summary = await w.run();
  assert.equal(ups, 2, "paired, then paired again after the reboot");
  const old = captured.filter((c) => c.bootId === firstBoot).length;
  assert.ok(old >= 1);
  assert.equal(counters(summary, "host").PeerReboots, 1, "the reboot itself");
  assert.equal(counters(summary, "host").LinkDowns, 1, "only the reboot's down");
  assert.equal(counters(summary, "host").StaleControl, old);
});

for (const state of [LinkState.Negotiate, LinkState.Authenticate, LinkState.Configure]) {
  test(`a chassis card that reboots while its host card is in ${LinkState[state]} (no session to adopt: a new boot ID) is paired with again as soon as it announces its new boot`, async () => {
    const w = world({ durationNs: 300 * MS, host: { slots: 2 } }, 5);
    const captured = captureDiscovers(w);
    let rebootAt: number | null = null;
    w.onLinkStateChange((card, tunnel, s) => {
      if (card === "host" && tunnel === 0 && s === state && rebootAt === null) {
        rebootAt = w.scheduler.now;
        reboot(w, "chassis");
      }
    });
    const summary = await w.run();
    assert.ok(rebootAt !== null);
    const announced = captured.find((c) => c.atNs > rebootAt!)!.atNs;
    const negotiate = stateEntries(summary, "host", "negotiate").find((t) => t >= announced);
    // The next batch, not a handshake timeout (10 ms) later: a batch waiting before it, and wasm3
    // compiling what the DISCOVER's handling calls for the first time, take a few ms at 100 MHz.
    assert.ok(negotiate !== undefined && negotiate - announced <= 5 * MS, `the host card opened a handshake with the new boot ${negotiate! - announced} ns after its first DISCOVER`);
    assert.equal(counters(summary, "host").LinkDowns, 0, "no session was up: nothing to remove");
    for (const card of ["host", "chassis"]) assert.equal(stateEntries(summary, card, "active").length, 1, `${card} up once`);
  });
}
