// The server's NVMe driver: resets and enables the controller with an admin queue pair,
// identifies it and its namespace, creates one I/O queue pair, and reads and writes blocks.
// Commands are submitted by writing entries into server memory and ringing the doorbell;
// every MSI drains both completion queues and wakes the commands they complete. When the
// device goes away (a cable pull: a surprise removal), remove() fails every command still
// waiting with DeviceRemoved and refuses new ones, as Linux's nvme_remove → nvme_dev_disable
// cancels its requests; nvmeLoad() is a continuous verified load that stops cleanly then.

import {
  NvmeReg, SQE_BYTES, CQE_BYTES, Cns, encodeCc, decodeCsts, encodeAqa, doorbellOffset, encodeSqe, decodeCqe, cqePhase,
  identifyCommand, createIoCqCommand, createIoSqCommand, readCommand, writeCommand, buildPrps, encodePrpList,
  decodeIdentifyController, decodeIdentifyNamespace, isSuccess, type Sqe, type Cqe, type IdentifyController,
} from "../../../board/devices/nvme/spec.ts";
import { NVME_VENDOR, NVME_DEVICE, BLOCK_BYTES } from "../../../board/devices/nvme/controller.ts";
import { pattern } from "../../../board/devices/dma-test.ts";
import { spawn, wait, type Op, type Task } from "../task.ts";
import { u32le } from "../../../board/bytes.ts";
import { DeviceRemoved, type OperatingSystem, type PciDriver, type PciFunction } from "../os.ts";

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
  /** "live" until the device goes away; then every command fails with DeviceRemoved. */
  state: "live" | "removed" = "live";
  /** Commands that were waiting for their completion when the device was removed, and were failed. */
  abortedCommands = 0;
  private nextCid = 0;
  private readonly waiting = new Map<number, (result: Cqe | Error) => void>();
  private readonly queues: Queue[] = [];
  private listPage: number;

  constructor(readonly os: OperatingSystem, readonly fn: PciFunction, private readonly bar: number, private memory: number) {
    this.listPage = memory;
  }

  /**
   * The device is gone (Linux nvme_remove → nvme_dev_disable → cancel every request): fail
   * each waiting command with DeviceRemoved and refuse new ones. Nothing is sent to the
   * device. Returns how many commands were failed.
   */
  remove(): number {
    if (this.state === "removed") return 0;
    this.state = "removed";
    const error = new DeviceRemoved(this.fn);
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    this.abortedCommands += waiting.length;
    for (const fail of waiting) fail(error);
    return waiting.length;
  }

  /** Commands submitted and not completed yet. */
  get outstanding(): number {
    return this.waiting.size;
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
    return this.os.mmioWrite(this.fn, this.bar + offset, u32le(value));
  }

  *mmioRead(offset: number): Task<number> {
    return yield* this.os.mmioRead32(this.fn, this.bar + offset);
  }

  /** Submits `command` (its CID is assigned here) on queue `id`; completes with its CQE, or fails with DeviceRemoved. */
  submit(id: number, command: Sqe): Op<Cqe> {
    return {
      start: (resume) => {
        if (this.state === "removed") {
          resume(new DeviceRemoved(this.fn));
          return;
        }
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
  fn.driverData = disk; // so that a removal during bring-up finds the commands to fail
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
  // Completions arrive as MSI; each one drains the queues and returns their heads. The loop
  // ends when the function is removed (the wait fails with DeviceRemoved).
  spawn((function* (): Task<void> {
    while (disk.state === "live") {
      yield* wait(os.waitInterrupt(fn));
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

/** Server memory the driver takes for its queues, PRP list and Identify page (six pages used). */
export const NVME_QUEUE_MEMORY = 64 * 1024;

/**
 * The NVMe driver in the OS's driver model: probe brings the controller up in memory of its
 * own and returns the disk; remove fails whatever is outstanding (NvmeDisk.remove).
 */
export const nvmeDriver: PciDriver<NvmeDisk> = {
  name: "nvme",
  matches: isNvme,
  probe: (os, fn) => nvmeInit(os, fn, os.dmaAlloc(NVME_QUEUE_MEMORY)),
  remove: (fn) => {
    if (fn.driverData instanceof NvmeDisk) fn.driverData.remove();
  },
};

export interface NvmeLoadOptions {
  /** The blocks the load works on: first LBA and count. */
  region: { lba: number; blocks: number };
  /** Blocks per Read and Write command: at most 256 (128 KiB, the controller's MDTS). */
  blocksPerCommand: number;
  /** Commands in flight: one worker each, every worker on blocks of its own. */
  queueDepth: number;
  /** Compare what is read back with what was written. */
  verify: boolean;
  /** Each worker starts a round at most this often (a paced load, as fio's rate limits); 0 or absent: back to back. */
  intervalNs?: number;
  /** Seed of the data pattern (the DMA test device's pattern). */
  seed?: number;
  /** Asked before every round: true ends the load. */
  stop?: () => boolean;
  /** Counters to fill in as the load runs (the result is this object), for a caller that watches. */
  stats?: NvmeLoadStats;
  /** Called after each round whose data read back was verified. */
  onVerified?: (stats: NvmeLoadStats) => void;
}

export interface NvmeLoadStats {
  /** Rounds of write, read back (and compare) completed. */
  rounds: number;
  /** Read and Write commands completed successfully. */
  commands: number;
  bytesWritten: number;
  bytesRead: number;
  /** Bytes read back equal to what was written. */
  verifiedBytes: number;
  /** Commands completed with an error status. */
  errors: number;
  /** Rounds whose data read back differed from what was written. */
  mismatches: number;
  /** Commands failed by the driver because the device was removed while they waited. */
  aborted: number;
  /** "running", or why it ended: stop() said so, the device was removed, or an error other than a status (in lastError). */
  ended: "running" | "stopped" | "removed" | "error";
  lastError: string | null;
}

export function newNvmeLoadStats(): NvmeLoadStats {
  return { rounds: 0, commands: 0, bytesWritten: 0, bytesRead: 0, verifiedBytes: 0, errors: 0, mismatches: 0, aborted: 0, ended: "running", lastError: null };
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

/**
 * A continuous verified load: `queueDepth` workers, each writing a pattern to blocks of its
 * own in the region and reading them back, until stop() says so or the device is removed —
 * then every waiting command fails with DeviceRemoved, the workers end, and the result
 * says how many commands were aborted. Error statuses are counted and the load goes on.
 */
export function* nvmeLoad(disk: NvmeDisk, options: NvmeLoadOptions): Task<NvmeLoadStats> {
  const { region, blocksPerCommand, queueDepth, verify } = options;
  const bytes = blocksPerCommand * BLOCK_BYTES;
  const chunks = Math.floor(region.blocks / blocksPerCommand);
  if (!Number.isInteger(blocksPerCommand) || blocksPerCommand < 1 || bytes > PAGE << 5) throw new RangeError(`nvmeLoad: ${blocksPerCommand} blocks per command: 1 to 256`);
  if (!Number.isInteger(queueDepth) || queueDepth < 1 || chunks < queueDepth) throw new RangeError(`nvmeLoad: ${chunks} commands' worth of blocks cannot keep ${queueDepth} commands apart`);
  if (region.lba < 0 || region.lba + region.blocks > disk.blocks) throw new RangeError(`nvmeLoad: blocks ${region.lba}..${region.lba + region.blocks - 1} are not on the disk`);
  const stats = options.stats ?? newNvmeLoadStats();
  stats.ended = "running";
  const seed = options.seed ?? 0x10ad;
  const abortedBefore = disk.abortedCommands;
  const end = (why: NvmeLoadStats["ended"]) => {
    if (stats.ended === "running") stats.ended = why;
  };

  function* worker(index: number): Task<void> {
    // Each worker has its own buffers and PRP list pages, and the chunks index, index + depth, ...
    const buffers = disk.os.dmaAlloc(2 * bytes + 2 * PAGE);
    const [writeBuffer, readBuffer, writeList, readList] = [buffers, buffers + bytes, buffers + 2 * bytes, buffers + 2 * bytes + PAGE];
    const mine = Math.floor((chunks - index - 1) / queueDepth) + 1;
    for (let round = 0; stats.ended === "running"; round++) {
      if (options.stop?.()) return end("stopped");
      const started = disk.os.rc.now;
      const lba = region.lba + (index + queueDepth * (round % mine)) * blocksPerCommand;
      const data = pattern((seed + index * 0x10001 + round * 0x9e3779b9) >>> 0, bytes);
      try {
        yield* disk.write(lba, data, writeBuffer, writeList);
        stats.commands++;
        stats.bytesWritten += bytes;
        const back = yield* disk.read(lba, blocksPerCommand, readBuffer, readList);
        stats.commands++;
        stats.bytesRead += bytes;
        if (verify) {
          if (equalBytes(back, data)) {
            stats.verifiedBytes += bytes;
            options.onVerified?.(stats);
          } else stats.mismatches++;
        }
        stats.rounds++;
        const rest = (options.intervalNs ?? 0) - (disk.os.rc.now - started);
        if (rest > 0) yield* wait(disk.os.rc.delay(rest));
      } catch (error) {
        if (error instanceof DeviceRemoved) return end("removed");
        stats.errors++;
        if (error instanceof NvmeError) continue;
        stats.lastError = (error as Error).message;
        return end("error");
      }
    }
  }

  return yield* wait<NvmeLoadStats>({
    start: (resume) => {
      let running = queueDepth;
      for (let index = 0; index < queueDepth; index++) {
        spawn(worker(index), (result) => {
          if (result instanceof Error) {
            stats.lastError ??= result.message;
            end("error");
          }
          if (--running > 0) return;
          stats.aborted = disk.abortedCommands - abortedBefore;
          resume(stats);
        });
      }
    },
  });
}
