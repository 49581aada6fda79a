// An NVMe controller for the chassis, a real subset of NVM Express 2.0 (docs/nvme.md): the
// controller registers CAP, VS, CC, CSTS, AQA, ASQ, ACQ and the doorbells in BAR 0; the admin
// commands Identify, Create I/O Completion Queue and Create I/O Submission Queue; the NVM
// commands Read and Write with PRP1/PRP2 and one-page PRP lists; one namespace of 512-byte
// blocks on sparse media. Commands run concurrently and complete in any order, each with a
// completion queue entry written to server memory and MSI vector 0.

import { Endpoint, DmaError } from "../../pcie/endpoint.ts";
import { SparseMemory } from "../../memory.ts";
import type { Scheduler } from "../../scheduler.ts";
import { readRegisters, storeEnabled } from "../mmio.ts";
import {
  NvmeReg, DOORBELL_BASE, SQE_BYTES, CQE_BYTES, NVME_VERSION_2_0, AdminOpcode, NvmOpcode, Cns, CapCss, StatusCodeType, GenericStatus,
  CommandSpecificStatus, SUCCESS, encodeCap, splitQword, decodeCc, encodeCsts, decodeAqa, doorbellAt, decodeSqe, encodeCqe, status,
  parseCreateIoCq, parseCreateIoSq, parseReadWrite, prpEntries, encodeIdentifyController, encodeIdentifyNamespace, encodeNamespaceList,
  type Sqe, type Status, type PrpSegment,
} from "./spec.ts";

export const NVME_VENDOR = 0x1fff;
export const NVME_DEVICE = 0x0300;
export const BLOCK_BYTES = 512;
const PAGE = 4096;
/** Maximum data transfer: 2^5 pages = 128 KiB, so a PRP list always fits one page. */
export const MDTS = 5;
const MAX_QUEUE_ENTRIES = 1024;

interface SubmissionQueue {
  base: number;
  entries: number;
  head: number;
  tail: number;
  cq: number;
}

interface CompletionQueue {
  base: number;
  entries: number;
  tail: number;
  head: number;
  phase: boolean;
}

export interface NvmeCounters {
  commands: number;
  errors: number;
  bytesRead: number;
  bytesWritten: number;
}

export class NvmeController extends Endpoint {
  readonly media = new SparseMemory();
  readonly counters2: NvmeCounters = { commands: 0, errors: 0, bytesRead: 0, bytesWritten: 0 };
  private readonly regs = new DataView(new ArrayBuffer(0x40));
  private sqs = new Map<number, SubmissionQueue>();
  private cqs = new Map<number, CompletionQueue>();

  constructor(scheduler: Scheduler, readonly blocks = 131_072, readonly serial = "IOV0000000001") {
    super(scheduler, {
      vendorId: NVME_VENDOR, deviceId: NVME_DEVICE, classCode: 0x010802, // mass storage, NVM, NVMe
      bars: [{ kind: "memory64", size: 16 * 1024 }], msiVectors: 1,
    });
    this.resetRegisters();
  }

  /**
   * A fundamental reset: the controller registers return to their reset values (CC.EN and
   * CSTS.RDY clear, no admin queue), every queue is deleted and the commands in progress
   * are dropped without a completion. The namespace's blocks stay: the media is a disk.
   */
  override reset(): void {
    super.reset();
    this.sqs.clear();
    this.cqs.clear();
    this.resetRegisters();
  }

  /** Every register 0 but CAP and VS, which are hardwired. */
  private resetRegisters(): void {
    new Uint8Array(this.regs.buffer).fill(0);
    const cap = splitQword(encodeCap({
      mqes: MAX_QUEUE_ENTRIES - 1, cqr: true, ams: 0, to: 20, dstrd: 0, nssrs: false, css: CapCss.Nvm, bps: false, cps: 0,
      mpsmin: 0, mpsmax: 0, pmrs: false, cmbs: false, nsss: false, crms: 0,
    }));
    this.regs.setUint32(NvmeReg.CAP, cap.low, true);
    this.regs.setUint32(NvmeReg.CAP + 4, cap.high, true);
    this.regs.setUint32(NvmeReg.VS, NVME_VERSION_2_0, true);
  }

  private reg(offset: number): number {
    return this.regs.getUint32(offset, true);
  }

  private reg64(offset: number): number {
    return this.reg(offset + 4) * 2 ** 32 + this.reg(offset);
  }

  protected mmioRead(bar: number, offset: number, length: number): Uint8Array | null {
    if (bar !== 0) return null;
    return offset < DOORBELL_BASE ? readRegisters(this.regs, offset, length) : new Uint8Array(length); // doorbells read 0
  }

  protected mmioWrite(bar: number, offset: number, data: Uint8Array, firstBe: number, lastBe: number): void {
    if (bar !== 0) return;
    if (offset >= DOORBELL_BASE) {
      const doorbell = doorbellAt(offset, 0);
      if (doorbell) this.doorbell(doorbell.queue, doorbell.isCompletion, new DataView(data.buffer, data.byteOffset).getUint32(0, true));
      return;
    }
    const wasEnabled = decodeCc(this.reg(NvmeReg.CC)).en;
    const csts = this.reg(NvmeReg.CSTS); // read-only, though inside the writable range
    storeEnabled(this.regs, offset, data, firstBe, lastBe, NvmeReg.CC, NvmeReg.ACQ + 8);
    this.regs.setUint32(NvmeReg.CSTS, csts, true);
    const enabled = decodeCc(this.reg(NvmeReg.CC)).en;
    if (enabled && !wasEnabled) this.enable();
    if (!enabled && wasEnabled) this.disable();
  }

  private setReady(ready: boolean): void {
    this.regs.setUint32(NvmeReg.CSTS, encodeCsts({ rdy: ready, cfs: false, shst: 0, nssro: false, pp: false, st: false }), true);
  }

  private enable(): void {
    const aqa = decodeAqa(this.reg(NvmeReg.AQA));
    this.sqs = new Map([[0, { base: this.reg64(NvmeReg.ASQ), entries: aqa.asqs + 1, head: 0, tail: 0, cq: 0 }]]);
    this.cqs = new Map([[0, { base: this.reg64(NvmeReg.ACQ), entries: aqa.acqs + 1, tail: 0, head: 0, phase: true }]]);
    this.setReady(true);
  }

  private disable(): void {
    this.sqs.clear();
    this.cqs.clear();
    this.setReady(false);
  }

  private doorbell(queue: number, completion: boolean, value: number): void {
    if (completion) {
      const cq = this.cqs.get(queue);
      if (cq && value < cq.entries) cq.head = value;
      return;
    }
    const sq = this.sqs.get(queue);
    if (!sq || value >= sq.entries) return;
    sq.tail = value;
    this.fetch(queue, sq);
  }

  /** Reads the new submission queue entries and starts each command. */
  private fetch(id: number, sq: SubmissionQueue): void {
    while (sq.head !== sq.tail) {
      const end = sq.tail > sq.head ? sq.tail : sq.entries;
      const count = end - sq.head;
      const first = sq.head;
      sq.head = end % sq.entries;
      this.dmaRead(sq.base + first * SQE_BYTES, count * SQE_BYTES, (data) => {
        if (data instanceof DmaError) return;
        for (let i = 0; i < count; i++) this.execute(id, sq, decodeSqe(data, i * SQE_BYTES));
      });
    }
  }

  private complete(sq: SubmissionQueue, sqid: number, command: Sqe, result: Status, dw0 = 0): void {
    this.counters2.commands++;
    if (result !== SUCCESS) this.counters2.errors++;
    const cq = this.cqs.get(sq.cq);
    if (!cq) return;
    const entry = encodeCqe({ dw0, dw1: 0, sqhd: sq.head, sqid, cid: command.cid, phase: cq.phase, status: result });
    this.dmaWrite(cq.base + cq.tail * CQE_BYTES, entry);
    cq.tail = (cq.tail + 1) % cq.entries;
    if (cq.tail === 0) cq.phase = !cq.phase;
    this.signalMsi(0);
  }

  private execute(sqid: number, sq: SubmissionQueue, command: Sqe): void {
    const done = (result: Status, dw0 = 0) => this.complete(sq, sqid, command, result, dw0);
    if (sqid === 0) this.admin(command, done);
    else this.io(command, done);
  }

  private admin(command: Sqe, done: (result: Status, dw0?: number) => void): void {
    switch (command.opcode) {
      case AdminOpcode.Identify: {
        const cns = command.cdw10 & 0xff;
        let data: Uint8Array | null = null;
        if (cns === Cns.Controller) {
          data = encodeIdentifyController({
            vid: NVME_VENDOR, ssvid: NVME_VENDOR, sn: this.serial, mn: "IOV remote NVMe", fr: "1.0", mdts: MDTS, cntlid: 1,
            ver: NVME_VERSION_2_0, sqes: { min: 6, max: 6 }, cqes: { min: 4, max: 4 }, nn: 1,
          });
        } else if (cns === Cns.Namespace && command.nsid === 1) {
          data = encodeIdentifyNamespace({ nsze: this.blocks, ncap: this.blocks, nuse: this.blocks, flbas: 0, lbaf: [{ ms: 0, lbads: 9, rp: 0 }] });
        } else if (cns === Cns.ActiveNamespaceList) {
          data = encodeNamespaceList([1]);
        }
        if (!data) return done(status(StatusCodeType.Generic, cns === Cns.Namespace ? GenericStatus.InvalidNamespaceOrFormat : GenericStatus.InvalidFieldInCommand));
        return this.toHost(command, data, done);
      }
      case AdminOpcode.CreateIoCq: {
        const p = parseCreateIoCq(command);
        if (p.qid === 0 || this.cqs.has(p.qid)) return done(status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueIdentifier));
        if (p.qsize < 1 || p.qsize >= MAX_QUEUE_ENTRIES) return done(status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueSize));
        this.cqs.set(p.qid, { base: p.prp1, entries: p.qsize + 1, tail: 0, head: 0, phase: true });
        return done(SUCCESS);
      }
      case AdminOpcode.CreateIoSq: {
        const p = parseCreateIoSq(command);
        if (p.qid === 0 || this.sqs.has(p.qid)) return done(status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueIdentifier));
        if (!this.cqs.has(p.cqid) || p.cqid === 0) return done(status(StatusCodeType.CommandSpecific, CommandSpecificStatus.CompletionQueueInvalid));
        if (p.qsize < 1 || p.qsize >= MAX_QUEUE_ENTRIES) return done(status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueSize));
        this.sqs.set(p.qid, { base: p.prp1, entries: p.qsize + 1, head: 0, tail: 0, cq: p.cqid });
        return done(SUCCESS);
      }
      default:
        return done(status(StatusCodeType.Generic, GenericStatus.InvalidCommandOpcode));
    }
  }

  private io(command: Sqe, done: (result: Status) => void): void {
    if (command.opcode !== NvmOpcode.Read && command.opcode !== NvmOpcode.Write) return done(status(StatusCodeType.Generic, GenericStatus.InvalidCommandOpcode));
    if (command.nsid !== 1) return done(status(StatusCodeType.Generic, GenericStatus.InvalidNamespaceOrFormat));
    const p = parseReadWrite(command);
    const blocks = p.nlb + 1;
    if (p.slba + blocks > this.blocks) return done(status(StatusCodeType.Generic, GenericStatus.LbaOutOfRange));
    const length = blocks * BLOCK_BYTES;
    if (length > (PAGE << MDTS)) return done(status(StatusCodeType.Generic, GenericStatus.InvalidFieldInCommand));
    if (command.opcode === NvmOpcode.Read) {
      this.counters2.bytesRead += length;
      return this.toHost(command, this.media.read(p.slba * BLOCK_BYTES, length), done);
    }
    this.fromHost(command, length, (data) => {
      if (data instanceof DmaError) return done(status(StatusCodeType.Generic, GenericStatus.DataTransferError));
      this.media.write(p.slba * BLOCK_BYTES, data);
      this.counters2.bytesWritten += length;
      done(SUCCESS);
    });
  }

  /** The segments of a command's data, after reading its PRP list if it has one. */
  private segments(command: Sqe, length: number, then: (segments: PrpSegment[] | Status) => void): void {
    const needsList = length - (PAGE - (command.prp1 % PAGE)) > PAGE;
    const walk = (list: Uint8Array | null) => {
      const listView = list && new DataView(list.buffer, list.byteOffset, list.byteLength);
      const result = prpEntries(command.prp1, command.prp2, length, PAGE, (address) => {
        const at = address - command.prp2;
        if (!listView || at < 0 || at + 8 > list!.length) return 1; // beyond the one list page: not page aligned, rejected
        return listView.getUint32(at + 4, true) * 2 ** 32 + listView.getUint32(at, true);
      });
      then(result.ok ? result.segments : status(StatusCodeType.Generic, GenericStatus.PrpOffsetInvalid));
    };
    if (!needsList) return walk(null);
    const listBytes = Math.min(PAGE - (command.prp2 % PAGE), 8 * Math.ceil(length / PAGE));
    this.dmaRead(command.prp2, listBytes - (listBytes % 4), (list) => {
      if (list instanceof DmaError) then(status(StatusCodeType.Generic, GenericStatus.DataTransferError));
      else walk(list);
    });
  }

  /** Writes `data` to the command's buffer in server memory, then completes. */
  private toHost(command: Sqe, data: Uint8Array, done: (result: Status) => void): void {
    this.segments(command, data.length, (segments) => {
      if (!Array.isArray(segments)) return done(segments);
      let at = 0;
      for (const s of segments) {
        this.dmaWrite(s.address, data.subarray(at, at + s.length));
        at += s.length;
      }
      done(SUCCESS); // the completion entry is a later posted write: it cannot pass the data
    });
  }

  /** Reads `length` bytes of the command's buffer from server memory. */
  private fromHost(command: Sqe, length: number, done: (data: Uint8Array | DmaError) => void): void {
    this.segments(command, length, (segments) => {
      if (!Array.isArray(segments)) return done(new DmaError("bad PRP"));
      const out = new Uint8Array(length);
      let left = segments.length;
      let at = 0;
      let failed = false;
      for (const s of segments) {
        const offset = at;
        at += s.length;
        this.dmaRead(s.address, s.length, (data) => {
          if (failed) return;
          if (data instanceof DmaError) {
            failed = true;
            return done(data);
          }
          out.set(data, offset);
          if (--left === 0) done(out);
        });
      }
    });
  }
}
