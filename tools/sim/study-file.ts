// Fabric studies for `iov sim --scenario` (docs/congestion.md, "Studying a fabric"): the built-in
// `oversubscribed`, `incast` and `mixed`, and leaf-spine files ({"kind": "leaf-spine", ...}) that
// describe any two-tier fabric: leaves, card ports and their speed, uplinks and their speed (the
// oversubscription), switch buffers and ECN thresholds, and which card sends to which. A study runs
// the cards' fabrics as the firmware programs them, without firmware, and prints per-tunnel
// goodput, fairness, the bottlenecks' load and queues, drops and marks.

import { readFileSync } from "node:fs";
import { OVERSUBSCRIBED, INCAST, runStudy, type StudyConfig, type StudyResult, type StudyTunnel } from "./fabric-study.ts";
import { runMixed, MIXED_LOAD, type MixedResult } from "./mixed-study.ts";
import { percentile } from "./summary.ts";
import { MAX_TUNNELS, MTU_MIN, MTU_MAX } from "../../board/map/registers.ts";
import { ScenarioError } from "./scenario-check.ts";
import { PFC_DEFAULTS, type PfcConfig } from "./net/switch.ts";

export type Study =
  | { kind: "fabric"; name: string; description: string; config: StudyConfig }
  | { kind: "mixed"; name: string; description: string };

export const STUDIES: Record<string, Study> = {
  oversubscribed: {
    kind: "fabric", name: "oversubscribed", config: OVERSUBSCRIBED,
    description: "64 tunnels across a 4:1 leaf-spine (4 leaves of 16 cards at 10 Gb/s, a 40 Gb/s uplink each), every card sending to the next leaf as fast as it may",
  },
  incast: {
    kind: "fabric", name: "incast", config: INCAST,
    description: `${MAX_TUNNELS} chassis cards on one leaf send to one server's host card on another at once: the server's 10 Gb/s port is the bottleneck`,
  },
  mixed: {
    kind: "mixed", name: "mixed",
    description: "bulk NVMe both ways beside a keyboard and a 4-byte register poller on one tunnel over 10 m, with the card's short queues and congestion control, then without",
  },
};

/** The keys a leaf-spine file may have (docs/congestion.md has their meaning and units). */
const KEYS = ["kind", "name", "description", "leaves", "cardsPerLeaf", "edge", "uplink", "switch", "traffic", "congestionControl", "mtu", "payload", "queueBytes", "durationMs", "warmupMs"] as const;

function fail(file: string, message: string): never {
  throw new ScenarioError("", message, file);
}

function number(file: string, what: string, value: unknown, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) fail(file, `${what} must be a number from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return value;
}

function object(file: string, what: string, value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(file, `${what} must be an object`);
  for (const key of Object.keys(value)) if (!keys.includes(key)) fail(file, `${what}: unknown key '${key}' (known: ${keys.join(", ")})`);
  return value as Record<string, unknown>;
}

/** Whether a JSON file is a leaf-spine study rather than a scenario of cards and servers. */
export function isStudyFile(text: string): boolean {
  try {
    const json = JSON.parse(text);
    return typeof json === "object" && json !== null && json.kind === "leaf-spine";
  } catch {
    return false;
  }
}

/** Reads a leaf-spine file: every value checked, with a message naming the file and the key. */
export function parseStudy(file: string, text: string): Study {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    fail(file, `not JSON: ${(error as Error).message}`);
  }
  const top = object(file, "the study", json, KEYS);
  if (top.kind !== "leaf-spine") fail(file, `kind must be "leaf-spine"`);
  const leaves = number(file, "leaves", top.leaves, 1, 64);
  const cardsPerLeaf = number(file, "cardsPerLeaf", top.cardsPerLeaf, 1, 128);
  const edge = object(file, "edge", top.edge, ["rateGbps", "lengthM"]);
  const uplink = object(file, "uplink", top.uplink, ["rateGbps", "lengthM"]);
  const sw = object(file, "switch", top.switch, ["bufferBytes", "alpha", "ecnKBytes", "portBufferBytes", "pfcPriorities", "pfcXoffBytes", "pfcXonBytes"]);
  const rate = (what: string, v: unknown, fallback: number) => number(file, what, v, 1, 400, fallback) * 1e9;
  const ecnK = sw.ecnKBytes === undefined ? undefined : number(file, "switch.ecnKBytes", sw.ecnKBytes, 0, 1 << 30);
  let pfc: PfcConfig | undefined;
  if (sw.pfcPriorities !== undefined) {
    if (!Array.isArray(sw.pfcPriorities) || sw.pfcPriorities.length === 0) fail(file, "switch.pfcPriorities must be a list of priorities 0..7");
    if (sw.bufferBytes === undefined) fail(file, "switch.pfcPriorities needs switch.bufferBytes: priority flow control works in a shared buffer");
    const xoff = number(file, "switch.pfcXoffBytes", sw.pfcXoffBytes, 1, 1 << 30, PFC_DEFAULTS.xoffBytes);
    pfc = {
      priorities: sw.pfcPriorities.map((p, i) => (Number.isInteger(p) ? number(file, `switch.pfcPriorities[${i}]`, p, 0, 7) : fail(file, `switch.pfcPriorities[${i}] must be a priority 0..7, not ${JSON.stringify(p)}`))),
      xoffBytes: xoff,
      ...(sw.pfcXonBytes === undefined ? {} : { xonBytes: number(file, "switch.pfcXonBytes", sw.pfcXonBytes, 0, xoff - 1) }),
    };
  }
  const config: StudyConfig = {
    fabric: {
      leaves, cardsPerLeaf,
      edgeRateBps: rate("edge.rateGbps", edge.rateGbps, 10), edgeLengthM: number(file, "edge.lengthM", edge.lengthM, 0, 100_000, 10),
      uplinkRateBps: rate("uplink.rateGbps", uplink.rateGbps, 40), uplinkLengthM: number(file, "uplink.lengthM", uplink.lengthM, 0, 100_000, 100),
      ...(sw.bufferBytes === undefined ? {} : { buffer: { bytes: number(file, "switch.bufferBytes", sw.bufferBytes, 1, 1 << 30), alpha: number(file, "switch.alpha", sw.alpha, 1 / 64, 64, 1) } }),
      ...(ecnK === undefined ? {} : { ecn: { kMinBytes: ecnK, kMaxBytes: ecnK } }),
      ...(pfc === undefined ? {} : { pfc }),
      portBufferBytes: number(file, "switch.portBufferBytes", sw.portBufferBytes, 1, 1 << 30, 1 << 20),
    },
    tunnels: [],
    congestionControl: top.congestionControl === undefined ? true : top.congestionControl === true ? true : top.congestionControl === false ? false : fail(file, "congestionControl must be true or false"),
    mtu: number(file, "mtu", top.mtu, MTU_MIN, MTU_MAX, 9000),
    payload: number(file, "payload", top.payload, 4, 256, 256),
    queueBytes: number(file, "queueBytes", top.queueBytes, 0, 1 << 24, OVERSUBSCRIBED.queueBytes),
    durationNs: number(file, "durationMs", top.durationMs, 1, 10_000, 20) * 1e6,
    warmupNs: number(file, "warmupMs", top.warmupMs, 0, 10_000, 4) * 1e6,
    binNs: 250e3,
  };
  if (config.warmupNs >= config.durationNs) fail(file, "warmupMs must be shorter than durationMs");
  if (config.payload % 4 !== 0) fail(file, "payload must be a multiple of 4 bytes");
  const port = (what: string, v: unknown): [number, number] => {
    if (!Array.isArray(v) || v.length !== 2) fail(file, `${what} must be [leaf, card port]`);
    return [number(file, `${what}[0] (leaf)`, v[0], 0, leaves - 1), number(file, `${what}[1] (card port)`, v[1], 0, cardsPerLeaf - 1)];
  };
  if (top.traffic === "ring" || top.traffic === undefined) {
    if (leaves < 2) fail(file, `traffic "ring" needs two leaves or more`);
    for (let l = 0; l < leaves; l++) for (let p = 0; p < cardsPerLeaf; p++) config.tunnels.push({ from: [l, p], to: [(l + 1) % leaves, p] });
  } else if (Array.isArray(top.traffic)) {
    top.traffic.forEach((t, i) => {
      const entry = object(file, `traffic[${i}]`, t, ["from", "to", "both", "ignoresCongestion"]);
      const tunnel: StudyTunnel = { from: port(`traffic[${i}].from`, entry.from), to: port(`traffic[${i}].to`, entry.to) };
      if (tunnel.from[0] === tunnel.to[0] && tunnel.from[1] === tunnel.to[1]) fail(file, `traffic[${i}]: a card cannot send to itself`);
      if (entry.both === true) tunnel.both = true;
      if (entry.ignoresCongestion === true) tunnel.ignoresCongestion = true;
      config.tunnels.push(tunnel);
    });
  } else fail(file, `traffic must be "ring" or a list of {"from": [leaf, port], "to": [leaf, port]}`);
  if (config.tunnels.length === 0) fail(file, "traffic has no tunnel");
  const perCard = new Map<string, number>();
  for (const t of config.tunnels) for (const end of [t.from, t.to]) perCard.set(end.join("/"), (perCard.get(end.join("/")) ?? 0) + 1);
  for (const [card, n] of perCard) if (n > MAX_TUNNELS) fail(file, `the card at [${card.replace("/", ", ")}] is in ${n} tunnels; a card has ${MAX_TUNNELS}`);
  const name = typeof top.name === "string" ? top.name : file;
  const description = typeof top.description === "string" ? top.description : `${leaves} leaves of ${cardsPerLeaf} cards, ${config.tunnels.length} tunnels`;
  return { kind: "fabric", name, description, config };
}

export function loadStudy(file: string): Study {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    fail(file, `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  return parseStudy(file, text);
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** The report `iov sim` prints for a fabric study. */
export function formatStudy(config: StudyConfig, r: StudyResult): string {
  const lines: string[] = [];
  const total = r.goodputGbps.reduce((a, b) => a + b, 0);
  lines.push(`congestion control ${config.congestionControl ? "on" : "off"}; measured over ${(config.durationNs - config.warmupNs) / 1e6} ms after ${config.warmupNs / 1e6} ms`);
  lines.push("");
  lines.push("tunnel  from      to        goodput");
  config.tunnels.forEach((t, i) => {
    lines.push(`${String(i).padStart(6)}  ${`[${t.from.join(",")}]`.padEnd(8)}  ${`[${t.to.join(",")}]`.padEnd(8)}  ${r.goodputGbps[i].toFixed(3)} Gb/s${t.ignoresCongestion ? "  (ignores congestion)" : ""}`);
  });
  lines.push("");
  lines.push(`goodput: ${total.toFixed(2)} Gb/s in all, ${Math.min(...r.goodputGbps).toFixed(3)} to ${Math.max(...r.goodputGbps).toFixed(3)} per tunnel; Jain's fairness index ${r.jain.toFixed(4)}`);
  lines.push("");
  lines.push("bottleneck                     busy    queue p99    peak");
  for (const b of r.bottlenecks) lines.push(`${b.name.padEnd(29)}  ${(b.utilisation * 100).toFixed(1).padStart(5)} %  ${kib(b.queueP99Bytes).padStart(10)}  ${kib(b.peakBytes).padStart(10)}`);
  lines.push("");
  lines.push(`switches: ${r.drops} frame(s) dropped (${r.bufferDrops} by the shared buffer), ${r.marks} marked congestion experienced`);
  if (config.fabric.pfc) lines.push(`priority flow control on priorities ${config.fabric.pfc.priorities.join(", ")}: ${r.pauses} pause frame(s) sent, ${r.headroomDrops} frame(s) past a port's headroom`);
  lines.push(`tunnels: ${r.retransmits} retransmission(s), ${r.timeouts} timeout(s), ${r.ecnDecreases} window decrease(s) on marks, ${r.delayDecreases} on delay`);
  return lines.join("\n") + "\n";
}

export function formatMixed(controlled: MixedResult, uncontrolled: MixedResult): string {
  const us = (ns: number[], p: number) => `${(percentile(ns, p) / 1000).toFixed(2)} µs`;
  const row = (what: string, r: MixedResult) =>
    `${what.padEnd(34)}  ${us(r.readNs, 50).padStart(10)}  ${us(r.readNs, 99).padStart(10)}  ${us(r.keyNs, 50).padStart(10)}  ${us(r.keyNs, 99).padStart(10)}  ${(r.nvmeWriteGbps + r.nvmeReadGbps).toFixed(2).padStart(10)} Gb/s`;
  return [
    `${"".padEnd(34)}  ${"read p50".padStart(10)}  ${"read p99".padStart(10)}  ${"key p50".padStart(10)}  ${"key p99".padStart(10)}  ${"NVMe, both ways".padStart(15)}`,
    row("short queues, congestion control", controlled),
    row("uncontrolled", uncontrolled),
  ].join("\n") + "\n";
}

/** Runs a study and returns its report. */
export async function runStudyReport(study: Study, seed: number): Promise<string> {
  if (study.kind === "mixed") {
    const options = { ...MIXED_LOAD, reads: 2000 };
    return formatMixed(await runMixed({ ...options, controlled: true }), await runMixed({ ...options, controlled: false }));
  }
  return formatStudy(study.config, runStudy({ ...study.config, seed }));
}
