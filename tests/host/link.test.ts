// Whole-system link scenarios: the firmware of two (or more) cards trains, pairs, rides
// out outages and rebuilds sessions on its own; fixed seeds, virtual time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { World } from "../../tools/sim/world.ts";
import { pairScenario, pairingKey, type PairOptions } from "../../tools/sim/scenarios.ts";
import { stateEntries, type RunSummary } from "../../tools/sim/summary.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import { ControlType, HandshakeBody, AuthBody, Proposal, NONCE_SIZE, LinkTiming, AckPolicy } from "../../board/map/link.ts";
import { TunnelReg, TunnelControl, TunnelCounter } from "../../board/map/registers.ts";
import { decodeControl, type ControlMessage } from "../../board/link-codec.ts";
import { payloadOffset, writeFcs } from "../../board/ethernet/frame.ts";
import { FrameKind } from "../../board/tunnel/wire.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;

function world(options: PairOptions, seed = 5): World {
  return new World({ scenario: pairScenario(options), seed, engine: "node", engineOptions: { firmware: FIRMWARE } });
}

function counters(summary: RunSummary, card: string): Record<string, number> {
  return summary.cards.find((c) => c.name === card)!.firmwareCounters!;
}

const flood = (count: number, startNs: number) => [
  { from: "host", to: "chassis", count, startNs, payload: 256, mix: { posted: 4, nonPosted: 1, completion: 1 } },
  { from: "chassis", to: "host", count: count / 4, startNs, payload: 64, mix: { posted: 2, nonPosted: 1, completion: 3 } },
];

test("bring-up: both cards pair by themselves and their tags and session ID are HMAC-SHA-256 over the handshake", async () => {
  const w = world({ durationNs: 2 * MS });
  const frames: ControlMessage[] = [];
  w.network.link("cable").tap = (frame) => {
    const m = decodeControl(frame);
    if (m) frames.push(m);
  };
  const summary = await w.run();
  for (const card of ["host", "chassis"]) {
    assert.equal(stateEntries(summary, card, "active").length, 1, card);
    assert.ok(stateEntries(summary, card, "active")[0] < 100_000, `${card} active within 100 µs of power-on`);
    assert.equal(counters(summary, card).LinkUps, 1);
  }
  const find = (type: ControlType, role: CardRole) => frames.find((f) => f.type === type && f.role === role)!;
  const offer = find(ControlType.Offer, CardRole.Host);
  const accept = find(ControlType.Accept, CardRole.Chassis);
  const size = offer.version >= 2 ? Proposal.SizeV2 : Proposal.SizeV1;
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
  assert.equal(find(ControlType.Ready, CardRole.Host).session, session, "READY carries the session");
});

test("a 10 ms cable flap under load is ridden out: recovery, resume, no down, no TLP lost", async () => {
  const w = world({ durationNs: 120 * MS, loss: 0.001, outages: [{ downAtNs: 20 * MS, upAtNs: 30 * MS }], traffic: flood(200_000, 5 * MS) });
  const summary = await w.run();
  for (const card of ["host", "chassis"]) {
    const c = counters(summary, card);
    assert.equal(c.LinkDowns, 0, `${card}: no down`);
    assert.ok(c.Recoveries >= 1 && c.Resumes === c.Recoveries, `${card}: ${c.Recoveries} recoveries, ${c.Resumes} resumes`);
    const recovery = stateEntries(summary, card, "recovery")[0];
    assert.ok(recovery >= 20 * MS && recovery - 20 * MS <= 300_000, `${card} detected the cut after ${recovery - 20 * MS} ns`);
  }
  assert.deepEqual(summary.tlps, { sent: 250_000, delivered: 250_000, lost: 0, duplicated: 0, reordered: 0 });
});

for (const switched of [false, true]) {
  test(`a cable cut ${switched ? "behind a switch (silence)" : "on a direct cable (carrier)"} is detected within 300 µs and declared down within grace + 1 ms`, async () => {
    const cut = 10 * MS;
    const summary = await world({ durationNs: 60 * MS, switched, outages: [{ downAtNs: cut }] }).run();
    for (const card of ["host", "chassis"]) {
      const detect = stateEntries(summary, card, "recovery")[0] - cut;
      const down = stateEntries(summary, card, "down")[0] - cut;
      assert.ok(detect >= 0 && detect <= 300_000, `${card} detect ${detect} ns`);
      assert.ok(down <= LinkTiming.GraceNs + 1 * MS, `${card} down ${down} ns after the cut`);
      assert.ok(down >= LinkTiming.GraceNs, `${card} rode out the grace window (${down} ns)`);
      assert.equal(counters(summary, card).LinkDowns, 1);
      assert.ok(stateEntries(summary, card, "discover").length >= 2, `${card} discovers again`);
    }
  });
}

test("5 % random frame loss for 10 s simulated: no false down", async () => {
  const summary = await world({ durationNs: 10_000 * MS, loss: 0.05, traffic: flood(40_000, 1 * MS) }, 7).run();
  for (const card of ["host", "chassis"]) {
    assert.equal(counters(summary, card).LinkDowns, 0, card);
    assert.equal(stateEntries(summary, card, "active").length - counters(summary, card).Resumes, 1, `${card} came up once`);
  }
  assert.deepEqual(summary.tlps, { sent: 50_000, delivered: 50_000, lost: 0, duplicated: 0, reordered: 0 });
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

test("forged and replayed DATA frames are dropped by the fabric and deliver nothing", async () => {
  const w = world({ durationNs: 40 * MS, traffic: flood(40_000, 2 * MS) });
  const captured: Uint8Array[] = [];
  w.network.link("cable").tap = (frame) => {
    if (captured.length < 50 && frame[payloadOffset(frame) + 1] === FrameKind.Data && frame[6 + 2] === 0x10) captured.push(frame.slice());
  };
  w.scheduler.at(20 * MS, () => {
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
  const summary = await w.run();
  const tunnel = w.fabrics.get("chassis")!.tunnels[0];
  assert.ok(captured.length === 50);
  assert.ok(tunnel.counters[TunnelCounter.RxDuplicates] >= 50, "replays counted as duplicates");
  assert.equal(tunnel.counters[TunnelCounter.RxWrongSession], 10, "forged sessions counted");
  assert.ok(tunnel.counters[TunnelCounter.RxOutsideWindow] >= 10, "sequence numbers outside the window counted");
  assert.deepEqual(summary.tlps, { sent: 50_000, delivered: 50_000, lost: 0, duplicated: 0, reordered: 0 });
});

for (const card of ["chassis", "host"]) {
  test(`a ${card} card that reboots mid-session is detected and the session is rebuilt`, async () => {
    const w = world({ durationNs: 40 * MS, actions: [{ atNs: 10 * MS, kind: "reboot", card }] });
    const before: number[] = [];
    w.scheduler.at(9 * MS, () => void before.push(w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.Session)));
    const summary = await w.run();
    const other = card === "host" ? "chassis" : "host";
    assert.equal(counters(summary, other).PeerReboots, 1, `${other} saw the reboot`);
    const down = stateEntries(summary, other, "down");
    assert.equal(down.length, 1);
    assert.ok(down[0] - 10 * MS < LinkTiming.GraceNs, `${other} went down ${down[0] - 10 * MS} ns after the reboot, without waiting out the grace window`);
    const up = stateEntries(summary, other, "active");
    assert.equal(up.length - counters(summary, other).Resumes, 2, "up, then up again");
    const after = w.fabrics.get("host")!.tunnels[0].readRegister(TunnelReg.Session);
    assert.notEqual(after, before[0], "a new session");
    assert.equal(w.fabrics.get("chassis")!.tunnels[0].readRegister(TunnelReg.Session), after);
  });
}

test("version fallback: a card limited to protocol 1 pairs at protocol 1 with go-back-N and fixed timers", async () => {
  const w = world({ durationNs: 40 * MS, loss: 0.001, chassis: { link: { protocolMax: 1 } }, traffic: flood(20_000, 2 * MS) });
  const summary = await w.run();
  for (const card of ["host", "chassis"]) {
    const tunnel = w.fabrics.get(card)!.tunnels[0];
    assert.equal(stateEntries(summary, card, "active").length, 1, card);
    assert.ok(tunnel.readRegister(TunnelReg.Control) & TunnelControl.GoBackN, `${card} uses go-back-N`);
    assert.equal(tunnel.readRegister(TunnelReg.KeepaliveNs), LinkTiming.KeepaliveNs);
  }
  assert.deepEqual(summary.tlps, { sent: 25_000, delivered: 25_000, lost: 0, duplicated: 0, reordered: 0 });
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
  assert.equal(counters(summary, "host").PeerRejects, failures);
});
