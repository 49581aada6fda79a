// `iov faults`: the fault matrix (tools/sim/faults.ts, docs/faults.md). Every chosen family
// over its seeds on worker threads, one row per family and the totals, each failing cell on a
// line with the command that replays it; exit status 1 when any promise was broken.

import { writeFileSync } from "node:fs";
import { CliError, engineOptions } from "./args.ts";
import { Progress } from "./progress.ts";
import {
  FAMILIES, FAMILY_NAMES, DEFAULT_SEEDS, HOLD_BUDGET_NS, defaultJobs, formatFailures, formatMatrix, matrix, matrixJson, passed, runMatrix,
} from "../sim/faults.ts";

export interface FaultsFlags {
  family?: string[];
  seeds?: number;
  jobs?: number;
  json?: string;
  list?: boolean;
}

/** The families --family names (each value a name or a comma list), in matrix order; all of them when none is given. */
export function chosenFamilies(values: string[] | undefined): string[] {
  if (values === undefined) return FAMILY_NAMES;
  const names = values.flatMap((v) => v.split(",")).map((name) => name.trim()).filter((name) => name !== "");
  const unknown = names.find((name) => !FAMILY_NAMES.includes(name));
  if (unknown !== undefined) throw new CliError(`--family: unknown fault family '${unknown}'; the families are ${FAMILY_NAMES.join(", ")}`);
  if (names.length === 0) throw new CliError(`--family: no family named; the families are ${FAMILY_NAMES.join(", ")}`);
  return FAMILY_NAMES.filter((name) => names.includes(name));
}

/** `iov faults --list`: each family, what it injects and what it allows the server to see. */
export function listFamilies(): string {
  const width = Math.max(...FAMILY_NAMES.map((n) => n.length));
  const pad = " ".repeat(width + 2);
  return FAMILIES.map((f) => `${f.name.padEnd(width)}  ${f.injects}\n${pad}allows: ${f.allows}`).join("\n") +
    `\n\nA request may wait at most ${HOLD_BUDGET_NS / 1e6} ms for its completion. Replay a cell: npx iov sim --fault FAMILY --seed SEED (docs/faults.md)\n`;
}

export async function runFaults(flags: FaultsFlags): Promise<void> {
  if (flags.list) {
    process.stdout.write(listFamilies());
    return;
  }
  const families = chosenFamilies(flags.family);
  const seeds = flags.seeds ?? DEFAULT_SEEDS;
  const jobs = flags.jobs ?? defaultJobs();
  const { firmware } = engineOptions({ engine: "node" });
  if (flags.json) {
    try {
      writeFileSync(flags.json, "");
    } catch (error) {
      throw new CliError(`--json ${flags.json}: cannot write it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  const progress = new Progress(families.length * seeds, { label: "faults", unit: "runs" });
  const started = performance.now();
  const cells = await runMatrix({ families, seeds, jobs, firmware, onCell: (done) => progress.update(done) });
  progress.done();
  const wallS = (performance.now() - started) / 1000;
  const m = matrix(cells);
  process.stdout.write(`${formatMatrix(m)}\n\n`);
  process.stdout.write(`${cells.length} runs (${families.length} families × ${seeds} seed(s)) in ${wallS.toFixed(1)} s of wall time on ${Math.min(jobs, cells.length)} worker(s); ` +
    `a run took ${(m.totals.wallMs / 1000).toFixed(2)} s on average; hold budget ${HOLD_BUDGET_NS / 1e6} ms\n`);
  if (flags.json) writeFileSync(flags.json, JSON.stringify(matrixJson(m, cells, seeds), null, 2) + "\n");
  if (passed(m.totals)) return;
  process.stdout.write(`\nexit status 1:\n${formatFailures(m).map((line) => `  ${line}`).join("\n")}\n`);
  process.exitCode = 1;
}
