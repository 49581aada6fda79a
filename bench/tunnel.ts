// Tunnel data path: the analytic payload limit of the encapsulation, measured goodput of a
// saturating stream of 256-byte memory writes on one 10GbE link for both retransmission
// policies under random loss, and the simulator's own speed. Fixed seeds throughout.

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { payloadLimitBps } from "../board/tunnel/wire.ts";
import { EventScheduler } from "../tools/sim/scheduler.ts";
import { tunnelPair } from "../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker } from "../tools/sim/traffic.ts";
import type { Section } from "./metrics.ts";

export const RATE_BPS = 10e9;
export const PAYLOAD = 256;
/** 4DW memory write header: 64-bit addresses, as DMA above 4 GiB uses. */
export const HEADER = 16;
/** Two buildings apart: 1 km of fibre, 5 µs each way, plus the default PHY latency. */
export const CABLE_M = 1000;
export const MTUS = [1500, 9000];
export const LOSSES = [0, 0.1, 1]; // percent

export interface GoodputRun {
  goodputBps: number;
  tlps: number;
  wallSeconds: number;
  complete: boolean;
}

/** Sends `count` writes from a to b as fast as the tunnel takes them; goodput from first submit to last delivery. */
export async function measureGoodput(mtu: number, lossPercent: number, goBackN: boolean, count: number, seed = 1): Promise<GoodputRun> {
  const scheduler = new EventScheduler();
  const loss = lossPercent / 100;
  const { a, b } = tunnelPair(scheduler, { mtu, goBackN, link: { seed, lengthM: CABLE_M, aToB: { loss }, bToA: { loss } } });
  const stream = new TlpStream(xoroshiro128plus(seed), { posted: 1, nonPosted: 0, completion: 0 }, PAYLOAD);
  const checker = new DeliveryChecker(stream);
  let first = -1;
  let last = 0;
  b.onTlp = (tlp, cls, tunnel) => {
    checker.deliver(tlp);
    tunnel.release(cls, tlp);
    if (checker.received.length === count) {
      last = scheduler.now;
      scheduler.stop();
    }
  };
  // Keep the transmit queue topped up: a saturating source never lets the tunnel wait.
  const feed = () => {
    if (first < 0 && a.tunnel.peerKey() !== 0) first = scheduler.now;
    while (a.tunnel.queuedTlps < 256 && stream.count < count) a.tunnel.submit(stream.next());
    if (stream.count < count) scheduler.at(scheduler.now + 1_000, feed);
  };
  await scheduler.run(20_000); // credits announced, nothing else on the wire
  feed();
  const start = performance.now();
  await scheduler.run(60e9);
  const wallSeconds = (performance.now() - start) / 1000;
  return { goodputBps: (count * PAYLOAD * 8) / ((last - first) / 1e9), tlps: count, wallSeconds, complete: checker.complete() };
}

/** Events per wall second through the scheduler with `pending` events queued at once, each scheduling one more. */
export async function schedulerSpeed(pending: number): Promise<number> {
  const scheduler = new EventScheduler();
  let x = 1;
  const random = () => (x = (x * 48271) % 0x7fffffff);
  let left = pending;
  const action = () => {
    if (left-- > 0) scheduler.at(scheduler.now + (random() % 1_000_000), action);
  };
  for (let i = 0; i < pending; i++) scheduler.at(random() % 1_000_000, action);
  const start = performance.now();
  await scheduler.run(Infinity);
  return scheduler.executed / ((performance.now() - start) / 1000);
}

export async function tunnelBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  const rows: Section["rows"] = [];
  const notes: string[] = [];
  for (const mtu of MTUS) {
    rows.push({ id: `limit_gbps.mtu${mtu}.mps${PAYLOAD}`, metric: { value: payloadLimitBps(mtu, PAYLOAD, HEADER, RATE_BPS) / 1e9, unit: "Gb/s" } });
  }
  const count = options.quick ? 50_000 : 200_000;
  for (const mtu of MTUS) {
    for (const loss of LOSSES) {
      for (const policy of ["selective", "gobackn"] as const) {
        progress(`goodput, MTU ${mtu}, ${loss} % loss, ${policy} (${count} writes)`);
        const run = await measureGoodput(mtu, loss, policy === "gobackn", count);
        if (!run.complete) notes.push(`goodput run MTU ${mtu} loss ${loss} % ${policy}: delivery check failed`);
        const id = `goodput_gbps.mtu${mtu}.mps${PAYLOAD}.loss${loss}.${policy}`;
        const baseline = policy === "gobackn" ? `goodput_gbps.mtu${mtu}.mps${PAYLOAD}.loss${loss}.selective` : `limit_gbps.mtu${mtu}.mps${PAYLOAD}`;
        rows.push({ id, metric: { value: run.goodputBps / 1e9, unit: "Gb/s" }, baseline });
      }
    }
  }
  const simCount = options.quick ? 200_000 : 1_000_000;
  progress(`simulator speed: ${simCount} writes at MTU 9000`);
  const run = await measureGoodput(9000, 0, false, simCount);
  rows.push({ id: "sim_tlps_per_s", metric: { value: run.tlps / run.wallSeconds, unit: "TLPs/s" } });
  progress("scheduler: 1 000 000 pending events");
  rows.push({ id: "sim_events_per_s", metric: { value: await schedulerSpeed(1_000_000), unit: "events/s" } });
  notes.push(`goodput: ${PAYLOAD}-byte memory writes (4DW headers), 10GbE, ${CABLE_M} m of fibre, loss on both directions; native PCIe Gen1 x4 carries about 7.4 Gb/s of payload at this size`);
  return { rows, notes };
}
