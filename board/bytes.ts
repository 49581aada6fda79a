// Byte-buffer helpers shared by the board model and the tools.

/** The chunks joined into one array (the chunk itself when there is only one). */
export function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A 32-bit value as 4 little-endian bytes (a register write's data). */
export function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return out;
}

const SLAB_BYTES = 1 << 20;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/**
 * A zeroed byte array of `size` bytes carved from a shared slab. The simulator makes
 * millions of frames and TLPs a second; a fresh ArrayBuffer each would cost an allocation
 * outside the JavaScript heap every time. A slab lives until every view into it is gone.
 * Callers must use the view's byteOffset (new DataView(b.buffer, b.byteOffset, b.length)).
 */
export function allocBytes(size: number): Uint8Array {
  if (size > SLAB_BYTES / 8) return new Uint8Array(size);
  if (slabUsed + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + size);
  slabUsed += (size + 7) & ~7;
  return out;
}

/** A copy of `bytes` in slab memory. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const out = allocBytes(bytes.length);
  out.set(bytes);
  return out;
}
