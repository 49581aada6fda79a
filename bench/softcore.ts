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
import { BUSY_BIN_NS } from "../board/card.ts";
import { buildImage, developmentKey } from "../board/image.ts";
import { CardRole, LogLevel } from "../board/map/mailbox.ts";
import { LinkTiming } from "../board/map/link.ts";
import { BOARD_ID } from "../board/map/registers.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { World } from "../tools/sim/world.ts";
import { SCENARIOS, DEFAULT_LINK, pairScenario, type Scenario } from "../tools/sim/scenarios.ts";
import { stateEntries } from "../tools/sim/summary.ts";
import { sendXmodem } from "../tools/console/xmodem.ts";
import { lineChart } from "./svg.ts";
import { meterModule } from "../tools/engines/meter.ts";
import { InProcessFirmware } from "../tools/engines/inprocess.ts";
import { firmwareFile } from "../tools/engines/index.ts";
import type { RunSummary } from "../tools/sim/summary.ts";
import type { Figure, Section } from "./metrics.ts";

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

const MS = 1_000_000;
const SWEEP_MHZ = [50, 100, 200];

function world(scenario: Scenario, mhz: number, seed = 1): World {
  return new World({ scenario, seed, engine: "node", engineOptions: { firmware: FIRMWARE }, softcoreMhz: mhz, print: null });
}

/** The busiest card's share of busy time in the BUSY_BIN_NS bins from `fromNs` to `toNs`. */
function busyShare(summary: RunSummary, fromNs: number, toNs: number): number {
  const [first, last] = [fromNs / BUSY_BIN_NS, toNs / BUSY_BIN_NS];
  return Math.max(...summary.cards.map((c) => c.stats.busyNsPerBin.slice(first, last).reduce((a, b) => a + b, 0) / (toNs - fromNs)));
}

/** The handover scenario with a drive under load: the station moves the chassis card to server2 at `assignNs`. */
function handover(durationNs: number, assignNs: number): Scenario {
  return {
    ...SCENARIOS.handover,
    durationNs,
    devices: [{ chassis: "chassis", slot: 0, kind: "nvme", load: { queueDepth: 1, blocksPerCommand: 8, intervalNs: MS } }],
    actions: [{ kind: "assign", atNs: assignNs, card: "chassis", group: 200 }],
  };
}

/** One card whose console takes a new image with XMODEM at `atNs` (the `iov flash` path): the update's batches, the trial boot and the confirmation. */
async function flashRun(mhz: number, atNs: number, durationNs: number): Promise<RunSummary> {
  const scenario: Scenario = {
    name: "flash", description: "one card takes a new image over its console", durationNs, logLevel: LogLevel.Info,
    cards: [{ name: "card", role: CardRole.Host, serial: 0x1000_0001, slots: 1, powerOnNs: 0, link: null }],
    cables: [], link: DEFAULT_LINK, traffic: [], devices: [], servers: [], actions: [],
  };
  const w = world(scenario, mhz);
  const card = w.cards[0];
  const listeners: ((bytes: Uint8Array) => void)[] = [];
  card.uart.line = (bytes) => {
    for (const listener of listeners) listener(bytes);
    // The sender answers at this same virtual instant.
    if (listeners.length) w.scheduler.at(w.scheduler.now, () => new Promise((resolve) => setImmediate(resolve)));
  };
  const image = buildImage(readFileSync(FIRMWARE), { boardId: BOARD_ID, version: { major: 0, minor: 1, patch: 1 }, key: developmentKey() });
  const abort = new AbortController();
  w.scheduler.at(atNs, () => {
    card.uart.receive(new TextEncoder().encode("update\r"));
    sendXmodem({ write: async (bytes) => card.uart.receive(bytes), onData: (cb) => listeners.push(cb) }, image, { signal: abort.signal }).catch(() => undefined);
  });
  w.stopHooks.push(() => abort.abort());
  return w.run();
}

/** Link detection (cut behind a switch to Recovery) and reconnect (cable back to both cards Active) at `mhz`. */
async function linkTimes(mhz: number): Promise<{ detectUs: number; reconnectMs: number; bringupMs: number }> {
  const cut = 300 * MS;
  const back = cut + 100 * MS;
  const s = await world(pairScenario({ durationNs: back + 300 * MS, switched: true, outages: [{ downAtNs: cut, upAtNs: back }] }), mhz, 11).run();
  const first = (state: string, from: number) => Math.max(...["host", "chassis"].map((name) => stateEntries(s, name, state).find((t) => t >= from) ?? NaN));
  return { detectUs: (first("recovery", cut) - cut) / 1000, reconnectMs: (first("active", back) - back) / MS, bringupMs: first("active", 0) / MS };
}

export async function softcoreBenchmarks(options: { wasm3?: string }, progress: (text: string) => void): Promise<Section> {
  const rows: Section["rows"] = [];
  const notes: string[] = [];
  const figures: Figure[] = [];
  const mhz = SOFTCORE_DEFAULT_MHZ;
  const timing = new SoftcoreTiming(mhz);
  const seconds = 2;
  progress(`default scenario, ${seconds} s, zero-time model`);
  const zero = await world({ ...SCENARIOS.default, durationNs: seconds * 1e9 }, 0).run();
  progress(`default scenario, ${seconds} s, soft-cores at ${mhz} MHz`);
  const clocked = await world({ ...SCENARIOS.default, durationNs: seconds * 1e9 }, mhz).run();
  const perBatch = (s: RunSummary) => Math.max(...s.cards.map((c) => c.stats.instructions / Math.max(1, c.stats.batches)));
  rows.push({ id: "softcore_wasm_instr_per_batch.mean.zero", metric: { value: perBatch(zero), unit: "instructions" } });
  rows.push({ id: "softcore_wasm_instr_per_batch.p50.zero", metric: { value: Math.max(...zero.cards.map((c) => c.stats.instructionsP50)), unit: "instructions" } });
  rows.push({ id: `softcore_wasm_instr_per_batch.p50.mhz${mhz}`, metric: { value: Math.max(...clocked.cards.map((c) => c.stats.instructionsP50)), unit: "instructions" }, baseline: "softcore_wasm_instr_per_batch.p50.zero" });
  const perSecond = (s: RunSummary, key: "batches" | "instructions") => Math.max(...s.cards.map((c) => c.stats[key])) / seconds;
  rows.push({ id: "softcore_batches.default.zero", metric: { value: perSecond(zero, "batches"), unit: "batches/s" } });
  rows.push({ id: `softcore_batches.default.mhz${mhz}`, metric: { value: perSecond(clocked, "batches"), unit: "batches/s" }, baseline: "softcore_batches.default.zero" });
  rows.push({ id: "softcore_wasm_instr_per_s.default.zero", metric: { value: perSecond(zero, "instructions"), unit: "instr/s" } });
  rows.push({ id: `softcore_util.default.mhz${mhz}`, metric: { value: 100 * busyShare(clocked, 1e9, seconds * 1e9), unit: "%" } });
  rows.push({ id: `softcore_util.default_whole.mhz${mhz}`, metric: { value: 100 * busyShare(clocked, 0, seconds * 1e9), unit: "%" } });
  notes.push(`softcore_util.default: the busiest card's busy share in the steady second (1 s to 2 s) of the default scenario at ${mhz} MHz; default_whole: over both seconds, boot, pairing, enumeration and the cable pull included; goal <= 10 %`);

  progress(`console scenario (links up, no traffic), ${seconds} s at ${mhz} MHz`);
  const idle = await world({ ...SCENARIOS.console, durationNs: seconds * 1e9 }, mhz).run();
  rows.push({ id: `softcore_util.idle.mhz${mhz}`, metric: { value: 100 * busyShare(idle, 1e9, seconds * 1e9), unit: "%" } });
  notes.push(`softcore_util.idle: the console scenario (paired, no traffic), the busiest card's busy share from 1 s to ${seconds} s at ${mhz} MHz; goal <= 1 %`);

  progress(`handover scenario at ${mhz} MHz: the chassis card moved to server2 under NVMe load`);
  const moved = await world(handover(1000 * MS, 400 * MS), mhz, 13).run();
  progress(`a firmware update over the console (XMODEM) at ${mhz} MHz`);
  const flashed = await flashRun(mhz, 100 * MS, 8000 * MS);
  const runs = { default: clocked, handover: moved, flash: flashed };
  const worst = (key: "maxBatchNs" | "maxWarmBatchNs") => Math.max(...Object.values(runs).flatMap((s) => s.cards.map((c) => c.stats[key]))) / 1000;
  rows.push({ id: `softcore_batch_us.max.mhz${mhz}`, metric: { value: worst("maxWarmBatchNs"), unit: "µs" } });
  rows.push({ id: `softcore_batch_us.max_compiling.mhz${mhz}`, metric: { value: worst("maxBatchNs"), unit: "µs" }, baseline: `softcore_batch_us.max.mhz${mhz}` });
  for (const [name, s] of Object.entries(runs)) {
    notes.push(`${name} at ${mhz} MHz: the longest batch ${(Math.max(...s.cards.map((c) => c.stats.maxWarmBatchNs)) / 1000).toFixed(1)} µs among those that compiled nothing, ` +
      `${(Math.max(...s.cards.map((c) => c.stats.maxBatchNs)) / 1000).toFixed(1)} µs with the batches in which wasm3 compiled functions run for the first time; ` +
      `${s.cards.reduce((n, c) => n + c.stats.longBatches, 0)} batch(es) over the ${timing.batchLimitNs / 1000} µs limit`);
  }
  notes.push(`softcore_batch_us.max: the longest batch over the default, handover and flash runs among those that compiled nothing (goal <= ${timing.batchLimitNs / 1000} µs); max_compiling: all batches, including those where wasm3 compiles a function on its first call (docs/softcore.md, "First calls")`);

  const boot = (s: RunSummary) => Math.max(...s.cards.map((c) => c.stats.bootNs ?? Infinity)) / MS;
  rows.push({ id: "softcore_boot_ms.zero", metric: { value: boot(zero), unit: "ms" } });
  rows.push({ id: `softcore_boot_ms.mhz${mhz}`, metric: { value: boot(clocked), unit: "ms" } });
  rows.push({ id: `softcore_load_ms.mhz${mhz}`, metric: { value: timing.loadNs(readFileSync(FIRMWARE).length) / MS, unit: "ms" } });
  const reads = (s: RunSummary) => s.servers[0].configReads;
  rows.push({ id: "cfg_read_ns.p50.zero", metric: { value: reads(zero).p50Ns, unit: "ns" } });
  rows.push({ id: "cfg_read_ns.p99.zero", metric: { value: reads(zero).p99Ns, unit: "ns" } });
  rows.push({ id: `cfg_read_ns.p50.mhz${mhz}`, metric: { value: reads(clocked).p50Ns, unit: "ns" }, baseline: "cfg_read_ns.p50.zero" });
  rows.push({ id: `cfg_read_ns.p99.mhz${mhz}`, metric: { value: reads(clocked).p99Ns, unit: "ns" }, baseline: "cfg_read_ns.p99.zero" });
  notes.push(`cfg_read_ns: the server's configuration reads in the default scenario (${reads(zero).count} in the zero-time model, ${reads(clocked).count} at ${mhz} MHz, the slowest ${(reads(clocked).maxNs / 1000).toFixed(1)} µs): through the host card's virtual switch, whose firmware answers them, and the tunnel`);

  const sweep: { mhz: number; detectUs: number; reconnectMs: number; bringupMs: number }[] = [];
  for (const m of [0, ...SWEEP_MHZ]) {
    progress(`link detection and reconnect, soft-cores at ${m === 0 ? "zero time" : `${m} MHz`}`);
    sweep.push({ mhz: m, ...(await linkTimes(m)) });
  }
  for (const p of sweep) {
    const tag = p.mhz === 0 ? "zero" : `mhz${p.mhz}`;
    rows.push({ id: `softcore_sweep.detect_us.${tag}`, metric: { value: p.detectUs, unit: "µs" }, ...(p.mhz ? { baseline: "softcore_sweep.detect_us.zero" } : {}) });
    rows.push({ id: `softcore_sweep.reconnect_ms.${tag}`, metric: { value: p.reconnectMs, unit: "ms" }, ...(p.mhz ? { baseline: "softcore_sweep.reconnect_ms.zero" } : {}) });
    rows.push({ id: `softcore_sweep.bringup_ms.${tag}`, metric: { value: p.bringupMs, unit: "ms" }, ...(p.mhz ? { baseline: "softcore_sweep.bringup_ms.zero" } : {}) });
  }
  notes.push("softcore_sweep: a host card and a chassis card behind a switch, 10 m cables (seed 11): the chassis card's cable cut at 300 ms (detect: cut to both in Recovery) and put back 100 ms later (reconnect: back to both Active again); bringup: power-on to both Active");
  const clocks = sweep.filter((p) => p.mhz > 0);
  figures.push({
    file: "softcore-sweep.svg",
    title: "Link detection and reconnect against the soft-core's clock",
    svg: lineChart({
      title: "Detection, reconnect and bring-up against the soft-core clock",
      x: { label: "soft-core clock (MHz)", min: 0 },
      y: { label: "time (ms, log scale)", log: true },
      series: [
        { label: "reconnect: cable back to Active", points: clocks.map((p) => ({ x: p.mhz, y: p.reconnectMs })) },
        { label: "bring-up: power-on to Active", points: clocks.map((p) => ({ x: p.mhz, y: p.bringupMs })) },
        { label: "detection: cut to Recovery", points: clocks.map((p) => ({ x: p.mhz, y: p.detectUs / 1000 })) },
        { label: "reconnect, zero-time model", style: "ref", points: [{ x: clocks[0].mhz, y: sweep[0].reconnectMs }, { x: clocks[clocks.length - 1].mhz, y: sweep[0].reconnectMs }] },
      ],
    }),
    caption: `softcore_sweep at ${SWEEP_MHZ.join(", ")} MHz (the dashed line: the zero-time model). Detection is the fabric's (keepalive silence, ${LinkTiming.SilenceNs / 1000} µs) plus the firmware's batch; reconnect and bring-up are mostly the firmware's handshake batches, and at power-on wasm3 loading and compiling the firmware.`,
  });
  const utilisation = (s: RunSummary, name: string) => s.cards.find((c) => c.name === name)!.stats.busyNsPerBin.map((ns, i) => ({ x: (i * BUSY_BIN_NS) / MS, y: (100 * ns) / BUSY_BIN_NS }));
  figures.push({
    file: "softcore-utilisation.svg",
    title: "Soft-core utilisation over time, default scenario",
    svg: lineChart({
      title: `Soft-core busy share per ${BUSY_BIN_NS / MS} ms, default scenario at ${mhz} MHz`,
      x: { label: "simulated time (ms)", min: 0, max: seconds * 1000 },
      y: { label: "busy (%)", min: 0, max: 100 },
      series: ["host", "chassis"].map((name) => ({ label: `${name} card`, style: "step" as const, points: utilisation(clocked, name) })),
    }),
    caption: `The default scenario (seed 1) for ${seconds} s at ${mhz} MHz: each card's soft-core busy share per ${BUSY_BIN_NS / MS} ms. Power-on (wasm3 loading the module, the boot batches, first calls compiling), pairing at ~100 ms, the server's enumeration through the host card's virtual switch, the cable pulled at 300 ms and put back at 500 ms, then the steady state.`,
  });
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
  return { rows, notes, figures };
}
