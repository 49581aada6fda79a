// The card's configuration records in flash (board/config-store.ts): how a record is laid
// out, which one counts, that a record cut short by a power cut is skipped, that the card
// posts CONFIG from the newest valid record at every power-on (and none without one), and
// that the world's factory writes the scenario's record only into a flash that has none.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPublicKey } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Flash, FlashController, type FlashDone } from "../../board/flash.ts";
import {
  CONFIG_RECORD_SIZE, configBody, encodeConfigRecord, inspectConfigRecords, nextConfigSlot, readConfigRecord, writeConfigRecord, writeFactoryConfig,
} from "../../board/config-store.ts";
import { CONFIG_BASE, CONFIG_MAGIC, CONFIG_SECTORS, ConfigRecord, PAGE_SIZE, SECTOR_SIZE, configSector } from "../../board/map/flash.ts";
import { ConfigBody, CardRole, Event, LogLevel, ResetCause } from "../../board/map/mailbox.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { encodeEvent, decodeEvent, MessageReader, type EventMessage, type LinkConfig } from "../../board/mailbox-codec.ts";
import { Card } from "../../board/card.ts";
import { installImage } from "../../board/boot-rom.ts";
import { buildImage, developmentKey } from "../../board/image.ts";
import type { FirmwareSession } from "../../board/softcore.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { World } from "../../tools/sim/world.ts";
import { DEFAULT_LINK, cardLink, pairScenario, pairingKey, adminKey } from "../../tools/sim/scenarios.ts";
import { FIRMWARE } from "./helpers.ts";

const link = (group = 100): LinkConfig => {
  const { installation, ...fields } = DEFAULT_LINK;
  return { ...fields, group, pairingKey: pairingKey(installation), adminKey: adminKey(installation) };
};

const groupOf = (body: Uint8Array) => new DataView(body.buffer, body.byteOffset).getUint16(ConfigBody.Group, true);

test("a record is magic, sequence, length, two reserved words, the CONFIG body from the mailbox encoder, and its SHA-256; it fits one page", () => {
  const body = configBody(link());
  assert.deepEqual(body, encodeEvent({ kind: "config", ...link() }).subarray(4), "the CONFIG encoder's body");
  assert.equal(body.length, ConfigBody.Size);
  const record = encodeConfigRecord(body, 7);
  assert.equal(record.length, CONFIG_RECORD_SIZE);
  assert.equal(CONFIG_RECORD_SIZE, 16 + 88 + 32);
  assert.ok(CONFIG_RECORD_SIZE <= PAGE_SIZE);
  const v = new DataView(record.buffer);
  assert.equal(v.getUint32(ConfigRecord.Magic, true), CONFIG_MAGIC);
  assert.deepEqual([...record.subarray(0, 4)].map((c) => String.fromCharCode(c)).join(""), "IOVC");
  assert.equal(v.getUint32(ConfigRecord.Sequence, true), 7);
  assert.equal(v.getUint16(ConfigRecord.Length, true), ConfigBody.Size);
  assert.equal(v.getUint16(ConfigRecord.Reserved10, true), 0);
  assert.equal(v.getUint32(ConfigRecord.Reserved12, true), 0);
  assert.deepEqual(record.subarray(ConfigRecord.Body, ConfigRecord.Body + ConfigBody.Size), body);
  const end = ConfigRecord.Body + ConfigBody.Size;
  assert.deepEqual(record.subarray(end), new Uint8Array(createHash("sha256").update(record.subarray(0, end)).digest()));
  assert.throws(() => encodeConfigRecord(body.subarray(1), 1), RangeError);
  assert.throws(() => encodeConfigRecord(body, 0xffff_ffff), RangeError);
});

test("the factory writes record 1 into sector 0 of a blank area; each later write alternates sectors with the next sequence", () => {
  const flash = Flash.erased();
  assert.equal(readConfigRecord(flash), null, "an erased flash holds no record");
  assert.deepEqual(inspectConfigRecords(flash).map((r) => (r.ok ? "valid" : r.reason)), ["erased", "erased"]);
  assert.deepEqual(nextConfigSlot(flash), { sector: 0, sequence: 1 });
  flash.program(configSector(1), Uint8Array.of(1, 2, 3)); // leftovers in the area: the factory erases it
  writeFactoryConfig(flash, link(100));
  let newest = readConfigRecord(flash)!;
  assert.deepEqual([newest.sector, newest.sequence, groupOf(newest.body)], [0, 1, 100]);
  assert.ok(flash.read(configSector(1), SECTOR_SIZE).every((b) => b === 0xff), "sector 1 left blank");
  for (const [group, sector, sequence] of [[200, 1, 2], [300, 0, 3], [400, 1, 4]]) {
    assert.deepEqual(nextConfigSlot(flash), { sector, sequence });
    writeConfigRecord(flash, configBody(link(group)));
    newest = readConfigRecord(flash)!;
    assert.deepEqual([newest.sector, newest.sequence, groupOf(newest.body)], [sector, sequence, group]);
    assert.ok(inspectConfigRecords(flash).every((r) => r.ok), "the previous record stays valid in the other sector");
  }
  assert.ok(configSector(CONFIG_SECTORS - 1) + SECTOR_SIZE <= CONFIG_BASE + 0x2000);
});

test("a record that is invalid in any way is skipped and the other sector's counts, however high its sequence", () => {
  const damage: [string, (record: Uint8Array) => void, RegExp][] = [
    ["magic", (r) => (r[0] ^= 1), /magic/],
    ["sequence never written", (r) => r.fill(0xff, ConfigRecord.Sequence, ConfigRecord.Sequence + 4), /sequence not written/],
    ["length", (r) => (r[ConfigRecord.Length] = 56), /length 56/],
    ["reserved word 10", (r) => (r[ConfigRecord.Reserved10] = 1), /reserved/],
    ["reserved word 12", (r) => (r[ConfigRecord.Reserved12 + 3] = 0x80), /reserved/],
    ["a body byte", (r) => (r[ConfigRecord.Body + ConfigBody.Group] ^= 0x10), /SHA-256/],
    ["the hash", (r) => (r[CONFIG_RECORD_SIZE - 1] ^= 1), /SHA-256/],
  ];
  for (const [what, spoil, reason] of damage) {
    const flash = Flash.erased();
    writeFactoryConfig(flash, link(100));
    const record = encodeConfigRecord(configBody(link(555)), 0x7000_0000);
    spoil(record);
    flash.program(configSector(1), record);
    const newest = readConfigRecord(flash);
    assert.deepEqual([newest?.sector, newest?.sequence, newest && groupOf(newest.body)], [0, 1, 100], what);
    const bad = inspectConfigRecords(flash)[1];
    assert.ok(!bad.ok && reason.test(bad.reason), `${what}: ${bad.ok ? "valid" : bad.reason}`);
  }
});

test("a power cut while the firmware writes a new record leaves the old one in force, at every point of the erase and the program", async () => {
  // The firmware's sequence: erase the sector not holding the newest record, program the record there.
  let olds = 0;
  for (let cut = 0; cut < 40; cut++) {
    const scheduler = new EventScheduler();
    const flash = Flash.erased();
    writeFactoryConfig(flash, link(100));
    writeConfigRecord(flash, configBody(link(200))); // record 2 in sector 1: the next write goes to sector 0
    const done: FlashDone[] = [];
    const controller = new FlashController(flash, scheduler, (d) => done.push(d));
    const { sector, sequence } = nextConfigSlot(flash);
    assert.deepEqual([sector, sequence], [0, 3]);
    controller.erase(configSector(sector), 1);
    let seed = cut * 7919 + 1;
    const random = (bound: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % bound;
    if (cut < 20) {
      await scheduler.run(1_000_000 * cut); // inside the 45 ms erase
      controller.powerCut(random);
    } else {
      await scheduler.run(50_000_000);
      controller.program(configSector(sector), encodeConfigRecord(configBody(link(300)), sequence));
      await scheduler.run(scheduler.now + 10_000 * (cut - 20)); // inside the 0.7 ms program
      controller.powerCut(random);
    }
    const newest = readConfigRecord(flash)!;
    const complete = cut >= 20 && flash.read(configSector(0) + CONFIG_RECORD_SIZE - 1, 1)[0] !== 0xff && inspectConfigRecords(flash)[0].ok;
    // Only a program cut after its last byte leaves the new record; anything less leaves the old one.
    assert.deepEqual([newest.sequence, groupOf(newest.body)], complete ? [3, 300] : [2, 200], `cut ${cut}`);
    if (!complete) olds++;
  }
  assert.ok(olds >= 38, `${olds} of 40 cuts left the old record`);
});

/** A firmware stand-in that keeps every event batch and answers nothing. */
function recordingCard(flash: Flash, notes: string[]) {
  const batches: EventMessage[][] = [];
  const raw: Uint8Array[] = [];
  const session = (): FirmwareSession => ({
    engine: "test",
    async exchange(events) {
      const reader = new MessageReader("events");
      reader.push(events);
      const batch: EventMessage[] = [];
      for (const message of reader.all()) {
        if (message.type === Event.Config) raw.push(message.body!.slice());
        batch.push(decodeEvent(message));
      }
      batches.push(batch);
      return new Uint8Array(0);
    },
    async close() {
      return new Uint8Array(0);
    },
  });
  const scheduler = new EventScheduler();
  const card = new Card(
    { name: "c", role: CardRole.Chassis, boardId: BOARD_ID, serial: 2, mac: new Uint8Array(6), slots: 2, logLevel: LogLevel.Info, link: link(999) },
    scheduler, (n) => new Uint8Array(n),
    { flash, trustedKeys: [createPublicKey(developmentKey())], openFirmware: session, random: () => 0 },
    { note: (_card, text, level) => notes.push(`${level}: ${text}`) },
  );
  const configs = () => batches.flat().filter((e): e is Extract<EventMessage, { kind: "config" }> => e.kind === "config");
  return { card, scheduler, configs, raw };
}

function flashWithImage(): Flash {
  const flash = Flash.erased();
  installImage(flash, buildImage(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0), { boardId: BOARD_ID, version: { major: 1, minor: 0, patch: 0 }, key: developmentKey() }));
  return flash;
}

test("at every power-on the card posts CONFIG from its newest valid record, byte for byte, whatever CardConfig.link says", async () => {
  const flash = flashWithImage();
  writeFactoryConfig(flash, link(100));
  const notes: string[] = [];
  const { card, scheduler, configs, raw } = recordingCard(flash, notes);
  card.powerOn(ResetCause.PowerOn);
  await scheduler.run(1000);
  assert.deepEqual(configs().map((c) => c.group), [100], "the flash's record, not CardConfig.link's group 999");
  assert.deepEqual(configs()[0], { kind: "config", ...link(100) });
  // A group change written to flash (as the firmware does) counts from the next reset on.
  writeConfigRecord(flash, configBody(link(200)));
  await card.reset(ResetCause.Software);
  await scheduler.run(scheduler.now + 1000);
  assert.deepEqual(configs().map((c) => c.group), [100, 200]);
  // A newer record cut short in the other sector is skipped, and said so.
  const torn = encodeConfigRecord(configBody(link(300)), 3).subarray(0, 60);
  flash.eraseSector(configSector(0));
  flash.program(configSector(0), torn);
  await card.reset(ResetCause.Watchdog);
  await scheduler.run(scheduler.now + 1000);
  assert.deepEqual(configs().map((c) => c.group), [100, 200, 200]);
  assert.ok(notes.some((n) => /configuration sector 0 skipped: sequence 3: SHA-256 does not match/.test(n)), notes.join("\n"));
  // Reserved bytes of the body are posted as stored: the firmware, not the board, judges the fields.
  const odd = configBody(link(400));
  odd[ConfigBody.Reserved23] = 0x5a;
  writeConfigRecord(flash, odd);
  await card.reset(ResetCause.Software);
  await scheduler.run(scheduler.now + 1000);
  assert.deepEqual(raw.at(-1), odd);
  assert.equal(raw.length, 4);
});

test("without a valid record the card posts no CONFIG and says why on its timeline", async () => {
  const flash = flashWithImage();
  flash.program(configSector(1), encodeConfigRecord(configBody(link(100)), 1).subarray(0, 100));
  const notes: string[] = [];
  const { card, scheduler, configs } = recordingCard(flash, notes);
  card.powerOn(ResetCause.PowerOn);
  await scheduler.run(1000);
  assert.equal(configs().length, 0);
  assert.ok(
    notes.includes("warn: no valid configuration record in flash (sector 0: erased; sector 1: sequence 1: SHA-256 does not match (cut short or corrupt)): no CONFIG, the link stays disabled"),
    notes.join("\n"),
  );
});

test("the world's factory writes the scenario's record into a flash without one, and a flash file keeps the record it has", async () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-config-"));
  const scenario = pairScenario({ durationNs: 1e6, chassis: { link: { group: 300 } } });
  const open = () => new World({ scenario, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, flashDir: dir });
  const close = async (w: World) => {
    for (const hook of w.stopHooks) await hook(w);
  };
  const first = open();
  const [host, chassis] = first.cards.map((c) => readConfigRecord(c.flash.flash)!);
  assert.deepEqual([host.sequence, groupOf(host.body)], [1, 100]);
  assert.deepEqual(host.body, configBody(cardLink(scenario, scenario.cards[0])!));
  assert.deepEqual([chassis.sequence, groupOf(chassis.body)], [1, 300]);
  // A station moves the host card to group 42: the firmware writes record 2.
  writeConfigRecord(first.cards[0].flash.flash, configBody({ ...cardLink(scenario, scenario.cards[0])!, group: 42 }));
  await close(first);
  const again = open();
  const kept = readConfigRecord(again.cards[0].flash.flash)!;
  assert.deepEqual([kept.sequence, groupOf(kept.body)], [2, 42], "the group change outlives a restart");
  await close(again);
  // A card without a link section gets no record; in memory, every card starts from the factory record.
  const bare = new World({ scenario: pairScenario({ durationNs: 1e6, chassis: { link: null } }), seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE } });
  assert.deepEqual(bare.cards.map((c) => readConfigRecord(c.flash.flash)?.sequence ?? null), [1, null]);
});
