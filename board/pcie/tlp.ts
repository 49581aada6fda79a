// PCIe transaction layer packets as bytes (PCI Express Base Specification, chapter 2,
// "Transaction Layer Specification"). One codec for the fabric model, the devices and the
// server: encodeTlp / decodeTlp for every request, completion and message the tunnel
// carries, the checks a receiver applies (section 2.3, "Handling of Received TLPs"), and
// fast field accessors for the per-TLP data path. docs/tlp.md lists every field.
//
// Header DW0, all TLPs:
//   byte 0  Fmt[2:0] (7:5)  Type[4:0] (4:0)
//   byte 1  T9 (7)  TC[2:0] (6:4)  T8 (3)  Attr[2] (2, ID-based ordering)  LN (1)  TH (0)
//   byte 2  TD (7)  EP (6)  Attr[1:0] (5:4, relaxed ordering, no snoop)  AT[1:0] (3:2)  Length[9:8] (1:0)
//   byte 3  Length[7:0]            (in DW; 0 means 1024)
// Requests, DW1: Requester ID (bytes 4-5), Tag[7:0] (byte 6), Last DW BE (7:4) First DW BE (3:0) (byte 7).
// Completions, DW1: Completer ID (4-5), Status (byte 6, 7:5), BCM (6.4), Byte Count[11:0] (6.3:0, 7);
//              DW2: Requester ID (8-9), Tag (10), Lower Address[6:0] (11.6:0).
// All multi-byte header fields are big-endian; data payload bytes are in address order.

import { Fmt, TlpType, CplStatus } from "../map/pcie.ts";
export { Fmt, TlpType, CplStatus };

export enum TlpClass {
  Posted = 0, //      memory writes, messages
  NonPosted = 1, //   reads, I/O and configuration requests
  Completion = 2,
}




/** Message routing, Type[2:0] of a message (Table 2-18). */
export enum MsgRouting {
  ToRootComplex = 0b000,
  ByAddress = 0b001,
  ById = 0b010,
  BroadcastFromRoot = 0b011,
  Local = 0b100,
  GatheredToRoot = 0b101,
}

/** One flow-control data credit is 4 DW (16 bytes). */
export const DATA_CREDIT_BYTES = 16;
/** Largest payload any TLP may carry (Max_Payload_Size 4096 bytes). */
export const MAX_PAYLOAD_BYTES = 4096;

// ---- Fast accessors (per-TLP path) -----------------------------------------------------

export function fmt(tlp: Uint8Array): number {
  return tlp[0] >> 5;
}

export function hasData(tlp: Uint8Array): boolean {
  return (fmt(tlp) & 0b010) !== 0;
}

export function headerBytes(tlp: Uint8Array): number {
  return fmt(tlp) & 0b001 ? 16 : 12;
}

/** Length field in DW (0 encodes 1024). */
export function lengthDw(tlp: Uint8Array): number {
  const dw = ((tlp[2] & 0x03) << 8) | tlp[3];
  return dw === 0 ? 1024 : dw;
}

/** Data payload bytes when the TLP has data. */
export function dataBytes(tlp: Uint8Array): number {
  return hasData(tlp) ? 4 * lengthDw(tlp) : 0;
}

/** Whole TLP size implied by its header, with the ECRC digest when TD is set. */
export function tlpBytes(tlp: Uint8Array): number {
  return headerBytes(tlp) + dataBytes(tlp) + (tlp[2] & 0x80 ? 4 : 0);
}

/** The flow-control class, or -1 for encodings that are reserved or not carried (prefixes). */
export function tlpClass(tlp: Uint8Array): TlpClass | -1 {
  const f = fmt(tlp);
  if (f > Fmt.Data4DW) return -1;
  const type = tlp[0] & 0x1f;
  if ((type & 0b11000) === 0b10000) return (type & 0b111) <= MsgRouting.GatheredToRoot && f & 0b001 ? TlpClass.Posted : -1;
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

// ---- Structured codec --------------------------------------------------------------------

/** Attributes (Attr[2:0]). */
export interface Attributes {
  relaxedOrdering: boolean;
  noSnoop: boolean;
  idBasedOrdering: boolean;
}

/** DW0 fields every TLP has; `length` is in DW and derived from the data when encoding. */
export interface Common {
  tc: number;
  attr: Attributes;
  th: boolean;
  td: boolean;
  ep: boolean;
  at: number;
  ln: boolean;
}

export interface MemoryRequest extends Common {
  kind: "MRd" | "MRdLk" | "MWr";
  requester: number;
  tag: number;
  firstBe: number;
  lastBe: number;
  /** Byte address of the first DW (bits 1:0 are 0); 64-bit requests use the 4DW format. */
  address: number;
  /** Force the 4DW format even below 4 GiB (not allowed by requesters; receivers accept it). */
  wide?: boolean;
  /** Read length in DW (MRd); a write's comes from its data. */
  readDw?: number;
  data?: Uint8Array;
}

export interface IoRequest extends Common {
  kind: "IORd" | "IOWr";
  requester: number;
  tag: number;
  firstBe: number;
  address: number;
  data?: Uint8Array;
}

export interface ConfigRequest extends Common {
  kind: "CfgRd0" | "CfgWr0" | "CfgRd1" | "CfgWr1";
  requester: number;
  tag: number;
  firstBe: number;
  bus: number;
  device: number;
  fn: number;
  /** Register number in DW, 0..1023 (Extended Register Number in bits 9:6). */
  register: number;
  data?: Uint8Array;
}

export interface Completion extends Common {
  kind: "Cpl" | "CplD" | "CplLk" | "CplDLk";
  completer: number;
  status: CplStatus;
  bcm: boolean;
  /** Bytes left to return for the request, this completion included (0 encodes 4096). */
  byteCount: number;
  requester: number;
  tag: number;
  lowerAddress: number;
  data?: Uint8Array;
}

export interface Message extends Common {
  kind: "Msg" | "MsgD";
  routing: MsgRouting;
  requester: number;
  tag: number;
  code: number;
  /** Bytes 8-15 of the header: an address (routed by address), an ID in bytes 8-9 (by ID), or message-specific. */
  specific: Uint8Array;
  data?: Uint8Array;
}

export type Tlp = MemoryRequest | IoRequest | ConfigRequest | Completion | Message;

/** A TLP a receiver must treat as malformed (section 2.3.2), with the rule it breaks. */
export interface Malformed {
  malformed: string;
}

export const DEFAULT_COMMON: Common = {
  tc: 0, attr: { relaxedOrdering: false, noSnoop: false, idBasedOrdering: false }, th: false, td: false, ep: false, at: 0, ln: false,
};

export function isMalformed(result: Tlp | Malformed): result is Malformed {
  return "malformed" in result;
}

export function isConfigRequest(tlp: Tlp): tlp is ConfigRequest {
  return tlp.kind === "CfgRd0" || tlp.kind === "CfgWr0" || tlp.kind === "CfgRd1" || tlp.kind === "CfgWr1";
}

/** Packs an ID from bus, device, function. */
export function routingId(bus: number, device: number, fn: number): number {
  return ((bus & 0xff) << 8) | ((device & 0x1f) << 3) | (fn & 0x7);
}

function writeCommon(out: Uint8Array, f: number, type: number, c: Common, dw: number, tag: number): void {
  out[0] = (f << 5) | type;
  out[1] = ((tag >> 9) & 1) << 7 | (c.tc & 7) << 4 | ((tag >> 8) & 1) << 3 | (c.attr.idBasedOrdering ? 4 : 0) | (c.ln ? 2 : 0) | (c.th ? 1 : 0);
  out[2] = (c.td ? 0x80 : 0) | (c.ep ? 0x40 : 0) | (c.attr.relaxedOrdering ? 0x20 : 0) | (c.attr.noSnoop ? 0x10 : 0) | (c.at & 3) << 2 | ((dw >> 8) & 3);
  out[3] = dw & 0xff;
}

function u16(out: Uint8Array, at: number, value: number): void {
  out[at] = (value >> 8) & 0xff;
  out[at + 1] = value & 0xff;
}

function u32(out: Uint8Array, at: number, value: number): void {
  out[at] = (value >>> 24) & 0xff;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function r16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function r32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function dwOf(data: Uint8Array | undefined): number {
  if (!data) return 0;
  if (data.length % 4 !== 0 || data.length === 0 || data.length > MAX_PAYLOAD_BYTES) {
    throw new RangeError(`TLP data must be 4..${MAX_PAYLOAD_BYTES} bytes in whole DW, not ${data.length}`);
  }
  return (data.length / 4) & 0x3ff;
}

/** Encodes a TLP; throws RangeError for values the format cannot carry. */
export function encodeTlp(tlp: Tlp): Uint8Array {
  const data = "data" in tlp ? tlp.data : undefined;
  let f: number;
  let type: number;
  let header = 12;
  let dw = dwOf(data);
  switch (tlp.kind) {
    case "MRd": case "MRdLk": case "MWr": {
      const wide = tlp.wide || tlp.address >= 2 ** 32;
      header = wide ? 16 : 12;
      const write = tlp.kind === "MWr";
      if (write !== !!data) throw new RangeError(`${tlp.kind} ${write ? "needs" : "has no"} data`);
      f = (write ? Fmt.Data3DW : Fmt.NoData3DW) | (wide ? 1 : 0);
      type = tlp.kind === "MRdLk" ? TlpType.MemLocked : TlpType.Mem;
      if (!write) dw = (tlp.readDw ?? 1) & 0x3ff;
      break;
    }
    case "IORd": case "IOWr":
      f = tlp.kind === "IOWr" ? Fmt.Data3DW : Fmt.NoData3DW;
      type = TlpType.Io;
      if (tlp.kind === "IORd") dw = 1;
      break;
    case "CfgRd0": case "CfgWr0": case "CfgRd1": case "CfgWr1":
      f = tlp.kind.startsWith("CfgWr") ? Fmt.Data3DW : Fmt.NoData3DW;
      type = tlp.kind.endsWith("0") ? TlpType.Cfg0 : TlpType.Cfg1;
      if (!tlp.kind.startsWith("CfgWr")) dw = 1;
      break;
    case "Cpl": case "CplD": case "CplLk": case "CplDLk":
      f = tlp.kind === "CplD" || tlp.kind === "CplDLk" ? Fmt.Data3DW : Fmt.NoData3DW;
      type = tlp.kind.includes("Lk") ? TlpType.CplLocked : TlpType.Cpl;
      break;
    case "Msg": case "MsgD":
      f = tlp.kind === "MsgD" ? Fmt.Data4DW : Fmt.NoData4DW;
      type = TlpType.Msg | (tlp.routing & 7);
      header = 16;
      break;
  }
  const out = new Uint8Array(header + (data ? data.length : 0) + (tlp.td ? 4 : 0));
  const tag = "tag" in tlp ? tlp.tag : 0;
  writeCommon(out, f, type, tlp, dw, tag);
  switch (tlp.kind) {
    case "MRd": case "MRdLk": case "MWr":
      u16(out, 4, tlp.requester);
      out[6] = tlp.tag & 0xff;
      out[7] = ((tlp.lastBe & 0xf) << 4) | (tlp.firstBe & 0xf);
      if (header === 16) {
        u32(out, 8, Math.floor(tlp.address / 2 ** 32));
        u32(out, 12, (tlp.address % 2 ** 32) & ~3);
      } else u32(out, 8, tlp.address & ~3);
      break;
    case "IORd": case "IOWr":
      u16(out, 4, tlp.requester);
      out[6] = tlp.tag & 0xff;
      out[7] = tlp.firstBe & 0xf;
      u32(out, 8, tlp.address & ~3);
      break;
    case "CfgRd0": case "CfgWr0": case "CfgRd1": case "CfgWr1":
      u16(out, 4, tlp.requester);
      out[6] = tlp.tag & 0xff;
      out[7] = tlp.firstBe & 0xf;
      out[8] = tlp.bus & 0xff;
      out[9] = ((tlp.device & 0x1f) << 3) | (tlp.fn & 7);
      out[10] = (tlp.register >> 6) & 0xf;
      out[11] = (tlp.register & 0x3f) << 2;
      break;
    case "Cpl": case "CplD": case "CplLk": case "CplDLk":
      u16(out, 4, tlp.completer);
      out[6] = ((tlp.status & 7) << 5) | (tlp.bcm ? 0x10 : 0) | ((tlp.byteCount >> 8) & 0xf);
      out[7] = tlp.byteCount & 0xff;
      u16(out, 8, tlp.requester);
      out[10] = tlp.tag & 0xff;
      out[11] = tlp.lowerAddress & 0x7f;
      break;
    case "Msg": case "MsgD":
      u16(out, 4, tlp.requester);
      out[6] = tlp.tag & 0xff;
      out[7] = tlp.code & 0xff;
      out.set(tlp.specific.subarray(0, 8), 8);
      break;
  }
  if (data) out.set(data, header);
  return out;
}

function common(b: Uint8Array): Common {
  return {
    tc: (b[1] >> 4) & 7,
    attr: { relaxedOrdering: (b[2] & 0x20) !== 0, noSnoop: (b[2] & 0x10) !== 0, idBasedOrdering: (b[1] & 4) !== 0 },
    th: (b[1] & 1) !== 0, td: (b[2] & 0x80) !== 0, ep: (b[2] & 0x40) !== 0, at: (b[2] >> 2) & 3, ln: (b[1] & 2) !== 0,
  };
}

/** 10-bit tag: T9 and T8 above the 8-bit Tag field. */
function tag10(b: Uint8Array, at: number): number {
  return ((b[1] >> 7) << 9) | (((b[1] >> 3) & 1) << 8) | b[at];
}

/**
 * Decodes a TLP and applies the receiver's format checks (section 2.3.2): reserved Fmt/Type
 * encodings, a size that disagrees with Length (and TD), payloads over 4096 bytes, byte
 * enables that Length forbids, memory requests crossing a 4 KiB boundary, and configuration
 * or I/O requests with fields their rules fix. Returns the reason for a malformed TLP.
 */
export function decodeTlp(b: Uint8Array): Tlp | Malformed {
  if (b.length < 12) return { malformed: `${b.length} bytes is shorter than a 3DW header` };
  const f = fmt(b);
  if (f === Fmt.Prefix || f > Fmt.Data4DW) return { malformed: `TLP prefixes and Fmt ${f.toString(2).padStart(3, "0")} are not supported` };
  const type = b[0] & 0x1f;
  const header = headerBytes(b);
  if (b.length < header) return { malformed: `${b.length} bytes is shorter than a 4DW header` };
  const cls = tlpClass(b);
  if (cls === -1) return { malformed: `reserved Fmt/Type ${f.toString(2).padStart(3, "0")}/${type.toString(2).padStart(5, "0")}` };
  const c = common(b);
  const dw = lengthDw(b);
  const expected = tlpBytes(b);
  if (b.length !== expected) return { malformed: `${b.length} bytes, but Length ${dw} DW${c.td ? " and a digest" : ""} means ${expected}` };
  const data = hasData(b) ? b.subarray(header, header + 4 * dw) : undefined;
  const firstBe = b[7] & 0xf;
  const lastBe = b[7] >> 4;
  const isMessage = (type & 0b11000) === 0b10000;
  const isCompletion = type === TlpType.Cpl || type === TlpType.CplLocked;
  if (!isMessage && !isCompletion) {
    // Byte enable rules (section 2.2.5) for requests.
    if (dw === 1 && lastBe !== 0) return { malformed: `Last DW BE ${lastBe.toString(2).padStart(4, "0")} with Length 1 DW` };
    if (dw > 1 && (firstBe === 0 || lastBe === 0)) return { malformed: `a zero byte enable with Length ${dw} DW` };
  }
  switch (type) {
    case TlpType.Mem:
    case TlpType.MemLocked: {
      const low = (r32(b, header - 4) & ~3) >>> 0;
      const address = header === 16 ? r32(b, 8) * 2 ** 32 + low : low;
      const lowBits = b[header - 1] & 3;
      if (lowBits !== 0 && !c.th) return { malformed: `address bits 1:0 are ${lowBits} without TLP hints` };
      if ((address % 4096) + 4 * dw > 4096) return { malformed: `request of ${dw} DW at 0x${address.toString(16)} crosses a 4 KiB boundary` };
      const kind = type === TlpType.MemLocked ? "MRdLk" : data ? "MWr" : "MRd";
      const request: MemoryRequest = { kind, ...c, requester: r16(b, 4), tag: tag10(b, 6), firstBe, lastBe, address };
      if (header === 16 && address < 2 ** 32) request.wide = true;
      if (data) request.data = data;
      else request.readDw = dw;
      return request;
    }
    case TlpType.Io:
      if (dw !== 1 || c.tc !== 0 || c.attr.relaxedOrdering || c.attr.noSnoop || c.at !== 0) return { malformed: "I/O request with Length ≠ 1, TC ≠ 0, Attr ≠ 0 or AT ≠ 0" };
      return { kind: data ? "IOWr" : "IORd", ...c, requester: r16(b, 4), tag: tag10(b, 6), firstBe, address: (r32(b, 8) & ~3) >>> 0, ...(data ? { data } : {}) };
    case TlpType.Cfg0:
    case TlpType.Cfg1: {
      if (dw !== 1 || c.tc !== 0 || c.attr.relaxedOrdering || c.attr.noSnoop || c.attr.idBasedOrdering || c.at !== 0) {
        return { malformed: "configuration request with Length ≠ 1, TC ≠ 0, Attr ≠ 0 or AT ≠ 0" };
      }
      const kind = (type === TlpType.Cfg0 ? (data ? "CfgWr0" : "CfgRd0") : data ? "CfgWr1" : "CfgRd1") as ConfigRequest["kind"];
      return {
        kind, ...c, requester: r16(b, 4), tag: tag10(b, 6), firstBe, bus: b[8], device: b[9] >> 3, fn: b[9] & 7,
        register: ((b[10] & 0xf) << 6) | (b[11] >> 2), ...(data ? { data } : {}),
      };
    }
    case TlpType.Cpl:
    case TlpType.CplLocked: {
      const status = b[6] >> 5;
      if (status !== CplStatus.SuccessfulCompletion && status !== CplStatus.UnsupportedRequest && status !== CplStatus.ConfigRequestRetry && status !== CplStatus.CompleterAbort) {
        return { malformed: `reserved Completion Status ${status.toString(2).padStart(3, "0")}` };
      }
      const kind = (type === TlpType.CplLocked ? (data ? "CplDLk" : "CplLk") : data ? "CplD" : "Cpl") as Completion["kind"];
      return {
        kind, ...c, completer: r16(b, 4), status, bcm: (b[6] & 0x10) !== 0, byteCount: ((b[6] & 0xf) << 8) | b[7],
        requester: r16(b, 8), tag: tag10(b, 10), lowerAddress: b[11] & 0x7f, ...(data ? { data } : {}),
      };
    }
    default: // messages
      return {
        kind: data ? "MsgD" : "Msg", ...c, routing: type & 7, requester: r16(b, 4), tag: tag10(b, 6), code: b[7],
        specific: b.slice(8, 16), ...(data ? { data } : {}),
      };
  }
}

/** Byte Count and Lower Address of the completion for a memory read (section 2.3.1.1, Table 2-39). */
export function readCompletionFields(request: { address: number; firstBe: number; lastBe: number; readDw: number }): { byteCount: number; lowerAddress: number } {
  const { firstBe, lastBe, readDw } = request;
  const leading = firstBe === 0 ? 0 : 31 - Math.clz32(firstBe & -firstBe); // disabled bytes before the first enabled one
  let byteCount: number;
  if (readDw === 1) {
    if (firstBe === 0) byteCount = 1; // zero-length read
    else byteCount = 32 - Math.clz32(firstBe) - leading;
  } else {
    const trailing = 4 - (32 - Math.clz32(lastBe)); // disabled bytes at the end of the last DW
    byteCount = 4 * readDw - leading - trailing;
  }
  return { byteCount: byteCount & 0xfff, lowerAddress: (request.address + leading) & 0x7f };
}

// ---- Convenience constructors used by models and tests -----------------------------------

/** Memory write request (posted), 64-bit address when it needs one. */
export function memoryWrite(requester: number, tag: number, address: number, data: Uint8Array): Uint8Array {
  const dw = data.length / 4;
  return encodeTlp({ kind: "MWr", ...DEFAULT_COMMON, requester, tag, firstBe: 0xf, lastBe: dw > 1 ? 0xf : 0, address, data });
}

/** Memory read request (non-posted) for `bytes` bytes, a multiple of 4. */
export function memoryRead(requester: number, tag: number, address: number, bytes: number): Uint8Array {
  const dw = bytes / 4;
  return encodeTlp({ kind: "MRd", ...DEFAULT_COMMON, requester, tag, firstBe: 0xf, lastBe: dw > 1 ? 0xf : 0, address, readDw: dw });
}

/** Successful completion with data for a read of `data.length` bytes. */
export function completionWithData(completer: number, requester: number, tag: number, data: Uint8Array, lowerAddress = 0): Uint8Array {
  return encodeTlp({
    kind: "CplD", ...DEFAULT_COMMON, completer, status: CplStatus.SuccessfulCompletion, bcm: false, byteCount: data.length & 0xfff,
    requester, tag, lowerAddress, data,
  });
}

const idText = (id: number) => `${(id >> 8).toString(16).padStart(2, "0")}:${((id >> 3) & 0x1f).toString(16).padStart(2, "0")}.${id & 7}`;

/**
 * One line naming a TLP from its header alone, for traces: the slow path's TLP_RX carries a
 * request's header and at most its first data DW, so the Length field may promise more data.
 */
export function describeHeader(b: Uint8Array): string {
  if (b.length < 12 || b.length < headerBytes(b)) return `${b.length} bytes, shorter than its header`;
  const header = headerBytes(b);
  const type = b[0] & 0x1f;
  const data = hasData(b) && b.length >= header + 4 ? `, data 0x${(((b[header + 3] << 24) | (b[header + 2] << 16) | (b[header + 1] << 8) | b[header]) >>> 0).toString(16).padStart(8, "0")}` : "";
  const request = `requester ${idText(r16(b, 4))} tag ${b[6]}`;
  switch (type) {
    case TlpType.Cfg0:
    case TlpType.Cfg1:
      return `${hasData(b) ? "CfgWr" : "CfgRd"}${type & 1} ${idText((b[8] << 8) | b[9])} register 0x${((((b[10] & 0xf) << 6) | (b[11] >> 2)) * 4).toString(16)} BE 0x${(b[7] & 0xf).toString(16)}, ${request}${data}`;
    case TlpType.Mem:
    case TlpType.MemLocked: {
      const low = (r32(b, header - 4) & ~3) >>> 0;
      const address = header === 16 ? r32(b, 8) * 2 ** 32 + low : low;
      return `${type === TlpType.MemLocked ? "MRdLk" : hasData(b) ? "MWr" : "MRd"} 0x${address.toString(16)} ${lengthDw(b)} DW, ${request}${data}`;
    }
    case TlpType.Cpl:
    case TlpType.CplLocked:
      return `${hasData(b) ? "CplD" : "Cpl"} ${CplStatus[b[6] >> 5] ?? `status ${b[6] >> 5}`} from ${idText(r16(b, 4))} to ${idText(r16(b, 8))} tag ${b[10]}, byte count ${((b[6] & 0xf) << 8) | b[7]}${data}`;
    case TlpType.Io:
      return `${hasData(b) ? "IOWr" : "IORd"} 0x${((r32(b, 8) & ~3) >>> 0).toString(16)}, ${request}${data}`;
    default:
      return (type & 0b11000) === 0b10000 ? `${hasData(b) ? "MsgD" : "Msg"} code 0x${b[7].toString(16)}, requester ${idText(r16(b, 4))}${data}` : `Fmt ${fmt(b)} Type 0x${type.toString(16)}`;
  }
}
