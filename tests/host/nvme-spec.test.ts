// The NVMe data structures against values written out by hand from the NVM Express Base
// Specification 2.0 (register bit positions, SQE/CQE byte layouts, PRP rules, Identify
// offsets), and round trips of every encoder and decoder.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  encodeCap, decodeCap, splitQword, joinQword, encodeVersion, decodeVersion, encodeCc, decodeCc, encodeCsts, decodeCsts,
  encodeAqa, decodeAqa, memoryPageSize, doorbellOffset, doorbellAt, encodeSqe, decodeSqe, sqe, identifyCommand, parseIdentify,
  createIoCqCommand, parseCreateIoCq, createIoSqCommand, parseCreateIoSq, deleteIoQueueCommand, parseDeleteIoQueue,
  readCommand, writeCommand, parseReadWrite, flushCommand, encodeStatusWord, decodeStatusWord, encodeCqe, decodeCqe, cqePhase,
  status, isSuccess, SUCCESS, prpEntries, buildPrps, encodePrpList, encodeIdentifyController, decodeIdentifyController,
  encodeIdentifyNamespace, decodeIdentifyNamespace, flbasFormatIndex, lbaDataSize, encodeNamespaceList, decodeNamespaceList,
  NvmeReg, CapCss, CcCss, CcAms, Shn, Shst, AdminOpcode, NvmOpcode, Cns, Psdt, QueuePriority, StatusCodeType, GenericStatus,
  CommandSpecificStatus, NVME_VERSION_2_0, IDENTIFY_BYTES, SQE_BYTES, CQE_BYTES,
  type Cap, type Cqe, type Sqe, type PrpResult, type IdentifyController, type IdentifyNamespace,
} from "../../board/devices/nvme/spec.ts";

const hex = (s: string) => Uint8Array.from(s.replace(/[\s|]/g, "").match(/../g)!.map((x) => parseInt(x, 16)));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// --- Registers ---------------------------------------------------------------------------------

test("register offsets are those of the Base spec's register map", () => {
  assert.deepEqual(
    [NvmeReg.CAP, NvmeReg.VS, NvmeReg.INTMS, NvmeReg.INTMC, NvmeReg.CC, NvmeReg.CSTS, NvmeReg.NSSR, NvmeReg.AQA, NvmeReg.ASQ, NvmeReg.ACQ],
    [0x00, 0x08, 0x0c, 0x10, 0x14, 0x1c, 0x20, 0x24, 0x28, 0x30],
  );
});

const ZERO_CAP: Cap = {
  mqes: 0, cqr: false, ams: 0, to: 0, dstrd: 0, nssrs: false, css: 0, bps: false, cps: 0, mpsmin: 0, mpsmax: 0,
  pmrs: false, cmbs: false, nsss: false, crms: 0,
};

test("CAP: each field at its maximum lands on its spec bit positions", () => {
  const cases: [Partial<Cap>, bigint][] = [
    [{ mqes: 0xffff }, 0xffffn],
    [{ cqr: true }, 1n << 16n],
    [{ ams: 3 }, 3n << 17n],
    [{ to: 0xff }, 0xffn << 24n],
    [{ dstrd: 0xf }, 0xfn << 32n],
    [{ nssrs: true }, 1n << 36n],
    [{ css: 0xff }, 0xffn << 37n],
    [{ bps: true }, 1n << 45n],
    [{ cps: 3 }, 3n << 46n],
    [{ mpsmin: 0xf }, 0xfn << 48n],
    [{ mpsmax: 0xf }, 0xfn << 52n],
    [{ pmrs: true }, 1n << 56n],
    [{ cmbs: true }, 1n << 57n],
    [{ nsss: true }, 1n << 58n],
    [{ crms: 3 }, 3n << 59n],
  ];
  for (const [fields, value] of cases) {
    const cap = { ...ZERO_CAP, ...fields };
    assert.equal(encodeCap(cap), value, JSON.stringify(fields));
    assert.deepEqual(decodeCap(value), cap, JSON.stringify(fields));
  }
});

test("CAP: a typical controller's value written out by hand, and its 32-bit halves", () => {
  // MQES 1023, CQR, TO 20 (10 s), DSTRD 0, CSS NVM, MPSMIN 0 (4 KiB), MPSMAX 4 (64 KiB)
  const cap: Cap = { ...ZERO_CAP, mqes: 1023, cqr: true, to: 20, css: CapCss.Nvm, mpsmax: 4 };
  assert.equal(encodeCap(cap), 0x00400020_140103ffn);
  assert.deepEqual(splitQword(0x00400020_140103ffn), { low: 0x140103ff, high: 0x00400020 });
  assert.equal(joinQword(0x140103ff, 0x00400020), 0x00400020_140103ffn);
  assert.deepEqual(decodeCap(joinQword(0x140103ff, 0x00400020)), cap);
});

test("CAP: reserved bits are ignored when decoding and out-of-range fields are refused", () => {
  const reserved = (0x1fn << 19n) | (0x7n << 61n);
  assert.deepEqual(decodeCap(reserved), ZERO_CAP);
  assert.equal(encodeCap(decodeCap(0xffff_ffff_ffff_ffffn)), 0xffff_ffff_ffff_ffffn & ~reserved);
  assert.throws(() => encodeCap({ ...ZERO_CAP, mqes: 0x10000 }), RangeError);
  assert.throws(() => encodeCap({ ...ZERO_CAP, dstrd: 16 }), RangeError);
  assert.throws(() => splitQword(1n << 64n), RangeError);
});

test("VS: 2.0.0 is 0x00020000 and 1.4.0 is 0x00010400, both ways", () => {
  assert.equal(encodeVersion({ major: 2, minor: 0, tertiary: 0 }), NVME_VERSION_2_0);
  assert.equal(NVME_VERSION_2_0, 0x00020000);
  assert.equal(encodeVersion({ major: 1, minor: 4, tertiary: 0 }), 0x00010400);
  assert.deepEqual(decodeVersion(0x00010201), { major: 1, minor: 2, tertiary: 1 });
});

test("CC: EN=1, IOSQES=6, IOCQES=4 is 0x00460001", () => {
  const cc = { en: true, css: CcCss.Nvm, mps: 0, ams: CcAms.RoundRobin, shn: Shn.None, iosqes: 6, iocqes: 4, crime: false };
  assert.equal(encodeCc(cc), 0x00460001);
  assert.deepEqual(decodeCc(0x00460001), cc);
});

test("CC: CSS, MPS, AMS, SHN and CRIME land on bits 6:4, 10:7, 13:11, 15:14 and 24", () => {
  const cc = { en: true, css: CcCss.AdminOnly, mps: 1, ams: CcAms.WeightedRoundRobinUrgent, shn: Shn.Normal, iosqes: 6, iocqes: 4, crime: true };
  assert.equal(encodeCc(cc), 0x014648f1);
  assert.deepEqual(decodeCc(0x014648f1), cc);
  assert.equal(encodeCc({ ...cc, en: false, css: 0, mps: 0xf, ams: 0, shn: 0, iosqes: 0, iocqes: 0, crime: false }), 0x780);
  assert.equal(encodeCc({ ...cc, en: false, css: 0, mps: 0, ams: CcAms.VendorSpecific, shn: Shn.Abrupt, iosqes: 0, iocqes: 0, crime: false }), 0xb800);
  assert.equal(memoryPageSize(0), 4096);
  assert.equal(memoryPageSize(4), 65536);
});

test("CSTS: RDY bit 0, CFS bit 1, SHST bits 3:2, NSSRO 4, PP 5, ST 6", () => {
  const none = { rdy: false, cfs: false, shst: Shst.Normal, nssro: false, pp: false, st: false };
  assert.equal(encodeCsts({ ...none, rdy: true }), 0x1);
  assert.equal(encodeCsts({ ...none, cfs: true }), 0x2);
  assert.equal(encodeCsts({ ...none, rdy: true, shst: Shst.Complete }), 0x9);
  assert.equal(encodeCsts({ ...none, shst: Shst.Occurring }), 0x4);
  const all = { rdy: true, cfs: true, shst: 3, nssro: true, pp: true, st: true };
  assert.equal(encodeCsts(all), 0x7f);
  assert.deepEqual(decodeCsts(0x7f), all);
  assert.deepEqual(decodeCsts(0x9), { ...none, rdy: true, shst: Shst.Complete });
});

test("AQA: ASQS in bits 11:0 and ACQS in bits 27:16, 0-based, 12 bits each", () => {
  assert.equal(encodeAqa({ asqs: 31, acqs: 31 }), 0x001f001f);
  assert.equal(encodeAqa({ asqs: 0xfff, acqs: 0 }), 0x00000fff);
  assert.equal(encodeAqa({ asqs: 0, acqs: 0xfff }), 0x0fff0000);
  assert.deepEqual(decodeAqa(0xffff_f00f), { asqs: 0x00f, acqs: 0xfff });
  assert.throws(() => encodeAqa({ asqs: 0x1000, acqs: 0 }), RangeError);
});

test("doorbells with DSTRD 0 are 4 bytes apart, SQ tail then CQ head per queue", () => {
  assert.equal(doorbellOffset(0, false, 0), 0x1000);
  assert.equal(doorbellOffset(0, true, 0), 0x1004);
  assert.equal(doorbellOffset(1, false, 0), 0x1008);
  assert.equal(doorbellOffset(1, true, 0), 0x100c);
  assert.equal(doorbellOffset(7, true, 0), 0x103c);
});

test("doorbells with DSTRD 2 are 16 bytes apart", () => {
  assert.equal(doorbellOffset(0, false, 2), 0x1000);
  assert.equal(doorbellOffset(0, true, 2), 0x1010);
  assert.equal(doorbellOffset(1, false, 2), 0x1020);
  assert.equal(doorbellOffset(1, true, 2), 0x1030);
  assert.equal(doorbellOffset(3, false, 2), 0x1060);
});

test("doorbellAt inverts doorbellOffset and rejects offsets between doorbells", () => {
  for (const dstrd of [0, 2, 5]) {
    for (const queue of [0, 1, 2, 17, 0xffff]) {
      for (const isCompletion of [false, true]) {
        assert.deepEqual(doorbellAt(doorbellOffset(queue, isCompletion, dstrd), dstrd), { queue, isCompletion });
      }
    }
  }
  assert.equal(doorbellAt(0x1004, 2), undefined);
  assert.equal(doorbellAt(0xffc, 0), undefined);
  assert.equal(doorbellAt(0x1002, 0), undefined);
});

// --- Submission queue entries --------------------------------------------------------------------

test("opcodes are the Base and NVM Command Set spec values", () => {
  assert.deepEqual(
    [AdminOpcode.DeleteIoSq, AdminOpcode.CreateIoSq, AdminOpcode.GetLogPage, AdminOpcode.DeleteIoCq, AdminOpcode.CreateIoCq, AdminOpcode.Identify, AdminOpcode.SetFeatures, AdminOpcode.GetFeatures],
    [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x09, 0x0a],
  );
  assert.deepEqual([NvmOpcode.Flush, NvmOpcode.Write, NvmOpcode.Read], [0x00, 0x01, 0x02]);
  assert.deepEqual([Cns.Namespace, Cns.Controller, Cns.ActiveNamespaceList], [0x00, 0x01, 0x02]);
});

test("SQE: a Read command written out byte by byte", () => {
  const cmd = readCommand({ cid: 0x1234, nsid: 1, slba: 0x1_0000_0002, nlb: 7, prp1: 0x1_2345_6000, prp2: 0x0abc_d000, fua: true });
  const bytes = encodeSqe(cmd);
  assert.equal(bytes.length, SQE_BYTES);
  assert.equal(toHex(bytes), toHex(hex(`
    02 00 34 12   01 00 00 00   00 00 00 00   00 00 00 00
    00 00 00 00 00 00 00 00     00 60 45 23 01 00 00 00
    00 d0 bc 0a 00 00 00 00     02 00 00 00   01 00 00 00
    07 00 00 40   00 00 00 00   00 00 00 00   00 00 00 00`)));
});

test("SQE: FUSE, PSDT, CID, CDW2/3, MPTR and CDW13-15 land on their bytes and round-trip", () => {
  const s: Sqe = {
    opcode: 0x81, fuse: 2, psdt: Psdt.SglSegment, cid: 0xbeef, nsid: 0xffffffff, cdw2: 0x11111111, cdw3: 0x22222222,
    mptr: 0x0123_4567_89ab_c, prp1: 0x1f_ffff_f004, prp2: 2 ** 53 - 4096, cdw10: 0xa, cdw11: 0xb, cdw12: 0xc, cdw13: 0xd, cdw14: 0xe, cdw15: 0xffffffff,
  };
  const bytes = encodeSqe(s);
  assert.equal(toHex(bytes.subarray(0, 4)), "8182efbe"); // FUSE 10b in bits 9:8 (0x02), PSDT 10b in 15:14 (0x80)
  assert.equal(toHex(bytes.subarray(16, 24)), "bc9a785634120000");
  assert.equal(toHex(bytes.subarray(52, 64)), "0d0000000e000000ffffffff");
  assert.deepEqual(decodeSqe(bytes), s);
});

test("SQE: encodes into and decodes from a slot inside a larger queue buffer", () => {
  const queue = new Uint8Array(SQE_BYTES * 4);
  const cmd = flushCommand({ cid: 9, nsid: 3 });
  encodeSqe(cmd, queue, SQE_BYTES * 2);
  assert.deepEqual(decodeSqe(queue, SQE_BYTES * 2), cmd);
  assert.ok(queue.subarray(0, SQE_BYTES * 2).every((b) => b === 0));
  assert.throws(() => encodeSqe(cmd, queue, SQE_BYTES * 3 + 1), RangeError);
});

test("SQE: fields that do not fit are refused", () => {
  assert.throws(() => encodeSqe(sqe({ opcode: 0x100 })), RangeError);
  assert.throws(() => encodeSqe(sqe({ opcode: 0, cid: 0x10000 })), RangeError);
  assert.throws(() => encodeSqe(sqe({ opcode: 0, prp1: 2 ** 53 })), RangeError);
  assert.throws(() => encodeSqe(sqe({ opcode: 0, cdw10: -1 })), RangeError);
});

test("Identify builders: CNS in CDW10 7:0, CNTID in 31:16, NSID in bytes 4..7", () => {
  const ctrl = identifyCommand({ cid: 1, cns: Cns.Controller, prp1: 0x10000 });
  assert.equal(ctrl.opcode, AdminOpcode.Identify);
  assert.equal(ctrl.cdw10, 0x00000001);
  assert.equal(ctrl.nsid, 0);
  const ns = identifyCommand({ cid: 2, cns: Cns.Namespace, nsid: 1, prp1: 0x11000 });
  assert.equal(ns.cdw10, 0);
  assert.equal(toHex(encodeSqe(ns).subarray(4, 8)), "01000000");
  const list = identifyCommand({ cid: 3, cns: Cns.ActiveNamespaceList, nsid: 0, cntid: 5, prp1: 0x12000 });
  assert.equal(list.cdw10, 0x00050002);
  for (const cmd of [ctrl, ns, list]) {
    const back = decodeSqe(encodeSqe(cmd));
    assert.deepEqual(back, cmd);
    assert.deepEqual(parseIdentify(back), { cns: cmd.cdw10 & 0xff, cntid: cmd.cdw10 >>> 16, nsid: cmd.nsid });
  }
});

test("Create I/O CQ: QID/QSIZE in CDW10, PC bit 0, IEN bit 1, IV 31:16 in CDW11", () => {
  const params = { qid: 1, qsize: 63, prp1: 0x20_0000, pc: true, ien: true, iv: 1 };
  const cmd = createIoCqCommand({ cid: 4, ...params });
  assert.equal(cmd.opcode, AdminOpcode.CreateIoCq);
  assert.equal(cmd.cdw10, 0x003f0001);
  assert.equal(cmd.cdw11, 0x00010003);
  assert.deepEqual(parseCreateIoCq(decodeSqe(encodeSqe(cmd))), params);
  const plain = { qid: 0xffff, qsize: 0xffff, prp1: 0, pc: false, ien: false, iv: 0xffff };
  assert.deepEqual(parseCreateIoCq(decodeSqe(encodeSqe(createIoCqCommand({ cid: 0, ...plain })))), plain);
});

test("Create I/O SQ: QID/QSIZE in CDW10, PC bit 0, QPRIO 2:1, CQID 31:16 in CDW11", () => {
  const params = { qid: 1, qsize: 63, prp1: 0x30_0000, pc: true, qprio: QueuePriority.Medium, cqid: 1 };
  const cmd = createIoSqCommand({ cid: 5, ...params });
  assert.equal(cmd.opcode, AdminOpcode.CreateIoSq);
  assert.equal(cmd.cdw10, 0x003f0001);
  assert.equal(cmd.cdw11, 0x00010005);
  assert.deepEqual(parseCreateIoSq(decodeSqe(encodeSqe(cmd))), params);
  assert.equal(createIoSqCommand({ cid: 0, ...params, pc: false, qprio: QueuePriority.Low, cqid: 2 }).cdw11, 0x00020006);
  assert.throws(() => createIoSqCommand({ cid: 0, ...params, qprio: 4 }), RangeError);
});

test("Delete I/O SQ and CQ: opcodes 0x00 and 0x04, QID in CDW10", () => {
  const sq = deleteIoQueueCommand({ cid: 6, qid: 3, isCompletion: false });
  const cq = deleteIoQueueCommand({ cid: 7, qid: 3, isCompletion: true });
  assert.equal(sq.opcode, AdminOpcode.DeleteIoSq);
  assert.equal(cq.opcode, AdminOpcode.DeleteIoCq);
  assert.equal(sq.cdw10, 3);
  assert.deepEqual(parseDeleteIoQueue(decodeSqe(encodeSqe(cq))), { qid: 3 });
});

test("Read and Write: 64-bit SLBA across CDW10/11, 0-based NLB, FUA and LR, round trip", () => {
  const params = { nsid: 1, slba: 2 ** 40 + 5, nlb: 0xffff, prp1: 0x4000, prp2: 0x5000, fua: true, lr: true };
  const w = writeCommand({ cid: 8, ...params });
  assert.equal(w.opcode, NvmOpcode.Write);
  assert.equal(w.cdw10, 5);
  assert.equal(w.cdw11, 0x100);
  assert.equal(w.cdw12, 0xc000ffff);
  assert.deepEqual(parseReadWrite(decodeSqe(encodeSqe(w))), params);
  const r = readCommand({ cid: 9, nsid: 2, slba: 0, nlb: 0, prp1: 0x6000 });
  assert.equal(r.opcode, NvmOpcode.Read);
  assert.deepEqual(parseReadWrite(decodeSqe(encodeSqe(r))), { nsid: 2, slba: 0, nlb: 0, prp1: 0x6000, prp2: 0, fua: false, lr: false });
  assert.throws(() => readCommand({ cid: 0, nsid: 1, slba: 0, nlb: 0x10000, prp1: 0 }), RangeError);
});

// --- Completion queue entries ----------------------------------------------------------------------

test("status code values are the spec's", () => {
  assert.deepEqual(
    [GenericStatus.Success, GenericStatus.InvalidCommandOpcode, GenericStatus.InvalidFieldInCommand, GenericStatus.DataTransferError, GenericStatus.InvalidNamespaceOrFormat, GenericStatus.PrpOffsetInvalid, GenericStatus.LbaOutOfRange],
    [0x00, 0x01, 0x02, 0x04, 0x0b, 0x13, 0x80],
  );
  assert.deepEqual(
    [CommandSpecificStatus.CompletionQueueInvalid, CommandSpecificStatus.InvalidQueueIdentifier, CommandSpecificStatus.InvalidQueueSize],
    [0x00, 0x01, 0x02],
  );
  assert.equal(StatusCodeType.CommandSpecific, 1);
});

test("CQE: written out byte by byte, phase set, LBA Out of Range with DNR", () => {
  const cqe: Cqe = { dw0: 0xdeadbeef, dw1: 0, sqhd: 5, sqid: 1, cid: 0x1234, phase: true, status: status(StatusCodeType.Generic, GenericStatus.LbaOutOfRange, true) };
  const bytes = encodeCqe(cqe);
  assert.equal(bytes.length, CQE_BYTES);
  assert.equal(toHex(bytes), toHex(hex("efbeadde 00000000 0500 0100 3412 0181")));
  assert.deepEqual(decodeCqe(bytes), cqe);
  assert.equal(cqePhase(bytes), true);
});

test("CQE status word: P bit 0, SC 8:1, SCT 11:9, CRD 13:12, M 14, DNR 15", () => {
  const s = (fields: Partial<typeof SUCCESS>) => ({ ...SUCCESS, ...fields });
  assert.equal(encodeStatusWord(true, SUCCESS), 0x0001);
  assert.equal(encodeStatusWord(false, s({ sc: 0xff })), 0x01fe);
  assert.equal(encodeStatusWord(false, s({ sct: 7 })), 0x0e00);
  assert.equal(encodeStatusWord(false, s({ crd: 3 })), 0x3000);
  assert.equal(encodeStatusWord(false, s({ more: true })), 0x4000);
  assert.equal(encodeStatusWord(false, s({ dnr: true })), 0x8000);
  // Invalid Queue Size: SCT 1, SC 2
  assert.equal(encodeStatusWord(false, status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueSize)), 0x0204);
  assert.deepEqual(decodeStatusWord(0x0205), { phase: true, status: status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueSize) });
  assert.deepEqual(decodeStatusWord(0xffff), { phase: true, status: { sc: 0xff, sct: 7, crd: 3, more: true, dnr: true } });
});

test("CQE: phase clear reads as false, and success is only SCT 0 / SC 0", () => {
  const queue = new Uint8Array(CQE_BYTES * 2);
  const cqe: Cqe = { dw0: 0, dw1: 0xffffffff, sqhd: 0xffff, sqid: 0xffff, cid: 0xffff, phase: false, status: { ...SUCCESS } };
  encodeCqe({ ...cqe, phase: true }, queue, 0);
  encodeCqe(cqe, queue, CQE_BYTES);
  assert.equal(cqePhase(queue, 0), true);
  assert.equal(cqePhase(queue, CQE_BYTES), false);
  assert.deepEqual(decodeCqe(queue, CQE_BYTES), cqe);
  assert.ok(isSuccess(decodeCqe(queue, CQE_BYTES).status));
  assert.ok(!isSuccess(status(StatusCodeType.CommandSpecific, 0)));
  assert.ok(!isSuccess(status(StatusCodeType.Generic, GenericStatus.InvalidFieldInCommand)));
});

// --- PRPs -------------------------------------------------------------------------------------------

const PAGE = 4096;
const noList = (address: number): number => assert.fail(`PRP list read at 0x${address.toString(16)}`);
const memory = (entries: Record<number, number>) => (address: number) => {
  assert.ok(address in entries, `unexpected PRP list read at 0x${address.toString(16)}`);
  return entries[address];
};
const segments = (r: PrpResult) => {
  assert.ok(r.ok, r.ok ? "" : r.message);
  return r.segments;
};

test("PRP: a transfer inside PRP1's page uses PRP1 with its offset and ignores PRP2", () => {
  assert.deepEqual(segments(prpEntries(0x10_0200, 0xdead_beef, 0x200, PAGE, noList)), [{ address: 0x10_0200, length: 0x200 }]);
  assert.deepEqual(segments(prpEntries(0x10_0200, 0xdead_beef, 0xe00, PAGE, noList)), [{ address: 0x10_0200, length: 0xe00 }]);
  assert.deepEqual(segments(prpEntries(0x10_0000, 0, PAGE, PAGE, noList)), [{ address: 0x10_0000, length: PAGE }]);
});

test("PRP: a transfer needing exactly two pages takes PRP2 as the second page", () => {
  assert.deepEqual(segments(prpEntries(0x10_0800, 0x20_0000, PAGE, PAGE, noList)), [{ address: 0x10_0800, length: 0x800 }, { address: 0x20_0000, length: 0x800 }]);
  assert.deepEqual(segments(prpEntries(0x10_0000, 0x20_0000, 2 * PAGE, PAGE, noList)), [{ address: 0x10_0000, length: PAGE }, { address: 0x20_0000, length: PAGE }]);
});

test("PRP: a list of 3 entries when the transfer spans 4 pages", () => {
  const read = memory({ 0x30_0000: 0x20_1000, 0x30_0008: 0x20_5000, 0x30_0010: 0x20_9000 });
  assert.deepEqual(segments(prpEntries(0x10_0000, 0x30_0000, 3 * PAGE + 100, PAGE, read)), [
    { address: 0x10_0000, length: PAGE }, { address: 0x20_1000, length: PAGE }, { address: 0x20_5000, length: PAGE }, { address: 0x20_9000, length: 100 },
  ]);
});

test("PRP: a list pointer with an offset chains after the last slot of its page", () => {
  // PRP2 points at the last two qwords of its page: one data entry, then the chain pointer.
  const read = memory({ 0x40_0ff0: 0x20_1000, 0x40_0ff8: 0x50_0000, 0x50_0000: 0x20_2000, 0x50_0008: 0x20_3000 });
  assert.deepEqual(segments(prpEntries(0x10_0f00, 0x40_0ff0, 0x100 + 3 * PAGE, PAGE, read)), [
    { address: 0x10_0f00, length: 0x100 }, { address: 0x20_1000, length: PAGE }, { address: 0x20_2000, length: PAGE }, { address: 0x20_3000, length: PAGE },
  ]);
});

test("PRP: a chained list crossing a full list page (511 data entries, then the pointer)", () => {
  const entries: Record<number, number> = {};
  const data = (i: number) => 0x1000_0000 + i * PAGE;
  for (let i = 0; i < 511; i++) entries[0x40_0000 + 8 * i] = data(i);
  entries[0x40_0000 + 8 * 511] = 0x50_0000;
  for (let i = 511; i < 600; i++) entries[0x50_0000 + 8 * (i - 511)] = data(i);
  const segs = segments(prpEntries(0x10_0000, 0x40_0000, 601 * PAGE, PAGE, memory(entries)));
  assert.equal(segs.length, 601);
  assert.deepEqual(segs[0], { address: 0x10_0000, length: PAGE });
  segs.slice(1).forEach((seg, i) => assert.deepEqual(seg, { address: data(i), length: PAGE }));
});

test("PRP: a list that exactly fills its page uses the last slot as data, not as a chain", () => {
  const entries: Record<number, number> = {};
  for (let i = 0; i < 512; i++) entries[0x40_0000 + 8 * i] = 0x1000_0000 + i * PAGE;
  const segs = segments(prpEntries(0x10_0000, 0x40_0000, 513 * PAGE, PAGE, memory(entries)));
  assert.equal(segs.length, 513);
  assert.deepEqual(segs[512], { address: 0x1000_0000 + 511 * PAGE, length: PAGE });
});

test("PRP: page size comes from the caller (8 KiB pages)", () => {
  assert.deepEqual(segments(prpEntries(0x10_1000, 0x20_2000, 0x3000, 0x2000, noList)), [{ address: 0x10_1000, length: 0x1000 }, { address: 0x20_2000, length: 0x2000 }]);
  assert.throws(() => prpEntries(0, 0, 1, 3000, noList), RangeError);
});

test("PRP: a zero-length transfer covers nothing and reads nothing", () => {
  assert.deepEqual(segments(prpEntries(0x10_0003, 0x7, 0, PAGE, noList)), []);
});

test("PRP: invalid offsets are reported as error results, not thrown", () => {
  const two = prpEntries(0x10_0000, 0x20_0010, 2 * PAGE, PAGE, noList);
  assert.deepEqual(two.ok ? "ok" : [two.error, two.value], ["prp2-offset", 0x20_0010]);
  const entry = prpEntries(0x10_0000, 0x30_0000, 3 * PAGE, PAGE, memory({ 0x30_0000: 0x20_1000, 0x30_0008: 0x20_2200 }));
  assert.deepEqual(entry.ok ? "ok" : [entry.error, entry.value], ["list-entry-offset", 0x20_2200]);
  const chain = prpEntries(0x10_0000, 0x40_0ff0, 4 * PAGE, PAGE, memory({ 0x40_0ff0: 0x20_1000, 0x40_0ff8: 0x50_0040 }));
  assert.deepEqual(chain.ok ? "ok" : [chain.error, chain.value], ["list-entry-offset", 0x50_0040]);
  const pointer = prpEntries(0x10_0000, 0x30_0004, 3 * PAGE, PAGE, noList);
  assert.deepEqual(pointer.ok ? "ok" : pointer.error, "list-pointer-alignment");
  const first = prpEntries(0x10_0002, 0, 16, PAGE, noList);
  assert.deepEqual(first.ok ? "ok" : first.error, "prp1-alignment");
});

// Walk what buildPrps made, reading its list pages from a map, and check the pages covered.
function walkBuilt(pages: number[], offset: number, length: number, pageSize: number) {
  let next = 0x7000_0000;
  const built = buildPrps(pages, offset, length, pageSize, () => (next += pageSize));
  const mem = new Map<number, number>();
  for (const list of built.lists) {
    const bytes = encodePrpList(list.entries);
    const dv = new DataView(bytes.buffer);
    list.entries.forEach((_, i) => mem.set(list.address + 8 * i, dv.getUint32(8 * i + 4, true) * 2 ** 32 + dv.getUint32(8 * i, true)));
  }
  const result = prpEntries(built.prp1, built.prp2, length, pageSize, (a) => mem.get(a) ?? assert.fail(`read 0x${a.toString(16)}`));
  return { built, segs: segments(result) };
}

test("buildPrps: one page, two pages and a list, each walked back by prpEntries", () => {
  const pages = Array.from({ length: 8 }, (_, i) => 0x1_0000_0000 + (7 - i) * PAGE); // not contiguous, above 4 GiB
  const one = walkBuilt(pages, 0x100, 0x200, PAGE);
  assert.deepEqual(one.built, { prp1: pages[0] + 0x100, prp2: 0, lists: [] });
  const two = walkBuilt(pages, 0x800, PAGE, PAGE);
  assert.deepEqual(two.built, { prp1: pages[0] + 0x800, prp2: pages[1], lists: [] });
  const list = walkBuilt(pages, 0, 4 * PAGE, PAGE);
  assert.deepEqual(list.built, { prp1: pages[0], prp2: 0x7000_1000, lists: [{ address: 0x7000_1000, entries: pages.slice(1, 4) }] });
  assert.deepEqual(list.segs, pages.slice(0, 4).map((address) => ({ address, length: PAGE })));
});

test("buildPrps: more entries than a list page holds chains through the last slot", () => {
  const pages = Array.from({ length: 514 }, (_, i) => 0x1000_0000 + i * 2 * PAGE);
  const { built, segs } = walkBuilt(pages, 0, 514 * PAGE, PAGE);
  assert.equal(built.lists.length, 2);
  assert.equal(built.lists[0].entries.length, 512);
  assert.equal(built.lists[0].entries[511], built.lists[1].address);
  assert.deepEqual(built.lists[1].entries, pages.slice(512));
  assert.deepEqual(segs.map((s) => s.address), pages);
});

test("buildPrps: zero length, short buffers and unaligned arguments", () => {
  assert.deepEqual(buildPrps([0x8000], 0x10, 0, PAGE, () => assert.fail("no list")), { prp1: 0x8010, prp2: 0, lists: [] });
  assert.throws(() => buildPrps([0x8000], 0, PAGE + 1, PAGE, () => 0x9000), RangeError);
  assert.throws(() => buildPrps([0x8000], 2, 4, PAGE, () => 0x9000), RangeError);
  assert.throws(() => buildPrps([0x8100, 0x9000], 0, 2 * PAGE, PAGE, () => 0xa000), RangeError);
  assert.throws(() => buildPrps([0x1000, 0x2000, 0x3000], 0, 3 * PAGE, PAGE, () => 0xa008), RangeError);
});

test("encodePrpList: 8-byte little-endian entries", () => {
  assert.equal(toHex(encodePrpList([0x1_2345_6000, 0x7000])), "0060452301000000" + "0070000000000000");
});

// --- Identify ---------------------------------------------------------------------------------------

const CONTROLLER: IdentifyController = {
  vid: 0x1b36, ssvid: 0x1af4, sn: "IOV0001", mn: "IOV NVMe model", fr: "1.0", mdts: 5, cntlid: 0x0001,
  ver: NVME_VERSION_2_0, sqes: { min: 6, max: 6 }, cqes: { min: 4, max: 4 }, nn: 1,
};

test("Identify Controller: fields at their byte offsets, strings space-padded", () => {
  const bytes = encodeIdentifyController(CONTROLLER);
  assert.equal(bytes.length, IDENTIFY_BYTES);
  assert.equal(toHex(bytes.subarray(0, 4)), "361bf41a");
  assert.equal(Buffer.from(bytes.subarray(4, 24)).toString("latin1"), "IOV0001             ");
  assert.equal(Buffer.from(bytes.subarray(24, 64)).toString("latin1"), "IOV NVMe model".padEnd(40, " "));
  assert.equal(Buffer.from(bytes.subarray(64, 72)).toString("latin1"), "1.0     ");
  assert.equal(bytes[77], 5);
  assert.equal(toHex(bytes.subarray(78, 84)), "0100" + "00000200");
  assert.equal(bytes[512], 0x66);
  assert.equal(bytes[513], 0x44);
  assert.equal(toHex(bytes.subarray(516, 520)), "01000000");
  const implemented = (i: number) => i < 72 || (i >= 77 && i < 84) || i === 512 || i === 513 || (i >= 516 && i < 520);
  assert.deepEqual([...bytes.keys()].filter((i) => !implemented(i) && bytes[i] !== 0), [], "every other byte is zero");
  assert.deepEqual(decodeIdentifyController(bytes), CONTROLLER);
});

test("Identify Controller: full-length strings round-trip and oversize or non-ASCII ones are refused", () => {
  const full = { ...CONTROLLER, sn: "S".repeat(20), mn: "M".repeat(40), fr: "F".repeat(8), sqes: { min: 6, max: 0xf }, nn: 0xffffffff };
  assert.deepEqual(decodeIdentifyController(encodeIdentifyController(full)), full);
  assert.throws(() => encodeIdentifyController({ ...CONTROLLER, sn: "S".repeat(21) }), RangeError);
  assert.throws(() => encodeIdentifyController({ ...CONTROLLER, mn: "modèle" }), RangeError);
  assert.throws(() => encodeIdentifyController({ ...CONTROLLER, fr: "1\n" }), RangeError);
});

const NAMESPACE: IdentifyNamespace = {
  nsze: 0x1_0000_0800, ncap: 0x1_0000_0000, nuse: 0x800, flbas: 1,
  lbaf: [{ ms: 0, lbads: 9, rp: 2 }, { ms: 8, lbads: 12, rp: 1 }],
};

test("Identify Namespace: sizes as 64-bit values, NLBAF 0-based, LBAF n at 128 + 4n", () => {
  const bytes = encodeIdentifyNamespace(NAMESPACE);
  assert.equal(bytes.length, IDENTIFY_BYTES);
  assert.equal(toHex(bytes.subarray(0, 24)), "0008000001000000" + "0000000001000000" + "0008000000000000");
  assert.equal(bytes[25], 1);
  assert.equal(bytes[26], 1);
  assert.equal(toHex(bytes.subarray(128, 136)), "00000902" + "08000c01");
  assert.deepEqual(decodeIdentifyNamespace(bytes), NAMESPACE);
  assert.equal(lbaDataSize(NAMESPACE), 4096);
  assert.equal(lbaDataSize({ ...NAMESPACE, flbas: 0 }), 512);
});

test("Identify Namespace: FLBAS format index uses bits 3:0 and 6:5, 64 formats fit", () => {
  assert.equal(flbasFormatIndex(0x01), 1);
  assert.equal(flbasFormatIndex(0x11), 1); // bit 4 is metadata placement, not the index
  assert.equal(flbasFormatIndex(0x2f), 0x1f);
  assert.equal(flbasFormatIndex(0x6f), 0x3f);
  const many = { ...NAMESPACE, flbas: 0x6f, lbaf: Array.from({ length: 64 }, (_, i) => ({ ms: i, lbads: 9 + (i % 4), rp: i % 4 })) };
  const bytes = encodeIdentifyNamespace(many);
  assert.equal(bytes[25], 63);
  assert.deepEqual(decodeIdentifyNamespace(bytes), many);
  assert.equal(lbaDataSize(many), 2 ** 12);
  assert.throws(() => encodeIdentifyNamespace({ ...NAMESPACE, lbaf: [] }), RangeError);
  assert.throws(() => lbaDataSize({ ...NAMESPACE, flbas: 2 }), RangeError);
});

test("Active Namespace ID list: 32-bit NSIDs from byte 0, ended by a zero", () => {
  const bytes = encodeNamespaceList([1, 2, 0x10]);
  assert.equal(toHex(bytes.subarray(0, 16)), "01000000" + "02000000" + "10000000" + "00000000");
  assert.deepEqual(decodeNamespaceList(bytes), [1, 2, 0x10]);
  const full = Array.from({ length: 1024 }, (_, i) => i + 1);
  assert.deepEqual(decodeNamespaceList(encodeNamespaceList(full)), full);
  assert.throws(() => encodeNamespaceList([2, 1]), RangeError);
  assert.throws(() => encodeNamespaceList([0]), RangeError);
});
