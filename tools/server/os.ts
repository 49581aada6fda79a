// The server's operating system, as far as PCI goes: it enumerates the hierarchy below the
// root port (bus numbers depth first, BAR sizing, address assignment, bridge windows), enables
// the functions it found, sets up MSI, and binds drivers. Written as tasks (task.ts): each
// configuration access is an operation that completes in virtual time.

import { spawn, wait, type Op, type Task } from "./task.ts";
import { RootComplex, ROOT_PORT_DEVICE, MSI_BASE, RequestFailed } from "./root-complex.ts";

export interface BarInfo {
  index: number;
  kind: "memory32" | "memory64" | "io";
  prefetchable: boolean;
  size: number;
  address: number;
}

export interface PciFunction {
  bus: number;
  device: number;
  fn: number;
  vendorId: number;
  deviceId: number;
  classCode: number;
  bridge: { secondary: number; subordinate: number } | null;
  bars: BarInfo[];
  /** Offsets of the capabilities found, by capability ID. */
  capabilities: Map<number, number>;
  /** The MSI message data the OS assigned, when it enabled MSI. */
  msiVector: number | null;
}

export const CAP_MSI = 0x05;
export const CAP_EXPRESS = 0x10;
/** Device/Port Type of a switch upstream port in the PCI Express Capabilities register. */
const UPSTREAM_PORT = 0b0101;
const MEMORY_POOL = 0xe000_0000;
const PREFETCH_POOL = 0x40_0000_0000;
const WINDOW_ALIGN = 1 << 20;
const FIRST_VECTOR = 0x30;

const alignUp = (value: number, align: number) => Math.ceil(value / align) * align;
const hex = (n: number) => `0x${n.toString(16)}`;

export interface OsLog {
  (text: string): void;
}

export class OperatingSystem {
  readonly functions: PciFunction[] = [];
  private nextBus = 1;
  private memory = MEMORY_POOL;
  private prefetch = PREFETCH_POOL;
  private nextVector = FIRST_VECTOR;
  private readonly waiters = new Map<number, (() => void)[]>();
  readonly interrupts = new Map<number, number>();

  constructor(readonly rc: RootComplex, private readonly log: OsLog = () => {}) {
    rc.onInterrupt = (data) => {
      this.interrupts.set(data, (this.interrupts.get(data) ?? 0) + 1);
      const waiting = this.waiters.get(data);
      this.waiters.delete(data);
      for (const wake of waiting ?? []) wake();
    };
  }

  /** An operation that completes at the next MSI with message data `vector`. */
  interrupt(vector: number): Op<void> {
    return {
      start: (resume) => {
        const list = this.waiters.get(vector) ?? [];
        list.push(() => resume(undefined));
        this.waiters.set(vector, list);
      },
    };
  }

  private *read(bus: number, device: number, fn: number, register: number): Task<number> {
    return yield* wait(this.rc.configRead(bus, device, fn, register));
  }

  private *write(bus: number, device: number, fn: number, register: number, value: number, firstBe = 0xf): Task<void> {
    yield* wait(this.rc.configWrite(bus, device, fn, register, value, firstBe));
  }

  /** Enumerates everything below the root port; returns the functions found, in scan order. */
  *enumerate(): Task<PciFunction[]> {
    yield* this.bridge(0, ROOT_PORT_DEVICE, 0, true);
    return this.functions;
  }

  /** Vendor ID of a function, or null when nothing answers (Unsupported Request, timeout, all ones). */
  private *probe(bus: number, device: number, fn: number): Task<number | null> {
    try {
      const id = yield* this.read(bus, device, fn, 0);
      return (id & 0xffff) === 0xffff ? null : id;
    } catch (error) {
      if (error instanceof RequestFailed) return null;
      throw error;
    }
  }

  private *scanBus(bus: number, onlyDevice0: boolean): Task<void> {
    for (let device = 0; device < (onlyDevice0 ? 1 : 32); device++) {
      const id = yield* this.probe(bus, device, 0);
      if (id === null) continue;
      const headerType = ((yield* this.read(bus, device, 0, 3)) >> 16) & 0x7f;
      if (headerType === 1) yield* this.bridge(bus, device, 0, false);
      else yield* this.endpoint(bus, device, 0, id);
    }
  }

  private *capabilities(bus: number, device: number, fn: number): Task<Map<number, number>> {
    const found = new Map<number, number>();
    const status = (yield* this.read(bus, device, fn, 1)) >>> 16;
    if (!(status & 0x10)) return found;
    let pointer = (yield* this.read(bus, device, fn, 0x34 / 4)) & 0xfc;
    for (let hops = 0; pointer && hops < 48; hops++) {
      const header = yield* this.read(bus, device, fn, pointer / 4);
      found.set(header & 0xff, pointer);
      pointer = (header >> 8) & 0xfc;
    }
    return found;
  }

  private *bridge(bus: number, device: number, fn: number, rootPort: boolean): Task<void> {
    const id = yield* this.read(bus, device, fn, 0);
    const secondary = this.nextBus++;
    // Primary, secondary, and subordinate 0xff until the buses below are counted.
    yield* this.write(bus, device, fn, 6, (0xff << 16) | (secondary << 8) | bus, 0b0111);
    const record: PciFunction = {
      bus, device, fn, vendorId: id & 0xffff, deviceId: id >>> 16, classCode: (yield* this.read(bus, device, fn, 2)) >>> 8,
      bridge: { secondary, subordinate: 0xff }, bars: [], capabilities: yield* this.capabilities(bus, device, fn), msiVector: null,
    };
    this.functions.push(record);
    this.memory = alignUp(this.memory, WINDOW_ALIGN);
    this.prefetch = alignUp(this.prefetch, WINDOW_ALIGN);
    const memoryStart = this.memory;
    const prefetchStart = this.prefetch;
    // Below a PCI Express root or downstream port only device 0 can exist; below a switch's
    // upstream port lies its internal bus with one device per downstream port.
    const express = record.capabilities.get(CAP_EXPRESS);
    const portType = express === undefined ? -1 : ((yield* this.read(bus, device, fn, express / 4)) >> 20) & 0xf;
    yield* this.scanBus(secondary, portType !== UPSTREAM_PORT);
    const subordinate = this.nextBus - 1;
    record.bridge!.subordinate = subordinate;
    yield* this.write(bus, device, fn, 6, (subordinate << 16) | (secondary << 8) | bus, 0b0111);
    this.memory = alignUp(this.memory, WINDOW_ALIGN);
    this.prefetch = alignUp(this.prefetch, WINDOW_ALIGN);
    yield* this.window(bus, device, fn, 8, memoryStart, this.memory);
    if (this.prefetch > prefetchStart) {
      yield* this.write(bus, device, fn, 9, ((((this.prefetch - 1) >>> 16) & 0xfff0) << 16) | ((prefetchStart >>> 16) & 0xfff0) | 0x0001_0001);
      yield* this.write(bus, device, fn, 10, Math.floor(prefetchStart / 2 ** 32));
      yield* this.write(bus, device, fn, 11, Math.floor((this.prefetch - 1) / 2 ** 32));
    } else {
      yield* this.write(bus, device, fn, 9, 0x0001_fff1); // closed: base above limit
    }
    yield* this.write(bus, device, fn, 1, 0x0006, 0b0011); // Memory Space, Bus Master
    const prefetchable = this.prefetch > prefetchStart ? `, prefetchable ${hex(prefetchStart)}-${hex(this.prefetch - 1)}` : "";
    this.log(`${rootPort ? "root port" : "bridge"} ${bus}:${device}.${fn} [${hex(record.vendorId)}:${hex(record.deviceId)}] buses ${secondary}-${subordinate}, memory ${memoryStart < this.memory ? `${hex(memoryStart)}-${hex(this.memory - 1)}` : "none"}${prefetchable}`);
  }

  /** Programs a memory base/limit pair (1 MiB granularity); closed when nothing was allocated. */
  private *window(bus: number, device: number, fn: number, register: number, start: number, end: number): Task<void> {
    const value = end > start ? ((((end - 1) >>> 16) & 0xfff0) << 16) | ((start >>> 16) & 0xfff0) : 0x0000_fff0;
    yield* this.write(bus, device, fn, register, value);
  }

  private *endpoint(bus: number, device: number, fn: number, id: number): Task<void> {
    const record: PciFunction = {
      bus, device, fn, vendorId: id & 0xffff, deviceId: id >>> 16, classCode: (yield* this.read(bus, device, fn, 2)) >>> 8,
      bridge: null, bars: [], capabilities: yield* this.capabilities(bus, device, fn), msiVector: null,
    };
    for (let index = 0; index < 6; index++) {
      const register = 4 + index;
      yield* this.write(bus, device, fn, register, 0xffffffff);
      const low = yield* this.read(bus, device, fn, register);
      if (low === 0) continue;
      if (low & 1) continue; // I/O BARs are not assigned: nothing here decodes I/O
      const wide = ((low >> 1) & 3) === 2;
      let mask = (low & 0xfffffff0) >>> 0;
      let size: number;
      if (wide) {
        yield* this.write(bus, device, fn, register + 1, 0xffffffff);
        const high = yield* this.read(bus, device, fn, register + 1);
        size = 2 ** 64 - (high * 2 ** 32 + mask);
        mask = 0;
      } else size = 2 ** 32 - mask;
      const prefetchable = (low & 8) !== 0;
      const pool = prefetchable && wide ? "prefetch" : "memory";
      const address = alignUp(this[pool], size);
      this[pool] = address + size;
      yield* this.write(bus, device, fn, register, address % 2 ** 32);
      if (wide) yield* this.write(bus, device, fn, register + 1, Math.floor(address / 2 ** 32));
      record.bars.push({ index, kind: wide ? "memory64" : "memory32", prefetchable, size, address });
      if (wide) index++;
    }
    const msi = record.capabilities.get(CAP_MSI);
    if (msi !== undefined) {
      const control = (yield* this.read(bus, device, fn, msi / 4)) >>> 16;
      const address64 = (control & 0x80) !== 0;
      const vector = this.nextVector++;
      yield* this.write(bus, device, fn, msi / 4 + 1, MSI_BASE);
      if (address64) yield* this.write(bus, device, fn, msi / 4 + 2, 0);
      yield* this.write(bus, device, fn, msi / 4 + (address64 ? 3 : 2), vector, 0b0011);
      yield* this.write(bus, device, fn, msi / 4, 1 << 16, 0b0100); // MSI Enable, one vector
      record.msiVector = vector;
    }
    yield* this.write(bus, device, fn, 1, 0x0006, 0b0011);
    this.functions.push(record);
    this.log(`device ${bus}:${device}.${fn} [${hex(record.vendorId)}:${hex(record.deviceId)}] class ${hex(record.classCode)}, ${record.bars.map((b) => `BAR${b.index} ${hex(b.address)} (${b.size >= 2 ** 20 ? `${b.size / 2 ** 20} MiB` : `${b.size / 1024} KiB`}${b.prefetchable ? ", prefetchable" : ""})`).join(", ") || "no BARs"}${record.msiVector !== null ? `, MSI ${hex(record.msiVector)}` : ""}`);
  }

  /** Runs a task (a driver, the enumeration) to completion in the background. */
  start<T>(task: Task<T>, done?: (result: T | Error) => void): void {
    spawn(task, done);
  }
}
