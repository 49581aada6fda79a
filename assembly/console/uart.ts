// Console output: bytes for the card's UART, buffered and sent as UART_TX commands at
// the end of each batch (or when the buffer fills). Lines end with CR LF, as a terminal
// expects from a serial line.

import { UartTxBody } from "../../board/map/mailbox";
import { uartTx } from "../abi/tx";
import { decimal, decimalDigits, hexDigit } from "../digits";
import { Text, textByte, textLength } from "../text";

const CAPACITY: i32 = 2048;
const out = memory.data(CAPACITY);
let filled: i32 = 0;

export function put(c: i32): void {
  if (filled == CAPACITY) flush();
  store<u8>(out + filled++, c as u8);
}

/** Printable ASCII text; other bytes become '?'. */
export function text(s: Text): void {
  for (let i = 0, n = textLength(s); i < n; i++) {
    const c = textByte(s, i);
    put(c >= 0x20 && c < 0x7f ? c : 0x3f);
  }
}

export function bytes(at: usize, length: i32): void {
  for (let i = 0; i < length; i++) put(load<u8>(at + i));
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
  let n = decimal(value);
  while (n > 0) put(load<u8>(decimalDigits + --n));
}

/** `digits` lowercase hex digits, no prefix. */
export function hex(value: u32, digits: i32): void {
  for (let shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
    const nibble = ((value >> shift) & 0xf) as i32;
    put(hexDigit(nibble));
  }
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
