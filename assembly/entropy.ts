// Randomness for nonces, boot IDs and back-off jitter. ENTROPY events from the board's
// random number generator collect in a pool; once it holds DRBG_SEED_MIN bytes they seed
// an HMAC_DRBG (assembly/crypto/drbg.ts), and every DRBG_RESEED_MIN bytes after that
// reseed it. Callers ask ready() before take(): nothing is drawn from an unseeded DRBG.
// Seeding costs about 190 000 instructions (25 ms of the soft-core at 100 MHz): it runs in a
// batch of its own, on a timer due at once, so that the batch that brought the bytes (at boot:
// BOOT, ENTROPY and CONFIG) is answered without waiting for it.
// Timing jitter needs no secret, and a DRBG draw costs about 127 000 instructions (17 ms of the
// soft-core at 100 MHz, docs/softcore.md): jitter() draws from a xorshift generator instead,
// which the same board bytes seed and stir.

import { drbgInstantiate, drbgReseed, drbgReady, drbgGenerate, drbgReset, DRBG_SEED_MIN, DRBG_RESEED_MIN } from "./crypto/drbg";
import * as timers from "./timers";
import { TimerId } from "./timers";
import * as clock from "./clock";

export const POOL_SIZE: i32 = 64;
const pool = memory.data(POOL_SIZE);
let available: i32 = 0;
const scratch = memory.data(4);
const JITTER_SEED: u32 = 0x9e3779b9; // any odd start; the first ENTROPY bytes replace it
let jitterState: u32 = JITTER_SEED;

export function reset(): void {
  available = 0;
  jitterState = JITTER_SEED;
  drbgReset();
}

/**
 * Adds `length` bytes from the board (past a full pool they only stir the jitter); once enough
 * have come to seed or reseed the DRBG, the Entropy timer is started to do so (mix()).
 */
export function feed(ptr: usize, length: i32): void {
  for (let i = 0; i < length; i++) {
    const byte = load<u8>(ptr + i);
    jitterState = rotl<u32>(jitterState, 8) ^ byte;
    if (jitterState == 0) jitterState = JITTER_SEED;
    if (available < POOL_SIZE) store<u8>(pool + available++, byte);
  }
  if (available >= (drbgReady() ? DRBG_RESEED_MIN : DRBG_SEED_MIN) && !timers.isRunning(TimerId.Entropy)) {
    timers.startAt(TimerId.Entropy, clock.now);
  }
}

/** The Entropy timer: seeds the DRBG with the pool, or reseeds it. */
export function mix(): void {
  if (!drbgReady()) drbgInstantiate(pool, available);
  else drbgReseed(pool, available);
  available = 0;
}

/** Bytes in the pool not yet mixed into the DRBG. */
export function bytesAvailable(): i32 {
  return available;
}

/** True once the DRBG is seeded. */
export function ready(): bool {
  return drbgReady();
}

/** `length` random bytes into `out` (at most 1024); only when ready(). */
export function take(out: usize, length: i32): void {
  drbgGenerate(out, length);
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

/** A random u32; only when ready(). */
export function word32(): u32 {
  drbgGenerate(scratch, 4);
  return load<u32>(scratch);
}
