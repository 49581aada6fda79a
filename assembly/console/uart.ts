// Console output: bytes for the card's UART, buffered and sent as UART_TX commands at
// the end of each batch (or when the buffer fills). Lines end with CR LF, as a terminal
// expects from a serial line.

import { UartTxBody } from "../../board/map/mailbox";
import { uartTx } from "../abi/tx";
import { decimal, decimalDigits, hexDigits } from "../digits";
import { Text, textLength } from "../text";

const CAPACITY: i32 = 2048;
const out = memory.data(CAPACITY);
let filled: i32 = 0;

export function put(c: i32): void {
  if (filled == CAPACITY) flush();
  store<u8>(out + filled++, c as u8);
}

/** A text (printable ASCII: the build makes sure of it). */
export function text(s: Text): void {
  bytes(s + 1, textLength(s));
}

export function bytes(at: usize, length: i32): void {
  while (length > 0) {
    if (filled == CAPACITY) flush();
    const n = min(length, CAPACITY - filled);
    memory.copy(out + filled, at, n);
    filled += n;
    at += n;
    length -= n;
  }
}

export function newline(): void {
  put(0x0d);
  put(0x0a);
}

export function line(s: Text): void {
  text(s);
  newline();
}

export function dec(value: u64): void {
  const n = decimal(value);
  bytes(decimalDigits + 20 - n, n);
}

/** `digits` lowercase hex digits, no prefix. */
export function hex(value: u32, digits: i32): void {
  bytes(hexDigits(value, digits), digits);
}

/** Sends what is buffered as UART_TX commands. */
export function flush(): void {
  let at = 0;
  while (at < filled) {
    const n = min(filled - at, UartTxBody.MaxSize as i32);
    uartTx(out + at, n);
    at += n;
  }
  filled = 0;
}

/** Bytes waiting to be sent (unit tests). */
export function pending(): i32 {
  return filled;
}

export function pendingAt(): usize {
  return out;
}

/** Drops what is buffered (unit tests). */
export function discard(): void {
  filled = 0;
}
