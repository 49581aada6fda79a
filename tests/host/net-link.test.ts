import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, ETHERTYPE_IOV, fcsValid } from "../../board/ethernet/frame.ts";
import type { PortDevice } from "../../board/ethernet/port.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { Link, LINK_DEFAULTS, type LinkConfig } from "../../tools/sim/net/link.ts";
import { Recorder } from "../../tools/sim/net/devices.ts";

const A_MAC = Uint8Array.of(2, 0, 0, 0, 0, 0xa);
const B_MAC = Uint8Array.of(2, 0, 0, 0, 0, 0xb);

/** A frame of exactly `size` bytes (FCS included) carrying `seq` in its first payload bytes. */
function frame(size: number, seq = 0): Uint8Array {
  const payload = new Uint8Array(size - 18);
  new DataView(payload.buffer).setUint32(0, seq);
  for (let i = 4; i < payload.length; i++) payload[i] = (seq * 31 + i) & 0xff;
  const out = encodeFrame({ dst: B_MAC, src: A_MAC, vlan: null, etherType: ETHERTYPE_IOV, payload });
  assert.equal(out.length, size);
  return out;
}

const seqOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(14);

function setup(config: LinkConfig = {}) {
  const s = new EventScheduler();
  const link = new Link(s, "l", config);
  const a = new Recorder(s);
  const b = new Recorder(s);
  link.a.attach(a);
  link.b.attach(b);
  return { s, link, a, b };
}

test("a lone frame arrives after serialisation + PHY latency + 5 ns/m propagation, exact to the ns at 1, 10, 25 and 40 Gb/s", async () => {
  // 100-byte frame + 20 bytes of preamble/SFD/IFG = 960 bits; 10 m of cable = 50 ns; PHY 80 ns.
  const cases: [number, number, number][] = [
    [1e9, 100, 960 + 130],
    [10e9, 100, 96 + 130],
    [25e9, 100, 169], // 38.4 + 130 = 168.4, rounded up
    [40e9, 100, 24 + 130],
    [25e9, 64, 157], // 84 bytes = 672 bits: 26.88 + 130 = 156.88
    [40e9, 64, 147], // 16.8 + 130 = 146.8
    [10e9, 1518, 1361], // 1538 bytes = 12304 bits = 1230.4 ns: 1360.4, rounded up
  ];
  for (const [rate, size, transit] of cases) {
    const { s, link, b } = setup({ rateBps: rate, lengthM: 10, phyLatencyNs: 80 });
    await s.run(1000);
    assert.equal(link.a.send(frame(size)), true);
    await s.run(1_000_000);
    assert.deepEqual(b.frames.map((r) => r.timeNs), [1000 + transit], `${rate / 1e9} Gb/s, ${size} bytes`);
    assert.equal(link.transitNs(size), transit);
  }
});

test("the defaults are 10 Gb/s, 3 m, 80 ns of PHY and a 128 KiB egress buffer", async () => {
  const { s, link, b } = setup();
  assert.deepEqual([link.rateBps, link.lengthM, link.phyLatencyNs, link.a.bufferBytes], [10e9, 3, 80, 131072]);
  assert.deepEqual(LINK_DEFAULTS, { rateBps: 10e9, lengthM: 3, phyLatencyNs: 80, bufferBytes: 131072 });
  link.a.send(frame(64));
  await s.run(1e6);
  assert.equal(b.frames[0].timeNs, 68 + 80 + 15); // 84 bytes at 10 Gb/s = 67.2 ns
});

test("back-to-back frames queue behind each other and arrive spaced by their serialisation time", async () => {
  const { s, link, b } = setup({ rateBps: 10e9, lengthM: 2, phyLatencyNs: 80 });
  for (let i = 0; i < 10; i++) assert.equal(link.a.send(frame(1500, i)), true);
  await s.run(1e6);
  // 1520 bytes at 10 Gb/s = 1216 ns each; latency 90 ns.
  assert.deepEqual(b.frames.map((r) => r.timeNs), Array.from({ length: 10 }, (_, k) => 1216 * (k + 1) + 90));
  assert.deepEqual(b.frames.map((r) => seqOf(r.frame)), [...Array(10).keys()]);
});

test("fractional serialisation times accumulate exactly: five 64-byte frames at 40 Gb/s take 84 ns, not 85", async () => {
  const { s, link, b } = setup({ rateBps: 40e9, lengthM: 0, phyLatencyNs: 0 });
  for (let i = 0; i < 5; i++) link.a.send(frame(64, i));
  await s.run(1e6);
  // Exact ends: 16.8, 33.6, 50.4, 67.2, 84.0; each event on the next whole ns.
  assert.deepEqual(b.frames.map((r) => r.timeNs), [17, 34, 51, 68, 84]);
});

test("a frame sent while the wire is busy starts when the previous one ends, not when it was sent", async () => {
  const { s, link, b } = setup({ rateBps: 1e9, lengthM: 0, phyLatencyNs: 0 });
  link.a.send(frame(100, 0)); // 960 ns on the wire
  s.at(500, () => void link.a.send(frame(100, 1)));
  s.at(5000, () => void link.a.send(frame(100, 2))); // idle again by then
  await s.run(1e6);
  assert.deepEqual(b.frames.map((r) => r.timeNs), [960, 1920, 5960]);
});

test("tail drop: frames that do not fit the egress buffer are refused and counted exactly", async () => {
  const { s, link, b } = setup({ rateBps: 10e9, a: { bufferBytes: 3000 } });
  const results = Array.from({ length: 10 }, (_, i) => link.a.send(frame(1000, i)));
  // The first goes straight onto the wire; three more fill the 3000-byte buffer.
  assert.deepEqual(results, [true, true, true, true, false, false, false, false, false, false]);
  assert.equal(link.a.queuedBytes, 3000);
  assert.equal(link.a.busy, true);
  const c = link.a.counters;
  assert.deepEqual([c.sentFrames, c.sentBytes, c.tailDropFrames, c.tailDropBytes, c.peakQueuedBytes], [10, 10000, 6, 6000, 3000]);
  // 1020 bytes = 816 ns: at 816 the second frame starts, freeing room for one more.
  await s.run(815);
  assert.equal(link.a.send(frame(1000, 10)), false);
  await s.run(816);
  assert.equal(link.a.queuedBytes, 2000);
  assert.equal(link.a.send(frame(1000, 11)), true);
  await s.run(1e6);
  assert.deepEqual(b.frames.map((r) => seqOf(r.frame)), [0, 1, 2, 3, 11]);
  assert.equal(link.a.counters.tailDropFrames, 7);
  assert.equal(link.a.counters.deliveredFrames, 5);
  assert.equal(link.a.queuedBytes, 0);
  assert.equal(link.a.busy, false);
});

test("transmitIdle fires once, when the last queued frame has left the wire, and again after the next burst", async () => {
  const { s, link, a, b } = setup({ rateBps: 10e9, lengthM: 0, phyLatencyNs: 0 });
  for (let i = 0; i < 3; i++) link.a.send(frame(1500, i));
  s.at(1000, () => void link.a.send(frame(1500, 3))); // joins the queue mid-burst
  await s.run(100_000);
  assert.deepEqual(a.idles, [{ timeNs: 4 * 1216, port: "l.a" }]);
  assert.deepEqual(b.idles, [], "the receiving end sent nothing and is never told");
  link.a.send(frame(64));
  await s.run(200_000);
  assert.deepEqual(a.idles.map((i) => i.timeNs), [4 * 1216, 100_000 + 68]);
});

test("a device that sends one frame per transmitIdle never overflows even a zero-byte buffer", async () => {
  const { s, link, a, b } = setup({ rateBps: 25e9, a: { bufferBytes: 0 } });
  let next = 0;
  const one = () => {
    if (next < 1000) assert.equal(link.a.send(frame(256, next++)), true);
  };
  a.onIdle = one;
  one();
  await s.run(1e9);
  assert.equal(b.frames.length, 1000);
  assert.equal(link.a.counters.tailDropFrames, 0);
  // 276 bytes at 25 Gb/s = 88.32 ns; the device hears of each end on the next whole ns (89).
  assert.equal(a.idles.length, 1000);
  assert.equal(a.idles.at(-1)!.timeNs, 89_000);
  // Sending into a busy port with no buffer is a tail drop.
  link.a.send(frame(64));
  assert.equal(link.a.send(frame(64)), false);
});

test("without impairments every frame is delivered byte-identical to what was sent, in order, both ways at once", async () => {
  const { s, link, a, b } = setup({ rateBps: 40e9, a: { bufferBytes: 1 << 24 }, b: { bufferBytes: 1 << 24 } });
  const sentA: Uint8Array[] = [];
  const sentB: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const fa = frame(64 + ((i * 97) % 1455), i);
    const fb = frame(64 + ((i * 53) % 9000), 1000 + i);
    sentA.push(fa.slice());
    sentB.push(fb.slice());
    link.a.send(fa);
    link.b.send(fb);
  }
  await s.run(1e9);
  assert.deepEqual(b.frames.map((r) => r.frame), sentA);
  assert.deepEqual(a.frames.map((r) => r.frame), sentB);
  assert.ok(b.frames.every((r) => fcsValid(r.frame) && r.port === "l.b"));
  assert.ok(a.frames.every((r) => r.port === "l.a"));
  const c = link.counters();
  assert.equal(c.aToB.deliveredFrames, 200);
  assert.equal(c.aToB.deliveredBytes, sentA.reduce((n, f) => n + f.length, 0));
  assert.equal(c.bToA.deliveredBytes, sentB.reduce((n, f) => n + f.length, 0));
});

test("a port with nothing attached swallows frames; the link still counts them delivered", async () => {
  const s = new EventScheduler();
  const link = new Link(s, "bare");
  const seen: number[] = [];
  link.tap = (f, to) => void seen.push(f.length, to === link.b ? 1 : 0);
  link.a.send(frame(64));
  await s.run(1e6);
  assert.deepEqual(seen, [64, 1]);
  assert.equal(link.a.counters.deliveredFrames, 1);
});

test("invalid link parameters are refused with a clear error", () => {
  const s = new EventScheduler();
  assert.throws(() => new Link(s, "x", { rateBps: 3e9 }), /picoseconds per bit/);
  assert.throws(() => new Link(s, "x", { lengthM: -1 }), /lengthM/);
  assert.throws(() => new Link(s, "x", { a: { bufferBytes: 1.5 } }), /bufferBytes/);
  assert.throws(() => new Link(s, "x", { aToB: { loss: 2 } }), /loss must be a probability/);
  assert.throws(() => new Link(s, "x", { outages: [{ downAtNs: 10, upAtNs: 5 }] }), /up time/);
  const device: PortDevice = { receive() {} };
  assert.doesNotThrow(() => new Link(s, "x", { rateBps: 100e9 }).a.attach(device));
});
