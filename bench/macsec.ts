// MACsec (docs/wire-format.md#macsec): what protecting every frame costs, each figure beside its
// clear baseline measured in the same run: goodput of 256-byte writes at both MTUs (and the
// analytic limits, 32 bytes of SecTAG and ICV per frame), the idle 4-byte read, the simulator's
// own speed with AES-GCM on every frame; then the two promises as numbers: frames lost or
// refused across key switches under full load, and frames of the `attack` scenario's rogue
// station that got through. Fixed seeds throughout.

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { payloadLimitBps } from "../board/tunnel/wire.ts";
import { SecyReg, TunnelCounter } from "../board/map/registers.ts";
import { EventScheduler } from "../tools/sim/scheduler.ts";
import { tunnelPair } from "../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker } from "../tools/sim/traffic.ts";
import { percentile } from "../tools/sim/summary.ts";
import { SCENARIOS } from "../tools/sim/scenarios.ts";
import { World } from "../tools/sim/world.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { measureGoodput, MTUS, PAYLOAD, HEADER, RATE_BPS } from "./tunnel.ts";
import { readRoundTrips } from "./pcie.ts";
import type { Section } from "./metrics.ts";

/** Frames between key switches in the rekey run: a switch every few microseconds at 10 Gb/s. */
export const REKEY_FRAMES = 64;

/**
 * `count` 256-byte writes each way over a protected tunnel switching keys every REKEY_FRAMES
 * frames, 1 % loss both ways: the switches, and the frames refused under a key (bad ICV, no SA,
 * late) and TLPs not delivered, which must both be 0.
 */
export async function rekeyUnderLoad(count: number): Promise<{ switches: number; refused: number; undelivered: number }> {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler, { mtu: 9000, link: { seed: 1, lengthM: 1000, aToB: { loss: 0.01 }, bToA: { loss: 0.01 } }, macsec: { registers: { [SecyReg.RekeyFrames]: REKEY_FRAMES } } });
  const streams = [new TlpStream(xoroshiro128plus(1), { posted: 1, nonPosted: 0, completion: 0 }, PAYLOAD), new TlpStream(xoroshiro128plus(2), { posted: 1, nonPosted: 0, completion: 0 }, PAYLOAD)];
  const checkers = streams.map((s) => new DeliveryChecker(s));
  b.onTlp = (tlp, cls, tunnel) => {
    checkers[0].deliver(tlp);
    tunnel.release(cls, tlp);
  };
  a.onTlp = (tlp, cls, tunnel) => {
    checkers[1].deliver(tlp);
    tunnel.release(cls, tlp);
  };
  const feed = () => {
    [a, b].forEach((side, i) => {
      while (side.tunnel.queuedTlps < 256 && streams[i].count < count) side.tunnel.submit(streams[i].next());
    });
    if (checkers.some((c) => c.received.length < count)) scheduler.at(scheduler.now + 1_000, feed);
  };
  feed();
  await scheduler.run(60e9);
  const sum = (c: TunnelCounter) => a.tunnel.counters[c] + b.tunnel.counters[c];
  return {
    switches: sum(TunnelCounter.SaSwitches),
    refused: sum(TunnelCounter.RxBadIcv) + sum(TunnelCounter.RxUnknownSa) + sum(TunnelCounter.RxLate),
    undelivered: checkers.reduce((n, c) => n + (count - c.received.length) + c.errors.length, 0),
  };
}

export async function macsecBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  const rows: Section["rows"] = [];
  const notes: string[] = [];
  const count = options.quick ? 20_000 : 200_000;
  for (const mtu of MTUS) {
    const clearLimit = `limit_gbps.mtu${mtu}.mps${PAYLOAD}`; // the tunnel part's row
    rows.push({ id: `${clearLimit}.macsec`, metric: { value: payloadLimitBps(mtu, PAYLOAD, HEADER, RATE_BPS, true) / 1e9, unit: "Gb/s" }, baseline: clearLimit });
    const clearId = `goodput_gbps.mtu${mtu}.mps${PAYLOAD}.loss0`;
    progress(`goodput, MTU ${mtu}, no loss, in clear and with MACsec (${count} writes each)`);
    const clear = await measureGoodput(mtu, 0, false, count);
    const secured = await measureGoodput(mtu, 0, false, count, 1, true);
    if (!clear.complete || !secured.complete) notes.push(`goodput run MTU ${mtu}: delivery check failed`);
    rows.push({ id: `${clearId}.clear`, metric: { value: clear.goodputBps / 1e9, unit: "Gb/s" } });
    rows.push({ id: `${clearId}.macsec`, metric: { value: secured.goodputBps / 1e9, unit: "Gb/s" }, baseline: `${clearId}.clear` });
  }
  const reads = options.quick ? 300 : 2000;
  progress(`4-byte memory read round trips, idle, in clear and with MACsec (${reads} each)`);
  const idle = (await readRoundTrips(reads)).sort((x, y) => x - y);
  const idleSecured = (await readRoundTrips(reads, true)).sort((x, y) => x - y);
  rows.push({ id: "mrd_rtt_ns.idle.p50.clear", metric: { value: percentile(idle, 50), unit: "ns" } });
  rows.push({ id: "mrd_rtt_ns.idle.p50.macsec", metric: { value: percentile(idleSecured, 50), unit: "ns" }, baseline: "mrd_rtt_ns.idle.p50.clear" });

  const rekeyCount = options.quick ? 20_000 : 100_000;
  progress(`rekeying every ${REKEY_FRAMES} frames under full load both ways, 1 % loss (${rekeyCount} writes each way)`);
  const rekey = await rekeyUnderLoad(rekeyCount);
  rows.push({ id: "rekey_switches", metric: { value: rekey.switches, unit: "switches" } });
  rows.push({ id: "rekey_lost_frames", metric: { value: rekey.refused + rekey.undelivered, unit: "frames" } });

  progress("the attack scenario, 1 s, seed 1");
  const world = new World({ scenario: SCENARIOS.attack, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, print: null });
  const summary = await world.run();
  const attack = summary.attack!;
  const sent = Object.values(attack.sent).reduce((n, v) => n + v, 0);
  rows.push({ id: "attack_sent_frames", metric: { value: sent, unit: "frames" } });
  rows.push({ id: "attack_accepted_frames", metric: { value: attack.accepted + attack.uncounted, unit: "frames" } });
  rows.push({ id: "attack_tlps_recovered", metric: { value: attack.tlpsRecovered, unit: "TLPs" } });

  const simCount = options.quick ? 200_000 : 1_000_000;
  progress(`simulator speed: ${simCount} writes at MTU 9000, in clear and with MACsec`);
  const simClear = await measureGoodput(9000, 0, false, simCount);
  const simSecured = await measureGoodput(9000, 0, false, simCount, 1, true);
  rows.push({ id: "sim_tlps_per_s.clear", metric: { value: simClear.tlps / simClear.wallSeconds, unit: "TLPs/s" } });
  rows.push({ id: "sim_tlps_per_s.macsec", metric: { value: simSecured.tlps / simSecured.wallSeconds, unit: "TLPs/s" }, baseline: "sim_tlps_per_s.clear" });

  notes.push(`goodput: ${PAYLOAD}-byte memory writes, 10GbE, 1000 m of fibre, ${count} writes a run, seed 1; MACsec GCM-AES-XPN-128 on every frame, 32 bytes of SecTAG and ICV (docs/wire-format.md#throughput-limit-analytic)`);
  notes.push(`rekey_lost_frames: frames refused by the receiving SecY (bad ICV, no SA, late) plus TLPs not delivered exactly once, in order, over ${rekeyCount} writes each way with a key switch every ${REKEY_FRAMES} frames and 1 % loss; ${rekey.switches} switches`);
  notes.push(`attack_accepted_frames: frames of the attack scenario's rogue station (${sent} sent) validated with a new PN, delivering a TLP, or reaching a card without being counted there (docs/scenarios.md#attack)`);
  return { rows, notes };
}
