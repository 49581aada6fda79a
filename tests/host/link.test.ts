// Whole-system link scenarios: the firmware of two (or more) cards trains, pairs, rides
// out outages and rebuilds sessions on its own; fixed seeds, virtual time, the cards' soft-cores
// at their clock (docs/softcore.md). What needs a link (traffic, faults) starts once both cards
// are Active, not at a fixed time: pairing takes the soft-cores' batches.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { World } from "../../tools/sim/world.ts";
import { pairScenario, pairingKey, type PairOptions, type TrafficSpec } from "../../tools/sim/scenarios.ts";
import { stateEntries, type RunSummary } from "../../tools/sim/summary.ts";
import { CardRole, ResetCause, MacsecSetting } from "../../board/map/mailbox.ts";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseKeyLog } from "../../tools/sim/keylog.ts";
import { ControlType, HandshakeBody, AuthBody, Proposal, NONCE_SIZE, LinkTiming, AckPolicy } from "../../board/map/link.ts";
import { TunnelReg, TunnelControl, TunnelCounter } from "../../board/map/registers.ts";
import { BATCH_LIMIT_NS_DEFAULT } from "../../board/softcore.ts";
import { decodeControl, type ControlMessage } from "../../board/link-codec.ts";
import { payloadOffset, writeFcs } from "../../board/ethernet/frame.ts";
import { FrameKind } from "../../board/tunnel/wire.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;
/** Both cards pair about 110 ms after power-on (docs/softcore.md); runs allow this much, and tests that need the link check it was so. */
const PAIRING_NS = 150 * MS;
/**
 * Both cards paired and their soft-cores done compiling the firmware ahead, about 155 ms after power-on
 * (docs/softcore.md, "First calls"): the steady state whose reaction times docs/link.md promises. Before
 * it, an event can wait for the function being compiled.
 */
const STEADY_NS = 200 * MS;
/** How often onPaired looks whether the soft-cores have compiled everything. */
const WARM_POLL_NS = 100_000;
/**
 * docs/link.md's detection target for the fabric: a cut is seen at once by carrier loss, or after the
 * silence threshold (200 µs) behind a switch.
 */
const DETECT_TARGET_NS = 300_000;
/**
 * The firmware's part of detecting a cut: the fabric's event goes to the soft-core, which enters Recovery
 * (LinkState, timers) when that batch ends, within the batch limit (docs/softcore.md).
 */
const FIRMWARE_REACTION_NS = BATCH_LIMIT_NS_DEFAULT;

function world(options: PairOptions, seed = 5): World {
  return new World({ scenario: pairScenario(options), seed, engine: "node", engineOptions: { firmware: FIRMWARE } });
}

function counters(summary: RunSummary, card: string): Record<string, number> {
  return summary.cards.find((c) => c.name === card)!.firmwareCounters!;
}

/** The link states card `card`'s tunnel 0 went through, in order. */
function states(summary: RunSummary, card: string): string[] {
  return summary.cards.find((c) => c.name === card)!.linkStates.filter((s) => s.state.startsWith("tunnel0:")).map((s) => s.state.slice("tunnel0:".length));
}

/**
 * Calls `then` with the time once both cards' tunnels are Active and, with `steady`, both soft-cores
 * have compiled the whole firmware (see STEADY_NS); returns a record of that time (null: never).
 */
function onPaired(w: World, then: (upNs: number) => void = () => {}, steady = false): { upNs: number | null; byNs: number } {
  const paired = { upNs: null as number | null, byNs: steady ? STEADY_NS : PAIRING_NS };
  const warm = () => w.softcore.mhz === 0 || w.cards.filter((c) => c.name === "host" || c.name === "chassis").every((c) => c.stats.warmNs !== null);
  const go = () => {
    if (steady && !warm()) {
      w.scheduler.at(w.scheduler.now + WARM_POLL_NS, go);
      return;
    }
    paired.upNs = w.scheduler.now;
    then(w.scheduler.now);
  };
  w.whenActive(["host", "chassis"], go);
  return paired;
}

/** The run paired (and got steady) in time for what it scheduled from there. */
function assertPaired(paired: { upNs: number | null; byNs: number }): void {
  assert.ok(paired.upNs !== null && paired.upNs <= paired.byNs, `both cards Active${paired.byNs === STEADY_NS ? " and warm" : ""} at ${paired.upNs} ns, within ${paired.byNs} ns of power-on`);
}

/** Test traffic both ways; each flow starts with startTraffic once the link is up (startNs is not used). */
const flood = (count: number): TrafficSpec[] => [
  { from: "host", to: "chassis", count, startNs: 0, payload: 256, mix: { posted: 4, nonPosted: 1, completion: 1 } },
  { from: "chassis", to: "host", count: count / 4, startNs: 0, payload: 64, mix: { posted: 2, nonPosted: 1, completion: 3 } },
];

function startFlood(w: World, count: number): void {
  flood(count).forEach((spec, i) => w.startTraffic(spec, i));
}

test("bring-up: both cards pair by themselves at their first handshake, and their tags, session ID and MACsec keys are HMAC-SHA-256 over it", async () => {
  const keylog = join(mkdtempSync(join(tmpdir(), "iov-link-")), "keys.log");
  const w = new World({ scenario: pairScenario({ durationNs: PAIRING_NS }), seed: 5, engine: "node", engineOptions: { firmware: FIRMWARE }, keylog });
  const frames: ControlMessage[] = [];
  w.network.link("cable").tap = (frame) => {
    const m = decodeControl(frame);
    if (m) frames.push(m);
  };
  const paired = onPaired(w);
  const summary = await w.run();
  assertPaired(paired);
  for (const card of ["host", "chassis"]) {
    assert.equal(stateEntries(summary, card, "active").length, 1, card);
    assert.equal(counters(summary, card).LinkUps, 1);
  }
  // The handshake that brought the link up: the last of each message before the host card's first READY.
  const ready = frames.findIndex((f) => f.type === ControlType.Ready && f.role === CardRole.Host);
  assert.ok(ready > 0, "the host card sent READY");
  const find = (type: ControlType, role: CardRole) => frames.slice(0, ready).filter((f) => f.type === type && f.role === role).at(-1)!;
  const offer = find(ControlType.Offer, CardRole.Host);
  const accept = find(ControlType.Accept, CardRole.Chassis);
  const size = offer.version >= 3 ? Proposal.SizeV3 : offer.version >= 2 ? Proposal.SizeV2 : Proposal.SizeV1;
  const transcript = Buffer.concat([
    offer.body.subarray(0, NONCE_SIZE), accept.body.subarray(0, NONCE_SIZE),
    offer.body.subarray(HandshakeBody.Proposal, HandshakeBody.Proposal + size), accept.body.subarray(HandshakeBody.Proposal, HandshakeBody.Proposal + size),
    Buffer.from([0x10, 0, 0, 1, 0x20, 0, 0, 1, 0, 100, offer.version]),
  ]);
  const tag = (label: string) => createHmac("sha256", pairingKey("default")).update(Buffer.concat([Buffer.from(label), transcript])).digest();
  assert.deepEqual(Buffer.from(find(ControlType.Auth, CardRole.Host).body.subarray(AuthBody.Tag, AuthBody.Tag + 32)), tag("IOVh"));
  assert.deepEqual(Buffer.from(find(ControlType.Auth, CardRole.Chassis).body.subarray(AuthBody.Tag, AuthBody.Tag + 32)), tag("IOVc"));
  const session = tag("IOVs").readUInt32BE(0);
  for (const card of ["host", "chassis"]) assert.equal(w.fabrics.get(card)!.tunnels[0].readRegister(TunnelReg.Session), session, card);
  assert.equal(frames[ready].session, session, "READY carries the session");
  // The MACsec keys (docs/link.md#keys): from the session key M, SAK(direction, generation).
  const master = tag("IOVm");
  const sak = (dir: number, generation: number) => {
    const message = Buffer.alloc(9);
    message.write("IOVk", 0, "latin1");
    message[4] = dir;
    message.writeUInt32BE(generation, 5);
    return createHmac("sha256", master).update(message).digest().subarray(0, 16);
  };
  const logged = parseKeyLog(readFileSync(keylog, "utf8"));
  const hostSends = logged.filter((e) => e.sci[5] === 0x01 && e.sci[2] === 0x10);
  assert.deepEqual(hostSends.map((e) => Buffer.from(e.key).toString("hex")), [0, 1].map((g) => sak(0, g).toString("hex")), "the host card's SC: generations 0 and 1");
  const chassisSends = logged.filter((e) => e.sci[2] === 0x20);
  assert.deepEqual(chassisSends.map((e) => Buffer.from(e.key).toString("hex")), [0, 1].map((g) => sak(1, g).toString("hex")), "the chassis card's SC");
  // One handshake, straight through: at the soft-cores' clock too (the first batches of each message
  // compile the functions they run: docs/softcore.md), none times out or is refused on the way.
  for (const card of ["host", "chassis"]) {
    const c = counters(summary, card);
    assert.deepEqual(
      { states: states(summary, card), HandshakeTimeouts: c.HandshakeTimeouts, PeerRejects: c.PeerRejects, NegotiationFailures: c.NegotiationFailures, AuthFailures: c.AuthFailures },
      { states: ["discover", "negotiate", "authenticate", "configure", "active"], HandshakeTimeouts: 0, PeerRejects: 0, NegotiationFailures: 0, AuthFailures: 0 },
      `${card} pairs at its first handshake`,
    );
  }
});

test("a 10 ms cable flap under load is ridden out: recovery, resume, no down, no TLP lost", async () => {
  const w = world({ durationNs: STEADY_NS + 115 * MS, loss: 0.001 });
  let flap = 0;
  const paired = onPaired(w, (up) => {
    startFlood(w, 200_000);
    flap = up + 15 * MS;
    const cable = w.network.link("cable");
    w.scheduler.at(flap, () => cable.hold("flap", true));
    w.scheduler.at(flap + 10 * MS, () => cable.hold("flap", false));
  }, true);
  const summary = await w.run();
  assertPaired(paired);
  for (const card of ["host", "chassis"]) {
    const c = counters(summary, card);
    assert.equal(c.LinkDowns, 0, `${card}: no down`);
    assert.ok(c.Recoveries >= 1 && c.Resumes === c.Recoveries, `${card}: ${c.Recoveries} recoveries, ${c.Resumes} resumes`);
    const recovery = stateEntries(summary, card, "recovery").find((t) => t >= flap)!;
    assert.ok(recovery - flap <= DETECT_TARGET_NS + FIRMWARE_REACTION_NS, `${card} entered recovery ${recovery - flap} ns after the cut`);
  }
  assert.deepEqual(summary.tlps, { sent: 250_000, delivered: 250_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
});

test("a cable pulled past the grace window under load: the TLPs the removal discards are aborted by removal, none lost, duplicated or reordered", async () => {
  const w = world({ durationNs: STEADY_NS + 60 * MS });
  const paired = onPaired(w, (up) => {
    startFlood(w, 2_000_000);
    w.scheduler.at(up + 5 * MS, () => w.network.link("cable").hold("pull", true));
  }, true);
  const summary = await w.run();
  assertPaired(paired);
  for (const card of ["host", "chassis"]) assert.equal(counters(summary, card).LinkDowns, 1, `${card}: down at the grace's end`);
  const t = summary.tlps;
  assert.ok(t.abortedByRemoval > 0, `${t.abortedByRemoval} TLPs discarded by the removal`);
  assert.deepEqual({ lost: t.lost, duplicated: t.duplicated, reordered: t.reordered }, { lost: 0, duplicated: 0, reordered: 0 });
  assert.ok(t.delivered + t.abortedByRemoval < t.sent, "the rest of the flows still waited to be sent");
});

for (const switched of [false, true]) {
  test(`a cable cut ${switched ? "behind a switch (silence)" : "on a direct cable (carrier)"} is detected within 300 µs and a batch, and declared down within grace + 1 ms`, async () => {
    const w = world({ durationNs: STEADY_NS + 70 * MS, switched });
    let cut = 0;
    const paired = onPaired(w, (up) => {
      cut = up + 10 * MS;
      w.scheduler.at(cut, () => w.network.link(switched ? "cable-chassis" : "cable").hold("cut", true));
    }, true);
    const summary = await w.run();
    assertPaired(paired);
    const detect = (card: string) => stateEntries(summary, card, "recovery")[0] - cut;
    const detected = ["host", "chassis"].map((card) => `${card} ${detect(card)} ns`).join(", ");
    for (const card of ["host", "chassis"]) {
      const down = stateEntries(summary, card, "down")[0] - cut;
      // The grace runs from the batch that took the fabric's event (entering Recovery); the port goes
      // Down in the batch the grace timer fires in.
      assert.ok(down <= detect(card) + LinkTiming.GraceNs + FIRMWARE_REACTION_NS, `${card} down ${down} ns after the cut (recovery at ${detect(card)} ns)`);
      assert.ok(down >= LinkTiming.GraceNs, `${card} rode out the grace window (${down} ns)`);
      assert.equal(counters(summary, card).LinkDowns, 1);
      assert.ok(stateEntries(summary, card, "discover").length >= 2, `${card} discovers again`);
      // Detected: the fabric's event (at once by carrier, by silence within the target) and the firmware's batch that takes it.
      assert.ok(detect(card) >= 0 && detect(card) <= DETECT_TARGET_NS + FIRMWARE_REACTION_NS, `${card} entered recovery ${detect(card)} ns after the cut (${detected})`);
    }
  });
}

test("5 % random frame loss for 10 s simulated: no false down", async () => {
  const w = world({ durationNs: 10_000 * MS, loss: 0.05 }, 7);
  const paired = onPaired(w, () => startFlood(w, 40_000));
  const summary = await w.run();
  assertPaired(paired);
  for (const card of ["host", "chassis"]) {
    assert.equal(counters(summary, card).LinkDowns, 0, card);
    assert.equal(stateEntries(summary, card, "active").length - counters(summary, card).Resumes, 1, `${card} came up once`);
  }
  assert.deepEqual(summary.tlps, { sent: 50_000, delivered: 50_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
});

test("rogue cards on the same switch never attach: another key, another group; each is counted", async () => {
  const w = world({
    durationNs: 300 * MS,
    host: { slots: 2, powerOnNs: 5 * MS }, // the rogue host card tries the chassis card first
    others: [
      { name: "rogue-host", role: CardRole.Host, serial: 0x1000_0666, slots: 1, powerOnNs: 0, link: { installation: "elsewhere" } },
      { name: "rogue-chassis", role: CardRole.Chassis, serial: 0x2000_0666, slots: 1, powerOnNs: 0, link: { installation: "somewhere else" } },
      { name: "other-group", role: CardRole.Chassis, serial: 0x2000_0777, slots: 1, powerOnNs: 0, link: { group: 200 } },
    ],
  });
  const summary = await w.run();
  const peer = (card: string) => w.fabrics.get(card)!.tunnels[0].peerKey();
  assert.equal(stateEntries(summary, "host", "active").length, 1, "the host card's port 0 pairs once");
  assert.equal(peer("host"), w.fabrics.get("chassis")!.mac.address.reduce((k, b) => k * 256 + b, 0), "with the real chassis card");
  assert.equal(stateEntries(summary, "chassis", "active").length, 1);
  for (const rogue of ["rogue-host", "rogue-chassis", "other-group"]) assert.equal(stateEntries(summary, rogue, "active").length, 0, `${rogue} never attaches`);
  const hostLinks = summary.cards.find((c) => c.name === "host")!.linkStates;
  assert.ok(!hostLinks.some((s) => s.state === "tunnel1:active"), "the host card's free port stays free");
  assert.ok(counters(summary, "chassis").AuthFailures >= 1, "the chassis card refused the rogue host card's tag");
  assert.ok(counters(summary, "rogue-chassis").AuthFailures >= 1, "the rogue chassis card refused the host card's tag");
  assert.ok(counters(summary, "host").PeerRejects >= 1, "and the host card counted its REJECT");
  const filtered = (card: string) => w.fabrics.get(card)!.mac.counters.rxControlFiltered;
  assert.ok(filtered("host") > 0 && filtered("other-group") > 0, "other groups' frames are dropped by the MAC and counted");
  assert.equal(counters(summary, "host").ForeignGroup, 0, "none reaches the firmware");
  // Retries back off (4 ms, doubling per failure): a handful of attempts per pair in 300 ms, never a tight loop.
  assert.ok(counters(summary, "host").PeerRejects <= 8, `${counters(summary, "host").PeerRejects} attempts`);
});

test("in a session in clear, forged and replayed DATA frames are dropped by the tunnel's checks and deliver nothing (with MACsec: tests/host/macsec-system.test.ts)", async () => {
  const clear = { link: { macsec: MacsecSetting.Off } };
  const w = world({ durationNs: PAIRING_NS + 38 * MS, host: clear, chassis: clear });
  const captured: Uint8Array[] = [];
  w.network.link("cable").tap = (frame) => {
    if (captured.length < 50 && frame[payloadOffset(frame) + 1] === FrameKind.Data && frame[6 + 2] === 0x10) captured.push(frame.slice());
  };
  const paired = onPaired(w, (up) => {
    startFlood(w, 40_000);
    w.scheduler.at(up + 18 * MS, () => {
      const mac = w.fabrics.get("chassis")!.mac;
      for (const frame of captured) mac.receive(frame); // replayed: same session, old sequence numbers
      for (const frame of captured.slice(0, 10)) {
        const forged = frame.slice();
        const at = payloadOffset(forged);
        forged[at + 4] ^= 0x5a; // another session ID
        writeFcs(forged);
        mac.receive(forged);
        const ahead = frame.slice();
        new DataView(ahead.buffer).setUint32(at + 8, 0x4000_0000); // far outside the sequence window
        writeFcs(ahead);
        mac.receive(ahead);
      }
    });
  });
  const summary = await w.run();
  assertPaired(paired);
  const tunnel = w.fabrics.get("chassis")!.tunnels[0];
  assert.ok(captured.length === 50);
  assert.ok(tunnel.counters[TunnelCounter.RxDuplicates] >= 50, "replays counted as duplicates");
  assert.equal(tunnel.counters[TunnelCounter.RxWrongSession], 10, "forged sessions counted");
  assert.ok(tunnel.counters[TunnelCounter.RxOutsideWindow] >= 10, "sequence numbers outside the window counted");
  assert.deepEqual(summary.tlps, { sent: 50_000, delivered: 50_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
});

// A card that loses power is silent while it powers on, wasm3 loads the firmware and its boot
// batches run, about 45 ms at 100 MHz (docs/softcore.md): longer than the default 20 ms grace
// window. Within a longer grace the peer still holds the session when the card comes back, and its
// new boot ID ends the session at once; with the default grace the peer has gone down by then, on
// silence. A reboot (the soft-core's reset alone) is another matter: the fabric keeps the session.
const REBOOT_GRACE_NS = 200 * MS;

/**
 * 10 ms after both cards are paired (and warm), `card` reboots (`power` false: its soft-core's
 * reset) or loses power for 1 ms; keeps the session ID of the millisecond before.
 */
function rebootWhenPaired(w: World, card: string, power = true) {
  const plan = { paired: null as unknown as ReturnType<typeof onPaired>, reboot: 0, before: [] as number[] };
  plan.paired = onPaired(w, (up) => {
    plan.reboot = up + 10 * MS;
    const target = w.cards.find((c) => c.name === card)!;
    w.scheduler.at(plan.reboot - 1 * MS, () => void plan.before.push(w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.Session)));
    if (!power) w.scheduler.at(plan.reboot, () => target.reset(ResetCause.Software));
    else {
      w.scheduler.at(plan.reboot, () => target.powerCut());
      w.scheduler.at(plan.reboot + 1 * MS, () => target.powerOn(ResetCause.PowerOn));
    }
  }, true);
  return plan;
}

for (const card of ["chassis", "host"]) {
  const other = card === "host" ? "chassis" : "host";

  test(`a ${card} card that reboots mid-session under traffic keeps the session: its new firmware adopts it, under the same boot ID, and the ${other} card sees nothing`, async () => {
    const w = world({ durationNs: STEADY_NS + 150 * MS });
    const plan = rebootWhenPaired(w, card, false);
    w.whenActive(["host", "chassis"], () => startFlood(w, 100_000));
    const summary = await w.run();
    assertPaired(plan.paired);
    const c = counters(summary, other);
    assert.deepEqual([c.PeerReboots, c.LinkDowns, c.Recoveries], [0, 0, 0], `${other} saw nothing`);
    assert.deepEqual(states(summary, other), ["discover", "negotiate", "authenticate", "configure", "active"]);
    assert.equal(w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.Session), plan.before[0], "the same session");
    assert.ok(w.timeline.entries.some((e) => e.card === card && /link 0: session adopted after a restart of the firmware/.test(e.text)), `${card}'s new firmware adopted the session`);
    assert.deepEqual(summary.tlps, { sent: 125_000, delivered: 125_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
  });

  test(`a ${card} card that loses power mid-session within the grace window is detected by its new boot ID and the session is rebuilt`, async () => {
    const link = { graceNs: REBOOT_GRACE_NS };
    const w = world({ durationNs: STEADY_NS + 200 * MS, host: { link }, chassis: { link } });
    const plan = rebootWhenPaired(w, card);
    const summary = await w.run();
    const { paired, reboot, before } = plan;
    assertPaired(paired);
    assert.equal(counters(summary, other).PeerReboots, 1, `${other} saw the reboot`);
    const down = stateEntries(summary, other, "down");
    assert.equal(down.length, 1);
    assert.ok(down[0] - reboot < REBOOT_GRACE_NS, `${other} went down ${down[0] - reboot} ns after the reboot, without waiting out the grace window`);
    const up = stateEntries(summary, other, "active");
    assert.equal(up.length - counters(summary, other).Resumes, 2, "up, then up again");
    const after = w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.Session);
    assert.notEqual(after, before[0], "a new session");
    assert.equal(w.fabrics.get("chassis")!.tunnels[0].readRegister(TunnelReg.Session), after);
  });

  test(`a ${card} card that loses power mid-session for longer than the grace window is a silence: down at its end, then a new session`, async () => {
    const w = world({ durationNs: STEADY_NS + 200 * MS });
    const plan = rebootWhenPaired(w, card);
    const summary = await w.run();
    const { paired, reboot, before } = plan;
    assertPaired(paired);
    assert.equal(counters(summary, other).PeerReboots, 0, `${other} had given the session up before ${card} came back`);
    const down = stateEntries(summary, other, "down");
    assert.equal(down.length, 1);
    const recovery = stateEntries(summary, other, "recovery").find((t) => t >= reboot)!;
    assert.ok(down[0] - reboot >= LinkTiming.GraceNs && down[0] - recovery <= LinkTiming.GraceNs + FIRMWARE_REACTION_NS, `${other} went down ${down[0] - reboot} ns after the reboot, ${down[0] - recovery} ns after entering recovery`);
    const up = stateEntries(summary, other, "active");
    assert.equal(up.length - counters(summary, other).Resumes, 2, "up, then up again");
    const after = w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.Session);
    assert.notEqual(after, before[0], "a new session");
    assert.equal(w.fabrics.get("chassis")!.tunnels[0].readRegister(TunnelReg.Session), after);
  });
}

test("version fallback: a card limited to protocol 1 pairs at protocol 1 with go-back-N and fixed timers (both set to MACsec off: protocol 1 has none)", async () => {
  const w = world({ durationNs: PAIRING_NS + 38 * MS, loss: 0.001, host: { link: { macsec: MacsecSetting.Off } }, chassis: { link: { protocolMax: 1, macsec: MacsecSetting.Off } } });
  const paired = onPaired(w, () => startFlood(w, 20_000));
  const summary = await w.run();
  assertPaired(paired);
  for (const card of ["host", "chassis"]) {
    const tunnel = w.fabrics.get(card)!.tunnels[0];
    assert.equal(stateEntries(summary, card, "active").length, 1, card);
    assert.ok(tunnel.readRegister(TunnelReg.Control) & TunnelControl.GoBackN, `${card} uses go-back-N`);
    assert.equal(tunnel.readRegister(TunnelReg.KeepaliveNs), LinkTiming.KeepaliveNs);
  }
  assert.deepEqual(summary.tlps, { sent: 25_000, delivered: 25_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
});

test("an impossible combination fails with a reason and a counter, never a half-configured link, and retries back off", async () => {
  const w = world({ durationNs: 500 * MS, host: { link: { protocolMax: 1 } }, chassis: { link: { ackPolicies: AckPolicy.Selective } } });
  const summary = await w.run();
  for (const card of ["host", "chassis"]) {
    assert.equal(stateEntries(summary, card, "configure").length, 0, `${card} never configures its fabric`);
    assert.equal(w.fabrics.get(card)!.tunnels[0].readRegister(TunnelReg.Control), 0, `${card}'s tunnel stays off`);
  }
  const failures = counters(summary, "chassis").NegotiationFailures;
  assert.ok(failures >= 1 && failures <= 8, `${failures} failed handshakes in 500 ms`);
  // Each failure the chassis card finds is a REJECT the host card counts: one per handshake, however
  // often the host card sent its OFFER while the chassis card's soft-core was busy.
  assert.equal(counters(summary, "host").PeerRejects, failures, `the host card counted ${counters(summary, "host").PeerRejects} REJECTs for the chassis card's ${failures} failures`);
});
