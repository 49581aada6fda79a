// Writes the card's configuration record (board/map/flash.ts, ConfigRecord) when management
// changes it. The records alternate between the CONFIG_SECTORS sectors: a write first reads
// both, keeps the sector holding the newest valid record untouched, erases the other and
// programs the new record there with the next sequence number. A power cut at any step leaves
// the previous record valid; the board boots from whichever valid record is newest.

import { ConfigBody, FlashDoneBody, FlashOp, FlashStatus } from "../../board/map/mailbox";
import { ConfigRecord, CONFIG_MAGIC, CONFIG_HASH_SIZE, configSector } from "../../board/map/flash";
import * as tx from "../abi/tx";
import { sha256 } from "../crypto/sha256";

const HASHED: i32 = ConfigRecord.Body + ConfigBody.Size;
export const RECORD_SIZE: i32 = HASHED + CONFIG_HASH_SIZE;

enum Step {
  Idle = 0,
  ReadFirst = 1,
  ReadSecond = 2,
  Erase = 3,
  Program = 4,
}

/** What onFlashDone() made of a FLASH_DONE. */
export enum Outcome {
  Pending = 0, // the write goes on
  Written = 1,
  Failed = 2, // a flash operation failed: the previous record is still the newest valid one
}

let step = Step.Idle;
let firstSequence: u32 = 0;
let target: i32 = 0;
const record = memory.data(RECORD_SIZE);
const digest = memory.data(CONFIG_HASH_SIZE);

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

/** The sequence number of the record read at `data` (`length` bytes), or 0 when it is not a valid record. */
function validSequence(data: usize, length: i32): u32 {
  if (length != RECORD_SIZE) return 0;
  if (load<u32>(data, ConfigRecord.Magic) != CONFIG_MAGIC) return 0;
  if ((load<u16>(data, ConfigRecord.Length) as i32) != ConfigBody.Size) return 0;
  if (load<u16>(data, ConfigRecord.Reserved10) != 0 || load<u32>(data, ConfigRecord.Reserved12) != 0) return 0;
  sha256(data, HASHED, digest);
  if (memory.compare(digest, data + HASHED, CONFIG_HASH_SIZE) != 0) return 0;
  return load<u32>(data, ConfigRecord.Sequence);
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
    firstSequence = validSequence(data, length);
    step = Step.ReadSecond;
    tx.flashRead(configSector(1), RECORD_SIZE);
  } else if (step == Step.ReadSecond && op == FlashOp.Read) {
    const second = validSequence(data, length);
    // Never erase the newest valid record: write into the other sector.
    target = second > firstSequence ? 0 : 1;
    store<u32>(record, max(firstSequence, second) + 1, ConfigRecord.Sequence);
    sha256(record, HASHED, record + HASHED);
    step = Step.Erase;
    tx.flashErase(configSector(target), 1);
  } else if (step == Step.Erase && op == FlashOp.Erase) {
    step = Step.Program;
    tx.flashProgram(configSector(target), record, RECORD_SIZE);
  } else if (step == Step.Program && op == FlashOp.Program) {
    step = Step.Idle;
    return Outcome.Written;
  }
  return Outcome.Pending;
}
