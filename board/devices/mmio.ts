// Helpers for device register files behind a BAR.

/** True if byte `i` of a write's data is enabled by its First and Last DW Byte Enables. */
export function byteEnabled(i: number, dataLength: number, firstBe: number, lastBe: number): boolean {
  const dw = i >> 2;
  const be = dw === 0 ? firstBe : dw === dataLength / 4 - 1 ? lastBe : 0xf;
  return ((be >> (i & 3)) & 1) === 1;
}

/** Stores the enabled bytes of a write at `offset` into `target`, keeping only those in [from, to). */
export function storeEnabled(target: DataView | Uint8Array, offset: number, data: Uint8Array, firstBe: number, lastBe: number, from = 0, to = target.byteLength): void {
  const bytes = target instanceof DataView ? new Uint8Array(target.buffer, target.byteOffset, target.byteLength) : target;
  for (let i = 0; i < data.length; i++) {
    const at = offset + i;
    if (at >= from && at < to && byteEnabled(i, data.length, firstBe, lastBe)) bytes[at] = data[i];
  }
}

/** `length` bytes of a register file from `offset`; bytes beyond it read as zero. */
export function readRegisters(regs: DataView, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const end = Math.min(regs.byteLength, offset + length);
  if (offset < end) out.set(new Uint8Array(regs.buffer, regs.byteOffset + offset, end - offset));
  return out;
}
