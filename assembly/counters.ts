// Firmware counters, indexed by the shared Counter enum; they wrap at 2^32.

import { Counter } from "../board/map/mailbox";

export const counters = memory.data(4 * Counter.Count);

export function count(index: i32): void {
  add(index, 1);
}

export function add(index: i32, amount: i32): void {
  const slot = counters + (index << 2);
  store<u32>(slot, load<u32>(slot) + (amount as u32));
}

export function get(index: i32): u32 {
  return load<u32>(counters + (index << 2));
}

export function clearAll(): void {
  memory.fill(counters, 0, 4 * Counter.Count);
}
