// PCIe transaction layer packets as bytes (PCIe Base Specification, chapter 2): what the
// tunnel needs to carry them — the header's format and type, its size, the data
// length, the flow-control class and the credits a TLP consumes.

export enum TlpClass {
  Posted = 0, //      memory writes, messages
  NonPosted = 1, //   reads, I/O and configuration requests
  Completion = 2,
}

/** Fmt field (byte 0, bits 7-5). */
export enum Fmt {
  NoData3DW = 0b000,
  NoData4DW = 0b001,
  Data3DW = 0b010,
  Data4DW = 0b011,
  Prefix = 0b100,
}

/** Type field (byte 0, bits 4-0) of the TLPs the tunnel distinguishes. */
export enum TlpType {
  Mem = 0b00000,
  MemLocked = 0b00001,
  Io = 0b00010,
  Cfg0 = 0b00100,
  Cfg1 = 0b00101,
  Cpl = 0b01010,
  CplLocked = 0b01011,
}

/** One flow-control data credit is 4 DW (16 bytes). */
export const DATA_CREDIT_BYTES = 16;

export function fmt(tlp: Uint8Array): number {
  return tlp[0] >> 5;
}

export function hasData(tlp: Uint8Array): boolean {
  return (fmt(tlp) & 0b010) !== 0;
}

export function headerBytes(tlp: Uint8Array): number {
  return fmt(tlp) & 0b001 ? 16 : 12;
}

/** Data payload bytes: the Length field in DW (0 means 1024) when the TLP has data. */
export function dataBytes(tlp: Uint8Array): number {
  if (!hasData(tlp)) return 0;
  const dw = ((tlp[2] & 0x03) << 8) | tlp[3];
  return 4 * (dw === 0 ? 1024 : dw);
}

/** Whole TLP size implied by its header (no digest: TD must be 0 here). */
export function tlpBytes(tlp: Uint8Array): number {
  return headerBytes(tlp) + dataBytes(tlp);
}

/** The flow-control class, or -1 for encodings the tunnel does not carry (prefixes, reserved). */
export function tlpClass(tlp: Uint8Array): TlpClass | -1 {
  const f = fmt(tlp);
  if (f > Fmt.Data4DW) return -1;
  const type = tlp[0] & 0x1f;
  if ((type & 0b11000) === 0b10000) return TlpClass.Posted; // Msg / MsgD
  switch (type) {
    case TlpType.Mem:
      return f & 0b010 ? TlpClass.Posted : TlpClass.NonPosted;
    case TlpType.MemLocked:
      return f & 0b010 ? -1 : TlpClass.NonPosted;
    case TlpType.Io:
    case TlpType.Cfg0:
    case TlpType.Cfg1:
      return f & 0b001 ? -1 : TlpClass.NonPosted;
    case TlpType.Cpl:
    case TlpType.CplLocked:
      return f & 0b001 ? -1 : TlpClass.Completion;
    default:
      return -1;
  }
}

export function dataCredits(tlp: Uint8Array): number {
  return Math.ceil(dataBytes(tlp) / DATA_CREDIT_BYTES);
}

/** Memory write request (posted), 64-bit address when it needs one. */
export function memoryWrite(requester: number, tag: number, address: number, data: Uint8Array): Uint8Array {
  return memoryRequest(requester, tag, address, data.length, data);
}

/** Memory read request (non-posted) for `bytes` bytes, a multiple of 4. */
export function memoryRead(requester: number, tag: number, address: number, bytes: number): Uint8Array {
  return memoryRequest(requester, tag, address, bytes, null);
}

function memoryRequest(requester: number, tag: number, address: number, bytes: number, data: Uint8Array | null): Uint8Array {
  const wide = address >= 2 ** 32;
  const head = wide ? 16 : 12;
  const out = new Uint8Array(head + (data ? data.length : 0));
  const dw = (bytes / 4) & 0x3ff;
  out[0] = ((data ? Fmt.Data3DW : Fmt.NoData3DW) | (wide ? 1 : 0)) << 5 | TlpType.Mem;
  out[2] = dw >> 8;
  out[3] = dw & 0xff;
  out[4] = requester >> 8;
  out[5] = requester & 0xff;
  out[6] = tag & 0xff;
  out[7] = bytes > 4 ? 0xff : 0x0f; // last/first DW byte enables
  const view = new DataView(out.buffer);
  if (wide) {
    view.setUint32(8, Math.floor(address / 2 ** 32));
    view.setUint32(12, address % 2 ** 32 & ~3);
  } else {
    view.setUint32(8, address & ~3);
  }
  if (data) out.set(data, head);
  return out;
}

/** Successful completion with data for a read of `data.length` bytes. */
export function completionWithData(completer: number, requester: number, tag: number, data: Uint8Array, lowerAddress = 0): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dw = (data.length / 4) & 0x3ff;
  out[0] = (Fmt.Data3DW << 5) | TlpType.Cpl;
  out[2] = dw >> 8;
  out[3] = dw & 0xff;
  out[4] = completer >> 8;
  out[5] = completer & 0xff;
  const byteCount = data.length & 0xfff;
  out[6] = byteCount >> 8; // status 000 (Successful Completion), BCM 0
  out[7] = byteCount & 0xff;
  out[8] = requester >> 8;
  out[9] = requester & 0xff;
  out[10] = tag & 0xff;
  out[11] = lowerAddress & 0x7f;
  out.set(data, 12);
  return out;
}
