// A topology study of the data path on a switched fabric (docs/congestion.md): cards' fabrics on
// the leaves of a leaf-spine, each tunnel programmed as the firmware programs it at Configure, bulk
// posted writes through every tunnel as fast as its send queue takes them. It measures what an
// integrator sizing switches asks: goodput per tunnel and over time, Jain's fairness index, how busy
// the bottleneck links are, the switches' queue depths, drops and marks, and the tunnels'
// retransmissions; with congestion control on, or off (the uncontrolled baseline).

import { Fabric } from "../../board/fabric.ts";
import { TunnelReg, TunnelCounter, TunnelDefault, MAX_TUNNELS } from "../../board/map/registers.ts";
import { memoryWrite, dataBytes } from "../../board/pcie/tlp.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import { EthernetSwitch, type EcnConfig, type PfcConfig, type SharedBufferConfig } from "./net/switch.ts";
import { Link, type LinkPort } from "./net/link.ts";
import { EventScheduler } from "./scheduler.ts";
import { programTunnel } from "./tunnel-pair.ts";
import { percentile } from "./summary.ts";

export interface LeafSpine {
  /** Leaf switches, each with `cardsPerLeaf` card ports and one uplink to the spine. */
  leaves: number;
  cardsPerLeaf: number;
  /** Card port speed and cable (bit/s, metres). */
  edgeRateBps: number;
  edgeLengthM: number;
  /** Each leaf's uplink to the spine: its speed sets the oversubscription, cardsPerLeaf x edge / uplink. */
  uplinkRateBps: number;
  uplinkLengthM: number;
  /** Every switch's shared buffer, ECN marking and priority flow control; each port's egress buffer (bytes). */
  buffer?: SharedBufferConfig;
  ecn?: EcnConfig;
  pfc?: PfcConfig;
  portBufferBytes: number;
}

/** A tunnel of the study: from a card on one leaf to a card on another (or the same), bulk one way or both. */
export interface StudyTunnel {
  /** [leaf, card port] of the sending card and of the receiving card. */
  from: [number, number];
  to: [number, number];
  both?: boolean;
  /** This tunnel's sender ignores congestion (its window is WindowBytes alone), whatever the study's setting. */
  ignoresCongestion?: boolean;
}

export interface StudyConfig {
  fabric: LeafSpine;
  tunnels: StudyTunnel[];
  /** Congestion control on every tunnel (TunnelControl.CongestionControl). */
  congestionControl: boolean;
  mtu: number;
  /** Bytes of data per posted write. */
  payload: number;
  /** Send queue limit (TunnelReg.QueueBytes); 0 for none, where the source keeps `sourceTlps` queued. */
  queueBytes: number;
  /** Run for this long, measuring after `warmupNs`. */
  durationNs: number;
  warmupNs: number;
  /** Goodput and queue depth are sampled in bins of this width. */
  binNs: number;
  /** Extra tunnel register writes. */
  registers?: Partial<Record<TunnelReg, number>>;
  /** The switches' ECN draws (default 1). */
  seed?: number;
}

export interface StudyResult {
  /** Data bytes per second delivered, per tunnel, over the measured interval (Gb/s). */
  goodputGbps: number[];
  jain: number;
  /** Per bottleneck link (a leaf's uplink toward the spine and back, and the receiving cards' ports): bytes sent over the measured interval / capacity. */
  bottlenecks: { name: string; utilisation: number; queueP99Bytes: number; peakBytes: number }[];
  /** Per switch: drops (by the shared buffer among them) and marks. */
  drops: number;
  bufferDrops: number;
  marks: number;
  /** PFC frames the switches sent to pause a sender (XOFF and refreshes), and lossless frames dropped past a port's headroom. */
  pauses: number;
  headroomDrops: number;
  retransmits: number;
  timeouts: number;
  /** The tunnels' congestion window decreases, on echoed marks and on delay, and times a send queue filled. */
  ecnDecreases: number;
  delayDecreases: number;
  queueFull: number;
  /** Goodput per tunnel per bin (Gb/s), and the deepest bottleneck queue per bin (bytes), for plots. */
  series: { t: number[]; perTunnel: number[][]; queue: number[] };
}

const VLAN = 100;
const SESSION = 0x5e55_0000;

function mac(card: number): Uint8Array {
  return Uint8Array.of(0x02, 0x10, (card >> 16) & 0xff, (card >> 8) & 0xff, card & 0xff, 0x01);
}

const trunk = { mode: "trunk" as const, native: 1 };

/** Jain's fairness index of `x`: (sum x)^2 / (n sum x^2); 1 when all are equal. */
export function jainIndex(x: readonly number[]): number {
  const sum = x.reduce((a, b) => a + b, 0);
  const squares = x.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (x.length * squares);
}

/** Every card of leaves 0-3 sends to the card at the same port of the next leaf: each 40 Gb/s uplink carries 16 tunnels of 10 Gb/s cards, 4:1. */
export const OVERSUBSCRIBED: StudyConfig = {
  fabric: {
    leaves: 4, cardsPerLeaf: 16, edgeRateBps: 10e9, edgeLengthM: 10, uplinkRateBps: 40e9, uplinkLengthM: 100,
    buffer: { bytes: 2 << 20, alpha: 0.25 }, ecn: { kMinBytes: 64 * 1024, kMaxBytes: 64 * 1024 }, portBufferBytes: 1 << 20,
  },
  tunnels: Array.from({ length: 64 }, (_, i) => ({ from: [Math.floor(i / 16), i % 16] as [number, number], to: [(Math.floor(i / 16) + 1) % 4, i % 16] as [number, number] })),
  congestionControl: true, mtu: 9000, payload: 256, queueBytes: TunnelDefault.QueueBytes, durationNs: 20e6, warmupNs: 4e6, binNs: 250e3,
};

/**
 * Chassis cards on leaf 1 send to one server's host card on leaf 0, one tunnel each: the server's
 * 10 Gb/s port is the bottleneck. As many as a host card has tunnels (MAX_TUNNELS, its switch's
 * downstream ports): the most chassis one server port can receive from.
 */
export const INCAST: StudyConfig = {
  ...OVERSUBSCRIBED,
  fabric: { ...OVERSUBSCRIBED.fabric, leaves: 2 },
  tunnels: Array.from({ length: MAX_TUNNELS }, (_, i) => ({ from: [1, i] as [number, number], to: [0, 0] as [number, number] })),
};

export function runStudy(config: StudyConfig): StudyResult {
  const scheduler = new EventScheduler();
  const f = config.fabric;
  const seed = config.seed ?? 1;
  const spine = new EthernetSwitch(scheduler, "spine", { ports: Array.from({ length: f.leaves }, () => trunk), buffer: f.buffer, ecn: f.ecn, pfc: f.pfc }, seed);
  const leaves: EthernetSwitch[] = [];
  const uplinks: Link[] = [];
  for (let l = 0; l < f.leaves; l++) {
    const leaf = new EthernetSwitch(scheduler, `leaf${l}`, { ports: Array.from({ length: f.cardsPerLeaf + 1 }, () => trunk), buffer: f.buffer, ecn: f.ecn, pfc: f.pfc }, seed);
    const up = new Link(scheduler, `uplink${l}`, { rateBps: f.uplinkRateBps, lengthM: f.uplinkLengthM, a: { bufferBytes: f.portBufferBytes }, b: { bufferBytes: f.portBufferBytes } });
    leaf.plug(f.cardsPerLeaf, up.a);
    spine.plug(l, up.b);
    leaves.push(leaf);
    uplinks.push(up);
  }
  // Cards: one per [leaf, port] a tunnel uses, with as many tunnels as it takes part in.
  const cardIndex = new Map<string, number>();
  const cardTunnels: number[] = [];
  const key = ([l, p]: [number, number]) => `${l}/${p}`;
  for (const t of config.tunnels) {
    for (const end of [t.from, t.to]) {
      if (!cardIndex.has(key(end))) {
        cardIndex.set(key(end), cardTunnels.length);
        cardTunnels.push(0);
      }
      cardTunnels[cardIndex.get(key(end))!]++;
    }
  }
  const delivered = config.tunnels.map(() => 0);
  const bins = Math.ceil(config.durationNs / config.binNs);
  const perTunnelBins = config.tunnels.map(() => new Array<number>(bins).fill(0));
  const engineTunnel = new Map<TunnelEngine, number>();
  const fabrics: Fabric[] = [];
  const edgeLinks = new Map<string, Link>();
  for (const [where, card] of cardIndex) {
    const [l, p] = where.split("/").map(Number);
    const fabric = new Fabric({ boardId: 0x10f00a01, mac: mac(card), tunnels: cardTunnels[card] }, scheduler, {
      event: () => {},
      deliver: (tlp, cls, tunnel) => {
        tunnel.release(cls, tlp);
        const t = engineTunnel.get(tunnel);
        if (t === undefined) return;
        const data = dataBytes(tlp);
        if (scheduler.now >= config.warmupNs) delivered[t] += data;
        perTunnelBins[t][Math.min(Math.floor(scheduler.now / config.binNs), bins - 1)] += data;
      },
    });
    const cable = new Link(scheduler, `edge${l}.${p}`, { rateBps: f.edgeRateBps, lengthM: f.edgeLengthM, b: { bufferBytes: f.portBufferBytes } });
    fabric.mac.connect(cable.a);
    leaves[l].plug(p, cable.b);
    fabrics[card] = fabric;
    edgeLinks.set(where, cable);
  }
  // Tunnels: index k of a card is its k-th tunnel in the list.
  const used = cardTunnels.map(() => 0);
  const senders: TunnelEngine[] = [];
  const write = bulkWrite(config.payload);
  config.tunnels.forEach((t, i) => {
    const a = cardIndex.get(key(t.from))!;
    const b = cardIndex.get(key(t.to))!;
    const ia = used[a]++;
    const ib = used[b]++;
    program(fabrics[a], ia, mac(b), SESSION + i, config, config.congestionControl && !t.ignoresCongestion);
    program(fabrics[b], ib, mac(a), SESSION + i, config, config.congestionControl);
    const sender = fabrics[a].tunnels[ia];
    engineTunnel.set(fabrics[b].tunnels[ib], i);
    senders.push(sender);
    if (t.both) {
      engineTunnel.set(sender, i);
      senders.push(fabrics[b].tunnels[ib]);
    }
  });
  const SOURCE_TLPS = 64;
  const feed = (tunnel: TunnelEngine) => {
    while (tunnel.hasRoom() && (config.queueBytes > 0 || tunnel.queuedTlps < SOURCE_TLPS)) tunnel.submit(write);
  };
  for (const s of senders) s.onRoom(() => feed(s));
  // The source tops up every microsecond too: without a queue limit, nothing else tells it.
  const top = () => {
    for (const s of senders) feed(s);
    if (scheduler.now < config.durationNs) scheduler.at(scheduler.now + 1_000, top);
  };
  top();
  // Bottlenecks: each leaf's uplink both ways, and the receiving cards' ports.
  const watched: { name: string; port: LinkPort; sw: EthernetSwitch; index: number }[] = [];
  uplinks.forEach((u, l) => watched.push({ name: `leaf${l} to spine`, port: u.a, sw: leaves[l], index: f.cardsPerLeaf }, { name: `spine to leaf${l}`, port: u.b, sw: spine, index: l }));
  for (const t of config.tunnels) {
    const edge = edgeLinks.get(key(t.to))!;
    if (!watched.some((w) => w.port === edge.b)) watched.push({ name: `leaf${t.to[0]} to card ${key(t.to)}`, port: edge.b, sw: leaves[t.to[0]], index: t.to[1] });
  }
  const queueSeries = new Array<number>(bins).fill(0);
  const depthSamples = watched.map(() => [] as number[]);
  const startBytes = watched.map(() => 0);
  const SAMPLE_NS = 1_000;
  const sample = () => {
    const bin = Math.min(Math.floor(scheduler.now / config.binNs), bins - 1);
    watched.forEach((w, i) => {
      const depth = w.sw.egressQueuedBytes(w.index);
      queueSeries[bin] = Math.max(queueSeries[bin], depth);
      if (scheduler.now >= config.warmupNs) depthSamples[i].push(depth);
    });
    if (scheduler.now === config.warmupNs) watched.forEach((w, i) => (startBytes[i] = w.port.counters.sentBytes));
    if (scheduler.now < config.durationNs) scheduler.at(scheduler.now + SAMPLE_NS, sample);
  };
  scheduler.at(0, sample);
  const engines = fabrics.flatMap((fab) => fab.tunnels);
  scheduler.run(config.durationNs);
  const seconds = (config.durationNs - config.warmupNs) / 1e9;
  const goodputGbps = delivered.map((bytes) => (bytes * 8) / seconds / 1e9);
  const bottlenecks = watched.map((w, i) => {
    const sorted = depthSamples[i].sort((x, y) => x - y);
    // Wire bytes: frames plus preamble, start delimiter and gap (20 per frame) are what fill the link; counted as frame bytes here, the share a little low.
    const bytes = w.port.counters.sentBytes - startBytes[i];
    return {
      name: w.name,
      utilisation: (bytes * 8) / (w.port.rateBps * seconds),
      queueP99Bytes: sorted.length ? percentile(sorted, 99) : 0,
      peakBytes: w.sw.egressPeakBytes(w.index),
    };
  });
  const switches = [spine, ...leaves].map((s) => s.snapshot());
  const sum = (c: TunnelCounter) => engines.reduce((n, t) => n + t.counters[c], 0);
  return {
    goodputGbps,
    jain: jainIndex(goodputGbps),
    bottlenecks,
    drops: switches.reduce((n, s) => n + s.egressDrops, 0),
    bufferDrops: switches.reduce((n, s) => n + s.bufferDrops, 0),
    marks: switches.reduce((n, s) => n + s.ecnMarked, 0),
    pauses: switches.reduce((n, s) => n + s.pauseSent, 0),
    headroomDrops: switches.reduce((n, s) => n + s.headroomDrops, 0),
    retransmits: sum(TunnelCounter.Retransmits),
    timeouts: sum(TunnelCounter.Timeouts),
    ecnDecreases: sum(TunnelCounter.EcnDecreases),
    delayDecreases: sum(TunnelCounter.DelayDecreases),
    queueFull: sum(TunnelCounter.QueueFull),
    series: {
      t: Array.from({ length: bins }, (_, i) => (i + 0.5) * config.binNs),
      perTunnel: perTunnelBins.map((b) => b.map((bytes) => (bytes * 8) / config.binNs)),
      queue: queueSeries,
    },
  };
}

/** One posted write of `payload` bytes, submitted again and again (the engine copies it into frames). */
function bulkWrite(payload: number): Uint8Array {
  return memoryWrite(0x0100, 0, 0x1_0000_0000, new Uint8Array(payload).fill(0xa5));
}

/** Tunnel `tunnel` of `fabric` to `peer`, on the study's VLAN (frames must be tagged to be marked), with its send queue limit. */
function program(fabric: Fabric, tunnel: number, peer: Uint8Array, session: number, config: StudyConfig, congestionControl: boolean): void {
  programTunnel(fabric, peer, {
    tunnel, session, mtu: config.mtu, congestionControl,
    registers: { [TunnelReg.Vlan]: VLAN, [TunnelReg.QueueBytes]: config.queueBytes, ...config.registers },
  });
}

