// Human-readable log on fd 2, one line per record:
//   [    1.000000] I boot: role host serial 0x00000001
// The timestamp is virtual time in seconds with microseconds; the letter is the level.
// Records above the configured level cost one comparison and write nothing.

import { LogLevel } from "../board/map/mailbox";
import { writeAll, FD_LOG } from "./abi/wasi";
import { now } from "./clock";
import { decimal, decimalDigits, hexDigits } from "./digits";
import { Text, textLength } from "./text";

const CAPACITY: i32 = 256;
const line = memory.data(CAPACITY);
/** The most recent records, for the console's `log`: a ring of bytes, whole lines. */
const HISTORY: i32 = 2048;
const history = memory.data(HISTORY);
let historyEnd: i32 = 0; // next byte to write
let historyFull = false;
let length: i32 = 0;
let active = false;
let threshold: i32 = LogLevel.Info;

export function setLevel(level: i32): void {
  threshold = level;
}

export function level(): i32 {
  return threshold;
}

function put(c: i32): void {
  // Keep the last byte for the newline; an over-long record is cut, never overflows.
  if (length < CAPACITY - 1) store<u8>(line + length++, c as u8);
}

/** Appends the `n` bytes at `at`, as many as fit. */
function append(at: usize, n: i32): void {
  n = min(n, CAPACITY - 1 - length);
  memory.copy(line + length, at, n);
  length += n;
}

/** Starts a record; the appenders below write nothing unless it passes the level. */
export function begin(lvl: i32): void {
  active = lvl <= threshold;
  if (!active) return;
  length = 0;
  put(0x5b); // [
  const micros = now / 1000;
  const seconds = micros / 1000000;
  padded(seconds, 5, 0x20);
  put(0x2e); // .
  padded(micros % 1000000, 6, 0x30);
  put(0x5d); // ]
  put(0x20);
  put(lvl == LogLevel.Error ? 0x45 : lvl == LogLevel.Warn ? 0x57 : lvl == LogLevel.Info ? 0x49 : 0x44);
  put(0x20);
}

export function error(): void { begin(LogLevel.Error); }
export function warn(): void { begin(LogLevel.Warn); }
export function info(): void { begin(LogLevel.Info); }
export function debug(): void { begin(LogLevel.Debug); }

function padded(value: u64, width: i32, fill: i32): void {
  const n = decimal(value);
  for (let i = n; i < width; i++) put(fill);
  append(decimalDigits + 20 - n, n);
}

/** Appends a text (printable ASCII: the build makes sure of it), cut where the record is full. */
export function str(text: Text): void {
  if (active) append(text + 1, textLength(text));
}

export function dec(value: u64): void {
  if (active) padded(value, 1, 0x30);
}

export function hex(value: u32, digits: i32): void {
  if (!active) return;
  put(0x30);
  put(0x78);
  digitsOf(value, digits);
}

function digitsOf(value: u32, digits: i32): void {
  append(hexDigits(value, digits), digits);
}

/** Appends the 6-byte Ethernet address at `at` as aa:bb:cc:dd:ee:ff. */
export function mac(at: usize): void {
  if (!active) return;
  for (let i = 0; i < 6; i++) {
    if (i > 0) put(0x3a);
    digitsOf(load<u8>(at + i), 2);
  }
}

/** Ends the record and writes it. */
export function end(): void {
  if (!active) return;
  store<u8>(line + length++, 0x0a);
  writeAll(FD_LOG, line, length);
  remember();
  active = false;
}

function remember(): void {
  const first = min(length, HISTORY - historyEnd);
  memory.copy(history + historyEnd, line, first);
  memory.copy(history, line + first, length - first);
  historyEnd += first;
  if (historyEnd == HISTORY) {
    historyEnd = length - first;
    historyFull = true;
  }
}

/** Hands the remembered records, oldest first, to `sink` byte by byte; a line cut by the ring's wrap is skipped. */
export function replay(sink: (c: i32) => void): void {
  let at = historyFull ? historyEnd : 0;
  let skipping = historyFull;
  for (let n = historyFull ? HISTORY : historyEnd; n > 0; n--) {
    const c = load<u8>(history + at) as i32;
    if (++at == HISTORY) at = 0;
    if (skipping) {
      skipping = c != 0x0a;
      continue;
    }
    sink(c);
  }
}

export function clearHistory(): void {
  historyEnd = 0;
  historyFull = false;
}
