// A tunnel over two paths (docs/wire-format.md, "Paths"): the card's two Ethernet ports, each
// cabled to the peer's. DATA goes on both, sequence numbers stay the session's, a path that goes
// silent or loses its carrier hands what it had in flight to the other, and nothing is lost,
// duplicated or reordered.

import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { tunnelPair, enablePath, MAC_A, MAC_B, type PairOptions, type PairSide, type Pair } from "../../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker, type TrafficMix } from "../../tools/sim/traffic.ts";
import {
  TunnelCounter, TunnelReg, SecyReg, FabricEventKind, TUNNEL_BASE, CardReg, PORTS, PORT_BASE, PORT_STRIDE, PortReg, PortStatus, PATH_BASE, PATH_SIZE, PathReg,
  PathStatus, PathControl,
} from "../../board/map/registers.ts";
import { memoryWrite } from "../../board/pcie/tlp.ts";
import { payloadLimitBps } from "../../board/tunnel/wire.ts";
import { portAddress } from "../../board/fabric.ts";
import { macKey } from "../../board/ethernet/frame.ts";

const WRITES: TrafficMix = { posted: 1, nonPosted: 0, completion: 0 };
const MIXED: TrafficMix = { posted: 6, nonPosted: 2, completion: 2 };

function pathReg(side: PairSide, port: number, reg: PathReg): number {
  return side.fabric.readRegister(PATH_BASE + PATH_SIZE * port + reg);
}

interface Flow {
  pair: Pair;
  scheduler: EventScheduler;
  toB: DeliveryChecker;
  toA: DeliveryChecker;
  /** When the last TLP each way arrived. */
  doneAt: number;
}

/** Streams `count` TLPs each way (b to a only with `both`), keeping the queues topped up; `during` runs once traffic flows. */
async function flow(options: PairOptions, count: number, mix: TrafficMix, both: boolean, during?: (pair: Pair, scheduler: EventScheduler) => void): Promise<Flow> {
  const scheduler = new EventScheduler();
  const pair = tunnelPair(scheduler, options);
  const { a, b } = pair;
  const streams = [new TlpStream(xoroshiro128plus(3), mix, 256), new TlpStream(xoroshiro128plus(4), mix, 256)];
  const toB = new DeliveryChecker(streams[0]);
  const toA = new DeliveryChecker(streams[1]);
  const wanted = both ? count : 0;
  let doneAt = 0;
  const settle = () => {
    if (toB.received.length === count && toA.received.length === wanted) doneAt = scheduler.now;
  };
  b.onTlp = (tlp, cls, tunnel) => {
    toB.deliver(tlp);
    tunnel.release(cls, tlp);
    settle();
  };
  a.onTlp = (tlp, cls, tunnel) => {
    toA.deliver(tlp);
    tunnel.release(cls, tlp);
    settle();
  };
  const feed = () => {
    while (a.tunnel.queuedTlps < 256 && streams[0].count < count) assert.ok(a.tunnel.submit(streams[0].next()));
    while (b.tunnel.queuedTlps < 256 && streams[1].count < wanted) assert.ok(b.tunnel.submit(streams[1].next()));
    if (streams[0].count < count || streams[1].count < wanted) scheduler.at(scheduler.now + 1_000, feed);
  };
  await scheduler.run(20_000);
  feed();
  during?.(pair, scheduler);
  await scheduler.run(2e9);
  return { pair, scheduler, toB, toA, doneAt };
}

function assertExactlyOnce(f: Flow, count: number, both: boolean): void {
  assert.deepEqual(f.toB.errors, []);
  assert.deepEqual(f.toA.errors, []);
  assert.equal(f.toB.received.length, count, "every TLP a→b delivered once, in order");
  assert.equal(f.toA.received.length, both ? count : 0, "every TLP b→a delivered once, in order");
}

const events = (side: PairSide, kind: FabricEventKind) => side.events.filter((e) => e.kind === kind);

test("a stream of 256-byte writes fills both 10GbE paths: more than one link carries, every write once and in order", async () => {
  const count = 40_000;
  const f = await flow({ mtu: 9000, second: {} }, count, WRITES, false);
  assertExactlyOnce(f, count, false);
  const { a } = f.pair;
  const one = payloadLimitBps(9000, 256, 16, 10e9);
  const gbps = (count * 256 * 8) / (f.doneAt - 20_000);
  assert.ok(gbps * 1e9 > 1.9 * one, `goodput ${gbps.toFixed(2)} Gb/s over two links of ${(one / 1e9).toFixed(2)} Gb/s each`);
  const frames = [0, 1].map((p) => pathReg(a, p, PathReg.TxFrames));
  assert.ok(Math.min(...frames) > 0.4 * (frames[0] + frames[1]), `frames per path ${frames}`);
  assert.equal(events(a, FabricEventKind.PathSilent).length, 0);
});

test("paths of 10 m and 2 km with 1 % loss on the long one: mixed traffic both ways arrives exactly once, in order", async () => {
  const count = 6000;
  const f = await flow({ link: { lengthM: 10 }, second: { link: { lengthM: 2000, seed: 9, aToB: { loss: 0.01 }, bToA: { loss: 0.01 } } } }, count, MIXED, true);
  assertExactlyOnce(f, count, true);
  const { a, b } = f.pair;
  assert.ok(pathReg(a, 1, PathReg.Resent) + pathReg(b, 1, PathReg.Resent) > 0, "frames lost on the long path went again");
  for (const side of [a, b]) assert.ok(pathReg(side, 1, PathReg.RttNs) > pathReg(side, 0, PathReg.RttNs), "the long path measures the longer round trip");
  assert.equal(events(a, FabricEventKind.PeerSilent).length + events(b, FabricEventKind.PeerSilent).length, 0);
});

test("MACsec over two paths: one SecY for both, every frame validated whichever path it took, nothing lost across rekeys", async () => {
  const count = 6000;
  const f = await flow({ macsec: { registers: { [SecyReg.RekeyFrames]: 500 } }, link: { lengthM: 10 }, second: { link: { lengthM: 500, seed: 5, aToB: { loss: 0.01 } } } }, count, MIXED, true);
  assertExactlyOnce(f, count, true);
  const { a, b } = f.pair;
  for (const side of [a, b]) {
    const c = side.tunnel.counters;
    assert.equal(c[TunnelCounter.RxBadIcv] + c[TunnelCounter.RxUnknownSci] + c[TunnelCounter.RxUntagged], 0);
    assert.ok(c[TunnelCounter.SaSwitches] > 3, `${c[TunnelCounter.SaSwitches]} rekeys`);
    assert.ok(pathReg(side, 0, PathReg.RxFrames) > 0 && pathReg(side, 1, PathReg.RxFrames) > 0, "frames came in on both paths");
  }
});

test("frames a switch marks congestion experienced (the tag's DEI) reach the tunnel marked through MACsec and are counted (RxCongested); the direct path's none", async () => {
  const count = 4000;
  const ecn = { ecn: { kMinBytes: 0, kMaxBytes: 0 } }; // every tagged frame marked
  const f = await flow({ macsec: {}, registers: { [TunnelReg.Vlan]: 10 }, second: { switched: true, switchConfig: ecn } }, count, MIXED, true);
  assertExactlyOnce(f, count, true);
  for (const side of [f.pair.a, f.pair.b]) {
    const c = side.tunnel.counters;
    assert.equal(c[TunnelCounter.RxBadIcv], 0, "a marked frame still verifies: the tag is outside the ICV");
    assert.ok(pathReg(side, 1, PathReg.RxFrames) > 100, "the switched path carried");
    assert.equal(c[TunnelCounter.RxCongested], pathReg(side, 1, PathReg.RxFrames), "every frame that crossed the switch, and none of the direct cable's");
  }
});

test("a cable pulled under load: its path goes silent at the carrier loss, its frames go on the other, nothing is lost; plugged back, it carries again", async () => {
  const count = 30_000;
  let cutAt = 0;
  let backAt = 0;
  let sentBeforeBack = 0;
  const f = await flow({ mtu: 9000, second: {} }, count, MIXED, true, (pair, scheduler) => {
    cutAt = scheduler.now + 300_000;
    backAt = cutAt + 2_000_000;
    scheduler.at(cutAt, () => pair.second[0].setUp(false));
    scheduler.at(backAt, () => {
      sentBeforeBack = pathReg(pair.a, 1, PathReg.TxFrames);
      pair.second[0].setUp(true);
    });
  });
  assertExactlyOnce(f, count, true);
  const { a, b } = f.pair;
  assert.ok(f.doneAt > backAt, "the stream outlasted the cut");
  for (const side of [a, b]) {
    assert.deepEqual(events(side, FabricEventKind.PathSilent).map((e) => [e.arg, e.timeNs]), [[1, cutAt]], "silent at the carrier loss");
    const heard = events(side, FabricEventKind.PathHeard);
    assert.equal(heard.length, 1);
    assert.equal(heard[0].arg, 1);
    assert.ok(heard[0].timeNs > backAt && heard[0].timeNs < backAt + 100_000, `heard again ${heard[0].timeNs - backAt} ns after the plug`);
    assert.equal(events(side, FabricEventKind.PeerSilent).length, 0, "the session never went silent");
    assert.ok(pathReg(side, 1, PathReg.Resent) > 0, "what was on the cut path went again");
  }
  assert.ok(pathReg(a, 1, PathReg.TxFrames) > sentBeforeBack + 100, "the path carries DATA again");
  assert.equal(pathReg(a, 1, PathReg.Status), PathStatus.Enabled);
});

test("a path cut behind a switch goes silent after SilenceNs without a frame, and what it held goes on the other path at once", async () => {
  const count = 20_000;
  let cutAt = 0;
  let firstResend = -1;
  const f = await flow({ mtu: 9000, registers: { [TunnelReg.SilenceNs]: 200_000, [TunnelReg.KeepaliveNs]: 25_000 }, second: { switched: true } }, count, WRITES, false, (pair, scheduler) => {
    cutAt = scheduler.now + 200_000;
    scheduler.at(cutAt, () => pair.second[1].setUp(false)); // the switch's cable to card b
    const watch = () => {
      if (firstResend < 0 && pathReg(pair.a, 1, PathReg.Resent) > 0) firstResend = scheduler.now;
      else scheduler.at(scheduler.now + 1_000, watch);
    };
    scheduler.at(cutAt, watch);
  });
  assertExactlyOnce(f, count, false);
  const { a, b } = f.pair;
  const silent = events(a, FabricEventKind.PathSilent);
  assert.equal(silent.length, 1);
  assert.ok(silent[0].timeNs >= cutAt + 200_000 - 25_000 && silent[0].timeNs <= cutAt + 200_000, `card a: silent ${silent[0].timeNs - cutAt} ns after the cut`);
  assert.deepEqual(events(b, FabricEventKind.PathSilent).map((e) => e.timeNs), [cutAt], "card b lost its carrier");
  assert.ok(firstResend >= 0 && firstResend <= silent[0].timeNs + 1_000, `first resend ${firstResend - cutAt} ns after the cut`);
  assert.equal(events(a, FabricEventKind.PeerSilent).length, 0);
});

test("with both paths silent the session is silent: PeerSilent once, and the first frame on either path resumes it", async () => {
  const scheduler = new EventScheduler();
  const pair = tunnelPair(scheduler, { registers: { [TunnelReg.SilenceNs]: 200_000 }, second: {} });
  await scheduler.run(100_000);
  pair.link.setUp(false);
  pair.second[0].setUp(false);
  await scheduler.run(600_000);
  const { a } = pair;
  assert.equal(events(a, FabricEventKind.PathSilent).length, 2);
  assert.equal(events(a, FabricEventKind.PeerSilent).length, 1);
  pair.second[0].setUp(true);
  await scheduler.run(700_000);
  assert.equal(events(a, FabricEventKind.PeerHeard).length, 1);
  assert.deepEqual(events(a, FabricEventKind.PathHeard).map((e) => e.arg), [1]);
});

test("a lone request takes the path with the shorter round trip", async () => {
  const scheduler = new EventScheduler();
  const pair = tunnelPair(scheduler, { link: { lengthM: 2000 }, second: { link: { lengthM: 3 } } });
  const { a, b } = pair;
  let arrived = -1;
  b.onTlp = (tlp, cls, tunnel) => {
    arrived = scheduler.now;
    tunnel.release(cls, tlp);
  };
  // A few writes one at a time give both paths a round trip.
  for (let i = 0; i < 40; i++) {
    a.tunnel.submit(memoryWrite(1, i, 0x1000, new Uint8Array(4)));
    await scheduler.run(scheduler.now + 60_000);
  }
  assert.ok(pathReg(a, 1, PathReg.RttNs) > 0 && pathReg(a, 1, PathReg.RttNs) < pathReg(a, 0, PathReg.RttNs));
  const sentAt = scheduler.now;
  a.tunnel.submit(memoryWrite(1, 99, 0x1000, new Uint8Array(4)));
  await scheduler.run(sentAt + 60_000);
  // 163 ns over 3 m (perhaps behind a keepalive there), more than 10 µs over 2 km.
  assert.ok(arrived - sentAt < pair.second[0].transitNs(64) + pair.second[0].transitNs(84), `arrived after ${arrived - sentAt} ns: over the 3 m cable, not the 2 km one`);
});

test("port and path registers: addresses, carrier, a first path that is the tunnel block's, and writes that are refused", async () => {
  const scheduler = new EventScheduler();
  const pair = tunnelPair(scheduler, { second: {} });
  const { a } = pair;
  await scheduler.run(50_000);
  assert.equal(a.fabric.readRegister(CardReg.Ports), PORTS);
  for (let p = 0; p < PORTS; p++) {
    const own = portAddress(MAC_A, p);
    const high = a.fabric.readRegister(PORT_BASE + PORT_STRIDE * p + PortReg.MacHigh);
    const low = a.fabric.readRegister(PORT_BASE + PORT_STRIDE * p + PortReg.MacLow);
    assert.equal(high * 2 ** 32 + low, macKey(own));
    assert.equal(a.fabric.readRegister(PORT_BASE + PORT_STRIDE * p + PortReg.Status), PortStatus.Carrier | PortStatus.Connected);
    assert.ok(a.fabric.readRegister(PORT_BASE + PORT_STRIDE * p + PortReg.TxFrames) > 0);
  }
  assert.notEqual(macKey(portAddress(MAC_A, 1)), macKey(MAC_B), "port addresses of different cards differ");
  pair.second[0].setUp(false);
  assert.equal(a.fabric.readRegister(PORT_BASE + PORT_STRIDE + PortReg.Status), PortStatus.Connected);
  assert.deepEqual(a.events.filter((e) => e.kind === FabricEventKind.CarrierDown).map((e) => e.arg), [1], "CarrierDown names the port");

  // The first path's block mirrors the tunnel block and is not written through.
  assert.equal(pathReg(a, 0, PathReg.PeerMacLow), a.fabric.readRegister(TUNNEL_BASE + TunnelReg.PeerMacLow));
  assert.equal(pathReg(a, 0, PathReg.Status), PathStatus.Enabled);
  const errors = a.fabric.readRegister(CardReg.RegErrors);
  assert.equal(a.fabric.writeRegister(PATH_BASE + PathReg.Control, 0), false, "the first path is the tunnel's");
  assert.equal(a.fabric.writeRegister(PATH_BASE + PATH_SIZE + PathReg.PeerMacLow, 1), false, "no new address while the path is on");
  assert.equal(a.fabric.writeRegister(PATH_BASE + PATH_SIZE + PathReg.Control, 2), false, "unknown control bits");
  assert.equal(a.fabric.writeRegister(PATH_BASE + PATH_SIZE + PathReg.TxFrames, 0), false, "counters are read-only");
  assert.equal(a.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Port, 1), false, "the first path's port is set while the tunnel is off");
  assert.equal(a.fabric.readRegister(CardReg.RegErrors), errors + 5);

  // A path without a peer address cannot be enabled; a disabled path moves its frames and stays quiet.
  assert.equal(a.fabric.writeRegister(PATH_BASE + PATH_SIZE + PathReg.Control, 0), true);
  assert.equal(pathReg(a, 1, PathReg.Status), 0);
  const quiet = pathReg(a, 1, PathReg.TxFrames);
  pair.second[0].setUp(true);
  await scheduler.run(scheduler.now + 500_000);
  assert.equal(pathReg(a, 1, PathReg.TxFrames), quiet, "a disabled path sends nothing");
  enablePath(a.fabric, 0, 1, portAddress(MAC_B, 1));
  await scheduler.run(scheduler.now + 100_000);
  assert.ok(pathReg(a, 1, PathReg.TxFrames) > quiet, "enabled again, it announces itself");
  assert.equal(a.fabric.writeRegister(PATH_BASE + PATH_SIZE + PathReg.Control, PathControl.Enable), true);
});

test("a shut tunnel forgets every path's peer", async () => {
  const scheduler = new EventScheduler();
  const { a } = tunnelPair(scheduler, { second: {} });
  await scheduler.run(50_000);
  assert.equal(a.tunnel.peerKey(1), macKey(portAddress(MAC_B, 1)));
  assert.ok(a.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, 1 << 2)); // Reset without Enable: a shut
  assert.equal(a.tunnel.peerKey(1), -1);
  assert.equal(a.tunnel.peerKey(0), 0);
  assert.equal(pathReg(a, 1, PathReg.Control), 0);
});
