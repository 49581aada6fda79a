// Digits of numbers, for the log and the console.

/** Where decimal() leaves the digits: least significant first. */
export const decimalDigits = memory.data(20);

/** Writes the decimal digits of `value` to decimalDigits, least significant first; returns how many (at least 1). */
export function decimal(value: u64): i32 {
  let n = 0;
  do {
    store<u8>(decimalDigits + n++, (0x30 + (value % 10)) as u8);
    value /= 10;
  } while (value != 0);
  return n;
}

/** The lowercase hex digit (ASCII) of `nibble`, 0..15. */
export function hexDigit(nibble: i32): i32 {
  return nibble < 10 ? 0x30 + nibble : 0x57 + nibble;
}
