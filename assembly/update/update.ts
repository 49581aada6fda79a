// Firmware update over the console (docs/console.md, "update"): erase the inactive flash
// slot, receive an image with XMODEM into it, read it back and check it, then ask the boot
// ROM for a trial boot. The boot ROM verifies the signature at the reset; the new firmware
// confirms itself after a healthy start (system.ts).
//
// The XMODEM receiver follows the XMODEM/YMODEM protocol reference (Forsberg, 1988):
// 128-byte (SOH) and 1024-byte (STX) blocks, CRC-16 when the sender answers 'C', else the
// 8-bit checksum after NAK; each block is written to flash before it is acknowledged; a
// repeated block (the sender missed the ACK) is acknowledged again, a block out of
// sequence cancels. Padding after the image's last byte is not written. The first EOT is
// answered with NAK and only a second one in a row ends the transfer, so that a stray
// 0x04 between blocks cannot cut it short. Nothing this module prints before the first
// 'C' contains a 'C' or a NAK, so a sender listening early is not started by text.
//
// The module also reads the running image's header at boot, for `version`.

import { FlashOp, FlashStatus, FlashDoneBody, Counter } from "../../board/map/mailbox";
import { SLOT_SECTORS, PAGE_SIZE, IMAGE_MAX, slotBase } from "../../board/map/flash";
import { IMAGE_MAGIC, IMAGE_FORMAT, ImageHeader, SIGNATURE_SIZE, SHA256_SIZE, BUILD_ID_SIZE, imageSize, versionKey } from "../../board/map/image";
import { FLASH_READ_MAX } from "../../board/map/mailbox";
import * as tx from "../abi/tx";
import * as timers from "../timers";
import { TimerId } from "../timers";
import * as uart from "../console/uart";
import * as system from "../system";
import * as configStore from "../manage/store";
import * as log from "../log";
import { Text } from "../text";
import { count } from "../counters";
import * as hash from "../hash";
import { Context } from "../hash";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../version";

const SOH: i32 = 0x01;
const STX: i32 = 0x02;
const EOT: i32 = 0x04;
const ACK: i32 = 0x06;
const NAK: i32 = 0x15;
const CAN: i32 = 0x18;
const CRC_START: i32 = 0x43; // 'C'

const START_INTERVAL_NS: u64 = 3_000_000_000;
const START_TRIES: i32 = 20;
/** 'C' this many times without an answer, then NAK: a sender that only knows checksums. */
const CRC_TRIES: i32 = 3;
const BYTE_TIMEOUT_NS: u64 = 1_000_000_000;
const BLOCK_TIMEOUT_NS: u64 = 10_000_000_000;
const MAX_ERRORS: i32 = 10;

export enum State {
  Idle = 0,
  Identify = 1, //  reading the running image's header
  Erasing = 2,
  Waiting = 3, //   sending 'C' / NAK until the first block
  Receiving = 4,
  Writing = 5, //   programming a block, then ACK
  Verifying = 6, // reading the image back
  Rebooting = 7,
}

export let state: i32 = State.Idle;
let slot: i32 = 0;
let boardId: u32 = 0;
let crcMode = true;
let tries: i32 = 0;
let errors: i32 = 0;
let expected: i32 = 1; // next block number, mod 256
let received: i32 = 0; // image bytes stored
let size: i32 = 0; //     the image's size, once its header is in
let cancelSeen = false;
let eotSeen = false;
let finished = false;

const packet = memory.data(4 + 1024 + 2);
let got: i32 = 0;
let dataLength: i32 = 0;
/** The CRC-16 (or the sum) of the data bytes of the block received so far. */
let blockCheck: u32 = 0;
let chunkAt: i32 = 0;
let chunkEnd: i32 = 0;
let chunkLength: i32 = 0;

let readAt: i32 = 0;
let readLength: i32 = 0;
/** The signature's bytes are all one value (erased flash, zeros, or the transfer's 0x1A padding after an unsigned image). */
let signatureBlank = true;
let signatureFirst: i32 = 0;
const header = memory.data(ImageHeader.Size);
/** The running image's header, from flash. */
const own = memory.data(ImageHeader.Size);
let ownKnown = false;

export function reset(): void {
  state = State.Idle;
  finished = false;
  ownKnown = false;
  got = 0;
}

/** At BOOT: read the running image's header. */
export function start(card: u32): void {
  boardId = card;
  state = State.Identify;
  tx.flashRead(slotBase(system.bootSlot), ImageHeader.Size);
}

/** No update is using the flash (it may be written for something else). */
export function idle(): bool {
  return state == State.Idle;
}

/** True while the console belongs to the transfer (no echo, no asynchronous text). */
export function ownsLine(): bool {
  return state >= State.Waiting && state <= State.Writing;
}

/** True once, after an update that had the line ended: the console shows its prompt again. */
export function takeFinished(): bool {
  const f = finished;
  finished = false;
  return f;
}

/** The running image's header (ImageHeader), or 0 when it is not read (yet). */
export function ownHeader(): usize {
  return ownKnown ? own : 0;
}

/** The console's `update`: false (and why, on the console) when one cannot start now. */
export function begin(): bool {
  if (state != State.Idle || configStore.busy()) {
    uart.line(state == State.Identify ? "update: the card is still starting; try again" : state == State.Idle ? "update: the flash is busy; try again" : "update: one is already running");
    return false;
  }
  if (system.trial) {
    // The other slot holds the only image known to work: keep it until this one is confirmed.
    uart.line("update: the running image is on trial; try again once it is confirmed");
    return false;
  }
  slot = 1 - system.bootSlot;
  state = State.Erasing;
  uart.text("update: erasing slot ");
  uart.dec(slot);
  uart.line(" (64 KiB)");
  tx.flashErase(slotBase(slot), SLOT_SECTORS);
  return true;
}

// ---- Line ------------------------------------------------------------------------

/** A byte from the UART while ownsLine(). */
export function onByte(b: i32): void {
  if (state == State.Writing) return; // the sender waits for our ACK; stray bytes are noise
  if (got == 0) {
    if (b == SOH || b == STX) {
      dataLength = b == SOH ? 128 : 1024;
      store<u8>(packet, b as u8);
      got = 1;
      blockCheck = 0;
      cancelSeen = false;
      eotSeen = false;
      state = State.Receiving;
      timers.start(TimerId.Update, BYTE_TIMEOUT_NS);
    } else if (b == EOT) {
      if (eotSeen) endOfTransfer();
      else {
        eotSeen = true;
        send(NAK);
      }
    } else if (b == CAN) {
      if (cancelSeen) cancel("the sender cancelled", false);
      else cancelSeen = true;
    } else {
      cancelSeen = false;
      eotSeen = false;
    }
    return;
  }
  // The block's CRC or checksum follows its data byte by byte, so that no batch checks a whole
  // 1 KiB block at once (a bitwise CRC of it took the soft-core 30 ms at 100 MHz).
  if (got >= 3 && got < 3 + dataLength) blockCheck = crcMode ? crc16Byte(blockCheck, b as u32) : blockCheck + (b as u32);
  store<u8>(packet + got++, b as u8);
  if (got == 3 + dataLength + (crcMode ? 2 : 1)) onPacket();
  else timers.start(TimerId.Update, BYTE_TIMEOUT_NS);
}

function send(b: i32): void {
  uart.put(b);
}

/** CRC-16/XMODEM (polynomial 0x1021, initial value 0) of each nibble value shifted to the top. */
const CRC16_NIBBLE = memory.data<u16>([
  0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
]);

/** CRC-16/XMODEM `crc` followed by byte `b`, a nibble at a time. */
function crc16Byte(crc: u32, b: u32): u32 {
  crc = ((crc << 4) ^ load<u16>(CRC16_NIBBLE + ((((crc >> 12) ^ (b >> 4)) & 0xf) << 1))) & 0xffff;
  return ((crc << 4) ^ load<u16>(CRC16_NIBBLE + ((((crc >> 12) ^ b) & 0xf) << 1))) & 0xffff;
}

/** The block's CRC-16 (or its checksum's low byte) against the one it carries. */
function checkValueOk(): bool {
  const end = packet + 3 + dataLength;
  if (crcMode) return blockCheck == (((load<u8>(end) as u32) << 8) | load<u8>(end + 1));
  return (blockCheck & 0xff) == load<u8>(end);
}

function onPacket(): void {
  got = 0;
  const block = load<u8>(packet, 1) as i32;
  if (((block + load<u8>(packet, 2)) & 0xff) != 0xff || !checkValueOk()) {
    refuseBlock();
    return;
  }
  if (block == ((expected - 1) & 0xff) && received > 0) {
    send(ACK); // a repeat: the sender missed our ACK
    waitBlock();
    return;
  }
  if (block != expected) {
    cancel("block out of sequence", true);
    return;
  }
  errors = 0;
  if (size == 0) {
    if (load<u32>(packet + 3, ImageHeader.Magic) != IMAGE_MAGIC) {
      cancel("not an IOV image (no IOVF magic)", true);
      return;
    }
    size = imageSize(min(load<u32>(packet + 3, ImageHeader.PayloadLength), IMAGE_MAX) as i32);
    if (size > IMAGE_MAX) {
      cancel("the image does not fit a slot", true);
      return;
    }
  }
  state = State.Writing;
  chunkAt = 3;
  chunkEnd = 3 + min(dataLength, size - received);
  programNext();
}

function refuseBlock(): void {
  count(Counter.XmodemErrors);
  if (++errors > MAX_ERRORS) {
    cancel("too many bad blocks", true);
    return;
  }
  send(NAK);
  waitBlock();
}

function waitBlock(): void {
  state = received > 0 || size > 0 ? State.Receiving : State.Waiting;
  timers.start(TimerId.Update, BLOCK_TIMEOUT_NS);
}

/** Programs the next piece of the block, within one flash page; ACK when the block is stored. */
function programNext(): void {
  if (chunkAt >= chunkEnd) {
    received += chunkEnd - 3;
    expected = (expected + 1) & 0xff;
    count(Counter.XmodemBlocks);
    send(ACK);
    waitBlock();
    return;
  }
  const address = slotBase(slot) + received + chunkAt - 3;
  chunkLength = min(chunkEnd - chunkAt, PAGE_SIZE - (address % PAGE_SIZE));
  tx.flashProgram(address, packet + chunkAt, chunkLength);
}

function endOfTransfer(): void {
  send(ACK);
  timers.stop(TimerId.Update);
  uart.newline();
  if (size > 0 && received < size && received >= size - SIGNATURE_SIZE) {
    // Header and payload all came, and nothing of a signature after them: an unsigned image.
    uart.line("update: refused: the image is not signed");
    refused();
    return;
  }
  if (size == 0 || received < size) {
    uart.text("update: refused: the transfer ended after ");
    uart.dec(received);
    uart.text(" bytes");
    if (size > 0) {
      uart.text(" of ");
      uart.dec(size);
    }
    uart.newline();
    refused();
    return;
  }
  uart.text("update: received ");
  uart.dec(received);
  uart.line(" bytes");
  state = State.Verifying;
  readAt = 0;
  signatureBlank = true;
  hash.start(Context.Update);
  readNext();
}

/** Ends the transfer: CAN CAN CAN to the sender (unless it cancelled), and the reason on the console. */
function cancel(reason: Text, tellSender: bool): void {
  if (tellSender) for (let i = 0; i < 3; i++) send(CAN);
  count(Counter.XmodemErrors);
  count(Counter.UpdatesRefused);
  timers.stop(TimerId.Update);
  uart.newline();
  uart.text("update: cancelled: ");
  uart.line(reason);
  log.warn();
  log.str("update: cancelled: ");
  log.str(reason);
  log.end();
  toIdle();
}

function toIdle(): void {
  state = State.Idle;
  got = 0;
  finished = true;
}

function refused(): void {
  count(Counter.UpdatesRefused);
  toIdle();
}

/** Receiver start and timeouts. */
export function onTimer(): void {
  if (state == State.Waiting && received == 0 && got == 0) {
    if (tries >= START_TRIES) {
      cancel("no sender", false);
      return;
    }
    tries++;
    crcMode = tries <= CRC_TRIES;
    send(crcMode ? CRC_START : NAK);
    timers.start(TimerId.Update, START_INTERVAL_NS);
    return;
  }
  if (state == State.Waiting || state == State.Receiving) {
    got = 0;
    refuseBlock();
  }
}

// ---- Flash -----------------------------------------------------------------------

/** FLASH_DONE (already checked by the dispatcher). */
export function onFlashDone(body: usize): void {
  const op = load<u8>(body, FlashDoneBody.Op) as i32;
  const status = load<u8>(body, FlashDoneBody.Status) as i32;
  if (status != FlashStatus.Ok) {
    count(Counter.FlashErrors);
    if (state == State.Identify) state = State.Idle;
    else if (state == State.Erasing || state == State.Writing || state == State.Verifying) flashFailed(status);
    return;
  }
  if (state == State.Identify && op == FlashOp.Read) {
    ownKnown = (load<u16>(body, FlashDoneBody.Length) as i32) >= ImageHeader.Size;
    if (ownKnown) memory.copy(own, body + FlashDoneBody.Data, ImageHeader.Size);
    state = State.Idle;
  } else if (state == State.Erasing && op == FlashOp.Erase) {
    readyToReceive();
  } else if (state == State.Writing && op == FlashOp.Program) {
    chunkAt += chunkLength;
    programNext();
  } else if (state == State.Verifying && op == FlashOp.Read) {
    const length = load<u16>(body, FlashDoneBody.Length) as i32;
    if (length != readLength) {
      count(Counter.FlashErrors);
      flashFailed(FlashStatus.Range); // the controller returned another amount than asked for
    } else verifyChunk(body + FlashDoneBody.Data, length);
  }
}

function flashFailed(status: i32): void {
  const transfer = state == State.Writing;
  if (transfer) for (let i = 0; i < 3; i++) send(CAN);
  uart.newline();
  uart.text("update: cancelled: flash error (status ");
  uart.dec(status);
  uart.line(")");
  count(Counter.UpdatesRefused);
  timers.stop(TimerId.Update);
  toIdle();
}

function readyToReceive(): void {
  state = State.Waiting;
  tries = 0;
  errors = 0;
  expected = 1;
  received = 0;
  size = 0;
  got = 0;
  cancelSeen = false;
  eotSeen = false;
  uart.text("update: ready for xmodem (1k or 128-byte blocks, crc-16 or checksum), at most ");
  uart.dec(IMAGE_MAX);
  uart.line(" bytes; ^X^X cancels");
  onTimer();
}

function readNext(): void {
  readLength = min(size - readAt, FLASH_READ_MAX);
  tx.flashRead(slotBase(slot) + readAt, readLength);
}

function verifyChunk(data: usize, length: i32): void {
  const readEnd = readAt + length;
  if (readAt < ImageHeader.Size) memory.copy(header + readAt, data, min(readEnd, ImageHeader.Size) - readAt);
  // The signature is blank when all its bytes equal its first; only its bytes are looked at.
  const signature = size - SIGNATURE_SIZE;
  for (let at = max(readAt, signature); at < readEnd; at++) {
    const b = load<u8>(data + at - readAt);
    if (at == signature) signatureFirst = b;
    else signatureBlank = signatureBlank && b == signatureFirst;
  }
  // The first read holds the whole header (FLASH_READ_MAX > ImageHeader.Size), so the payload's end is known.
  const payloadEnd = ImageHeader.Size + (load<u32>(header, ImageHeader.PayloadLength) as i32);
  const start = max(readAt, ImageHeader.Size);
  const end = min(readEnd, payloadEnd);
  if (end > start) hash.update(Context.Update, data + start - readAt, end - start);
  readAt += length;
  if (readAt < size) readNext();
  else hash.finish(Context.Update); // check() on its HASH_DONE
}

/** The hash engine's digest of the payload, once the whole image has been read back. */
export function onDigest(digest: usize): void {
  if (state == State.Verifying && readAt >= size) check(digest);
}

function check(digest: usize): void {
  const version = versionKey(load<u8>(header, ImageHeader.Major), load<u8>(header, ImageHeader.Minor), load<u16>(header, ImageHeader.Patch));
  let problem: Text = 0;
  if (load<u32>(header, ImageHeader.Magic) != IMAGE_MAGIC) problem = "not an IOV image (no IOVF magic)";
  else if (load<u16>(header, ImageHeader.Format) != IMAGE_FORMAT) problem = "unknown image format version";
  else if (load<u16>(header, ImageHeader.HeaderSize) != ImageHeader.Size) problem = "unexpected header size";
  else if (load<u32>(header, ImageHeader.Reserved44) != 0 || (load<u8>(header, ImageHeader.Major) & 0x80) != 0) problem = "reserved header field not zero";
  else if (load<u32>(header, ImageHeader.BoardId) != boardId) problem = "built for another board (see the image's board ID)";
  else if (version < versionKey(FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH)) problem = "older than the running firmware (downgrade)";
  else if (memory.compare(digest, header + ImageHeader.Sha256, SHA256_SIZE) != 0) problem = "payload SHA-256 does not match the header (corrupt image)";
  else if (signatureBlank) problem = "the image is not signed";
  if (problem != 0) {
    uart.text("update: refused: ");
    uart.line(problem);
    log.warn();
    log.str("update: refused: ");
    log.str(problem);
    log.end();
    refused();
    return;
  }
  count(Counter.UpdatesVerified);
  uart.text("update: image ");
  versionText(header);
  uart.text(" build ");
  for (let i = 0; i < BUILD_ID_SIZE; i++) uart.hex(load<u8>(header + ImageHeader.BuildId + i), 2);
  uart.line(" checks out; rebooting into a trial");
  log.info();
  log.str("update: image checked; trial boot of slot ");
  log.dec(slot);
  log.end();
  state = State.Rebooting;
  system.tryImage(slot);
}

/** Writes the version of the image header at `at`: 0.2.0. */
export function versionText(at: usize): void {
  uart.dec(load<u8>(at, ImageHeader.Major));
  uart.put(0x2e);
  uart.dec(load<u8>(at, ImageHeader.Minor));
  uart.put(0x2e);
  uart.dec(load<u16>(at, ImageHeader.Patch));
}
