import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Flash, FlashController, FlashFileError, type FlashDone } from "../../board/flash.ts";
import { BootRom, installImage, type RomLineLevel } from "../../board/boot-rom.ts";
import { buildImage, developmentKey, type ImageVersion } from "../../board/image.ts";
import { FLASH_SIZE, SECTOR_SIZE, SLOT_SIZE, TRAILER_BASE, SlotTrailer, ERASE_SECTOR_NS, PROGRAM_PAGE_NS, PAGE_SIZE, slotBase } from "../../board/map/flash.ts";
import { FlashOp, FlashStatus, ResetCause } from "../../board/map/mailbox.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { ImageHeader } from "../../board/map/image.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";

const wasm = (tag: number) => Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, 3, 0x61, 0x62, tag); // a custom section makes each payload distinct
const v = (text: string): ImageVersion => {
  const [major, minor, patch] = text.split(".").map(Number);
  return { major, minor, patch };
};
const image = (version: string, o: { key?: Parameters<typeof buildImage>[1]["key"]; boardId?: number } = {}) =>
  buildImage(wasm(version.length + Number(version.replaceAll(".", ""))), { boardId: o.boardId ?? BOARD_ID, version: v(version), key: o.key === undefined ? developmentKey() : o.key });

function rom(flash: Flash) {
  const lines: { line: string; level: RomLineLevel }[] = [];
  const boot = new BootRom(flash, { boardId: BOARD_ID, trustedKeys: [createPublicKey(developmentKey())] }, (line, level) => lines.push({ line, level }));
  return { boot, lines, text: () => lines.map((l) => l.line).join("\n") };
}

/** Writes `bytes` into `slot` as the firmware's update does (no flags), then asks for its trial. */
function stage(flash: Flash, slot: number, bytes: Uint8Array, pending = true): void {
  for (let at = slotBase(slot); at < slotBase(slot) + SLOT_SIZE; at += SECTOR_SIZE) flash.eraseSector(at);
  flash.program(slotBase(slot), bytes);
  if (pending) new BootRom(flash, { boardId: BOARD_ID, trustedKeys: [] }, () => {}).requestTrial(slot);
}

function flag(flash: Flash, slot: number, name: keyof typeof SlotTrailer): boolean {
  const at = slotBase(slot) + TRAILER_BASE + (SlotTrailer[name] as number);
  return new DataView(flash.read(at, 4).buffer).getUint32(0, true) !== 0xffffffff;
}

test("flash: programming only clears bits, erase sets a sector to 0xff", () => {
  const flash = Flash.erased();
  flash.program(0x100, Uint8Array.of(0xf0, 0x0f));
  flash.program(0x100, Uint8Array.of(0x3c, 0xff));
  assert.deepEqual(flash.read(0x100, 2), Uint8Array.of(0x30, 0x0f));
  flash.eraseSector(0x1234);
  assert.ok(flash.read(0x1000, SECTOR_SIZE).every((b) => b === 0xff));
});

test("flash file: writes persist across opens; a file of the wrong size is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-flash-"));
  const path = join(dir, "card.flash");
  const first = Flash.file(path);
  assert.equal(first.created, true);
  first.flash.program(0x20000, Uint8Array.of(1, 2, 3));
  first.flash.close();
  const again = Flash.file(path);
  assert.equal(again.created, false);
  assert.deepEqual(again.flash.read(0x20000, 4), Uint8Array.of(1, 2, 3, 0xff));
  again.flash.close();
  writeFileSync(join(dir, "short.flash"), new Uint8Array(100));
  assert.throws(() => Flash.file(join(dir, "short.flash")), (e: Error) => e instanceof FlashFileError && /100 bytes, not 262144/.test(e.message));
});

function controller() {
  const scheduler = new EventScheduler();
  const flash = Flash.erased();
  const done: (FlashDone & { at: number })[] = [];
  const c = new FlashController(flash, scheduler, (d) => done.push({ ...d, at: scheduler.now }));
  return { scheduler, flash, done, c };
}

test("flash controller: operations take the part's time, one at a time, and refuse bad addresses", async () => {
  const { scheduler, flash, done, c } = controller();
  flash.program(0x10000, new Uint8Array(8));
  c.erase(0x10000, 2);
  c.program(0x0, Uint8Array.of(1));
  await scheduler.run(1e9);
  assert.deepEqual(done.map((d) => [d.op, d.status, d.at]), [[FlashOp.Program, FlashStatus.Busy, 0], [FlashOp.Erase, FlashStatus.Ok, 2 * ERASE_SECTOR_NS]]);
  assert.ok(flash.read(0x10000, 8).every((b) => b === 0xff));
  done.length = 0;
  c.program(0x100, Uint8Array.of(0xaa, 0x55));
  await scheduler.run(2e9);
  c.read(0x100, 3);
  await scheduler.run(3e9);
  assert.equal(done[0].at, 1e9 * 1 + PROGRAM_PAGE_NS);
  assert.deepEqual(done[1].data, Uint8Array.of(0xaa, 0x55, 0xff));
  done.length = 0;
  c.erase(0x10001, 1);
  c.erase(FLASH_SIZE - SECTOR_SIZE, 2);
  c.program(PAGE_SIZE - 1, Uint8Array.of(1, 2));
  c.read(0, 257);
  c.protectedSlot = 0;
  c.erase(0, 1);
  c.program(SLOT_SIZE - 1, Uint8Array.of(0));
  assert.deepEqual(done.map((d) => d.status), [FlashStatus.Range, FlashStatus.Range, FlashStatus.Range, FlashStatus.Range, FlashStatus.Protected, FlashStatus.Protected]);
});

test("flash controller: a power cut mid-erase leaves the erased sectors, a garbled one, and the rest untouched", async () => {
  const { scheduler, flash, c } = controller();
  flash.program(0x10000, new Uint8Array(3 * SECTOR_SIZE));
  c.erase(0x10000, 3);
  await scheduler.run(1.5 * ERASE_SECTOR_NS);
  let n = 0;
  c.powerCut(() => (n++ % 2 ? 0x0f : 0));
  assert.ok(flash.read(0x10000, SECTOR_SIZE).every((b) => b === 0xff));
  const garbled = flash.read(0x11000, SECTOR_SIZE);
  assert.ok(garbled.some((b) => b === 0x0f) && garbled.some((b) => b === 0));
  assert.ok(flash.read(0x12000, SECTOR_SIZE).every((b) => b === 0));
  await scheduler.run(1e9);
  assert.ok(flash.read(0x12000, SECTOR_SIZE).every((b) => b === 0), "nothing runs after the cut");
});

test("flash controller: a power cut mid-program leaves a prefix of the page", async () => {
  const { flash, c } = controller();
  c.program(0x200, Uint8Array.of(1, 2, 3, 4));
  c.powerCut(() => 2);
  assert.deepEqual(flash.read(0x200, 4), Uint8Array.of(1, 2, 0xff, 0xff));
});

test("boot ROM: starts the confirmed image; an empty flash halts the card", () => {
  const flash = Flash.erased();
  assert.equal(rom(flash).boot.boot(ResetCause.PowerOn), null);
  installImage(flash, image("1.0.0"));
  const r = rom(flash);
  const booted = r.boot.boot(ResetCause.PowerOn);
  assert.equal(booted?.slot, 0);
  assert.equal(booted?.trial, false);
  assert.deepEqual(booted?.payload, wasm(105));
  assert.match(r.text(), /slot 0: 1\.0\.0 build [0-9a-f]{16}, confirmed\nboot: slot 1: empty\nboot: starting slot 0 \(1\.0\.0\)$/);
});

test("boot ROM: a trial image runs once; unconfirmed, the next reset rolls back to the old one for good", () => {
  const flash = Flash.erased();
  installImage(flash, image("1.0.0"));
  stage(flash, 1, image("1.1.0"));
  const first = rom(flash);
  assert.deepEqual([first.boot.boot(ResetCause.Update)?.slot, flag(flash, 1, "Tried")], [1, true]);
  assert.match(first.text(), /starting slot 1 \(1\.1\.0\) on trial/);
  const second = rom(flash);
  assert.equal(second.boot.boot(ResetCause.Watchdog)?.slot, 0);
  assert.match(second.text(), /slot 1: rolled back: the trial of 1\.1\.0 was not confirmed/);
  assert.ok(flag(flash, 1, "Revoked"));
  assert.equal(rom(flash).boot.boot(ResetCause.PowerOn)?.slot, 0);
});

test("boot ROM: a confirmed trial becomes the image, the old one its superseded fallback", () => {
  const flash = Flash.erased();
  installImage(flash, image("1.0.0"));
  stage(flash, 1, image("1.1.0"));
  const r = rom(flash);
  r.boot.boot(ResetCause.Update);
  r.boot.confirm(1);
  assert.ok(flag(flash, 1, "Confirmed") && flag(flash, 0, "Superseded") && !flag(flash, 1, "Superseded"));
  assert.deepEqual(rom(flash).boot.boot(ResetCause.PowerOn), { ...rom(flash).boot.boot(ResetCause.PowerOn), slot: 1, trial: false });
  // The newer image is damaged: the old one still boots.
  flash.program(slotBase(1) + ImageHeader.Size + 3, new Uint8Array(1));
  const fallback = rom(flash);
  assert.equal(fallback.boot.boot(ResetCause.PowerOn)?.slot, 0);
  assert.match(fallback.text(), /slot 1: invalid \(payload SHA-256 does not match the header \(corrupt image\)\), confirmed/);
});

test("boot ROM: a power cut between confirming and superseding boots the newer of two confirmed images", () => {
  const flash = Flash.erased();
  installImage(flash, image("1.0.0"));
  stage(flash, 1, image("2.0.0"), false);
  flash.program(slotBase(1) + TRAILER_BASE + SlotTrailer.Confirmed, Uint8Array.of(0x7f)); // half-programmed still counts
  assert.equal(rom(flash).boot.boot(ResetCause.PowerOn)?.slot, 1);
});

const refusals: [string, () => Uint8Array, RegExp][] = [
  ["corrupt", () => {
    const bytes = image("1.1.0");
    bytes[ImageHeader.Size + 1] ^= 1;
    return bytes;
  }, /refused: payload SHA-256 does not match/],
  // In flash the missing rest reads as erased bytes: the signature is blank.
  ["cut short", () => image("1.1.0").subarray(0, ImageHeader.Size + 4), /refused: unsigned image \(the signature bytes are blank\)/],
  ["unsigned", () => image("1.1.0", { key: null }), /refused: .*unsigned/i],
  ["signed by an untrusted key", () => image("1.1.0", { key: generateKeyPairSync("ed25519").privateKey }), /refused: signed by key [0-9a-f]{16}, which is not trusted/],
  ["for another board", () => image("1.1.0", { boardId: 0x12345678 }), /refused: built for board 0x12345678, this card is 0x10f00a01/],
  ["a downgrade", () => image("0.9.0"), /refused: downgrade from 1\.0\.0 to 0\.9\.0/],
];
for (const [kind, make, reason] of refusals) {
  test(`boot ROM: an image ${kind} is refused with its reason, revoked, and the running image stays`, () => {
    const flash = Flash.erased();
    installImage(flash, image("1.0.0"));
    stage(flash, 1, make());
    const r = rom(flash);
    assert.equal(r.boot.boot(ResetCause.Update)?.slot, 0);
    const refusal = r.lines.find((l) => /^boot: slot 1: refused/.test(l.line));
    assert.ok(refusal, r.text());
    assert.match(refusal.line, reason);
    assert.equal(refusal.level, "warn");
    assert.ok(flag(flash, 1, "Revoked"));
    assert.ok(!rom(flash).text().includes("refused"), "decided once");
  });
}

test("boot ROM: a trial that never confirmed runs again when nothing else is bootable", () => {
  const flash = Flash.erased();
  stage(flash, 1, image("1.1.0"));
  rom(flash).boot.boot(ResetCause.Update);
  const again = rom(flash);
  assert.deepEqual([again.boot.boot(ResetCause.Watchdog)?.slot, again.boot.boot(ResetCause.Watchdog)?.trial], [1, true]);
  assert.match(again.text(), /trying it again/);
});
