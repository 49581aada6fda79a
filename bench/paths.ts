// Two paths per tunnel (docs/wire-format.md#paths): goodput of a saturating stream of 256-byte
// writes over two 10GbE paths beside one, and over a 10 m and a 2 km path with 1 % loss; the
// failover when a path is cut under full load (by carrier loss on a direct cable, and by silence
// behind a switch): how long until what it held goes again on the other, TLPs lost, and, in the
// full `dual` scenario with firmware, servers and NVMe load, the hot-plug events the server saw.
// Fixed seeds throughout.

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { payloadLimitBps } from "../board/tunnel/wire.ts";
import { PATH_BASE, PATH_SIZE, PathReg, TunnelReg } from "../board/map/registers.ts";
import { EventScheduler } from "../tools/sim/scheduler.ts";
import { tunnelPair, type Pair, type PairOptions } from "../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker } from "../tools/sim/traffic.ts";
import { World } from "../tools/sim/world.ts";
import { SCENARIOS } from "../tools/sim/scenarios.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { lineChart } from "./svg.ts";
import { PAYLOAD, HEADER, RATE_BPS, measureGoodput } from "./tunnel.ts";
import { readRoundTrips } from "./pcie.ts";
import { percentile } from "../tools/sim/summary.ts";
import { PROPAGATION_NS_PER_M } from "../tools/sim/net/link.ts";
import type { RemoteOptions } from "../tools/sim/remote-pcie.ts";
import type { Figure, Section } from "./metrics.ts";

/** Silence and keepalive as the firmware negotiates them by default (docs/link.md). */
const HEALTH = { [TunnelReg.SilenceNs]: 200_000, [TunnelReg.KeepaliveNs]: 25_000 };
/** Goodput is sampled in bins this wide for the plot. */
const BIN_NS = 50_000;

interface DualRun {
  goodputBps: number;
  complete: boolean;
  lost: number;
  /** From the cut to the first frame of the cut path sent again on the other; null without a cut. */
  failoverNs: number | null;
  /** Delivered payload per BIN_NS, in Gb/s, from the start of the stream. */
  series: { x: number; y: number }[];
  /** When each write was delivered, from the start of the stream (ns). */
  times: Float64Array;
}

/** Goodput is back when a window this long after the cut delivers at least RECOVERED of one path's limit. */
const RECOVERY_WINDOW_NS = 20_000;
const RECOVERED = 0.95;

/**
 * From the cut at `atNs` to the end of the first RECOVERY_WINDOW_NS after it that delivers at
 * least RECOVERED × `limitBps` (windows starting at each delivery), or NaN when none does.
 */
function recoveryNs(times: Float64Array, atNs: number, limitBps: number): number {
  const need = Math.ceil((RECOVERED * limitBps * RECOVERY_WINDOW_NS) / 1e9 / (8 * PAYLOAD));
  let start = times.findIndex((t) => t >= atNs);
  if (start < 0) return NaN;
  for (let end = start; start < times.length; start++) {
    while (end < times.length && times[end] < times[start] + RECOVERY_WINDOW_NS) end++;
    if (end - start >= need) return times[start] + RECOVERY_WINDOW_NS - atNs;
  }
  return NaN;
}

function pathReg(pair: Pair, port: number, reg: PathReg): number {
  return pair.a.fabric.readRegister(PATH_BASE + PATH_SIZE * port + reg);
}

/**
 * Streams `count` writes from a to b over two paths (`second`), keeping the queue full; with
 * `cut`, takes the second path down at `cut.atNs` after the stream began (the far cable of a
 * switched path, or the direct cable) and, with `cut.backNs`, up again.
 */
async function dualGoodput(count: number, options: Pick<PairOptions, "mtu" | "link" | "second">, cut?: { atNs: number; backNs?: number }): Promise<DualRun> {
  const scheduler = new EventScheduler();
  const pair = tunnelPair(scheduler, { ...options, registers: HEALTH });
  const stream = new TlpStream(xoroshiro128plus(1), { posted: 1, nonPosted: 0, completion: 0 }, PAYLOAD);
  const checker = new DeliveryChecker(stream);
  const bins: number[] = [];
  const times = new Float64Array(count);
  let first = 0;
  let last = 0;
  pair.b.onTlp = (tlp, cls, tunnel) => {
    times[checker.received.length] = scheduler.now - first;
    checker.deliver(tlp);
    tunnel.release(cls, tlp);
    const bin = Math.floor((scheduler.now - first) / BIN_NS);
    bins[bin] = (bins[bin] ?? 0) + PAYLOAD;
    if (checker.received.length === count) {
      last = scheduler.now;
      scheduler.stop();
    }
  };
  const feed = () => {
    while (pair.a.tunnel.queuedTlps < 256 && stream.count < count) pair.a.tunnel.submit(stream.next());
    if (stream.count < count) scheduler.at(scheduler.now + 1_000, feed);
  };
  await scheduler.run(50_000); // credits announced on both paths, round trips measured by the keepalives' acknowledgements
  first = scheduler.now;
  feed();
  let failoverNs: number | null = null;
  if (cut) {
    const link = pair.second[pair.second.length - 1];
    scheduler.at(first + cut.atNs, () => {
      link.setUp(false);
      const resent = pathReg(pair, 1, PathReg.Resent);
      const watch = () => {
        if (pathReg(pair, 1, PathReg.Resent) > resent) failoverNs = scheduler.now - first - cut.atNs;
        else scheduler.at(scheduler.now + 100, watch);
      };
      watch();
    });
    if (cut.backNs !== undefined) scheduler.at(first + cut.backNs, () => link.setUp(true));
  }
  await scheduler.run(60e9);
  const series = Array.from({ length: bins.length }, (_, i) => ({ x: ((i + 0.5) * BIN_NS) / 1e3, y: ((bins[i] ?? 0) * 8) / BIN_NS }));
  return { goodputBps: (count * PAYLOAD * 8) / ((last - first) / 1e9), complete: checker.complete(), lost: count - checker.received.length, failoverNs, series, times };
}

function cutFigure(run: DualRun, atUs: number, backUs: number, oneLink: number): Figure {
  return {
    file: "paths-cut.svg",
    title: "Goodput across a cut of one path of two, and its return",
    svg: lineChart({
      title: "Goodput of 256-byte writes over two 10GbE paths, MTU 9000: path 2 cut, then back",
      x: { label: "time from the start of the stream (µs)", min: 0 },
      y: { label: "goodput (Gb/s)", min: 0, max: 20 },
      series: [
        { label: `delivered, per ${BIN_NS / 1000} µs`, points: run.series },
        { label: "analytic limit, two paths", style: "ref", points: [{ x: 0, y: 2 * oneLink }, { x: run.series[run.series.length - 1]?.x ?? 1, y: 2 * oneLink }] },
        { label: "analytic limit, one path", style: "ref", points: [{ x: 0, y: oneLink }, { x: run.series[run.series.length - 1]?.x ?? 1, y: oneLink }] },
      ],
    }),
    caption: `A saturating stream of ${PAYLOAD}-byte writes over two 10GbE paths of 3 m, the second through a switch; at ${atUs} µs the switch's cable to the receiving card is cut (the sender's port keeps its carrier: the path is found silent after 200 µs without a frame), at ${backUs} µs it is back. ` +
      `Delivered payload per ${BIN_NS / 1000} µs bin, seed 1, no firmware (the registers the firmware writes). The analytic limits are the encapsulation's at MTU 9000 (docs/wire-format.md).`,
  };
}

export async function pathBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  const rows: Section["rows"] = [];
  const notes: string[] = [];
  const count = options.quick ? 40_000 : 200_000;
  const oneLink = payloadLimitBps(9000, PAYLOAD, HEADER, RATE_BPS) / 1e9;
  rows.push({ id: "limit_gbps.dual.mtu9000.mps256", metric: { value: 2 * oneLink, unit: "Gb/s" } });

  progress(`goodput, one path of 1000 m, MTU 9000 (${count} writes)`);
  const single = await measureGoodput(9000, 0, false, count);
  rows.push({ id: "goodput_gbps.single.mtu9000.mps256.loss0", metric: { value: single.goodputBps / 1e9, unit: "Gb/s" }, baseline: "limit_gbps.mtu9000.mps256" });
  progress(`goodput, two paths of 10 m, MTU 9000 (${count} writes)`);
  const dual = await dualGoodput(count, { mtu: 9000, link: { lengthM: 10 }, second: { link: { lengthM: 10 } } });
  if (!dual.complete) notes.push("two paths: delivery check failed");
  rows.push({ id: "goodput_gbps.dual.mtu9000.mps256.loss0", metric: { value: dual.goodputBps / 1e9, unit: "Gb/s" }, baseline: "limit_gbps.dual.mtu9000.mps256" });
  progress(`goodput, two paths of 1000 m, MTU 9000 (${count} writes)`);
  const far = await dualGoodput(count, { mtu: 9000, link: { lengthM: 1000 }, second: { link: { lengthM: 1000 } } });
  if (!far.complete) notes.push("two paths of 1000 m: delivery check failed");
  rows.push({ id: "goodput_gbps.dual.1km", metric: { value: far.goodputBps / 1e9, unit: "Gb/s" }, baseline: "goodput_gbps.single.mtu9000.mps256.loss0" });
  notes.push("goodput_gbps.dual.1km: 256-byte writes over two 1000 m paths are bound by the receiver's 128 posted-header credits (TunnelDefault.CreditPh: 32 KiB of writes per credit loop of about 21 µs); with 256 the same run reaches 18.54 Gb/s. Sizing credits to the paths' bandwidth-delay product is part of the congestion work");
  progress(`goodput, 10 m and 2 km with 1 % loss (${count} writes)`);
  const asym = await dualGoodput(count, { mtu: 9000, link: { lengthM: 10 }, second: { link: { lengthM: 2000, seed: 1, aToB: { loss: 0.01 }, bToA: { loss: 0.01 } } } });
  if (!asym.complete) notes.push("asymmetric paths: delivery check failed");
  rows.push({ id: "goodput_gbps.dual.asym", metric: { value: asym.goodputBps / 1e9, unit: "Gb/s" }, baseline: "goodput_gbps.dual.mtu9000.mps256.loss0" });

  const reads = options.quick ? 300 : 2000;
  progress(`4-byte memory read round trips, idle: one path of 10 m, two, and 10 m beside 2 km (${reads} each)`);
  const p50 = async (second?: RemoteOptions["second"]) => percentile((await readRoundTrips(reads, false, second)).sort((x, y) => x - y), 50);
  rows.push({ id: "mrd_rtt_ns.idle.p50.single", metric: { value: await p50(), unit: "ns" } });
  rows.push({ id: "mrd_rtt_ns.idle.p50.dual", metric: { value: await p50({ link: { lengthM: 10 } }), unit: "ns" }, baseline: "mrd_rtt_ns.idle.p50.single" });
  rows.push({ id: "mrd_rtt_ns.idle.p50.asym", metric: { value: await p50({ link: { lengthM: 2000 } }), unit: "ns" }, baseline: "mrd_rtt_ns.idle.p50.single" });
  rows.push({ id: "path_extra_rtt_ns.asym", metric: { value: 2 * (2000 - 10) * PROPAGATION_NS_PER_M, unit: "ns" } });
  notes.push("mrd_rtt_ns.idle.p50.*: server to a device register in a chassis slot and back over 10 m, beside a second path of 10 m (dual) or 2 km (asym); path_extra_rtt_ns.asym is the 2 km path's extra round trip (5 ns/m), the most the issue allows the read to grow by");

  progress("failover: the second path cut behind a switch, then by carrier loss");
  const atNs = 400_000;
  const backNs = 1_200_000;
  const switched = await dualGoodput(count, { mtu: 9000, second: { switched: true } }, { atNs, backNs });
  const carrier = await dualGoodput(count, { mtu: 9000, second: {} }, { atNs });
  rows.push({ id: "failover_us", metric: { value: (switched.failoverNs ?? NaN) / 1000, unit: "µs" }, baseline: "detect_us" });
  rows.push({ id: "failover_us.carrier", metric: { value: (carrier.failoverNs ?? NaN) / 1000, unit: "µs" }, baseline: "failover_us" });
  rows.push({ id: "failover_recovery_us", metric: { value: recoveryNs(switched.times, atNs, oneLink * 1e9) / 1000, unit: "µs" }, baseline: "failover_us" });
  rows.push({ id: "failover_recovery_us.carrier", metric: { value: recoveryNs(carrier.times, atNs, oneLink * 1e9) / 1000, unit: "µs" }, baseline: "failover_us.carrier" });
  notes.push(`failover_recovery_us: from the cut to the end of the first ${RECOVERY_WINDOW_NS / 1000} µs window after it that delivers ${RECOVERED * 100} % of one path's analytic limit (${oneLink.toFixed(3)} Gb/s)`);
  rows.push({ id: "failover_lost_tlps", metric: { value: switched.lost + carrier.lost, unit: "TLPs" } });
  if (!switched.complete || !carrier.complete) notes.push("failover: delivery check failed");

  progress("failover in the dual scenario: firmware, server, NVMe load (1 s simulated)");
  const world = new World({ scenario: SCENARIOS.dual, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE } });
  const summary = await world.run();
  const events = Object.values(summary.hotplugEvents).reduce((n, e) => n + e.removals + e.insertions, 0);
  rows.push({ id: "failover_hotplug_events", metric: { value: events, unit: "events" } });
  rows.push({ id: "failover_completion_timeouts", metric: { value: summary.hostCompletionTimeouts + summary.deviceCompletionTimeouts, unit: "requests" } });
  rows.push({ id: "failover_scenario_lost_tlps", metric: { value: summary.tlps.lost + summary.tlps.duplicated + summary.tlps.reordered, unit: "TLPs" } });
  return { rows, notes, figures: [cutFigure(switched, atNs / 1000, backNs / 1000, oneLink)] };
}
