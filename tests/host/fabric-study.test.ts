// The topology study (tools/sim/fabric-study.ts) and what it promises: congestion control on a
// switched fabric keeps the bottlenecks busy, the shares fair and the queues short, where the
// uncontrolled sender drops; leaf-spine files and `iov sim` studies; the mixed study's latencies
// beside bulk NVMe (docs/congestion.md).

import { test } from "node:test";
import assert from "node:assert/strict";
import { runStudy, jainIndex, OVERSUBSCRIBED } from "../../tools/sim/fabric-study.ts";
import { parseStudy } from "../../tools/sim/study-file.ts";
import { runMixed, MIXED_LOAD } from "../../tools/sim/mixed-study.ts";
import { percentile } from "../../tools/sim/summary.ts";
import { ScenarioError } from "../../tools/sim/scenario-check.ts";
import { iov, assertOneLineError } from "./helpers.ts";

test("four tunnels through a marking switch's 10 Gb/s uplink: with congestion control their windows shrink on echoed marks and the queue stays near the threshold, link busy and shares fair; without, the queue is what their credits allow", () => {
  const results = [true, false].map((cc) => runStudy({
    fabric: { leaves: 2, cardsPerLeaf: 4, edgeRateBps: 10e9, edgeLengthM: 10, uplinkRateBps: 10e9, uplinkLengthM: 10, ecn: { kMinBytes: 30_000, kMaxBytes: 30_000 }, portBufferBytes: 1 << 20 },
    tunnels: [0, 1, 2, 3].map((p) => ({ from: [0, p] as [number, number], to: [1, p] as [number, number] })),
    congestionControl: cc, mtu: 9000, payload: 256, queueBytes: 2048, durationNs: 3e6, warmupNs: 1e6, binNs: 500e3,
  }));
  const [cc, nocc] = results;
  assert.ok(cc.marks > 0 && nocc.marks > 0);
  assert.ok(cc.ecnDecreases > 0, "marks echoed and acted on");
  assert.equal(nocc.ecnDecreases, 0);
  const uplink = (r: typeof cc) => r.bottlenecks.find((b) => b.name === "leaf0 to spine")!;
  assert.ok(uplink(cc).queueP99Bytes < 30_000 + 2 * 9000, `queue p99 ${uplink(cc).queueP99Bytes}`);
  assert.ok(uplink(nocc).queueP99Bytes > 2 * uplink(cc).queueP99Bytes, `baseline queue p99 ${uplink(nocc).queueP99Bytes}`);
  assert.ok(uplink(cc).utilisation > 0.95, `utilisation ${uplink(cc).utilisation}`);
  assert.ok(cc.jain > 0.95);
});

test("Jain's fairness index: 1 for equal shares, 1/n when one takes all", () => {
  assert.equal(jainIndex([2, 2, 2, 2]), 1);
  assert.equal(jainIndex([4, 0, 0, 0]), 0.25);
});

test("the oversubscribed fabric with congestion control: uplinks busy, shares fair, no drop, queues under the bound; the uncontrolled baseline drops", () => {
  const config = { ...OVERSUBSCRIBED, durationNs: 8e6, warmupNs: 3e6 };
  const cc = runStudy(config);
  const nocc = runStudy({ ...config, congestionControl: false });
  const uplinks = (r: typeof cc) => r.bottlenecks.filter((b) => b.name.endsWith("to spine"));
  for (const b of uplinks(cc)) assert.ok(b.utilisation > 0.93, `${b.name} ${b.utilisation}`);
  assert.ok(cc.jain > 0.97, `Jain ${cc.jain}`);
  assert.equal(cc.drops, 0);
  assert.equal(cc.retransmits, 0);
  const bound = 64 * 1024 + 16 * 9022;
  for (const b of uplinks(cc)) assert.ok(b.queueP99Bytes < bound, `${b.name} p99 ${b.queueP99Bytes}`);
  assert.ok(nocc.drops > 0 && nocc.retransmits > 0, "the shallow buffer overflows without congestion control");
});

test("a leaf-spine file is checked key by key; the ring and a list of tunnels both work", () => {
  const good = { kind: "leaf-spine", leaves: 2, cardsPerLeaf: 2, traffic: "ring", durationMs: 1, warmupMs: 0.5 };
  const study = parseStudy("f.json", JSON.stringify(good));
  assert.equal(study.kind, "fabric");
  assert.equal(study.kind === "fabric" && study.config.tunnels.length, 4);
  const bad: [unknown, RegExp][] = [
    [{ ...good, leaves: 0 }, /f\.json: leaves must be a number from 1 to 64, not 0/],
    [{ ...good, colour: "red" }, /unknown key 'colour'/],
    [{ ...good, kind: "cards" }, /kind must be "leaf-spine"/],
    [{ ...good, traffic: [{ from: [0, 5], to: [1, 0] }] }, /traffic\[0\]\.from\[1\] \(card port\) must be a number from 0 to 1/],
    [{ ...good, traffic: [{ from: [0, 0], to: [0, 0] }] }, /cannot send to itself/],
    [{ ...good, traffic: Array.from({ length: 9 }, () => ({ from: [0, 0], to: [1, 1] })) }, /is in 9 tunnels; a card has 8/],
    [{ ...good, warmupMs: 2 }, /warmupMs must be shorter than durationMs/],
    [{ ...good, switch: { ecnKBytes: -1 } }, /switch\.ecnKBytes must be a number/],
    [{ ...good, switch: { pfcPriorities: [0] } }, /pfcPriorities needs switch\.bufferBytes/],
    [{ ...good, switch: { bufferBytes: 1 << 20, pfcPriorities: [1.5] } }, /switch\.pfcPriorities\[0\] must be a priority 0\.\.7, not 1\.5/],
    [{ ...good, switch: { bufferBytes: 1 << 20, pfcPriorities: [0], pfcXoffBytes: 1000, pfcXonBytes: 1000 } }, /switch\.pfcXonBytes must be a number from 0 to 999/],
  ];
  for (const [json, message] of bad) assert.throws(() => parseStudy("f.json", JSON.stringify(json)), (e: Error) => e instanceof ScenarioError && message.test(e.message), JSON.stringify(json));
  assert.throws(() => parseStudy("f.json", "{"), /f\.json: not JSON/);
});

test("a lossless leaf-spine: PFC alone pauses the senders and drops nothing where the uncontrolled senders drop; with congestion control the pauses are rare", () => {
  const file = (cc: boolean, pfc: boolean) => parseStudy("f.json", JSON.stringify({
    kind: "leaf-spine", leaves: 2, cardsPerLeaf: 8, edge: { rateGbps: 10 }, uplink: { rateGbps: 20 },
    switch: { bufferBytes: 1 << 20, alpha: 0.25, ecnKBytes: 65536, ...(pfc ? { pfcPriorities: [0], pfcXoffBytes: 16384 } : {}) },
    traffic: Array.from({ length: 8 }, (_, p) => ({ from: [0, p], to: [1, p] })), congestionControl: cc, durationMs: 6, warmupMs: 2,
  }));
  const run = (cc: boolean, pfc: boolean) => {
    const study = file(cc, pfc);
    assert.ok(study.kind === "fabric");
    return runStudy(study.config);
  };
  const [lossless, lossy, both] = [run(false, true), run(false, false), run(true, true)];
  assert.equal(lossless.drops, 0);
  assert.equal(lossless.headroomDrops, 0);
  assert.ok(lossless.pauses > 100, `${lossless.pauses} pauses`);
  assert.ok(lossless.bottlenecks[0].utilisation > 0.95, `uplink ${lossless.bottlenecks[0].utilisation}`);
  assert.ok(lossy.drops > 0 && lossy.pauses === 0, `${lossy.drops} dropped without PFC`);
  assert.equal(both.drops, 0);
  assert.ok(both.pauses < lossless.pauses / 10, `${both.pauses} pauses with congestion control`);
});

test("iov sim runs a leaf-spine file and the built-in studies, and refuses what a study has no use for", () => {
  const out = iov(["sim", "--scenario", "scenarios/leaf-spine.json"]);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /^study leaf-spine: /);
  assert.match(out.stdout, /Jain's fairness index 0\.9\d+/);
  assert.match(out.stdout, /leaf0 to spine +\d+\.\d %/);
  assert.match(out.stdout, /switches: 0 frame\(s\) dropped/);
  const lossless = iov(["sim", "--scenario", "scenarios/leaf-spine-lossless.json"]);
  assert.equal(lossless.status, 0, lossless.stderr);
  assert.match(lossless.stdout, /\npriority flow control on priorities 0: \d+ pause frame\(s\) sent, 0 frame\(s\) past a port's headroom\n/);
  assertOneLineError(iov(["sim", "--scenario", "incast", "--pcap", "x.pcap"]), 1, /--pcap does not apply to the fabric study incast/);
  assert.match(iov(["sim", "--list"]).stdout, /fabric studies[^\n]*\n(.*\n)*oversubscribed +64 tunnels/);
});

test("the mixed study: a register read and a key press beside bulk NVMe wait microseconds with short queues, hundreds without", async () => {
  const options = { ...MIXED_LOAD, reads: 200 };
  const controlled = await runMixed({ ...options, controlled: true });
  const uncontrolled = await runMixed({ ...options, controlled: false });
  assert.ok(percentile(controlled.readNs, 99) < 10_000, `read p99 ${percentile(controlled.readNs, 99)} ns`);
  assert.ok(percentile(uncontrolled.readNs, 99) > 10 * percentile(controlled.readNs, 99));
  const bulk = (r: typeof controlled) => r.nvmeReadGbps + r.nvmeWriteGbps;
  assert.ok(bulk(controlled) > 0.95 * bulk(uncontrolled), `${bulk(controlled)} vs ${bulk(uncontrolled)} Gb/s`);
});
