// Sparse memory, in 4 KiB pages allocated on first write (the server's RAM, a disk's media). Reads of
// memory never written return zeros, as freshly zeroed pages would.

const PAGE = 4096;

export class SparseMemory {
  private readonly pages = new Map<number, Uint8Array>();

  /** Bytes of memory actually backed (pages written). */
  get residentBytes(): number {
    return this.pages.size * PAGE;
  }

  write(address: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const at = address + done;
      const page = Math.floor(at / PAGE);
      const offset = at - page * PAGE;
      const n = Math.min(PAGE - offset, data.length - done);
      let bytes = this.pages.get(page);
      if (!bytes) {
        bytes = new Uint8Array(PAGE);
        this.pages.set(page, bytes);
      }
      bytes.set(data.subarray(done, done + n), offset);
      done += n;
    }
  }

  read(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = address + done;
      const page = Math.floor(at / PAGE);
      const offset = at - page * PAGE;
      const n = Math.min(PAGE - offset, length - done);
      const bytes = this.pages.get(page);
      if (bytes) out.set(bytes.subarray(offset, offset + n), done);
      done += n;
    }
    return out;
  }

  readU32(address: number): number {
    return new DataView(this.read(address, 4).buffer).getUint32(0, true);
  }

  writeU32(address: number, value: number): void {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
    this.write(address, bytes);
  }

  readU64(address: number): number {
    const view = new DataView(this.read(address, 8).buffer);
    return view.getUint32(4, true) * 2 ** 32 + view.getUint32(0, true);
  }

  writeU64(address: number, value: number): void {
    const bytes = new Uint8Array(8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, value % 2 ** 32, true);
    view.setUint32(4, Math.floor(value / 2 ** 32), true);
    this.write(address, bytes);
  }
}
