// `npm run bench`: every benchmark, a table of figures with their baselines from the same
// run, bench/results.json ({ id: { value, unit } }), and, from a run of every part,
// bench/report.md with its plots in bench/figures/. `--only PART` reruns one part: its
// figures and results are rewritten, the report is left as the last full run wrote it.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { FIRMWARE } from "../tools/paths.ts";
import { firmwareBenchmarks } from "./firmware.ts";
import { tunnelBenchmarks } from "./tunnel.ts";
import { pcieBenchmarks } from "./pcie.ts";
import { macsecBenchmarks } from "./macsec.ts";
import { pathBenchmarks } from "./paths.ts";
import { linkBenchmarks } from "./link.ts";
import { hotplugBenchmarks } from "./hotplug.ts";
import { manageBenchmarks } from "./manage.ts";
import { fleetBenchmarks } from "./fleet.ts";
import { softcoreBenchmarks } from "./softcore.ts";
import { faultBenchmarks } from "./faults.ts";
import { congestionBenchmarks } from "./congestion.ts";
import { formatTable, writeResults, RESULTS, type Metric, type Section } from "./metrics.ts";
import { renderReport, type ReportPart } from "./report.ts";

export const REPORT = join(dirname(RESULTS), "report.md");
export const FIGURES = join(dirname(RESULTS), "figures");

export interface BenchOptions {
  quick: boolean;
  wasm3?: string;
  /** Run this part only. */
  only?: string;
}

type Progress = (text: string) => void;

interface Part {
  name: string;
  title: string;
  about: string;
  run: (options: BenchOptions, progress: Progress) => Promise<Section>;
}

export const PARTS: Part[] = [
  { name: "firmware", title: "Firmware footprint and speed", about: "The size of `firmware.wasm` and its memory, and how many mailbox events per second it handles in each engine.", run: firmwareBenchmarks },
  { name: "tunnel", title: "Tunnel goodput, and the simulator's speed", about: "What one tunnel carries over 10GbE as frame loss grows, for the selective-repeat policy and the go-back-N baseline, at both MTUs; then how fast the simulator itself moves TLPs and events.", run: tunnelBenchmarks },
  { name: "pcie", title: "PCIe latency and NVMe throughput", about: "How long a server waits for a 4-byte read of a remote device register, idle and with the tunnel saturated; NVMe throughput across the tunnel; key-press latency of the remote keyboard.", run: pcieBenchmarks },
  { name: "macsec", title: "MACsec on the data path", about: "What encrypting and authenticating every frame costs, each figure beside the same measurement in clear: goodput at both MTUs, the idle 4-byte read, the simulator's own speed; then frames lost or refused across key switches under full load, and what the attack scenario's rogue station got through.", run: macsecBenchmarks },
  { name: "paths", title: "Two paths per tunnel", about: "A card's two Ethernet ports as two paths of one tunnel: goodput over both beside one and beside their analytic limit, over a short and a long lossy path, and the failover when one is cut under full load: how long until what it held goes on the other, what is lost, and what the server sees.", run: pathBenchmarks },
  { name: "congestion", title: "Congestion control on a switched fabric", about: "Hundreds of tunnels on one switched Ethernet: an oversubscribed leaf-spine, an incast into one server, and a card that ignores congestion, each with congestion control on beside the uncontrolled sender in the same run: how busy the bottlenecks are, how fairly the tunnels share them, the switches' queues and drops.", run: congestionBenchmarks },
  { name: "link", title: "Link bring-up and health", about: "How fast two cards pair, how fast a cut is detected and declared down, and that heavy loss or a short flap does not take the link down.", run: linkBenchmarks },
  { name: "hotplug", title: "Cable pull and reconnect", about: "What the server sees when the cable is pulled under NVMe load and plugged back: a surprise removal, then a hot-plug insertion, and no request left to time out.", run: hotplugBenchmarks },
  { name: "manage", title: "Handing a chassis to another server", about: "From the management station's group change to the new server verifying NVMe I/O, with the drive idle (orderly removal) and under load (surprise removal).", run: manageBenchmarks },
  { name: "softcore", title: "The soft-core", about: "What the firmware costs the card's CPU: WebAssembly instructions per batch, the soft-core's utilisation and longest batch at its default clock beside the zero-time model, and the calibration of wasm3's cost on the host by callgrind (docs/softcore.md).", run: softcoreBenchmarks },
  { name: "fleet", title: "Simulating a fleet", about: "Wall time to simulate the built-in fleet: 256 servers, 64 chassis cards under load, a two-tier switched network, chassis moved between servers.", run: fleetBenchmarks },
  { name: "faults", title: "The fault matrix", about: "Every fault family (docs/faults.md) over many seeds on the default scenario under NVMe load and test traffic: one row per family, the broken promises counted per column, and the longest any request waited for its completion against the 45 ms budget.", run: faultBenchmarks },
];

/** Progress on stderr: one line redrawn in place on a terminal, one line per step otherwise. */
function progressLine(parts: number): { step: (part: number, text: string) => void; done: () => void } {
  const started = performance.now();
  const tty = process.stderr.isTTY === true;
  const cells = 20;
  return {
    step(part, text) {
      const seconds = ((performance.now() - started) / 1000).toFixed(1).padStart(5);
      const filled = Math.round((cells * part) / parts);
      const bar = `[${"#".repeat(filled)}${"-".repeat(cells - filled)}] ${part + 1}/${parts}`;
      const line = `bench ${bar} ${seconds} s  ${text}`;
      if (tty) process.stderr.write(`\r${line.slice(0, (process.stderr.columns ?? 120) - 1)}\x1b[K`);
      else process.stderr.write(`${line}\n`);
    },
    done() {
      if (tty) process.stderr.write(`\r\x1b[K`);
      process.stderr.write(`bench: ${parts} part(s) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    },
  };
}

export async function runBenchmarks(options: BenchOptions): Promise<Record<string, Metric>> {
  if (!existsSync(FIRMWARE)) throw new Error("build/firmware.wasm is missing: run `npm run build` first");
  const chosen = options.only ? PARTS.filter((p) => p.name === options.only) : PARTS;
  if (chosen.length === 0) throw new Error(`no benchmark part named ${options.only}; the parts are ${PARTS.map((p) => p.name).join(", ")}`);
  const progress = progressLine(chosen.length);
  const parts: ReportPart[] = [];
  for (const [i, part] of chosen.entries()) {
    const section = await part.run(options, (text) => progress.step(i, `${part.name}: ${text}`));
    parts.push({ name: part.name, title: part.title, about: part.about, section });
  }
  progress.done();
  const rows = parts.flatMap((p) => p.section.rows);
  const results = writeResults(rows, options.only !== undefined);
  mkdirSync(FIGURES, { recursive: true });
  const figures = parts.flatMap((p) => p.section.figures ?? []);
  for (const figure of figures) writeFileSync(join(FIGURES, figure.file), figure.svg);
  const notes = parts.flatMap((p) => p.section.notes);
  process.stdout.write(`${formatTable(rows)}\n${notes.map((n) => `note: ${n}\n`).join("")}wrote ${RESULTS} and ${figures.length} figure(s) in ${FIGURES}\n`);
  if (!options.only) {
    writeFileSync(REPORT, renderReport(parts, results, { quick: options.quick, wasm3: options.wasm3 !== undefined, figureDir: "figures" }));
    process.stdout.write(`wrote ${REPORT}\n`);
  } else {
    process.stdout.write(`${REPORT} is left as the last run of every part wrote it\n`);
  }
  return results;
}
