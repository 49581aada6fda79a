// Benchmark results: rows of { id, value, unit } with an optional baseline row to compare
// against, printed as a table and merged into bench/results.json.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const RESULTS = fileURLToPath(new URL("./results.json", import.meta.url));

export interface Metric {
  value: number;
  unit: string;
}

export interface Row {
  id: string;
  metric: Metric;
  /** The metric this one is compared with in the table (same run). */
  baseline?: string;
}

/** A plot for the report: an SVG file under bench/figures/. */
export interface Figure {
  file: string;
  title: string;
  svg: string;
  /** What it shows and how it was made: the model, the workload, the seeds. */
  caption: string;
}

export interface Section {
  rows: Row[];
  notes: string[];
  figures?: Figure[];
  /** Tables of the part's own, in Markdown, shown before its metrics (the fault matrix). */
  tables?: string[];
}

/** Writes bench/results.json: this run's rows, merged into the last file's when `merge` (a run of some parts only). */
export function writeResults(rows: Row[], merge: boolean): Record<string, Metric> {
  const previous: Record<string, Metric> = merge && existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, "utf8")) : {};
  const results = { ...previous, ...Object.fromEntries(rows.map((r) => [r.id, r.metric])) };
  writeFileSync(RESULTS, JSON.stringify(results, null, 2) + "\n");
  return results;
}

export function formatTable(rows: Row[]): string {
  const byId = new Map(rows.map((r) => [r.id, r.metric]));
  const width = Math.max(6, ...rows.map((r) => r.id.length));
  const lines = [`${"metric".padEnd(width)}  ${"value".padStart(14)}  ${"unit".padEnd(10)}  vs baseline`];
  for (const row of rows) {
    const base = row.baseline ? byId.get(row.baseline) : undefined;
    const ratio = base ? `${(row.metric.value / base.value).toFixed(3)} × ${row.baseline}` : "";
    const v = row.metric.value;
    const value = Number.isInteger(v) ? String(v) : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(3);
    lines.push(`${row.id.padEnd(width)}  ${value.padStart(14)}  ${row.metric.unit.padEnd(10)}  ${ratio}`);
  }
  return lines.join("\n");
}
