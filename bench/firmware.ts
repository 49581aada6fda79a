// Firmware footprint and speed: size, memory, and events per second through the mailbox
// in lockstep, in-process and in child processes (Node WASI, and wasm3 when given).

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { MessageReader, decodeCommand, decodeEvent, encodeEvent, type EventMessage } from "../board/mailbox-codec.ts";
import { CardRole, Command, LogLevel, MAILBOX_VERSION, ResetCause } from "../board/map/mailbox.ts";
import { FabricEventKind } from "../board/map/registers.ts";
import { concat } from "../board/bytes.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { memoryLimits } from "../tools/build/checks.ts";
import { openSession, type EngineKind } from "../tools/engines/index.ts";
import { World } from "../tools/sim/world.ts";
import { SCENARIOS } from "../tools/sim/scenarios.ts";
import { barChart } from "./svg.ts";
import type { Section } from "./metrics.ts";

const EVENTS_PER_BATCH = 8; // TIME, 6 payload events, SYNC

/**
 * A boot batch, then `batches` batches of TIME, fabric events, register values and counter
 * queries, SYNC: the mailbox path itself. (ENTROPY is not in the mix: every 32 bytes of it
 * reseed the DRBG, a cost the card pays at boot, not per event.)
 */
function workload(batches: number): Uint8Array[] {
  const boot: EventMessage[] = [
    { kind: "time", now: 0n },
    { kind: "boot", mailboxVersion: MAILBOX_VERSION, role: CardRole.Host, resetCause: ResetCause.PowerOn, boardId: 1, serial: 1, logLevel: LogLevel.Error, slots: 1, mac: new Uint8Array(6) },
    { kind: "sync", seq: 0 },
  ];
  const out = [concat(boot.map(encodeEvent))];
  for (let i = 1; i <= batches; i++) {
    const batch: EventMessage[] = [{ kind: "time", now: BigInt(i * 1000) }];
    batch.push({ kind: "fabricEvent", tunnel: 0, event: FabricEventKind.RetransmitTimeout, arg: 1 }, { kind: "regValue", address: 0x160, value: i });
    for (let j = 0; j < 2; j++) batch.push({ kind: "fabricEvent", tunnel: 0, event: FabricEventKind.CountersReady, arg: 0 }, { kind: "countersQuery" });
    batch.push({ kind: "sync", seq: i });
    out.push(concat(batch.map(encodeEvent)));
  }
  return out;
}

async function eventsPerSecond(engine: EngineKind, batches: number, wasm3?: string): Promise<number> {
  const stream = workload(batches);
  const session = openSession(engine, { firmware: FIRMWARE, wasm3 });
  await session.exchange(stream[0], 0);
  const start = performance.now();
  for (let i = 1; i < stream.length; i++) await session.exchange(stream[i], i);
  const seconds = (performance.now() - start) / 1000;
  await session.close();
  return (batches * EVENTS_PER_BATCH) / seconds;
}

/**
 * A WASI module that does nothing but copy fd 0 to fd 1 until end of input, with the firmware's
 * one page of memory: what wasm3 needs for a module that does nothing.
 */
function echoModule(): Uint8Array {
  const module = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 1)
    (func (export "_start")
      (loop $more
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 1024))
        (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (if (i32.load (i32.const 8)) (then
          (i32.store (i32.const 4) (i32.load (i32.const 8)))
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
          (br $more))))))`);
  try {
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}

/** The highest resident set (VmHWM, bytes) process `pid` has reached so far. */
function peakResident(pid: number): number {
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!kib) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kib[1]) * 1024;
}

/**
 * wasm3 runs `module` on `input` and, once `done(each stdout chunk)` says the input is answered,
 * while the module waits in fd_read for more, the process's peak resident set is read.
 */
function wasm3PeakResident(wasm3: string, module: string, input: Uint8Array, done: (chunk: Uint8Array) => boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(wasm3, [module], { stdio: ["pipe", "pipe", "ignore"] });
    let peak = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      if (peak === 0 && done(new Uint8Array(chunk))) {
        peak = peakResident(child.pid!);
        child.stdin.end();
      }
    });
    child.on("error", reject);
    child.on("close", (code) => (peak > 0 ? resolve(peak) : reject(new Error(`wasm3 exited with ${code} before answering its input`))));
    child.stdin.write(input);
  });
}

/**
 * What wasm3 itself takes to run the firmware: its peak resident memory over the host card's
 * mailbox stream of the default scenario (recorded here, in-process), less its peak over the
 * same bytes echoed by a module that does nothing.
 */
async function wasm3Resident(wasm3: string, progress: (text: string) => void): Promise<{ firmware: number; empty: number }> {
  const dir = mkdtempSync(join(tmpdir(), "iov-bench-rss-"));
  try {
    progress("recording the default scenario's mailbox streams");
    const world = new World({ scenario: SCENARIOS.default, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, record: dir, print: null });
    await world.run();
    const input = new Uint8Array(readFileSync(join(dir, "host.in")));
    const reader = new MessageReader("events");
    reader.push(input);
    let lastSeq = -1;
    for (const raw of reader.all()) {
      const event = raw.framing ? null : decodeEvent(raw);
      if (event?.kind === "sync") lastSeq = event.seq;
    }
    const commands = new MessageReader("commands");
    const answered = (chunk: Uint8Array) => {
      commands.push(chunk);
      return [...commands.all()].some((raw) => !raw.framing && raw.type === Command.SyncAck && (decodeCommand(raw) as { seq: number }).seq === lastSeq);
    };
    progress(`wasm3 peak memory: the firmware over ${input.length} bytes of events, then an empty module`);
    const firmware = await wasm3PeakResident(wasm3, FIRMWARE, input, answered);
    const echo = join(dir, "echo.wasm");
    writeFileSync(echo, echoModule());
    let echoed = 0;
    const empty = await wasm3PeakResident(wasm3, echo, input, (chunk) => (echoed += chunk.length) === input.length);
    return { firmware, empty };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function firmwareBenchmarks(options: { quick: boolean; wasm3?: string }, progress: (text: string) => void): Promise<Section> {
  const rows: Section["rows"] = [];
  const notes: string[] = [];
  const firmware = new Uint8Array(readFileSync(FIRMWARE));
  rows.push({ id: "fw_wasm_bytes", metric: { value: firmware.length, unit: "bytes" } });
  rows.push({ id: "fw_memory_pages", metric: { value: memoryLimits(firmware)!.initial, unit: "pages" } });
  const batches = options.quick ? 2_000 : 20_000;
  progress(`firmware lockstep, in-process (${batches} batches)`);
  rows.push({ id: "fw_events_per_s.inproc", metric: { value: await eventsPerSecond("node", batches), unit: "events/s" } });
  progress(`firmware lockstep, Node WASI child process (${batches / 4} batches)`);
  rows.push({ id: "fw_events_per_s.child", metric: { value: await eventsPerSecond("node-wasi", batches / 4), unit: "events/s" }, baseline: "fw_events_per_s.inproc" });
  if (options.wasm3) {
    progress(`firmware lockstep, wasm3 child process (${batches / 4} batches)`);
    rows.push({ id: "fw_events_per_s.wasm3", metric: { value: await eventsPerSecond("wasm3", batches / 4, options.wasm3), unit: "events/s" }, baseline: "fw_events_per_s.inproc" });
    const resident = await wasm3Resident(options.wasm3, progress);
    rows.push({ id: "fw_wasm3_rss_bytes", metric: { value: resident.firmware - resident.empty, unit: "bytes" } });
    notes.push(`fw_wasm3_rss_bytes: wasm3's peak resident memory running the firmware over the host card's mailbox stream of the default scenario (${resident.firmware} bytes) less its peak echoing the same bytes through a module that does nothing but has the same one page of memory (${resident.empty} bytes)`);
  } else {
    notes.push("fw_events_per_s.wasm3 and fw_wasm3_rss_bytes skipped: no wasm3 binary (pass --wasm3 PATH or set IOV_WASM3)");
  }
  const engines: Record<string, string> = {
    "fw_events_per_s.inproc": "in-process (V8)", "fw_events_per_s.child": "child process, Node WASI", "fw_events_per_s.wasm3": "child process, wasm3 (the card's engine)",
  };
  const speed = {
    file: "firmware-speed.svg",
    title: "Firmware events per second, by engine",
    svg: barChart({
      title: `firmware.wasm (${firmware.length} bytes) through the mailbox in lockstep`,
      unit: "events/s",
      log: true,
      bars: rows.filter((r) => r.id in engines).map((r) => ({ label: engines[r.id], value: r.metric.value })),
    }),
    caption: `Batches of ${EVENTS_PER_BATCH} events (TIME, fabric events, a register value, counter queries, SYNC) and the firmware's answers, in lockstep: the mailbox path itself, on this machine's wall clock. ` +
      "A child process pays a pipe round trip per batch. The card's soft-core runs wasm3; on the host, wasm3 is measured only when a binary is given." +
      (options.wasm3 ? "" : " No wasm3 binary was given in this run."),
  };
  return { rows, notes, figures: [speed] };
}
