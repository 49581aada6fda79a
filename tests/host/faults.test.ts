// The fault matrix (tools/sim/faults.ts, docs/faults.md): its own counting, on made-up
// results; seeds, replay and the CLI; and the CI subset, every family over two seeds, which
// must keep every promise.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BROKEN, FAMILIES, FAMILY_NAMES, HOLD_BUDGET_NS, defaultJobs, formatFailures, formatMatrix, judge, matrix, matrixJson, passed, replayCommand, runCell, runMatrix, seedFor,
  type CellCounts, type CellResult, type FamilyRow, type Observation,
} from "../../tools/sim/faults.ts";
import { chosenFamilies } from "../../tools/cli/faults.ts";
import { CliError } from "../../tools/cli/args.ts";
import { ROOT, assertOneLineError, iov } from "./helpers.ts";

const MS = 1_000_000;

/** A clean run's summary: nothing lost, nothing timed out, the longest request 8 ms. */
function observation(o: Partial<Observation> = {}): Observation {
  return {
    summary: {
      tlps: { sent: 100, delivered: 90, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 10 }, hostCompletionTimeouts: 0, deviceCompletionTimeouts: 0,
      dataVerificationErrors: 0, firmwareTraps: 0, mailboxErrors: 0, invariants: [], worstRequestNs: 8 * MS, worstRequest: "server: config read (completed)",
    },
    hotplug: [], occupied: ["server:1", "server:2"], disruptions: [], unrecovered: [], ...o,
  };
}

/** One removal and one insertion of each of `slots`. */
const outage = (slots: string[]) => slots.flatMap((slot) => [{ slot, change: "removal" as const }, { slot, change: "insertion" as const }]);

test("a clean run counts nothing but the TLPs a removal aborted, and passes", () => {
  const { counts, reasons } = judge(observation());
  assert.deepEqual(reasons, []);
  assert.deepEqual(counts, { delivered: 90, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 10, completionTimeouts: 0, spuriousHotplug: 0, dataErrors: 0, traps: 0, unrecovered: 0, invariants: 0, worstHoldNs: 8 * MS });
});

test("hot-plug events are spurious beyond one removal and one insertion per occupied slot per disruption", () => {
  // A disruption allows one of each on every occupied slot: nothing spurious.
  assert.equal(judge(observation({ hotplug: outage(["server:1", "server:2"]), disruptions: ["a 40 ms outage"] })).counts.spuriousHotplug, 0);
  // No disruption: every event is spurious, and the reason names the slots.
  const planted = judge(observation({ hotplug: outage(["server:1", "server:2"]) }));
  assert.equal(planted.counts.spuriousHotplug, 4);
  assert.deepEqual(planted.reasons, ["4 spurious hot-plug event(s): slot(s) server:1, server:2: 1 removal(s) and 1 insertion(s), at most 0 of each allowed (nothing the server should see)"]);
  // One planted removal too many on one slot is one spurious event, whatever the others did.
  const extra = judge(observation({ hotplug: [...outage(["server:1", "server:2"]), { slot: "server:2", change: "removal" }], disruptions: ["a 40 ms outage"] }));
  assert.equal(extra.counts.spuriousHotplug, 1);
  assert.match(extra.reasons[0], /slot\(s\) server:2: 2 removal\(s\) and 1 insertion\(s\), at most 1 of each allowed \(a 40 ms outage\)/);
  // A failed insertion is an insertion; a slot that held no device allows none.
  assert.equal(judge(observation({ hotplug: [{ slot: "server:1", change: "insertionFailed" }], disruptions: ["x"] })).counts.spuriousHotplug, 0);
  assert.equal(judge(observation({ hotplug: [{ slot: "server:7", change: "insertionFailed" }], disruptions: ["x"] })).counts.spuriousHotplug, 1);
});

test("each broken promise counts once in its column, and the hold budget is a limit, not a count", () => {
  const { counts, reasons } = judge(observation({
    summary: {
      ...observation().summary, tlps: { sent: 10, delivered: 7, lost: 1, duplicated: 2, reordered: 1, abortedByRemoval: 0 }, hostCompletionTimeouts: 1, deviceCompletionTimeouts: 2,
      dataVerificationErrors: 3, firmwareTraps: 1, mailboxErrors: 1, invariants: ["server has 3:0.0 ..."], worstRequestNs: 50 * MS, worstRequest: "chassis slot 3: DMA read (timed out)",
    },
    unrecovered: ["card host is faulted at the end"],
  }));
  assert.deepEqual(counts, { delivered: 7, lost: 1, duplicated: 2, reordered: 1, abortedByRemoval: 0, completionTimeouts: 3, spuriousHotplug: 0, dataErrors: 3, traps: 2, unrecovered: 1, invariants: 1, worstHoldNs: 50 * MS });
  assert.equal(reasons.length, 9);
  assert.match(reasons.at(-1)!, /a request waited 50\.000 ms, over the 45\.000 ms budget: chassis slot 3: DMA read \(timed out\)/);
  const atBudget = judge(observation({ summary: { ...observation().summary, worstRequestNs: HOLD_BUDGET_NS } }));
  assert.deepEqual(atBudget.reasons, [], "a hold of exactly the budget is within it");
});

/** A made-up cell of `family` with `counts` changed. */
function cell(family: string, index: number, counts: Partial<CellCounts>, reasons: string[] = []): CellResult {
  const base = judge(observation()).counts;
  return { family, index, seed: seedFor(family, index), counts: { ...base, ...counts }, worstHold: "server: config read (completed)", account: [], reasons, wallMs: 1000 + index };
}

test("the table and the JSON agree, row by row and in the totals, and a failing cell has a line with its replay command", () => {
  const cells = [
    cell("flap-train-below", 0, {}), cell("flap-train-below", 1, { spuriousHotplug: 8 }, ["8 spurious hot-plug event(s): ..."]),
    cell("host-reboot", 0, { unrecovered: 1, invariants: 4, worstHoldNs: 47 * MS }, ["not recovered: ...", "a request waited 47.000 ms, over the 45.000 ms budget: ..."]),
    cell("host-reboot", 1, { abortedByRemoval: 256 }),
  ];
  const m = matrix(cells);
  const json = matrixJson(m, cells, 2) as { passed: boolean; families: { family: string; runs: number; counts: CellCounts; cells: { replay: string }[] }[]; totals: { runs: number; counts: CellCounts } };
  const lines = formatMatrix(m).split("\n");
  const titles = lines[0].split(/\s{2,}/);
  const rows = lines.filter((line) => !/^-+/.test(line)).slice(1).map((line) => line.split(/\s{2,}/));
  const column = (title: string) => titles.indexOf(title);
  const expected = [...json.families.map((f) => ({ name: f.family, runs: f.runs, counts: f.counts })), { name: "total", runs: json.totals.runs, counts: json.totals.counts }];
  assert.equal(rows.length, expected.length);
  const keys: [string, keyof CellCounts][] = [["TLPs delivered", "delivered"], ["lost", "lost"], ["duplicated", "duplicated"], ["reordered", "reordered"], ["aborted by removal", "abortedByRemoval"], ["completion timeouts", "completionTimeouts"],
    ["spurious hot-plug", "spuriousHotplug"], ["data errors", "dataErrors"], ["traps", "traps"], ["unrecovered", "unrecovered"], ["invariants", "invariants"]];
  for (const [i, e] of expected.entries()) {
    assert.equal(rows[i][0], e.name);
    assert.equal(Number(rows[i][column("runs")]), e.runs);
    for (const [title, key] of keys) assert.equal(Number(rows[i][column(title)]), e.counts[key], `${e.name}: ${title}`);
    assert.equal(parseFloat(rows[i][column("worst hold (ms)")]), Number((e.counts.worstHoldNs / MS).toFixed(1)), `${e.name}: worst hold`);
  }
  assert.match(rows.at(-1)![column("worst hold (ms)")], /47\.0 !/, "over the budget is marked");
  assert.equal(json.passed, false);
  assert.deepEqual(json.totals.counts, { delivered: 360, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 286, completionTimeouts: 0, spuriousHotplug: 8, dataErrors: 0, traps: 0, unrecovered: 1, invariants: 4, worstHoldNs: 47 * MS });
  assert.equal(json.families[0].cells[1].replay, `npx iov sim --fault flap-train-below --seed ${seedFor("flap-train-below", 1)}`);
  const failures = formatFailures(m);
  assert.equal(failures.length, 2, "one line per failing cell");
  assert.equal(failures[0], `flap-train-below #1: 8 spurious hot-plug event(s): ...; replay: ${replayCommand("flap-train-below", seedFor("flap-train-below", 1))}`);
  assert.ok(failures.every((line) => !line.includes("\n")));
});

test("the matrix passes only when every broken-promise total is zero and the longest hold is within the budget", () => {
  const totals = (counts: Partial<CellCounts>): FamilyRow => matrix([cell("x", 0, counts)]).totals;
  assert.equal(passed(totals({ abortedByRemoval: 500, worstHoldNs: HOLD_BUDGET_NS })), true);
  for (const key of BROKEN) assert.equal(passed(totals({ [key]: 1 })), false, key);
  assert.equal(passed(totals({ worstHoldNs: HOLD_BUDGET_NS + 1 })), false);
});

test("a cell's seed is derived from its family and index alone: the same every time, different across cells, a value iov sim takes", () => {
  assert.equal(seedFor("flap-train-below", 3), seedFor("flap-train-below", 3));
  const seeds = new Set(FAMILY_NAMES.flatMap((name) => [0, 1, 2].map((index) => seedFor(name, index))));
  assert.equal(seeds.size, FAMILY_NAMES.length * 3);
  for (const seed of seeds) assert.ok(Number.isInteger(seed) && seed >= 0 && seed <= 2 ** 32 - 1);
  // SHA-256("flap-train-below#0"), first 32 bits: fixed, so a replay command stays valid.
  assert.equal(seedFor("flap-train-below", 0), 3829668176);
});

test("--family takes names and comma lists, in matrix order, and refuses an unknown name listing the families", () => {
  assert.deepEqual(chosenFamilies(undefined), FAMILY_NAMES);
  assert.deepEqual(chosenFamilies(["host-reboot,flap-train-below", "host-reboot"]), ["flap-train-below", "host-reboot"]);
  assert.throws(() => chosenFamilies(["flap-train-below,nope"]), (error: Error) => error instanceof CliError && error.message === `--family: unknown fault family 'nope'; the families are ${FAMILY_NAMES.join(", ")}`);
  assertOneLineError(iov(["faults", "--family", "nope"]), 1, /--family: unknown fault family 'nope'; the families are flap-train-below, /);
  assertOneLineError(iov(["faults", "--seeds", "0"]), 2, /option '--seeds <n>' argument '0' is invalid\. expected 1\.\.10000, got 0/);
  assertOneLineError(iov(["faults", "--jobs", "many"]), 2, /option '--jobs <n>' argument 'many' is invalid\. expected a whole number/);
  assertOneLineError(iov(["sim", "--fault", "nope"]), 1, /--fault: unknown fault family 'nope'; the families are flap-train-below, /);
  assertOneLineError(iov(["sim", "--fault", "host-reboot", "--duration", "1s"]), 1, /--fault: the run ends when the family's faults have settled: leave out --duration/);
});

test("iov faults --list names every family with what it injects and allows; docs/faults.md describes each", () => {
  const result = iov(["faults", "--list"]);
  assert.equal(result.status, 0, result.stderr);
  const doc = readFileSync(`${ROOT}docs/faults.md`, "utf8");
  for (const f of FAMILIES) {
    assert.ok(result.stdout.includes(`${f.name}  ${f.injects}`) || result.stdout.includes(` ${f.injects}\n`), f.name);
    assert.ok(result.stdout.includes(`allows: ${f.allows}`), f.name);
    assert.ok(doc.includes(`| \`${f.name}\` |`), `docs/faults.md has a row for ${f.name}`);
  }
  assert.match(result.stdout, /A request may wait at most 45 ms for its completion/);
});

test("a cell gives the same numbers every time, in this thread or on workers, and iov sim --fault replays it", async () => {
  const families = ["duplicate-frames", "switch-port-failure"];
  const here = await runMatrix({ families, seeds: 1, jobs: 1 });
  const workers = await runMatrix({ families, seeds: 1, jobs: 2 });
  assert.deepEqual(workers.map((c) => [c.family, c.seed, c.counts, c.account, c.reasons]), here.map((c) => [c.family, c.seed, c.counts, c.account, c.reasons]));
  const again = await runCell("duplicate-frames", 0);
  assert.deepEqual(again.counts, here[0].counts);
  const file = join(mkdtempSync(join(tmpdir(), "iov-faults-")), "summary.json");
  const replay = iov(["sim", "--fault", "duplicate-frames", "--seed", String(here[0].seed), "--quiet", "--summary", file]);
  assert.equal(replay.status, 0, replay.stdout + replay.stderr);
  assert.match(replay.stdout, new RegExp(`fault duplicate-frames, seed ${here[0].seed}: every promise kept`));
  const summary = JSON.parse(readFileSync(file, "utf8"));
  assert.equal(summary.worstRequestNs, here[0].counts.worstHoldNs);
  assert.deepEqual(summary.tlps.abortedByRemoval, here[0].counts.abortedByRemoval);
});

// The CI subset: every family over two seeds, run once on worker threads when the first
// family's test starts; each family's test waits for its row.
let subset: Promise<CellResult[]> | null = null;

for (const name of FAMILY_NAMES) {
  test(`fault family ${name}: two seeds keep every promise and every hold within ${HOLD_BUDGET_NS / MS} ms`, async () => {
    subset ??= runMatrix({ families: FAMILY_NAMES, seeds: 2, jobs: defaultJobs() });
    const m = matrix((await subset).filter((c) => c.family === name));
    for (const key of BROKEN) assert.equal(m.totals.counts[key], 0, `${key}:\n${formatFailures(m).join("\n")}`);
    assert.ok(m.totals.counts.worstHoldNs <= HOLD_BUDGET_NS, `worst hold ${m.totals.counts.worstHoldNs / MS} ms: ${m.totals.worstHold}`);
  });
}
