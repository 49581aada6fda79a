// Instruction metering (tools/engines/meter.ts): exact counts on hand-made modules, the
// firmware's commands unchanged, the same count on every engine, runaway batches stopped.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { meterModule } from "../../tools/engines/meter.ts";
import { InProcessFirmware } from "../../tools/engines/inprocess.ts";
import { MeteredSession } from "../../tools/engines/metered.ts";
import { BatchOverrun, replay, type EngineKind } from "../../tools/engines/index.ts";
import { MessageReader } from "../../board/mailbox-codec.ts";
import { Event, HEADER_SIZE } from "../../board/map/mailbox.ts";
import { profileTrace } from "../../tools/engines/profile.ts";
import { FIRMWARE, FIXTURES, WASM3, wasm3Skip, boot, encode, iov, assertOneLineError } from "./helpers.ts";

const TRACES = ["default-host", "default-chassis", "malformed", "version-mismatch"];
const dir = mkdtempSync(join(tmpdir(), "iov-meter-"));
const metered = join(dir, "firmware.metered.wasm");
writeFileSync(metered, meterModule(new Uint8Array(readFileSync(FIRMWARE))));

/** A WASI command module from `body` (functions), with the firmware's imports and exports. */
function module(body: string): string {
  const wat = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 1)
    ${body}
    (func (export "step") (result i32) (i32.const 0)))`);
  const file = join(dir, `m${Math.random().toString(16).slice(2)}.wasm`);
  writeFileSync(file, meterModule(wat.emitBinary()));
  wat.dispose();
  return file;
}

test("a straight run counts its instructions; block, loop, else and end are free", () => {
  const file = module(`(func (export "_start") (drop (i32.add (i32.const 1) (i32.const 2))) (block (nop)))`);
  const f = new InProcessFirmware({ firmware: file });
  f.runToEnd(new Uint8Array(0));
  assert.equal(f.instructions, 4n, "i32.const, i32.const, i32.add, drop");
});

test("a loop counts each pass, and a taken branch leaves the rest of its run uncounted", () => {
  // $count: 3 passes of (local.get, i32.const, i32.sub, local.tee, br_if); the caller's
  // (i32.const, call); then br out of the block, past a drop that never runs.
  const file = module(`
    (func $count (param $n i32)
      (loop $again (br_if $again (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "_start")
      (call $count (i32.const 3))
      (block $out (br $out) (drop (i32.const 99))))`);
  const f = new InProcessFirmware({ firmware: file });
  f.runToEnd(new Uint8Array(0));
  assert.equal(f.instructions, 2n + 15n + 1n, "caller 2, loop 3 x 5, br 1 (the dead drop never counts)");
  assert.ok(f.compiledBytes! > 0n);
});

test("code compiled is counted at a function's first call only", () => {
  const file = module(`
    (func $leaf (result i32) (i32.const 7))
    (func (export "_start") (drop (call $leaf)) (drop (call $leaf)) (drop (call $leaf)))`);
  const once = module(`
    (func $leaf (result i32) (i32.const 7))
    (func (export "_start") (drop (call $leaf)))`);
  const three = new InProcessFirmware({ firmware: file });
  three.runToEnd(new Uint8Array(0));
  const one = new InProcessFirmware({ firmware: once });
  one.runToEnd(new Uint8Array(0));
  // Both compiled $leaf and _start once; _start is longer in the first by two calls and drops.
  assert.ok(three.compiledBytes! - one.compiledBytes! < 10n, `${three.compiledBytes} vs ${one.compiledBytes}`);
  assert.equal(three.instructions! - one.instructions!, 2n * 3n, "two more calls of (call, drop) and the leaf's const");
});

test("every golden trace gives the release's commands and log byte for byte through the metered copy", async () => {
  for (const name of TRACES) {
    const events = new Uint8Array(readFileSync(`${FIXTURES}${name}.in`));
    const release = await replay("node", { firmware: FIRMWARE }, events);
    const counted = await replay("node", { firmware: metered }, events);
    assert.ok(Buffer.from(counted.commands).equals(Buffer.from(readFileSync(`${FIXTURES}${name}.out`))), name);
    assert.ok(Buffer.from(counted.commands).equals(Buffer.from(release.commands)), name);
    assert.equal(counted.log, release.log, name);
    assert.ok((counted.instructions ?? 0n) > 0n, name);
  }
});

for (const engine of ["node-wasi", "wasm3"] as EngineKind[]) {
  test(`${engine} runs the metered copy to the same count, reported on fd 3`, { skip: engine === "wasm3" && wasm3Skip }, async () => {
    for (const name of TRACES) {
      const events = new Uint8Array(readFileSync(`${FIXTURES}${name}.in`));
      const reference = await replay("node", { firmware: metered }, events);
      const other = await replay(engine, { firmware: metered, wasm3: WASM3 }, events);
      assert.equal(other.instructions, reference.instructions, name);
      assert.ok(Buffer.from(other.commands).equals(Buffer.from(reference.commands)), name);
    }
  });
}

test("a loop that never ends is stopped at the limit", () => {
  const file = module(`(func (export "_start") (loop $forever (br $forever)))`);
  const runaway = new InProcessFirmware({ firmware: file });
  runaway.setLimit(10_000n);
  assert.throws(() => runaway.runToEnd(new Uint8Array(0)), /unreachable/);
  assert.ok(runaway.overran);
  assert.ok(runaway.instructions! > 10_000n && runaway.instructions! < 10_100n, `${runaway.instructions}`);
});

test("a metered session with a child engine checks the child's answer against the reference", async () => {
  const events = new Uint8Array(readFileSync(`${FIXTURES}default-host.in`));
  const session = new MeteredSession("node-wasi", { firmware: FIRMWARE }, 10_000_000);
  // The first batch of the trace: up to the first SYNC.
  const first = events.subarray(0, firstSyncEnd(events));
  const commands = await session.exchange(first, 0);
  assert.ok(commands.length > 0);
  assert.ok(session.lastBatch.instructions > 0 && session.lastBatch.compiledBytes > 0);
  await session.close();
});

test("a firmware batch past the session's limit is a BatchOverrun naming the batch and the limit", async () => {
  const session = new MeteredSession("node", { firmware: FIRMWARE }, 1000);
  await assert.rejects(session.exchange(encode([boot(), { kind: "sync", seq: 0 }]), 0), (error: unknown) => {
    assert.ok(error instanceof BatchOverrun);
    assert.equal(error.message, "batch 0 did not finish within 1000 instructions");
    return true;
  });
});

/** Where the first batch of an event stream ends: after its first SYNC. */
function firstSyncEnd(events: Uint8Array): number {
  const reader = new MessageReader("events");
  reader.push(events);
  for (const raw of reader.all()) if (raw.type === Event.Sync) return raw.offset + HEADER_SIZE + raw.length;
  throw new Error("no SYNC");
}

test("a profile of a trace accounts for every instruction, by batch and by function", () => {
  const events = new Uint8Array(readFileSync(`${FIXTURES}default-host.in`));
  const profile = profileTrace(new Uint8Array(readFileSync(FIRMWARE)), events);
  assert.equal(profile.groups.reduce((n, g) => n + g.instructions, 0), profile.instructions);
  assert.equal(profile.groups.reduce((n, g) => n + g.batches, 0), profile.batches);
  assert.equal(profile.functions.reduce((n, f) => n + f.instructions, 0), profile.instructions);
  // The boot batch is one group of its own (what it carries besides BOOT depends on BATCH_EVENTS_MAX: the trace is recorded at the card's clock).
  assert.ok(profile.groups.some((g) => g.carries.split(" + ").includes("boot") && g.batches === 1), profile.groups.map((g) => g.carries).join(", "));
  const run = iov(["trace", "profile", `${FIXTURES}default-host.in`, "--top", "3"]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`^\\S+default-host\\.in: ${profile.batches} batches, [\\d ]+ WebAssembly instructions`));
  const lines = run.stdout.trimEnd().split("\n");
  const header = lines.findIndex((line) => line.startsWith("functions, most instructions first"));
  assert.equal(lines.length - header - 1, 3, "--top 3 lists three functions");
  assertOneLineError(iov(["trace", "profile", `${FIXTURES}default-host.in`, "--names", FIRMWARE]), 1, /is not .* with names/);
});
