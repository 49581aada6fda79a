// The server's operating system, as far as PCI goes, modelled on Linux's PCI core: it
// enumerates the hierarchy below the root port (bus numbers depth first, BAR sizing, address
// assignment, bridge windows with a hot-plug reservation), enables the functions it found,
// sets up MSI, binds the port services (MSI for the port, a pciehp controller for every
// hot-plug slot: pciehp.ts) and the registered drivers, and removes and rescans the functions
// below a hot-plug port when pciehp tells it to. Written as tasks (task.ts): each
// configuration access is an operation that completes in virtual time. A function that is not
// ready yet answers its Vendor ID read with Configuration Request Retry Status; the OS turns on
// CRS Software Visibility at the root port and waits for it, as Linux does (readVendorId).

import { spawn, wait, MS, type Op, type Task } from "./task.ts";
import { RootComplex, ROOT_PORT_DEVICE, MSI_BASE, CRS_VENDOR_ID, RequestFailed } from "./root-complex.ts";
import { Command, Exp, ExpFlags, PortType, SltCap } from "../../board/map/pcie.ts";
import { RootCap, RootCtl } from "../../board/pcie/capabilities.ts";
import { PciehpController, newHotplugCounters, type HotplugCounters, type PciehpOptions } from "./pciehp.ts";

export interface BarInfo {
  index: number;
  kind: "memory32" | "memory64" | "io";
  prefetchable: boolean;
  size: number;
  address: number;
}

/** An address range the OS programmed into a bridge window: [base, base + size). */
export interface AddressRange {
  base: number;
  size: number;
}

export interface BridgeInfo {
  secondary: number;
  subordinate: number;
  /** The non-prefetchable memory window, or null when it is closed. */
  memory: AddressRange | null;
  /** The prefetchable memory window, or null when it is closed. */
  prefetchable: AddressRange | null;
  /** A Root or Downstream Port with Slot Implemented and Hot-Plug Capable (Linux: is_hotplug_bridge). */
  hotplug: boolean;
}

export interface PciFunction {
  bus: number;
  device: number;
  fn: number;
  vendorId: number;
  deviceId: number;
  classCode: number;
  bridge: BridgeInfo | null;
  bars: BarInfo[];
  /** Offsets of the capabilities found, by capability ID. */
  capabilities: Map<number, number>;
  /** The MSI message data the OS assigned, when it enabled MSI. */
  msiVector: number | null;
  /**
   * The function went away without warning (surprise removal): nothing may be sent to it any
   * more, and a failed or all-ones read from it means "gone" (Linux: pci_dev_is_disconnected).
   */
  disconnected: boolean;
  /** The OS has removed the function; whoever still holds the record sees this. */
  removed: boolean;
  /** The driver bound to it (the port services driver for ports), or null. */
  driver: PciDriver | null;
  /** What the bound driver keeps for this function (Linux: pci_set_drvdata). */
  driverData: unknown;
}

/**
 * A driver, as Linux's struct pci_driver: `probe` runs as its own task when a matching
 * function is added (at boot or on hot-add) and what it returns goes to the "bound" event;
 * `remove` is called when the function goes away, before the OS forgets it — on a surprise
 * removal after the function is marked disconnected, so it must end every outstanding
 * operation (with DeviceRemoved) without touching the device.
 */
export interface PciDriver<T = unknown> {
  readonly name: string;
  matches(fn: PciFunction): boolean;
  probe(os: OperatingSystem, fn: PciFunction): Task<T>;
  remove(fn: PciFunction): void;
}

/** What the OS tells its listeners (the simulator's timeline, tests). */
export type OsEvent =
  | { kind: "added"; fn: PciFunction }
  | { kind: "bound"; fn: PciFunction; driver: string; result: unknown }
  | { kind: "probeFailed"; fn: PciFunction; driver: string; error: Error }
  | { kind: "unbound"; fn: PciFunction; driver: string }
  | { kind: "removed"; fn: PciFunction }
  | { kind: "hotplug"; port: PciFunction; slot: number; change: "removal" | "insertion" | "insertionFailed" };

/** An operation on a function that has gone: surprise-removed, or removed by the OS. */
export class DeviceRemoved extends Error {
  constructor(readonly fn: PciFunction) {
    super(`${functionName(fn)}: device removed`);
  }
}

export const CAP_MSI = 0x05;
export const CAP_EXPRESS = 0x10;
const MEMORY_POOL = 0xe000_0000;
/** The 32-bit pool ends below the MSI range (0xfee00000). */
const MEMORY_POOL_END = 0xfe00_0000;
const PREFETCH_POOL = 0x40_0000_0000;
const PREFETCH_POOL_END = 0x80_0000_0000;
const WINDOW_ALIGN = 1 << 20;
const FIRST_VECTOR = 0x30;
/** Server memory the OS hands drivers for their queues and buffers (Linux: dma_alloc_coherent). */
const DMA_POOL = 0x10_0000_0000;
const PAGE = 4096;
/** pci_scan_device: how long enumeration waits for a function that answers with Configuration Request Retry Status (60 s). */
export const CRS_TIMEOUT_MS = 60_000;

/**
 * Hot-plug resource reservation, as Linux's pci=hpmmiosize / hpmmioprefsize / hpbussize (whose
 * defaults these are): every hot-plug port's windows are at least this big, and start on a
 * multiple of their size, so a device inserted after boot finds room below it. They fit every
 * chassis device (board/devices): the largest non-prefetchable BAR is NVMe's 16 KiB (with the
 * graphics adapter's 4 KiB register BAR, DMA test and keyboard/mouse 4 KiB each), the only
 * prefetchable one the graphics adapter's 2 MiB framebuffer. One bus: below a downstream port
 * there is device 0 alone, and every chassis device is an endpoint.
 */
export const HOTPLUG_MEMORY_BYTES = 2 << 20;
export const HOTPLUG_PREFETCH_BYTES = 2 << 20;
export const HOTPLUG_BUSES = 1;

const alignUp = (value: number, align: number) => Math.ceil(value / align) * align;
const hex = (n: number) => `0x${n.toString(16)}`;
export const functionName = (f: Pick<PciFunction, "bus" | "device" | "fn">) => `${f.bus}:${f.device}.${f.fn}`;
/** A function as Linux names it where it has no device yet (pci_bus_info): "pci 0000:01:00.0". */
const busName = (bus: number, device: number, fn: number) => `pci 0000:${bus.toString(16).padStart(2, "0")}:${device.toString(16).padStart(2, "0")}.${fn}`;

export interface OsLog {
  (text: string): void;
}

export interface OsOptions {
  /** pciehp's module parameters. */
  hotplug?: PciehpOptions;
}

/** Addresses still free for BARs and windows: a bump allocator over [next, end). */
class AddressPool {
  constructor(public next: number, readonly end: number) {}

  /** `size` bytes on a multiple of `align`, or null when they do not fit. */
  take(size: number, align = size): number | null {
    const at = alignUp(this.next, align);
    if (at + size > this.end) return null;
    this.next = at + size;
    return at;
  }
}

interface Pools {
  memory: AddressPool;
  prefetch: AddressPool;
}

/** The port services driver (Linux portdrv, "pcieport"): MSI for the port and pciehp for its slot. */
const PORT_DRIVER: PciDriver<void> = {
  name: "pcieport",
  matches: (fn) => fn.bridge !== null,
  probe: function* (): Task<void> {}, // the OS runs the services itself (portServices)
  remove: () => {},
};

type Waiter = (result: undefined | Error) => void;

export class OperatingSystem {
  readonly functions: PciFunction[] = [];
  /** One pciehp controller per hot-plug port, in the order they were probed. */
  readonly hotplug: PciehpController[] = [];
  /** Every pciehp controller since boot, those of ports since removed too: their counters add up. */
  private readonly everyController: PciehpController[] = [];
  readonly interrupts = new Map<number, number>();
  private readonly drivers: PciDriver[] = [];
  private readonly listeners: ((event: OsEvent) => void)[] = [];
  private readonly pools: Pools = { memory: new AddressPool(MEMORY_POOL, MEMORY_POOL_END), prefetch: new AddressPool(PREFETCH_POOL, PREFETCH_POOL_END) };
  private readonly dma = new AddressPool(DMA_POOL, Number.MAX_SAFE_INTEGER);
  private nextBus = 1;
  private nextVector = FIRST_VECTOR;
  private readonly waiters = new Map<number, Waiter[]>();
  private readonly irqHandlers = new Map<number, () => void>();

  constructor(readonly rc: RootComplex, readonly log: OsLog = () => {}, private readonly options: OsOptions = {}) {
    rc.onInterrupt = (data) => {
      this.interrupts.set(data, (this.interrupts.get(data) ?? 0) + 1);
      this.irqHandlers.get(data)?.();
      const waiting = this.waiters.get(data);
      this.waiters.delete(data);
      for (const wake of waiting ?? []) wake(undefined);
    };
  }

  // ---- events and drivers -----------------------------------------------------------------

  /** Calls `listener` with every event from now on; returns a function that stops it. */
  onEvent(listener: (event: OsEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  /** Tells every listener; pciehp reports slot changes through it too. */
  notify(event: OsEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  /** Registers a driver and binds it to every function already there that it matches and no driver has (driver_register). */
  registerDriver(driver: PciDriver<any>): void {
    this.drivers.push(driver);
    for (const fn of this.functions) if (!fn.bridge && !fn.driver && driver.matches(fn)) this.attach(fn);
  }

  /** Binds the first registered driver that matches `fn` and runs its probe (device_attach). */
  private attach(fn: PciFunction): void {
    const driver = this.drivers.find((d) => d.matches(fn));
    if (!driver) return;
    fn.driver = driver;
    spawn(driver.probe(this, fn), (result) => {
      if (result instanceof Error) {
        // A failed probe leaves the function without a driver, as in Linux.
        if (fn.driver === driver) {
          fn.driver = null;
          fn.driverData = null;
        }
        this.log(`${driver.name} ${functionName(fn)}: probe failed: ${result.message}`);
        this.notify({ kind: "probeFailed", fn, driver: driver.name, error: result });
      } else this.notify({ kind: "bound", fn, driver: driver.name, result });
    });
  }

  /** Calls the driver's remove and unbinds it (device_release_driver). */
  private detach(fn: PciFunction): void {
    const driver = fn.driver;
    if (!driver) return;
    if (driver === PORT_DRIVER) {
      const controller = this.hotplug.find((c) => c.port === fn);
      if (controller) {
        controller.release();
        this.hotplug.splice(this.hotplug.indexOf(controller), 1);
      }
    } else {
      try {
        driver.remove(fn);
      } catch (error) {
        this.log(`${driver.name} ${functionName(fn)}: remove failed: ${(error as Error).message}`);
      }
    }
    fn.driver = null;
    fn.driverData = null;
    this.notify({ kind: "unbound", fn, driver: driver.name });
  }

  // ---- interrupts -----------------------------------------------------------------------

  /** An operation that completes at the next MSI with message data `vector`. */
  interrupt(vector: number): Op<void> {
    return {
      start: (resume) => {
        const list = this.waiters.get(vector) ?? [];
        list.push(resume);
        this.waiters.set(vector, list);
      },
    };
  }

  /** The next MSI of `fn`; fails with DeviceRemoved when the function is (or gets) removed. */
  waitInterrupt(fn: PciFunction): Op<void> {
    return {
      start: (resume) => {
        if (fn.removed || fn.msiVector === null) {
          resume(fn.removed ? new DeviceRemoved(fn) : new Error(`${functionName(fn)} has no MSI`));
          return;
        }
        this.interrupt(fn.msiVector).start(resume);
      },
    };
  }

  /** Installs the handler of an MSI vector (request_irq); it runs at every message, before waiters wake. */
  requestIrq(vector: number, handler: () => void): void {
    this.irqHandlers.set(vector, handler);
  }

  freeIrq(vector: number): void {
    this.irqHandlers.delete(vector);
  }

  // ---- memory for drivers ---------------------------------------------------------------

  /** `bytes` of server memory (page aligned) for a driver's queues and buffers (dma_alloc_coherent). */
  dmaAlloc(bytes: number): number {
    return this.dma.take(alignUp(bytes, PAGE), PAGE)!;
  }

  // ---- MMIO for drivers -----------------------------------------------------------------

  /**
   * A memory read of `bytes` from a function's BAR. Refused for a function that is gone; a
   * read that fails (Unsupported Request, timeout) or returns all ones from a function that
   * turns out to be gone — marked disconnected, or no longer answering its Vendor ID (Linux:
   * pci_device_is_present) — fails with DeviceRemoved rather than as a data error.
   */
  *mmioRead(fn: PciFunction, address: number, bytes: number): Task<Uint8Array> {
    if (fn.disconnected || fn.removed) throw new DeviceRemoved(fn);
    let data: Uint8Array;
    try {
      data = yield* wait(this.rc.memoryRead(address, bytes));
    } catch (error) {
      if (error instanceof RequestFailed && !(yield* this.isPresent(fn))) throw new DeviceRemoved(fn);
      throw error;
    }
    if (data.every((b) => b === 0xff) && !(yield* this.isPresent(fn))) throw new DeviceRemoved(fn);
    return data;
  }

  *mmioRead32(fn: PciFunction, address: number): Task<number> {
    const data = yield* this.mmioRead(fn, address, 4);
    return new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  }

  /** A posted memory write to a function's BAR; refused (DeviceRemoved) once the function is gone. */
  mmioWrite(fn: PciFunction, address: number, data: Uint8Array): Op<void> {
    return {
      start: (resume) => {
        if (fn.disconnected || fn.removed) resume(new DeviceRemoved(fn));
        else this.rc.memoryWrite(address, data).start(resume);
      },
    };
  }

  /** Linux pci_device_is_present: not marked disconnected and still answering its Vendor ID. */
  *isPresent(fn: PciFunction): Task<boolean> {
    if (fn.disconnected || fn.removed) return false;
    return (yield* this.readVendorId(fn.bus, fn.device, fn.fn)) !== null;
  }

  // ---- configuration access ---------------------------------------------------------------

  private *read(bus: number, device: number, fn: number, register: number): Task<number> {
    return yield* wait(this.rc.configRead(bus, device, fn, register));
  }

  private *write(bus: number, device: number, fn: number, register: number, value: number, firstBe = 0xf): Task<void> {
    yield* wait(this.rc.configWrite(bus, device, fn, register, value, firstBe));
  }

  /**
   * A configuration read of `size` bytes at `offset` (naturally aligned) as a CPU sees it: a
   * request that fails (Unsupported Request, completion timeout) reads all ones, which
   * callers test as Linux's PCI_POSSIBLE_ERROR.
   */
  *readConfig(fn: Pick<PciFunction, "bus" | "device" | "fn">, offset: number, size: 1 | 2 | 4): Task<number> {
    const ones = size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    try {
      const dword = yield* this.read(fn.bus, fn.device, fn.fn, offset >> 2);
      return size === 4 ? dword >>> 0 : (dword >>> (8 * (offset & 3))) & ones;
    } catch (error) {
      if (error instanceof RequestFailed) return ones;
      throw error;
    }
  }

  /** A configuration write of `size` bytes at `offset`; false when the request failed. */
  *writeConfig(fn: PciFunction, offset: number, size: 1 | 2 | 4, value: number): Task<boolean> {
    const lane = offset & 3;
    try {
      yield* this.write(fn.bus, fn.device, fn.fn, offset >> 2, (value * 2 ** (8 * lane)) % 2 ** 32, ((1 << size) - 1) << lane);
      return true;
    } catch (error) {
      if (error instanceof RequestFailed) return false;
      throw error;
    }
  }

  /**
   * Linux pci_bus_read_dev_vendor_id: the Vendor and Device ID dword, or null when nothing
   * answers — a failed request (all ones), 0, or a half of all ones, which broken boards return
   * for an empty slot. A function that is not ready (Vendor ID CRS_VENDOR_ID: Configuration
   * Request Retry Status) is null at once with `timeoutMs` 0 (pciehp's presence checks,
   * pci_device_is_present); otherwise it is read again after 1 ms, 2, 4 ... (pci_bus_wait_crs)
   * until it answers or the next wait would pass `timeoutMs`, with Linux's messages from the
   * 1 s wait on.
   */
  *readVendorId(bus: number, device: number, fn: number, timeoutMs = 0): Task<number | null> {
    let id = yield* this.readConfig({ bus, device, fn }, 0, 4);
    if (id === 0xffffffff || id === 0 || id === 0x0000ffff || id === 0xffff0000) return null;
    if ((id & 0xffff) !== CRS_VENDOR_ID) return id;
    if (timeoutMs === 0) return null;
    let delay = 1;
    while ((id & 0xffff) === CRS_VENDOR_ID) {
      if (delay > timeoutMs) {
        this.log(`${busName(bus, device, fn)}: not ready after ${delay - 1}ms; giving up`);
        return null;
      }
      if (delay >= 1000) this.log(`${busName(bus, device, fn)}: not ready after ${delay - 1}ms; waiting`);
      yield* wait(this.rc.delay(delay * MS));
      delay *= 2;
      id = yield* this.readConfig({ bus, device, fn }, 0, 4);
    }
    if (delay >= 1000) this.log(`${busName(bus, device, fn)}: ready after ${delay - 1}ms`);
    // Linux takes whatever the last read returned; a failed one (all ones) is nothing here.
    return id === 0xffffffff ? null : id;
  }

  /** The function the OS has at bus/device/function, if any (pci_get_slot). */
  functionAt(bus: number, device: number, fn: number): PciFunction | undefined {
    return this.functions.find((f) => f.bus === bus && f.device === device && f.fn === fn);
  }

  /** The functions on the buses below a bridge, in scan order. */
  functionsBelow(port: PciFunction): PciFunction[] {
    const range = port.bridge;
    if (!range) return [];
    return this.functions.filter((f) => f.bus >= range.secondary && f.bus <= range.subordinate);
  }

  // ---- enumeration --------------------------------------------------------------------------

  /** Enumerates everything below the root port; returns the functions found, in scan order. */
  *enumerate(): Task<PciFunction[]> {
    yield* this.bridge(0, ROOT_PORT_DEVICE, 0, true, this.pools, this.functions);
    return this.functions;
  }

  /**
   * What Linux does at boot: enumerate, then add every function found in scan order (port
   * services for the bridges, run to completion; drivers for the rest, whose probes run as
   * tasks of their own). Returns the functions.
   */
  *boot(): Task<PciFunction[]> {
    const found = [...(yield* this.enumerate())];
    yield* this.addDevices(found);
    return this.functions;
  }

  /**
   * Linux pci_bus_add_devices: each function is announced, a bridge gets its port services
   * (MSI, and pciehp when it is a hot-plug port), an endpoint its driver.
   */
  *addDevices(functions: PciFunction[]): Task<void> {
    for (const fn of functions) {
      if (fn.removed) continue;
      this.notify({ kind: "added", fn });
      if (fn.bridge) yield* this.portServices(fn);
      else this.attach(fn);
    }
  }

  /** Linux pcie_portdrv_probe: MSI for the port (bus mastering is on already), then pciehp on a hot-plug slot. */
  private *portServices(port: PciFunction): Task<void> {
    port.driver = PORT_DRIVER;
    if (port.capabilities.has(CAP_MSI) && port.msiVector === null) yield* this.enableMsi(port);
    const express = port.capabilities.get(CAP_EXPRESS);
    if (!port.bridge!.hotplug || express === undefined) return;
    const controller = new PciehpController(this, port, express, this.options.hotplug);
    this.hotplug.push(controller);
    this.everyController.push(controller);
    if (!(yield* controller.probe())) {
      controller.release(); // as Linux, a port whose pciehp probe failed has no hot-plug service
      this.hotplug.splice(this.hotplug.indexOf(controller), 1);
    }
  }

  private *scanBus(bus: number, onlyDevice0: boolean, pools: Pools, out: PciFunction[]): Task<void> {
    for (let device = 0; device < (onlyDevice0 ? 1 : 32); device++) {
      const id = yield* this.readVendorId(bus, device, 0, CRS_TIMEOUT_MS);
      if (id === null) continue;
      const headerType = ((yield* this.read(bus, device, 0, 3)) >> 16) & 0x7f;
      if (headerType === 1) yield* this.bridge(bus, device, 0, false, pools, out);
      else yield* this.endpoint(bus, device, 0, id, pools, out);
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

  private record(bus: number, device: number, fn: number, id: number, classCode: number, capabilities: Map<number, number>, bridge: BridgeInfo | null): PciFunction {
    return {
      bus, device, fn, vendorId: id & 0xffff, deviceId: id >>> 16, classCode, bridge, bars: [], capabilities, msiVector: null,
      disconnected: false, removed: false, driver: null, driverData: null,
    };
  }

  private *bridge(bus: number, device: number, fn: number, rootPort: boolean, pools: Pools, out: PciFunction[]): Task<void> {
    const id = yield* this.read(bus, device, fn, 0);
    const secondary = this.nextBus++;
    // Primary, secondary, and subordinate 0xff until the buses below are counted.
    yield* this.write(bus, device, fn, 6, (0xff << 16) | (secondary << 8) | bus, 0b0111);
    const classCode = (yield* this.read(bus, device, fn, 2)) >>> 8;
    const info: BridgeInfo = { secondary, subordinate: 0xff, memory: null, prefetchable: null, hotplug: false };
    const record = this.record(bus, device, fn, id, classCode, yield* this.capabilities(bus, device, fn), info);
    out.push(record);
    // Below a PCI Express root or downstream port only device 0 can exist; below a switch's
    // upstream port lies its internal bus with one device per downstream port.
    const express = record.capabilities.get(CAP_EXPRESS);
    let portType = -1;
    if (express !== undefined) {
      const flags = (yield* this.read(bus, device, fn, express / 4)) >>> 16;
      portType = (flags & ExpFlags.Type) >> 4;
      // Linux set_pcie_hotplug_bridge: Hot-Plug Capable in Slot Capabilities of a port with a slot.
      if (flags & ExpFlags.SlotImplemented && (portType === PortType.RootPort || portType === PortType.DownstreamPort)) {
        info.hotplug = ((yield* this.read(bus, device, fn, (express + Exp.SltCap) / 4)) & SltCap.HotPlugCapable) !== 0;
      }
      if (portType === PortType.RootPort) yield* this.enableCrsVisibility(record, express);
    }
    // A hot-plug port's windows start on a multiple of their reservation, so that a BAR as big
    // as the reservation fits at the base.
    const memoryStart = alignUp(pools.memory.next, info.hotplug ? HOTPLUG_MEMORY_BYTES : WINDOW_ALIGN);
    const prefetchStart = alignUp(pools.prefetch.next, info.hotplug ? HOTPLUG_PREFETCH_BYTES : WINDOW_ALIGN);
    pools.memory.next = memoryStart;
    pools.prefetch.next = prefetchStart;
    yield* this.scanBus(secondary, portType !== PortType.UpstreamPort, pools, out);
    let subordinate = this.nextBus - 1;
    if (info.hotplug && subordinate < secondary + HOTPLUG_BUSES - 1) {
      subordinate = secondary + HOTPLUG_BUSES - 1;
      this.nextBus = subordinate + 1;
    }
    info.subordinate = subordinate;
    yield* this.write(bus, device, fn, 6, (subordinate << 16) | (secondary << 8) | bus, 0b0111);
    let memoryEnd = alignUp(pools.memory.next, WINDOW_ALIGN);
    let prefetchEnd = alignUp(pools.prefetch.next, WINDOW_ALIGN);
    if (info.hotplug) {
      memoryEnd = Math.max(memoryEnd, memoryStart + HOTPLUG_MEMORY_BYTES);
      prefetchEnd = Math.max(prefetchEnd, prefetchStart + HOTPLUG_PREFETCH_BYTES);
    }
    pools.memory.next = memoryEnd;
    pools.prefetch.next = prefetchEnd;
    info.memory = memoryEnd > memoryStart ? { base: memoryStart, size: memoryEnd - memoryStart } : null;
    info.prefetchable = prefetchEnd > prefetchStart ? { base: prefetchStart, size: prefetchEnd - prefetchStart } : null;
    yield* this.window(bus, device, fn, 8, memoryStart, memoryEnd);
    if (info.prefetchable) {
      yield* this.write(bus, device, fn, 9, ((((prefetchEnd - 1) >>> 16) & 0xfff0) << 16) | ((prefetchStart >>> 16) & 0xfff0) | 0x0001_0001);
      yield* this.write(bus, device, fn, 10, Math.floor(prefetchStart / 2 ** 32));
      yield* this.write(bus, device, fn, 11, Math.floor((prefetchEnd - 1) / 2 ** 32));
    } else {
      yield* this.write(bus, device, fn, 9, 0x0001_fff1); // closed: base above limit
    }
    yield* this.write(bus, device, fn, 1, Command.Memory | Command.BusMaster, 0b0011);
    const prefetchable = info.prefetchable ? `, prefetchable ${hex(prefetchStart)}-${hex(prefetchEnd - 1)}` : "";
    this.log(`${rootPort ? "root port" : "bridge"} ${bus}:${device}.${fn} [${hex(record.vendorId)}:${hex(record.deviceId)}] buses ${secondary}-${subordinate}, memory ${info.memory ? `${hex(memoryStart)}-${hex(memoryEnd - 1)}` : "none"}${prefetchable}${info.hotplug ? ", hot-plug slot" : ""}`);
  }

  /**
   * Linux pci_enable_crs, before the bus below a root port is scanned: CRS Software Visibility
   * on when Root Capabilities offers it, so that a function not ready yet reads as Vendor ID
   * CRS_VENDOR_ID (readVendorId waits) rather than the root port retrying the read itself.
   */
  private *enableCrsVisibility(port: PciFunction, express: number): Task<void> {
    if (!((yield* this.readConfig(port, express + Exp.RootCap, 2)) & RootCap.CrsVisibility)) return;
    const control = yield* this.readConfig(port, express + Exp.RootCtl, 2);
    yield* this.writeConfig(port, express + Exp.RootCtl, 2, control | RootCtl.CrsVisibility);
  }

  /** Programs a memory base/limit pair (1 MiB granularity); closed when nothing was allocated. */
  private *window(bus: number, device: number, fn: number, register: number, start: number, end: number): Task<void> {
    const value = end > start ? ((((end - 1) >>> 16) & 0xfff0) << 16) | ((start >>> 16) & 0xfff0) : 0x0000_fff0;
    yield* this.write(bus, device, fn, register, value);
  }

  private *endpoint(bus: number, device: number, fn: number, id: number, pools: Pools, out: PciFunction[]): Task<void> {
    const classCode = (yield* this.read(bus, device, fn, 2)) >>> 8;
    const record = this.record(bus, device, fn, id, classCode, yield* this.capabilities(bus, device, fn), null);
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
      const address = pools[prefetchable && wide ? "prefetch" : "memory"].take(size);
      if (address === null) {
        // Linux: "BAR n: no space for [mem size ...]", and the BAR stays unassigned.
        this.log(`device ${bus}:${device}.${fn} BAR${index}: no space for ${size} bytes${prefetchable ? " prefetchable" : ""}; left unassigned`);
        yield* this.write(bus, device, fn, register, 0);
        if (wide) yield* this.write(bus, device, fn, register + 1, 0);
      } else {
        yield* this.write(bus, device, fn, register, address % 2 ** 32);
        if (wide) yield* this.write(bus, device, fn, register + 1, Math.floor(address / 2 ** 32));
        record.bars.push({ index, kind: wide ? "memory64" : "memory32", prefetchable, size, address });
      }
      if (wide) index++;
    }
    if (record.capabilities.has(CAP_MSI)) yield* this.enableMsi(record);
    yield* this.write(bus, device, fn, 1, Command.Memory | Command.BusMaster, 0b0011);
    out.push(record);
    this.log(`device ${bus}:${device}.${fn} [${hex(record.vendorId)}:${hex(record.deviceId)}] class ${hex(record.classCode)}, ${record.bars.map((b) => `BAR${b.index} ${hex(b.address)} (${b.size >= 2 ** 20 ? `${b.size / 2 ** 20} MiB` : `${b.size / 1024} KiB`}${b.prefetchable ? ", prefetchable" : ""})`).join(", ") || "no BARs"}${record.msiVector !== null ? `, MSI ${hex(record.msiVector)}` : ""}`);
  }

  /** Programs MSI with one vector of its own (Linux pci_alloc_irq_vectors with PCI_IRQ_MSI). */
  private *enableMsi(record: PciFunction): Task<void> {
    const msi = record.capabilities.get(CAP_MSI)!;
    const { bus, device, fn } = record;
    const control = (yield* this.read(bus, device, fn, msi / 4)) >>> 16;
    const address64 = (control & 0x80) !== 0;
    const vector = this.nextVector++;
    yield* this.write(bus, device, fn, msi / 4 + 1, MSI_BASE);
    if (address64) yield* this.write(bus, device, fn, msi / 4 + 2, 0);
    yield* this.write(bus, device, fn, msi / 4 + (address64 ? 3 : 2), vector, 0b0011);
    yield* this.write(bus, device, fn, msi / 4, 1 << 16, 0b0100); // MSI Enable, one vector
    record.msiVector = vector;
  }

  // ---- hot-plug: rescan and removal below a port ------------------------------------------

  /**
   * Linux pci_scan_slot(device 0) below `port` and pci_assign_unassigned_bridge_resources:
   * reads the new function, assigns its BARs inside the port's windows (the boot-time
   * reservation), enables it and its MSI. A bridge (the host card's switch below the root port)
   * is enumerated with everything below it, its buses from those the port reserved at boot.
   * Returns the functions added to the OS's list (not yet announced: see addDevices).
   */
  *scanSlot(port: PciFunction): Task<PciFunction[]> {
    const range = port.bridge;
    if (!range) throw new Error(`${functionName(port)} is not a bridge`);
    const bus = range.secondary;
    const id = yield* this.readVendorId(bus, 0, 0, CRS_TIMEOUT_MS);
    if (id === null) return [];
    const headerType = ((yield* this.read(bus, 0, 0, 3)) >> 16) & 0x7f;
    const window = (r: AddressRange | null) => (r ? new AddressPool(r.base, r.base + r.size) : new AddressPool(0, 0));
    const memory = window(range.memory);
    // Without a prefetchable window, prefetchable BARs go in the memory window, as in Linux.
    const pools: Pools = { memory, prefetch: range.prefetchable ? window(range.prefetchable) : memory };
    const found: PciFunction[] = [];
    if (headerType === 1) {
      const next = this.nextBus;
      this.nextBus = bus + 1;
      yield* this.bridge(bus, 0, 0, false, pools, found);
      const last = this.nextBus - 1;
      this.nextBus = next;
      if (last > range.subordinate) {
        this.log(`bridge ${bus}:0.0 below ${functionName(port)} needs buses up to ${last}, past the ${range.subordinate} reserved: not added`);
        return [];
      }
    } else yield* this.endpoint(bus, 0, 0, id, pools, found);
    // Keep the list in scan order: after the port and whatever is below it.
    let at = this.functions.indexOf(port) + 1;
    while (at < this.functions.length && this.functions[at].bus >= range.secondary && this.functions[at].bus <= range.subordinate) at++;
    this.functions.splice(at, 0, ...found);
    return found;
  }

  /** Rescans one port (device 0 on its secondary bus) and adds what it finds: scanSlot, then addDevices. */
  *rescanPort(port: PciFunction): Task<PciFunction[]> {
    const found = yield* this.scanSlot(port);
    yield* this.addDevices(found);
    return found;
  }

  /**
   * Removes every function below `port`, as Linux pciehp_unconfigure_device does: on a
   * surprise removal each is first marked disconnected (pci_walk_bus(pci_dev_set_disconnected)),
   * then, last found first, its driver's remove runs and the OS forgets it
   * (pci_stop_and_remove_bus_device); on a safe removal each is also told to stop
   * mastering the bus. Returns the functions removed.
   */
  *removeBelow(port: PciFunction, how: "surprise" | "safe"): Task<PciFunction[]> {
    const below = this.functionsBelow(port);
    if (how === "surprise") for (const fn of below) fn.disconnected = true;
    for (const fn of [...below].reverse()) {
      this.detach(fn);
      this.destroy(fn);
      if (how === "safe") {
        const command = yield* this.readConfig(fn, 4, 2);
        if (command !== 0xffff) yield* this.writeConfig(fn, 4, 2, (command & ~(Command.BusMaster | Command.Serr)) | Command.InterruptDisable);
      }
    }
    return below;
  }

  /** Forgets a function (pci_destroy_dev): off the list, its MSI vector released, waiters failed. */
  private destroy(fn: PciFunction): void {
    const at = this.functions.indexOf(fn);
    if (at >= 0) this.functions.splice(at, 1);
    fn.removed = true;
    if (fn.msiVector !== null) {
      this.freeIrq(fn.msiVector);
      const waiting = this.waiters.get(fn.msiVector);
      this.waiters.delete(fn.msiVector);
      for (const fail of waiting ?? []) fail(new DeviceRemoved(fn));
    }
    this.log(`device ${functionName(fn)} [${hex(fn.vendorId)}:${hex(fn.deviceId)}] removed${fn.disconnected ? " (disconnected)" : ""}`);
    this.notify({ kind: "removed", fn });
  }

  /**
   * The hot-plug counters of every slot since boot added up (of the slots of the ports `include`
   * takes, when given), the slots of ports since removed included.
   */
  hotplugCounters(include: (port: PciFunction) => boolean = () => true): HotplugCounters {
    const total: HotplugCounters = newHotplugCounters();
    for (const controller of this.everyController.filter((c) => include(c.port))) {
      for (const key of Object.keys(total) as (keyof HotplugCounters)[]) total[key] += controller.counters[key];
    }
    return total;
  }

  /** Runs a task (a driver, the enumeration) to completion in the background. */
  start<T>(task: Task<T>, done?: (result: T | Error) => void): void {
    spawn(task, done);
  }
}
