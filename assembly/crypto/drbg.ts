// HMAC_DRBG with SHA-256 (NIST SP 800-90A Rev. 1, 10.1.2), one static instance: no
// prediction resistance, no personalization string, no additional input. Instantiate
// takes entropy_input || nonce as one seed string (at least DRBG_SEED_MIN bytes: 32 of
// entropy and a 16-byte nonce for 256-bit strength); reseed takes at least
// DRBG_RESEED_MIN bytes of fresh entropy. Misuse (generating before instantiation or past
// the reseed interval, a short seed, an oversize request) is a firmware bug and traps.

import { hmac, hmacInit, hmacUpdate, hmacFinal } from "./hmac";

export const DRBG_SEED_MIN: i32 = 48;
export const DRBG_RESEED_MIN: i32 = 32;
export const DRBG_MAX_REQUEST: i32 = 1024;
const RESEED_INTERVAL: u64 = 1 << 48;

const K = memory.data(32);
const V = memory.data(32);
const tag = memory.data(1);
let instantiated = false;
let reseedCounter: u64 = 0;

/** HMAC_DRBG_Update (10.1.2.2): K = HMAC(K, V || 0x00 || data), V = HMAC(K, V), again with 0x01 if data. */
function update(data: usize, length: i32): void {
  for (let round: u8 = 0; round < 2; round++) {
    store<u8>(tag, round);
    hmacInit(K, 32);
    hmacUpdate(V, 32);
    hmacUpdate(tag, 1);
    hmacUpdate(data, length);
    hmacFinal(K);
    hmac(K, 32, V, 32, V);
    if (length == 0) return;
  }
}

export function drbgInstantiate(seed: usize, length: i32): void {
  if (length < DRBG_SEED_MIN) unreachable();
  memory.fill(K, 0x00, 32);
  memory.fill(V, 0x01, 32);
  update(seed, length);
  reseedCounter = 1;
  instantiated = true;
}

export function drbgReseed(entropy: usize, length: i32): void {
  if (!instantiated || length < DRBG_RESEED_MIN) unreachable();
  update(entropy, length);
  reseedCounter = 1;
}

/** Whether drbgGenerate() may be called: instantiated and not due for a reseed. */
export function drbgReady(): bool {
  return instantiated && reseedCounter <= RESEED_INTERVAL;
}

/** Writes `length` (0..DRBG_MAX_REQUEST) pseudorandom bytes to `out`. */
export function drbgGenerate(out: usize, length: i32): void {
  if (!drbgReady() || <u32>length > <u32>DRBG_MAX_REQUEST) unreachable();
  while (length > 0) {
    hmac(K, 32, V, 32, V);
    const n = min(length, 32);
    memory.copy(out, V, n);
    out += n;
    length -= n;
  }
  update(0, 0);
  reseedCounter++;
}

/** Forgets the state (zeroes K and V); drbgInstantiate() must run again. */
export function drbgReset(): void {
  memory.fill(K, 0, 32);
  memory.fill(V, 0, 32);
  instantiated = false;
  reseedCounter = 0;
}
