// Firmware footprint and speed: size, memory, and events per second through the mailbox
// in lockstep, in-process and in child processes (Node WASI, and wasm3 when given).

import { readFileSync } from "node:fs";
import { encodeEvent, type EventMessage } from "../board/mailbox-codec.ts";
import { CardRole, LogLevel, MAILBOX_VERSION, ResetCause } from "../board/map/mailbox.ts";
import { FabricEventKind } from "../board/map/registers.ts";
import { concat } from "../board/bytes.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { memoryLimits } from "../tools/build/checks.ts";
import { openSession, type EngineKind } from "../tools/engines/index.ts";
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
  } else {
    notes.push("fw_events_per_s.wasm3 skipped: no wasm3 binary (pass --wasm3 PATH or set IOV_WASM3)");
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
