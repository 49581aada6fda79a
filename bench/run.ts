// `npm run bench`: every benchmark, a table of figures with their baselines from the same
// run, and bench/results.json ({ id: { value, unit } }).

import { existsSync } from "node:fs";
import { FIRMWARE } from "../tools/paths.ts";
import { firmwareBenchmarks } from "./firmware.ts";
import { tunnelBenchmarks } from "./tunnel.ts";
import { pcieBenchmarks } from "./pcie.ts";
import { linkBenchmarks } from "./link.ts";
import { hotplugBenchmarks } from "./hotplug.ts";
import { manageBenchmarks } from "./manage.ts";
import { fleetBenchmarks } from "./fleet.ts";
import { formatTable, writeResults, RESULTS, type Metric } from "./metrics.ts";

export async function runBenchmarks(options: { quick: boolean; wasm3?: string }): Promise<Record<string, Metric>> {
  if (!existsSync(FIRMWARE)) throw new Error("build/firmware.wasm is missing: run `npm run build` first");
  const started = performance.now();
  const progress = (text: string) => process.stderr.write(`bench [${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}\n`);
  const sections = [await firmwareBenchmarks(options, progress), await tunnelBenchmarks(options, progress), await pcieBenchmarks(options, progress), await linkBenchmarks(options, progress), await hotplugBenchmarks(options, progress), await manageBenchmarks(options, progress), await fleetBenchmarks(options, progress)];
  const rows = sections.flatMap((s) => s.rows);
  const results = writeResults(rows);
  const notes = sections.flatMap((s) => s.notes);
  process.stdout.write(`${formatTable(rows)}\n${notes.map((n) => `note: ${n}\n`).join("")}wrote ${RESULTS}\n`);
  return results;
}
