// The tunnel engine end to end: two fabrics, one impaired cable, mixed TLP traffic both
// ways. Every TLP must arrive exactly once, in order, under the PCIe ordering rules.

import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { tunnelPair, programTunnel, MAC_A, MAC_B, type PairOptions, type PairSide } from "../../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker, streamIndex, type TrafficMix } from "../../tools/sim/traffic.ts";
import { TunnelCounter, TunnelReg, TunnelStatus, TunnelControl, FabricEventKind, TUNNEL_BASE, CardReg } from "../../board/map/registers.ts";
import { TlpClass, memoryWrite } from "../../board/pcie/tlp.ts";
import { encodeFrame, decodeFrame, ETHERTYPE_IOV, writeFcs, payloadOffset, type EthernetFrame } from "../../board/ethernet/frame.ts";
import { readHeader, readAckBody, FrameKind, TUNNEL_HEADER, RECORD_HEADER, RECORD_SIZE_MASK, writeHeader } from "../../board/tunnel/wire.ts";
import type { ImpairmentConfig } from "../../tools/sim/net/impairments.ts";

const MIXED: TrafficMix = { posted: 6, nonPosted: 2, completion: 2 };

interface Run {
  a: PairSide;
  b: PairSide;
  toB: DeliveryChecker;
  toA: DeliveryChecker;
  minCredit: number;
}

/** Sends `count` TLPs each way with the given impairments on both directions, then runs to quiescence. */
async function exchange(impair: ImpairmentConfig, options: PairOptions & { count?: number; seed?: number; mix?: TrafficMix } = {}): Promise<Run> {
  const scheduler = new EventScheduler();
  const seed = options.seed ?? 1;
  const { a, b } = tunnelPair(scheduler, { ...options, link: { seed, aToB: impair, bToA: impair, ...options.link } });
  const count = options.count ?? 3000;
  const streams = [new TlpStream(xoroshiro128plus(seed * 2), options.mix ?? MIXED, 128), new TlpStream(xoroshiro128plus(seed * 2 + 1), options.mix ?? MIXED, 128)];
  const toB = new DeliveryChecker(streams[0]);
  const toA = new DeliveryChecker(streams[1]);
  let minCredit = Infinity;
  const watch = (side: PairSide) => {
    const { limit, consumed } = side.tunnel.creditState();
    for (let i = 0; i < 6; i++) minCredit = Math.min(minCredit, ((limit[i] - consumed[i]) << 16) >> 16);
  };
  b.onTlp = (tlp, cls, tunnel) => {
    toB.deliver(tlp);
    tunnel.release(cls, tlp);
  };
  a.onTlp = (tlp, cls, tunnel) => {
    toA.deliver(tlp);
    tunnel.release(cls, tlp);
  };
  const feed = () => {
    for (const [side, stream] of [[a, streams[0]], [b, streams[1]]] as const) {
      while (side.tunnel.queuedTlps < 32 && stream.count < count) assert.ok(side.tunnel.submit(stream.next()));
      watch(side);
    }
    if (streams[0].count < count || streams[1].count < count || toB.received.length < count || toA.received.length < count) {
      scheduler.at(scheduler.now + 2_000, feed);
    }
  };
  feed();
  await scheduler.run(2e9);
  return { a, b, toB, toA, minCredit };
}

function assertExactlyOnceInOrder(run: Run, count = 3000): void {
  assert.deepEqual(run.toB.errors, []);
  assert.deepEqual(run.toA.errors, []);
  assert.equal(run.toB.received.length, count, "every TLP a→b delivered");
  assert.equal(run.toA.received.length, count, "every TLP b→a delivered");
  assert.ok(run.minCredit >= 0, `credits never negative (min ${run.minCredit})`);
}

const impairments: [string, ImpairmentConfig][] = [
  ["no impairment", {}],
  ["5 % random loss", { loss: 0.05 }],
  ["bursty loss (Gilbert–Elliott)", { gilbertElliott: { p: 0.05, r: 0.3, lossGood: 0, lossBad: 0.8 } }],
  ["reordering", { reorder: { probability: 0.05, delayNs: 20_000 } }],
  ["duplication", { duplication: 0.05 }],
  ["corruption", { corruption: 0.05 }],
  ["everything at once", { loss: 0.02, gilbertElliott: { p: 0.005, r: 0.5, lossGood: 0, lossBad: 0.5 }, reorder: { probability: 0.02, delayNs: 10_000 }, duplication: 0.02, corruption: 0.02 }],
];

for (const [name, impair] of impairments) {
  for (const goBackN of [false, true]) {
    test(`${name}, ${goBackN ? "go-back-N" : "selective repeat"}: mixed traffic both ways arrives exactly once, in order`, async () => {
      const run = await exchange(impair, { goBackN });
      assertExactlyOnceInOrder(run);
      if (impair.loss || impair.gilbertElliott) assert.ok(run.a.tunnel.counters[TunnelCounter.Retransmits] > 0, "losses were repaired");
      if (impair.corruption) assert.ok(run.a.fabric.mac.counters.rxFcsErrors + run.b.fabric.mac.counters.rxFcsErrors > 0, "corrupt frames dropped by the MAC");
      if (impair.duplication) assert.ok(run.a.tunnel.counters[TunnelCounter.RxDuplicates] + run.b.tunnel.counters[TunnelCounter.RxDuplicates] > 0);
    });
  }
}

test("the same seed gives the same run, counter for counter", async () => {
  const impair = { loss: 0.03, reorder: { probability: 0.03, delayNs: 5_000 } };
  const one = await exchange(impair, { seed: 7 });
  const two = await exchange(impair, { seed: 7 });
  assert.deepEqual(one.a.tunnel.counters, two.a.tunnel.counters);
  assert.deepEqual(one.b.tunnel.counters, two.b.tunnel.counters);
  assert.deepEqual(one.toB.received, two.toB.received);
});

test("at MTU 9000 a frame carries many TLPs, and a lone TLP leaves at once", async () => {
  const run = await exchange({}, { mtu: 9000, mix: { posted: 1, nonPosted: 0, completion: 0 }, count: 2000 });
  assertExactlyOnceInOrder(run, 2000);
  const c = run.a.tunnel.counters;
  assert.ok(c[TunnelCounter.TxTlps] / c[TunnelCounter.TxDataFrames] > 8, `${c[TunnelCounter.TxTlps]} TLPs in ${c[TunnelCounter.TxDataFrames]} frames`);

  const scheduler = new EventScheduler();
  const { a, b, link } = tunnelPair(scheduler);
  let arrived = -1;
  b.onTlp = (tlp, cls, tunnel) => {
    arrived = scheduler.now;
    tunnel.release(cls, tlp);
  };
  await scheduler.run(50_000); // credits exchanged, link idle
  const sentAt = scheduler.now;
  a.tunnel.submit(memoryWrite(1, 1, 0x1000, new Uint8Array(4)));
  await scheduler.run(sentAt + 50_000);
  // 14 + 16 + 2 + 16 + 4 = 52 bytes, padded to 64, plus 20 of preamble and gap.
  assert.equal(arrived - sentAt, link.transitNs(64), "no waiting for more TLPs");
});

test("a session's end reports every TLP it throws away, once, by slot: queued ones at a flush, sent and unacknowledged ones at a reset", async () => {
  const scheduler = new EventScheduler();
  const { a, b, link } = tunnelPair(scheduler);
  const stream = new TlpStream(xoroshiro128plus(9), { posted: 1, nonPosted: 0, completion: 0 }, 64);
  for (let i = 0; i < 20; i++) a.tunnel.submit(stream.next(), 5);
  await scheduler.run(1e6);
  assert.equal(a.discarded.length, 0, "nothing thrown away while the session runs");
  link.hold("cut", true);
  for (let i = 0; i < 30; i++) a.tunnel.submit(stream.next(), i % 2 ? 5 : 6);
  await scheduler.run(2e6);
  const waiting = a.tunnel.tlpsToSend(5).length + a.tunnel.tlpsToSend(6).length;
  assert.equal(waiting, 30, "the cut holds the 30 in the tunnel");
  assert.ok(a.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, TunnelControl.Reset | TunnelControl.Flush), "the firmware ends the session");
  assert.equal(a.discarded.length, 30, "each TLP reported once, whether queued or sent and unacknowledged");
  assert.deepEqual(new Set(a.discarded.map((d) => streamIndex(d.tlp))).size, 30);
  assert.equal(a.discarded.filter((d) => d.slot === 5).length, 15);
  assert.ok(a.discarded.every((d) => !d.received));
  assert.equal(a.tunnel.tlpsToSend(5).length + a.tunnel.tlpsToSend(6).length, 0);
  assert.equal(b.discarded.length, 0);
});

test("posted writes keep flowing while non-posted requests wait for credits", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler, { registers: { [TunnelReg.CreditNph]: 2 } });
  const held: [Uint8Array, TlpClass][] = [];
  const got: TlpClass[] = [];
  b.onTlp = (tlp, cls, tunnel) => {
    got.push(cls);
    if (cls === TlpClass.NonPosted) held.push([tlp, cls]); // b's PCIe side does not take reads
    else tunnel.release(cls, tlp);
  };
  const stream = new TlpStream(xoroshiro128plus(3), { posted: 0, nonPosted: 1, completion: 0 }, 64);
  for (let i = 0; i < 5; i++) a.tunnel.submit(stream.next());
  for (let i = 0; i < 50; i++) a.tunnel.submit(memoryWrite(1, i, 0x2000 + 64 * i, new Uint8Array(64)));
  await scheduler.run(1e6);
  assert.equal(got.filter((c) => c === TlpClass.NonPosted).length, 2, "only the credited reads");
  assert.equal(got.filter((c) => c === TlpClass.Posted).length, 50, "all writes passed the stuck reads");
  assert.equal(a.tunnel.queuedTlps, 3);
  assert.ok(a.tunnel.counters[TunnelCounter.CreditStalls] >= 1);
  b.onTlp = (tlp, cls, tunnel) => {
    got.push(cls);
    tunnel.release(cls, tlp);
  };
  for (const [tlp, cls] of held) b.tunnel.release(cls, tlp);
  await scheduler.run(2e6);
  assert.equal(got.filter((c) => c === TlpClass.NonPosted).length, 5, "released credits let the rest through");
});

test("a non-posted request never passes an older posted write, even when it has credits and the write has none", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler, { registers: { [TunnelReg.CreditPh]: 1 } });
  const got: TlpClass[] = [];
  const held: [Uint8Array, TlpClass][] = [];
  b.onTlp = (tlp, cls) => {
    got.push(cls);
    held.push([tlp, cls]);
  };
  await scheduler.run(20_000);
  a.tunnel.submit(memoryWrite(1, 1, 0x1000, new Uint8Array(16)));
  a.tunnel.submit(memoryWrite(1, 2, 0x1010, new Uint8Array(16)));
  const read = new TlpStream(xoroshiro128plus(1), { posted: 0, nonPosted: 1, completion: 0 }, 4).next();
  a.tunnel.submit(read);
  await scheduler.run(200_000);
  assert.deepEqual(got, [TlpClass.Posted], "the second write waits for a credit, and the read waits behind it");
  for (const [tlp, cls] of held.splice(0)) b.tunnel.release(cls, tlp);
  await scheduler.run(400_000);
  assert.deepEqual(got, [TlpClass.Posted, TlpClass.Posted, TlpClass.NonPosted]);
});

test("frames on the wire decode back to what was sent", async () => {
  const scheduler = new EventScheduler();
  const { a, b, link } = tunnelPair(scheduler, { registers: { [TunnelReg.Vlan]: (5 << 13) | 42 } });
  const seen: Uint8Array[] = [];
  link.tap = (frame) => seen.push(frame.slice());
  const sent = [memoryWrite(0x100, 7, 2 ** 33, Uint8Array.from({ length: 32 }, (_, i) => i)), memoryWrite(0x100, 8, 0x4000, new Uint8Array(8).fill(9))];
  for (const tlp of sent) a.tunnel.submit(tlp);
  await scheduler.run(100_000);
  const kinds = new Set<number>();
  const records: Uint8Array[] = [];
  for (const bytes of seen) {
    const frame = decodeFrame(bytes, 9000) as EthernetFrame;
    assert.equal(typeof frame, "object", "FCS and size check out");
    assert.equal(frame.etherType, ETHERTYPE_IOV);
    assert.deepEqual(frame.vlan, { pcp: 5, dei: 0, vid: 42 });
    const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, frame.payload.length);
    const header = readHeader(view, 0, frame.payload.length);
    assert.ok(!("malformed" in header));
    assert.equal(header.session, 0x5e55_1011);
    kinds.add(header.kind);
    if (header.kind === FrameKind.Data) {
      for (let p = TUNNEL_HEADER; p < TUNNEL_HEADER + header.length; ) {
        const size = view.getUint16(p) & RECORD_SIZE_MASK;
        records.push(frame.payload.slice(p + RECORD_HEADER, p + RECORD_HEADER + size));
        p += RECORD_HEADER + size;
      }
    } else {
      const body = readAckBody(view, TUNNEL_HEADER, header.length);
      assert.ok(!("malformed" in body), "ACK/KEEPALIVE body decodes");
    }
  }
  assert.deepEqual(records, sent);
  assert.ok(kinds.has(FrameKind.Keepalive) && kinds.has(FrameKind.Data));
  assert.equal(b.tunnel.counters[TunnelCounter.RxTlps], 2);
});

/** A frame from A to B with a DATA header, the given tunnel fields and one TLP record. */
function rogueFrame(change: { session?: number; version?: number; kind?: number; length?: number; record?: number; etherType?: number } = {}): Uint8Array {
  const tlp = memoryWrite(1, 1, 0x1000, new Uint8Array(16));
  const payload = new Uint8Array(TUNNEL_HEADER + RECORD_HEADER + tlp.length);
  const view = new DataView(payload.buffer);
  writeHeader(view, 0, FrameKind.Data, change.length ?? RECORD_HEADER + tlp.length, change.session ?? 0x5e55_1011, 0, 0);
  if (change.version !== undefined) payload[0] = change.version;
  if (change.kind !== undefined) payload[1] = change.kind;
  view.setUint16(TUNNEL_HEADER, change.record ?? tlp.length);
  payload.set(tlp, TUNNEL_HEADER + RECORD_HEADER);
  return encodeFrame({ dst: MAC_B, src: MAC_A, vlan: null, etherType: change.etherType ?? ETHERTYPE_IOV, payload });
}

test("malformed frames are dropped and counted, and never disturb the session", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler);
  const delivered: Uint8Array[] = [];
  b.onTlp = (tlp, cls, tunnel) => {
    delivered.push(tlp.slice());
    tunnel.release(cls, tlp);
  };
  await scheduler.run(20_000);
  const mac = b.fabric.mac;
  const inject = (frame: Uint8Array) => mac.receive(frame);
  const good = rogueFrame();
  const badFcs = good.slice();
  badFcs[20] ^= 1;
  inject(good.subarray(0, 40)); // runt
  inject(new Uint8Array(9100)); // oversize
  inject(badFcs);
  inject(rogueFrame({ etherType: 0x0800 }));
  const stranger = rogueFrame();
  stranger[0] = 0x02; stranger[5] = 0x77; // another card's address
  writeFcs(stranger);
  inject(stranger);
  inject(rogueFrame({ session: 0xbad }));
  inject(rogueFrame({ version: 9 }));
  inject(rogueFrame({ kind: 0x42 }));
  inject(rogueFrame({ length: 2000 }));
  inject(rogueFrame({ record: 12 })); // record shorter than the TLP's own header says
  inject(rogueFrame({ length: 0 }));
  const c = mac.counters;
  assert.deepEqual([c.rxRunts, c.rxOversize, c.rxFcsErrors, c.rxOtherEtherType, c.rxNotForUs], [1, 1, 1, 1, 1]);
  assert.equal(b.tunnel.counters[TunnelCounter.RxWrongSession], 1);
  assert.equal(b.tunnel.counters[TunnelCounter.RxMalformed], 5);
  assert.equal(delivered.length, 0);
  // The session goes on untouched.
  const tlp = memoryWrite(1, 3, 0x3000, new Uint8Array(8).fill(3));
  a.tunnel.submit(tlp);
  await scheduler.run(100_000);
  assert.deepEqual(delivered, [tlp]);
});

test("a data frame far outside the sequence window is dropped and counted", async () => {
  const scheduler = new EventScheduler();
  const { b } = tunnelPair(scheduler);
  await scheduler.run(20_000);
  const frame = rogueFrame();
  const at = payloadOffset(frame);
  new DataView(frame.buffer).setUint32(at + 8, 1 << 20); // seq
  writeFcs(frame);
  b.fabric.mac.receive(frame);
  assert.equal(b.tunnel.counters[TunnelCounter.RxOutsideWindow], 1);
  assert.equal(b.tunnel.counters[TunnelCounter.RxTlps], 0);
});

test("registers refuse read-only writes and out-of-range values, count them and tell the firmware", () => {
  const scheduler = new EventScheduler();
  const { a } = tunnelPair(scheduler);
  const f = a.fabric;
  const t = (reg: TunnelReg) => TUNNEL_BASE + reg;
  const refused: [number, number][] = [
    [t(TunnelReg.Status), 1], [t(TunnelReg.RttNs), 1], [t(TunnelReg.Mtu), 100], [t(TunnelReg.Mtu), 9001],
    [t(TunnelReg.MaxPayload), 300], [t(TunnelReg.AckFrames), 0], [t(TunnelReg.RtoNs), 10], [t(TunnelReg.Vlan), 0xfff],
    [t(TunnelReg.CountTxFrames), 5], [CardReg.BoardId, 1], [0x900, 1], [t(TunnelReg.Control), 0x80],
  ];
  for (const [address, value] of refused) assert.equal(f.writeRegister(address, value), false, `0x${address.toString(16)} <- ${value}`);
  assert.equal(f.readRegister(CardReg.RegErrors), refused.length);
  assert.deepEqual(a.events.filter((e) => e.kind === FabricEventKind.RegisterRejected).map((e) => e.arg), refused.map(([address]) => address));
  assert.equal(f.readRegister(t(TunnelReg.Mtu)), 1500, "a refused write leaves the register as it was");
  assert.ok(f.writeRegister(CardReg.Scratch, 0xcafe));
  assert.equal(f.readRegister(CardReg.Scratch), 0xcafe);
  assert.equal(f.readRegister(CardReg.Tunnels), 1);
});

test("enable is refused when a largest TLP would not fit the MTU", () => {
  const scheduler = new EventScheduler();
  const { a } = tunnelPair(scheduler);
  const t = (reg: TunnelReg) => TUNNEL_BASE + reg;
  assert.ok(a.fabric.writeRegister(t(TunnelReg.Control), 0));
  assert.ok(a.fabric.writeRegister(t(TunnelReg.MaxPayload), 4096));
  assert.equal(a.fabric.writeRegister(t(TunnelReg.Control), TunnelControl.Enable), false);
  assert.ok(a.fabric.writeRegister(t(TunnelReg.Mtu), 9000));
  assert.ok(a.fabric.writeRegister(t(TunnelReg.Control), TunnelControl.Enable));
});

test("an idle tunnel sends keepalives; a silent peer raises PeerSilent, and PeerHeard when it returns", async () => {
  const scheduler = new EventScheduler();
  const { a, link } = tunnelPair(scheduler, { link: { outages: [{ downAtNs: 1_000_000, upAtNs: 4_000_000 }] } });
  await scheduler.run(900_000);
  assert.ok(a.tunnel.counters[TunnelCounter.TxKeepalives] >= 8, `${a.tunnel.counters[TunnelCounter.TxKeepalives]} keepalives in 0.9 ms`);
  await scheduler.run(3_000_000);
  const silent = a.events.find((e) => e.kind === FabricEventKind.PeerSilent);
  assert.ok(silent, "PeerSilent raised");
  assert.ok(silent.timeNs <= 1_000_000 + 1_000_000 + 1_000, `within SilenceNs of the last frame (at ${silent.timeNs})`);
  assert.ok(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.Status) & TunnelStatus.Silent);
  await scheduler.run(5_000_000);
  assert.ok(a.events.some((e) => e.kind === FabricEventKind.PeerHeard && e.timeNs >= 4_000_000));
  assert.equal(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.Status) & TunnelStatus.Silent, 0);
  assert.ok(link.up);
});

test("a peer that stops answering exhausts the retries, and the held TLPs arrive once it is back", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler);
  const delivered: number[] = [];
  b.onTlp = (tlp, cls, tunnel) => {
    delivered.push(tlp[6]);
    tunnel.release(cls, tlp);
  };
  const control = (side: PairSide, value: number) => assert.ok(side.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, value));
  await scheduler.run(40_000);
  for (let i = 0; i < 10; i++) a.tunnel.submit(memoryWrite(1, i, 0x1000 * (i + 1), new Uint8Array(64)));
  await scheduler.run(60_000);
  assert.equal(delivered.length, 10);
  control(b, 0); // the peer stops taking frames (hung or rebooting), keeping its session
  const dropped = b.tunnel.counters[TunnelCounter.RxWhileDisabled];
  for (let i = 10; i < 20; i++) a.tunnel.submit(memoryWrite(1, i, 0x1000 * (i + 1), new Uint8Array(64)));
  await scheduler.run(29_000_000);
  const timeouts = a.events.filter((e) => e.kind === FabricEventKind.RetransmitTimeout);
  assert.deepEqual(timeouts.map((e) => e.arg), [1, 2, 3, 4, 5, 6, 7, 8]);
  // 200 µs doubling to 1.6 ms: the eighth timeout comes 9.4 ms after the frames left.
  assert.ok(Math.abs(timeouts[7].timeNs - 60_000 - 9_400_000) < 20_000, `eighth timeout at ${timeouts[7].timeNs}`);
  assert.ok(a.events.some((e) => e.kind === FabricEventKind.RetryLimit && e.arg === 8));
  assert.ok(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.Status) & TunnelStatus.RetryExhausted);
  assert.ok(b.tunnel.counters[TunnelCounter.RxWhileDisabled] > dropped, "the paused peer counts what it dropped");
  control(b, TunnelControl.Enable);
  control(a, 0); // the firmware resumes the same session: Enable off and on again
  control(a, TunnelControl.Enable);
  await scheduler.run(31_000_000);
  assert.deepEqual(delivered, Array.from({ length: 20 }, (_, i) => i), "nothing lost, nothing twice, in order");
  assert.equal(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.Status) & TunnelStatus.RetryExhausted, 0);
});

test("a counter snapshot lands in the Count registers and raises CountersReady", async () => {
  const scheduler = new EventScheduler();
  const { a } = tunnelPair(scheduler);
  await scheduler.run(250_000);
  assert.ok(a.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Snapshot, 1));
  assert.ok(a.events.some((e) => e.kind === FabricEventKind.CountersReady));
  for (let i = 0; i < TunnelCounter.Count; i++) {
    assert.equal(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.CountTxFrames + 4 * i), a.tunnel.counters[i], TunnelCounter[i]);
  }
  assert.ok(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.RttNs) === 0, "no data frame yet, so no round-trip sample");
});

test("the round-trip sample reflects the cable", async () => {
  const scheduler = new EventScheduler();
  const { a, b, link } = tunnelPair(scheduler, { link: { lengthM: 2000 } });
  b.onTlp = (tlp, cls, tunnel) => tunnel.release(cls, tlp);
  await scheduler.run(100_000);
  a.tunnel.submit(memoryWrite(1, 1, 0x1000, new Uint8Array(4)));
  await scheduler.run(200_000);
  const rtt = a.fabric.readRegister(TUNNEL_BASE + TunnelReg.RttNs);
  assert.ok(rtt >= 2 * link.transitNs(64) && rtt <= 2 * link.transitNs(64) + 5_000, `${rtt} ns for ${link.transitNs(64)} ns each way`);
});

test("RttChanged reports the first sample and then only moves of more than 1/8, at most once per RttReportNs", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler, { link: { lengthM: 100 } });
  b.onTlp = (tlp, cls, tunnel) => tunnel.release(cls, tlp);
  const reports = () => a.events.filter((e) => e.kind === FabricEventKind.RttChanged);
  assert.equal(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.RttReportNs), 10_000_000, "10 ms at reset");
  assert.ok(a.fabric.writeRegister(TUNNEL_BASE + TunnelReg.RttReportNs, 1_000_000));
  await scheduler.run(100_000);
  // A write every 10 µs for 5 ms over a steady cable: one report, the first sample.
  for (let t = 100_000; t < 5_100_000; t += 10_000) scheduler.at(t, () => void a.tunnel.submit(memoryWrite(1, 1, 0x1000, new Uint8Array(4))));
  await scheduler.run(5_200_000);
  assert.equal(reports().length, 1, "a steady link is reported once");
  assert.equal(reports()[0].arg, a.fabric.readRegister(TUNNEL_BASE + TunnelReg.RttNs));
  // The peer's acknowledgements now wait four times longer: the RTT grows, and is reported
  // within RttReportNs of the last report, not at every sample.
  assert.ok(b.fabric.writeRegister(TUNNEL_BASE + TunnelReg.AckDelayNs, 40_000));
  assert.ok(b.fabric.writeRegister(TUNNEL_BASE + TunnelReg.AckFrames, 255));
  for (let t = 5_200_000; t < 8_000_000; t += 10_000) scheduler.at(t, () => void a.tunnel.submit(memoryWrite(1, 1, 0x1000, new Uint8Array(4))));
  await scheduler.run(8_100_000);
  const later = reports().slice(1);
  assert.ok(later.length >= 1 && later.length <= 3, `${later.length} reports for 2.8 ms of a changed RTT`);
  assert.ok(later[0].arg > reports()[0].arg * 1.125, `${later[0].arg} after ${reports()[0].arg}`);
  for (let i = 1; i < reports().length; i++) assert.ok(reports()[i].timeNs - reports()[i - 1].timeNs >= 1_000_000, "at most one per RttReportNs");
  assert.equal(a.fabric.writeRegister(TUNNEL_BASE + TunnelReg.RttReportNs, 999), false, "RttReportNs below 1 µs is refused");
});

test("Reset on both ends starts a fresh session and traffic goes on exactly once", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler);
  const got: number[] = [];
  b.onTlp = (tlp, cls, tunnel) => {
    got.push(tlp[6]);
    tunnel.release(cls, tlp);
  };
  await scheduler.run(20_000);
  for (let i = 0; i < 5; i++) a.tunnel.submit(memoryWrite(1, i, 0x1000 * (i + 1), new Uint8Array(32)));
  await scheduler.run(100_000);
  for (const side of [a, b]) assert.ok(side.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, TunnelControl.Enable | TunnelControl.Reset));
  assert.equal(a.fabric.readRegister(TUNNEL_BASE + TunnelReg.Control), TunnelControl.Enable, "Reset reads back as 0");
  for (let i = 5; i < 10; i++) a.tunnel.submit(memoryWrite(1, i, 0x1000 * (i + 1), new Uint8Array(32)));
  await scheduler.run(300_000);
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(a.tunnel.inFlight, 0);
});

for (const shut of [true, false]) {
  test(`a new session of the same peer on another tunnel gets every frame while the old tunnel is ${shut ? "shut" : "only disabled"}; the old session's frames are counted, never delivered`, async () => {
    // A host card pairs again with a rebooted chassis card on its tunnel 1 while tunnel 0, the old
    // session's, is shut (Reset without Enable) or still disabled: both name the same peer and VLAN.
    const scheduler = new EventScheduler();
    const { a, b } = tunnelPair(scheduler, { tunnel: 1, tunnels: 2, session: 0x2222 });
    const old = TUNNEL_BASE + TunnelReg.Control;
    programTunnel(a.fabric, MAC_B, { tunnel: 0, session: 0x1111 });
    assert.ok(a.fabric.writeRegister(old, shut ? TunnelControl.Reset | TunnelControl.Flush : 0));
    const oldTunnel = a.fabric.tunnels[0];
    if (shut) assert.deepEqual([oldTunnel.peerKey(), oldTunnel.session()], [0, 0], "a shut tunnel forgets its peer and session");
    // b's tunnel 1 talks to a's tunnel 1 in session 0x2222; b's tunnel 0 still sends in the old session 0x1111.
    programTunnel(b.fabric, MAC_A, { tunnel: 0, session: 0x1111 });
    const got: number[] = [];
    a.onTlp = (tlp, cls, tunnel) => {
      assert.equal(tunnel, a.tunnel, "only the tunnel in session delivers");
      got.push(tlp[6]);
      tunnel.release(cls, tlp);
    };
    await scheduler.run(20_000);
    for (let i = 0; i < 5; i++) b.tunnel.submit(memoryWrite(1, i, 0x1000 * (i + 1), new Uint8Array(32)));
    b.fabric.tunnels[0].submit(memoryWrite(1, 99, 0x9000, new Uint8Array(32)));
    await scheduler.run(300_000);
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
    assert.equal(a.tunnel.counters[TunnelCounter.RxWhileDisabled], 0);
    assert.ok(a.tunnel.counters[TunnelCounter.RxWrongSession] > 0, "the old session's frames reach the enabled tunnel of that peer and are counted there");
    for (const side of [a, b]) assert.equal(side.tunnel.readRegister(TunnelReg.Status) & TunnelStatus.Silent, 0, "no silence: nothing is black-holed");
    assert.equal(oldTunnel.counters[TunnelCounter.RxTlps], 0);
  });
}

test("each TLP keeps the chassis slot it was submitted for, and slots beyond 7 are refused", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler);
  const got: [number, number][] = [];
  b.onTlp = (tlp, cls, tunnel, slot) => {
    got.push([tlp[6], slot]);
    tunnel.release(cls, tlp);
  };
  await scheduler.run(20_000);
  for (let i = 0; i < 16; i++) assert.ok(a.tunnel.submit(memoryWrite(1, i, 0x1000 * (i + 1), new Uint8Array(16)), i % 8));
  assert.equal(a.tunnel.submit(memoryWrite(1, 99, 0x1000, new Uint8Array(16)), 8), false);
  await scheduler.run(200_000);
  assert.deepEqual(got, Array.from({ length: 16 }, (_, i) => [i, i % 8]));
});

