// Writes the card's configuration record (board/map/flash.ts, ConfigRecord) when management
// changes it. The records alternate between the CONFIG_SECTORS sectors: a write first reads
// both, keeps the sector holding the newest valid record untouched, erases the other and
// programs the new record there with the next sequence number. A power cut at any step leaves
// the previous record valid; the board boots from whichever valid record is newest.
// The fabric's hash engine (Context.Store) checks the records read and seals the new one: each
// check is a step of its own, which the HASH_DONE that answers it (onDigest()) moves on.

import { ConfigBody, FlashDoneBody, FlashOp, FlashStatus } from "../../board/map/mailbox";
import { ConfigRecord, CONFIG_MAGIC, CONFIG_HASH_SIZE, configSector } from "../../board/map/flash";
import * as tx from "../abi/tx";
import * as hash from "../hash";
import { Context } from "../hash";

const HASHED: i32 = ConfigRecord.Body + ConfigBody.Size;
export const RECORD_SIZE: i32 = HASHED + CONFIG_HASH_SIZE;

enum Step {
  Idle = 0,
  ReadFirst = 1,
  CheckFirst = 2,
  ReadSecond = 3,
  CheckSecond = 4,
  Seal = 5,
  Erase = 6,
  Program = 7,
}

/** What onFlashDone() made of a FLASH_DONE. */
export enum Outcome {
  Pending = 0, // the write goes on
  Written = 1,
  Failed = 2, // a flash operation failed: the previous record is still the newest valid one
}

let step = Step.Idle;
let firstSequence: u32 = 0;
/** The sequence number of the record being checked, and the hash it claims. */
let readSequence: u32 = 0;
const claimed = memory.data(CONFIG_HASH_SIZE);
let target: i32 = 0;
const record = memory.data(RECORD_SIZE);

export function reset(): void {
  step = Step.Idle;
}

export function busy(): bool {
  return step != Step.Idle;
}

/** Starts writing a record of the CONFIG body at `body` with its group set to `group`; FLASH_DONEs go to onFlashDone() until it ends. */
export function write(body: usize, group: u32): void {
  memory.fill(record, 0, RECORD_SIZE);
  store<u32>(record, CONFIG_MAGIC, ConfigRecord.Magic);
  store<u16>(record, ConfigBody.Size as u16, ConfigRecord.Length);
  memory.copy(record + ConfigRecord.Body, body, ConfigBody.Size);
  store<u16>(record + ConfigRecord.Body, group as u16, ConfigBody.Group);
  step = Step.ReadFirst;
  tx.flashRead(configSector(0), RECORD_SIZE);
}

/** Whether the `length` bytes read at `data` can be a record: then the engine checks its hash (onDigest). */
function plausible(data: usize, length: i32): bool {
  if (length != RECORD_SIZE) return false;
  if (load<u32>(data, ConfigRecord.Magic) != CONFIG_MAGIC) return false;
  if ((load<u16>(data, ConfigRecord.Length) as i32) != ConfigBody.Size) return false;
  if (load<u16>(data, ConfigRecord.Reserved10) != 0 || load<u32>(data, ConfigRecord.Reserved12) != 0) return false;
  readSequence = load<u32>(data, ConfigRecord.Sequence);
  memory.copy(claimed, data + HASHED, CONFIG_HASH_SIZE);
  digestOf(data);
  return true;
}

function digestOf(data: usize): void {
  hash.start(Context.Store);
  hash.update(Context.Store, data, HASHED);
  hash.finish(Context.Store);
}

function readSecond(): void {
  step = Step.ReadSecond;
  tx.flashRead(configSector(1), RECORD_SIZE);
}

/** Both records are known: seal the new one for the other sector than the newest valid record's (never erase that one). */
function seal(second: u32): void {
  target = second > firstSequence ? 0 : 1;
  store<u32>(record, max(firstSequence, second) + 1, ConfigRecord.Sequence);
  step = Step.Seal;
  digestOf(record);
}

/** The engine's digest for the step that asked for it. */
export function onDigest(digest: usize): void {
  const valid = memory.compare(digest, claimed, CONFIG_HASH_SIZE) == 0;
  if (step == Step.CheckFirst) {
    firstSequence = valid ? readSequence : 0;
    readSecond();
  } else if (step == Step.CheckSecond) seal(valid ? readSequence : 0);
  else if (step == Step.Seal) {
    memory.copy(record + HASHED, digest, CONFIG_HASH_SIZE);
    step = Step.Erase;
    tx.flashErase(configSector(target), 1);
  }
}

/** A FLASH_DONE (checked by the dispatcher) while busy(). */
export function onFlashDone(body: usize): Outcome {
  const op = load<u8>(body, FlashDoneBody.Op) as i32;
  if ((load<u8>(body, FlashDoneBody.Status) as i32) != FlashStatus.Ok) {
    step = Step.Idle;
    return Outcome.Failed;
  }
  const data = body + FlashDoneBody.Data;
  const length = load<u16>(body, FlashDoneBody.Length) as i32;
  if (step == Step.ReadFirst && op == FlashOp.Read) {
    firstSequence = 0;
    if (plausible(data, length)) step = Step.CheckFirst;
    else readSecond();
  } else if (step == Step.ReadSecond && op == FlashOp.Read) {
    if (plausible(data, length)) step = Step.CheckSecond;
    else seal(0);
  } else if (step == Step.Erase && op == FlashOp.Erase) {
    step = Step.Program;
    tx.flashProgram(configSector(target), record, RECORD_SIZE);
  } else if (step == Step.Program && op == FlashOp.Program) {
    step = Step.Idle;
    return Outcome.Written;
  }
  return Outcome.Pending;
}
