import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, ETHERTYPE_IOV, fcsValid } from "../../board/ethernet/frame.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { Link, type LinkConfig } from "../../tools/sim/net/link.ts";
import { Recorder } from "../../tools/sim/net/devices.ts";
import { deriveStream, Impairments, type ImpairmentConfig } from "../../tools/sim/net/impairments.ts";

const MAC_A = Uint8Array.of(2, 0, 0, 0, 0, 0xa);
const MAC_B = Uint8Array.of(2, 0, 0, 0, 0, 0xb);

function frame(size: number, seq: number): Uint8Array {
  const payload = new Uint8Array(size - 18);
  new DataView(payload.buffer).setUint32(0, seq);
  return encodeFrame({ dst: MAC_B, src: MAC_A, vlan: null, etherType: ETHERTYPE_IOV, payload });
}

const seqOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(14);

/** Sends `count` frames a→b back to back at t = 0 and returns what b received. */
async function blast(count: number, config: LinkConfig, id = "l", size = 64) {
  const s = new EventScheduler();
  const link = new Link(s, id, { a: { bufferBytes: 1 << 30 }, ...config });
  const b = new Recorder(s);
  link.b.attach(b);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const f = frame(size, i);
    sent.push(f);
    link.a.send(f);
  }
  await s.run(1e12);
  return { s, link, b, sent, seqs: b.frames.map((r) => seqOf(r.frame)) };
}

function lostSeqs(count: number, seqs: number[]): number[] {
  const got = new Set(seqs);
  return [...Array(count).keys()].filter((i) => !got.has(i));
}

/** Lengths of runs of consecutive lost sequence numbers. */
function bursts(lost: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < lost.length; i++) {
    if (i > 0 && lost[i] === lost[i - 1] + 1) out[out.length - 1]++;
    else out.push(1);
  }
  return out;
}

test("Bernoulli loss drops p of 100k frames within 5 standard deviations, and the same seed loses exactly the same frames", async () => {
  const n = 100_000;
  const p = 0.1;
  const first = await blast(n, { seed: 42, aToB: { loss: p } });
  const lost = lostSeqs(n, first.seqs);
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(lost.length - n * p) < 5 * sd, `lost ${lost.length}, expected ${n * p} ± ${5 * sd}`);
  assert.equal(first.link.a.counters.lostFrames, lost.length);
  assert.equal(first.link.a.counters.deliveredFrames, n - lost.length);
  const again = await blast(n, { seed: 42, aToB: { loss: p } });
  assert.deepEqual(lostSeqs(n, again.seqs), lost);
  const other = await blast(n, { seed: 43, aToB: { loss: p } });
  assert.notDeepEqual(lostSeqs(n, other.seqs), lost);
  // Independent losses rarely come in runs: mean run length 1/(1-p).
  const b = bursts(lost);
  assert.ok(Math.abs(lost.length / b.length - 1 / (1 - p)) < 0.05);
});

test("Gilbert–Elliott loss comes in bursts whose mean length is 1/r, at the stationary rate p/(p+r)", async () => {
  const n = 100_000;
  const p = 0.01;
  const r = 0.25;
  const { seqs, link } = await blast(n, { seed: 7, aToB: { gilbertElliott: { p, r } } });
  const lost = lostSeqs(n, seqs);
  const runs = bursts(lost);
  const mean = lost.length / runs.length;
  // Burst length is geometric: sd 3.46 per burst, about 0.11 for the mean of ~960 bursts.
  assert.ok(Math.abs(mean - 1 / r) < 0.5, `mean burst ${mean}, expected ${1 / r}`);
  assert.ok(Math.abs(lost.length / n - p / (p + r)) < 0.01, `loss rate ${lost.length / n}`);
  assert.ok(runs.some((len) => len >= 10), "long bursts happen");
  assert.equal(link.a.counters.lostFrames, lost.length);
});

test("Gilbert–Elliott loss probabilities per state apply: a bad state that loses half its frames halves the burst density", async () => {
  const n = 100_000;
  const { seqs } = await blast(n, { seed: 9, aToB: { gilbertElliott: { p: 0.02, r: 0.1, lossGood: 0.001, lossBad: 0.5 } } });
  const rate = lostSeqs(n, seqs).length / n;
  const expected = (0.1 * 0.001 + 0.02 * 0.5) / 0.12;
  assert.ok(Math.abs(rate - expected) < 0.012, `loss rate ${rate}, expected ${expected}`);
});

test("corruption flips exactly one bit: same length, FCS fails, the sender's bytes untouched", async () => {
  const { b, sent, link } = await blast(500, { seed: 1, aToB: { corruption: 1 } }, "l", 128);
  assert.equal(b.frames.length, 500);
  // Compare each delivered frame with the one sent in the same position.
  for (let i = 0; i < 500; i++) {
    const got = b.frames[i].frame;
    assert.equal(got.length, 128);
    assert.equal(fcsValid(got), false);
    assert.notEqual(got, sent[i], "a corrupted frame is a copy");
    let bits = 0;
    for (let k = 0; k < got.length; k++) for (let x = got[k] ^ sent[i][k]; x; x &= x - 1) bits++;
    assert.equal(bits, 1, `frame ${i}`);
    assert.equal(fcsValid(sent[i]), true);
  }
  assert.equal(link.a.counters.corruptedFrames, 500);
});

test("corruption at probability 0.2 corrupts about a fifth of the frames and leaves the rest intact", async () => {
  const { b, sent, link } = await blast(10_000, { seed: 5, aToB: { corruption: 0.2 } });
  const bad = b.frames.filter((r) => !fcsValid(r.frame)).length;
  assert.equal(bad, link.a.counters.corruptedFrames);
  assert.ok(Math.abs(bad - 2000) < 200, `${bad} corrupted`);
  b.frames.forEach((r, i) => {
    if (fcsValid(r.frame)) assert.equal(r.frame, sent[i]);
  });
});

test("duplication delivers a second copy immediately after the first, sharing its bytes", async () => {
  const all = await blast(100, { seed: 3, aToB: { duplication: 1 } });
  assert.equal(all.b.frames.length, 200);
  for (let i = 0; i < 100; i++) {
    const [x, y] = [all.b.frames[2 * i], all.b.frames[2 * i + 1]];
    assert.equal(x.frame, all.sent[i]);
    assert.equal(y.frame, all.sent[i]);
    assert.equal(x.timeNs, y.timeNs);
  }
  const some = await blast(10_000, { seed: 3, aToB: { duplication: 0.25 } });
  const c = some.link.a.counters;
  assert.equal(some.b.frames.length, 10_000 + c.duplicatedFrames);
  assert.ok(Math.abs(c.duplicatedFrames - 2500) < 5 * Math.sqrt(10_000 * 0.25 * 0.75));
  const distinct = new Set(some.seqs);
  assert.equal(distinct.size, 10_000);
});

test("reordering holds a frame back by exactly the configured delay so later frames overtake it", async () => {
  const n = 1000;
  const plain = await blast(n, {}, "l", 1500);
  const normal = plain.b.frames.map((r) => r.timeNs);
  const { b, link } = await blast(n, { seed: 11, aToB: { reorder: { probability: 0.3, delayNs: 5000 } } }, "l", 1500);
  assert.equal(b.frames.length, n);
  let held = 0;
  for (const r of b.frames) {
    const seq = seqOf(r.frame);
    const extra = r.timeNs - normal[seq];
    assert.ok(extra === 0 || extra === 5000, `frame ${seq} delayed by ${extra}`);
    if (extra) held++;
  }
  assert.equal(held, link.a.counters.reorderedFrames);
  assert.ok(Math.abs(held - 300) < 75, `${held} held`);
  const order = b.frames.map((r) => seqOf(r.frame));
  assert.notDeepEqual(order, [...Array(n).keys()]);
  assert.deepEqual([...order].sort((x, y) => x - y), [...Array(n).keys()], "every frame exactly once");
  // A held frame is overtaken by the ones sent after it within the delay (1216 ns apart).
  const firstHeld = order.findIndex((seq, i) => i > 0 && seq < order[i - 1]);
  assert.ok(firstHeld > 0);
});

test("impairments compose on one link, every frame is accounted for, and each has its own random stream", async () => {
  const n = 20_000;
  const all: ImpairmentConfig = {
    loss: 0.05, gilbertElliott: { p: 0.005, r: 0.3 }, corruption: 0.05, duplication: 0.05, reorder: { probability: 0.05, delayNs: 3000 },
  };
  const mixed = await blast(n, { seed: 99, aToB: all });
  const c = mixed.link.a.counters;
  assert.ok(c.lostFrames > 0 && c.corruptedFrames > 0 && c.duplicatedFrames > 0 && c.reorderedFrames > 0);
  assert.equal(c.sentFrames + c.duplicatedFrames, c.deliveredFrames + c.lostFrames + c.tailDropFrames + c.downDropFrames);
  assert.equal(mixed.b.frames.length, c.deliveredFrames);
  // Loss uses its own streams: adding corruption, duplication and reordering changes nothing about which frames are lost.
  // (Loss is decided in send order, before reordering, so the counts match exactly.)
  const lossOnlyConfig = { loss: 0.05, gilbertElliott: { p: 0.005, r: 0.3 } };
  const lossOnly = await blast(n, { seed: 99, aToB: lossOnlyConfig });
  assert.equal(lossOnly.link.a.counters.lostFrames, c.lostFrames);
  const full = new Impairments(all, 99, "l/a>b");
  const partial = new Impairments(lossOnlyConfig, 99, "l/a>b");
  const sample = frame(64, 0);
  for (let i = 0; i < n; i++) {
    const lost = full.lose();
    assert.equal(partial.lose(), lost, `frame ${i}`);
    if (lost) continue;
    full.corrupt(sample);
    full.duplicate();
    full.holdBack();
  }
  const again = await blast(n, { seed: 99, aToB: all });
  assert.deepEqual(again.b.frames.map((r) => [r.timeNs, r.frame]), mixed.b.frames.map((r) => [r.timeNs, r.frame]));
});

test("random streams are independent per link and per direction, and depend only on the seed and the link's name", async () => {
  const n = 5000;
  const config = (seed: number): LinkConfig => ({ seed, aToB: { loss: 0.1 }, bToA: { loss: 0.1 } });
  const x = lostSeqs(n, (await blast(n, config(1), "x")).seqs);
  const y = lostSeqs(n, (await blast(n, config(1), "y")).seqs);
  assert.notDeepEqual(x, y, "two links with the same seed differ");
  assert.deepEqual(lostSeqs(n, (await blast(n, config(1), "x")).seqs), x, "same seed and name: same losses");
  // The b→a direction of link x differs from a→b.
  const s = new EventScheduler();
  const link = new Link(s, "x", { ...config(1), b: { bufferBytes: 1 << 30 } });
  const a = new Recorder(s);
  link.a.attach(a);
  for (let i = 0; i < n; i++) link.b.send(frame(64, i));
  await s.run(1e12);
  assert.notDeepEqual(lostSeqs(n, a.frames.map((r) => seqOf(r.frame))), x);
  // Derived streams: deterministic, and different for neighbouring seeds and names.
  const draws = (seed: number, id: string) => Array.from({ length: 4 }, ((g) => () => g.next())(deriveStream(seed, id)));
  assert.deepEqual(draws(1, "x/a>b"), draws(1, "x/a>b"));
  assert.notDeepEqual(draws(1, "x/a>b"), draws(2, "x/a>b"));
  assert.notDeepEqual(draws(1, "x/a>b"), draws(1, "x/b>a"));
  assert.notDeepEqual(draws(2 ** 32 + 1, "x/a>b"), draws(1, "x/a>b"), "the high bits of the seed count");
  assert.throws(() => new Impairments({ reorder: { probability: 0.5, delayNs: 0 } }, 0, "z"), /delayNs/);
});

test("link down loses frames in flight and flushes the queue, tells both ends, refuses sends; traffic resumes after up", async () => {
  const s = new EventScheduler();
  // 1500-byte frames at 10 Gb/s: 1216 ns each, 90 ns latency (2 m, 80 ns PHY).
  const link = new Link(s, "l", { lengthM: 2, outages: [{ downAtNs: 3000, upAtNs: 10_000 }] });
  const a = new Recorder(s);
  const b = new Recorder(s);
  link.a.attach(a);
  link.b.attach(b);
  for (let i = 0; i < 5; i++) link.a.send(frame(1500, i));
  link.b.send(frame(1500, 100));
  s.at(2000, () => void link.b.send(frame(1500, 101))); // on the wire at the outage
  const refused: boolean[] = [];
  s.at(5000, () => {
    refused.push(link.a.send(frame(64, 200)), link.a.up, link.a.busy);
  });
  s.at(12_000, () => void link.a.send(frame(1500, 300)));
  await s.run(1e6);
  // Delivered before the outage: frames 0 and 1 (arrive 1306, 2522); frame 2 ends at 3648: lost on the wire.
  assert.deepEqual(b.frames.map((r) => [seqOf(r.frame), r.timeNs]), [[0, 1306], [1, 2522], [300, 12_000 + 1306]]);
  assert.deepEqual(a.frames.map((r) => seqOf(r.frame)), [100]);
  assert.deepEqual(refused, [false, false, false]);
  assert.deepEqual(a.carriers, [{ timeNs: 3000, port: "l.a", up: false }, { timeNs: 10_000, port: "l.a", up: true }]);
  assert.deepEqual(b.carriers, [{ timeNs: 3000, port: "l.b", up: false }, { timeNs: 10_000, port: "l.b", up: true }]);
  const c = link.counters();
  assert.deepEqual([c.aToB.sentFrames, c.aToB.deliveredFrames, c.aToB.downDropFrames], [7, 3, 4]); // 2, 3, 4 lost; 200 refused
  assert.deepEqual([c.bToA.sentFrames, c.bToA.deliveredFrames, c.bToA.downDropFrames], [2, 1, 1]);
  assert.deepEqual(link.history, [{ timeNs: 3000, up: false }, { timeNs: 10_000, up: true }]);
  // The outage cancels the pending transmit-idle notifications: carrier(true) is the signal to resume.
  assert.deepEqual(a.idles.map((i) => i.timeNs), [12_000 + 1216]);
  assert.deepEqual(b.idles.map((i) => i.timeNs), [1216]);
});

test("frames held back by reordering are lost if the link goes down before they arrive", async () => {
  const s = new EventScheduler();
  const link = new Link(s, "l", { aToB: { reorder: { probability: 1, delayNs: 10_000 } }, outages: [{ downAtNs: 5000, upAtNs: 6000 }] });
  const b = new Recorder(s);
  link.b.attach(b);
  link.a.send(frame(64, 0));
  s.at(7000, () => void link.a.send(frame(64, 1)));
  await s.run(1e6);
  assert.deepEqual(b.frames.map((r) => seqOf(r.frame)), [1]);
  assert.equal(link.a.counters.downDropFrames, 1);
  assert.equal(link.a.counters.reorderedFrames, 2);
});
