// The server's NVMe driver: resets and enables the controller with an admin queue pair,
// identifies it and its namespace, creates one I/O queue pair, and reads and writes blocks.
// Commands are submitted by writing entries into server memory and ringing the doorbell;
// every MSI drains both completion queues and wakes the commands they complete.

import {
  NvmeReg, SQE_BYTES, CQE_BYTES, Cns, encodeCc, decodeCsts, encodeAqa, doorbellOffset, encodeSqe, decodeCqe, cqePhase,
  identifyCommand, createIoCqCommand, createIoSqCommand, readCommand, writeCommand, buildPrps, encodePrpList,
  decodeIdentifyController, decodeIdentifyNamespace, isSuccess, type Sqe, type Cqe, type IdentifyController,
} from "../../../board/devices/nvme/spec.ts";
import { NVME_VENDOR, NVME_DEVICE, BLOCK_BYTES } from "../../../board/devices/nvme/controller.ts";
import { spawn, wait, type Op, type Task } from "../task.ts";
import { u32le } from "../../../board/bytes.ts";
import type { OperatingSystem, PciFunction } from "../os.ts";

export function isNvme(fn: PciFunction): boolean {
  return fn.vendorId === NVME_VENDOR && fn.deviceId === NVME_DEVICE;
}

const PAGE = 4096;
const ADMIN_ENTRIES = 32;
const IO_ENTRIES = 64;

export class NvmeError extends Error {}

interface Queue {
  id: number;
  sq: number;
  cq: number;
  entries: number;
  tail: number;
  head: number;
  phase: boolean;
}

/** A ready controller: what `nvmeInit` returns. */
export class NvmeDisk {
  blocks = 0;
  identity: IdentifyController | null = null;
  private nextCid = 0;
  private readonly waiting = new Map<number, (cqe: Cqe) => void>();
  private readonly queues: Queue[] = [];
  private listPage: number;

  constructor(readonly os: OperatingSystem, readonly fn: PciFunction, private readonly bar: number, private memory: number) {
    this.listPage = memory;
  }

  /** Carves `bytes` (page aligned) from the driver's memory region. */
  allocate(bytes: number): number {
    const at = this.memory;
    this.memory += Math.ceil(bytes / PAGE) * PAGE;
    return at;
  }

  addQueue(id: number, entries: number): Queue {
    const queue = { id, sq: this.allocate(entries * SQE_BYTES), cq: this.allocate(entries * CQE_BYTES), entries, tail: 0, head: 0, phase: true };
    this.os.rc.memory.write(queue.cq, new Uint8Array(entries * CQE_BYTES));
    this.queues[id] = queue;
    return queue;
  }

  queue(id: number): Queue {
    return this.queues[id];
  }

  mmioWrite(offset: number, value: number): Op<void> {
    return this.os.rc.memoryWrite(this.bar + offset, u32le(value));
  }

  *mmioRead(offset: number): Task<number> {
    const data = yield* wait(this.os.rc.memoryRead(this.bar + offset, 4));
    return new DataView(data.buffer).getUint32(0, true);
  }

  /** Submits `command` (its CID is assigned here) on queue `id`; completes with its CQE. */
  submit(id: number, command: Sqe): Op<Cqe> {
    return {
      start: (resume) => {
        const queue = this.queues[id];
        const cid = this.nextCid++ & 0xffff;
        this.waiting.set(cid, resume);
        this.os.rc.memory.write(queue.sq + queue.tail * SQE_BYTES, encodeSqe({ ...command, cid }));
        queue.tail = (queue.tail + 1) % queue.entries;
        spawn((function* (disk: NvmeDisk): Task<void> {
          yield* wait(disk.mmioWrite(doorbellOffset(id, false, 0), queue.tail));
        })(this));
      },
    };
  }

  /** Takes every new completion from every queue; returns the doorbell writes to make. */
  drain(): [number, number][] {
    const doorbells: [number, number][] = [];
    for (const queue of this.queues) {
      if (!queue) continue;
      let moved = false;
      for (;;) {
        const at = queue.cq + queue.head * CQE_BYTES;
        const entry = this.os.rc.memory.read(at, CQE_BYTES);
        if (cqePhase(entry) !== queue.phase) break;
        const cqe = decodeCqe(entry);
        queue.head = (queue.head + 1) % queue.entries;
        if (queue.head === 0) queue.phase = !queue.phase;
        moved = true;
        const wake = this.waiting.get(cqe.cid);
        this.waiting.delete(cqe.cid);
        wake?.(cqe);
      }
      if (moved) doorbells.push([doorbellOffset(queue.id, true, 0), queue.head]);
    }
    return doorbells;
  }

  /** PRP1/PRP2 for a transfer to or from the contiguous buffer at `buffer` (page aligned). */
  prps(buffer: number, length: number): { prp1: number; prp2: number } {
    const pages = Array.from({ length: Math.ceil(length / PAGE) }, (_, i) => buffer + i * PAGE);
    const list = this.listPage;
    const built = buildPrps(pages, 0, length, PAGE, () => list);
    for (const page of built.lists) this.os.rc.memory.write(page.address, encodePrpList(page.entries));
    return { prp1: built.prp1, prp2: built.prp2 };
  }

  /** Writes `data` (whole blocks) at block `lba`, through server memory at `buffer`. */
  *write(lba: number, data: Uint8Array, buffer: number, listPage: number): Task<void> {
    this.os.rc.memory.write(buffer, data);
    this.listPage = listPage;
    const { prp1, prp2 } = this.prps(buffer, data.length);
    const cqe = yield* wait(this.submit(1, writeCommand({ cid: 0, nsid: 1, slba: lba, nlb: data.length / BLOCK_BYTES - 1, prp1, prp2 })));
    if (!isSuccess(cqe.status)) throw new NvmeError(`write at LBA ${lba}: status ${cqe.status.sct}/${cqe.status.sc}`);
  }

  /** Reads `blocks` blocks at `lba` into server memory at `buffer` and returns them. */
  *read(lba: number, blocks: number, buffer: number, listPage: number): Task<Uint8Array> {
    this.listPage = listPage;
    const { prp1, prp2 } = this.prps(buffer, blocks * BLOCK_BYTES);
    const cqe = yield* wait(this.submit(1, readCommand({ cid: 0, nsid: 1, slba: lba, nlb: blocks - 1, prp1, prp2 })));
    if (!isSuccess(cqe.status)) throw new NvmeError(`read at LBA ${lba}: status ${cqe.status.sct}/${cqe.status.sc}`);
    return this.os.rc.memory.read(buffer, blocks * BLOCK_BYTES);
  }
}

/**
 * Brings the controller up, as Linux's nvme driver does in outline: disable and wait for
 * CSTS.RDY = 0, program the admin queues, enable and wait for RDY = 1, Identify, create the
 * I/O queue pair. `memory` is a server memory region for queues and buffers (page aligned).
 */
export function* nvmeInit(os: OperatingSystem, fn: PciFunction, memory: number): Task<NvmeDisk> {
  const bar = fn.bars.find((b) => b.index === 0);
  if (!bar || fn.msiVector === null) throw new NvmeError(`NVMe ${fn.bus}:${fn.device}.${fn.fn} has no BAR 0 or no MSI`);
  const disk = new NvmeDisk(os, fn, bar.address, memory);
  disk.allocate(PAGE); // the first page holds PRP lists
  yield* wait(disk.mmioWrite(NvmeReg.CC, 0));
  while (decodeCsts(yield* disk.mmioRead(NvmeReg.CSTS)).rdy) yield* wait(os.rc.delay(10_000));
  const admin = disk.addQueue(0, ADMIN_ENTRIES);
  yield* wait(disk.mmioWrite(NvmeReg.AQA, encodeAqa({ asqs: ADMIN_ENTRIES - 1, acqs: ADMIN_ENTRIES - 1 })));
  yield* wait(disk.mmioWrite(NvmeReg.ASQ, admin.sq % 2 ** 32));
  yield* wait(disk.mmioWrite(NvmeReg.ASQ + 4, Math.floor(admin.sq / 2 ** 32)));
  yield* wait(disk.mmioWrite(NvmeReg.ACQ, admin.cq % 2 ** 32));
  yield* wait(disk.mmioWrite(NvmeReg.ACQ + 4, Math.floor(admin.cq / 2 ** 32)));
  yield* wait(disk.mmioWrite(NvmeReg.CC, encodeCc({ en: true, css: 0, mps: 0, ams: 0, shn: 0, iosqes: 6, iocqes: 4, crime: false })));
  while (!decodeCsts(yield* disk.mmioRead(NvmeReg.CSTS)).rdy) yield* wait(os.rc.delay(10_000));
  // Completions arrive as MSI; each one drains the queues and returns their heads.
  spawn((function* (): Task<void> {
    for (;;) {
      yield* wait(os.interrupt(fn.msiVector!));
      for (const [offset, head] of disk.drain()) yield* wait(disk.mmioWrite(offset, head));
    }
  })());
  const identify = disk.allocate(PAGE);
  const check = (cqe: Cqe, what: string) => {
    if (!isSuccess(cqe.status)) throw new NvmeError(`${what}: status ${cqe.status.sct}/${cqe.status.sc}`);
  };
  check(yield* wait(disk.submit(0, identifyCommand({ cid: 0, cns: Cns.Controller, prp1: identify }))), "Identify Controller");
  disk.identity = decodeIdentifyController(os.rc.memory.read(identify, PAGE));
  check(yield* wait(disk.submit(0, identifyCommand({ cid: 0, cns: Cns.Namespace, nsid: 1, prp1: identify }))), "Identify Namespace");
  disk.blocks = decodeIdentifyNamespace(os.rc.memory.read(identify, PAGE)).nsze;
  const io = disk.addQueue(1, IO_ENTRIES);
  check(yield* wait(disk.submit(0, createIoCqCommand({ cid: 0, qid: 1, qsize: IO_ENTRIES - 1, prp1: io.cq, pc: true, ien: true, iv: 0 }))), "Create I/O CQ");
  check(yield* wait(disk.submit(0, createIoSqCommand({ cid: 0, qid: 1, qsize: IO_ENTRIES - 1, prp1: io.sq, pc: true, qprio: 0, cqid: 1 }))), "Create I/O SQ");
  return disk;
}
