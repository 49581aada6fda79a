// Replaces AssemblyScript's imported `env.abort`: the firmware imports only WASI.
// A failed internal check is a firmware bug, never an input error: log it and trap,
// which the card's watchdog turns into a reset.

import { writeAll, FD_LOG } from "./abi/wasi";
import { textByte, textLength } from "./text";

const text = memory.data(128);

export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let n = 0;
  const prefix = "panic: ";
  for (let i = 0; i < textLength(prefix); i++) store<u8>(text + n++, textByte(prefix, i) as u8);
  if (message !== null) {
    for (let i = 0; i < message.length && n < 100; i++) store<u8>(text + n++, message.charCodeAt(i) as u8);
  }
  store<u8>(text + n++, 0x0a);
  writeAll(FD_LOG, text, n);
  unreachable();
}
