// Capability structures in a function's configuration space, linked through the list that
// starts at the Capabilities Pointer (0x34): Power Management (PCI PM 1.2, version 3), MSI
// (PCI 3.0 section 6.8.1) and the PCI Express capability (version 2) for Endpoints, Root
// Ports and switch ports; and the extended capability list at 0x100 (Device Serial Number).
// Register and bit layouts are in docs/config-space.md.

import { ConfigSpace, Field, Hdr, Register, Status, type RegisterSpec } from "./config-space.ts";
import { CapabilityId, MsiCtrl, PortType, Exp, ExpFlags, DevCap, DevCtl, DevSta, LnkCap, LnkCtl, LnkSta, SltCap, SltCtl, SltSta } from "../map/pcie.ts";
export { CapabilityId, MsiCtrl, PortType, Exp, ExpFlags, DevCap, DevCtl, DevSta, LnkCap, LnkCtl, LnkSta, SltCap, SltCtl, SltSta };


export enum ExtCapabilityId {
  AdvancedErrorReporting = 0x0001,
  DeviceSerialNumber = 0x0003,
  VendorSpecific = 0x000b,
}

export interface CapabilityEntry {
  id: number;
  offset: number;
}

const FIRST_CAPABILITY = 0x40; // after the 64-byte header
const EXTENDED_START = 0x100;

const roundUp4 = (n: number) => (n + 3) & ~3;

/**
 * The capability list as a driver walks it: from the Capabilities Pointer, following each
 * Next pointer (low two bits ignored) until 0. Empty when Status.Capabilities List is clear.
 * Stops (without throwing) on a loop or a pointer into the header.
 */
export function listCapabilities(cs: ConfigSpace): CapabilityEntry[] {
  const out: CapabilityEntry[] = [];
  if (!(cs.peek(Hdr.Status, 2) & Status.CapabilitiesList)) return out;
  const seen = new Set<number>();
  let at = cs.peek(Hdr.CapabilitiesPointer, 1) & 0xfc;
  while (at >= FIRST_CAPABILITY && !seen.has(at)) {
    seen.add(at);
    out.push({ id: cs.peek(at, 1), offset: at });
    at = cs.peek(at + 1, 1) & 0xfc;
  }
  return out;
}

/** Offset of the first capability with this ID, or undefined. */
export function findCapability(cs: ConfigSpace, id: number): number | undefined {
  return listCapabilities(cs).find((c) => c.id === id)?.offset;
}

/**
 * Reserve `size` bytes for a capability (at `at`, or the first free DWORD-aligned offset from
 * 0x40), define its RO header register (ID, Next = 0) and link it at the tail of the list.
 */
export function addCapability(cs: ConfigSpace, id: number, size: number, name: string, at?: number): number {
  if (!cs.register("capabilitiesPointer")) throw new Error("define the header before adding capabilities");
  const span = roundUp4(size);
  let offset = at ?? -1;
  if (at === undefined) {
    for (let o = FIRST_CAPABILITY; o + span <= 0x100; o += 4) {
      if (cs.isFree(o, span)) {
        offset = o;
        break;
      }
    }
    if (offset < 0) throw new Error(`no room for ${name} (${size} bytes) below 0x100`);
  } else if (at < FIRST_CAPABILITY || at % 4 || at + span > 0x100 || !cs.isFree(at, span)) {
    throw new Error(`${name}: 0x${at.toString(16)} is not a free DWORD-aligned place of ${size} bytes in 0x40-0xff`);
  }
  const tail = listCapabilities(cs).at(-1);
  cs.define(`${name}.header`, offset, 2, { reset: id });
  if (span > size) cs.reserve(offset + size, span - size);
  if (tail) cs.poke(tail.offset + 1, 1, offset);
  else cs.poke(Hdr.CapabilitiesPointer, 1, offset);
  cs.poke(Hdr.Status, 2, cs.peek(Hdr.Status, 2) | Status.CapabilitiesList);
  return offset;
}

// ---- Power Management -------------------------------------------------------------------

export const PmCtrl = {
  PowerState: 0x0003,
  NoSoftReset: 0x0008,
  PmeEnable: 0x0100,
  DataSelect: 0x1e00,
  DataScale: 0x6000,
  PmeStatus: 0x8000,
} as const;

export interface PowerManagementOptions {
  d1?: boolean;
  d2?: boolean;
  /** PME_Support: bit 0 D0, 1 D1, 2 D2, 3 D3hot, 4 D3cold. 0 = no PME. */
  pmeSupport?: number;
  /** Aux_Current field (0..7). */
  auxCurrent?: number;
  dsi?: boolean;
  /** No_Soft_Reset: D3hot to D0 keeps the function's state. Default true. */
  noSoftReset?: boolean;
  at?: number;
}

export interface PowerManagementCapability {
  offset: number;
  capabilities: Register;
  control: Register;
  /** 0 D0, 1 D1, 2 D2, 3 D3hot. */
  powerState: Field;
  pmeEnable: Field;
  /** RW1C; the hardware side sets it when the function generates PME. */
  pmeStatus: Field;
}

/** Power Management capability, version 3 (PCI Bus Power Management Interface 1.2). 8 bytes. */
export function addPowerManagement(cs: ConfigSpace, o: PowerManagementOptions = {}): PowerManagementCapability {
  const pme = o.pmeSupport ?? 0;
  if (!Number.isInteger(pme) || pme < 0 || pme > 0x1f) throw new RangeError(`pmeSupport ${pme}: 5 bits`);
  const aux = o.auxCurrent ?? 0;
  if (!Number.isInteger(aux) || aux < 0 || aux > 7) throw new RangeError(`auxCurrent ${aux}: 3 bits`);
  const offset = addCapability(cs, CapabilityId.PowerManagement, 8, "pm", o.at);
  const pmc = 3 | (o.dsi ? 1 << 5 : 0) | (aux << 6) | (o.d1 ? 1 << 9 : 0) | (o.d2 ? 1 << 10 : 0) | (pme << 11);
  const capabilities = cs.define("pm.capabilities", offset + 2, 2, { reset: pmc });
  const control = cs.define("pm.control", offset + 4, 2, {
    reset: o.noSoftReset === false ? 0 : PmCtrl.NoSoftReset,
    rw: PmCtrl.PowerState | (pme ? PmCtrl.PmeEnable : 0),
    w1c: pme ? PmCtrl.PmeStatus : 0,
  });
  cs.define("pm.bridgeExtensions", offset + 6, 1);
  cs.define("pm.data", offset + 7, 1);
  // Writing an unsupported state completes normally but changes nothing (PCI PM 1.2, 3.2.4).
  control.onWrite(({ old, value }) => {
    const state = value & PmCtrl.PowerState;
    if ((state === 1 && !o.d1) || (state === 2 && !o.d2)) control.set((value & ~PmCtrl.PowerState) | (old & PmCtrl.PowerState));
  });
  return {
    offset, capabilities, control,
    powerState: control.field("powerState", PmCtrl.PowerState),
    pmeEnable: control.field("pmeEnable", PmCtrl.PmeEnable),
    pmeStatus: control.field("pmeStatus", PmCtrl.PmeStatus, pme ? undefined : "no PME support"),
  };
}

// ---- MSI --------------------------------------------------------------------------------


export interface MsiOptions {
  /** Vectors requested (Multiple Message Capable): 1, 2, 4, 8, 16 or 32. Default 1. */
  vectors?: number;
  /** 64-bit Address Capable. Default true (PCI Express endpoints must be). */
  address64?: boolean;
  /** Per-vector masking (Mask Bits and Pending Bits registers). Default false. */
  perVectorMasking?: boolean;
  at?: number;
}

export interface MsiMessage {
  address: bigint;
  data: number;
}

export class MsiCapability {
  constructor(
    readonly offset: number,
    readonly vectorsCapable: number,
    readonly address64: boolean,
    readonly perVectorMasking: boolean,
    readonly control: Register,
    readonly addressLow: Register,
    readonly addressHigh: Register | undefined,
    readonly data: Register,
    readonly mask: Register | undefined,
    readonly pending: Register | undefined,
  ) {}

  enabled(): boolean {
    return this.control.test(MsiCtrl.Enable);
  }

  /** Vectors software allocated (Multiple Message Enable), never more than capable. */
  vectorsEnabled(): number {
    return Math.min(1 << ((this.control.get() & MsiCtrl.MultipleMessageEnable) >> 4), this.vectorsCapable);
  }

  address(): bigint {
    const low = BigInt((this.addressLow.get() & 0xfffffffc) >>> 0);
    return this.addressHigh ? (BigInt(this.addressHigh.get()) << 32n) | low : low;
  }

  /** The memory write that signals `vector`: the low bits of Message Data carry the vector. */
  message(vector: number): MsiMessage {
    const n = this.vectorsEnabled();
    return { address: this.address(), data: ((this.data.get() & ~(n - 1)) | vector) & 0xffff };
  }

  masked(vector: number): boolean {
    return !!this.mask && ((this.mask.get() >>> vector) & 1) === 1;
  }

  /**
   * The function wants to signal `vector`: the message to send, or null when MSI is disabled,
   * the vector was not allocated, or it is masked (then its Pending bit is set instead).
   */
  signal(vector: number): MsiMessage | null {
    if (!this.enabled() || !Number.isInteger(vector) || vector < 0 || vector >= this.vectorsEnabled()) return null;
    if (this.masked(vector)) {
      this.pending!.setBits(1 << vector);
      return null;
    }
    return this.message(vector);
  }

  /** Messages owed for vectors that are pending and no longer masked (their Pending bits clear). */
  releasePending(): MsiMessage[] {
    if (!this.pending || !this.enabled()) return [];
    const out: MsiMessage[] = [];
    for (let v = 0; v < this.vectorsEnabled(); v++) {
      if ((this.pending.get() >>> v) & 1 && !this.masked(v)) {
        this.pending.clearBits(1 << v);
        out.push(this.message(v));
      }
    }
    return out;
  }
}

/**
 * MSI capability. Layout (offsets from the capability):
 * 32-bit: +2 Message Control, +4 Message Address, +8 Message Data [, +C Mask Bits, +10 Pending Bits]
 * 64-bit: +2 Message Control, +4 Message Address, +8 Message Upper Address, +C Message Data
 *         [, +10 Mask Bits, +14 Pending Bits]
 */
export function addMsi(cs: ConfigSpace, o: MsiOptions = {}): MsiCapability {
  const vectors = o.vectors ?? 1;
  const mmc = [1, 2, 4, 8, 16, 32].indexOf(vectors);
  if (mmc < 0) throw new RangeError(`MSI vectors ${vectors}: 1, 2, 4, 8, 16 or 32`);
  const is64 = o.address64 ?? true;
  const pvm = o.perVectorMasking ?? false;
  const dataAt = is64 ? 0x0c : 0x08;
  const size = dataAt + 2 + 2 + (pvm ? 8 : 0);
  const offset = addCapability(cs, CapabilityId.Msi, size, "msi", o.at);
  const control = cs.define("msi.control", offset + 2, 2, {
    reset: (mmc << 1) | (is64 ? MsiCtrl.Address64 : 0) | (pvm ? MsiCtrl.PerVectorMasking : 0),
    rw: MsiCtrl.Enable | MsiCtrl.MultipleMessageEnable,
  });
  const addressLow = cs.define("msi.addressLow", offset + 4, 4, { rw: 0xfffffffc });
  const addressHigh = is64 ? cs.define("msi.addressHigh", offset + 8, 4, { rw: 0xffffffff }) : undefined;
  const data = cs.define("msi.data", offset + dataAt, 2, { rw: 0xffff });
  cs.reserve(offset + dataAt + 2, 2); // Extended Message Data: not supported
  let mask: Register | undefined;
  let pending: Register | undefined;
  if (pvm) {
    const bits = vectors === 32 ? 0xffffffff : (1 << vectors) - 1;
    mask = cs.define("msi.mask", offset + dataAt + 4, 4, { rw: bits });
    pending = cs.define("msi.pending", offset + dataAt + 8, 4);
  }
  return new MsiCapability(offset, vectors, is64, pvm, control, addressLow, addressHigh, data, mask, pending);
}

// ---- PCI Express capability -------------------------------------------------------------












/** Attention / Power Indicator Control values. */
export enum Indicator {
  On = 0b01,
  Blink = 0b10,
  Off = 0b11,
}


export const RootCtl = {
  SerrOnCorrectable: 0x0001,
  SerrOnNonFatal: 0x0002,
  SerrOnFatal: 0x0004,
  PmeInterruptEnable: 0x0008,
  CrsVisibility: 0x0010,
} as const;

export const RootCap = { CrsVisibility: 0x0001 } as const;

export const RootSta = { PmeRequesterId: 0x0000ffff, PmeStatus: 0x00010000, PmePending: 0x00020000 } as const;

export const DevCap2 = { CompletionTimeoutRanges: 0x0000000f, CompletionTimeoutDisable: 0x00000010, AriForwarding: 0x00000020 } as const;

export const DevCtl2 = { CompletionTimeoutValue: 0x000f, CompletionTimeoutDisable: 0x0010, AriForwarding: 0x0020 } as const;

/** Completion Timeout Ranges Supported (Device Capabilities 2 bits 3:0). */
export enum CompletionTimeoutRanges {
  NotSupported = 0b0000,
  A = 0b0001, //    50 us to 10 ms
  B = 0b0010, //    10 ms to 250 ms
  AB = 0b0011,
  BC = 0b0110, //   C: 250 ms to 4 s
  ABC = 0b0111,
  BCD = 0b1110, //  D: 4 s to 64 s
  ABCD = 0b1111,
}

export const LnkCtl2 = {
  TargetSpeed: 0x000f,
  EnterCompliance: 0x0010,
  HwAutonomousSpeedDisable: 0x0020,
  SelectableDeemphasis: 0x0040,
  TransmitMargin: 0x0380,
  EnterModifiedCompliance: 0x0400,
  ComplianceSos: 0x0800,
  CompliancePreset: 0xf000,
} as const;

export const LnkSta2 = { CurrentDeemphasis: 0x0001, EqualizationComplete: 0x0002, EqualizationRequest: 0x0020 } as const;

/** Link speeds as Max Link Speed / Current Link Speed encode them. */
export enum LinkSpeed {
  Gen1 = 1, // 2.5 GT/s
  Gen2 = 2, // 5 GT/s
  Gen3 = 3, // 8 GT/s
  Gen4 = 4, // 16 GT/s
  Gen5 = 5, // 32 GT/s
}

export interface SlotOptions {
  physicalSlot: number;
  attentionButton?: boolean;
  powerController?: boolean;
  mrlSensor?: boolean;
  attentionIndicator?: boolean;
  powerIndicator?: boolean;
  hotPlugSurprise?: boolean;
  hotPlugCapable?: boolean;
  interlock?: boolean;
  noCommandCompleted?: boolean;
  /** Slot Power Limit Value (8 bits) and Scale (2 bits: 1.0, 0.1, 0.01, 0.001 W). */
  powerLimit?: { value: number; scale: number };
}

export interface LinkOptions {
  maxSpeed: LinkSpeed;
  maxWidth: 1 | 2 | 4 | 8 | 12 | 16 | 32;
  portNumber?: number;
  /** ASPM Support: 0 none, 1 L0s, 2 L1, 3 both. Default 0. */
  aspm?: number;
  clockPm?: boolean;
  /** Data Link Layer Link Active Reporting Capable: Downstream/Root Ports only. Default true there. */
  dlActiveReporting?: boolean;
  /** Surprise Down Error Reporting Capable: Downstream/Root Ports only. */
  surpriseDown?: boolean;
  /** Link Bandwidth Notification Capability: Downstream/Root Ports only. */
  bandwidthNotification?: boolean;
  /** Slot Clock Configuration in Link Status. */
  slotClock?: boolean;
  /** Read Completion Boundary of a Root Port (hardwired): 64 or 128. Default 64. */
  rootRcb?: 64 | 128;
}

export interface ExpressOptions {
  portType: PortType;
  /** Interrupt Message Number (5 bits). */
  interruptMessageNumber?: number;
  /** Max_Payload_Size Supported in bytes. Default 256. */
  maxPayloadSupported?: 128 | 256 | 512 | 1024 | 2048 | 4096;
  /** Extended Tag Field Supported. Default true. */
  extendedTag?: boolean;
  /** Function Level Reset Capable: Endpoints only. */
  flr?: boolean;
  link: LinkOptions;
  /** A slot: sets Slot Implemented (Downstream and Root Ports only). */
  slot?: SlotOptions;
  /** Root Capabilities: CRS Software Visibility (Root Ports only). */
  crsVisibility?: boolean;
  /** Completion Timeout Ranges Supported: Endpoints and Root Ports. Default ABCD there, 0 elsewhere. */
  completionTimeoutRanges?: CompletionTimeoutRanges;
  /** Completion Timeout Disable Supported: Endpoints and Root Ports. Default true there. */
  completionTimeoutDisable?: boolean;
  /** ARI Forwarding Supported: Downstream and Root Ports. */
  ariForwarding?: boolean;
  at?: number;
}

export interface ExpressRegisters {
  flags: Register;
  deviceCapabilities: Register;
  deviceControl: Register;
  deviceStatus: Register;
  linkCapabilities: Register;
  linkControl: Register;
  linkStatus: Register;
  slotCapabilities: Register;
  slotControl: Register;
  slotStatus: Register;
  rootControl: Register;
  rootCapabilities: Register;
  rootStatus: Register;
  deviceCapabilities2: Register;
  deviceControl2: Register;
  deviceStatus2: Register;
  linkCapabilities2: Register;
  linkControl2: Register;
  linkStatus2: Register;
  slotCapabilities2: Register;
  slotControl2: Register;
  slotStatus2: Register;
}

export interface ExpressDeviceFields {
  maxPayloadSize: Field;
  maxReadRequestSize: Field;
  correctableErrorDetected: Field;
  nonFatalErrorDetected: Field;
  fatalErrorDetected: Field;
  unsupportedRequestDetected: Field;
  auxPowerDetected: Field;
  transactionsPending: Field;
  completionTimeoutValue: Field;
  completionTimeoutDisable: Field;
}

export interface ExpressLinkFields {
  currentSpeed: Field;
  negotiatedWidth: Field;
  /** Link Training (Downstream/Root Ports). */
  training: Field;
  slotClock: Field;
  /** Data Link Layer Link Active (Downstream/Root Ports that report it). */
  dlLinkActive: Field;
  bandwidthManagementStatus: Field;
  autonomousBandwidthStatus: Field;
  /** Link Control: Link Disable (Downstream/Root Ports). */
  linkDisable: Field;
}

export interface ExpressSlotFields {
  attentionButtonPressed: Field;
  powerFaultDetected: Field;
  mrlSensorChanged: Field;
  presenceDetectChanged: Field;
  commandCompleted: Field;
  mrlSensorState: Field;
  presenceDetectState: Field;
  interlockStatus: Field;
  dlStateChanged: Field;
  attentionButtonPressedEnable: Field;
  powerFaultDetectedEnable: Field;
  mrlSensorChangedEnable: Field;
  presenceDetectChangedEnable: Field;
  commandCompletedInterruptEnable: Field;
  hotPlugInterruptEnable: Field;
  attentionIndicator: Field;
  powerIndicator: Field;
  powerControllerControl: Field;
  dlStateChangedEnable: Field;
}

export interface ExpressRootFields {
  pmeRequesterId: Field;
  pmeStatus: Field;
  pmePending: Field;
}

export interface ExpressCapability {
  offset: number;
  portType: PortType;
  registers: ExpressRegisters;
  device: ExpressDeviceFields;
  link: ExpressLinkFields;
  /** Present when Slot Implemented. */
  slot?: ExpressSlotFields;
  /** Present on Root Ports. */
  root?: ExpressRootFields;
}

const PAYLOADS = [128, 256, 512, 1024, 2048, 4096];

function bit(on: boolean | undefined, mask: number): number {
  return on ? mask : 0;
}

/** The PCI Express capability, version 2 (0x3c bytes), for one of the four port types. */
export function addExpress(cs: ConfigSpace, o: ExpressOptions): ExpressCapability {
  const type = o.portType;
  const endpoint = type === PortType.Endpoint || type === PortType.LegacyEndpoint;
  const root = type === PortType.RootPort;
  const downstream = type === PortType.DownstreamPort || root;
  if (!Object.values(PortType).includes(type)) throw new RangeError(`port type ${type} is not supported`);
  const name = PortType[type];
  const only = (what: string, allowed: boolean, given: unknown) => {
    if (given && !allowed) throw new Error(`${what} does not apply to a ${name}`);
  };
  only("a slot", downstream, o.slot);
  only("Function Level Reset", endpoint, o.flr);
  only("CRS Software Visibility", root, o.crsVisibility);
  only("ARI Forwarding", downstream, o.ariForwarding);
  only("DL Link Active reporting", downstream, o.link.dlActiveReporting);
  only("Surprise Down reporting", downstream, o.link.surpriseDown);
  only("Link Bandwidth Notification", downstream, o.link.bandwidthNotification);
  const requester = endpoint || root; // Completion Timeout applies to these only
  only("Completion Timeout Ranges", requester, o.completionTimeoutRanges);
  only("Completion Timeout Disable", requester, o.completionTimeoutDisable);

  const mps = PAYLOADS.indexOf(o.maxPayloadSupported ?? 256);
  if (mps < 0) throw new RangeError(`maxPayloadSupported ${o.maxPayloadSupported}`);
  const link = o.link;
  if (!Number.isInteger(link.maxSpeed) || link.maxSpeed < 1 || link.maxSpeed > 5) throw new RangeError(`maxSpeed ${link.maxSpeed}`);
  if (![1, 2, 4, 8, 12, 16, 32].includes(link.maxWidth)) throw new RangeError(`maxWidth ${link.maxWidth}`);
  const irq = o.interruptMessageNumber ?? 0;
  if (!Number.isInteger(irq) || irq < 0 || irq > 31) throw new RangeError(`interruptMessageNumber ${irq}`);
  const extTag = o.extendedTag ?? true;
  const dlReport = downstream && (link.dlActiveReporting ?? true);
  const bwn = downstream && !!link.bandwidthNotification;
  const ctRanges = requester ? o.completionTimeoutRanges ?? CompletionTimeoutRanges.ABCD : 0;
  const ctDisable = requester && (o.completionTimeoutDisable ?? true);
  const slot = o.slot;

  const offset = addCapability(cs, CapabilityId.Express, Exp.Size, "pcie", o.at);
  const reg = (n: string, at: number, size: number, spec: RegisterSpec = {}) => cs.define(`pcie.${n}`, offset + at, size, spec);

  const flags = reg("flags", Exp.Flags, 2, { reset: 2 | (type << 4) | bit(!!slot, ExpFlags.SlotImplemented) | (irq << 9) });

  const deviceCapabilities = reg("deviceCapabilities", Exp.DevCap, 4, {
    reset: (mps | bit(extTag, DevCap.ExtendedTag) | DevCap.RoleBasedErrors | bit(o.flr, DevCap.Flr)) >>> 0,
  });
  const deviceControl = reg("deviceControl", Exp.DevCtl, 2, {
    reset: DevCtl.RelaxedOrdering | DevCtl.NoSnoop | (0b010 << 12), // MPS 128, MRRS 512
    rw: DevCtl.CorrectableErrorReporting | DevCtl.NonFatalErrorReporting | DevCtl.FatalErrorReporting |
      DevCtl.UnsupportedRequestReporting | DevCtl.RelaxedOrdering | DevCtl.MaxPayload | bit(extTag, DevCtl.ExtendedTag) |
      DevCtl.NoSnoop | DevCtl.MaxReadRequest,
  });
  const deviceStatus = reg("deviceStatus", Exp.DevSta, 2, {
    w1c: DevSta.CorrectableError | DevSta.NonFatalError | DevSta.FatalError | DevSta.UnsupportedRequest,
  });

  const aspm = link.aspm ?? 0;
  if (!Number.isInteger(aspm) || aspm < 0 || aspm > 3) throw new RangeError(`aspm ${aspm}`);
  const portNumber = link.portNumber ?? 0;
  if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 255) throw new RangeError(`portNumber ${portNumber}`);
  const linkCapabilities = reg("linkCapabilities", Exp.LnkCap, 4, {
    reset: (link.maxSpeed | (link.maxWidth << 4) | (aspm << 10) | bit(link.clockPm, LnkCap.ClockPm) |
      bit(downstream && link.surpriseDown, LnkCap.SurpriseDown) | bit(dlReport, LnkCap.DlActiveReporting) |
      bit(bwn, LnkCap.BandwidthNotification) | LnkCap.AspmOptionality | (portNumber << 24)) >>> 0,
  });
  const rcb = type === PortType.Endpoint ? 0 : root && link.rootRcb === 128 ? LnkCtl.Rcb : 0;
  const linkControl = reg("linkControl", Exp.LnkCtl, 2, {
    reset: rcb,
    rw: LnkCtl.Aspm | bit(type === PortType.Endpoint || type === PortType.LegacyEndpoint, LnkCtl.Rcb) |
      bit(downstream, LnkCtl.LinkDisable) | LnkCtl.CommonClock | LnkCtl.ExtendedSynch | bit(link.clockPm, LnkCtl.ClockPm) |
      bit(bwn, LnkCtl.BandwidthManagementInterrupt | LnkCtl.AutonomousBandwidthInterrupt),
  });
  const linkStatus = reg("linkStatus", Exp.LnkSta, 2, {
    reset: link.maxSpeed | (link.maxWidth << 4) | bit(link.slotClock, LnkSta.SlotClock),
    w1c: bit(bwn, LnkSta.BandwidthManagement | LnkSta.AutonomousBandwidth),
  });

  let sltCap = 0;
  let sltCtlRw = 0;
  let sltCtlReset = 0;
  if (slot) {
    const s = slot;
    if (!Number.isInteger(s.physicalSlot) || s.physicalSlot < 0 || s.physicalSlot > 0x1fff) throw new RangeError(`physicalSlot ${s.physicalSlot}`);
    const pl = s.powerLimit ?? { value: 0, scale: 0 };
    if (!Number.isInteger(pl.value) || pl.value < 0 || pl.value > 255 || !Number.isInteger(pl.scale) || pl.scale < 0 || pl.scale > 3) {
      throw new RangeError(`powerLimit ${JSON.stringify(pl)}`);
    }
    sltCap = (bit(s.attentionButton, SltCap.AttentionButton) | bit(s.powerController, SltCap.PowerController) |
      bit(s.mrlSensor, SltCap.MrlSensor) | bit(s.attentionIndicator, SltCap.AttentionIndicator) |
      bit(s.powerIndicator, SltCap.PowerIndicator) | bit(s.hotPlugSurprise, SltCap.HotPlugSurprise) |
      bit(s.hotPlugCapable, SltCap.HotPlugCapable) | (pl.value << 7) | (pl.scale << 15) | bit(s.interlock, SltCap.Interlock) |
      bit(s.noCommandCompleted, SltCap.NoCommandCompleted) | (s.physicalSlot << 19)) >>> 0;
    sltCtlRw = bit(s.attentionButton, SltCtl.AttentionButtonEnable) | bit(s.powerController, SltCtl.PowerFaultEnable) |
      bit(s.mrlSensor, SltCtl.MrlSensorEnable) | bit(s.hotPlugCapable, SltCtl.PresenceDetectEnable | SltCtl.HotPlugInterruptEnable) |
      bit(s.hotPlugCapable && !s.noCommandCompleted, SltCtl.CommandCompletedEnable) |
      bit(s.attentionIndicator, SltCtl.AttentionIndicator) | bit(s.powerIndicator, SltCtl.PowerIndicator) |
      bit(s.powerController, SltCtl.PowerControl) | bit(dlReport, SltCtl.DlStateChangedEnable);
    sltCtlReset = bit(s.attentionIndicator, Indicator.Off << 6) | bit(s.powerIndicator, Indicator.On << 8);
  }
  const slotCapabilities = reg("slotCapabilities", Exp.SltCap, 4, { reset: sltCap });
  const slotControl = reg("slotControl", Exp.SltCtl, 2, { reset: sltCtlReset, rw: sltCtlRw });
  const slotStatus = reg("slotStatus", Exp.SltSta, 2, {
    // A Downstream Port without a slot hardwires Presence Detect State to 1.
    reset: downstream && !slot ? SltSta.PresenceDetectState : 0,
    w1c: slot ? SltSta.AttentionButtonPressed | SltSta.PowerFaultDetected | SltSta.MrlSensorChanged |
      SltSta.PresenceDetectChanged | SltSta.CommandCompleted | SltSta.DlStateChanged : 0,
  });

  const rootControl = reg("rootControl", Exp.RootCtl, 2, {
    rw: root ? RootCtl.SerrOnCorrectable | RootCtl.SerrOnNonFatal | RootCtl.SerrOnFatal | RootCtl.PmeInterruptEnable | bit(o.crsVisibility, RootCtl.CrsVisibility) : 0,
  });
  const rootCapabilities = reg("rootCapabilities", Exp.RootCap, 2, { reset: bit(o.crsVisibility, RootCap.CrsVisibility) });
  const rootStatus = reg("rootStatus", Exp.RootSta, 4, { w1c: root ? RootSta.PmeStatus : 0 });

  const deviceCapabilities2 = reg("deviceCapabilities2", Exp.DevCap2, 4, {
    reset: ctRanges | bit(ctDisable, DevCap2.CompletionTimeoutDisable) | bit(o.ariForwarding, DevCap2.AriForwarding),
  });
  const deviceControl2 = reg("deviceControl2", Exp.DevCtl2, 2, {
    rw: bit(ctRanges !== 0, DevCtl2.CompletionTimeoutValue) | bit(ctDisable, DevCtl2.CompletionTimeoutDisable) | bit(o.ariForwarding, DevCtl2.AriForwarding),
  });
  const deviceStatus2 = reg("deviceStatus2", Exp.DevSta2, 2);
  const linkCapabilities2 = reg("linkCapabilities2", Exp.LnkCap2, 4, { reset: ((1 << link.maxSpeed) - 1) << 1 });
  const linkControl2 = reg("linkControl2", Exp.LnkCtl2, 2, {
    reset: link.maxSpeed,
    rw: 0xffff & ~(downstream ? 0 : LnkCtl2.SelectableDeemphasis),
  });
  const linkStatus2 = reg("linkStatus2", Exp.LnkSta2, 2, { w1c: LnkSta2.EqualizationRequest });
  const slotCapabilities2 = reg("slotCapabilities2", Exp.SltCap2, 4);
  const slotControl2 = reg("slotControl2", Exp.SltCtl2, 2);
  const slotStatus2 = reg("slotStatus2", Exp.SltSta2, 2);

  const notDownstream = downstream ? undefined : `reserved for a ${name}`;
  const device: ExpressDeviceFields = {
    maxPayloadSize: deviceControl.field("maxPayloadSize", DevCtl.MaxPayload),
    maxReadRequestSize: deviceControl.field("maxReadRequestSize", DevCtl.MaxReadRequest),
    correctableErrorDetected: deviceStatus.field("correctableErrorDetected", DevSta.CorrectableError),
    nonFatalErrorDetected: deviceStatus.field("nonFatalErrorDetected", DevSta.NonFatalError),
    fatalErrorDetected: deviceStatus.field("fatalErrorDetected", DevSta.FatalError),
    unsupportedRequestDetected: deviceStatus.field("unsupportedRequestDetected", DevSta.UnsupportedRequest),
    auxPowerDetected: deviceStatus.field("auxPowerDetected", DevSta.AuxPower),
    transactionsPending: deviceStatus.field("transactionsPending", DevSta.TransactionsPending),
    completionTimeoutValue: deviceControl2.field("completionTimeoutValue", DevCtl2.CompletionTimeoutValue),
    completionTimeoutDisable: deviceControl2.field("completionTimeoutDisable", DevCtl2.CompletionTimeoutDisable),
  };
  const linkFields: ExpressLinkFields = {
    currentSpeed: linkStatus.field("currentSpeed", LnkSta.Speed),
    negotiatedWidth: linkStatus.field("negotiatedWidth", LnkSta.Width),
    training: linkStatus.field("training", LnkSta.Training, notDownstream),
    slotClock: linkStatus.field("slotClock", LnkSta.SlotClock),
    dlLinkActive: linkStatus.field("dlLinkActive", LnkSta.DlActive, dlReport ? undefined : "DL Link Active reporting is not capable"),
    bandwidthManagementStatus: linkStatus.field("bandwidthManagementStatus", LnkSta.BandwidthManagement, bwn ? undefined : "no Link Bandwidth Notification"),
    autonomousBandwidthStatus: linkStatus.field("autonomousBandwidthStatus", LnkSta.AutonomousBandwidth, bwn ? undefined : "no Link Bandwidth Notification"),
    linkDisable: linkControl.field("linkDisable", LnkCtl.LinkDisable, notDownstream),
  };
  let slotFields: ExpressSlotFields | undefined;
  if (slot) {
    const absent = (present: boolean | undefined, what: string) => (present ? undefined : `no ${what} in this slot`);
    slotFields = {
      attentionButtonPressed: slotStatus.field("attentionButtonPressed", SltSta.AttentionButtonPressed, absent(slot.attentionButton, "attention button")),
      powerFaultDetected: slotStatus.field("powerFaultDetected", SltSta.PowerFaultDetected, absent(slot.powerController, "power controller")),
      mrlSensorChanged: slotStatus.field("mrlSensorChanged", SltSta.MrlSensorChanged, absent(slot.mrlSensor, "MRL sensor")),
      presenceDetectChanged: slotStatus.field("presenceDetectChanged", SltSta.PresenceDetectChanged),
      commandCompleted: slotStatus.field("commandCompleted", SltSta.CommandCompleted, slot.noCommandCompleted ? "No Command Completed Support" : undefined),
      mrlSensorState: slotStatus.field("mrlSensorState", SltSta.MrlSensorState, absent(slot.mrlSensor, "MRL sensor")),
      presenceDetectState: slotStatus.field("presenceDetectState", SltSta.PresenceDetectState),
      interlockStatus: slotStatus.field("interlockStatus", SltSta.InterlockStatus, absent(slot.interlock, "electromechanical interlock")),
      dlStateChanged: slotStatus.field("dlStateChanged", SltSta.DlStateChanged, dlReport ? undefined : "DL Link Active reporting is not capable"),
      attentionButtonPressedEnable: slotControl.field("attentionButtonPressedEnable", SltCtl.AttentionButtonEnable),
      powerFaultDetectedEnable: slotControl.field("powerFaultDetectedEnable", SltCtl.PowerFaultEnable),
      mrlSensorChangedEnable: slotControl.field("mrlSensorChangedEnable", SltCtl.MrlSensorEnable),
      presenceDetectChangedEnable: slotControl.field("presenceDetectChangedEnable", SltCtl.PresenceDetectEnable),
      commandCompletedInterruptEnable: slotControl.field("commandCompletedInterruptEnable", SltCtl.CommandCompletedEnable),
      hotPlugInterruptEnable: slotControl.field("hotPlugInterruptEnable", SltCtl.HotPlugInterruptEnable),
      attentionIndicator: slotControl.field("attentionIndicator", SltCtl.AttentionIndicator),
      powerIndicator: slotControl.field("powerIndicator", SltCtl.PowerIndicator),
      powerControllerControl: slotControl.field("powerControllerControl", SltCtl.PowerControl),
      dlStateChangedEnable: slotControl.field("dlStateChangedEnable", SltCtl.DlStateChangedEnable),
    };
  }
  const rootFields: ExpressRootFields | undefined = root
    ? {
      pmeRequesterId: rootStatus.field("pmeRequesterId", RootSta.PmeRequesterId),
      pmeStatus: rootStatus.field("pmeStatus", RootSta.PmeStatus),
      pmePending: rootStatus.field("pmePending", RootSta.PmePending),
    }
    : undefined;

  return {
    offset,
    portType: type,
    registers: {
      flags, deviceCapabilities, deviceControl, deviceStatus, linkCapabilities, linkControl, linkStatus,
      slotCapabilities, slotControl, slotStatus, rootControl, rootCapabilities, rootStatus,
      deviceCapabilities2, deviceControl2, deviceStatus2, linkCapabilities2, linkControl2, linkStatus2,
      slotCapabilities2, slotControl2, slotStatus2,
    },
    device,
    link: linkFields,
    slot: slotFields,
    root: rootFields,
  };
}

// ---- extended capabilities --------------------------------------------------------------

/**
 * The extended capability list from 0x100 (header: ID bits 15:0, version 19:16, next 31:20).
 * Empty on a 256-byte space or when 0x100 reads 0 (or all ones). Stops on a loop.
 */
export function listExtendedCapabilities(cs: ConfigSpace): (CapabilityEntry & { version: number })[] {
  const out: (CapabilityEntry & { version: number })[] = [];
  if (cs.size < 4096) return out;
  const seen = new Set<number>();
  let at = EXTENDED_START;
  while (at >= EXTENDED_START && !seen.has(at)) {
    const header = cs.peek(at, 4);
    if (header === 0 || header === 0xffffffff) break;
    seen.add(at);
    out.push({ id: header & 0xffff, version: (header >>> 16) & 0xf, offset: at });
    at = (header >>> 20) & 0xffc;
  }
  return out;
}

/** Reserve an extended capability (the first one at 0x100), define its RO header, link it. */
export function addExtendedCapability(cs: ConfigSpace, id: number, version: number, size: number, name: string): number {
  if (cs.size < 4096) throw new Error(`${name}: extended capabilities need the 4096-byte configuration space`);
  const span = roundUp4(size);
  let offset = -1;
  for (let o = EXTENDED_START; o + span <= cs.size; o += 4) {
    if (cs.isFree(o, span)) {
      offset = o;
      break;
    }
  }
  if (offset < 0) throw new Error(`no room for ${name}`);
  if (offset !== EXTENDED_START && cs.isFree(EXTENDED_START, 4)) throw new Error("0x100 must hold the first extended capability");
  const tail = listExtendedCapabilities(cs).at(-1);
  cs.define(`${name}.header`, offset, 4, { reset: (id & 0xffff) | ((version & 0xf) << 16) });
  if (span > size) cs.reserve(offset + size, span - size);
  if (tail) cs.poke(tail.offset, 4, (cs.peek(tail.offset, 4) & 0x000fffff) | (offset << 20));
  return offset;
}

export interface DeviceSerialNumberCapability {
  offset: number;
  low: Register;
  high: Register;
}

/** Device Serial Number extended capability (version 1): a 64-bit EUI-64, RO. */
export function addDeviceSerialNumber(cs: ConfigSpace, serial: bigint): DeviceSerialNumberCapability {
  if (serial < 0n || serial >= 1n << 64n) throw new RangeError(`serial ${serial} is not 64 bits`);
  const offset = addExtendedCapability(cs, ExtCapabilityId.DeviceSerialNumber, 1, 12, "dsn");
  const low = cs.define("dsn.low", offset + 4, 4, { reset: Number(serial & 0xffffffffn) });
  const high = cs.define("dsn.high", offset + 8, 4, { reset: Number(serial >> 32n) });
  return { offset, low, high };
}
