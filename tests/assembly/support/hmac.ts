// HMAC-SHA-256 (RFC 2104, FIPS 198-1) for the specs' stand-in of the fabric's hash engine. It
// drives the one SHA-256 context of sha256.ts, so no other hash may run between hmacInit() and
// hmacFinal().
// The key block K0 is kept (as K0 ^ opad) for the outer hash that hmacFinal() runs.

import { sha256, sha256Init, sha256Update, sha256Final, SHA256_BLOCK, SHA256_SIZE } from "./sha256";

const IPAD: u8 = 0x36;
const OPAD: u8 = 0x5c;

const pad = memory.data(64); // K0 ^ ipad while starting, then K0 ^ opad

function xorPad(value: u8): void {
  for (let i = 0; i < SHA256_BLOCK; i++) store<u8>(pad + i, load<u8>(pad + i) ^ value);
}

/** Starts a MAC; keys longer than the 64-byte block are hashed first, shorter ones zero-padded. */
export function hmacInit(key: usize, keyLength: i32): void {
  memory.fill(pad, 0, SHA256_BLOCK);
  if (keyLength > SHA256_BLOCK) sha256(key, keyLength, pad);
  else memory.copy(pad, key, keyLength);
  xorPad(IPAD);
  sha256Init();
  sha256Update(pad, SHA256_BLOCK);
  xorPad(IPAD ^ OPAD);
}

export function hmacUpdate(data: usize, length: i32): void {
  sha256Update(data, length);
}

/** Writes the 32-byte MAC to `out`, which may be the key or data the MAC was computed over. */
export function hmacFinal(out: usize): void {
  sha256Final(out); // the inner hash
  sha256Init();
  sha256Update(pad, SHA256_BLOCK);
  sha256Update(out, SHA256_SIZE);
  sha256Final(out);
}

export function hmac(key: usize, keyLength: i32, data: usize, length: i32, out: usize): void {
  hmacInit(key, keyLength);
  hmacUpdate(data, length);
  hmacFinal(out);
}
