// The firmware update over the console (assembly/update/update.ts), driven through the
// mailbox as the board drives it: BOOT, the running image's header read, `update` typed on
// the console, then an XMODEM sender's bytes as UART_RX events. The spec plays the sender
// and the flash controller: it keeps the card's flash in an array, applies each FLASH_ERASE
// and FLASH_PROGRAM the firmware sends (NOR: erase sets 0xff, programming clears bits),
// answers each with FLASH_DONE, and serves FLASH_READ from it. Images are built here (header
// per board/map/image.ts, SHA-256 with support/sha256.ts, a non-blank signature),
// blocks with the CRC-16/XMODEM or the checksum computed here.

import * as firmware from "../../assembly/firmware";
import * as tx from "../../assembly/abi/tx";
import * as counters from "../../assembly/counters";
import { sha256 } from "./support/sha256";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../../assembly/version";
import {
  Command, Counter, BootBody, BootFlag, FlashOp, FlashStatus, FlashEraseBody, FlashProgramBody, FlashReadBody, FLASH_READ_MAX,
} from "../../board/map/mailbox";
import { CardReg, BootCommand, BOARD_ID } from "../../board/map/registers";
import { FLASH_SIZE, SECTOR_SIZE, PAGE_SIZE, SLOT_SIZE, IMAGE_MAX, slotBase } from "../../board/map/flash";
import {
  IMAGE_MAGIC, IMAGE_FORMAT, ImageHeader, SIGNATURE_SIZE, SHA256_SIZE, BUILD_ID_SIZE, KEY_ID_SIZE, imageSize,
} from "../../board/map/image";
import {
  Sent, deliver, sent, bootEvent, timeEvent, syncEvent, timerFiredEvent, uartRxEvents, ascii, flashDoneEvent,
  regWritesTo, expectText, set8,
} from "./helpers";
import { boardAnswers } from "./support/engine";

const SECOND: u64 = 1_000_000_000;
const BOOT_TIME: u64 = 5 * SECOND;

const SOH: u8 = 0x01;
const STX: u8 = 0x02;
const EOT: u8 = 0x04;
const CAN: u8 = 0x18;
const PAD: u8 = 0x1a;


// ---- The board: flash controller and UART ------------------------------------------------

let flash = new Array<u8>(FLASH_SIZE);
let target = slotBase(1); // the inactive slot: the only one the firmware may erase and program
let seq: u32 = 0;
let now: u64 = BOOT_TIME;
let uartOut = new Array<u8>(); // what the card sent on its UART, not yet taken
let bootControl = new Array<u32>(); // BootControl writes
let erases = 0;
let programs = 0; // FLASH_PROGRAM commands
let programmedBytes = 0;
let reads = 0;
let faultOp: i32 = 0; // the next command of this FlashOp fails with faultStatus
let faultStatus: i32 = FlashStatus.Ok;
let holding = false; // FLASH_DONE answers wait in `held` until release()
let held = new Array<u8>();

function fresh(): void {
  firmware.reset();
  tx.discard();
  flash = new Array<u8>(FLASH_SIZE);
  flash.fill(0xff);
  const running = buildImage(600, FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH);
  for (let i = 0; i < running.length; i++) flash[slotBase(0) + i] = running[i];
  target = slotBase(1);
  seq = 0;
  now = BOOT_TIME;
  uartOut = new Array<u8>();
  bootControl = new Array<u32>();
  erases = 0;
  programs = 0;
  programmedBytes = 0;
  reads = 0;
  faultOp = 0;
  faultStatus = FlashStatus.Ok;
  holding = false;
  held = new Array<u8>();
}

/**
 * Runs a batch at `now` with `events`, then the batches that answer the flash commands it
 * sent, until the firmware waits for something else. Collects the UART bytes and the
 * BootControl writes; the firmware must not report any ERROR.
 */
function run(events: u8[]): void {
  let input = events;
  do {
    tx.discard();
    deliver(timeEvent(now).concat(input).concat(syncEvent(seq++)));
    firmware.handleAll();
    const out = sent();
    input = boardAnswers(0);
    for (let i = 0; i < out.length; i++) {
      const answer = perform(out[i]);
      if (holding) held = held.concat(answer);
      else input = input.concat(answer);
    }
  } while (input.length > 0);
}

/** What the board does with one command; the FLASH_DONE it answers, if any. */
function perform(command: Sent): u8[] {
  const type = command.type;
  expect(type).not.toBe(Command.Error, "no ERROR");
  if (type == Command.UartTx) {
    for (let i = 0; i < command.length; i++) uartOut.push(command.u8(i) as u8);
  } else if (type == Command.RegWrite) {
    const writes = regWritesTo([command], CardReg.BootControl);
    if (writes.length > 0) bootControl.push(writes[0]);
  } else if (type == Command.FlashErase) {
    const address = command.u32(FlashEraseBody.Address) as i32;
    const sectors = command.u16(FlashEraseBody.Sectors);
    if (faulted(FlashOp.Erase)) return flashDoneEvent(FlashOp.Erase, faultStatus, address);
    expect(address % SECTOR_SIZE).toBe(0, "erase sector-aligned");
    expect(address >= target && address + sectors * SECTOR_SIZE <= target + SLOT_SIZE).toBe(true, "erase inside the inactive slot");
    for (let i = 0; i < sectors * SECTOR_SIZE; i++) flash[address + i] = 0xff;
    erases++;
    return flashDoneEvent(FlashOp.Erase, FlashStatus.Ok, address);
  } else if (type == Command.FlashProgram) {
    const address = command.u32(FlashProgramBody.Address) as i32;
    const length = command.length - FlashProgramBody.Data;
    if (faulted(FlashOp.Program)) return flashDoneEvent(FlashOp.Program, faultStatus, address);
    expect(length).toBeGreaterThan(0, "program length");
    expect(address / PAGE_SIZE).toBe((address + length - 1) / PAGE_SIZE, "program inside one page");
    expect(address >= target && address + length <= target + SLOT_SIZE).toBe(true, "program inside the inactive slot");
    for (let i = 0; i < length; i++) flash[address + i] &= command.u8(FlashProgramBody.Data + i) as u8;
    programs++;
    programmedBytes += length;
    return flashDoneEvent(FlashOp.Program, FlashStatus.Ok, address);
  } else if (type == Command.FlashRead) {
    const address = command.u32(FlashReadBody.Address) as i32;
    const length = command.u16(FlashReadBody.Length);
    if (faulted(FlashOp.Read)) return flashDoneEvent(FlashOp.Read, faultStatus, address);
    expect(length).toBeGreaterThan(0, "read length");
    expect(length).toBeLessThanOrEqual(FLASH_READ_MAX, "read length");
    reads++;
    return flashDoneEvent(FlashOp.Read, FlashStatus.Ok, address, flash.slice(address, address + length));
  }
  return new Array<u8>();
}

function faulted(op: i32): bool {
  if (faultOp != op) return false;
  faultOp = 0;
  return true;
}

/** Answers the flash commands held since `holding` was set, and goes on answering. */
function release(): void {
  holding = false;
  const answers = held;
  held = new Array<u8>();
  run(answers);
}

/** Time passes by `ns` and the hardware timer fires. */
function wait(ns: u64): void {
  now += ns;
  run(timerFiredEvent(0));
}

/** Bytes arrive on the card's UART. */
function receive(bytes: u8[]): void {
  run(uartRxEvents(bytes));
}

/** EOT, answered with NAK (it could be line noise), then EOT again, which ends the transfer. */
function endTransfer(): void {
  receive([EOT]);
  expect(take()).toBe("{NAK}", "the first EOT is answered with NAK");
  receive([EOT]);
}

/** What the card sent on its UART since the last call, readable: {ACK} {NAK} {CAN} {CR} {LF}, {hh} for other control bytes. */
function take(): string {
  let out = "";
  for (let i = 0; i < uartOut.length; i++) {
    const c = uartOut[i] as i32;
    if (c == 0x06) out += "{ACK}";
    else if (c == 0x15) out += "{NAK}";
    else if (c == 0x18) out += "{CAN}";
    else if (c == 0x0d) out += "{CR}";
    else if (c == 0x0a) out += "{LF}";
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += "{" + c.toString(16) + "}";
  }
  uartOut = new Array<u8>();
  return out;
}

/** BOOT of the image in slot 0, the first SYNC, and the running image's header read; the banner is dropped. */
function boot(): void {
  run(bootEvent());
  expect(firmware.isBooted()).toBe(true, "booted");
  expect(reads).toBe(1, "the running image's header read");
  take();
}

const READY = "update: ready for xmodem (1k or 128-byte blocks, crc-16 or checksum), at most " + IMAGE_MAX.toString() + " bytes; ^X^X cancels{CR}{LF}";

/** Boots, types `update`, and lets the erase finish: the receiver has sent its first 'C'. */
function startUpdate(): void {
  boot();
  receive(ascii("update\r"));
  expect(take()).toBe("update{CR}{LF}update: erasing slot 1 (64 KiB){CR}{LF}" + READY + "C");
  expect(erases).toBe(1, "one erase");
}

// ---- Images and XMODEM blocks ----------------------------------------------------------------

function put(bytes: u8[], at: i32, value: u32, size: i32): void {
  for (let i = 0; i < size; i++) bytes[at + i] = (value >> (8 * i)) as u8;
}

/**
 * An image for BOARD_ID at version major.minor.patch with `payloadLength` bytes of payload
 * (every byte value, XMODEM's control bytes included), its SHA-256 and build ID, and a
 * non-blank signature.
 */
function buildImage(payloadLength: i32, major: i32, minor: i32, patch: i32): u8[] {
  const bytes = new Array<u8>(imageSize(payloadLength));
  put(bytes, ImageHeader.Magic, IMAGE_MAGIC, 4);
  put(bytes, ImageHeader.Format, IMAGE_FORMAT, 2);
  put(bytes, ImageHeader.HeaderSize, ImageHeader.Size, 2);
  put(bytes, ImageHeader.BoardId, BOARD_ID, 4);
  put(bytes, ImageHeader.Major, major, 1);
  put(bytes, ImageHeader.Minor, minor, 1);
  put(bytes, ImageHeader.Patch, patch, 2);
  put(bytes, ImageHeader.PayloadLength, payloadLength, 4);
  for (let i = 0; i < KEY_ID_SIZE; i++) bytes[ImageHeader.KeyId + i] = (0x4b + i) as u8;
  const payload = new Uint8Array(payloadLength);
  for (let i = 0; i < payloadLength; i++) {
    payload[i] = ((i * 7 + 3) & 0xff) as u8;
    bytes[ImageHeader.Size + i] = payload[i];
  }
  const digest = new Uint8Array(SHA256_SIZE);
  sha256(payload.dataStart, payloadLength, digest.dataStart);
  for (let i = 0; i < SHA256_SIZE; i++) bytes[ImageHeader.Sha256 + i] = digest[i];
  for (let i = 0; i < BUILD_ID_SIZE; i++) bytes[ImageHeader.BuildId + i] = digest[i];
  for (let i = 0; i < SIGNATURE_SIZE; i++) bytes[ImageHeader.Size + payloadLength + i] = (0x5a ^ i) as u8;
  return bytes;
}

/** 1124 bytes: one 1K block and a 100-byte tail in a 128-byte block. */
const PAYLOAD: i32 = 1024 + 100 - ImageHeader.Size - SIGNATURE_SIZE;
const NEW_MINOR = FIRMWARE_MINOR + 1;

function newImage(): u8[] {
  return buildImage(PAYLOAD, FIRMWARE_MAJOR, NEW_MINOR, 0);
}

/** CRC-16/XMODEM of `length` bytes of `bytes` from `at` (polynomial 0x1021, initial value 0). */
function crc16(bytes: u8[], at: i32, length: i32): u32 {
  let crc: u32 = 0;
  for (let i = 0; i < length; i++) {
    crc ^= (bytes[at + i] as u32) << 8;
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) != 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** Block `number` of `size` bytes (128 or 1024) carrying `image` from `offset`, padded with PAD; CRC-16 or checksum. */
function block(number: i32, image: u8[], offset: i32, size: i32, crc: bool = true): u8[] {
  const out = new Array<u8>(3 + size + (crc ? 2 : 1));
  out[0] = size == 1024 ? STX : SOH;
  out[1] = (number & 0xff) as u8;
  out[2] = (0xff - (number & 0xff)) as u8;
  for (let i = 0; i < size; i++) out[3 + i] = offset + i < image.length ? image[offset + i] : PAD;
  if (crc) {
    const value = crc16(out, 3, size);
    out[3 + size] = (value >> 8) as u8;
    out[4 + size] = value as u8;
  } else {
    let sum: u32 = 0;
    for (let i = 0; i < size; i++) sum += out[3 + i];
    out[3 + size] = sum as u8;
  }
  return out;
}

/** Sends `image` in 1K blocks and a 128-byte block for a tail of 128 bytes or less (or all in 128-byte blocks); each is ACKed. */
function sendAll(image: u8[], big: bool = true, crc: bool = true): i32 {
  let number = 1;
  for (let offset = 0; offset < image.length; number++) {
    const size = big && image.length - offset > 128 ? 1024 : 128;
    receive(block(number, image, offset, size, crc));
    expect(take()).toBe("{ACK}", "block " + number.toString());
    offset += size;
  }
  return number - 1;
}

/** The build ID of `image` as the console prints it. */
function buildIdText(image: u8[]): string {
  let out = "";
  for (let i = 0; i < BUILD_ID_SIZE; i++) {
    const b = image[ImageHeader.BuildId + i] as u32;
    out += (b < 16 ? "0" : "") + b.toString(16);
  }
  return out;
}

function accepted(image: u8[]): string {
  return "{ACK}{CR}{LF}update: received " + image.length.toString() + " bytes{CR}{LF}update: image "
    + image[ImageHeader.Major].toString() + "." + image[ImageHeader.Minor].toString() + "." + image[ImageHeader.Patch].toString()
    + " build " + buildIdText(image) + " checks out; rebooting into a trial{CR}{LF}";
}

function refused(image: u8[], problem: string): string {
  return "{ACK}{CR}{LF}update: received " + image.length.toString() + " bytes{CR}{LF}update: refused: " + problem + "{CR}{LF}iov> ";
}

function cancelled(reason: string): string {
  return "{CR}{LF}update: cancelled: " + reason + "{CR}{LF}iov> ";
}

/** The inactive slot holds `image`, and nothing after it was written. */
function expectStored(image: u8[]): void {
  for (let i = 0; i < image.length; i++) {
    if (flash[target + i] != image[i]) expect(flash[target + i]).toBe(image[i], "byte " + i.toString());
  }
  for (let i = image.length; i < SLOT_SIZE; i++) {
    if (flash[target + i] != 0xff) expect(flash[target + i]).toBe(0xff, "byte " + i.toString() + " after the image");
  }
}

function expectCounters(blocks: u32, errors: u32, verified: u32, refusedUpdates: u32, flashErrors: u32): void {
  expect(counters.get(Counter.XmodemBlocks)).toBe(blocks, "XmodemBlocks");
  expect(counters.get(Counter.XmodemErrors)).toBe(errors, "XmodemErrors");
  expect(counters.get(Counter.UpdatesVerified)).toBe(verified, "UpdatesVerified");
  expect(counters.get(Counter.UpdatesRefused)).toBe(refusedUpdates, "UpdatesRefused");
  expect(counters.get(Counter.FlashErrors)).toBe(flashErrors, "FlashErrors");
}

/** Sends `image` whole and expects it refused for `problem`, with nothing asked of the boot ROM. */
function expectRefused(image: u8[], problem: string): void {
  fresh();
  startUpdate();
  sendAll(image);
  endTransfer();
  expect(take()).toBe(refused(image, problem));
  expect(bootControl.length).toBe(0, "no trial");
  expectCounters(2, 0, 0, 1, 0);
}

const TRIAL_OF_SLOT_1: u32 = BootCommand.Trial | (1 << 8);

// ---- Specs ---------------------------------------------------------------------------------

describe("update: a good image", () => {
  beforeEach(fresh);

  it("erases the whole inactive slot before the transfer", () => {
    for (let i = 0; i < SLOT_SIZE; i++) flash[target + i] = 0; // an older image, its trailer flags set
    startUpdate();
    for (let i = 0; i < SLOT_SIZE; i++) {
      if (flash[target + i] != 0xff) expect(flash[target + i]).toBe(0xff, "byte " + i.toString());
    }
  });

  it("receives a 1K block and a 128-byte tail, checks the image and asks for a trial of slot 1", () => {
    const image = newImage();
    startUpdate();
    expect(sendAll(image)).toBe(2, "two blocks");
    endTransfer();
    expect(take()).toBe(accepted(image));
    expect(bootControl).toStrictEqual([TRIAL_OF_SLOT_1]);
    expectCounters(2, 0, 1, 0, 0);
  });

  it("writes only the image's bytes, not the padding of its last block", () => {
    const image = newImage();
    startUpdate();
    sendAll(image);
    endTransfer();
    expectStored(image);
    expect(programmedBytes).toBe(image.length);
  });

  it("programs a block in pieces that each stay inside one flash page", () => {
    // A 128-byte block first puts the next 1K block across page boundaries.
    const image = buildImage(2048, FIRMWARE_MAJOR, NEW_MINOR, 0);
    startUpdate();
    receive(block(1, image, 0, 128));
    expect(take()).toBe("{ACK}");
    expect(programs).toBe(1, "one page piece for the first 128 bytes");
    receive(block(2, image, 128, 1024));
    expect(take()).toBe("{ACK}");
    expect(programs).toBe(1 + 5, "128 + 3 x 256 + 128 bytes");
    receive(block(3, image, 1152, 1024));
    expect(take()).toBe("{ACK}");
    receive(block(4, image, 2176, 128));
    expect(take()).toBe("{ACK}");
    endTransfer();
    expect(take()).toBe(accepted(image));
    expectStored(image);
  });

  it("reads the image back in FLASH_READ_MAX pieces to check it", () => {
    const image = newImage();
    startUpdate();
    sendAll(image);
    const before = reads;
    endTransfer();
    expect(reads - before).toBe((image.length + FLASH_READ_MAX - 1) / FLASH_READ_MAX);
  });

  it("numbers blocks modulo 256: block 255 is followed by block 0", () => {
    const image = buildImage(256 * 128 + 300 - ImageHeader.Size - SIGNATURE_SIZE, FIRMWARE_MAJOR, NEW_MINOR, 0);
    startUpdate();
    expect(sendAll(image, false)).toBe(259, "blocks 1..255, 0, 1, 2");
    endTransfer();
    expect(take()).toBe(accepted(image));
    expectStored(image);
    expectCounters(259, 0, 1, 0, 0);
  });

  it("accepts the largest image a slot holds", () => {
    const image = buildImage(IMAGE_MAX - ImageHeader.Size - SIGNATURE_SIZE, FIRMWARE_MAJOR, NEW_MINOR, 0);
    expect(image.length).toBe(IMAGE_MAX);
    startUpdate();
    sendAll(image);
    endTransfer();
    expect(take()).toBe(accepted(image));
    expectStored(image);
  });

  it("accepts an image of the running version", () => {
    const image = buildImage(PAYLOAD, FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH);
    startUpdate();
    sendAll(image);
    endTransfer();
    expect(take()).toBe(accepted(image));
    expect(bootControl).toStrictEqual([TRIAL_OF_SLOT_1]);
  });

  it("falls back to the checksum after three 'C' without an answer, one every 3 s", () => {
    const image = newImage();
    startUpdate();
    wait(3 * SECOND - 1);
    expect(take()).toBe("", "nothing before 3 s");
    wait(1);
    expect(take()).toBe("C");
    wait(3 * SECOND);
    expect(take()).toBe("C");
    wait(3 * SECOND);
    expect(take()).toBe("{NAK}", "then NAK: the checksum");
    expect(sendAll(image, false, false)).toBe(9, "9 blocks of 128 bytes");
    endTransfer();
    expect(take()).toBe(accepted(image));
    expectStored(image);
    expectCounters(9, 0, 1, 0, 0);
  });
});

describe("update: errors on the line", () => {
  beforeEach(fresh);

  it("NAKs a block with a bad CRC, then ACKs it sent again", () => {
    const image = newImage();
    startUpdate();
    const bad = block(1, image, 0, 1024);
    bad[bad.length - 1] ^= 0x01;
    receive(bad);
    expect(take()).toBe("{NAK}");
    expect(programs).toBe(0, "nothing written");
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{ACK}");
    receive(block(2, image, 1024, 128));
    expect(take()).toBe("{ACK}");
    endTransfer();
    expect(take()).toBe(accepted(image));
    expectCounters(2, 1, 1, 0, 0);
  });

  it("NAKs a block whose data does not match its CRC", () => {
    const image = newImage();
    startUpdate();
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{ACK}");
    const bad = block(2, image, 1024, 128);
    bad[3 + 50] ^= 0x80;
    receive(bad);
    expect(take()).toBe("{NAK}");
  });

  it("NAKs a block whose number and complement disagree", () => {
    const image = newImage();
    startUpdate();
    const bad = block(1, image, 0, 1024);
    bad[2] = 0;
    receive(bad);
    expect(take()).toBe("{NAK}");
    expect(counters.get(Counter.XmodemErrors)).toBe(1);
  });

  it("NAKs a block with a bad checksum in checksum mode", () => {
    const image = newImage();
    startUpdate();
    wait(3 * SECOND);
    wait(3 * SECOND);
    wait(3 * SECOND);
    take();
    const bad = block(1, image, 0, 128, false);
    bad[bad.length - 1] ^= 0x10;
    receive(bad);
    expect(take()).toBe("{NAK}");
  });

  it("ACKs a repeated block again without writing it twice", () => {
    const image = newImage();
    startUpdate();
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{ACK}");
    const written = programs;
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{ACK}", "the repeat");
    expect(programs).toBe(written, "no second write");
    receive(block(2, image, 1024, 128));
    expect(take()).toBe("{ACK}");
    endTransfer();
    expect(take()).toBe(accepted(image));
    expectStored(image);
    expectCounters(2, 0, 1, 0, 0);
  });

  it("cancels with CAN CAN CAN on a block out of sequence", () => {
    const image = newImage();
    startUpdate();
    receive(block(1, image, 0, 1024));
    take();
    receive(block(3, image, 1024, 128));
    expect(take()).toBe("{CAN}{CAN}{CAN}" + cancelled("block out of sequence"));
    expect(bootControl.length).toBe(0);
    expectCounters(1, 1, 0, 1, 0);
  });

  it("cancels when the first block is not block 1", () => {
    const image = newImage();
    startUpdate();
    receive(block(2, image, 0, 1024));
    expect(take()).toBe("{CAN}{CAN}{CAN}" + cancelled("block out of sequence"));
  });

  it("stops when the sender cancels with CAN CAN, without sending CAN itself", () => {
    const image = newImage();
    startUpdate();
    receive(block(1, image, 0, 1024));
    take();
    receive([CAN, CAN]);
    expect(take()).toBe(cancelled("the sender cancelled"));
    expectCounters(1, 1, 0, 1, 0);
  });

  it("takes a single CAN for noise", () => {
    const image = newImage();
    startUpdate();
    receive([CAN]);
    expect(take()).toBe("");
    sendAll(image);
    endTransfer();
    expect(take()).toBe(accepted(image));
  });

  it("NAKs ten bad blocks in a row and cancels at the eleventh", () => {
    const image = newImage();
    startUpdate();
    const bad = block(1, image, 0, 128);
    bad[bad.length - 1] ^= 0xff;
    for (let i = 0; i < 10; i++) {
      receive(bad);
      expect(take()).toBe("{NAK}", "bad block " + (i + 1).toString());
    }
    receive(bad);
    expect(take()).toBe("{CAN}{CAN}{CAN}" + cancelled("too many bad blocks"));
    expectCounters(0, 12, 0, 1, 0);
  });

  it("starts counting bad blocks again after a good one", () => {
    const image = buildImage(2048, FIRMWARE_MAJOR, NEW_MINOR, 0);
    startUpdate();
    const bad1 = block(1, image, 0, 1024);
    bad1[3] ^= 1;
    for (let i = 0; i < 10; i++) receive(bad1);
    expect(take()).toBe("{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}");
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{ACK}");
    const bad2 = block(2, image, 1024, 1024);
    bad2[3] ^= 1;
    for (let i = 0; i < 10; i++) receive(bad2);
    expect(take()).toBe("{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}");
    receive(block(2, image, 1024, 1024));
    expect(take()).toBe("{ACK}");
  });

  it("NAKs a block cut short once the line stays silent for 1 s", () => {
    const image = newImage();
    startUpdate();
    const first = block(1, image, 0, 1024);
    receive(first.slice(0, 500));
    wait(SECOND - 1);
    expect(take()).toBe("", "nothing before 1 s");
    wait(1);
    expect(take()).toBe("{NAK}");
    receive(first);
    expect(take()).toBe("{ACK}");
    expect(counters.get(Counter.XmodemErrors)).toBe(1);
  });

  it("NAKs when the next block does not come within 10 s", () => {
    const image = newImage();
    startUpdate();
    receive(block(1, image, 0, 1024));
    take();
    wait(10 * SECOND - 1);
    expect(take()).toBe("");
    wait(1);
    expect(take()).toBe("{NAK}");
    receive(block(2, image, 1024, 128));
    expect(take()).toBe("{ACK}");
  });

  it("gives up after 20 tries when no sender answers", () => {
    startUpdate();
    let sent = "C";
    for (let i = 1; i < 20; i++) {
      wait(3 * SECOND);
      sent += take();
    }
    expect(sent).toBe("CCC{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}{NAK}", "3 'C' and 17 NAK");
    wait(3 * SECOND);
    expect(take()).toBe(cancelled("no sender"));
    expectCounters(0, 1, 0, 1, 0);
  });

  it("refuses a transfer that ends before the image does", () => {
    const image = newImage();
    startUpdate();
    receive(block(1, image, 0, 1024));
    take();
    endTransfer();
    expect(take()).toBe("{ACK}{CR}{LF}update: refused: the transfer ended after 1024 bytes of " + image.length.toString() + "{CR}{LF}iov> ");
    expect(bootControl.length).toBe(0);
    expectCounters(1, 0, 0, 1, 0);
  });

  it("refuses an empty transfer", () => {
    startUpdate();
    endTransfer();
    expect(take()).toBe("{ACK}{CR}{LF}update: refused: the transfer ended after 0 bytes{CR}{LF}iov> ");
  });
});

describe("update: the image's checks", () => {
  beforeEach(fresh);

  it("cancels at the first block when it does not start with the IOVF magic", () => {
    const image = newImage();
    put(image, ImageHeader.Magic, 0x464c457f, 4); // "\x7fELF"
    startUpdate();
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{CAN}{CAN}{CAN}" + cancelled("not an IOV image (no IOVF magic)"));
    expect(programs).toBe(0, "nothing written");
    expectCounters(0, 1, 0, 1, 0);
  });

  it("cancels at the first block when the image does not fit a slot", () => {
    const lengths: u32[] = [IMAGE_MAX - ImageHeader.Size - SIGNATURE_SIZE + 1, IMAGE_MAX, 0x80000000, 0xffffffff];
    for (let i = 0; i < lengths.length; i++) {
      fresh();
      const image = newImage();
      put(image, ImageHeader.PayloadLength, lengths[i], 4);
      startUpdate();
      receive(block(1, image, 0, 1024));
      expect(take()).toBe("{CAN}{CAN}{CAN}" + cancelled("the image does not fit a slot"), "payload length " + lengths[i].toString());
      expect(programs).toBe(0, "nothing written");
    }
  });

  it("refuses a payload that does not match its SHA-256", () => {
    const image = newImage();
    image[ImageHeader.Size + 300] ^= 0x01;
    expectRefused(image, "payload SHA-256 does not match the header (corrupt image)");
  });

  it("refuses an image built for another board", () => {
    const image = newImage();
    put(image, ImageHeader.BoardId, BOARD_ID + 1, 4);
    expectRefused(image, "built for another board (see the image's board ID)");
  });

  it("refuses an older version (downgrade)", () => {
    const older: i32[] = [FIRMWARE_MAJOR, FIRMWARE_MINOR - 1, 0xffff];
    const image = buildImage(PAYLOAD, older[0], older[1], older[2]);
    expectRefused(image, "older than the running firmware (downgrade)");
  });

  it("refuses an unsigned image: signature all 0xff or all 0x00", () => {
    const blanks: u8[] = [0xff, 0x00];
    for (let b = 0; b < blanks.length; b++) {
      const image = newImage();
      for (let i = image.length - SIGNATURE_SIZE; i < image.length; i++) image[i] = blanks[b];
      expectRefused(image, "the image is not signed");
    }
  });

  it("refuses another format, header size or a non-zero reserved field", () => {
    const image = newImage();
    put(image, ImageHeader.Format, IMAGE_FORMAT + 1, 2);
    expectRefused(image, "unknown image format version");
    const header = newImage();
    put(header, ImageHeader.HeaderSize, ImageHeader.Size + 16, 2);
    expectRefused(header, "unexpected header size");
    const reserved = newImage();
    put(reserved, ImageHeader.Reserved44, 1, 4);
    expectRefused(reserved, "reserved header field not zero");
    const major = newImage();
    put(major, ImageHeader.Major, 0x80 | FIRMWARE_MAJOR, 1); // the top bit of Major is reserved (versions order on 7 bits)
    expectRefused(major, "reserved header field not zero");
  });
});

describe("update: flash errors", () => {
  beforeEach(fresh);

  it("cancels with CAN CAN CAN when programming a block fails", () => {
    const image = newImage();
    startUpdate();
    faultOp = FlashOp.Program;
    faultStatus = FlashStatus.Range;
    receive(block(1, image, 0, 1024));
    expect(take()).toBe("{CAN}{CAN}{CAN}{CR}{LF}update: cancelled: flash error (status 2){CR}{LF}iov> ");
    expectCounters(0, 0, 0, 1, 1);
  });

  it("cancels without CAN when the erase fails", () => {
    boot();
    faultOp = FlashOp.Erase;
    faultStatus = FlashStatus.Protected;
    receive(ascii("update\r"));
    expect(take()).toBe("update{CR}{LF}update: erasing slot 1 (64 KiB){CR}{LF}" + cancelled("flash error (status 3)"));
    expectCounters(0, 0, 0, 1, 1);
  });

  it("refuses the image when reading it back fails", () => {
    const image = newImage();
    startUpdate();
    sendAll(image);
    faultOp = FlashOp.Read;
    faultStatus = FlashStatus.Busy;
    endTransfer();
    expect(take()).toBe("{ACK}{CR}{LF}update: received " + image.length.toString() + " bytes{CR}{LF}" + cancelled("flash error (status 1)"));
    expect(bootControl.length).toBe(0);
    expectCounters(2, 0, 0, 1, 1);
  });
});

describe("update: the console", () => {
  beforeEach(fresh);

  it("refuses a second `update` while one runs", () => {
    const image = newImage();
    startUpdate();
    sendAll(image);
    holding = true; // the read-back waits
    endTransfer();
    expect(take()).toBe("{ACK}{CR}{LF}update: received " + image.length.toString() + " bytes{CR}{LF}");
    receive(ascii("update\r"));
    expect(take()).toBe("update{CR}{LF}update: one is already running{CR}{LF}iov> ");
    expect(erases).toBe(1, "no second erase");
    release();
    expectText(take(), "checks out; rebooting into a trial");
    expect(bootControl).toStrictEqual([TRIAL_OF_SLOT_1]);
  });

  it("asks to try again while the running image's header is being read", () => {
    holding = true;
    run(bootEvent());
    take();
    receive(ascii("update\r"));
    expect(take()).toBe("update{CR}{LF}update: the card is still starting; try again{CR}{LF}iov> ");
    expect(erases).toBe(0);
    release();
    receive(ascii("update\r"));
    expectText(take(), "update: erasing slot 1");
  });

  it("refuses to start while the running image is on trial: the other slot holds the only image known to work", () => {
    run(set8(set8(bootEvent(), BootBody.BootSlot, 1), BootBody.BootFlags, BootFlag.Trial));
    take();
    receive(ascii("update\r"));
    expect(take()).toBe("update{CR}{LF}update: the running image is on trial; try again once it is confirmed{CR}{LF}iov> ");
    expect(erases).toBe(0);
  });

  it("drops what is typed while the slot is being erased", () => {
    boot();
    holding = true;
    receive(ascii("update\r"));
    take();
    receive(ascii("help\r"));
    expect(take()).toBe("", "no echo, no command");
    release();
    expect(take()).toBe(READY + "C");
  });

  it("gives the console back after a cancelled transfer", () => {
    const image = newImage();
    startUpdate();
    receive(block(2, image, 0, 1024));
    take();
    receive(ascii("update\r"));
    expect(take()).toBe("update{CR}{LF}update: erasing slot 1 (64 KiB){CR}{LF}" + READY + "C");
    sendAll(image);
    endTransfer();
    expect(take()).toBe(accepted(image));
  });

  it("updates slot 0 when the card runs the image in slot 1", () => {
    const image = newImage();
    for (let i = 0; i < SLOT_SIZE; i++) flash[slotBase(1) + i] = flash[slotBase(0) + i];
    target = slotBase(0);
    run(set8(bootEvent(), BootBody.BootSlot, 1));
    take();
    receive(ascii("update\r"));
    expect(take()).toBe("update{CR}{LF}update: erasing slot 0 (64 KiB){CR}{LF}" + READY + "C");
    sendAll(image);
    endTransfer();
    expect(take()).toBe(accepted(image));
    expect(bootControl).toStrictEqual([BootCommand.Trial as u32]);
    expectStored(image);
  });
});
