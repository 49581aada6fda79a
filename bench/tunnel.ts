// Tunnel data path: the analytic payload limit of the encapsulation, measured goodput of a
// saturating stream of 256-byte memory writes on one 10GbE link for both retransmission
// policies under random loss, and the simulator's own speed. Fixed seeds throughout.

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { payloadLimitBps } from "../board/tunnel/wire.ts";
import { EventScheduler } from "../tools/sim/scheduler.ts";
import { tunnelPair } from "../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker } from "../tools/sim/traffic.ts";
import { lineChart } from "./svg.ts";
import type { Figure, Section } from "./metrics.ts";

export const RATE_BPS = 10e9;
export const PAYLOAD = 256;
/** 4DW memory write header: 64-bit addresses, as DMA above 4 GiB uses. */
export const HEADER = 16;
/** Two buildings apart: 1 km of fibre, 5 µs each way, plus the default PHY latency. */
export const CABLE_M = 1000;
export const MTUS = [1500, 9000];
export const LOSSES = [0, 0.1, 0.5, 1, 2, 3, 4, 5]; // percent

export interface GoodputRun {
  goodputBps: number;
  tlps: number;
  wallSeconds: number;
  complete: boolean;
}

/** Sends `count` writes from a to b as fast as the tunnel takes them; goodput from first submit to last delivery. */
export async function measureGoodput(mtu: number, lossPercent: number, goBackN: boolean, count: number, seed = 1, macsec = false): Promise<GoodputRun> {
  const scheduler = new EventScheduler();
  const loss = lossPercent / 100;
  const { a, b } = tunnelPair(scheduler, { mtu, goBackN, link: { seed, lengthM: CABLE_M, aToB: { loss }, bToA: { loss } }, ...(macsec ? { macsec: {} } : {}) });
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

/**
 * Payload rate of native PCIe Gen1 x4 for memory writes of `payload` bytes with a `header`-byte
 * header: 4 lanes of 2.5 GT/s with 8b/10b coding carry 8 Gb/s of bytes; each TLP adds STP and
 * END framing (1 byte each), a 2-byte sequence number and a 4-byte LCRC (PCI Express Base
 * Specification, Physical and Data Link Layers). Ack and UpdateFC DLLPs are not counted, so the
 * real figure is a little lower.
 */
export function nativeGen1x4Bps(payload: number, header: number): number {
  return (8e9 * payload) / (payload + header + 1 + 1 + 2 + 4);
}

/** Goodput against loss at one MTU: both policies measured, the analytic limits and native PCIe drawn for reference. */
function goodputFigure(mtu: number, measured: Record<"selective" | "gobackn", { loss: number; gbps: number }[]>): Figure {
  const limit = payloadLimitBps(mtu, PAYLOAD, HEADER, RATE_BPS) / 1e9;
  const native = nativeGen1x4Bps(PAYLOAD, HEADER) / 1e9;
  const ends = [LOSSES[0], LOSSES[LOSSES.length - 1]];
  return {
    file: `goodput-mtu${mtu}.svg`,
    title: `Goodput against frame loss, MTU ${mtu}`,
    svg: lineChart({
      title: `Goodput of ${PAYLOAD}-byte writes over 10GbE, MTU ${mtu}, ${CABLE_M} m`,
      x: { label: "frame loss, each direction (%)", min: 0, max: ends[1] },
      y: { label: "goodput (Gb/s)", min: 0, max: 10 },
      series: [
        { label: "selective repeat", points: measured.selective.map((m) => ({ x: m.loss, y: m.gbps })) },
        { label: "go-back-N (baseline)", points: measured.gobackn.map((m) => ({ x: m.loss, y: m.gbps })) },
        { label: "analytic limit × (1 − loss)", style: "ref", points: ends.map((loss) => ({ x: loss, y: limit * (1 - loss / 100) })) },
        { label: "native PCIe Gen1 x4", style: "ref", points: ends.map((loss) => ({ x: loss, y: native })) },
      ],
    }),
    caption: `A saturating stream of ${PAYLOAD}-byte memory writes (4DW headers) from one tunnel engine to the other over 10GbE and ${CABLE_M} m of fibre, random frame loss in both directions (acknowledgements are lost too), seed 1. ` +
      `The analytic limit is what the encapsulation leaves of 10 Gb/s at this MTU (docs/wire-format.md, "Throughput limit"): ${limit.toFixed(3)} Gb/s, times (1 − loss) for the retransmissions a lossy link needs at the least. ` +
      `Native PCIe Gen1 x4 is ${native.toFixed(3)} Gb/s of payload at this TLP size (8 Gb/s after 8b/10b, 24 bytes of header, framing, sequence number and LCRC per TLP; DLLPs not counted).`,
  };
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
  const count = options.quick ? 20_000 : 200_000;
  const figures: Figure[] = [];
  for (const mtu of MTUS) {
    const measured: Parameters<typeof goodputFigure>[1] = { selective: [], gobackn: [] };
    for (const loss of LOSSES) {
      for (const policy of ["selective", "gobackn"] as const) {
        progress(`goodput, MTU ${mtu}, ${loss} % loss, ${policy} (${count} writes)`);
        const run = await measureGoodput(mtu, loss, policy === "gobackn", count);
        if (!run.complete) notes.push(`goodput run MTU ${mtu} loss ${loss} % ${policy}: delivery check failed`);
        const id = `goodput_gbps.mtu${mtu}.mps${PAYLOAD}.loss${loss}.${policy}`;
        const baseline = policy === "gobackn" ? `goodput_gbps.mtu${mtu}.mps${PAYLOAD}.loss${loss}.selective` : `limit_gbps.mtu${mtu}.mps${PAYLOAD}`;
        rows.push({ id, metric: { value: run.goodputBps / 1e9, unit: "Gb/s" }, baseline });
        measured[policy].push({ loss, gbps: run.goodputBps / 1e9 });
      }
    }
    figures.push(goodputFigure(mtu, measured));
  }
  rows.push({ id: `native_gbps.gen1x4.mps${PAYLOAD}`, metric: { value: nativeGen1x4Bps(PAYLOAD, HEADER) / 1e9, unit: "Gb/s" } });
  const simCount = options.quick ? 200_000 : 1_000_000;
  progress(`simulator speed: ${simCount} writes at MTU 9000`);
  const run = await measureGoodput(9000, 0, false, simCount);
  rows.push({ id: "sim_tlps_per_s", metric: { value: run.tlps / run.wallSeconds, unit: "TLPs/s" } });
  progress("scheduler: 1 000 000 pending events");
  rows.push({ id: "sim_events_per_s", metric: { value: await schedulerSpeed(1_000_000), unit: "events/s" } });
  notes.push(`goodput: ${PAYLOAD}-byte memory writes (4DW headers), 10GbE, ${CABLE_M} m of fibre, loss on both directions, ${count} writes a run, seed 1`);
  notes.push(`native_gbps.gen1x4.mps${PAYLOAD}: computed, not measured: native PCIe Gen1 x4 at this TLP size, the reference line of the goodput plots`);
  return { rows, notes, figures };
}
