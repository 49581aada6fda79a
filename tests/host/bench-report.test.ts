// The benchmark report (bench/report.ts): what a reader finds in it, from made-up results.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { renderReport, formatValue, type ReportPart } from "../../bench/report.ts";
import type { Metric } from "../../bench/metrics.ts";

const results: Record<string, Metric> = {
  "goodput_gbps.mtu9000.mps256.loss0.selective": { value: 9.278, unit: "Gb/s" },
  "limit_gbps.mtu9000.mps256": { value: 9.286, unit: "Gb/s" },
  "native_gbps.gen1x4.mps256": { value: 7.314, unit: "Gb/s" },
  "fw_wasm_bytes": { value: 45290, unit: "bytes" },
  "fw_memory_pages": { value: 1, unit: "pages" },
  "fw_events_per_s.inproc": { value: 2351116.4, unit: "events/s" },
};

const parts: ReportPart[] = [
  {
    name: "tunnel", title: "Tunnel goodput", about: "What one tunnel carries.",
    section: {
      rows: [
        { id: "limit_gbps.mtu9000.mps256", metric: results["limit_gbps.mtu9000.mps256"] },
        { id: "goodput_gbps.mtu9000.mps256.loss0.selective", metric: results["goodput_gbps.mtu9000.mps256.loss0.selective"], baseline: "limit_gbps.mtu9000.mps256" },
      ],
      notes: ["goodput: 256-byte writes"],
      figures: [{ file: "goodput-mtu9000.svg", title: "Goodput against frame loss, MTU 9000", svg: "<svg/>", caption: "A saturating stream." }],
    },
  },
  { name: "firmware", title: "Firmware", about: "Size and speed.", section: { rows: [{ id: "fw_wasm_bytes", metric: results.fw_wasm_bytes }], notes: [] } },
];

test("the report has the headline figures it has results for, the assumptions, the references, and per part its plot, table, notes and command", () => {
  const md = renderReport(parts, results, { quick: false, wasm3: false, figureDir: "figures" });
  assert.match(md, /^# IOV card: benchmark report\n/);
  assert.match(md, /\| Goodput, MTU 9000, no loss \(selective repeat\) \| 9\.278 Gb\/s of 256-byte writes: 99\.9 % of the analytic limit, 1\.27 × native PCIe Gen1 x4 \|/);
  assert.match(md, /\| Firmware \| 45 290 bytes, 1 page of memory; 2 351 116 events\/s in-process \|/, "no wasm3 figure without one");
  assert.doesNotMatch(md, /NaN/, "headlines whose metrics are missing are left out");
  assert.match(md, /## The model and its assumptions\n\n- \*\*Fixed latencies\.\*\*/);
  assert.match(md, /## Where the reference values come from\n\n- \*\*Analytic limit\*\*/);
  assert.match(md, /## Tunnel goodput\n\nWhat one tunnel carries\.\n\nRerun: `npx iov bench --only tunnel`\.\n\n!\[Goodput against frame loss, MTU 9000\]\(figures\/goodput-mtu9000\.svg\)\n\n\*Goodput against frame loss, MTU 9000\.\* A saturating stream\.\n/);
  assert.match(md, /\| `goodput_gbps\.mtu9000\.mps256\.loss0\.selective` \| 9\.278 \| Gb\/s \| 0\.999 × `limit_gbps\.mtu9000\.mps256` \|/);
  assert.match(md, /- goodput: 256-byte writes\n/);
  assert.match(md, /without a wasm3 binary/);
  assert.match(renderReport(parts, results, { quick: true, wasm3: true, figureDir: "figures" }), /`npx iov bench --only tunnel --quick`/);
});

test("values are printed to four significant digits, large ones grouped by thousands", () => {
  assert.deepEqual([formatValue(9.2784), formatValue(0.5946), formatValue(166.8995), formatValue(5167), formatValue(45290), formatValue(2351116.4), formatValue(0), formatValue(20)],
    ["9.278", "0.5946", "166.9", "5167", "45 290", "2 351 116", "0", "20"]);
});

test("iov bench --only refuses a part that does not exist, naming the parts", () => {
  const r = spawnSync(process.execPath, ["tools/iov.mjs", "bench", "--only", "nope"], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no benchmark part named 'nope'; the parts are firmware, tunnel, pcie, macsec, paths, congestion, link, hotplug, manage, softcore, fleet, faults/);
  // --help names the same parts.
  const help = spawnSync(process.execPath, ["tools/iov.mjs", "bench", "--help"], { encoding: "utf8" });
  const listed = /run one part: ([^]*?)\n {2}--/.exec(help.stdout)?.[1].replace(/\s+/g, " ").replace(" or ", ", ");
  assert.equal(listed, "firmware, tunnel, pcie, macsec, paths, congestion, link, hotplug, manage, softcore, fleet, faults", help.stdout);
});
