// The fault matrix in the report (tools/sim/faults.ts, docs/faults.md): every family over its
// seeds on worker threads, the table `iov faults` prints (the same code renders both), the
// totals as metrics, and a note per family with failing cells.

import { DEFAULT_SEEDS, FAMILY_NAMES, BROKEN, HOLD_BUDGET_NS, defaultJobs, matrix, matrixMarkdown, replayCommand, runMatrix } from "../tools/sim/faults.ts";
import type { Section } from "./metrics.ts";

/** Seeds per family in a quick run: every family still runs, once. */
const QUICK_SEEDS = 1;

export async function faultBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  const seeds = options.quick ? QUICK_SEEDS : DEFAULT_SEEDS;
  const jobs = defaultJobs();
  const started = performance.now();
  const cells = await runMatrix({ families: FAMILY_NAMES, seeds, jobs, onCell: (done, total) => progress(`faults: ${done}/${total} runs`) });
  const wallS = (performance.now() - started) / 1000;
  const m = matrix(cells);
  const broken = BROKEN.reduce((n, key) => n + m.totals.counts[key], 0);
  return {
    rows: [
      { id: "faults_runs", metric: { value: m.totals.runs, unit: "runs" } },
      { id: "faults_failed_runs", metric: { value: m.rows.reduce((n, r) => n + r.failed.length, 0), unit: "runs" } },
      { id: "faults_broken_promises", metric: { value: broken, unit: "count" } },
      { id: "faults_worst_hold_ms", metric: { value: m.totals.counts.worstHoldNs / 1e6, unit: "ms" } },
      { id: "faults_wall_s_per_run", metric: { value: m.totals.wallMs / 1000, unit: "s" } },
    ],
    tables: [matrixMarkdown(m)],
    notes: [
      `${FAMILY_NAMES.length} families × ${seeds} seed(s) (\`npx iov faults${options.quick ? ` --seeds ${seeds}` : ""}\` prints the same table), ${jobs} worker thread(s), ${wallS.toFixed(0)} s of wall time; ` +
        `a run's seed is derived from its family and index, so each cell replays exactly with \`npx iov sim --fault FAMILY --seed SEED\`; the hold budget is ${HOLD_BUDGET_NS / 1e6} ms`,
      `faults_broken_promises: the totals of the columns lost, duplicated, reordered, completion timeouts, spurious hot-plug, data errors, traps, unrecovered and invariants; aborted by removal is legitimate; must be 0`,
      ...m.rows.filter((r) => r.failed.length > 0).map((r) => {
        const first = r.failed[0];
        return `${r.family}: ${r.failed.length} of ${r.runs} runs failed; the first (seed ${first.seed}): ${first.reasons[0]}; replay: \`${replayCommand(first.family, first.seed)}\``;
      }),
    ],
  };
}
