import { test } from "node:test";
import assert from "node:assert/strict";
import { BROADCAST, decodeFrame, encodeFrame, ETHERTYPE_IOV, fcsValid, isTagged, vlanOf, type VlanTag } from "../../board/ethernet/frame.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { Network } from "../../tools/sim/net/network.ts";
import { Recorder } from "../../tools/sim/net/devices.ts";
import { EthernetSwitch, SWITCH_DEFAULTS, type SwitchConfig, type SwitchPortConfig } from "../../tools/sim/net/switch.ts";

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n);
const MULTICAST = Uint8Array.of(0x01, 0x00, 0x5e, 0, 0, 1);

function make(src: number, dst: Uint8Array | number, text: string, vlan: VlanTag | null = null, size = 0): Uint8Array {
  const payload = new TextEncoder().encode(text.padEnd(size, "."));
  return encodeFrame({ dst: typeof dst === "number" ? mac(dst) : dst, src: mac(src), vlan, etherType: ETHERTYPE_IOV, payload });
}

const textOf = (f: Uint8Array) => {
  const d = decodeFrame(f, 9216);
  if (typeof d === "string") return `<${d}>`;
  return new TextDecoder().decode(d.payload).replace(/[.\0]+$/, "");
};

/** A switch whose port i is cabled (0 m, no PHY delay, 10 Gb/s) to recorder i. */
function lan(ports: SwitchPortConfig[], extra: Partial<SwitchConfig> = {}) {
  const s = new EventScheduler();
  const net = new Network(s, 1);
  const sw = net.addSwitch("sw", { ports, ...extra });
  const hosts = ports.map((_, i) => {
    const rec = new Recorder(s);
    const link = net.connect(`h${i}`, rec, { switch: "sw", port: i }, { lengthM: 0, phyLatencyNs: 0 });
    return { rec, port: link.a, link };
  });
  /** Frames each host received since the last call, as text (tagged ones prefixed with their VID). */
  const inbox = () => hosts.map(({ rec }) => rec.frames.splice(0).map((r) => (isTagged(r.frame) ? `${vlanOf(r.frame)}:` : "") + textOf(r.frame)));
  return { s, net, sw, hosts, inbox, send: (i: number, f: Uint8Array) => hosts[i].port.send(f) };
}

const ACCESS10: SwitchPortConfig = { mode: "access", pvid: 10 };
const ACCESS20: SwitchPortConfig = { mode: "access", pvid: 20 };
const TRUNK: SwitchPortConfig = { mode: "trunk", allowed: [10, 20] };

test("the switch floods unknown unicast within the VLAN, learns, then sends known unicast to one port only", async () => {
  const { s, sw, inbox, send } = lan([ACCESS10, ACCESS10, ACCESS20, TRUNK, ACCESS10]);
  send(0, make(0, 1, "who is 1"));
  await s.run(10_000);
  assert.deepEqual(inbox(), [[], ["who is 1"], [], ["10:who is 1"], ["who is 1"]]);
  assert.equal(sw.lookup(mac(0), 10), 0);
  assert.equal(sw.lookup(mac(0), 20), undefined, "learning is per VLAN");
  send(1, make(1, 0, "I am 1"));
  await s.run(20_000);
  assert.deepEqual(inbox(), [["I am 1"], [], [], [], []]);
  send(0, make(0, 1, "hello 1"));
  await s.run(30_000);
  assert.deepEqual(inbox(), [[], ["hello 1"], [], [], []]);
  const c = sw.counters;
  assert.deepEqual([c.rxFrames, c.flooded, c.forwarded, c.txFrames, c.learned], [3, 1, 2, 5, 2]);
  assert.deepEqual(sw.macTable().map(({ vid, mac, port }) => [vid, mac, port]), [[10, "02:00:00:00:00:00", 0], [10, "02:00:00:00:00:01", 1]]);
});

test("broadcast and multicast are flooded within their VLAN only, never back out of the ingress port", async () => {
  const { s, inbox, send } = lan([ACCESS10, ACCESS10, ACCESS20, TRUNK, ACCESS20]);
  send(2, make(2, BROADCAST, "bcast 20"));
  send(0, make(0, MULTICAST, "mcast 10"));
  await s.run(10_000);
  assert.deepEqual(inbox(), [[], ["mcast 10"], [], ["20:bcast 20", "10:mcast 10"], ["bcast 20"]]);
  send(3, make(3, BROADCAST, "from trunk 20", { pcp: 0, dei: 0, vid: 20 }));
  await s.run(20_000);
  assert.deepEqual(inbox(), [[], [], ["from trunk 20"], [], ["from trunk 20"]]);
});

test("VLANs are isolated: a station in VLAN 20 cannot reach a MAC learned in VLAN 10", async () => {
  const { s, sw, inbox, send } = lan([ACCESS10, ACCESS20, ACCESS20]);
  send(0, make(0, BROADCAST, "I am 0"));
  await s.run(10_000);
  assert.deepEqual(inbox(), [[], [], []]);
  send(1, make(1, 0, "to 0 from VLAN 20"));
  await s.run(20_000);
  assert.deepEqual(inbox(), [[], [], ["to 0 from VLAN 20"]], "unknown in VLAN 20: flooded in VLAN 20 only");
  assert.equal(sw.counters.forwarded, 0);
});

test("egress tagging: access ports send untagged, trunks tag, the native VLAN leaves a trunk untagged; frames stay valid", async () => {
  const { s, hosts, inbox, send } = lan([ACCESS10, { mode: "trunk", allowed: [10, 20], native: 20 }, ACCESS20, { mode: "trunk" }]);
  const untagged = make(0, BROADCAST, "x", null, 100);
  send(0, untagged);
  await s.run(10_000);
  const fromAccess = hosts.map((h) => h.rec.frames.map((r) => r.frame));
  // Onto a trunk: a 4-byte tag after the source MAC, VID 10, PCP 0, new FCS; the rest unchanged.
  const tagged = fromAccess[1][0];
  assert.equal(tagged.length, untagged.length + 4);
  assert.deepEqual([...tagged.subarray(12, 16)], [0x81, 0x00, 0x00, 10]);
  assert.deepEqual(tagged.subarray(0, 12), untagged.subarray(0, 12));
  assert.deepEqual(tagged.subarray(16, -4), untagged.subarray(12, -4));
  assert.ok(fcsValid(tagged));
  assert.deepEqual(fromAccess[3][0], tagged, "trunk with all VLANs");
  hosts.forEach((h) => h.rec.frames.splice(0));
  // Native VLAN: untagged in, VLAN 20, untagged out on the trunk, unchanged bytes to the access port.
  send(1, untagged);
  await s.run(20_000);
  assert.deepEqual(inbox(), [[], [], ["x"], ["20:x"]]);
  // A tagged VID-20 frame from the all-VLAN trunk leaves the native trunk untagged: the tag is removed, padding kept >= 64.
  const small = make(3, BROADCAST, "tiny", { pcp: 5, dei: 0, vid: 20 });
  assert.equal(small.length, 68);
  send(3, small);
  await s.run(30_000);
  const stripped = hosts[1].rec.frames[0].frame;
  assert.equal(stripped.length, 64);
  assert.ok(fcsValid(stripped));
  assert.equal(isTagged(stripped), false);
  assert.deepEqual(stripped.subarray(12, 60), small.subarray(16, 64));
  // Trunk to trunk keeps the tag (and its priority) byte for byte.
  const { s: s2, hosts: h2, send: send2 } = lan([TRUNK, TRUNK]);
  const prio = make(0, BROADCAST, "prio", { pcp: 6, dei: 1, vid: 10 });
  send2(0, prio);
  await s2.run(10_000);
  assert.equal(h2[1].rec.frames[0].frame, prio, "shared, not copied");
});

test("tagged frames on an access port, disallowed VIDs and untagged frames on a trunk without native VLAN are dropped and counted", async () => {
  const { s, sw, inbox, send } = lan([ACCESS10, TRUNK, ACCESS10]);
  send(0, make(0, BROADCAST, "tagged on access", { pcp: 0, dei: 0, vid: 10 }));
  send(1, make(1, BROADCAST, "vid 30", { pcp: 0, dei: 0, vid: 30 }));
  send(1, make(1, BROADCAST, "untagged on trunk"));
  send(1, make(1, BROADCAST, "priority tag", { pcp: 3, dei: 0, vid: 0 }));
  send(1, make(1, BROADCAST, "ok", { pcp: 0, dei: 0, vid: 10 }));
  await s.run(100_000);
  assert.deepEqual(inbox(), [["ok"], [], ["ok"]]);
  assert.deepEqual([sw.counters.taggedOnAccess, sw.counters.vlanNotAllowed, sw.counters.flooded], [1, 3, 1]);
  assert.equal(sw.lookup(mac(1), 30), undefined, "dropped frames teach nothing");
});

test("frames with a bad FCS, runts and oversize frames are dropped and counted; nothing is learned from them", async () => {
  const { s, sw, inbox, send } = lan([ACCESS10, ACCESS10], { mtu: 1500 });
  const bad = make(0, BROADCAST, "bad");
  bad[20] ^= 0x10;
  send(0, bad);
  send(0, make(0, BROADCAST, "x").subarray(0, 60));
  send(0, make(0, BROADCAST, "big", null, 1501));
  send(0, make(0, BROADCAST, "fits", null, 1500));
  await s.run(100_000);
  assert.deepEqual(inbox(), [[], ["fits"]]);
  assert.deepEqual([sw.counters.badFcs, sw.counters.runts, sw.counters.oversize, sw.counters.rxFrames], [1, 1, 1, 4]);
});

test("a switch drops frames corrupted on the cable into it", async () => {
  const s = new EventScheduler();
  const net = new Network(s, 5);
  net.addSwitch("sw", { ports: [ACCESS10, ACCESS10] });
  const a = new Recorder(s);
  const b = new Recorder(s);
  const up = net.connect("up", a, { switch: "sw", port: 0 }, { aToB: { corruption: 0.5 }, a: { bufferBytes: 1 << 20 } });
  net.connect("down", b, { switch: "sw", port: 1 });
  for (let i = 0; i < 200; i++) up.a.send(make(1, BROADCAST, `n${i}`));
  await s.run(1e7);
  const corrupted = up.a.counters.corruptedFrames;
  assert.ok(corrupted > 50 && corrupted < 150);
  assert.equal(net.switch("sw").counters.badFcs, corrupted);
  assert.equal(b.frames.length, 200 - corrupted);
  assert.ok(b.frames.every((r) => fcsValid(r.frame)));
});

test("learned entries age out after the aging time and unicast is flooded again", async () => {
  const { s, sw, inbox, send } = lan([ACCESS10, ACCESS10, ACCESS10], { agingNs: 1_000_000 });
  assert.equal(new EthernetSwitch(s, "d", { ports: [] }).agingNs, 300e9);
  assert.equal(SWITCH_DEFAULTS.agingNs, 300e9);
  send(1, make(1, BROADCAST, "1 here")); // learned at 68 ns (arrival of the last bit)
  await s.run(10_000);
  inbox();
  s.at(999_999, () => void send(0, make(0, 1, "just in time"))); // reaches the switch 999 999 ns after learning
  await s.run(1_000_000 - 1);
  s.at(1_000_000, () => void send(2, make(2, 1, "too late"))); // reaches it exactly 1 ms after: aged out
  await s.run(1_000_050);
  assert.deepEqual(inbox(), [[], [], []], "nothing delivered yet");
  await s.run(1_100_000);
  assert.deepEqual(inbox(), [["too late"], ["just in time", "too late"], []]);
  assert.equal(sw.counters.aged, 1);
  assert.equal(sw.lookup(mac(1), 10), undefined);
});

test("a station that moves is re-learned on its new port; a port losing carrier forgets its stations", async () => {
  const { s, sw, hosts, send } = lan([ACCESS10, ACCESS10, ACCESS10]);
  send(0, make(5, BROADCAST, "5 on port 0"));
  await s.run(10_000);
  assert.equal(sw.lookup(mac(5), 10), 0);
  send(2, make(5, BROADCAST, "5 on port 2"));
  await s.run(20_000);
  assert.equal(sw.lookup(mac(5), 10), 2);
  assert.equal(sw.counters.moved, 1);
  hosts[2].link.setUp(false);
  assert.equal(sw.lookup(mac(5), 10), undefined);
  assert.equal(sw.counters.flushed, 1);
});

test("a frame crosses the switch after its forwarding latency: ingress transit + 1 µs + egress transit", async () => {
  const { s, hosts, send } = lan([ACCESS10, ACCESS10]);
  assert.equal(SWITCH_DEFAULTS.forwardingLatencyNs, 1000);
  send(0, make(0, 1, "t"));
  await s.run(100_000);
  // 64 bytes + 20 at 10 Gb/s = 67.2 ns -> 68 each way.
  assert.deepEqual(hosts[1].rec.frames.map((r) => r.timeNs), [68 + 1000 + 68]);
  const fast = lan([ACCESS10, ACCESS10], { forwardingLatencyNs: 0 });
  fast.send(0, make(0, 1, "t"));
  await fast.s.run(100_000);
  assert.deepEqual(fast.hosts[1].rec.frames.map((r) => r.timeNs), [136]);
});

test("the switch's egress port queues frames from several ingress ports and tail-drops what does not fit", async () => {
  const s = new EventScheduler();
  const net = new Network(s, 1);
  net.addSwitch("sw", { ports: [ACCESS10, ACCESS10, ACCESS10] });
  const senders = [new Recorder(s), new Recorder(s)];
  const sink = new Recorder(s);
  const inA = net.connect("in0", senders[0], { switch: "sw", port: 0 }, { rateBps: 40e9, a: { bufferBytes: 1 << 20 } });
  const inB = net.connect("in1", senders[1], { switch: "sw", port: 1 }, { rateBps: 40e9, a: { bufferBytes: 1 << 20 } });
  const out = net.connect("out", sink, { switch: "sw", port: 2 }, { rateBps: 10e9, b: { bufferBytes: 15_000 } });
  sink.onReceive = () => {};
  out.a.send(make(9, BROADCAST, "I am 9")); // teach the switch where 9 is
  await s.run(10_000);
  for (let i = 0; i < 50; i++) {
    inA.a.send(make(1, 9, `a${i}`, null, 1000));
    inB.a.send(make(2, 9, `b${i}`, null, 1000));
  }
  await s.run(1e8);
  const c = net.counters();
  const egress = c.links.out.bToA;
  assert.equal(egress.deliveredFrames + egress.tailDropFrames, 100);
  assert.ok(egress.tailDropFrames > 0, "40 Gb/s in, 10 Gb/s out: the egress buffer overflows");
  assert.ok(egress.peakQueuedBytes <= 15_000);
  assert.equal(c.switches.sw.egressDrops, egress.tailDropFrames);
  assert.equal(c.switches.sw.ports[2].egressDrops, egress.tailDropFrames);
  assert.equal(sink.frames.length, egress.deliveredFrames);
});

test("switch configuration errors are reported clearly", () => {
  const s = new EventScheduler();
  assert.throws(() => new EthernetSwitch(s, "x", { ports: [{ mode: "access", pvid: 4095 }] }), /port 0: VID must be 1\.\.4094/);
  assert.throws(() => new EthernetSwitch(s, "x", { ports: [{ mode: "trunk", allowed: [0] }] }), /VID/);
  const sw = new EthernetSwitch(s, "x", { ports: [ACCESS10] });
  assert.throws(() => sw.plug(1, new Network(s).connect("l", null, null).a), /no port 1/);
});

/**
 * Senders on ports 0 and 1 (40 Gb/s cables) and sinks on ports 2.. (10 Gb/s): `frames` frames of
 * 1000 bytes from each sender to each sink, as fast as the senders' cables take them. The sinks'
 * cable ends in the switch have 1 MiB of buffer, so a drop is the switch's own.
 */
async function incast(config: Omit<SwitchConfig, "ports">, sinks: number, frames: number, vlan: VlanTag | null = null, seed = 1) {
  const s = new EventScheduler();
  const net = new Network(s, seed);
  const port: SwitchPortConfig = vlan ? { mode: "trunk", allowed: [vlan.vid] } : ACCESS10;
  net.addSwitch("sw", { ports: Array.from({ length: 2 + sinks }, () => port), ...config });
  const senders = [0, 1].map((i) => {
    const rec = new Recorder(s);
    return net.connect(`in${i}`, rec, { switch: "sw", port: i }, { rateBps: 40e9, a: { bufferBytes: 1 << 22 } }).a;
  });
  const recorders = Array.from({ length: sinks }, (_, k) => {
    const rec = new Recorder(s);
    const link = net.connect(`out${k}`, rec, { switch: "sw", port: 2 + k }, { rateBps: 10e9, b: { bufferBytes: 1 << 20 } });
    link.a.send(make(100 + k, BROADCAST, `I am ${100 + k}`, vlan)); // teach the switch where it is
    return rec;
  });
  await s.run(10_000);
  for (const r of recorders) r.frames.length = 0;
  for (let i = 0; i < frames; i++) for (let k = 0; k < sinks; k++) for (const [n, sender] of senders.entries()) sender.send(make(1 + n, 100 + k, `${n}:${k}:${i}`, vlan, 1000));
  await s.run(1e9);
  return { counters: net.counters(), recorders };
}

test("a shared buffer: an egress queue grows only to alpha × the buffer still free, and what comes past that threshold is dropped and counted", async () => {
  const frame = 1000 + 18; // payload, header and FCS
  // One congested queue: q <= alpha (B - q), so q <= alpha B / (1 + alpha).
  const one = await incast({ buffer: { bytes: 60_000, alpha: 1 } }, 1, 100);
  const egress = one.counters.links.out0.bToA;
  assert.ok(egress.peakQueuedBytes <= 30_000 + frame && egress.peakQueuedBytes > 30_000 - 2 * frame, `peak ${egress.peakQueuedBytes} bytes: half the buffer`);
  const sw = one.counters.switches.sw;
  assert.ok(sw.bufferDrops > 0 && sw.bufferDrops === sw.egressDrops && sw.ports[2].bufferDrops === sw.bufferDrops, JSON.stringify(sw.ports[2]));
  assert.equal(egress.tailDropFrames, 0, "the cable end's own buffer never filled");
  assert.equal(one.recorders[0].frames.length + sw.bufferDrops, 200, "every frame delivered or counted");
  // Two congested queues share it: q <= alpha (B - 2q), so each stays under B / 3.
  const two = await incast({ buffer: { bytes: 60_000, alpha: 1 } }, 2, 50);
  for (const id of ["out0", "out1"]) assert.ok(two.counters.links[id].bToA.peakQueuedBytes <= 20_000 + frame, `${id}: ${two.counters.links[id].bToA.peakQueuedBytes}`);
  // A larger alpha lets one queue take more of it.
  const greedy = await incast({ buffer: { bytes: 60_000, alpha: 4 } }, 1, 100);
  assert.ok(greedy.counters.links.out0.bToA.peakQueuedBytes > 45_000, `${greedy.counters.links.out0.bToA.peakQueuedBytes}`);
  // Without a shared buffer, the cable end's 1 MiB takes everything.
  const none = await incast({}, 1, 100);
  assert.equal(none.counters.switches.sw.egressDrops, 0);
});

test("ECN: a tagged frame that finds kMin or more queued ahead of it leaves with DEI set and a valid FCS; shallower ones and untagged frames are left alone", async () => {
  const vlan: VlanTag = { vid: 10, pcp: 3, dei: 0 };
  const { counters, recorders } = await incast({ ecn: { kMinBytes: 5_000, kMaxBytes: 5_000 } }, 1, 50, vlan);
  const frames = recorders[0].frames.map((r) => r.frame);
  assert.equal(frames.length, 100);
  assert.ok(frames.every((f) => fcsValid(f) && vlanOf(f) === 10 && f[14] >> 5 === 3), "valid, VLAN and PCP kept");
  const marked = frames.filter((f) => (f[14] & 0x10) !== 0);
  assert.ok(marked.length > 50 && marked.length < 100, `${marked.length} marked: all but the first few, which found the queue short`);
  assert.equal(frames.findIndex((f) => (f[14] & 0x10) !== 0), frames.length - marked.length, "once the queue passed K, every frame after");
  assert.equal(counters.switches.sw.ecnMarked, marked.length);
  assert.equal(counters.switches.sw.ports[2].ecnMarked, marked.length);
  // The depths the frames found: none past the queue's peak, and the frames marked are the ones at K or more.
  const depths = counters.switches.sw.ports[2].queueDepths;
  assert.equal(depths.reduce((n, [, f]) => n + f, 0), 100 + 0, "one count per frame handed to the port");
  assert.equal(depths.filter(([low]) => low >= 5_000).reduce((n, [, f]) => n + f, 0) >= marked.length - 2, true);
  const untagged = await incast({ ecn: { kMinBytes: 5_000, kMaxBytes: 5_000 } }, 1, 50);
  assert.equal(untagged.counters.switches.sw.ecnMarked, 0, "an untagged frame has no DEI to set");
});

test("ECN as WRED: between kMin and kMax the share marked rises with the queue; the marks are the seed's, the same every run", async () => {
  const vlan: VlanTag = { vid: 10, pcp: 0, dei: 0 };
  const wred = { ecn: { kMinBytes: 2_000, kMaxBytes: 200_000, pMax: 0.5 } };
  const marks = async (seed: number) => (await incast(wred, 1, 100, vlan, seed)).recorders[0].frames.map((r) => (r.frame[14] & 0x10) >> 4).join("");
  const first = await marks(1);
  assert.equal(await marks(1), first, "same seed, same marks");
  assert.notEqual(await marks(2), first, "another seed, other marks");
  const ones = (s: string) => [...s].filter((c) => c === "1").length;
  assert.ok(ones(first.slice(0, 50)) < ones(first.slice(150)), `more marks as the queue grows: ${first}`);
  assert.ok(ones(first) < 200 * 0.5, "never more than pMax below kMax");
});

test("queue-depth histogram: 8 buckets per power of two; a depth falls in the bucket whose bounds hold it, and a percentile is a bucket's upper edge", async () => {
  const { QueueHistogram } = await import("../../tools/sim/net/switch.ts");
  for (const bytes of [0, 1, 7, 8, 9, 15, 16, 1000, 1023, 1024, 65_535, 1_000_000, 2 ** 25]) {
    const b = QueueHistogram.bucket(bytes);
    assert.ok(QueueHistogram.lowerBound(b) <= bytes && (b === QueueHistogram.BUCKETS - 1 || bytes < QueueHistogram.lowerBound(b + 1)), `${bytes} in bucket ${b}`);
  }
  assert.ok(QueueHistogram.lowerBound(QueueHistogram.bucket(1_000_000) + 1) / 1_000_000 < 1.13, "about 12 % wide");
  assert.equal(QueueHistogram.percentile([], 99), 0);
  assert.equal(QueueHistogram.percentile([[0, 98], [1024, 2]], 99), 1151, "the 99th of 100 frames found 1024..1151 bytes");
  assert.equal(QueueHistogram.percentile([[0, 99], [1024, 1]], 99), 0);
});

test("switch congestion settings are checked", () => {
  const s = new EventScheduler();
  assert.throws(() => new EthernetSwitch(s, "x", { ports: [ACCESS10], buffer: { bytes: 0 } }), /buffer\.bytes must be a positive integer/);
  assert.throws(() => new EthernetSwitch(s, "x", { ports: [ACCESS10], buffer: { bytes: 1000, alpha: 0 } }), /buffer\.alpha above 0/);
  assert.throws(() => new EthernetSwitch(s, "x", { ports: [ACCESS10], ecn: { kMinBytes: 10, kMaxBytes: 5 } }), /kMinBytes <= kMaxBytes/);
  assert.throws(() => new EthernetSwitch(s, "x", { ports: [ACCESS10], ecn: { kMinBytes: 1, kMaxBytes: 5, pMax: 2 } }), /pMax in \(0, 1\]/);
});
