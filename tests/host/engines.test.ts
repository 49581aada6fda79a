import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { openSession, replay, FirmwareFault, type EngineKind } from "../../tools/engines/index.ts";
import { InProcessFirmware } from "../../tools/engines/inprocess.ts";
import { concat } from "../../board/bytes.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { HelloStatus, MailboxError, MAILBOX_VERSION } from "../../board/map/mailbox.ts";
import { testCard } from "./support/card.ts";
import { FIRMWARE, WASM3, wasm3Skip, boot, commands, encode, scriptedBatches } from "./helpers.ts";
import { MACSEC_DROP_REASONS } from "../../board/map/registers.ts";

async function lockstep(engine: EngineKind): Promise<{ out: Uint8Array; log: string }> {
  let log = "";
  const session = openSession(engine, { firmware: FIRMWARE, wasm3: WASM3, onLog: (text) => (log += text) });
  const out: Uint8Array[] = [];
  for (const [seq, batch] of scriptedBatches().entries()) out.push(await session.exchange(batch, seq));
  out.push(await session.close());
  return { out: concat(out), log };
}

test("the scripted session gets the expected answers from the firmware", async () => {
  const { out } = await lockstep("node");
  const kinds = commands(out).map((c) => (c.kind === "error" ? `error:${MailboxError[c.code]}` : c.kind));
  // BOOT: HELLO, the switch router's ConfigReady, the first watchdog kick, the read of the running
  // image's header; at the batch's end the retained state (its header, the switch's state in 3,
  // each of the 9 ports' configuration space: assembly/retain.ts) and the banner on the UART.
  // Each heartbeat: the watchdog kick and the reads of the MACsec drop counts.
  const drops = new Array(MACSEC_DROP_REASONS).fill("regRead");
  assert.deepEqual(kinds, [
    "hello", "regWrite", "regWrite", "flashRead", "timerArm", ...new Array(13).fill("retain"), "uartTx", "syncAck",
    "regWrite", ...drops, "timerArm", "syncAck",
    "error:BadField", "error:OutOfOrder", "counters", "syncAck",
    "regWrite", ...drops, "error:OutOfOrder", "timerArm", "syncAck",
    "counters", "syncAck",
  ]);
  const hello = commands(out)[0];
  assert.deepEqual(hello, { kind: "hello", mailboxVersion: MAILBOX_VERSION, status: HelloStatus.Ok, firmware: [0, 1, 0] });
});

test("in-process and Node WASI child process answer the same events with byte-identical commands", async () => {
  const inproc = await lockstep("node");
  const child = await lockstep("node-wasi");
  assert.deepEqual(child.out, inproc.out);
  assert.equal(child.log, inproc.log);
});

test("wasm3 answers the same events with byte-identical commands", { skip: wasm3Skip }, async () => {
  const inproc = await lockstep("node");
  const real = await lockstep("wasm3");
  assert.deepEqual(real.out, inproc.out);
  assert.equal(real.log, inproc.log);
});

test("partial reads: one byte at a time gives the same commands as one read", () => {
  const stream = concat(scriptedBatches());
  const whole = new InProcessFirmware({ firmware: FIRMWARE }).runToEnd(stream);
  const firmware = new InProcessFirmware({ firmware: FIRMWARE });
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i++) pieces.push(firmware.feed(stream.subarray(i, i + 1)));
  pieces.push(firmware.runToEnd(new Uint8Array(0)));
  assert.deepEqual(concat(pieces), whole);
});

test("replay of a whole stream equals lockstep exchange of its batches", async () => {
  const { out } = await lockstep("node");
  const replayed = await replay("node-wasi", { firmware: FIRMWARE }, concat(scriptedBatches()));
  assert.equal(replayed.exitCode, 0);
  assert.deepEqual(replayed.commands, out);
});

test("the firmware log on fd 2 is one stamped line per record, with the level letter", async () => {
  const { log } = await lockstep("node");
  const lines = log.trimEnd().split("\n");
  assert.match(lines[0], new RegExp(String.raw`^\[    0\.000000\] I boot: firmware 0\.1\.0, mailbox v${MAILBOX_VERSION}, host card, serial 0x10000001, 1 port\(s\), reset power-on, image slot 0$`));
  assert.match(lines[1], /^\[    1\.000000\] I heartbeat: \d+ events, 1 batches, 0 errors$/);
  assert.ok(lines.some((l) => /^\[    1\.500000\] W mailbox: rejected type 0x04 at offset \d+: error 5 detail 0$/.test(l)), log);
});

test("a mailbox version mismatch is reported by the firmware and halts the card", async () => {
  const scheduler = new EventScheduler();
  const notes: string[] = [];
  const card = testCard(scheduler, {
    firmware: FIRMWARE,
    observer: { note: (_c, text) => notes.push(text) },
    wrap: (session) => {
      const original = session.exchange.bind(session);
      // A board of a future mailbox version: rewrite the BOOT version field on its way in.
      session.exchange = (events, seq) => {
        if (seq === 0) events[12 + 4] = MAILBOX_VERSION + 1;
        return original(events, seq);
      };
      return session;
    },
  });
  card.powerOn();
  await scheduler.run(0.5e9);
  assert.equal(card.state, "halted");
  assert.ok(notes.some((n) => n.includes("firmware rejected BOOT") && n.includes("Version")), notes.join("\n"));
  assert.ok(notes.some((n) => n.includes("card halted")), notes.join("\n"));
});

function trappingFirmware(): string {
  const module = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 1)
    (func (export "step") (result i32) (unreachable))
    (func (export "_start") (drop (call $r (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))) (unreachable)))`);
  const path = join(mkdtempSync(join(tmpdir(), "iov-trap-")), "trap.wasm");
  writeFileSync(path, module.emitBinary());
  module.dispose();
  return path;
}

for (const engine of ["node", "node-wasi"] as const) {
  test(`a firmware trap under ${engine} is a fault the card counts, not a crash or a hang`, async () => {
    const session = openSession(engine, { firmware: trappingFirmware() });
    await assert.rejects(session.exchange(encode([boot(), { kind: "sync", seq: 0 }]), 0), FirmwareFault);
    const scheduler = new EventScheduler();
    const card = testCard(scheduler, { firmware: trappingFirmware(), engine });
    card.powerOn();
    await scheduler.run(0.5e9);
    assert.equal(card.state, "faulted");
    assert.equal(card.stats.traps, 1);
    // Nothing kicks the watchdog any more: it resets the card, which boots the same image and traps again.
    await scheduler.run(1.5e9);
    assert.equal(card.stats.watchdogResets, 1);
    assert.equal(card.stats.traps, 2);
    await card.powerOff();
  });
}

test("a child runner that cannot load the firmware fails the exchange with its reason", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "iov-bad-")), "bad.wasm");
  writeFileSync(path, "not wasm");
  const session = openSession("node-wasi", { firmware: path });
  await assert.rejects(session.exchange(encode([{ kind: "sync", seq: 0 }]), 0), /node-wasi runner exited with code 1/);
});

test("engine wasm3 without a binary is refused with a clear message", () => {
  assert.throws(() => openSession("wasm3", { firmware: FIRMWARE }), /needs a wasm3 binary/);
  assert.throws(() => openSession("wasm3", { firmware: FIRMWARE, wasm3: "/nonexistent/wasm3" }), /wasm3 binary \/nonexistent\/wasm3: not found/);
});
