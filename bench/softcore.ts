// The soft-core: what the firmware costs the card's CPU, and the calibration of that cost.
//
// Calibration (with valgrind and a wasm3 binary): the default scenario's mailbox streams are
// recorded; wasm3 runs the release over each of them (and over no input at all) under
// callgrind, which counts the x86-64 instructions it executes, function by function; the
// metered copy of the firmware counts the WebAssembly instructions and the code compiled over
// the same streams. wasm3's functions fall in four groups: its opcode handlers (executing),
// its loader and compiler, host memory allocation (malloc, memset: a card build sets memory up
// once, statically), and host I/O. The quotients are the costs board/softcore.ts uses.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wasm3Native, SoftcoreTiming, SOFTCORE_DEFAULT_MHZ } from "../board/softcore.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { World } from "../tools/sim/world.ts";
import { SCENARIOS } from "../tools/sim/scenarios.ts";
import { meterModule } from "../tools/engines/meter.ts";
import { InProcessFirmware } from "../tools/engines/inprocess.ts";
import { firmwareFile } from "../tools/engines/index.ts";
import type { RunSummary } from "../tools/sim/summary.ts";
import type { Section } from "./metrics.ts";

type Group = "execute" | "compile" | "allocation" | "io";

/** Which part of wasm3's work a function of its is. */
function wasm3Group(fn: string): Group {
  if (/^op_Compile/.test(fn)) return "compile";
  if (/^op_/.test(fn)) return "execute";
  if (/mem(set|cpy|move)|malloc|calloc|realloc|free|_int_|brk|mmap|tcache|arena|unlink_chunk/.test(fn)) return "allocation";
  if (/wasi|^(__libc_)?(read|write)$/.test(fn)) return "io";
  return "compile";
}

/** x86-64 instructions per group of wasm3 running `module` over `input`, by callgrind. */
function callgrind(wasm3: string, module: string, input: Uint8Array, dir: string): Record<Group, number> {
  const out = join(dir, `callgrind.${Math.random().toString(16).slice(2)}`);
  const run = spawnSync("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, wasm3, module], { input, stdio: ["pipe", "ignore", "ignore"], maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`valgrind exited with ${run.status ?? run.signal}`);
  const text = spawnSync("callgrind_annotate", ["--threshold=100", out], { encoding: "utf8", maxBuffer: 1 << 28 }).stdout;
  const groups: Record<Group, number> = { execute: 0, compile: 0, allocation: 0, io: 0 };
  for (const line of text.split("\n")) {
    const m = /^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:([^\s[]+)/.exec(line);
    if (!m || line.includes("PROGRAM TOTALS")) continue;
    groups[wasm3Group(m[2].replace(/'\d+$/, ""))] += Number(m[1].replace(/,/g, ""));
  }
  return groups;
}

interface Calibration {
  perInstruction: number;
  perCompiledByte: number;
  perModuleByte: number;
  streams: number;
  instructions: number;
}

async function calibrate(wasm3: string, progress: (text: string) => void): Promise<Calibration> {
  const dir = mkdtempSync(join(tmpdir(), "iov-calibrate-"));
  try {
    progress("calibration: recording the default scenario's mailbox streams");
    await new World({ scenario: SCENARIOS.default, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, record: dir, print: null }).run();
    const release = new Uint8Array(readFileSync(FIRMWARE));
    const metered = firmwareFile(meterModule(release));
    const count = (input: Uint8Array) => {
      const f = new InProcessFirmware({ firmware: metered });
      f.runToEnd(input);
      return { instructions: Number(f.instructions), compiled: Number(f.compiledBytes) };
    };
    const streams = ["host", "chassis"].map((card) => new Uint8Array(readFileSync(join(dir, `${card}.in`))));
    let executed = 0;
    let instructions = 0;
    let compiledNative = 0;
    let compiledBytes = 0;
    progress("calibration: wasm3 under callgrind over no input");
    const empty = callgrind(wasm3, FIRMWARE, new Uint8Array(0), dir);
    const emptyCount = count(new Uint8Array(0));
    for (const [i, input] of streams.entries()) {
      progress(`calibration: wasm3 under callgrind over stream ${i + 1} of ${streams.length} (${input.length} bytes)`);
      const native = callgrind(wasm3, FIRMWARE, input, dir);
      const counted = count(input);
      executed += native.execute;
      instructions += counted.instructions;
      compiledNative += native.compile - empty.compile;
      compiledBytes += counted.compiled - emptyCount.compiled;
    }
    const perCompiledByte = compiledNative / compiledBytes;
    return {
      perInstruction: executed / instructions,
      perCompiledByte,
      perModuleByte: (empty.compile - emptyCount.compiled * perCompiledByte) / release.length,
      streams: streams.length,
      instructions,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function defaultRun(mhz: number): Promise<RunSummary> {
  return new World({ scenario: SCENARIOS.default, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, softcoreMhz: mhz, print: null }).run();
}

export async function softcoreBenchmarks(options: { wasm3?: string }, progress: (text: string) => void): Promise<Section> {
  const rows: Section["rows"] = [];
  const notes: string[] = [];
  const mhz = SOFTCORE_DEFAULT_MHZ;
  const timing = new SoftcoreTiming(mhz);
  progress("default scenario, zero-time model");
  const zero = await defaultRun(0);
  progress(`default scenario, soft-cores at ${mhz} MHz`);
  const clocked = await defaultRun(mhz);
  const perBatch = zero.cards.map((c) => c.stats.instructions / Math.max(1, c.stats.batches));
  rows.push({ id: "softcore_wasm_instr_per_batch.mean", metric: { value: Math.max(...perBatch), unit: "instructions" } });
  const busiest = (s: RunSummary) => Math.max(...s.cards.map((c) => c.stats.busyNs / s.simulatedNs));
  rows.push({ id: `softcore_util.default.mhz${mhz}`, metric: { value: 100 * busiest(clocked), unit: "%" } });
  rows.push({ id: `softcore_batch_us.max.mhz${mhz}`, metric: { value: Math.max(...clocked.cards.map((c) => c.stats.maxBatchNs)) / 1000, unit: "µs" } });
  rows.push({ id: "softcore_batches.default.zero", metric: { value: Math.max(...zero.cards.map((c) => c.stats.batches)), unit: "batches/s" } });
  rows.push({ id: `softcore_batches.default.mhz${mhz}`, metric: { value: Math.max(...clocked.cards.map((c) => c.stats.batches)), unit: "batches/s" }, baseline: "softcore_batches.default.zero" });
  const boot = (s: RunSummary) => Math.max(...s.cards.map((c) => c.stats.bootNs ?? Infinity)) / 1e6;
  rows.push({ id: "softcore_boot_ms.zero", metric: { value: boot(zero), unit: "ms" } });
  rows.push({ id: `softcore_boot_ms.mhz${mhz}`, metric: { value: boot(clocked), unit: "ms" } });
  progress("console scenario (links up, no traffic), zero-time model, 1 s and 2 s");
  const idleRun = (ns: number) => new World({ scenario: SCENARIOS.console, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, softcoreMhz: 0, durationNs: ns, print: null }).run();
  const [first, both] = [await idleRun(1e9), await idleRun(2e9)];
  const idle = Math.max(...both.cards.map((c, i) => timing.batchNs({ instructions: c.stats.instructions - first.cards[i].stats.instructions, compiledBytes: c.stats.compiledBytes - first.cards[i].stats.compiledBytes }) / 1e9));
  rows.push({ id: `softcore_util.idle.projected.mhz${mhz}`, metric: { value: 100 * idle, unit: "%" } });
  notes.push(`softcore_util.idle.projected: the busiest card's instructions in the second second of the console scenario (paired, no traffic), in the zero-time model, at ${mhz} MHz: a projection, since at ${mhz} MHz the pairing does not complete yet (docs/softcore.md)`);
  rows.push({ id: `softcore_load_ms.mhz${mhz}`, metric: { value: timing.loadNs(readFileSync(FIRMWARE).length) / 1e6, unit: "ms" } });
  const reads = zero.servers[0].configReads;
  rows.push({ id: "cfg_read_ns.p50.zero", metric: { value: reads.p50Ns, unit: "ns" } });
  rows.push({ id: "cfg_read_ns.p99.zero", metric: { value: reads.p99Ns, unit: "ns" } });
  const clockedReads = clocked.servers[0].configReads;
  if (clockedReads.count > 0) {
    rows.push({ id: `cfg_read_ns.p50.mhz${mhz}`, metric: { value: clockedReads.p50Ns, unit: "ns" }, baseline: "cfg_read_ns.p50.zero" });
    rows.push({ id: `cfg_read_ns.p99.mhz${mhz}`, metric: { value: clockedReads.p99Ns, unit: "ns" }, baseline: "cfg_read_ns.p99.zero" });
  } else {
    notes.push(`cfg_read_ns at ${mhz} MHz: no configuration read completed: the server enumerates at 2 ms, while the host card's soft-core is still loading and booting its firmware (${((timing.loadNs(readFileSync(FIRMWARE).length) + clocked.cards[0].stats.maxBatchNs) / 1e6).toFixed(0)} ms or more)`);
  }
  notes.push(`cfg_read_ns in the zero-time model: ${reads.count} configuration reads of the server's enumeration and drivers, through the host card's virtual switch and the tunnel`);
  notes.push(`the busiest card of the default scenario (1 s, seed 1): ${(100 * busiest(clocked)).toFixed(1)} % busy at ${mhz} MHz; ${Math.round(Math.max(...perBatch))} WebAssembly instructions per batch on average in the zero-time run`);
  const hasValgrind = spawnSync("valgrind", ["--version"]).status === 0;
  if (options.wasm3 && hasValgrind) {
    const c = await calibrate(options.wasm3, progress);
    rows.push({ id: "softcore_cal.native_per_instruction", metric: { value: c.perInstruction, unit: "x86 instr" } });
    rows.push({ id: "softcore_cal.native_per_compiled_byte", metric: { value: c.perCompiledByte, unit: "x86 instr" } });
    rows.push({ id: "softcore_cal.native_per_module_byte", metric: { value: c.perModuleByte, unit: "x86 instr" } });
    notes.push(
      `calibration over ${c.streams} recorded streams (${c.instructions} WebAssembly instructions): per instruction ${c.perInstruction.toFixed(2)} x86-64 instructions ` +
      `(board/softcore.ts uses ${Wasm3Native.perInstruction}), per compiled byte ${c.perCompiledByte.toFixed(0)} (uses ${Wasm3Native.perCompiledByte}), ` +
      `per module byte ${c.perModuleByte.toFixed(1)} (uses ${Wasm3Native.perModuleByte})`,
    );
  } else {
    notes.push(`calibration skipped: it needs ${options.wasm3 ? "" : "a wasm3 binary (--wasm3 PATH or IOV_WASM3) and "}valgrind${hasValgrind ? " (found)" : " (apt-get install valgrind)"}`);
  }
  return { rows, notes };
}
