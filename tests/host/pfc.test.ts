import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, ETHERTYPE_IOV, fcsValid, type VlanTag } from "../../board/ethernet/frame.ts";
import { decodePfc, encodePfc, ETHERTYPE_MAC_CONTROL, MAX_QUANTA, pauseNs, PFC_OPCODE } from "../../board/ethernet/pfc.ts";
import { CardMac, type FrameSource } from "../../board/ethernet/mac.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { Network } from "../../tools/sim/net/network.ts";
import { Recorder } from "../../tools/sim/net/devices.ts";
import { pfcHeadroom, type SwitchConfig } from "../../tools/sim/net/switch.ts";

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n);
const text = new TextEncoder();

function make(src: number, dst: number, body: string, vlan: VlanTag | null, size = 1000): Uint8Array {
  return encodeFrame({ dst: mac(dst), src: mac(src), vlan, etherType: ETHERTYPE_IOV, payload: text.encode(body.padEnd(size, ".")) });
}

/** A source of `count` frames of one priority for a CardMac. */
function source(src: number, dst: number, count: number, vlan: VlanTag | null): FrameSource & { sent: number } {
  return {
    sent: 0,
    nextFrame() {
      if (this.sent === count) return null;
      return make(src, dst, `${src}:${this.sent++}`, vlan);
    },
    priority: () => vlan?.pcp ?? 0,
  };
}

test("a PFC frame: 64 bytes to 01-80-C2-00-00-01, MAC Control EtherType and opcode, the enable vector and eight pause times; 802.3x PAUSE is not PFC", () => {
  const frame = encodePfc(mac(9), { enable: 0b1000_1000, quanta: [1, 2, 3, 0x1234, 5, 6, 7, MAX_QUANTA] });
  assert.equal(frame.length, 64);
  assert.ok(fcsValid(frame));
  assert.deepEqual([...frame.subarray(0, 6)], [0x01, 0x80, 0xc2, 0, 0, 1]);
  assert.equal((frame[12] << 8) | frame[13], ETHERTYPE_MAC_CONTROL);
  assert.equal((frame[14] << 8) | frame[15], PFC_OPCODE);
  assert.deepEqual([frame[16], frame[17]], [0, 0b1000_1000]);
  assert.deepEqual(decodePfc(frame), { enable: 0b1000_1000, quanta: [0, 0, 0, 0x1234, 0, 0, 0, MAX_QUANTA] }, "times of priorities not enabled are 0");
  const pause = frame.slice();
  pause[14] = 0x00; // opcode 0x0001: 802.3x PAUSE
  assert.equal(decodePfc(pause), null);
  assert.equal(pauseNs(MAX_QUANTA, 10e9), 3_355_392, "65 535 × 512 bit times at 10 Gb/s");
  assert.equal(pauseNs(1, 25e9), 21);
});

test("the card's MAC passes over a paused priority until the pause ends or is lifted, and keeps sending the others", async () => {
  const s = new EventScheduler();
  const net = new Network(s, 1);
  const far = new Recorder(s);
  const link = net.connect("cable", null, far, { lengthM: 0, phyLatencyNs: 0 });
  const card = new CardMac(mac(1), s);
  card.connect(link.a);
  const high = source(1, 2, 1_000, { vid: 10, pcp: 3, dei: 0 });
  const low = source(1, 2, 1_000, { vid: 10, pcp: 0, dei: 0 });
  card.addSource(high);
  card.addSource(low);
  // Priority 3 paused for 1000 quanta (51.2 µs at 10 Gb/s) before anything is sent.
  link.b.send(encodePfc(mac(2), { enable: 1 << 3, quanta: [0, 0, 0, 1000, 0, 0, 0, 0] }));
  await s.run(100);
  card.kick();
  await s.run(51_000);
  assert.equal(card.counters.rxPause, 1);
  assert.ok(card.paused);
  assert.equal(high.sent, 0, "priority 3 waits");
  assert.ok(low.sent > 50, `priority 0 goes on: ${low.sent}`);
  await s.run(60_000);
  assert.ok(!card.paused);
  assert.ok(high.sent > 0, "the pause ended");
  // Paused again, then lifted early by a zero time.
  link.b.send(encodePfc(mac(2), { enable: 1 << 3, quanta: [0, 0, 0, MAX_QUANTA, 0, 0, 0, 0] }));
  await s.run(70_000);
  const before = high.sent;
  await s.run(100_000);
  assert.ok(high.sent <= before + 1, "at most the frame already started");
  link.b.send(encodePfc(mac(2), { enable: 1 << 3, quanta: [0, 0, 0, 0, 0, 0, 0, 0] }));
  const low100 = low.sent;
  await s.run(120_000);
  assert.ok(high.sent >= before + 10 && Math.abs(high.sent - before - (low.sent - low100)) <= 1, `lifted, and the two take turns: ${before} then ${high.sent}, low ${low100} then ${low.sent}`);
});

/**
 * Senders (the card's MAC, which honours PFC) on ports 0 and 1 at 10 Gb/s, each sending `frames`
 * frames of 1000 bytes to a sink on port 2 at `sinkBps`. A third sender on port 3 ignores PFC when `rogue`.
 */
async function incast(config: Omit<SwitchConfig, "ports">, frames: number, vlan: VlanTag, sinkBps = 2.5e9, rogue = 0) {
  const s = new EventScheduler();
  const net = new Network(s, 1);
  net.addSwitch("sw", { ports: Array.from({ length: 4 }, () => ({ mode: "trunk" as const, allowed: [vlan.vid] })), ...config });
  const sink = new Recorder(s);
  const out = net.connect("out", { switch: "sw", port: 2 }, sink, { rateBps: sinkBps, lengthM: 100 });
  out.b.send(make(100, 0xff, "sink", vlan, 50)); // teach the switch where the sink is
  await s.run(10_000);
  const cards = [0, 1].map((i) => {
    const link = net.connect(`in${i}`, null, { switch: "sw", port: i }, { lengthM: 100 });
    const card = new CardMac(mac(1 + i), s);
    card.connect(link.a);
    const src = source(1 + i, 100, frames, vlan);
    card.addSource(src);
    card.kick();
    return { card, src };
  });
  const rogueEnd = net.connect("rogue", new Recorder(s, false), { switch: "sw", port: 3 }, { lengthM: 100, a: { bufferBytes: 1 << 24 } }).a;
  for (let i = 0; i < rogue; i++) rogueEnd.send(make(3, 100, `3:${i}`, vlan));
  await s.run(1e9);
  const got = sink.frames.map((r) => new TextDecoder().decode(r.frame.subarray(18, 26)).replace(/\..*/, ""));
  return { sw: net.counters().switches.sw, cards, got };
}

const LOSSLESS: VlanTag = { vid: 10, pcp: 3, dei: 0 };

test("PFC: a 4:1 incast into a small shared buffer loses nothing; the senders are paused and let go, every frame arrives in its sender's order", async () => {
  const pfc = { buffer: { bytes: 64 * 1024 }, pfc: { priorities: [3], xoffBytes: 8 * 1024 } };
  const { sw, cards, got } = await incast(pfc, 500, LOSSLESS);
  assert.equal(got.length, 1000);
  assert.equal(sw.egressDrops, 0);
  for (const n of [1, 2]) {
    const mine = got.filter((g) => g.startsWith(`${n}:`));
    assert.deepEqual(mine, Array.from({ length: 500 }, (_, i) => `${n}:${i}`), `sender ${n} in order`);
  }
  assert.ok(sw.pauseSent >= 2 && sw.resumeSent >= 2, `XOFF ${sw.pauseSent}, XON ${sw.resumeSent}`);
  assert.equal(sw.ports[0].pauseSent + sw.ports[1].pauseSent, sw.pauseSent, "sent to the senders' ports");
  assert.equal(sw.ports[2].pauseSent, 0);
  assert.equal(cards[0].card.counters.rxPause + cards[1].card.counters.rxPause, sw.pauseSent + sw.resumeSent, "every PFC frame reached its sender");
  assert.equal(sw.macControl, 0);
  // Without PFC the same incast overflows the buffer.
  const lossy = await incast({ buffer: { bytes: 64 * 1024 } }, 500, LOSSLESS);
  assert.ok(lossy.sw.bufferDrops > 0 && lossy.got.length + lossy.sw.egressDrops === 1000, `${lossy.sw.bufferDrops} dropped`);
});

test("PFC: frames of a priority that is not lossless still meet the buffer's threshold, and pause nobody", async () => {
  const { sw, got } = await incast({ buffer: { bytes: 64 * 1024 }, pfc: { priorities: [3] } }, 500, { vid: 10, pcp: 0, dei: 0 });
  assert.ok(sw.bufferDrops > 0);
  assert.equal(got.length + sw.egressDrops, 1000);
  assert.equal(sw.pauseSent, 0);
});

test("PFC: a sender that ignores the pause fills its headroom, and what comes past it is dropped and counted on its port; the others lose nothing", async () => {
  const { sw, got } = await incast({ buffer: { bytes: 64 * 1024 }, pfc: { priorities: [3], xoffBytes: 8 * 1024 } }, 300, LOSSLESS, 2.5e9, 2000);
  const rogue = got.filter((g) => g.startsWith("3:")).length;
  assert.ok(sw.headroomDrops > 0, "the rogue overflowed its headroom");
  assert.equal(sw.ports[3].headroomDrops, sw.headroomDrops, "counted on the rogue's port");
  assert.equal(rogue + sw.headroomDrops, 2000, "every rogue frame delivered or counted");
  assert.equal(got.length - rogue, 600, "the well-behaved senders lost nothing");
  assert.equal(sw.egressDrops, sw.headroomDrops);
});

test("the headroom: two largest frames, a PFC frame, the cable's round trip and the switch's pipeline, at the port's rate", () => {
  // 9216-byte MTU, tagged: 9238 bytes + 20 of preamble and gap; 100 m and 80 ns of PHY each way: 580 ns, 725 bytes each way at 10 Gb/s; 1 µs of pipeline: 1250 bytes.
  assert.equal(pfcHeadroom(10e9, 580_000, 9216, 1000), 2 * 9258 + 84 + 1450 + 1250);
  assert.equal(pfcHeadroom(40e9, 580_000, 9216, 1000), 2 * 9258 + 84 + 5800 + 5000);
});

test("MAC Control frames are consumed by the switch, never forwarded; a switch without PFC ignores them", async () => {
  const s = new EventScheduler();
  const net = new Network(s, 1);
  net.addSwitch("sw", { ports: [{ mode: "access" }, { mode: "access" }] });
  const far = new Recorder(s);
  const a = net.connect("a", new Recorder(s), { switch: "sw", port: 0 }).a;
  net.connect("b", { switch: "sw", port: 1 }, far);
  a.send(encodePfc(mac(1), { enable: 1, quanta: [MAX_QUANTA] }));
  await s.run(100_000);
  assert.equal(far.frames.length, 0);
  assert.equal(net.counters().switches.sw.macControl, 1);
  assert.equal(net.counters().switches.sw.pauseReceived, 0);
});

test("a switch refuses PFC without a shared buffer, and thresholds that make no sense", () => {
  const s = new EventScheduler();
  const net = new Network(s, 1);
  const ports = [{ mode: "access" as const }];
  assert.throws(() => net.addSwitch("a", { ports, pfc: { priorities: [3] } }), /pfc needs a shared buffer/);
  assert.throws(() => net.addSwitch("b", { ports, buffer: { bytes: 1 << 20 }, pfc: { priorities: [8] } }), /priorities 0..7/);
  assert.throws(() => net.addSwitch("c", { ports, buffer: { bytes: 1 << 20 }, pfc: { priorities: [3], xoffBytes: 1000, xonBytes: 1000 } }), /xonBytes < xoffBytes/);
});
