// Event stream framing: turns the byte stream on fd 0 into whole messages, however the
// runtime splits it across reads. Validation beyond the header is the dispatcher's job.

import { HEADER_SIZE, MAX_BODY, Header, MailboxError, Counter, BODY_LIMITS, bodyLimits } from "../../board/map/mailbox";
import { add } from "../counters";

const CAPACITY: i32 = 4096;
const buffer = memory.data(CAPACITY);

let filled: i32 = 0; //        bytes held in `buffer`
let cursor: i32 = 0; //        start of the first unparsed byte
let skipping: i32 = 0; //      body bytes still to discard after an oversize header
let streamOffset: u32 = 0; //  offset in the stream of `buffer[cursor]`

// The current message, valid after next() returned true.
export let msgType: i32 = 0;
export let msgBody: usize = 0;
export let msgLength: i32 = 0;
export let msgOffset: u32 = 0;
// Set when next() returned true for a message that failed framing checks: its body is
// not available and `msgError` says why.
export let msgError: i32 = 0;

export function reset(): void {
  filled = 0;
  cursor = 0;
  skipping = 0;
  streamOffset = 0;
  msgType = 0;
  msgBody = 0;
  msgLength = 0;
  msgOffset = 0;
  msgError = 0;
}

/** Room for the next read, compacting the buffer first. */
export function freeSpace(): i32 {
  compact();
  return CAPACITY - filled;
}

export function writePointer(): usize {
  return buffer + filled;
}

/** Accepts `count` bytes just read at writePointer(). */
export function commit(count: i32): void {
  filled += count;
}

/** Bytes held that do not yet form a whole message (non-zero at end of input means truncation). */
export function pending(): i32 {
  return filled - cursor + skipping;
}

/**
 * Makes the msg* fields describe the incomplete message at the end of the input: its
 * offset, and its type and declared length if its header has arrived (else 0). During an
 * oversize skip they keep describing the oversize message.
 */
export function describePending(): void {
  if (skipping > 0) return;
  const whole = filled - cursor >= HEADER_SIZE;
  msgOffset = streamOffset;
  msgType = whole ? load<u8>(buffer + cursor, Header.Type) as i32 : 0;
  msgLength = whole ? load<u16>(buffer + cursor, Header.BodyLength) as i32 : 0;
  msgBody = 0;
  msgError = MailboxError.Truncated;
}

function compact(): void {
  if (cursor == 0) return;
  const rest = filled - cursor;
  if (rest > 0) memory.copy(buffer, buffer + cursor, rest);
  filled = rest;
  cursor = 0;
}

// Bytes are counted as the parser consumes them, not as they are read, so the BytesIn
// counter does not depend on how the runtime splits the stream into reads.
function advance(count: i32): void {
  cursor += count;
  streamOffset += count as u32;
  add(Counter.BytesIn, count);
}

/**
 * Frames the next message. Returns false when no whole message is buffered.
 * On true, either msgError is 0 and the body is at msgBody, or msgError names a
 * framing fault (unknown type, bad length, oversize, reserved flags) and the
 * message has already been skipped.
 */
export function next(): bool {
  if (skipping > 0) {
    const drop = min(skipping, filled - cursor);
    advance(drop);
    skipping -= drop;
    if (skipping > 0) return false;
  }
  if (filled - cursor < HEADER_SIZE) return false;
  const head = buffer + cursor;
  const length = load<u16>(head, Header.BodyLength) as i32;
  msgType = load<u8>(head, Header.Type) as i32;
  msgLength = length;
  msgOffset = streamOffset;
  msgBody = 0;
  if (length > MAX_BODY) {
    msgError = MailboxError.Oversize;
    advance(HEADER_SIZE);
    skipping = length;
    const drop = min(skipping, filled - cursor);
    advance(drop);
    skipping -= drop;
    return true;
  }
  if (filled - cursor < HEADER_SIZE + length) return false;
  msgBody = head + HEADER_SIZE;
  advance(HEADER_SIZE + length);
  if (load<u8>(head, Header.Flags) != 0) {
    msgError = MailboxError.Reserved;
  } else {
    // isEvent() and the length check, minBody() and maxBody() without their range checks: this runs for every event.
    const at = msgType < 0x80 ? bodyLimits(msgType) : -1;
    if (at < 0) msgError = MailboxError.UnknownType;
    else if (length < unchecked(BODY_LIMITS[at]) || length > unchecked(BODY_LIMITS[at + 1])) msgError = MailboxError.BadLength;
    else msgError = 0;
  }
  return true;
}
