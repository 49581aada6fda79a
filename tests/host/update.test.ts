// The whole update path on a simulated card: the console's `update`, XMODEM into the
// inactive slot, the firmware's checks, the boot ROM's trial, confirmation, rollback, and
// power cuts at any moment.

import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { buildImage, developmentKey, formatVersion, type ImageVersion } from "../../board/image.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { MAILBOX_VERSION } from "../../board/map/mailbox.ts";
import { SoftcoreTiming, SOFTCORE_DEFAULT_MHZ } from "../../board/softcore.ts";
import { FIRMWARE, wasm3Skip } from "./helpers.ts";
import type { EngineKind } from "../../tools/engines/index.ts";
import { runConsole, MS, type ConsoleRun } from "./support/console-card.ts";

const firmware = readFileSync(FIRMWARE);
const version = (text: string): ImageVersion => {
  const [major, minor, patch] = text.split(".").map(Number);
  return { major, minor, patch };
};
function image(v: string, o: { payload?: Uint8Array; key?: Parameters<typeof buildImage>[1]["key"]; boardId?: number } = {}): Uint8Array {
  return buildImage(o.payload ?? firmware, { boardId: o.boardId ?? BOARD_ID, version: version(v), key: o.key === undefined ? developmentKey() : o.key });
}

/** What was booted when the run ended. */
function booted(run: ConsoleRun) {
  const b = run.card.booted;
  return b ? { slot: b.slot, trial: b.trial, version: formatVersion(b.info.version), state: run.card.state } : null;
}

/** `update` typed at the console's first prompt (about 50 ms after power-on at 100 MHz), the run `durationNs` long. */
async function update(img: Uint8Array, durationNs = 7000 * MS, flashDir?: string) {
  let end: ReturnType<typeof booted> = null;
  const run = await runConsole({ durationNs, update: { image: img }, flashDir, atEnd: (r) => (end = booted(r)) });
  assert.notEqual(run.updateNs, null, `no console prompt to type update at:\n${run.output()}`);
  return { run, end: end as ReturnType<typeof booted>, out: run.output() };
}

test("update: an image sent with XMODEM is checked, tried, confirmed, and kept across power cycles", async () => {
  const flashDir = mkdtempSync(join(tmpdir(), "iov-update-"));
  const { run, end, out } = await update(image("0.1.1"), 7000 * MS, flashDir);
  assert.equal(run.transfer.error, undefined, out);
  assert.equal(run.transfer.result?.mode, "crc");
  assert.match(out, /update: erasing slot 1 \(64 KiB\)\r\nupdate: ready for xmodem/);
  assert.match(out, /update: received \d+ bytes\r\nupdate: image 0\.1\.1 build [0-9a-f]{32} checks out; rebooting into a trial\r\n/);
  assert.match(out, /boot: IOV boot ROM, reset cause update\r\n/);
  assert.match(out, /boot: starting slot 1 \(0\.1\.1\) on trial\r\n/);
  assert.match(out, /IOV card firmware 0\.1\.0 \(host card, serial 0x10000001\), slot 1 on trial/);
  assert.match(out, /update: image 0\.1\.1 confirmed\r\n/);
  assert.deepEqual(end, { slot: 1, trial: false, version: "0.1.1", state: "running" });
  assert.equal(run.card.stats.watchdogResets, 0);
  // The flash file outlives the run: the next power-on starts the new image.
  let next: ReturnType<typeof booted> = null;
  const again = await runConsole({ durationNs: 100 * MS, flashDir, atEnd: (r) => (next = booted(r)) });
  assert.deepEqual(next, { slot: 1, trial: false, version: "0.1.1", state: "running" });
  assert.match(again.output(), /boot: slot 0: 0\.1\.0 build [0-9a-f]{16}, confirmed, superseded\r\nboot: slot 1: 0\.1\.1 build [0-9a-f]{16}, confirmed\r\n/);
});

test("update: the same update gives the same console transcript on every engine", async () => {
  const engines: EngineKind[] = ["node", "node-wasi", ...(wasm3Skip ? [] : ["wasm3" as const])];
  const transcripts: string[] = [];
  for (const engine of engines) {
    const run = await runConsole({ durationNs: 6000 * MS, engine, update: { image: image("0.1.1") } });
    transcripts.push(run.output());
  }
  assert.match(transcripts[0], /update: image 0\.1\.1 confirmed/);
  for (const [i, t] of transcripts.entries()) assert.equal(t, transcripts[0], `${engines[i]} differs from node`);
});

const firmwareRefusals: [string, () => Uint8Array, RegExp][] = [
  ["built for another board", () => image("0.1.1", { boardId: 0x0bad_0001 }), /update: refused: built for another board/],
  ["older than the running firmware", () => image("0.0.9"), /update: refused: older than the running firmware \(downgrade\)/],
  ["unsigned", () => image("0.1.1", { key: null }), /update: refused: the image is not signed/],
];
for (const [kind, make, reason] of firmwareRefusals) {
  test(`update: the firmware refuses an image ${kind} before any reset`, async () => {
    const { end, out } = await update(make(), 6000 * MS);
    assert.match(out, reason);
    assert.doesNotMatch(out, /boot: IOV boot ROM, reset cause update/);
    assert.deepEqual(end, { slot: 0, trial: false, version: "0.1.0", state: "running" });
  });
}

test("update: an image that is not an IOV image is cancelled at its first block", async () => {
  const { run, end, out } = await update(firmware, 1500 * MS);
  assert.match(out, /update: cancelled: not an IOV image \(no IOVF magic\)/);
  assert.match(run.transfer.error?.message ?? "", /cancelled/);
  assert.deepEqual(end, { slot: 0, trial: false, version: "0.1.0", state: "running" });
});

test("update: the boot ROM refuses an image signed by a key it does not trust, and the old image runs on", async () => {
  const { end, out } = await update(image("0.1.1", { key: generateKeyPairSync("ed25519").privateKey }), 5000 * MS);
  assert.match(out, /checks out; rebooting into a trial/);
  assert.match(out, /boot: slot 1: refused: signed by key [0-9a-f]{16}, which is not trusted\r\nboot: starting slot 0 \(0\.1\.0\)\r\n/);
  assert.deepEqual(end, { slot: 0, trial: false, version: "0.1.0", state: "running" });
});

/** A WASI module that traps at once, or one that stops reading its mailbox (so it never kicks the watchdog). */
function brokenFirmware(kind: "trap" | "silent"): Uint8Array {
  const body = kind === "trap" ? "(unreachable)" : "(i32.const 0)";
  const module = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 1)
    (func (export "step") (result i32) ${body})
    (func (export "_start") (drop (call $r (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))`);
  const bytes = module.emitBinary();
  module.dispose();
  return bytes;
}

for (const kind of ["trap", "silent"] as const) {
  test(`update: a trial image that ${kind === "trap" ? "traps" : "stops reading its mailbox"} is reset by the watchdog and rolled back`, async () => {
    const { run, end, out } = await update(image("0.2.0", { payload: brokenFirmware(kind) }), 7000 * MS);
    assert.match(out, /boot: starting slot 1 \(0\.2\.0\) on trial\r\n/);
    assert.match(out, /boot: IOV boot ROM, reset cause watchdog\r\n(.*\r\n)*boot: slot 1: rolled back: the trial of 0\.2\.0 was not confirmed\r\nboot: starting slot 0 \(0\.1\.0\)\r\n/);
    assert.equal(run.card.stats.watchdogResets, 1);
    assert.deepEqual(end, { slot: 0, trial: false, version: "0.1.0", state: "running" });
  });
}

test("update: a power cut at any moment of an update leaves a card that boots a valid image (100 seeds)", async () => {
  // Even seeds update a card fresh from the factory (slot 1 empty) to 0.1.1; odd seeds a card
  // already updated once (0.1.1 confirmed in slot 1, the factory image superseded in slot 0)
  // to 0.1.2, which erases and rewrites slot 0.
  const template = mkdtempSync(join(tmpdir(), "iov-cut-"));
  const first = await update(image("0.1.1"), 7000 * MS, template);
  assert.deepEqual(first.end, { slot: 1, trial: false, version: "0.1.1", state: "running" });
  const outcomes = { old: 0, new: 0 };
  // From `update` (typed at the console's first prompt) to the confirmation: the erase (16 sectors
  // of 45 ms), the image in 1 KiB XMODEM blocks of 1029 bytes at 115 200 baud (10 bits a byte), the
  // trial's 1 s; then 0.8 s more, so that some cuts fall after the confirmation: cut anywhere in it.
  const windowMs = Math.ceil(16 * 45 + (Math.ceil(image("0.1.1").length / 1024) * 1029 * 10) / 115.2 + 1000 + 800);
  for (let seed = 1; seed <= 100; seed++) {
    const updated = seed % 2 === 1;
    const [before, after] = updated ? ["0.1.1", "0.1.2"] : ["0.1.0", "0.1.1"];
    let flashDir: string | undefined;
    if (updated) {
      flashDir = mkdtempSync(join(tmpdir(), "iov-cut-"));
      copyFileSync(join(template, "card.flash"), join(flashDir, "card.flash"));
    }
    const cutNs = Math.floor((((seed * 2654435761) % 4294967296) / 4294967296) * windowMs) * MS;
    let end: ReturnType<typeof booted> = null;
    let endedNs = 0;
    // The cut, the power coming back 10 ms later and the end 1.5 s after that are timed from the
    // moment `update` is typed; the run's length only bounds them (the prompt comes ~50 ms after power-on).
    const run = await runConsole({
      durationNs: (windowMs + 2000) * MS, seed, flashDir, update: { image: image(after) },
      afterUpdate: [{ kind: "power-cut", afterNs: cutNs }, { kind: "power-on", afterNs: cutNs + 10 * MS }],
      endAfterUpdateNs: cutNs + 1500 * MS,
      atEnd: (r) => {
        end = booted(r);
        endedNs = r.world.scheduler.now;
      },
    });
    const context = `seed ${seed}, cut ${cutNs / MS} ms after \`update\` during the update ${before} -> ${after}`;
    assert.notEqual(run.updateNs, null, `${context}: no console prompt to type update at`);
    assert.equal(endedNs, run.updateNs! + cutNs + 1500 * MS, `${context}: the run ends 1.5 s after power came back`);
    assert.ok(end, `${context}: nothing booted\n${run.output().slice(-2000)}`);
    const e = end as NonNullable<ReturnType<typeof booted>>;
    assert.equal(e.state, "running", context);
    assert.ok([before, after].includes(e.version), `${context}: runs ${e.version}`);
    assert.equal(e.trial, false, `${context}: a trial still unconfirmed 1.5 s after power came back\n${run.output().slice(-2000)}`);
    outcomes[e.version === before ? "old" : "new"]++;
  }
  assert.ok(outcomes.old > 50 && outcomes.new > 5, JSON.stringify(outcomes));
});

test("console: commands answer, and bad lines are refused with a reason and counted", async () => {
  const lines = ["help", "status", "frobnicate", "status now", "counters foo", "x".repeat(81), "version", "log", "counters"];
  const run = await runConsole({ durationNs: 1500 * MS, lines: lines.map((text, i) => ({ afterNs: 100 * i * MS, text })) });
  const out = run.output();
  assert.match(out, /IOV card firmware 0\.1\.0 \(host card, serial 0x10000001\), slot 0\r\ntype 'help' for commands\r\niov> /);
  assert.match(out, /iov> help\r\n  help      this list\r\n  status    /);
  assert.match(out, /iov> status\r\ncard: host, serial 0x10000001, 1 link port\(s\)\r\nfirmware: 0\.1\.0, slot 0, reset power-on\r\nuptime: 0\.1[0-9]{2} s\r\nlink: disabled \(no link configuration\)\r\n/);
  assert.match(out, /iov> frobnicate\r\nunknown command 'frobnicate'; type 'help' for the list\r\n/);
  assert.match(out, /iov> status now\r\nstatus: takes no arguments\r\n/);
  assert.match(out, /counters foo\r\ncounters: the only argument is 'all'\r\n/);
  assert.match(out, /line too long \(80 characters at most\)\r\n/);
  assert.match(out, new RegExp(String.raw`iov> version\r\nfirmware 0\.1\.0, mailbox v${MAILBOX_VERSION}\r\nimage: slot 0, confirmed, version 0\.1\.0, build [0-9a-f]{32}\r\n`));
  // The boot batch's log line carries its TIME: after the soft-core has loaded the module.
  const bootNs = new SoftcoreTiming(SOFTCORE_DEFAULT_MHZ).loadNs(firmware.length);
  const stamp = `[${String(Math.floor(bootNs / 1e9)).padStart(5)}.${String(Math.floor(bootNs / 1000) % 1e6).padStart(6, "0")}]`;
  assert.ok(out.includes(`iov> log\r\n${stamp} I boot: firmware 0.1.0, mailbox v${MAILBOX_VERSION}, host card`), `boot logged at ${stamp}:\n${out}`);
  assert.match(out, /ConsoleCommands \.+ 5\r\nConsoleErrors \.+ 4\r\n/);
});

test("console: reboot resets the card, which says so in its status", async () => {
  // status 350 ms after reboot: the card reloads its module and boots again (~50 ms at 100 MHz).
  const run = await runConsole({ durationNs: 600 * MS, lines: [{ afterNs: 0, text: "reboot" }, { afterNs: 350 * MS, text: "status" }] });
  const out = run.output();
  assert.match(out, /iov> reboot\r\nrebooting\r\n/);
  assert.match(out, /boot: IOV boot ROM, reset cause software\r\n/);
  assert.match(out, /firmware: 0\.1\.0, slot 0, reset software\r\n/);
});
