// Entropy pool fed by ENTROPY events from the board's random number generator.
// The newest POOL_SIZE bytes are kept; `available` counts unread bytes (capped).

const POOL_SIZE: i32 = 64;
const pool = memory.data(POOL_SIZE);
let head: i32 = 0;
let available: i32 = 0;

export function reset(): void {
  head = 0;
  available = 0;
}

export function feed(ptr: usize, length: i32): void {
  for (let i = 0; i < length; i++) {
    store<u8>(pool + head, load<u8>(ptr + i));
    head = (head + 1) % POOL_SIZE;
  }
  available = min(POOL_SIZE, available + length);
}

export function bytesAvailable(): i32 {
  return available;
}
