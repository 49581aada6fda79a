// The card's configuration in flash (board/map/flash.ts, docs/image-format.md): records of
// the CONFIG mailbox body, written in turn to CONFIG_SECTORS sectors so that a power cut
// while one is written leaves the previous record intact. At power-on the board posts
// CONFIG from the valid record with the highest Sequence (board/card.ts); the firmware
// writes new records itself with FLASH_ERASE / FLASH_PROGRAM (docs/management.md), and the
// factory writes the first one.
//
// A record is valid when its Magic is CONFIG_MAGIC, its Sequence is not 0xffffffff (an
// erased word), its Length is ConfigBody.Size, its reserved words are zero and the SHA-256
// after the body matches bytes 0 .. Body + Length. A record cut short by a power cut, or an
// erase cut short, fails the hash (or the magic) and is skipped, never trusted.

import { createHash } from "node:crypto";
import {
  CONFIG_BASE, CONFIG_SECTORS, CONFIG_MAGIC, CONFIG_HASH_SIZE, ConfigRecord, PAGE_SIZE, SECTOR_SIZE, configSector,
} from "./map/flash.ts";
import { ConfigBody, HEADER_SIZE } from "./map/mailbox.ts";
import { encodeEvent, type LinkConfig } from "./mailbox-codec.ts";
import type { Flash } from "./flash.ts";

/** Bytes of a whole record: header, the CONFIG body, SHA-256. 136: it fits one page. */
export const CONFIG_RECORD_SIZE = ConfigRecord.Body + ConfigBody.Size + CONFIG_HASH_SIZE;
/** Sequence of the record the factory writes. */
export const FACTORY_SEQUENCE = 1;
const ERASED_WORD = 0xffff_ffff;

if (CONFIG_RECORD_SIZE > PAGE_SIZE) throw new Error("a configuration record must fit one flash page");

/** The record the board posts CONFIG from. */
export interface StoredConfig {
  sequence: number;
  /** The CONFIG body, ConfigBody.Size bytes, as stored. */
  body: Uint8Array;
  /** Index of the sector holding it, 0..CONFIG_SECTORS - 1 (its address: configSector(sector)). */
  sector: number;
}

/** What one configuration sector holds: a valid record, or why it has none. */
export type SectorRecord = ({ ok: true } & StoredConfig) | { ok: false; sector: number; reason: string };

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** The CONFIG body of `link`, from the CONFIG encoder of the mailbox codec. */
export function configBody(link: LinkConfig): Uint8Array {
  return encodeEvent({ kind: "config", ...link }).slice(HEADER_SIZE);
}

/** A whole record of `body` (a CONFIG body, ConfigBody.Size bytes) with `sequence`: what one FLASH_PROGRAM writes at a sector's start. */
export function encodeConfigRecord(body: Uint8Array, sequence: number): Uint8Array {
  if (body.length !== ConfigBody.Size) throw new RangeError(`a CONFIG body has ${ConfigBody.Size} bytes, not ${body.length}`);
  if (!Number.isInteger(sequence) || sequence < 0 || sequence >= ERASED_WORD) throw new RangeError(`sequence ${sequence} is not 0..0xfffffffe`);
  const record = new Uint8Array(CONFIG_RECORD_SIZE);
  const view = new DataView(record.buffer);
  view.setUint32(ConfigRecord.Magic, CONFIG_MAGIC, true);
  view.setUint32(ConfigRecord.Sequence, sequence, true);
  view.setUint16(ConfigRecord.Length, body.length, true);
  record.set(body, ConfigRecord.Body);
  const end = ConfigRecord.Body + body.length;
  record.set(sha256(record.subarray(0, end)), end);
  return record;
}

/** Checks the record at the start of configuration sector `sector`. */
export function inspectConfigSector(flash: Pick<Flash, "read">, sector: number): SectorRecord {
  const bytes = flash.read(configSector(sector), CONFIG_RECORD_SIZE);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (reason: string): SectorRecord => ({ ok: false, sector, reason });
  const magic = view.getUint32(ConfigRecord.Magic, true);
  if (magic === ERASED_WORD && bytes.every((b) => b === 0xff)) return fail("erased");
  if (magic !== CONFIG_MAGIC) return fail(`magic 0x${magic.toString(16).padStart(8, "0")}, not a record`);
  const sequence = view.getUint32(ConfigRecord.Sequence, true);
  if (sequence === ERASED_WORD) return fail("sequence not written (cut short)");
  const length = view.getUint16(ConfigRecord.Length, true);
  if (length !== ConfigBody.Size) return fail(`length ${length}, not ${ConfigBody.Size}`);
  if (view.getUint16(ConfigRecord.Reserved10, true) !== 0 || view.getUint32(ConfigRecord.Reserved12, true) !== 0) return fail("reserved header bytes not zero");
  const end = ConfigRecord.Body + length;
  const hash = sha256(bytes.subarray(0, end));
  if (!hash.every((b, i) => b === bytes[end + i])) return fail(`sequence ${sequence}: SHA-256 does not match (cut short or corrupt)`);
  return { ok: true, sector, sequence, body: bytes.slice(ConfigRecord.Body, end) };
}

/** Every configuration sector's record, valid or not, in sector order. */
export function inspectConfigRecords(flash: Pick<Flash, "read">): SectorRecord[] {
  return Array.from({ length: CONFIG_SECTORS }, (_, i) => inspectConfigSector(flash, i));
}

/** The newest valid record (highest Sequence; the lower sector on a tie), or null when no sector holds a valid one. */
export function readConfigRecord(flash: Pick<Flash, "read">): StoredConfig | null {
  let best: StoredConfig | null = null;
  for (const r of inspectConfigRecords(flash)) {
    if (r.ok && (!best || r.sequence > best.sequence)) best = { sequence: r.sequence, body: r.body, sector: r.sector };
  }
  return best;
}

/**
 * Where the next record goes, as the firmware writes one: the sector not holding the newest
 * valid record (sector 0 when there is none), with Sequence = newest + 1.
 */
export function nextConfigSlot(flash: Pick<Flash, "read">): { sector: number; sequence: number } {
  const newest = readConfigRecord(flash);
  if (!newest) return { sector: 0, sequence: FACTORY_SEQUENCE };
  return { sector: (newest.sector + 1) % CONFIG_SECTORS, sequence: newest.sequence + 1 };
}

/**
 * Writes `body` as the next record, the way the firmware does (erase the sector not holding
 * the newest record, program the record there); the newest record stays until it is done.
 * For tests and tools that stand in for the firmware.
 */
export function writeConfigRecord(flash: Pick<Flash, "read" | "eraseSector" | "program">, body: Uint8Array): StoredConfig {
  const { sector, sequence } = nextConfigSlot(flash);
  flash.eraseSector(configSector(sector));
  flash.program(configSector(sector), encodeConfigRecord(body, sequence));
  return { sector, sequence, body: body.slice() };
}

/**
 * The factory's configuration: erases the configuration area (both sectors, leaving it
 * blank) and writes `link` as record sequence 1 into sector 0.
 */
export function writeFactoryConfig(flash: Pick<Flash, "eraseSector" | "program">, link: LinkConfig): void {
  for (let at = CONFIG_BASE; at < CONFIG_BASE + CONFIG_SECTORS * SECTOR_SIZE; at += SECTOR_SIZE) flash.eraseSector(at);
  flash.program(configSector(0), encodeConfigRecord(configBody(link), FACTORY_SEQUENCE));
}
