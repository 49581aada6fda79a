// Digits of numbers, for the log and the console.

/** Where decimal() leaves the digits: the last `n` of its 20 bytes, most significant first. */
export const decimalDigits = memory.data(20);

/** Writes the decimal digits of `value` to the end of decimalDigits; returns how many (at least 1). */
export function decimal(value: u64): i32 {
  let n = 0;
  do {
    store<u8>(decimalDigits + 19 - n++, (0x30 + (value % 10)) as u8);
    value /= 10;
  } while (value != 0);
  return n;
}

const hexScratch = memory.data(8);
const HEX = memory.data<u8>([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66]);

/** Writes the `digits` (1..8) lowercase hex digits of `value` to a scratch buffer; returns it. */
export function hexDigits(value: u32, digits: i32): usize {
  for (let i = digits - 1; i >= 0; i--) {
    store<u8>(hexScratch + i, load<u8>(HEX + (value & 0xf)));
    value >>= 4;
  }
  return hexScratch;
}
