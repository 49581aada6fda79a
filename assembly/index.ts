// Entry point. The firmware is a WASI reactor: step() drains what fd 0 has and answers
// on fd 1; _start loops over step() until fd 0 closes, so a WASI command runner
// (wasm3, Node's WASI) runs it unchanged: `wasm3 firmware.wasm < events > commands`.

import * as rx from "./abi/rx";
import * as tx from "./abi/tx";
import * as uart from "./console/uart";
import { readEvents } from "./abi/wasi";
import { handleAll, finish } from "./firmware";
import "./abort";

/** Reads once from fd 0 and handles every whole message; returns the bytes read (0 at end, -1 on error). */
export function step(): i32 {
  const room = rx.freeSpace(); // compacts the buffer, so it must precede writePointer()
  const count = readEvents(rx.writePointer(), room);
  if (count > 0) {
    rx.commit(count);
    handleAll();
  }
  tx.flush();
  return count;
}

export function _start(): void {
  while (step() > 0);
  uart.flush();
  finish();
  tx.flush();
}
