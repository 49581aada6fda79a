// Shared by the host tests: paths, event builders, command decoding, running `iov`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { encodeEvent, MessageReader, decodeCommand, type EventMessage, type CommandMessage } from "../../board/mailbox-codec.ts";
import { CardRole, LogLevel, MAILBOX_VERSION, ResetCause } from "../../board/map/mailbox.ts";
import { concat } from "../../board/bytes.ts";
import { FIRMWARE, ROOT } from "../../tools/paths.ts";

export { FIRMWARE, ROOT };
export const FIXTURES = `${ROOT}tests/fixtures/traces/`;

/** The wasm3 binary from IOV_WASM3, or a skip reason for node:test. */
export const WASM3 = process.env.IOV_WASM3;
export const wasm3Skip = WASM3 && existsSync(WASM3) ? false : "no wasm3 binary: set IOV_WASM3=/path/to/wasm3 to run this under real wasm3";

export function boot(overrides: Partial<Extract<EventMessage, { kind: "boot" }>> = {}): EventMessage {
  return {
    kind: "boot", mailboxVersion: MAILBOX_VERSION, role: CardRole.Host, resetCause: ResetCause.PowerOn,
    boardId: 0x10f00a01, serial: 0x10000001, logLevel: LogLevel.Info, slots: 1, bootSlot: 0, bootFlags: 0, retained: 0,
    mac: Uint8Array.of(2, 0x10, 0x10, 0, 0, 1), ...overrides,
  };
}

export function encode(events: EventMessage[]): Uint8Array {
  return concat(events.map(encodeEvent));
}

export function commands(bytes: Uint8Array): CommandMessage[] {
  const reader = new MessageReader("commands");
  reader.push(bytes);
  const out = [...reader.all()].map(decodeCommand);
  if (reader.bytesToBoundary()) throw new Error(`${reader.pending()} trailing bytes, ${reader.bytesToBoundary()} short of a message boundary`);
  return out;
}

/** A scripted session: boot, heartbeats, entropy, counter queries, and a few rejected events. */
export function scriptedBatches(): Uint8Array[] {
  const batches: EventMessage[][] = [
    [{ kind: "time", now: 0n }, boot(), { kind: "entropy", bytes: new Uint8Array(32).fill(7) }],
    [{ kind: "time", now: 1_000_000_000n }, { kind: "timerFired", channel: 0 }],
    [{ kind: "time", now: 1_500_000_000n }, { kind: "timerFired", channel: 3 }, boot(), { kind: "countersQuery" }],
    [{ kind: "time", now: 2_000_000_000n }, { kind: "timerFired", channel: 0 }, { kind: "time", now: 5n }],
    [{ kind: "time", now: 2_100_000_000n }, { kind: "countersQuery" }],
  ];
  return batches.map((events, seq) => encode([...events, { kind: "sync", seq }]));
}

/** A failed command says why on exactly one line of stderr, prefixed `iov:`. */
export function assertOneLineError(result: { status: number | null; stderr: string }, status: number, pattern: RegExp): void {
  assert.equal(result.status, status, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], /^iov: /);
  assert.match(lines[0], pattern);
}

export function iov(args: string[], input?: string, env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync(process.execPath, [`${ROOT}tools/iov.mjs`, ...args], { cwd: ROOT, encoding: "utf8", input, env, timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
