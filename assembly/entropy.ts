// Randomness for nonces, boot IDs and back-off jitter. The board's random number generator
// (a conditioned generator in the fabric, docs/registers.md, CardReg.EntropyRequest) posts
// ENTROPY events: POOL_SIZE bytes at boot, and as many as the firmware asks for after that.
// They collect in a pool that take() draws from; whenever a draw leaves less than half of it,
// the pool asks the generator to fill it again, so a nonce is at hand without waiting.
// Timing jitter needs no secret and must never wait: jitter16() is a xorshift generator that
// the same bytes seed and stir.

import { CardReg, ENTROPY_REQUEST_MAX } from "../board/map/registers";
import * as tx from "./abi/tx";

export const POOL_SIZE: i32 = ENTROPY_REQUEST_MAX;
const pool = memory.data(POOL_SIZE);
let available: i32 = 0;
/** Bytes asked of the generator and not yet come. */
let requested: i32 = 0;
const JITTER_SEED: u32 = 0x9e3779b9; // any odd start; the first ENTROPY bytes replace it
let jitterState: u32 = JITTER_SEED;

export function reset(): void {
  available = 0;
  requested = 0;
  jitterState = JITTER_SEED;
}

/** Adds `length` bytes from the board (past a full pool they only stir the jitter). */
export function feed(ptr: usize, length: i32): void {
  for (let i = 0; i < length; i++) {
    const byte = load<u8>(ptr + i);
    jitterState = rotl<u32>(jitterState, 8) ^ byte;
    if (jitterState == 0) jitterState = JITTER_SEED;
    if (available < POOL_SIZE) store<u8>(pool + available++, byte);
  }
  requested = max(requested - length, 0);
}

/** Bytes in the pool. */
export function bytesAvailable(): i32 {
  return available;
}

/** Whether `length` random bytes can be taken now. */
export function has(length: i32): bool {
  return available >= length;
}

/** Moves `length` random bytes (at most what has() allows) into `out`, and refills the pool when it runs low. */
export function take(out: usize, length: i32): void {
  available -= length;
  memory.copy(out, pool + available, length);
  memory.fill(pool + available, 0, length);
  const missing = POOL_SIZE - available - requested;
  if (available < POOL_SIZE / 2 && missing > 0) {
    tx.regWrite(CardReg.EntropyRequest, missing as u32);
    requested += missing;
  }
}

/** 16 random bits for timing jitter (not for secrets): xorshift32, stirred by every ENTROPY byte. */
export function jitter16(): u32 {
  let x = jitterState;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  jitterState = x;
  return x >>> 16;
}

/** A random u32 (only when has(4)). */
export function word32(): u32 {
  const scratch = memory.data(4);
  take(scratch, 4);
  return load<u32>(scratch);
}
