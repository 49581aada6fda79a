// SHA-256 (FIPS 180-4) in AssemblyScript, for the specs' stand-in of the fabric's hash engine
// (helpers.ts, hashAnswers()); the firmware itself hashes with the engine. One static context
// (hmac.ts uses it too). Bytes are
// gathered in a 64-byte block that compress() turns, in place, into the rolling 16-word
// message schedule; words are big-endian on the wire and swapped with bswap.

const IV = memory.data<u32>([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const K = memory.data<u32>([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export const SHA256_SIZE: i32 = 32;
export const SHA256_BLOCK: i32 = 64;

const state = memory.data(32); // H0..H7, native order
const block = memory.data(64); // pending bytes, then the message schedule
let buffered: i32 = 0; // bytes in block
let total: u64 = 0; // bytes hashed so far

/** Runs the 64 rounds over `block` (consumed) and adds the result into `state`. */
function compress(): void {
  for (let i = 0; i < 64; i += 4) store<u32>(block + i, bswap(load<u32>(block + i)));
  let a = load<u32>(state, 0);
  let b = load<u32>(state, 4);
  let c = load<u32>(state, 8);
  let d = load<u32>(state, 12);
  let e = load<u32>(state, 16);
  let f = load<u32>(state, 20);
  let g = load<u32>(state, 24);
  let h = load<u32>(state, 28);
  for (let i = 0; i < 64; i++) {
    const at = block + ((i & 15) << 2);
    let w = load<u32>(at);
    if (i >= 16) {
      const w15 = load<u32>(block + (((i - 15) & 15) << 2));
      const w2 = load<u32>(block + (((i - 2) & 15) << 2));
      w += load<u32>(block + (((i - 7) & 15) << 2)) +
        (rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >>> 3)) +
        (rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >>> 10));
      store<u32>(at, w);
    }
    const t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + load<u32>(K + (i << 2)) + w;
    const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  store<u32>(state, load<u32>(state, 0) + a, 0);
  store<u32>(state, load<u32>(state, 4) + b, 4);
  store<u32>(state, load<u32>(state, 8) + c, 8);
  store<u32>(state, load<u32>(state, 12) + d, 12);
  store<u32>(state, load<u32>(state, 16) + e, 16);
  store<u32>(state, load<u32>(state, 20) + f, 20);
  store<u32>(state, load<u32>(state, 24) + g, 24);
  store<u32>(state, load<u32>(state, 28) + h, 28);
}

export function sha256Init(): void {
  memory.copy(state, IV, 32);
  buffered = 0;
  total = 0;
}

export function sha256Update(data: usize, length: i32): void {
  total += length as u64;
  while (length > 0) {
    const n = min(64 - buffered, length);
    memory.copy(block + buffered, data, n);
    buffered += n;
    data += n;
    length -= n;
    if (buffered == 64) {
      compress();
      buffered = 0;
    }
  }
}

/** Pads, writes the 32-byte digest to `out` (which may overlap the input), and ends the hash. */
export function sha256Final(out: usize): void {
  store<u8>(block + buffered, 0x80);
  buffered++;
  if (buffered > 56) {
    memory.fill(block + buffered, 0, 64 - buffered);
    compress();
    buffered = 0;
  }
  memory.fill(block + buffered, 0, 56 - buffered);
  store<u64>(block + 56, bswap(total << 3));
  compress();
  for (let i = 0; i < 32; i += 4) store<u32>(out + i, bswap(load<u32>(state + i)));
  buffered = 0;
}

export function sha256(data: usize, length: i32, out: usize): void {
  sha256Init();
  sha256Update(data, length);
  sha256Final(out);
}
