// The configuration space of one PCIe function: bytes with per-bit access attributes, the
// Type 0 (endpoint) and Type 1 (bridge) headers of the PCI Local Bus Specification 3.0 /
// PCI-to-PCI Bridge Architecture Specification 1.2 as the PCI Express Base Specification
// constrains them, and the result type configuration requests are answered with.
// Capabilities are in capabilities.ts; the `lspci -xxx` text format in lspci.ts.
// The model, attribute semantics and every register are described in docs/config-space.md.

import { CplStatus } from "./tlp.ts";
import { Hdr, Hdr1, Command, Status, BridgeControl } from "../map/pcie.ts";
export { Hdr, Hdr1, Command, Status, BridgeControl };

export { CplStatus };

/**
 * A configuration access that was not carried out. `status` goes straight into the
 * Completion Status of the completion: UnsupportedRequest when the access does not address
 * this function's configuration space (beyond its 256 or 4096 bytes), CompleterAbort when it
 * does but violates the programming model (width not 1/2/4, offset not a multiple of the
 * width, byte enables not 4 bits, a value that does not fit the width).
 */
export interface CfgError {
  ok: false;
  status: CplStatus.UnsupportedRequest | CplStatus.CompleterAbort;
  reason: string;
}
export type CfgReadResult = { ok: true; value: number } | CfgError;
export type CfgWriteResult = { ok: true } | CfgError;

const OK_WRITE: CfgWriteResult = Object.freeze({ ok: true });

function unsupported(reason: string): CfgError {
  return { ok: false, status: CplStatus.UnsupportedRequest, reason };
}
function abort(reason: string): CfgError {
  return { ok: false, status: CplStatus.CompleterAbort, reason };
}

/** Attributes of a register's bits; every bit not named here is read-only. */
export interface RegisterSpec {
  /** Value at reset (RO bits keep it until the hardware side changes them). */
  reset?: number;
  /** Read-write bits. */
  rw?: number;
  /** Write-1-to-clear bits (set by the hardware side, cleared by writing 1). */
  w1c?: number;
}

/** What a write hook is told: the register as it was, as it is, and what was written. */
export interface WriteEvent {
  register: Register;
  /** Register value before the access. */
  old: number;
  /** Register value now (after the access and any earlier hook on this register). */
  value: number;
  /** The requester's data in this register's byte lanes, before any attribute applied. */
  written: number;
  /** Bits of the register whose byte lanes the access enabled (0xff per enabled byte). */
  enabled: number;
}
export type WriteHook = (event: WriteEvent) => void;

function maskOf(size: number): number {
  return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
}

function contiguous(mask: number): boolean {
  if (mask === 0) return false;
  const m = mask >>> (31 - Math.clz32(mask & -mask));
  return (m & (m + 1)) === 0;
}

/**
 * One register (1 to 4 bytes, never crossing a DWORD). `get`/`set` are the hardware side:
 * they see and change every bit regardless of attributes, so a device model can set
 * read-only state (Presence Detect State, DL Link Active) and raise RW1C events.
 */
export class Register {
  readonly hooks: WriteHook[] = [];

  constructor(
    readonly space: ConfigSpace,
    readonly name: string,
    readonly offset: number,
    readonly size: number,
    readonly rwMask: number,
    readonly w1cMask: number,
    readonly resetValue: number,
  ) {}

  get(): number {
    return this.space.peek(this.offset, this.size);
  }

  set(value: number): void {
    this.space.poke(this.offset, this.size, value);
  }

  setBits(mask: number): void {
    this.set((this.get() | mask) >>> 0);
  }

  clearBits(mask: number): void {
    this.set((this.get() & ~mask) >>> 0);
  }

  test(mask: number): boolean {
    return (this.get() & mask) !== 0;
  }

  /** A named bit field of this register (`mask` must be contiguous). */
  field(name: string, mask: number, reserved?: string): Field {
    return new Field(this, name, mask >>> 0, reserved);
  }

  /** Call `hook` after every configuration write that enables any byte of this register. */
  onWrite(hook: WriteHook): this {
    this.hooks.push(hook);
    return this;
  }
}

/** A bit field inside a register; `get` returns it shifted down, `set` is the hardware side. */
export class Field {
  readonly shift: number;
  readonly width: number;

  /** `reserved`, when given, says why this field does not exist for this function: set() throws. */
  constructor(readonly register: Register, readonly name: string, readonly mask: number, readonly reserved?: string) {
    if (!contiguous(mask)) throw new RangeError(`field ${name}: mask ${mask.toString(16)} is not contiguous`);
    this.shift = 31 - Math.clz32(mask & -mask);
    this.width = 32 - Math.clz32(mask) - this.shift;
  }

  get(): number {
    return (this.register.get() & this.mask) >>> this.shift;
  }

  set(value: number): void {
    if (this.reserved !== undefined) throw new Error(`${this.name}: ${this.reserved}`);
    const max = this.width === 32 ? 0xffffffff : 2 ** this.width - 1;
    if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${this.name}: ${value} does not fit in ${this.width} bits`);
    this.register.set(((this.register.get() & ~this.mask) | (value << this.shift)) >>> 0);
  }

  /** True when the field is non-zero. */
  isSet(): boolean {
    return this.get() !== 0;
  }
}

const RESERVED = -1;

/**
 * The configuration space of one function: 4096 bytes (PCI Express extended space) or 256
 * (conventional). Bytes not defined by any register are reserved: read-only zero.
 */
export class ConfigSpace {
  readonly size: 256 | 4096;
  private readonly data: Uint8Array;
  private readonly rw: Uint8Array;
  private readonly w1c: Uint8Array;
  private readonly resetData: Uint8Array;
  /** Per byte: 0 undefined, RESERVED, or 1 + index into `regs`. */
  private readonly owner: Int16Array;
  private readonly regs: Register[] = [];
  private readonly byName = new Map<string, Register>();

  constructor(size: 256 | 4096 = 4096) {
    if (size !== 256 && size !== 4096) throw new RangeError(`configuration space is 256 or 4096 bytes, not ${size}`);
    this.size = size;
    this.data = new Uint8Array(size);
    this.rw = new Uint8Array(size);
    this.w1c = new Uint8Array(size);
    this.resetData = new Uint8Array(size);
    this.owner = new Int16Array(size);
  }

  /** A read-only image of `bytes` (a dump): every byte RO, no registers. Missing bytes read ff. */
  static fromBytes(bytes: Uint8Array, size?: 256 | 4096): ConfigSpace {
    const space = new ConfigSpace(size ?? (bytes.length > 256 ? 4096 : 256));
    if (bytes.length > space.size) throw new RangeError(`${bytes.length} bytes do not fit in ${space.size}`);
    space.data.fill(0xff);
    space.data.set(bytes);
    return space;
  }

  // ---- configuration accesses (what requests do) -------------------------------------

  /** Read a DWORD as a configuration request addresses it (register number, First DW BE). */
  readDword(index: number, byteEnables = 0xf): CfgReadResult {
    const bad = this.check(index, byteEnables);
    if (bad) return bad;
    return { ok: true, value: this.peek(index * 4, 4) };
  }

  /** Write the enabled bytes of a DWORD as a configuration write request does. */
  writeDword(index: number, value: number, byteEnables = 0xf): CfgWriteResult {
    const bad = this.check(index, byteEnables);
    if (bad) return bad;
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff) return abort(`value ${value} is not a 32-bit integer`);
    this.commit(index * 4, value >>> 0, byteEnables);
    return OK_WRITE;
  }

  /** Read 1, 2 or 4 bytes at a naturally aligned offset; little-endian. */
  read(offset: number, bytes: number): CfgReadResult {
    const bad = this.checkOffset(offset, bytes);
    if (bad) return bad;
    return { ok: true, value: this.peek(offset, bytes) };
  }

  /** Write 1, 2 or 4 bytes at a naturally aligned offset. */
  write(offset: number, value: number, bytes: number): CfgWriteResult {
    const bad = this.checkOffset(offset, bytes);
    if (bad) return bad;
    const fits = Number.isInteger(value) && (bytes === 4 ? value >= -0x80000000 && value <= 0xffffffff : value >= 0 && value <= maskOf(bytes));
    if (!fits) return abort(`value ${value} does not fit in ${bytes} bytes`);
    const lane = offset & 3;
    this.commit(offset - lane, ((value >>> 0) * 2 ** (8 * lane)) % 0x100000000, ((1 << bytes) - 1) << lane);
    return OK_WRITE;
  }

  private check(index: number, byteEnables: number): CfgError | null {
    if (!Number.isInteger(index) || index < 0 || index >= this.size / 4) {
      return unsupported(`register ${index} is outside the ${this.size}-byte configuration space`);
    }
    if (!Number.isInteger(byteEnables) || byteEnables < 0 || byteEnables > 0xf) return abort(`byte enables ${byteEnables} are not 4 bits`);
    return null;
  }

  private checkOffset(offset: number, bytes: number): CfgError | null {
    if (!Number.isInteger(offset) || offset < 0 || offset >= this.size) {
      return unsupported(`offset ${offset} is outside the ${this.size}-byte configuration space`);
    }
    if (bytes !== 1 && bytes !== 2 && bytes !== 4) return abort(`access width ${bytes} is not 1, 2 or 4 bytes`);
    if (offset % bytes !== 0) return abort(`offset 0x${offset.toString(16)} is not aligned to ${bytes} bytes`);
    return null;
  }

  /** Apply attributes lane by lane, then call the hooks of every register touched. */
  private commit(base: number, value: number, byteEnables: number): void {
    if (byteEnables === 0) return;
    const old = this.peek(base, 4);
    const touched: Register[] = [];
    for (let lane = 0; lane < 4; lane++) {
      if (!(byteEnables & (1 << lane))) continue;
      const at = base + lane;
      const d = (value >>> (8 * lane)) & 0xff;
      const rw = this.rw[at];
      this.data[at] = (this.data[at] & ~rw & ~(d & this.w1c[at])) | (d & rw);
      const owner = this.owner[at];
      if (owner > 0) {
        const reg = this.regs[owner - 1];
        if (reg.hooks.length && !touched.includes(reg)) touched.push(reg);
      }
    }
    for (const reg of touched) {
      const shift = 8 * (reg.offset - base);
      const mask = maskOf(reg.size);
      let enabled = 0;
      for (let i = 0; i < reg.size; i++) if (byteEnables & (1 << (reg.offset - base + i))) enabled |= 0xff << (8 * i);
      const event: WriteEvent = {
        register: reg,
        old: ((old >>> shift) & mask) >>> 0,
        value: 0,
        written: ((value >>> shift) & mask & enabled) >>> 0,
        enabled: enabled >>> 0,
      };
      for (const hook of reg.hooks) {
        event.value = reg.get();
        hook(event);
      }
    }
  }

  // ---- the hardware side -----------------------------------------------------------------

  /** Current value of `bytes` bytes at `offset` (little-endian), attributes ignored. */
  peek(offset: number, bytes: number): number {
    this.assertRange(offset, bytes);
    let v = 0;
    for (let i = bytes - 1; i >= 0; i--) v = v * 256 + this.data[offset + i];
    return v;
  }

  /** Store `value` at `offset`, attributes ignored: how hardware changes RO and RW1C bits. */
  poke(offset: number, bytes: number, value: number): void {
    this.assertRange(offset, bytes);
    let v = value >>> 0;
    for (let i = 0; i < bytes; i++) {
      this.data[offset + i] = v & 0xff;
      v >>>= 8;
    }
  }

  /**
   * Conventional reset: every RW and RW1C bit returns to its reset value. RO bits are left
   * alone: they are hardwired or driven by the hardware, which owns them. Hooks are not called.
   */
  reset(): void {
    for (let i = 0; i < this.size; i++) {
      const soft = this.rw[i] | this.w1c[i];
      this.data[i] = (this.data[i] & ~soft) | (this.resetData[i] & soft);
    }
  }

  /** A copy of the whole space as it reads now. */
  bytes(): Uint8Array {
    return this.data.slice();
  }

  private assertRange(offset: number, bytes: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(bytes) || bytes < 1 || bytes > 4 || offset < 0 || offset + bytes > this.size) {
      throw new RangeError(`${bytes} bytes at ${offset} are outside the ${this.size}-byte configuration space`);
    }
  }

  // ---- building -------------------------------------------------------------------------

  /** Define a register. Builder errors (overlap, bad masks) throw: they are programming errors. */
  define(name: string, offset: number, size: number, spec: RegisterSpec = {}): Register {
    if (!Number.isInteger(size) || size < 1 || size > 4) throw new RangeError(`${name}: size ${size}`);
    this.assertRange(offset, size);
    if ((offset & 3) + size > 4) throw new RangeError(`${name}: ${size} bytes at 0x${offset.toString(16)} cross a DWORD boundary`);
    if (this.byName.has(name)) throw new Error(`register ${name} is already defined`);
    if (!this.isFree(offset, size)) throw new Error(`${name}: bytes 0x${offset.toString(16)}..+${size} are already defined`);
    const full = maskOf(size);
    const rw = (spec.rw ?? 0) >>> 0;
    const w1c = (spec.w1c ?? 0) >>> 0;
    const reset = (spec.reset ?? 0) >>> 0;
    for (const [what, v] of [["rw", rw], ["w1c", w1c], ["reset", reset]] as const) {
      if ((v & ~full) >>> 0) throw new RangeError(`${name}: ${what} 0x${v.toString(16)} is wider than ${size} bytes`);
    }
    if (rw & w1c) throw new RangeError(`${name}: bits 0x${((rw & w1c) >>> 0).toString(16)} are both RW and RW1C`);
    const reg = new Register(this, name, offset, size, rw, w1c, reset);
    this.regs.push(reg);
    this.byName.set(name, reg);
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      this.owner[at] = this.regs.length;
      this.rw[at] = (rw >>> (8 * i)) & 0xff;
      this.w1c[at] = (w1c >>> (8 * i)) & 0xff;
      this.resetData[at] = this.data[at] = (reset >>> (8 * i)) & 0xff;
    }
    return reg;
  }

  /** Mark bytes as taken without a register (reserved: RO zero). */
  reserve(offset: number, size: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(size) || size < 0 || offset < 0 || offset + size > this.size) {
      throw new RangeError(`cannot reserve ${size} bytes at ${offset}`);
    }
    if (!this.isFree(offset, size)) throw new Error(`bytes 0x${offset.toString(16)}..+${size} are already defined`);
    this.owner.fill(RESERVED, offset, offset + size);
  }

  /** True when no register or reservation covers any of these bytes. */
  isFree(offset: number, size = 1): boolean {
    if (offset < 0 || offset + size > this.size) return false;
    for (let i = offset; i < offset + size; i++) if (this.owner[i] !== 0) return false;
    return true;
  }

  /** The register named `name` (as given to define). */
  register(name: string): Register | undefined {
    return this.byName.get(name);
  }

  /** The register covering byte `offset`, if any. */
  registerAt(offset: number): Register | undefined {
    const o = this.owner[offset];
    return o > 0 ? this.regs[o - 1] : undefined;
  }

  /** Every register, in definition order. */
  registers(): readonly Register[] {
    return this.regs;
  }

  /** The attributes of the byte at `offset`: its RW and RW1C bits (the rest are RO). */
  attributes(offset: number): { rw: number; w1c: number } {
    this.assertRange(offset, 1);
    return { rw: this.rw[offset], w1c: this.w1c[offset] };
  }
}

// ---- header registers and bits ---------------------------------------------------------


/** Type 0 only. */
export const Hdr0 = {
  CardbusCis: 0x28,
  SubsystemVendorId: 0x2c,
  SubsystemId: 0x2e,
  ExpansionRom: 0x30,
  MinGnt: 0x3e,
  MaxLat: 0x3f,
} as const;



/** The Command bits a PCI Express function implements; the others are hardwired to 0. */
export const COMMAND_RW = Command.Io | Command.Memory | Command.BusMaster | Command.ParityErrorResponse | Command.Serr | Command.InterruptDisable;


/** The RW1C bits of Status and Secondary Status. */
export const STATUS_W1C = Status.MasterDataParityError | Status.SignaledTargetAbort | Status.ReceivedTargetAbort | Status.ReceivedMasterAbort | Status.SignaledSystemError | Status.DetectedParityError;


/** The Bridge Control bits a PCI Express bridge implements (the rest are hardwired to 0). */
export const BRIDGE_CONTROL_RW = BridgeControl.ParityErrorResponse | BridgeControl.Serr | BridgeControl.Isa | BridgeControl.Vga | BridgeControl.Vga16 | BridgeControl.SecondaryBusReset;

// ---- BARs ------------------------------------------------------------------------------

export type BarSpec =
  | { kind: "memory32"; size: number; prefetchable?: boolean }
  | { kind: "memory64"; size: number | bigint; prefetchable?: boolean }
  | { kind: "io"; size: number };

const isPow2 = (n: bigint) => n > 0n && (n & (n - 1n)) === 0n;

/** One implemented Base Address Register (a 64-bit one spans two BAR slots). */
export class Bar {
  constructor(
    readonly index: number,
    readonly kind: BarSpec["kind"],
    readonly size: bigint,
    readonly prefetchable: boolean,
    readonly low: Register,
    readonly high: Register | undefined,
    private readonly command: Register,
  ) {}

  /** The programmed base address (type bits stripped). */
  address(): bigint {
    const lowMask = this.kind === "io" ? 0xfffffffc : 0xfffffff0;
    const low = BigInt((this.low.get() & lowMask) >>> 0);
    return this.high ? (BigInt(this.high.get()) << 32n) | low : low;
  }

  /** True when the Command register enables the space this BAR decodes. */
  enabled(): boolean {
    return this.command.test(this.kind === "io" ? Command.Io : Command.Memory);
  }

  /** True when an access to `address` in this BAR's space is claimed by it. */
  claims(address: bigint): boolean {
    const base = this.address();
    return this.enabled() && address >= base && address < base + this.size;
  }
}

/** The Expansion ROM Base Address Register, when implemented. */
export class ExpansionRom {
  constructor(readonly register: Register, readonly size: number, private readonly command: Register) {}

  address(): number {
    return (this.register.get() & 0xfffff800) >>> 0;
  }

  /** ROM Enable and Memory Space Enable both set. */
  enabled(): boolean {
    return this.register.test(1) && this.command.test(Command.Memory);
  }
}

function defineBars(cs: ConfigSpace, specs: (BarSpec | null | undefined)[], slots: number, command: Register): (Bar | undefined)[] {
  if (specs.length > slots) throw new RangeError(`this header has ${slots} BARs, not ${specs.length}`);
  const bars: (Bar | undefined)[] = new Array(slots).fill(undefined);
  for (let i = 0; i < slots; i++) {
    const at = Hdr.Bar0 + 4 * i;
    if (!cs.isFree(at, 4)) continue; // upper half of a 64-bit BAR
    const spec = specs[i];
    if (!spec) {
      cs.define(`bar${i}`, at, 4); // unimplemented: RO 0
      continue;
    }
    const size = BigInt(spec.size);
    if (!isPow2(size)) throw new RangeError(`bar${i}: size ${size} is not a power of two`);
    if (spec.kind === "io") {
      if (size < 4n || size > 256n) throw new RangeError(`bar${i}: an I/O BAR is 4 to 256 bytes, not ${size}`);
      const reg = cs.define(`bar${i}`, at, 4, { reset: 0b01, rw: Number(~(size - 1n) & 0xfffffffcn) });
      bars[i] = new Bar(i, "io", size, false, reg, undefined, command);
      continue;
    }
    const pf = spec.prefetchable ? 1 << 3 : 0;
    if (size < 16n) throw new RangeError(`bar${i}: a memory BAR is at least 16 bytes, not ${size}`);
    if (spec.kind === "memory32") {
      if (size > 1n << 31n) throw new RangeError(`bar${i}: a 32-bit memory BAR is at most 2 GiB`);
      const reg = cs.define(`bar${i}`, at, 4, { reset: pf, rw: Number(~(size - 1n) & 0xfffffff0n) });
      bars[i] = new Bar(i, "memory32", size, pf !== 0, reg, undefined, command);
      continue;
    }
    if (i + 1 >= slots) throw new RangeError(`bar${i}: a 64-bit BAR needs BAR ${i + 1} for its upper half`);
    if (specs[i + 1]) throw new RangeError(`bar${i + 1} is the upper half of 64-bit bar${i} and cannot be a BAR of its own`);
    if (size > 1n << 63n) throw new RangeError(`bar${i}: at most 2^63 bytes`);
    const mask = ~(size - 1n) & 0xffff_ffff_ffff_fff0n;
    const low = cs.define(`bar${i}`, at, 4, { reset: 0b100 | pf, rw: Number(mask & 0xffffffffn) });
    const high = cs.define(`bar${i + 1}`, at + 4, 4, { rw: Number(mask >> 32n) });
    bars[i] = new Bar(i, "memory64", size, pf !== 0, low, high, command);
  }
  return bars;
}

function defineRom(cs: ConfigSpace, at: number, size: number | undefined, command: Register): ExpansionRom | undefined {
  if (size === undefined) {
    cs.define("expansionRom", at, 4);
    return undefined;
  }
  if (!isPow2(BigInt(size)) || size < 2048 || size > 16 << 20) throw new RangeError(`expansion ROM size ${size}: a power of two from 2 KiB to 16 MiB`);
  const reg = cs.define("expansionRom", at, 4, { rw: ((~(size - 1) & 0xfffff800) | 1) >>> 0 });
  return new ExpansionRom(reg, size, command);
}

// ---- headers ---------------------------------------------------------------------------

export interface HeaderOptions {
  vendorId: number;
  deviceId: number;
  revisionId?: number;
  /** Base class, subclass, programming interface: 0x010802 is an NVMe controller. */
  classCode: number;
  multiFunction?: boolean;
  /** 0 none, 1..4 INTA#..INTD#. */
  interruptPin?: number;
  /** BARs by index; a 64-bit BAR takes the next index too (leave it empty). */
  bars?: (BarSpec | null | undefined)[];
  /** Size of the expansion ROM in bytes; absent means not implemented (reads 0). */
  expansionRomSize?: number;
}

export interface Type0Options extends HeaderOptions {
  subsystemVendorId?: number;
  subsystemId?: number;
}

export interface Type1Options extends Omit<HeaderOptions, "classCode"> {
  /** Default 0x060400 (PCI-to-PCI bridge). */
  classCode?: number;
  /** I/O window: 16- or 32-bit addressing, or false when not implemented. Default 16. */
  io?: 16 | 32 | false;
  /** Prefetchable window: 32- or 64-bit addressing, or false when not implemented. Default 64. */
  prefetchable?: 32 | 64 | false;
}

export interface Header {
  readonly config: ConfigSpace;
  readonly vendorId: Register;
  readonly deviceId: Register;
  readonly command: Register;
  readonly status: Register;
  readonly revisionId: Register;
  readonly classCode: Register;
  readonly cacheLineSize: Register;
  readonly latencyTimer: Register;
  readonly headerType: Register;
  readonly bist: Register;
  readonly capabilitiesPointer: Register;
  readonly interruptLine: Register;
  readonly interruptPin: Register;
  /** Status bit 3, set by the hardware side while the function's INTx is asserted. */
  readonly interruptStatus: Field;
  /** Implemented BARs by index (undefined for unimplemented ones and upper halves). */
  readonly bars: readonly (Bar | undefined)[];
  readonly expansionRom: ExpansionRom | undefined;
}

export interface Type0Header extends Header {
  readonly type: 0;
  readonly subsystemVendorId: Register;
  readonly subsystemId: Register;
}

/** A bridge window; `limit` is the last byte decoded. */
export interface Window {
  base: bigint;
  limit: bigint;
}

export interface Type1Header extends Header {
  readonly type: 1;
  readonly primaryBus: Register;
  readonly secondaryBus: Register;
  readonly subordinateBus: Register;
  readonly secondaryLatencyTimer: Register;
  readonly ioBase: Register;
  readonly ioLimit: Register;
  readonly ioBaseUpper: Register;
  readonly ioLimitUpper: Register;
  readonly secondaryStatus: Register;
  readonly memoryBase: Register;
  readonly memoryLimit: Register;
  readonly prefetchableBase: Register;
  readonly prefetchableLimit: Register;
  readonly prefetchableBaseUpper: Register;
  readonly prefetchableLimitUpper: Register;
  readonly bridgeControl: Register;
  readonly secondaryBusReset: Field;
  /** The I/O window, or null when not implemented or base > limit (closed). */
  ioWindow(): Window | null;
  memoryWindow(): Window | null;
  prefetchableWindow(): Window | null;
  /** True when a Type 1 request for `bus` is forwarded: secondary <= bus <= subordinate. */
  forwardsBus(bus: number): boolean;
}

function u(n: number, bits: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** bits) throw new RangeError(`${what}: ${n} is not a ${bits}-bit value`);
  return n;
}

function common(cs: ConfigSpace, o: HeaderOptions, kind: 0 | 1) {
  if (!cs.isFree(0, 0x40)) throw new Error("the header must be defined first, on an empty configuration space");
  const vendorId = cs.define("vendorId", Hdr.VendorId, 2, { reset: u(o.vendorId, 16, "vendorId") });
  const deviceId = cs.define("deviceId", Hdr.DeviceId, 2, { reset: u(o.deviceId, 16, "deviceId") });
  const command = cs.define("command", Hdr.Command, 2, { rw: COMMAND_RW });
  const status = cs.define("status", Hdr.Status, 2, { w1c: STATUS_W1C });
  const revisionId = cs.define("revisionId", Hdr.RevisionId, 1, { reset: u(o.revisionId ?? 0, 8, "revisionId") });
  const classCode = cs.define("classCode", Hdr.ClassCode, 3, { reset: u(o.classCode, 24, "classCode") });
  const cacheLineSize = cs.define("cacheLineSize", Hdr.CacheLineSize, 1, { rw: 0xff });
  const latencyTimer = cs.define("latencyTimer", Hdr.LatencyTimer, 1); // hardwired 0 in PCI Express
  const headerType = cs.define("headerType", Hdr.HeaderType, 1, { reset: kind | (o.multiFunction ? 0x80 : 0) });
  const bist = cs.define("bist", Hdr.Bist, 1); // not BIST capable
  const capabilitiesPointer = cs.define("capabilitiesPointer", Hdr.CapabilitiesPointer, 1);
  cs.reserve(0x35, 3);
  const interruptLine = cs.define("interruptLine", Hdr.InterruptLine, 1, { rw: 0xff });
  const pin = o.interruptPin ?? 0;
  if (!Number.isInteger(pin) || pin < 0 || pin > 4) throw new RangeError(`interruptPin ${pin}: 0 (none) or 1..4 (INTA..INTD)`);
  const interruptPin = cs.define("interruptPin", Hdr.InterruptPin, 1, { reset: pin });
  const bars = defineBars(cs, o.bars ?? [], kind === 0 ? 6 : 2, command);
  return {
    config: cs, vendorId, deviceId, command, status, revisionId, classCode, cacheLineSize, latencyTimer, headerType, bist,
    capabilitiesPointer, interruptLine, interruptPin, bars,
    interruptStatus: status.field("interruptStatus", Status.InterruptStatus),
  };
}

/** Define a Type 0 (endpoint) header in bytes 0x00-0x3f of an empty configuration space. */
export function defineType0Header(cs: ConfigSpace, o: Type0Options): Type0Header {
  const c = common(cs, o, 0);
  cs.define("cardbusCis", Hdr0.CardbusCis, 4); // no CardBus CIS: RO 0
  const subsystemVendorId = cs.define("subsystemVendorId", Hdr0.SubsystemVendorId, 2, { reset: u(o.subsystemVendorId ?? 0, 16, "subsystemVendorId") });
  const subsystemId = cs.define("subsystemId", Hdr0.SubsystemId, 2, { reset: u(o.subsystemId ?? 0, 16, "subsystemId") });
  const expansionRom = defineRom(cs, Hdr0.ExpansionRom, o.expansionRomSize, c.command);
  cs.reserve(0x38, 4);
  cs.define("minGnt", Hdr0.MinGnt, 1); // hardwired 0 in PCI Express
  cs.define("maxLat", Hdr0.MaxLat, 1);
  return { ...c, type: 0, subsystemVendorId, subsystemId, expansionRom };
}

/** Define a Type 1 (PCI-to-PCI bridge: switch or root port) header in an empty configuration space. */
export function defineType1Header(cs: ConfigSpace, o: Type1Options): Type1Header {
  const io = o.io ?? 16;
  const pf = o.prefetchable ?? 64;
  const c = common(cs, { ...o, classCode: o.classCode ?? 0x060400 }, 1);
  const primaryBus = cs.define("primaryBus", Hdr1.PrimaryBus, 1, { rw: 0xff });
  const secondaryBus = cs.define("secondaryBus", Hdr1.SecondaryBus, 1, { rw: 0xff });
  const subordinateBus = cs.define("subordinateBus", Hdr1.SubordinateBus, 1, { rw: 0xff });
  const secondaryLatencyTimer = cs.define("secondaryLatencyTimer", Hdr1.SecondaryLatencyTimer, 1); // hardwired 0
  const ioCap = io === 32 ? 1 : 0;
  const ioSpec = io ? { reset: ioCap, rw: 0xf0 } : {};
  const ioBase = cs.define("ioBase", Hdr1.IoBase, 1, ioSpec);
  const ioLimit = cs.define("ioLimit", Hdr1.IoLimit, 1, ioSpec);
  const secondaryStatus = cs.define("secondaryStatus", Hdr1.SecondaryStatus, 2, { w1c: STATUS_W1C });
  const memoryBase = cs.define("memoryBase", Hdr1.MemoryBase, 2, { rw: 0xfff0 });
  const memoryLimit = cs.define("memoryLimit", Hdr1.MemoryLimit, 2, { rw: 0xfff0 });
  const pfSpec = pf ? { reset: pf === 64 ? 1 : 0, rw: 0xfff0 } : {};
  const prefetchableBase = cs.define("prefetchableBase", Hdr1.PrefetchableBase, 2, pfSpec);
  const prefetchableLimit = cs.define("prefetchableLimit", Hdr1.PrefetchableLimit, 2, pfSpec);
  const upper = pf === 64 ? { rw: 0xffffffff } : {};
  const prefetchableBaseUpper = cs.define("prefetchableBaseUpper", Hdr1.PrefetchableBaseUpper, 4, upper);
  const prefetchableLimitUpper = cs.define("prefetchableLimitUpper", Hdr1.PrefetchableLimitUpper, 4, upper);
  const ioUpper = io === 32 ? { rw: 0xffff } : {};
  const ioBaseUpper = cs.define("ioBaseUpper", Hdr1.IoBaseUpper, 2, ioUpper);
  const ioLimitUpper = cs.define("ioLimitUpper", Hdr1.IoLimitUpper, 2, ioUpper);
  const expansionRom = defineRom(cs, Hdr1.ExpansionRom, o.expansionRomSize, c.command);
  const bridgeControl = cs.define("bridgeControl", Hdr1.BridgeControl, 2, { rw: BRIDGE_CONTROL_RW });

  const window = (base: bigint, limit: bigint): Window | null => (base <= limit ? { base, limit } : null);
  return {
    ...c, type: 1, expansionRom,
    primaryBus, secondaryBus, subordinateBus, secondaryLatencyTimer, ioBase, ioLimit, ioBaseUpper, ioLimitUpper,
    secondaryStatus, memoryBase, memoryLimit, prefetchableBase, prefetchableLimit, prefetchableBaseUpper,
    prefetchableLimitUpper, bridgeControl,
    secondaryBusReset: bridgeControl.field("secondaryBusReset", BridgeControl.SecondaryBusReset),
    ioWindow() {
      if (!io) return null;
      const hi = (r: Register) => (io === 32 ? BigInt(r.get()) << 16n : 0n);
      const base = hi(ioBaseUpper) | (BigInt(ioBase.get() & 0xf0) << 8n);
      const limit = hi(ioLimitUpper) | (BigInt(ioLimit.get() & 0xf0) << 8n) | 0xfffn;
      return window(base, limit);
    },
    memoryWindow() {
      return window(BigInt(memoryBase.get() & 0xfff0) << 16n, (BigInt(memoryLimit.get() & 0xfff0) << 16n) | 0xfffffn);
    },
    prefetchableWindow() {
      if (!pf) return null;
      const hi = (r: Register) => (pf === 64 ? BigInt(r.get()) << 32n : 0n);
      const base = hi(prefetchableBaseUpper) | (BigInt(prefetchableBase.get() & 0xfff0) << 16n);
      const limit = hi(prefetchableLimitUpper) | (BigInt(prefetchableLimit.get() & 0xfff0) << 16n) | 0xfffffn;
      return window(base, limit);
    },
    forwardsBus(bus: number) {
      return bus >= secondaryBus.get() && bus <= subordinateBus.get();
    },
  };
}
