// The card's serial NOR flash (board/map/flash.ts) and its controller.
//
// `Flash` is the memory array: erase sets a sector to 0xff, programming clears bits only
// (the result is old AND new, as on a real part). It lives in memory or in a file on the
// host, written through on every change, so that it survives a simulated power cycle and
// the next run of the simulator.
//
// `FlashController` runs the firmware's FLASH_ERASE / FLASH_PROGRAM / FLASH_READ commands
// one at a time with the part's timing, answers each with FLASH_DONE, refuses writes to the
// slot of the running image, and models a power cut in the middle of an operation: the
// sector being erased is left with random bits set, the page being programmed with only a
// prefix of its bytes.

import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import {
  FLASH_SIZE, SECTOR_SIZE, PAGE_SIZE, SLOT_SIZE, ERASE_SECTOR_NS, slotBase, PROGRAM_PAGE_NS, READ_NS_PER_BYTE,
} from "./map/flash.ts";
import { FlashOp, FlashStatus, FLASH_READ_MAX } from "./map/mailbox.ts";
import type { Scheduler } from "./scheduler.ts";

export class FlashFileError extends Error {}

export class Flash {
  private constructor(
    private readonly bytes: Uint8Array,
    private readonly fd: number | null,
    readonly path: string | null,
  ) {}

  /** An erased part held in memory. */
  static erased(): Flash {
    return new Flash(new Uint8Array(FLASH_SIZE).fill(0xff), null, null);
  }

  /** The part backed by `path`: read if the file exists (it must be FLASH_SIZE bytes), else created erased. */
  static file(path: string): { flash: Flash; created: boolean } {
    const created = !existsSync(path);
    let fd: number;
    try {
      fd = openSync(path, created ? "w+" : "r+");
    } catch (error) {
      throw new FlashFileError(`flash file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const bytes = new Uint8Array(FLASH_SIZE).fill(0xff);
    if (created) {
      writeSync(fd, bytes, 0, FLASH_SIZE, 0);
    } else {
      const size = fstatSync(fd).size;
      if (size !== FLASH_SIZE) {
        closeSync(fd);
        throw new FlashFileError(`flash file ${path} is ${size} bytes, not ${FLASH_SIZE}: not a flash image of this card`);
      }
      readSync(fd, bytes, 0, FLASH_SIZE, 0);
    }
    return { flash: new Flash(bytes, fd, path), created };
  }

  read(address: number, length: number): Uint8Array {
    return this.bytes.slice(address, address + length);
  }

  /** A live view of the whole array (the boot ROM reads slots through it). */
  view(address: number, length: number): Uint8Array {
    return this.bytes.subarray(address, address + length);
  }

  eraseSector(address: number): void {
    const base = address - (address % SECTOR_SIZE);
    this.bytes.fill(0xff, base, base + SECTOR_SIZE);
    this.persist(base, SECTOR_SIZE);
  }

  /** Programs `data` at `address`: each byte becomes old AND new. */
  program(address: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.bytes[address + i] &= data[i];
    this.persist(address, data.length);
  }

  /** A sector whose erase was cut short: some bits set, the others as they were. */
  garbleSector(address: number, random: (bound: number) => number): void {
    const base = address - (address % SECTOR_SIZE);
    for (let i = base; i < base + SECTOR_SIZE; i++) this.bytes[i] |= random(256);
    this.persist(base, SECTOR_SIZE);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
  }

  private persist(address: number, length: number): void {
    if (this.fd !== null) writeSync(this.fd, this.bytes, address, length, address);
  }
}

export interface FlashDone {
  op: FlashOp;
  status: FlashStatus;
  address: number;
  data: Uint8Array;
}

interface Running {
  op: FlashOp;
  /** The command's address. */
  address: number;
  /** Erase: the sector being erased, and the end of the range. */
  cursor: number;
  end: number;
  /** Program: the page's data. Read: its length in `end`. */
  data: Uint8Array;
  handle: number;
}

export class FlashController {
  private running: Running | null = null;
  /** Slot the boot ROM started: the controller refuses to erase or program it. */
  protectedSlot: number | null = null;

  constructor(
    readonly flash: Flash,
    private readonly scheduler: Scheduler,
    private readonly done: (result: FlashDone) => void,
  ) {}

  get busy(): boolean {
    return this.running !== null;
  }

  erase(address: number, sectors: number): void {
    if (this.refuse(FlashOp.Erase, address)) return;
    if (address % SECTOR_SIZE !== 0 || sectors < 1 || address + sectors * SECTOR_SIZE > FLASH_SIZE) {
      return this.finish(FlashOp.Erase, FlashStatus.Range, address);
    }
    if (this.touchesProtected(address, sectors * SECTOR_SIZE)) return this.finish(FlashOp.Erase, FlashStatus.Protected, address);
    this.start({ op: FlashOp.Erase, address, cursor: address, end: address + sectors * SECTOR_SIZE, data: new Uint8Array(0) }, ERASE_SECTOR_NS);
  }

  program(address: number, data: Uint8Array): void {
    if (this.refuse(FlashOp.Program, address)) return;
    const page = address - (address % PAGE_SIZE);
    if (data.length < 1 || address + data.length > page + PAGE_SIZE || address + data.length > FLASH_SIZE) {
      return this.finish(FlashOp.Program, FlashStatus.Range, address);
    }
    if (this.touchesProtected(address, data.length)) return this.finish(FlashOp.Program, FlashStatus.Protected, address);
    this.start({ op: FlashOp.Program, address, cursor: address, end: address + data.length, data }, PROGRAM_PAGE_NS);
  }

  read(address: number, length: number): void {
    if (this.refuse(FlashOp.Read, address)) return;
    if (length < 1 || length > FLASH_READ_MAX || address + length > FLASH_SIZE) {
      return this.finish(FlashOp.Read, FlashStatus.Range, address);
    }
    this.start({ op: FlashOp.Read, address, cursor: address, end: address + length, data: new Uint8Array(0) }, READ_NS_PER_BYTE * length);
  }

  /**
   * Power is gone: the operation in progress stops where it is. `random` (a seeded source)
   * decides how far it got.
   */
  powerCut(random: (bound: number) => number): void {
    const r = this.running;
    if (!r) return;
    this.scheduler.cancel(r.handle);
    this.running = null;
    if (r.op === FlashOp.Erase) this.flash.garbleSector(r.cursor, random);
    if (r.op === FlashOp.Program) {
      const written = random(r.data.length + 1);
      this.flash.program(r.address, r.data.subarray(0, written));
    }
  }

  /** Reset of the card: an operation in progress completes (the part finishes it), its answer is lost. */
  reset(): void {
    const r = this.running;
    if (!r) return;
    this.scheduler.cancel(r.handle);
    this.running = null;
    if (r.op === FlashOp.Erase) for (let at = r.cursor; at < r.end; at += SECTOR_SIZE) this.flash.eraseSector(at);
    if (r.op === FlashOp.Program) this.flash.program(r.address, r.data);
  }

  private refuse(op: FlashOp, address: number): boolean {
    if (!this.running) return false;
    this.finish(op, FlashStatus.Busy, address);
    return true;
  }

  private touchesProtected(address: number, length: number): boolean {
    if (this.protectedSlot === null) return false;
    const base = slotBase(this.protectedSlot);
    return address < base + SLOT_SIZE && address + length > base;
  }

  private finish(op: FlashOp, status: FlashStatus, address: number, data: Uint8Array = new Uint8Array(0)): void {
    this.done({ op, status, address, data });
  }

  private start(work: Omit<Running, "handle">, duration: number): void {
    const running: Running = { ...work, handle: 0 };
    this.running = running;
    running.handle = this.scheduler.at(this.scheduler.now + duration, () => this.step(running));
  }

  private step(r: Running): void {
    if (r.op === FlashOp.Erase) {
      this.flash.eraseSector(r.cursor);
      r.cursor += SECTOR_SIZE;
      if (r.cursor < r.end) {
        r.handle = this.scheduler.at(this.scheduler.now + ERASE_SECTOR_NS, () => this.step(r));
        return;
      }
    }
    if (r.op === FlashOp.Program) this.flash.program(r.address, r.data);
    this.running = null;
    this.finish(r.op, FlashStatus.Ok, r.address, r.op === FlashOp.Read ? this.flash.read(r.address, r.end - r.address) : undefined);
  }
}
