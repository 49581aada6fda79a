// Congestion control on a switched fabric (docs/congestion.md): the topology study's figures with
// congestion control on, each beside the uncontrolled sender in the same run: an oversubscribed
// leaf-spine, an incast into one server, a card that ignores congestion among well-behaved ones.

import { runStudy, jainIndex, OVERSUBSCRIBED, INCAST, type StudyConfig, type StudyResult } from "../tools/sim/fabric-study.ts";
import { lineChart } from "./svg.ts";
import type { Section } from "./metrics.ts";

const KIB = 1024;

function uplinks(r: StudyResult): StudyResult["bottlenecks"] {
  return r.bottlenecks.filter((b) => b.name.endsWith("to spine"));
}

function worstQueue(links: StudyResult["bottlenecks"]): number {
  return Math.max(...links.map((b) => b.queueP99Bytes));
}

export async function congestionBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  const durationNs = options.quick ? 6e6 : 20e6;
  const run = (config: StudyConfig, cc: boolean, what: string) => {
    progress(`${what}, congestion control ${cc ? "on" : "off"}`);
    return runStudy({ ...config, durationNs, congestionControl: cc });
  };
  const oversub = OVERSUBSCRIBED;
  const cc = run(oversub, true, "oversubscribed leaf-spine, 64 tunnels");
  const nocc = run(oversub, false, "oversubscribed leaf-spine, 64 tunnels");
  const rogueConfig: StudyConfig = { ...oversub, tunnels: oversub.tunnels.map((t, i) => (i === 0 ? { ...t, ignoresCongestion: true } : t)) };
  const rogue = run(rogueConfig, true, "oversubscribed, tunnel 0 ignoring congestion");
  const incastCc = run(INCAST, true, "incast, 8 chassis into one server");
  const incastNocc = run(INCAST, false, "incast, 8 chassis into one server");

  const k = oversub.fabric.ecn!.kMaxBytes;
  const frame = oversub.mtu + 22;
  // The queue a port keeps under DCTCP-style control: the marking threshold, plus one frame from each
  // of the tunnels through it that had not heard of the marks yet (docs/congestion.md, "What to expect").
  const perUplink = oversub.tunnels.length / oversub.fabric.leaves;
  const bound = k + perUplink * frame;
  const incastPort = (r: StudyResult) => r.bottlenecks.find((b) => b.name.includes("to card"))!;
  const sumGbps = (r: StudyResult) => r.goodputGbps.reduce((a, b) => a + b, 0);
  const others = rogue.goodputGbps.slice(1);
  const fairShare = sumGbps(rogue) / rogue.goodputGbps.length;

  const t = (r: StudyResult) => r.series.t.map((ns) => ns / 1e6);
  const perTunnel = (r: StudyResult, label: string) => [0, 1, 2, 3].map((i) => ({ label: `${label} tunnel ${i}`, points: t(r).map((x, j) => ({ x, y: r.series.perTunnel[i][j] })) }));
  const figures = [
    {
      file: "congestion-goodput.svg",
      title: "Goodput per tunnel over time, oversubscribed fabric",
      svg: lineChart({
        title: "Goodput of four of the 64 tunnels, congestion control on and off",
        x: { label: "time (ms)" }, y: { label: "goodput (Gb/s)", min: 0 },
        series: [...perTunnel(cc, "on:"), ...perTunnel(nocc, "off:")],
      }),
      caption: `Four tunnels of leaf 0 on the oversubscribed leaf-spine (4 leaves of 16 cards at 10 Gb/s, one 40 Gb/s uplink each: 4:1), every tunnel sending 256-byte writes as fast as it may, MTU ${oversub.mtu}; bins of ${oversub.binNs / 1e3} µs. A fair share is 2.5 Gb/s of wire, about 2.3 Gb/s of data.`,
    },
    {
      file: "congestion-queue.svg",
      title: "Deepest uplink queue over time, oversubscribed fabric",
      svg: lineChart({
        title: "Deepest leaf uplink egress queue per bin",
        x: { label: "time (ms)" }, y: { label: "queue (KiB)", min: 0 },
        series: [
          { label: "congestion control on", points: t(cc).map((x, j) => ({ x, y: cc.series.queue[j] / KIB })) },
          { label: "off (uncontrolled)", points: t(nocc).map((x, j) => ({ x, y: nocc.series.queue[j] / KIB })) },
          { label: `marking threshold K (${k / KIB} KiB)`, style: "ref" as const, points: t(cc).map((x) => ({ x, y: k / KIB })) },
        ],
      }),
      caption: `The deepest queue any leaf's uplink had in each bin of ${oversub.binNs / 1e3} µs, sampled every microsecond. Switches: ${oversub.fabric.buffer!.bytes / (1 << 20)} MiB shared buffer, dynamic threshold alpha ${oversub.fabric.buffer!.alpha}, ECN (DEI) marking at K = ${k / KIB} KiB.`,
    },
  ];
  return {
    figures,
    rows: [
      { id: "fabric_util.oversub", metric: { value: Math.min(...uplinks(cc).map((b) => b.utilisation)) * 100, unit: "%" } },
      { id: "fabric_util.oversub.nocc", metric: { value: Math.min(...uplinks(nocc).map((b) => b.utilisation)) * 100, unit: "%" }, baseline: "fabric_util.oversub" },
      { id: "fabric_jain.oversub", metric: { value: cc.jain, unit: "" } },
      { id: "fabric_jain.oversub.nocc", metric: { value: nocc.jain, unit: "" }, baseline: "fabric_jain.oversub" },
      { id: "fabric_drops.oversub.cc", metric: { value: cc.drops, unit: "frames" } },
      { id: "fabric_drops.oversub.nocc", metric: { value: nocc.drops, unit: "frames" } },
      { id: "fabric_retransmits.oversub.cc", metric: { value: cc.retransmits, unit: "frames" } },
      { id: "fabric_retransmits.oversub.nocc", metric: { value: nocc.retransmits, unit: "frames" } },
      { id: "fabric_queue_p99_kib.oversub.cc", metric: { value: worstQueue(uplinks(cc)) / KIB, unit: "KiB" } },
      { id: "fabric_queue_p99_kib.oversub.nocc", metric: { value: worstQueue(uplinks(nocc)) / KIB, unit: "KiB" }, baseline: "fabric_queue_p99_kib.oversub.cc" },
      { id: "fabric_queue_bound_kib.oversub", metric: { value: bound / KIB, unit: "KiB" } },
      { id: "incast_goodput_gbps.cc", metric: { value: sumGbps(incastCc), unit: "Gb/s" } },
      { id: "incast_goodput_gbps.nocc", metric: { value: sumGbps(incastNocc), unit: "Gb/s" }, baseline: "incast_goodput_gbps.cc" },
      { id: "incast_queue_p99_kib.cc", metric: { value: incastPort(incastCc).queueP99Bytes / KIB, unit: "KiB" } },
      { id: "incast_queue_p99_kib.nocc", metric: { value: incastPort(incastNocc).queueP99Bytes / KIB, unit: "KiB" }, baseline: "incast_queue_p99_kib.cc" },
      { id: "incast_jain.cc", metric: { value: incastCc.jain, unit: "" } },
      { id: "incast_drops.nocc", metric: { value: incastNocc.drops, unit: "frames" } },
      { id: "rogue_goodput_gbps", metric: { value: rogue.goodputGbps[0], unit: "Gb/s" } },
      { id: "rogue_others_min_gbps", metric: { value: Math.min(...others), unit: "Gb/s" }, baseline: "rogue_goodput_gbps" },
      { id: "rogue_others_jain", metric: { value: jainIndex(others), unit: "" } },
      { id: "rogue_fair_share_gbps", metric: { value: fairShare, unit: "Gb/s" } },
      { id: "rogue_drops", metric: { value: rogue.drops, unit: "frames" } },
    ],
    notes: [
      `fabric_*.oversub: 64 tunnels, each from a card on leaf l to one on leaf l+1 (a ring over 4 leaves), through 40 Gb/s uplinks 4:1 oversubscribed; fabric_util is the least busy uplink's share of its line rate over the last ${(durationNs - oversub.warmupNs) / 1e6} ms of ${durationNs / 1e6}`,
      `fabric_queue_bound_kib.oversub: K plus one ${frame}-byte frame from each of the ${perUplink} tunnels through an uplink, the queue congestion control should hold a port under`,
      "incast_*: 8 chassis cards on leaf 1 (as many as a host card has tunnels) send to one server's host card on leaf 0: its 10 Gb/s port is the bottleneck",
      "rogue_*: the oversubscribed fabric with tunnel 0's sender ignoring congestion (its window is WindowBytes alone); the others keep congestion control",
    ],
  };
}
