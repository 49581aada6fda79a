// The slow path's TLPs (docs/tlp.md): reading the fields of a request the switch router
// handed to the firmware (TLP_RX), and building the few TLPs the firmware sends up to the
// server (TLP_TX): the completion of a configuration request, the Unsupported Request
// completion of a request nothing serves, and the one-DW memory write of an MSI.
//
// Header fields are big-endian (TlpHeader in board/map/pcie.ts gives their offsets); the data
// DW is in address order, which is a little-endian u32 as configuration registers are. The
// completions carry the fields board/pcie/completer.ts gives them, so the board model and the
// firmware answer a request with the same bytes.

import { TlpHeader, Fmt, TlpType, CplStatus } from "../../board/map/pcie";
import * as tx from "../abi/tx";

/** Bits of header byte 1 (TlpHeader.Flags). */
enum Flags {
  T9 = 0x80, //    tag bit 9
  Tc = 0x70, //    traffic class
  T8 = 0x08, //    tag bit 8
  Attr2 = 0x04, // ID-based ordering
}

/** Bits of header byte 2 (TlpHeader.LengthHigh). */
enum LengthHigh {
  Attr = 0x30, // relaxed ordering, no snoop
}

/** AtomicOp request types (PCIe Base 2.2.1): non-posted, so they too get a completion. */
enum AtomicType {
  FetchAdd = 0b01100,
  Swap = 0b01101,
  CompareSwap = 0b01110,
}

const TYPE_MASK: u8 = 0x1f;
const MSG_MASK: i32 = 0b11000; // messages are 10rrr: TlpType.Msg under this mask
const FMT_DATA: i32 = 0b010; //  Fmt bit: the TLP carries data
const FMT_4DW: i32 = 0b001; //   Fmt bit: 4DW header
/** Byte Count of every completion the firmware sends: one DW, all of it in this completion. */
const BYTE_COUNT: u32 = 4;
const ALL_BYTES: u8 = 0x0f; //   First DW BE of an MSI; Last DW BE 0 (one DW)

// ---- Reading a request ---------------------------------------------------------------

function be16(at: usize): u32 {
  return bswap<u16>(load<u16>(at)) as u32;
}

export function fmt(tlp: usize): i32 {
  return (load<u8>(tlp + TlpHeader.FmtType) >> 5) as i32;
}

export function type(tlp: usize): i32 {
  return (load<u8>(tlp + TlpHeader.FmtType) & TYPE_MASK) as i32;
}

export function hasData(tlp: usize): bool {
  return (fmt(tlp) & FMT_DATA) != 0;
}

/** 12 or 16, by Fmt. */
export function headerBytes(tlp: usize): i32 {
  return (fmt(tlp) & FMT_4DW) != 0 ? TlpHeader.Long : TlpHeader.Short;
}

export function requester(tlp: usize): u32 {
  return be16(tlp + TlpHeader.RequesterId);
}

export function firstBe(tlp: usize): i32 {
  return (load<u8>(tlp + TlpHeader.ByteEnables) & 0x0f) as i32;
}

/** Configuration requests: the target bus. */
export function bus(tlp: usize): u32 {
  return load<u8>(tlp + TlpHeader.Bus) as u32;
}

/** Configuration requests: the target device (0..31). */
export function device(tlp: usize): u32 {
  return (load<u8>(tlp + TlpHeader.DevFn) >> 3) as u32;
}

/** Configuration requests: the target function (0..7). */
export function fn(tlp: usize): u32 {
  return (load<u8>(tlp + TlpHeader.DevFn) & 7) as u32;
}

/** Configuration requests: the register number in DW, 0..1023 (Extended Register Number above Register Number). */
export function register(tlp: usize): i32 {
  return (((load<u8>(tlp + TlpHeader.ExtRegister) & 0x0f) as i32) << 6) | ((load<u8>(tlp + TlpHeader.Register) >> 2) as i32);
}

/** The first data DW (the only one TLP_RX carries), when hasData(). */
export function data(tlp: usize): u32 {
  return load<u32>(tlp + headerBytes(tlp));
}

/** Completions (Cpl, CplD, CplLk, CplDLk). */
export function isCompletion(tlp: usize): bool {
  const t = type(tlp);
  return t == TlpType.Cpl || t == TlpType.CplLocked;
}

/** Configuration requests in their only legal format, 3DW (Type 0 or Type 1, read or write). */
export function isConfig(tlp: usize): bool {
  const t = type(tlp);
  return (t == TlpType.Cfg0 || t == TlpType.Cfg1) && (fmt(tlp) & FMT_4DW) == 0;
}

/**
 * Requests that wait for a completion: memory reads (locked too), I/O and configuration
 * requests, AtomicOps. Memory writes and messages are posted; completions and reserved
 * encodings expect nothing, so nothing is sent back for them.
 */
export function isNonPosted(tlp: usize): bool {
  const t = type(tlp);
  const f = fmt(tlp);
  if (f > Fmt.Data4DW || (t & MSG_MASK) == TlpType.Msg) return false;
  if (t == TlpType.Mem || t == TlpType.MemLocked) return (f & FMT_DATA) == 0;
  if (t == TlpType.Io || t == TlpType.Cfg0 || t == TlpType.Cfg1) return true;
  return (t == AtomicType.FetchAdd || t == AtomicType.Swap || t == AtomicType.CompareSwap) && (f & FMT_DATA) != 0;
}

// ---- Building the TLPs the firmware sends -----------------------------------------------

/** The one TLP being built: at most a 4DW header and one data DW. */
const out = memory.data(TlpHeader.Long + 4);

function put16(at: i32, value: u32): void {
  store<u16>(out + at, bswap<u16>(value as u16));
}

function put32(at: i32, value: u32): void {
  store<u32>(out + at, bswap<u32>(value));
}

/**
 * Writes a completion header for `request` into `out`: the requester's ID and 10-bit tag,
 * Byte Count 4, Lower Address 0, BCM 0. `attributes` copies TC and Attr from the request, as
 * an error completion does; a configuration completion keeps them 0 (the request's are 0).
 */
function completionHeader(request: usize, completer: u32, status: i32, withData: bool, attributes: bool): void {
  const locked = type(request) == TlpType.MemLocked;
  const flags = load<u8>(request + TlpHeader.Flags) as u32;
  const high = load<u8>(request + TlpHeader.LengthHigh) as u32;
  const keep: u32 = Flags.T9 | Flags.T8 | (attributes ? Flags.Tc | Flags.Attr2 : 0);
  store<u8>(out + TlpHeader.FmtType, (((withData ? Fmt.Data3DW : Fmt.NoData3DW) << 5) | (locked ? TlpType.CplLocked : TlpType.Cpl)) as u8);
  store<u8>(out + TlpHeader.Flags, (flags & keep) as u8);
  store<u8>(out + TlpHeader.LengthHigh, (attributes ? high & LengthHigh.Attr : 0) as u8);
  store<u8>(out + TlpHeader.LengthLow, withData ? 1 : 0);
  put16(TlpHeader.CompleterId, completer);
  store<u8>(out + TlpHeader.StatusBcm, ((status << 5) | (BYTE_COUNT >> 8)) as u8);
  store<u8>(out + TlpHeader.ByteCountLow, BYTE_COUNT as u8);
  put16(TlpHeader.CplRequesterId, requester(request));
  store<u8>(out + TlpHeader.CplTag, load<u8>(request + TlpHeader.Tag));
  store<u8>(out + TlpHeader.LowerAddress, 0);
}

/** CplD with `value` for a configuration read. */
export function completeRead(request: usize, completer: u32, value: u32): void {
  completionHeader(request, completer, CplStatus.SuccessfulCompletion, true, false);
  store<u32>(out + TlpHeader.Short, value);
  tx.tlpTx(out, TlpHeader.Short + 4);
}

/** Cpl, Successful Completion, for a configuration write. */
export function completeWrite(request: usize, completer: u32): void {
  completionHeader(request, completer, CplStatus.SuccessfulCompletion, false, false);
  tx.tlpTx(out, TlpHeader.Short);
}

/** Cpl (CplLk for a locked read) with Unsupported Request, for a non-posted request nothing serves. */
export function completeUnsupported(request: usize, completer: u32): void {
  completionHeader(request, completer, CplStatus.UnsupportedRequest, false, true);
  tx.tlpTx(out, TlpHeader.Short);
}

/**
 * An MSI: a memory write of one DW, `value`, to `addressHigh:addressLow` from `requesterId`,
 * TC 0, no attributes, tag 0. The 4DW format only when the address needs it, as requesters must.
 */
export function sendMemoryWrite(requesterId: u32, addressLow: u32, addressHigh: u32, value: u32): void {
  const wide = addressHigh != 0;
  memory.fill(out, 0, TlpHeader.Long);
  store<u8>(out + TlpHeader.FmtType, (((wide ? Fmt.Data4DW : Fmt.Data3DW) << 5) | TlpType.Mem) as u8);
  store<u8>(out + TlpHeader.LengthLow, 1);
  put16(TlpHeader.RequesterId, requesterId);
  store<u8>(out + TlpHeader.ByteEnables, ALL_BYTES);
  let header: i32 = TlpHeader.Short;
  if (wide) {
    put32(TlpHeader.Address64, addressHigh);
    put32(TlpHeader.Address64 + 4, addressLow & ~3);
    header = TlpHeader.Long;
  } else put32(TlpHeader.Address32, addressLow & ~3);
  store<u32>(out + header, value);
  tx.tlpTx(out, header + 4);
}
