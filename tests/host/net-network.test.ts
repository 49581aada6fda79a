import { test } from "node:test";
import assert from "node:assert/strict";
import { BROADCAST, encodeFrame, ETHERTYPE_IOV } from "../../board/ethernet/frame.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { Network } from "../../tools/sim/net/network.ts";
import { Recorder } from "../../tools/sim/net/devices.ts";

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function frame(src: number, dst: Uint8Array | number, seq: number, size: number): Uint8Array {
  const payload = new Uint8Array(size);
  new DataView(payload.buffer).setUint32(0, seq);
  return encodeFrame({ dst: typeof dst === "number" ? mac(dst) : dst, src: mac(src), vlan: null, etherType: ETHERTYPE_IOV, payload });
}

/**
 * Two switches joined by an impaired trunk that goes down once; hosts 1 and 2 in VLAN 10,
 * hosts 3 and 4 in VLAN 20, one on each switch. Every host echoes what it receives once.
 */
async function run(seed: number) {
  const s = new EventScheduler();
  const net = new Network(s, seed);
  net.addSwitch("sw1", { ports: [{ mode: "access", pvid: 10 }, { mode: "access", pvid: 20 }, { mode: "trunk", allowed: [10, 20] }] });
  net.addSwitch("sw2", { ports: [{ mode: "access", pvid: 10 }, { mode: "access", pvid: 20 }, { mode: "trunk", allowed: [10, 20] }] });
  const hosts = [1, 2, 3, 4].map(() => new Recorder(s));
  const links = [
    net.connect("h1", hosts[0], { switch: "sw1", port: 0 }, { aToB: { loss: 0.01 } }),
    net.connect("h3", hosts[2], { switch: "sw1", port: 1 }, { rateBps: 1e9 }),
    net.connect("h2", hosts[1], { switch: "sw2", port: 0 }, { rateBps: 25e9, lengthM: 30 }),
    net.connect("h4", hosts[3], { switch: "sw2", port: 1 }),
    net.connect("trunk", { switch: "sw1", port: 2 }, { switch: "sw2", port: 2 }, {
      rateBps: 40e9, lengthM: 100,
      aToB: { gilbertElliott: { p: 0.01, r: 0.3 }, corruption: 0.01, duplication: 0.01, reorder: { probability: 0.05, delayNs: 2000 } },
      bToA: { loss: 0.02, corruption: 0.02 },
      outages: [{ downAtNs: 2_000_000, upAtNs: 2_500_000 }],
    }),
  ];
  const macs = [1, 2, 3, 4];
  const peer = [1, 0, 3, 2];
  hosts.forEach((h, i) => {
    h.onReceive = (f, port) => {
      if (f[5] !== macs[i] || f[11] >= 100) return; // echo unicast to me once
      port.send(frame(100 + macs[i], f.subarray(6, 12), 0, f.length - 18));
    };
  });
  // Everyone announces itself, then sends 400 frames of varying size to its VLAN peer.
  hosts.forEach((_, i) => links[[0, 2, 1, 3][i]].a.send(frame(macs[i], BROADCAST, 0, 46)));
  const portOf = (i: number) => links[[0, 2, 1, 3][i]].a;
  for (let k = 0; k < 400; k++) {
    for (let i = 0; i < 4; i++) {
      s.at(10_000 + k * 10_000 + i * 123, () => void portOf(i).send(frame(macs[i], macs[peer[i]], k, 46 + ((k * 37 + i * 101) % 1400))));
    }
  }
  await s.run(10_000_000);
  const log = hosts.flatMap((h) => h.frames.map((r) => `${r.timeNs} ${r.port} ${hex(r.frame)}`));
  return { log, counters: net.counters(), net };
}

test("two runs with the same seed deliver identical frames at identical times; another seed differs", async () => {
  const one = await run(1234);
  const two = await run(1234);
  assert.ok(one.log.length > 2000);
  assert.deepEqual(two.log, one.log);
  assert.deepEqual(two.counters, one.counters);
  const other = await run(1235);
  assert.notDeepEqual(other.log, one.log);
  // The impairments really did act.
  const trunk = one.counters.links.trunk;
  assert.ok(trunk.aToB.lostFrames > 0 && trunk.aToB.corruptedFrames > 0 && trunk.aToB.duplicatedFrames > 0 && trunk.aToB.reorderedFrames > 0);
  assert.ok(trunk.aToB.downDropFrames > 0 || trunk.bToA.downDropFrames > 0);
  assert.equal(one.counters.switches.sw2.badFcs, trunk.aToB.corruptedFrames);
  assert.equal(one.counters.switches.sw1.badFcs, trunk.bToA.corruptedFrames);
});

test("network counters are plain data covering every link direction and switch port", async () => {
  const { counters, net } = await run(7);
  const json = JSON.parse(JSON.stringify(counters));
  assert.deepEqual(json, counters);
  assert.deepEqual(Object.keys(counters.links), ["h1", "h3", "h2", "h4", "trunk"]);
  assert.deepEqual(Object.keys(counters.switches), ["sw1", "sw2"]);
  assert.equal(counters.switches.sw1.ports.length, 3);
  for (const { aToB, bToA } of Object.values(counters.links)) {
    for (const c of [aToB, bToA]) {
      assert.equal(c.sentFrames + c.duplicatedFrames, c.deliveredFrames + c.tailDropFrames + c.lostFrames + c.downDropFrames);
    }
  }
  assert.deepEqual(net.link("trunk").history, [{ timeNs: 2_000_000, up: false }, { timeNs: 2_500_000, up: true }]);
});

test("a link's random streams depend on its name and the seed, not on the other links or the order they were built in", async () => {
  const lost = async (order: string[]) => {
    const s = new EventScheduler();
    const net = new Network(s, 77);
    for (const id of order) net.connect(id, null, null, { aToB: { loss: 0.2 }, a: { bufferBytes: 1 << 24 } });
    const x = net.link("x");
    const seen: number[] = [];
    x.tap = (f) => void seen.push(new DataView(f.buffer, f.byteOffset).getUint32(14));
    for (let i = 0; i < 2000; i++) x.a.send(frame(1, 2, i, 46));
    for (const id of order) if (id !== "x") for (let i = 0; i < 100; i++) net.link(id).a.send(frame(1, 2, i, 46));
    await s.run(1e9);
    return seen;
  };
  const alone = await lost(["x"]);
  assert.deepEqual(await lost(["a", "x", "b"]), alone);
  assert.deepEqual(await lost(["b", "a", "x"]), alone);
});

test("names are unique across links and switches, and unknown names are reported", () => {
  const net = new Network(new EventScheduler());
  net.addSwitch("s", { ports: [{ mode: "access" }] });
  assert.throws(() => net.connect("s", null, null), /already has a link or switch named s/);
  assert.throws(() => net.connect("l", null, { switch: "nope", port: 0 }), /no switch named nope/);
  assert.throws(() => net.link("zz"), /no link named zz/);
  assert.throws(() => new Network(new EventScheduler(), 0.5), /safe integer/);
});
