// NVMe data structures from the NVM Express Base Specification 2.0 and the NVM Command Set
// Specification 1.0: controller registers, submission and completion queue entries, PRP
// walking and building, and the Identify data a driver needs. Pure encoders and decoders, no
// simulation state. Everything is little-endian, as NVMe defines. See docs/nvme.md.
//
// Number choices: CAP is a bigint (it is the one 64-bit register with fields above bit 31);
// every other value, including 64-bit addresses, SLBAs and namespace sizes, is a JavaScript
// number, exact up to 2^53 (Number.MAX_SAFE_INTEGER). Encoders throw RangeError for a field
// that does not fit; decoders never throw on well-sized input.

const TWO32 = 0x1_0000_0000;

function field(name: string, value: number, bits: number): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(`${name} = ${value} does not fit in ${bits} bits`);
  }
  return value;
}

function u64(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} = ${value} is not an unsigned safe integer`);
  return value;
}

const bit = (value: number, n: number) => ((value >>> n) & 1) === 1;
const bits = (value: number, lo: number, width: number) => (value >>> lo) & ((1 << width) - 1);
const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function setU64(dv: DataView, at: number, value: number): void {
  dv.setUint32(at, value % TWO32, true);
  dv.setUint32(at + 4, Math.floor(value / TWO32), true);
}

function getU64(dv: DataView, at: number): number {
  return dv.getUint32(at + 4, true) * TWO32 + dv.getUint32(at, true);
}

function need(bytes: Uint8Array, offset: number, size: number, what: string): void {
  if (offset < 0 || offset + size > bytes.length) throw new RangeError(`${what} needs ${size} bytes at offset ${offset}; have ${bytes.length}`);
}

// ---------------------------------------------------------------------------------------------
// 1. Controller registers (Base spec section 3.1.4)

/** Register offsets in the controller's BAR0. */
export enum NvmeReg {
  CAP = 0x00, // 64-bit
  VS = 0x08,
  INTMS = 0x0c,
  INTMC = 0x10,
  CC = 0x14,
  CSTS = 0x1c,
  NSSR = 0x20,
  AQA = 0x24,
  ASQ = 0x28, // 64-bit
  ACQ = 0x30, // 64-bit
}

/** Offset of the first doorbell (SQ 0 tail). */
export const DOORBELL_BASE = 0x1000;

/** CAP.CSS bits (command sets supported). */
export enum CapCss {
  Nvm = 0x01,
  IoCommandSets = 0x40,
  AdminOnly = 0x80,
}

/** CAP.AMS bits (optional arbitration mechanisms supported). */
export enum CapAms {
  WeightedRoundRobinUrgent = 0x1,
  VendorSpecific = 0x2,
}

/** Controller Capabilities. Multi-bit fields are raw register values. */
export interface Cap {
  mqes: number; // 15:0, maximum queue entries, 0-based
  cqr: boolean; // 16, contiguous queues required
  ams: number; // 18:17, CapAms bits
  to: number; // 31:24, timeout in 500 ms units
  dstrd: number; // 35:32, doorbell stride: 4 << DSTRD bytes
  nssrs: boolean; // 36, NVM subsystem reset supported
  css: number; // 44:37, CapCss bits
  bps: boolean; // 45, boot partition support
  cps: number; // 47:46, controller power scope
  mpsmin: number; // 51:48, minimum page size 2^(12 + MPSMIN)
  mpsmax: number; // 55:52, maximum page size 2^(12 + MPSMAX)
  pmrs: boolean; // 56, persistent memory region supported
  cmbs: boolean; // 57, controller memory buffer supported
  nsss: boolean; // 58, NVM subsystem shutdown supported
  crms: number; // 60:59, controller ready modes supported (bit 0 CRWMS, bit 1 CRIMS)
}

/** CAP as a 64-bit bigint. */
export function encodeCap(c: Cap): bigint {
  const low = field("MQES", c.mqes, 16) | (c.cqr ? 1 << 16 : 0) | (field("AMS", c.ams, 2) << 17) | (field("TO", c.to, 8) << 24);
  const high = field("DSTRD", c.dstrd, 4) | (c.nssrs ? 1 << 4 : 0) | (field("CSS", c.css, 8) << 5) | (c.bps ? 1 << 13 : 0)
    | (field("CPS", c.cps, 2) << 14) | (field("MPSMIN", c.mpsmin, 4) << 16) | (field("MPSMAX", c.mpsmax, 4) << 20)
    | (c.pmrs ? 1 << 24 : 0) | (c.cmbs ? 1 << 25 : 0) | (c.nsss ? 1 << 26 : 0) | (field("CRMS", c.crms, 2) << 27);
  return joinQword(low >>> 0, high >>> 0);
}

export function decodeCap(value: bigint): Cap {
  const { low, high } = splitQword(value);
  return {
    mqes: bits(low, 0, 16), cqr: bit(low, 16), ams: bits(low, 17, 2), to: bits(low, 24, 8),
    dstrd: bits(high, 0, 4), nssrs: bit(high, 4), css: bits(high, 5, 8), bps: bit(high, 13), cps: bits(high, 14, 2),
    mpsmin: bits(high, 16, 4), mpsmax: bits(high, 20, 4), pmrs: bit(high, 24), cmbs: bit(high, 25), nsss: bit(high, 26),
    crms: bits(high, 27, 2),
  };
}

/** The two 32-bit halves of a 64-bit register: `low` at the register offset, `high` at +4. */
export function splitQword(value: bigint): { low: number; high: number } {
  if (value < 0n || value >= 1n << 64n) throw new RangeError(`${value} is not a 64-bit unsigned value`);
  return { low: Number(value & 0xffff_ffffn), high: Number(value >> 32n) };
}

export function joinQword(low: number, high: number): bigint {
  return (BigInt(field("high", high, 32)) << 32n) | BigInt(field("low", low, 32));
}

/** Version (VS register and Identify Controller VER). */
export interface Version { major: number; minor: number; tertiary: number }

export function encodeVersion(v: Version): number {
  return ((field("MJR", v.major, 16) << 16) | (field("MNR", v.minor, 8) << 8) | field("TER", v.tertiary, 8)) >>> 0;
}

export function decodeVersion(value: number): Version {
  return { major: bits(value, 16, 16), minor: bits(value, 8, 8), tertiary: bits(value, 0, 8) };
}

/** VS value for NVMe 2.0.0. */
export const NVME_VERSION_2_0 = 0x0002_0000;

/** CC.CSS values (I/O command set selected). */
export enum CcCss {
  Nvm = 0,
  AllIoCommandSets = 6,
  AdminOnly = 7,
}

/** CC.AMS values (arbitration mechanism selected). */
export enum CcAms {
  RoundRobin = 0,
  WeightedRoundRobinUrgent = 1,
  VendorSpecific = 7,
}

/** CC.SHN values (shutdown notification). */
export enum Shn {
  None = 0,
  Normal = 1,
  Abrupt = 2,
}

/** CSTS.SHST values (shutdown status). */
export enum Shst {
  Normal = 0,
  Occurring = 1,
  Complete = 2,
}

/** Controller Configuration (0x14). */
export interface Cc {
  en: boolean; // 0
  css: number; // 6:4, CcCss
  mps: number; // 10:7, page size 2^(12 + MPS)
  ams: number; // 13:11, CcAms
  shn: number; // 15:14, Shn
  iosqes: number; // 19:16, log2 of the I/O SQ entry size (6 = 64 bytes)
  iocqes: number; // 23:20, log2 of the I/O CQ entry size (4 = 16 bytes)
  crime: boolean; // 24, controller ready independent of media enable
}

export function encodeCc(c: Cc): number {
  return ((c.en ? 1 : 0) | (field("CSS", c.css, 3) << 4) | (field("MPS", c.mps, 4) << 7) | (field("AMS", c.ams, 3) << 11)
    | (field("SHN", c.shn, 2) << 14) | (field("IOSQES", c.iosqes, 4) << 16) | (field("IOCQES", c.iocqes, 4) << 20)
    | (c.crime ? 1 << 24 : 0)) >>> 0;
}

export function decodeCc(value: number): Cc {
  return {
    en: bit(value, 0), css: bits(value, 4, 3), mps: bits(value, 7, 4), ams: bits(value, 11, 3), shn: bits(value, 14, 2),
    iosqes: bits(value, 16, 4), iocqes: bits(value, 20, 4), crime: bit(value, 24),
  };
}

/** Controller Status (0x1C). */
export interface Csts {
  rdy: boolean; // 0
  cfs: boolean; // 1, controller fatal status
  shst: number; // 3:2, Shst
  nssro: boolean; // 4, NVM subsystem reset occurred
  pp: boolean; // 5, processing paused
  st: boolean; // 6, shutdown type (subsystem shutdown)
}

export function encodeCsts(c: Csts): number {
  return (c.rdy ? 1 : 0) | (c.cfs ? 2 : 0) | (field("SHST", c.shst, 2) << 2) | (c.nssro ? 1 << 4 : 0) | (c.pp ? 1 << 5 : 0)
    | (c.st ? 1 << 6 : 0);
}

export function decodeCsts(value: number): Csts {
  return { rdy: bit(value, 0), cfs: bit(value, 1), shst: bits(value, 2, 2), nssro: bit(value, 4), pp: bit(value, 5), st: bit(value, 6) };
}

/** Admin Queue Attributes (0x24); both sizes are 0-based entry counts. */
export interface Aqa { asqs: number; acqs: number }

export function encodeAqa(a: Aqa): number {
  return (field("ASQS", a.asqs, 12) | (field("ACQS", a.acqs, 12) << 16)) >>> 0;
}

export function decodeAqa(value: number): Aqa {
  return { asqs: bits(value, 0, 12), acqs: bits(value, 16, 12) };
}

/** The memory page size selected by CC.MPS (or described by CAP.MPSMIN/MPSMAX): 2^(12 + mps). */
export function memoryPageSize(mps: number): number {
  return 2 ** (12 + field("MPS", mps, 4));
}

/** The BAR0 offset of SQ `queue`'s tail doorbell or CQ `queue`'s head doorbell. */
export function doorbellOffset(queue: number, isCompletion: boolean, dstrd: number): number {
  return DOORBELL_BASE + (2 * field("queue", queue, 16) + (isCompletion ? 1 : 0)) * (4 << field("DSTRD", dstrd, 4));
}

/** The inverse of doorbellOffset: which doorbell a BAR0 offset writes, or undefined if none. */
export function doorbellAt(offset: number, dstrd: number): { queue: number; isCompletion: boolean } | undefined {
  const stride = 4 << field("DSTRD", dstrd, 4);
  const rel = offset - DOORBELL_BASE;
  if (!Number.isInteger(offset) || rel < 0 || rel % stride !== 0) return undefined;
  const index = rel / stride;
  const queue = Math.floor(index / 2);
  return queue < 0x10000 ? { queue, isCompletion: index % 2 === 1 } : undefined;
}

// ---------------------------------------------------------------------------------------------
// 2. Submission Queue Entry (Base spec 4.2)

export const SQE_BYTES = 64;
export const CQE_BYTES = 16;

export enum AdminOpcode {
  DeleteIoSq = 0x00,
  CreateIoSq = 0x01,
  GetLogPage = 0x02,
  DeleteIoCq = 0x04,
  CreateIoCq = 0x05,
  Identify = 0x06,
  SetFeatures = 0x09,
  GetFeatures = 0x0a,
}

export enum NvmOpcode {
  Flush = 0x00,
  Write = 0x01,
  Read = 0x02,
}

/** CDW0.PSDT: how DPTR is interpreted. Only PRPs are implemented. */
export enum Psdt {
  Prp = 0,
  SglBuffer = 1,
  SglSegment = 2,
}

/** Identify CNS values implemented. */
export enum Cns {
  Namespace = 0x00,
  Controller = 0x01,
  ActiveNamespaceList = 0x02,
}

/** Create I/O SQ QPRIO values. */
export enum QueuePriority {
  Urgent = 0,
  High = 1,
  Medium = 2,
  Low = 3,
}

/** A 64-byte submission queue entry. Dwords are unsigned 32-bit numbers. */
export interface Sqe {
  opcode: number; // CDW0 7:0
  fuse: number; // CDW0 9:8
  psdt: number; // CDW0 15:14
  cid: number; // CDW0 31:16
  nsid: number; // bytes 4..7
  cdw2: number; // bytes 8..11
  cdw3: number; // bytes 12..15
  mptr: number; // bytes 16..23
  prp1: number; // bytes 24..31 (DPTR)
  prp2: number; // bytes 32..39 (DPTR)
  cdw10: number; // bytes 40..43
  cdw11: number;
  cdw12: number;
  cdw13: number;
  cdw14: number;
  cdw15: number; // bytes 60..63
}

/** An SQE with every field not given set to zero. */
export function sqe(fields: Partial<Sqe> & { opcode: number }): Sqe {
  return {
    fuse: 0, psdt: Psdt.Prp, cid: 0, nsid: 0, cdw2: 0, cdw3: 0, mptr: 0, prp1: 0, prp2: 0,
    cdw10: 0, cdw11: 0, cdw12: 0, cdw13: 0, cdw14: 0, cdw15: 0, ...fields,
  };
}

export function encodeSqe(s: Sqe, out: Uint8Array = new Uint8Array(SQE_BYTES), offset = 0): Uint8Array {
  need(out, offset, SQE_BYTES, "SQE");
  const dv = new DataView(out.buffer, out.byteOffset + offset, SQE_BYTES);
  const cdw0 = field("opcode", s.opcode, 8) | (field("FUSE", s.fuse, 2) << 8) | (field("PSDT", s.psdt, 2) << 14) | (field("CID", s.cid, 16) << 16);
  dv.setUint32(0, cdw0 >>> 0, true);
  dv.setUint32(4, field("NSID", s.nsid, 32), true);
  dv.setUint32(8, field("CDW2", s.cdw2, 32), true);
  dv.setUint32(12, field("CDW3", s.cdw3, 32), true);
  setU64(dv, 16, u64("MPTR", s.mptr));
  setU64(dv, 24, u64("PRP1", s.prp1));
  setU64(dv, 32, u64("PRP2", s.prp2));
  const dws = [s.cdw10, s.cdw11, s.cdw12, s.cdw13, s.cdw14, s.cdw15];
  for (let i = 0; i < 6; i++) dv.setUint32(40 + 4 * i, field(`CDW${10 + i}`, dws[i], 32), true);
  return out;
}

export function decodeSqe(bytes: Uint8Array, offset = 0): Sqe {
  need(bytes, offset, SQE_BYTES, "SQE");
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, SQE_BYTES);
  const cdw0 = dv.getUint32(0, true);
  return {
    opcode: bits(cdw0, 0, 8), fuse: bits(cdw0, 8, 2), psdt: bits(cdw0, 14, 2), cid: bits(cdw0, 16, 16),
    nsid: dv.getUint32(4, true), cdw2: dv.getUint32(8, true), cdw3: dv.getUint32(12, true),
    mptr: getU64(dv, 16), prp1: getU64(dv, 24), prp2: getU64(dv, 32),
    cdw10: dv.getUint32(40, true), cdw11: dv.getUint32(44, true), cdw12: dv.getUint32(48, true),
    cdw13: dv.getUint32(52, true), cdw14: dv.getUint32(56, true), cdw15: dv.getUint32(60, true),
  };
}

// Command builders and their parsers (the controller side).

export interface IdentifyParams { cid: number; cns: number; nsid?: number; cntid?: number; prp1: number; prp2?: number }

/** Identify: CDW10 CNS 7:0, CNTID 31:16. */
export function identifyCommand(p: IdentifyParams): Sqe {
  return sqe({
    opcode: AdminOpcode.Identify, cid: p.cid, nsid: p.nsid ?? 0, prp1: p.prp1, prp2: p.prp2 ?? 0,
    cdw10: (field("CNS", p.cns, 8) | (field("CNTID", p.cntid ?? 0, 16) << 16)) >>> 0,
  });
}

export function parseIdentify(s: Sqe): { cns: number; cntid: number; nsid: number } {
  return { cns: bits(s.cdw10, 0, 8), cntid: bits(s.cdw10, 16, 16), nsid: s.nsid };
}

export interface CreateIoCqParams { cid: number; qid: number; qsize: number; prp1: number; pc: boolean; ien: boolean; iv: number }

/** Create I/O CQ: CDW10 QID 15:0, QSIZE 31:16 (0-based); CDW11 PC 0, IEN 1, IV 31:16. */
export function createIoCqCommand(p: CreateIoCqParams): Sqe {
  return sqe({
    opcode: AdminOpcode.CreateIoCq, cid: p.cid, prp1: p.prp1,
    cdw10: (field("QID", p.qid, 16) | (field("QSIZE", p.qsize, 16) << 16)) >>> 0,
    cdw11: ((p.pc ? 1 : 0) | (p.ien ? 2 : 0) | (field("IV", p.iv, 16) << 16)) >>> 0,
  });
}

export function parseCreateIoCq(s: Sqe): Omit<CreateIoCqParams, "cid"> {
  return { qid: bits(s.cdw10, 0, 16), qsize: bits(s.cdw10, 16, 16), prp1: s.prp1, pc: bit(s.cdw11, 0), ien: bit(s.cdw11, 1), iv: bits(s.cdw11, 16, 16) };
}

export interface CreateIoSqParams { cid: number; qid: number; qsize: number; prp1: number; pc: boolean; qprio: number; cqid: number }

/** Create I/O SQ: CDW10 QID 15:0, QSIZE 31:16 (0-based); CDW11 PC 0, QPRIO 2:1, CQID 31:16. */
export function createIoSqCommand(p: CreateIoSqParams): Sqe {
  return sqe({
    opcode: AdminOpcode.CreateIoSq, cid: p.cid, prp1: p.prp1,
    cdw10: (field("QID", p.qid, 16) | (field("QSIZE", p.qsize, 16) << 16)) >>> 0,
    cdw11: ((p.pc ? 1 : 0) | (field("QPRIO", p.qprio, 2) << 1) | (field("CQID", p.cqid, 16) << 16)) >>> 0,
  });
}

export function parseCreateIoSq(s: Sqe): Omit<CreateIoSqParams, "cid"> {
  return { qid: bits(s.cdw10, 0, 16), qsize: bits(s.cdw10, 16, 16), prp1: s.prp1, pc: bit(s.cdw11, 0), qprio: bits(s.cdw11, 1, 2), cqid: bits(s.cdw11, 16, 16) };
}

/** Delete I/O SQ or CQ: CDW10 QID 15:0. */
export function deleteIoQueueCommand(p: { cid: number; qid: number; isCompletion: boolean }): Sqe {
  return sqe({ opcode: p.isCompletion ? AdminOpcode.DeleteIoCq : AdminOpcode.DeleteIoSq, cid: p.cid, cdw10: field("QID", p.qid, 16) });
}

export function parseDeleteIoQueue(s: Sqe): { qid: number } {
  return { qid: bits(s.cdw10, 0, 16) };
}

export interface ReadWriteParams { cid: number; nsid: number; slba: number; nlb: number; prp1: number; prp2?: number; fua?: boolean; lr?: boolean }

/** Read or Write: CDW10/11 SLBA (low/high), CDW12 NLB 15:0 (0-based), FUA 30, LR 31. */
function readWrite(opcode: NvmOpcode, p: ReadWriteParams): Sqe {
  const slba = u64("SLBA", p.slba);
  return sqe({
    opcode, cid: p.cid, nsid: p.nsid, prp1: p.prp1, prp2: p.prp2 ?? 0,
    cdw10: slba % TWO32, cdw11: Math.floor(slba / TWO32),
    cdw12: (field("NLB", p.nlb, 16) | (p.fua ? 1 << 30 : 0) | (p.lr ? 1 << 31 : 0)) >>> 0,
  });
}

export const readCommand = (p: ReadWriteParams): Sqe => readWrite(NvmOpcode.Read, p);
export const writeCommand = (p: ReadWriteParams): Sqe => readWrite(NvmOpcode.Write, p);

export function parseReadWrite(s: Sqe): Omit<ReadWriteParams, "cid"> & { prp2: number; fua: boolean; lr: boolean } {
  return {
    nsid: s.nsid, slba: s.cdw11 * TWO32 + s.cdw10, nlb: bits(s.cdw12, 0, 16), prp1: s.prp1, prp2: s.prp2,
    fua: bit(s.cdw12, 30), lr: bit(s.cdw12, 31),
  };
}

export function flushCommand(p: { cid: number; nsid: number }): Sqe {
  return sqe({ opcode: NvmOpcode.Flush, cid: p.cid, nsid: p.nsid });
}

// ---------------------------------------------------------------------------------------------
// 3. Completion Queue Entry (Base spec 4.6)

export enum StatusCodeType {
  Generic = 0,
  CommandSpecific = 1,
  MediaAndDataIntegrity = 2,
  PathRelated = 3,
  VendorSpecific = 7,
}

/** Generic command status (SCT 0); 0x80.. are the NVM Command Set's. */
export enum GenericStatus {
  Success = 0x00,
  InvalidCommandOpcode = 0x01,
  InvalidFieldInCommand = 0x02,
  DataTransferError = 0x04,
  InternalError = 0x06,
  InvalidNamespaceOrFormat = 0x0b,
  PrpOffsetInvalid = 0x13,
  LbaOutOfRange = 0x80,
}

/** Command specific status (SCT 1) for the queue management commands. */
export enum CommandSpecificStatus {
  CompletionQueueInvalid = 0x00,
  InvalidQueueIdentifier = 0x01,
  InvalidQueueSize = 0x02,
  InvalidInterruptVector = 0x08,
  InvalidQueueDeletion = 0x0c,
}

/** The Status Field: bits 15:1 of the CQE's status word. */
export interface Status {
  sc: number; // 8:1 of the status word
  sct: number; // 11:9
  crd: number; // 13:12, command retry delay
  more: boolean; // 14, M
  dnr: boolean; // 15, do not retry
}

export const SUCCESS: Readonly<Status> = Object.freeze({ sc: 0, sct: 0, crd: 0, more: false, dnr: false });

/** A status with CRD 0 and M clear. */
export function status(sct: StatusCodeType, sc: number, dnr = false): Status {
  return { sc, sct, crd: 0, more: false, dnr };
}

export const isSuccess = (s: Status): boolean => s.sct === StatusCodeType.Generic && s.sc === GenericStatus.Success;

/** The 16-bit word at CQE bytes 14..15: Phase Tag in bit 0, Status Field in 15:1. */
export function encodeStatusWord(phase: boolean, s: Status): number {
  return (phase ? 1 : 0) | (field("SC", s.sc, 8) << 1) | (field("SCT", s.sct, 3) << 9) | (field("CRD", s.crd, 2) << 12)
    | (s.more ? 1 << 14 : 0) | (s.dnr ? 1 << 15 : 0);
}

export function decodeStatusWord(word: number): { phase: boolean; status: Status } {
  return { phase: bit(word, 0), status: { sc: bits(word, 1, 8), sct: bits(word, 9, 3), crd: bits(word, 12, 2), more: bit(word, 14), dnr: bit(word, 15) } };
}

/** A 16-byte completion queue entry. */
export interface Cqe {
  dw0: number; // command specific
  dw1: number; // command specific / reserved
  sqhd: number; // DW2 15:0
  sqid: number; // DW2 31:16
  cid: number; // DW3 15:0
  phase: boolean; // DW3 16
  status: Status; // DW3 31:17
}

export function encodeCqe(c: Cqe, out: Uint8Array = new Uint8Array(CQE_BYTES), offset = 0): Uint8Array {
  need(out, offset, CQE_BYTES, "CQE");
  const dv = new DataView(out.buffer, out.byteOffset + offset, CQE_BYTES);
  dv.setUint32(0, field("DW0", c.dw0, 32), true);
  dv.setUint32(4, field("DW1", c.dw1, 32), true);
  dv.setUint16(8, field("SQHD", c.sqhd, 16), true);
  dv.setUint16(10, field("SQID", c.sqid, 16), true);
  dv.setUint16(12, field("CID", c.cid, 16), true);
  dv.setUint16(14, encodeStatusWord(c.phase, c.status), true);
  return out;
}

export function decodeCqe(bytes: Uint8Array, offset = 0): Cqe {
  need(bytes, offset, CQE_BYTES, "CQE");
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, CQE_BYTES);
  const { phase, status: st } = decodeStatusWord(dv.getUint16(14, true));
  return { dw0: dv.getUint32(0, true), dw1: dv.getUint32(4, true), sqhd: dv.getUint16(8, true), sqid: dv.getUint16(10, true), cid: dv.getUint16(12, true), phase, status: st };
}

/** The Phase Tag of the CQE at `offset`, without decoding the rest (for polling). */
export function cqePhase(bytes: Uint8Array, offset = 0): boolean {
  need(bytes, offset, CQE_BYTES, "CQE");
  return (bytes[offset + 14] & 1) === 1;
}

// ---------------------------------------------------------------------------------------------
// 4. PRPs (Base spec 4.1.1)

export interface PrpSegment { address: number; length: number }

/** Why a PRP walk failed; a controller completes the command with GenericStatus.PrpOffsetInvalid. */
export type PrpError =
  | "prp1-alignment" // PRP1 is not dword aligned (bits 1:0 set)
  | "prp2-offset" // PRP2 is a page pointer (two-page transfer) with a non-zero offset
  | "list-pointer-alignment" // PRP2 is a list pointer that is not qword aligned (bits 2:0 set)
  | "list-entry-offset"; // an entry in a PRP list (data page or chain pointer) has a non-zero offset

export type PrpResult =
  | { ok: true; segments: PrpSegment[] }
  | { ok: false; error: PrpError; value: number; message: string };

function checkPageSize(pageSize: number): void {
  if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 2 ** 27 || (pageSize & (pageSize - 1)) !== 0) {
    throw new RangeError(`page size ${pageSize} is not a power of two from 4 KiB to 128 MiB`);
  }
}

const fail = (error: PrpError, value: number, message: string): PrpResult => ({ ok: false, error, value, message });

/**
 * The memory segments a transfer of `length` bytes described by PRP1/PRP2 covers, in order,
 * one per memory page. `readListEntry(address)` returns the 64-bit PRP list entry stored at
 * `address` (the caller reads host memory). Invalid entries give `{ ok: false }`.
 */
export function prpEntries(prp1: number, prp2: number, length: number, pageSize: number, readListEntry: (address: number) => number): PrpResult {
  checkPageSize(pageSize);
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length ${length} is not a byte count`);
  if (length === 0) return { ok: true, segments: [] };
  if (prp1 % 4 !== 0) return fail("prp1-alignment", prp1, `PRP1 0x${prp1.toString(16)} is not dword aligned`);
  const first = Math.min(length, pageSize - (prp1 % pageSize));
  const segments: PrpSegment[] = [{ address: prp1, length: first }];
  let remaining = length - first;
  if (remaining === 0) return { ok: true, segments };
  if (remaining <= pageSize) {
    if (prp2 % pageSize !== 0) return fail("prp2-offset", prp2, `PRP2 0x${prp2.toString(16)} has a non-zero page offset`);
    segments.push({ address: prp2, length: remaining });
    return { ok: true, segments };
  }
  if (prp2 % 8 !== 0) return fail("list-pointer-alignment", prp2, `PRP list pointer 0x${prp2.toString(16)} is not qword aligned`);
  let list = prp2;
  let entries = Math.ceil(remaining / pageSize);
  while (entries > 0) {
    const slots = (pageSize - (list % pageSize)) / 8;
    let next = -1;
    for (let i = 0; i < slots && entries > 0; i++) {
      const value = readListEntry(list + 8 * i);
      if (value % pageSize !== 0) return fail("list-entry-offset", value, `PRP list entry 0x${value.toString(16)} at 0x${(list + 8 * i).toString(16)} has a non-zero page offset`);
      if (i === slots - 1 && entries > 1) {
        next = value; // the last entry of a full list page points to the next list page
        break;
      }
      const len = Math.min(pageSize, remaining);
      segments.push({ address: value, length: len });
      remaining -= len;
      entries--;
    }
    if (entries > 0) list = next;
  }
  return { ok: true, segments };
}

/** A PRP list page a driver must write at `address` (see encodePrpList). */
export interface PrpListPage { address: number; entries: number[] }

/**
 * PRP1/PRP2 for a buffer made of the page-aligned pages `bufferPages`, starting `offset`
 * bytes into the first. When more than two pages are touched, `allocateListPage()` gives the
 * page-aligned address of a fresh PRP list page; the pages to write are returned in `lists`.
 */
export function buildPrps(bufferPages: number[], offset: number, length: number, pageSize: number, allocateListPage: () => number): { prp1: number; prp2: number; lists: PrpListPage[] } {
  checkPageSize(pageSize);
  if (!Number.isInteger(offset) || offset < 0 || offset >= pageSize || offset % 4 !== 0) throw new RangeError(`offset ${offset} is not a dword-aligned offset within a page`);
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length ${length} is not a byte count`);
  const pages = length === 0 ? 0 : Math.ceil((offset + length) / pageSize);
  if (pages > bufferPages.length) throw new RangeError(`${length} bytes at offset ${offset} need ${pages} pages; have ${bufferPages.length}`);
  const aligned = (address: number, what: string) => {
    if (!Number.isSafeInteger(address) || address < 0 || address % pageSize !== 0) throw new RangeError(`${what} 0x${address.toString(16)} is not page aligned`);
    return address;
  };
  for (let i = 0; i < pages; i++) aligned(bufferPages[i], "buffer page");
  if (pages === 0) return { prp1: bufferPages.length > 0 ? aligned(bufferPages[0], "buffer page") + offset : 0, prp2: 0, lists: [] };
  const prp1 = bufferPages[0] + offset;
  if (pages === 1) return { prp1, prp2: 0, lists: [] };
  if (pages === 2) return { prp1, prp2: bufferPages[1], lists: [] };
  const rest = bufferPages.slice(1, pages);
  const perPage = pageSize / 8;
  const lists: PrpListPage[] = [];
  let address = aligned(allocateListPage(), "PRP list page");
  const prp2 = address;
  for (let i = 0; ;) {
    if (rest.length - i <= perPage) {
      lists.push({ address, entries: rest.slice(i) });
      break;
    }
    const next = aligned(allocateListPage(), "PRP list page");
    lists.push({ address, entries: [...rest.slice(i, i + perPage - 1), next] });
    i += perPage - 1;
    address = next;
  }
  return { prp1, prp2, lists };
}

/** The bytes of a PRP list: each entry as a little-endian 64-bit value. */
export function encodePrpList(entries: number[]): Uint8Array {
  const out = new Uint8Array(entries.length * 8);
  const dv = view(out);
  entries.forEach((e, i) => setU64(dv, 8 * i, u64("PRP entry", e)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// 5. Identify data (Base spec 5.17.2, NVM Command Set spec 4.1.5)

export const IDENTIFY_BYTES = 4096;

function writeAscii(bytes: Uint8Array, at: number, size: number, text: string, name: string): void {
  if (text.length > size) throw new RangeError(`${name} "${text}" is longer than ${size} bytes`);
  for (let i = 0; i < size; i++) {
    const code = i < text.length ? text.charCodeAt(i) : 0x20;
    if (code < 0x20 || code > 0x7e) throw new RangeError(`${name} "${text}" is not printable ASCII`);
    bytes[at + i] = code;
  }
}

function readAscii(bytes: Uint8Array, at: number, size: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + size)).replace(/[ \0]+$/, "");
}

/** The Identify Controller fields implemented; everything else encodes as zero. */
export interface IdentifyController {
  vid: number; // 1:0, PCI vendor ID
  ssvid: number; // 3:2, PCI subsystem vendor ID
  sn: string; // 23:4, serial number, ASCII, space padded
  mn: string; // 63:24, model number, ASCII, space padded
  fr: string; // 71:64, firmware revision, ASCII, space padded
  mdts: number; // 77, maximum data transfer size: 2^MDTS × CAP.MPSMIN pages, 0 = no limit
  cntlid: number; // 79:78, controller ID
  ver: number; // 83:80, version (VS encoding)
  sqes: { min: number; max: number }; // 512, log2 of the required (3:0) and maximum (7:4) SQ entry size
  cqes: { min: number; max: number }; // 513, same for CQ entries
  nn: number; // 519:516, number of namespaces (maximum NSID)
}

export function encodeIdentifyController(c: IdentifyController): Uint8Array {
  const out = new Uint8Array(IDENTIFY_BYTES);
  const dv = view(out);
  dv.setUint16(0, field("VID", c.vid, 16), true);
  dv.setUint16(2, field("SSVID", c.ssvid, 16), true);
  writeAscii(out, 4, 20, c.sn, "SN");
  writeAscii(out, 24, 40, c.mn, "MN");
  writeAscii(out, 64, 8, c.fr, "FR");
  out[77] = field("MDTS", c.mdts, 8);
  dv.setUint16(78, field("CNTLID", c.cntlid, 16), true);
  dv.setUint32(80, field("VER", c.ver, 32), true);
  out[512] = field("SQES min", c.sqes.min, 4) | (field("SQES max", c.sqes.max, 4) << 4);
  out[513] = field("CQES min", c.cqes.min, 4) | (field("CQES max", c.cqes.max, 4) << 4);
  dv.setUint32(516, field("NN", c.nn, 32), true);
  return out;
}

export function decodeIdentifyController(bytes: Uint8Array): IdentifyController {
  need(bytes, 0, IDENTIFY_BYTES, "Identify Controller");
  const dv = view(bytes);
  return {
    vid: dv.getUint16(0, true), ssvid: dv.getUint16(2, true), sn: readAscii(bytes, 4, 20), mn: readAscii(bytes, 24, 40),
    fr: readAscii(bytes, 64, 8), mdts: bytes[77], cntlid: dv.getUint16(78, true), ver: dv.getUint32(80, true),
    sqes: { min: bytes[512] & 0xf, max: bytes[512] >> 4 }, cqes: { min: bytes[513] & 0xf, max: bytes[513] >> 4 },
    nn: dv.getUint32(516, true),
  };
}

/** An LBA Format (LBAF n at byte 128 + 4n). */
export interface LbaFormat {
  ms: number; // 15:0, metadata bytes per LBA
  lbads: number; // 23:16, log2 of the LBA data size (9 = 512 bytes)
  rp: number; // 25:24, relative performance (0 best .. 3 degraded)
}

/** The Identify Namespace fields implemented. NLBAF (byte 25) is lbaf.length - 1. */
export interface IdentifyNamespace {
  nsze: number; // 7:0, namespace size in logical blocks
  ncap: number; // 15:8, namespace capacity
  nuse: number; // 23:16, namespace utilization
  flbas: number; // 26, formatted LBA size: format index in 3:0 (low) and 6:5 (high), bit 4 metadata at end of LBA
  lbaf: LbaFormat[]; // 1 to 64 formats
}

export function encodeIdentifyNamespace(n: IdentifyNamespace): Uint8Array {
  if (n.lbaf.length < 1 || n.lbaf.length > 64) throw new RangeError(`${n.lbaf.length} LBA formats; 1 to 64 allowed`);
  const out = new Uint8Array(IDENTIFY_BYTES);
  const dv = view(out);
  setU64(dv, 0, u64("NSZE", n.nsze));
  setU64(dv, 8, u64("NCAP", n.ncap));
  setU64(dv, 16, u64("NUSE", n.nuse));
  out[25] = n.lbaf.length - 1;
  out[26] = field("FLBAS", n.flbas, 8);
  n.lbaf.forEach((f, i) => dv.setUint32(128 + 4 * i, (field("MS", f.ms, 16) | (field("LBADS", f.lbads, 8) << 16) | (field("RP", f.rp, 2) << 24)) >>> 0, true));
  return out;
}

export function decodeIdentifyNamespace(bytes: Uint8Array): IdentifyNamespace {
  need(bytes, 0, IDENTIFY_BYTES, "Identify Namespace");
  const dv = view(bytes);
  const count = Math.min(bytes[25], 63) + 1;
  const lbaf: LbaFormat[] = [];
  for (let i = 0; i < count; i++) {
    const v = dv.getUint32(128 + 4 * i, true);
    lbaf.push({ ms: bits(v, 0, 16), lbads: bits(v, 16, 8), rp: bits(v, 24, 2) });
  }
  return { nsze: getU64(dv, 0), ncap: getU64(dv, 8), nuse: getU64(dv, 16), flbas: bytes[26], lbaf };
}

/** The LBA format index FLBAS selects (bits 3:0 low, 6:5 high). */
export function flbasFormatIndex(flbas: number): number {
  return (flbas & 0xf) | (((flbas >> 5) & 3) << 4);
}

/** The namespace's logical block size in bytes, from its selected LBA format. */
export function lbaDataSize(n: IdentifyNamespace): number {
  const f = n.lbaf[flbasFormatIndex(n.flbas)];
  if (!f) throw new RangeError(`FLBAS selects LBA format ${flbasFormatIndex(n.flbas)}; only ${n.lbaf.length} defined`);
  return 2 ** f.lbads;
}

/** The Active Namespace ID list (CNS 02h): up to 1024 increasing NSIDs, zero filled. */
export function encodeNamespaceList(nsids: number[]): Uint8Array {
  if (nsids.length > 1024) throw new RangeError(`${nsids.length} namespace IDs; at most 1024 fit`);
  const out = new Uint8Array(IDENTIFY_BYTES);
  const dv = view(out);
  nsids.forEach((id, i) => {
    if (field("NSID", id, 32) === 0 || (i > 0 && id <= nsids[i - 1])) throw new RangeError(`namespace IDs must be non-zero and increasing: ${nsids.join(", ")}`);
    dv.setUint32(4 * i, id, true);
  });
  return out;
}

export function decodeNamespaceList(bytes: Uint8Array): number[] {
  need(bytes, 0, IDENTIFY_BYTES, "namespace list");
  const dv = view(bytes);
  const ids: number[] = [];
  for (let i = 0; i < 1024; i++) {
    const id = dv.getUint32(4 * i, true);
    if (id === 0) break;
    ids.push(id);
  }
  return ids;
}
