// `npm run bench`: benchmarks, written to bench/results.json as { id: { value, unit } }
// and printed as a table with each figure's ratio to its baseline from the same run.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { encodeEvent, type EventMessage } from "../board/mailbox-codec.ts";
import { CardRole, LogLevel, MAILBOX_VERSION, ResetCause } from "../board/map/mailbox.ts";
import { FIRMWARE } from "../tools/paths.ts";
import { memoryLimits } from "../tools/build/checks.ts";
import { openSession, type EngineKind } from "../tools/engines/index.ts";
import { concat } from "../board/bytes.ts";

export const RESULTS = fileURLToPath(new URL("./results.json", import.meta.url));

export interface Metric {
  value: number;
  unit: string;
}

interface Row {
  id: string;
  metric: Metric;
  baseline?: string;
}

const EVENTS_PER_BATCH = 8; // TIME, 6 payload events, SYNC

/** A boot batch, then `batches` batches of TIME, entropy and counter queries, SYNC. */
function workload(batches: number): Uint8Array[] {
  const boot: EventMessage[] = [
    { kind: "time", now: 0n },
    { kind: "boot", mailboxVersion: MAILBOX_VERSION, role: CardRole.Host, resetCause: ResetCause.PowerOn, boardId: 1, serial: 1, logLevel: LogLevel.Error, slots: 1, mac: new Uint8Array(6) },
    { kind: "sync", seq: 0 },
  ];
  const out = [concat(boot.map(encodeEvent))];
  const entropy = new Uint8Array(16).fill(0x5a);
  for (let i = 1; i <= batches; i++) {
    const batch: EventMessage[] = [{ kind: "time", now: BigInt(i * 1000) }];
    for (let j = 0; j < 3; j++) batch.push({ kind: "entropy", bytes: entropy }, { kind: "countersQuery" });
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

export async function runBenchmarks(options: { quick: boolean; wasm3?: string }): Promise<Record<string, Metric>> {
  if (!existsSync(FIRMWARE)) throw new Error("build/firmware.wasm is missing: run `npm run build` first");
  const rows: Row[] = [];
  const notes: string[] = [];
  const progress = (text: string) => process.stderr.write(`bench: ${text}\n`);
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

  const previous: Record<string, Metric> = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, "utf8")) : {};
  const results = { ...previous, ...Object.fromEntries(rows.map((r) => [r.id, r.metric])) };
  writeFileSync(RESULTS, JSON.stringify(results, null, 2) + "\n");

  const byId = new Map(rows.map((r) => [r.id, r.metric]));
  const width = Math.max(...rows.map((r) => r.id.length));
  const lines = [`${"metric".padEnd(width)}  ${"value".padStart(14)}  unit        vs baseline`];
  for (const row of rows) {
    const base = row.baseline ? byId.get(row.baseline) : undefined;
    const ratio = base ? `${(row.metric.value / base.value).toFixed(3)}x ${row.baseline}` : "";
    const value = Number.isInteger(row.metric.value) ? String(row.metric.value) : row.metric.value.toFixed(1);
    lines.push(`${row.id.padEnd(width)}  ${value.padStart(14)}  ${row.metric.unit.padEnd(10)}  ${ratio}`);
  }
  process.stdout.write(lines.join("\n") + "\n" + notes.map((n) => `note: ${n}\n`).join("") + `wrote ${RESULTS}\n`);
  return results;
}
