// Congestion control: the window's control law on its own (board/tunnel/congestion.ts), the echo
// of marks in ACKs, the engine's window registers and send queue, and the PCIe links' flow control
// that holds the card's PCIe side back (docs/congestion.md).

import { test } from "node:test";
import assert from "node:assert/strict";
import { CongestionWindow, WindowChange, WindowState, ALPHA_ONE, type AckSignals, type WindowLimits } from "../../board/tunnel/congestion.ts";
import { readAckBody, writeAckBody, ackBodySize, ECHO_MODULUS } from "../../board/tunnel/wire.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { tunnelPair } from "../../tools/sim/tunnel-pair.ts";
import { TunnelReg, TunnelCounter, TunnelControl, TUNNEL_BASE, TunnelDefault } from "../../board/map/registers.ts";
import { memoryWrite, memoryRead, completionWithData, TlpClass, tlpClass } from "../../board/pcie/tlp.ts";
import { PcieLink } from "../../board/pcie/link.ts";
import { ChassisRoot } from "../../board/pcie/chassis-root.ts";

const LIMITS: WindowLimits = { minBytes: 312, maxBytes: 262_144, targetNs: 50_000 };

function ack(over: Partial<AckSignals>): AckSignals {
  return { frames: 4, bytes: 4000, marked: 0, queueingNs: 0, rttNs: 10_000, nextSeq: 100, sndUna: 100, limited: true, ...over };
}

test("slow start doubles the window per window of acknowledgements while it limits the sender, and not when it does not", () => {
  const w = new CongestionWindow();
  w.reset(18_000, 0);
  assert.equal(w.acked(ack({ bytes: 18_000, nextSeq: 10, sndUna: 10 }), LIMITS), WindowChange.Grew);
  assert.equal(w.bytes, 36_000);
  assert.equal(w.state, WindowState.SlowStart);
  assert.equal(w.acked(ack({ bytes: 18_000, limited: false, nextSeq: 20, sndUna: 20 }), LIMITS), WindowChange.Kept);
  assert.equal(w.bytes, 36_000, "a sender the window does not hold back gives it no reason to grow");
  w.acked(ack({ bytes: 300_000, nextSeq: 30, sndUna: 30 }), LIMITS);
  assert.equal(w.bytes, LIMITS.maxBytes, "never beyond the replay buffer and WindowBytes");
});

test("a mark shrinks the window by alpha/2 once per round trip, then it grows by one floor frame per round trip", () => {
  const w = new CongestionWindow();
  w.reset(100_000, 0);
  assert.equal(w.acked(ack({ marked: 4, nextSeq: 50, sndUna: 10 }), LIMITS), WindowChange.EcnDecrease);
  // alpha starts at 1 and every frame was marked: the first reaction halves the window (DCTCP).
  assert.equal(w.bytes, 50_000);
  assert.equal(w.state, WindowState.Avoidance);
  assert.equal(w.acked(ack({ marked: 3, nextSeq: 60, sndUna: 40 }), LIMITS), WindowChange.Kept, "the frames sent before the decrease are still coming back: no second one");
  assert.equal(w.bytes, 50_000);
  assert.equal(w.acked(ack({ bytes: 50_000, nextSeq: 90, sndUna: 60 }), LIMITS), WindowChange.Grew);
  assert.equal(w.bytes, 50_000 + 312, "a window's worth acknowledged adds the floor frame");
});

test("alpha follows the fraction of frames marked per window of data, with gain 1/16", () => {
  const w = new CongestionWindow();
  w.reset(100_000, 0);
  // Windows with no mark at all: alpha decays from 1 by 15/16 per window.
  let seq = 0;
  for (let i = 0; i < 40; i++) {
    seq += 10;
    w.acked(ack({ frames: 10, nextSeq: seq + 10, sndUna: seq }), LIMITS);
  }
  assert.ok(w.alpha < ALPHA_ONE / 10, `alpha ${w.alpha}`);
  const before = w.alpha;
  // One window with every frame marked: alpha += (1 - alpha) / 16.
  seq += 10;
  w.acked(ack({ frames: 10, marked: 10, nextSeq: seq + 10, sndUna: seq }), LIMITS);
  assert.equal(w.alpha, before + ((ALPHA_ONE - before) >> 4));
});

test("queueing above TargetNs shrinks the window as Swift does, at most by half; the delay signal can be off", () => {
  const w = new CongestionWindow();
  w.reset(100_000, 0);
  assert.equal(w.acked(ack({ queueingNs: 60_000, rttNs: 100_000, nextSeq: 10, sndUna: 1 }), LIMITS), WindowChange.DelayDecrease);
  // 0.8 x (60 - 50) / 100 = 8 %.
  assert.equal(w.bytes, 100_000 - Math.floor((100_000 * Math.floor((819 * 10_000) / 100_000)) / 1024));
  const v = new CongestionWindow();
  v.reset(100_000, 0);
  v.acked(ack({ queueingNs: 1_000_000, rttNs: 1_010_000, nextSeq: 10, sndUna: 1 }), LIMITS);
  assert.equal(v.bytes, 50_000, "never more than half at once");
  const off = new CongestionWindow();
  off.reset(100_000, 0);
  assert.notEqual(off.acked(ack({ queueingNs: 1_000_000, rttNs: 1_010_000, nextSeq: 10, sndUna: 1 }), { ...LIMITS, targetNs: 0 }), WindowChange.DelayDecrease);
});

test("loss halves the window once per round trip; a timeout sets the floor and slow start again; the floor holds", () => {
  const w = new CongestionWindow();
  w.reset(100_000, 0);
  w.acked(ack({ marked: 4, nextSeq: 10, sndUna: 5 }), LIMITS);
  w.lost(20, 10, LIMITS);
  assert.equal(w.bytes, 25_000);
  w.lost(20, 15, LIMITS);
  assert.equal(w.bytes, 25_000, "the same round trip");
  w.timedOut(30, LIMITS);
  assert.equal(w.bytes, LIMITS.minBytes);
  assert.equal(w.state, WindowState.SlowStart);
  for (let i = 0; i < 5; i++) w.lost(40 + i * 10, 40 + i * 10, LIMITS);
  assert.equal(w.bytes, LIMITS.minBytes);
});

test("the ACK body carries the echo of marks in bits 6-2 of the keys byte, apart from the SecY's bits, mod 32", () => {
  const body = new Uint8Array(ackBodySize(0));
  const view = new DataView(body.buffer);
  writeAckBody(view, 0, { credits: [1, 2, 3, 4, 5, 6], sack: [], keys: 0x82, echo: 37 });
  assert.equal(body[13], 0x82 | ((37 % ECHO_MODULUS) << 2));
  const back = readAckBody(view, 0, body.length);
  assert.ok(!("malformed" in back));
  assert.equal(back.keys, 0x82, "an older card reads the byte whole; its SecY looks at bit 7 and bits 1-0 only");
  assert.equal(back.echo, 5);
});

test("the congestion window is read-only and reads WindowBytes while congestion control is off; TargetNs and QueueBytes take any value", () => {
  const fabric = tunnelPair(new EventScheduler(), { mtu: 9000 }).a.fabric;
  assert.equal(fabric.readRegister(TUNNEL_BASE + TunnelReg.CwndBytes), TunnelDefault.WindowBytes);
  assert.equal(fabric.writeRegister(TUNNEL_BASE + TunnelReg.CwndBytes, 5), false);
  assert.equal(fabric.writeRegister(TUNNEL_BASE + TunnelReg.MinRttNs, 5), false);
  assert.equal(fabric.writeRegister(TUNNEL_BASE + TunnelReg.TargetNs, 0), true);
  assert.equal(fabric.writeRegister(TUNNEL_BASE + TunnelReg.QueueBytes, 0), true);
  const control = fabric.readRegister(TUNNEL_BASE + TunnelReg.Control);
  assert.equal(fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, control | TunnelControl.CongestionControl), true);
  assert.equal(fabric.readRegister(TUNNEL_BASE + TunnelReg.CwndBytes), 2 * 9000, "a session's first window: two frames of Mtu bytes");
});

test("the send queue holds QueueBytes per class: a full class is counted once, says so, and says when it has room again", async () => {
  const scheduler = new EventScheduler();
  const { a } = tunnelPair(scheduler, { mtu: 9000, registers: { [TunnelReg.QueueBytes]: 1000 } });
  const rooms: number[] = [];
  a.tunnel.onRoom(() => rooms.push(scheduler.now));
  const write = memoryWrite(0x100, 0, 0x1000, new Uint8Array(256));
  const read = memoryRead(0x100, 1, 0x1000, 4);
  while (a.tunnel.hasRoom(TlpClass.Posted)) assert.ok(a.tunnel.submit(write));
  assert.equal(a.tunnel.queuedTlps, 4, "four writes of 272 bytes pass 1000");
  assert.equal(a.tunnel.hasRoom(TlpClass.NonPosted), true, "a read has its own room");
  a.tunnel.submit(write);
  assert.equal(a.tunnel.counters[TunnelCounter.QueueFull], 1, "counted when it filled, not per TLP beyond");
  assert.ok(a.tunnel.submit(read), "beyond the limit nothing is refused: what the link sent before it saw the queue full still queues");
  await scheduler.run(scheduler.now + 100_000);
  assert.equal(a.tunnel.queuedTlps, 0);
  assert.equal(rooms.length, 1);
});

test("a PCIe link with flow control holds TLPs at the sender: a posted write passes a held read, nothing passes a held write, each class in order", async () => {
  const scheduler = new EventScheduler();
  const link = new PcieLink(scheduler, { generation: 3, lanes: 4, latencyNs: 150 });
  const got: Uint8Array[] = [];
  const room = { [TlpClass.Posted]: false, [TlpClass.NonPosted]: false, [TlpClass.Completion]: true };
  const device = { send: (_: Uint8Array) => {}, connect(send: (t: Uint8Array) => void) { this.send = send; }, receive: () => {} };
  link.plugDown(device);
  const resume = link.holdUpstream((tlp) => room[tlpClass(tlp) as TlpClass]);
  link.up.onTlp = (tlp) => got.push(tlp);
  const w1 = memoryWrite(0x100, 1, 0x1000, new Uint8Array(4));
  const r1 = memoryRead(0x100, 2, 0x1000, 4);
  const w2 = memoryWrite(0x100, 3, 0x1000, new Uint8Array(4));
  const c1 = completionWithData(0x100, 0x200, 4, new Uint8Array(4));
  device.send(r1);
  device.send(w1);
  device.send(c1); // behind a held write: it must wait though completions have room
  device.send(w2);
  await scheduler.run(scheduler.now + 10_000);
  assert.equal(got.length, 0);
  room[TlpClass.Posted] = true;
  resume();
  await scheduler.run(scheduler.now + 10_000);
  assert.deepEqual(got, [w1, c1, w2], "w1, then c1 (no older write waits any more), then w2; r1 still held");
  room[TlpClass.NonPosted] = true;
  resume();
  await scheduler.run(scheduler.now + 10_000);
  assert.deepEqual(got, [w1, c1, w2, r1]);
});

test("the chassis root serves its slots' held TLPs in turn when the tunnel has room", async () => {
  const scheduler = new EventScheduler();
  let room = 0;
  const order: number[] = [];
  const root = new ChassisRoot(scheduler, { submit: (_tlp, slot) => (order.push(slot), true), hasRoom: () => room-- > 0 }, 2);
  const devices = [0, 1].map(() => ({ send: (_: Uint8Array) => {}, connect(send: (t: Uint8Array) => void) { this.send = send; }, receive: () => {} }));
  devices.forEach((d, slot) => root.plug(slot, d));
  for (let i = 0; i < 3; i++) for (const d of devices) d.send(memoryWrite(0x100, i, 0x1000, new Uint8Array(4)));
  await scheduler.run(scheduler.now + 10_000);
  assert.deepEqual(order, []);
  room = 4;
  root.room();
  await scheduler.run(scheduler.now + 10_000);
  assert.deepEqual(order, [0, 1, 0, 1]);
});

test("marks echoed in ACKs shrink the sender's window, through MACsec; without congestion control they are counted and nothing else", async () => {
  const results = [];
  for (const congestionControl of [true, false]) {
    const scheduler = new EventScheduler();
    // Every tagged frame crossing the switch is marked (K = 0); the second path is the switched one.
    const pair = tunnelPair(scheduler, {
      mtu: 9000, congestionControl, macsec: {}, registers: { [TunnelReg.Vlan]: 10 },
      second: { switched: true, switchConfig: { ecn: { kMinBytes: 0, kMaxBytes: 0 } } },
    });
    await scheduler.run(scheduler.now + 200_000);
    const write = memoryWrite(0x100, 0, 0x1000, new Uint8Array(256));
    let delivered = 0;
    pair.b.onTlp = (tlp, cls, tunnel) => {
      delivered++;
      tunnel.release(cls, tlp);
    };
    for (let i = 0; i < 4000; i++) pair.a.tunnel.submit(write);
    await scheduler.run(scheduler.now + 20_000_000);
    const a = pair.a.tunnel.counters;
    results.push({ delivered, ecn: a[TunnelCounter.EcnDecreases], marked: pair.b.tunnel.counters[TunnelCounter.RxCongested], cwnd: pair.a.fabric.readRegister(TUNNEL_BASE + TunnelReg.CwndBytes) });
  }
  const [on, off] = results;
  assert.equal(on.delivered, 4000);
  assert.equal(off.delivered, 4000);
  assert.ok(on.marked > 0 && off.marked > 0);
  assert.ok(on.ecn > 0, "the echo reached the sender and it acted");
  assert.ok(on.cwnd < 2 * 9000, `window ${on.cwnd}`);
  assert.equal(off.ecn, 0);
  assert.equal(off.cwnd, TunnelDefault.WindowBytes);
});
