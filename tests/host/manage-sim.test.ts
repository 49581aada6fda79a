// The simulator's management port (tools/sim/management-port.ts): the station's cable to a
// switch port, an in-sim client on virtual time, and the TCP bridge of `iov sim --manage`.
// A stand-in card (serial 0x30000001, answering on the host card's cable) keeps these
// tests about the plumbing, whatever the firmware answers.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ControlType, ManageOp, ManageStatus, LinkState } from "../../board/map/link.ts";
import { CardRole, ResetCause } from "../../board/map/mailbox.ts";
import { TunnelReg } from "../../board/map/registers.ts";
import { decodeControl, wireFrame } from "../../board/link-codec.ts";
import { decodeReply, decodeRequest, encodeReply, encodeRequest, type DecodedRequest } from "../../board/manage-codec.ts";
import { ManageClient, stationIdentity, wallClock } from "../../tools/manage/client.ts";
import { StreamTransport } from "../../tools/manage/transport.ts";
import { adminKey, macFor, pairScenario, SCENARIOS } from "../../tools/sim/scenarios.ts";
import { World } from "../../tools/sim/world.ts";
import { FIRMWARE } from "./helpers.ts";

const KEY = adminKey("default");
const STAND_IN = 0x3000_0001;

/** Whether every card of `world` has its tunnel 0 Active now: up, paired, done with its boot's batches. */
function paired(world: World): boolean {
  return [...world.fabrics.values()].every((f) => f.tunnels[0].readRegister(TunnelReg.LinkState) === LinkState.Active);
}

/**
 * Runs `then` at the first poll (one a millisecond of virtual time, from now) at which `ready()`
 * holds: the cards' soft-cores decide when a state comes, not a fixed time. Not within `withinNs`:
 * the run fails, naming `what`.
 */
function when(world: World, what: string, ready: () => boolean, then: () => void, withinNs = 2e9): void {
  const deadline = world.scheduler.now + withinNs;
  const poll = () => {
    if (ready()) then();
    else if (world.scheduler.now >= deadline) throw new Error(`${what}: not within ${withinNs / 1e6} ms (at ${world.scheduler.now / 1e6} ms)`);
    else world.scheduler.at(world.scheduler.now + 1e6, poll);
  };
  poll();
}

/** Every MANAGE_REQUEST that reaches a card's cable end, and a stand-in card answering on the host card's cable. */
function watch(world: World): { requests: { cable: string; request: DecodedRequest }[] } {
  const seen = { requests: [] as { cable: string; request: DecodedRequest }[] };
  for (const cable of ["cable-host", "cable-chassis"]) {
    const link = world.network.link(cable);
    link.tap = (frame, to) => {
      if (to !== link.a) return; // towards the card
      const control = decodeControl(frame);
      if (control?.type !== ControlType.ManageRequest) return;
      const request = decodeRequest(frame, KEY);
      seen.requests.push({ cable, request });
      if (cable !== "cable-host") return;
      const answer = encodeReply({
        destination: request.source, source: macFor(STAND_IN), vlan: request.vlan, op: request.op, status: ManageStatus.Ok, group: 300,
        counter: request.counter, firmware: { major: 9, minor: 8, patch: 7 }, slots: 1, bootSlot: 0, bootFlags: 0, slotsPresent: 1,
        ports: 1, linkStates: [LinkState.Discover], peerSerials: [0],
        counters: { linkUps: 0, linkDowns: 0, recoveries: 0, authFailures: 0, hotplugEvents: 0, manageRequests: 1, manageAuthFailures: 0, manageReplays: 0 },
        macsecDrops: null, paths: null,
        card: { role: CardRole.Chassis, serial: STAND_IN, bootId: 0x5157_0001, group: 300 },
      }, KEY);
      world.scheduler.at(world.scheduler.now + 1000, () => void link.a.send(wireFrame(answer)));
    };
  }
  return seen;
}

test("the station's requests cross the switch to every card on the management VLAN, and answers come back to an in-sim client", async () => {
  const world = new World({ scenario: pairScenario({ durationNs: Infinity, management: true }), seed: 5, engine: "node", engineOptions: { firmware: FIRMWARE } });
  assert.ok(world.management);
  const seen = watch(world);
  let found: number[] | null = null;
  let station: ManageClient | null = null;
  world.startHooks.push((w) => {
    station = w.management!.client();
    // Once the cards are up: a card answers in about 0.8 ms of its soft-core's time, the first
    // requests after it paired in up to about 6 ms (wasm3 compiling the management code, the end of
    // its boot), so the discovery waits 20 ms.
    when(w, "both cards paired", () => paired(w), () => {
      station!.discover(20).then((cards) => (found = cards.map((c) => c.sender.serial))).finally(() => w.scheduler.stop());
    });
  });
  await world.run();
  assert.ok(found, "discover finished inside the run");
  assert.deepEqual(found, [0x1000_0001, 0x2000_0001, STAND_IN]); // the two cards' firmware, and the stand-in
  const discovers = seen.requests.filter((r) => r.request.op === ManageOp.Discover);
  assert.deepEqual(discovers.map((r) => r.cable).sort(), ["cable-chassis", "cable-chassis", "cable-host", "cable-host"]);
  assert.ok(discovers.every((r) => r.request.vlan === 4000));
  // The station is seed-derived: the same identity and counters on every run with this seed.
  const again = new World({ scenario: pairScenario({ durationNs: 1e6, management: true }), seed: 5, engine: "node", engineOptions: { firmware: FIRMWARE } });
  assert.deepEqual(again.management!.station, world.management!.station);
  assert.equal(discovers[0].request.counter, again.management!.counter.peek());
  assert.equal(world.management!.counters.rxBadFcs, 0);
  assert.ok(world.management!.counters.txFrames >= 2);
});

test("iov sim --manage's bridge carries stream-framed frames into the switch port and the port's frames back", async () => {
  let port = 0;
  const world = new World({
    scenario: pairScenario({ durationNs: Infinity, management: true }), seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE },
    manage: 0, onManage: (endpoint) => (port = endpoint.port),
  });
  watch(world);
  const done = world.run();
  try {
    while (port === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const transport = await StreamTransport.connect("127.0.0.1", port);
    const raw: Uint8Array[] = [];
    transport.onFrame((frame) => raw.push(frame));
    const client = new ManageClient({ transport, clock: wallClock, key: KEY, station: stationIdentity() });
    const cards = await client.discover(300);
    assert.ok(cards.some((c) => c.sender.serial === STAND_IN && c.firmware.major === 9), JSON.stringify(cards.map((c) => c.sender.serial)));
    // Frames come out of the bridge without FCS: the tunnel header's length and the padding to 60 bytes remain.
    const answer = raw.find((f) => decodeControl(f)?.serial === STAND_IN)!;
    assert.equal(answer.length, 18 + 16 + 16 + 124);
    assert.equal(decodeReply(answer, KEY).group, 300);
    // A client sending garbage or a short frame is not a problem for the world.
    transport.send(new Uint8Array(5));
    const again = await client.status(STAND_IN);
    assert.equal(again.op, ManageOp.Status);
    client.close();
    // The bridge takes a frame from any stream client: one built by hand reaches the cards.
    const other = await StreamTransport.connect("127.0.0.1", port);
    other.send(encodeRequest({
      destination: macFor(0x1000_0001), source: Uint8Array.of(2, 0x4d, 0x47, 0, 0, 1), vlan: 4000, op: ManageOp.Discover, newGroup: 0,
      target: 0x1000_0001, bootId: 0, counter: 1n, station: { serial: 0x4d47_0001, bootId: 1 },
    }, KEY));
    other.close();
  } finally {
    world.scheduler.stop();
    await done;
  }
});

test("in the simulation, the firmware answers the station: discovery, status after a reboot (found again), and a refusal of a bad group", async () => {
  const world = new World({
    scenario: pairScenario({ durationNs: Infinity, management: true }),
    seed: 3, engine: "node", engineOptions: { firmware: FIRMWARE },
  });
  const log: string[] = [];
  const bootIds: number[] = [];
  world.startHooks.push((w) => {
    // A card answers in about 0.8 ms of its soft-core's time, the first requests after it paired in
    // up to about 6 ms (wasm3 compiling the management code, the end of its boot): 20 ms a try.
    const client = w.management!.client({ tryMs: 20 });
    const chassis = w.cards.find((c) => c.name === "chassis")!;
    when(w, "both cards paired", () => paired(w), () => {
      client.discover(20).then((cards) => {
        log.push(`found ${cards.map((c) => `${c.sender.serial.toString(16)}:${c.group}:${LinkState[c.linkStates[0]]}`).join(" ")}`);
        bootIds.push(client.cards.get(0x2000_0001)!.bootId);
        // The chassis card loses power for 1 ms (a new boot ID: a reboot keeps it, with the session);
        // once it is up and paired again the station, which still knows the old boot ID, asks its status.
        w.scheduler.at(w.scheduler.now, async () => {
          await chassis.powerCut();
          w.scheduler.at(w.scheduler.now + 1_000_000, () => {
            chassis.powerOn(ResetCause.PowerOn);
            when(w, "both cards paired again", () => paired(w), () => {
              client.status(0x2000_0001).then((r) => {
                log.push(`status ${r.sender.serial.toString(16)} boot ${r.sender.bootId === bootIds[0] ? "same" : "new"}`);
                return client.setGroup(0x2000_0001, 4000);
              }).catch((error: Error) => log.push(error.message)).finally(() => w.scheduler.stop());
            });
          });
        });
      }).catch((error: Error) => {
        log.push(error.message);
        w.scheduler.stop();
      });
    });
  });
  const summary = await world.run();
  assert.deepEqual(log, [
    "found 10000001:100:Active 20000001:100:Active",
    "status 20000001 boot new",
    "card 0x20000001 refused the group change to 4000: bad group (outside 1..4094, or the management VLAN)",
  ]);
  const chassis = summary.cards.find((c) => c.name === "chassis")!.firmwareCounters!;
  assert.equal(chassis.ManageReplays, 3, "the three Status requests with the old boot ID");
});

test("a scenario's assign action hands the chassis card to the other server through the management station", async () => {
  const world = new World({
    scenario: { ...SCENARIOS.handover, durationNs: 7.5e9, actions: [{ atNs: 1e9, kind: "assign", card: "chassis", group: 200 }] },
    seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE },
  });
  const summary = await world.run();
  const station = world.timeline.entries.filter((e) => e.source === "manage");
  assert.deepEqual(station.map((e) => [e.card, e.text, e.level]), [["station", "card 0x20000001 moved to group 200", "info"]]);
  // The handover: server1 removes both devices (an orderly removal: the slots are idle, so the host
  // card presses their attention buttons and pciehp takes its 5 s), server2 inserts both. Before it
  // server1 found them at enumeration or, a slot it had scanned before the card paired, by hot-plug.
  const changesAfter = (server: string) => summary.servers.find((v) => v.name === server)!.hotplug.filter((h) => h.timeNs > 1e9).map((h) => h.change);
  assert.deepEqual(changesAfter("server1"), ["removal", "removal"]);
  assert.deepEqual(changesAfter("server2"), ["insertion", "insertion"]);
  assert.equal(summary.hotplugEvents.host1.removals, 2);
  assert.deepEqual(summary.hotplugEvents.host2, { removals: 0, insertions: 2 });
  assert.equal(summary.cards.find((c) => c.name === "chassis")!.linkStates.at(-1)!.state, "tunnel0:active");
});
