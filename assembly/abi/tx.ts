// Command stream: typed emitters for every command, buffered and written to fd 1.
// The only code that lays out command bytes; firmware logic calls these functions.

import {
  HEADER_SIZE, Header, Command, MAILBOX_VERSION, Counter,
  HelloBody, SyncAckBody, TimerArmBody, TimerDisarmBody, ErrorBody, CountersBody, RegWriteBody, RegReadBody, FrameTxBody, TlpTxBody,
  UartTxBody, FlashEraseBody, FlashProgramBody, FlashReadBody, HashBody, RetainBody,
} from "../../board/map/mailbox";
import { writeAll, FD_COMMANDS } from "./wasi";
import { counters, count, add } from "../counters";

const CAPACITY: i32 = 4096;
const buffer = memory.data(CAPACITY);
let filled: i32 = 0;

/** Starts a command with a body of `length` bytes; returns where the body goes. */
function begin(type: i32, length: i32): usize {
  if (filled + HEADER_SIZE + length > CAPACITY) flush();
  const head = buffer + filled;
  store<u16>(head, length as u16, Header.BodyLength);
  store<u8>(head, type as u8, Header.Type);
  store<u8>(head, 0, Header.Flags);
  memory.fill(head + HEADER_SIZE, 0, length);
  filled += HEADER_SIZE + length;
  count(Counter.CommandsOut);
  add(Counter.BytesOut, HEADER_SIZE + length);
  return head + HEADER_SIZE;
}

/** Writes buffered commands to fd 1. */
export function flush(): void {
  if (filled == 0) return;
  writeAll(FD_COMMANDS, buffer, filled);
  filled = 0;
}

export function hello(status: i32, major: i32, minor: i32, patch: i32): void {
  const body = begin(Command.Hello, HelloBody.Size);
  store<u16>(body, MAILBOX_VERSION as u16, HelloBody.MailboxVersion);
  store<u8>(body, status as u8, HelloBody.Status);
  store<u8>(body, major as u8, HelloBody.FirmwareMajor);
  store<u8>(body, minor as u8, HelloBody.FirmwareMinor);
  store<u8>(body, patch as u8, HelloBody.FirmwarePatch);
}

export function syncAck(seq: u32): void {
  const body = begin(Command.SyncAck, SyncAckBody.Size);
  store<u32>(body, seq, SyncAckBody.Seq);
}

export function timerArm(channel: i32, deadline: u64): void {
  const body = begin(Command.TimerArm, TimerArmBody.Size);
  store<u8>(body, channel as u8, TimerArmBody.Channel);
  store<u64>(body, deadline, TimerArmBody.Deadline);
}

export function timerDisarm(channel: i32): void {
  const body = begin(Command.TimerDisarm, TimerDisarmBody.Size);
  store<u8>(body, channel as u8, TimerDisarmBody.Channel);
}

export function error(code: i32, type: i32, length: i32, offset: u32, detail: u32): void {
  const body = begin(Command.Error, ErrorBody.Size);
  store<u8>(body, code as u8, ErrorBody.Code);
  store<u8>(body, type as u8, ErrorBody.MessageType);
  store<u16>(body, length as u16, ErrorBody.BodyLength);
  store<u32>(body, offset, ErrorBody.StreamOffset);
  store<u32>(body, detail, ErrorBody.Detail);
}

export function countersReport(): void {
  const body = begin(Command.Counters, CountersBody.Values + 4 * Counter.Count);
  store<u16>(body, Counter.Count as u16, CountersBody.Count);
  // The report counts itself: begin() has already added it to CommandsOut and BytesOut.
  memory.copy(body + CountersBody.Values, counters, 4 * Counter.Count);
}

export function regWrite(address: u32, value: u32): void {
  const body = begin(Command.RegWrite, RegWriteBody.Size);
  store<u32>(body, address, RegWriteBody.Address);
  store<u32>(body, value, RegWriteBody.Value);
}

export function regRead(address: u32): void {
  const body = begin(Command.RegRead, RegReadBody.Size);
  store<u32>(body, address, RegReadBody.Address);
}

/** Sends the `length` bytes at `frame` (an Ethernet frame without FCS) through the MAC. */
export function frameTx(frame: usize, length: i32): void {
  const body = begin(Command.FrameTx, length);
  memory.copy(body + FrameTxBody.Frame, frame, length);
}

/**
 * Sends the TLP of `length` bytes at `tlp` (a completion, or a one-DW memory write for an MSI)
 * up to the server through the switch router; assembly/pcie/tlp.ts builds them.
 */
export function tlpTx(tlp: usize, length: i32): void {
  const body = begin(Command.TlpTx, length);
  memory.copy(body + TlpTxBody.Tlp, tlp, length);
}

/** Sends `length` bytes (1..UartTxBody.MaxSize) at `bytes` out of the UART. */
export function uartTx(bytes: usize, length: i32): void {
  const body = begin(Command.UartTx, length);
  memory.copy(body + UartTxBody.Bytes, bytes, length);
}

export function flashErase(address: u32, sectors: i32): void {
  const body = begin(Command.FlashErase, FlashEraseBody.Size);
  store<u32>(body, address, FlashEraseBody.Address);
  store<u16>(body, sectors as u16, FlashEraseBody.Sectors);
}

/** Programs `length` bytes at `data` into flash at `address`, inside one page. */
export function flashProgram(address: u32, data: usize, length: i32): void {
  const body = begin(Command.FlashProgram, FlashProgramBody.Data + length);
  store<u32>(body, address, FlashProgramBody.Address);
  memory.copy(body + FlashProgramBody.Data, data, length);
}

export function flashRead(address: u32, length: i32): void {
  const body = begin(Command.FlashRead, FlashReadBody.Size);
  store<u32>(body, address, FlashReadBody.Address);
  store<u16>(body, length as u16, FlashReadBody.Length);
}

/** HASH `op` on engine context `context`, carrying `length` bytes at `data` (none for Start and Finish). */
export function hash(context: i32, op: i32, tag: u32, data: usize, length: i32): void {
  const body = begin(Command.Hash, HashBody.Data + length);
  store<u8>(body, context as u8, HashBody.Context);
  store<u8>(body, op as u8, HashBody.Op);
  store<u16>(body, tag as u16, HashBody.Tag);
  memory.copy(body + HashBody.Data, data, length);
}

/** RETAIN: `length` bytes at `data` into the retained RAM at `offset`. */
export function retain(offset: i32, data: usize, length: i32): void {
  const body = begin(Command.Retain, RetainBody.Data + length);
  store<u16>(body, offset as u16, RetainBody.Offset);
  memory.copy(body + RetainBody.Data, data, length);
}

/** Start of the buffered, not yet flushed, commands (for inspection in unit tests). */
export function buffered(): usize {
  return buffer;
}

export function bufferedLength(): i32 {
  return filled;
}

/** Drops buffered commands without writing them (unit tests). */
export function discard(): void {
  filled = 0;
}
