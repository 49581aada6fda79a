// Configuration space of the virtual switch's ports (docs/config-space.md, "Virtual switch"):
// the upstream port (0) and the hot-plug downstream ports (1..SWITCH_DOWNSTREAM_PORTS), each
// a Type 1 header with the PCI Express capability (version 2) at 0x40 and MSI at 0x80.
//
// Each port has 256 bytes of static memory, little-endian as configuration space is. What a
// configuration write may change is a table, one row per DW: the reset value, the RW bits and
// the W1C bits (every other bit is read-only), one table for the upstream port and one for the
// downstream ports, so that each register can be checked against the specification row by row.
// Bytes past the last row (0x90-0xff) and the extended space (0x100-0xfff: no extended
// capabilities) read 0 and ignore writes.
//
// The hardware side (hot-plug: presence, DL Link Active, the slot events) changes read-only
// and W1C bits through the functions at the end, as the port's logic would.

import {
  Hdr, Hdr1, Command, Status, BridgeControl, CapabilityId, MsiCtrl, PortType, Exp, ExpFlags, DevCap, DevCtl, DevSta,
  LnkCap, LnkCtl, LnkSta, SltCap, SltCtl, SltSta, SwitchCapability, SWITCH_PORTS, SWITCH_VENDOR_ID,
  SWITCH_UPSTREAM_DEVICE_ID, SWITCH_DOWNSTREAM_DEVICE_ID, SWITCH_REVISION, BRIDGE_CLASS,
} from "../../board/map/pcie";
import * as retain from "../retain";

/** Bytes of configuration space kept per port (the conventional space; the extended space reads 0). */
const SPACE_BYTES: i32 = 256;
/** DWs the tables describe: 0x00-0x8f (header, PCI Express capability, MSI). */
const DEFINED_DWS: i32 = 36;
/** DWs of the conventional space; requests may address 1024 (4 KiB). */
const CONVENTIONAL_DWS: i32 = 64;

const EXP: i32 = SwitchCapability.Express;
const MSI: i32 = SwitchCapability.Msi;

/** MSI registers, 64-bit layout without per-vector masking (offsets from the capability). */
enum Msi {
  Control = 0x02,
  AddressLow = 0x04,
  AddressHigh = 0x08,
  Data = 0x0c,
}

// Register values and bit attributes (PCI Express Base 7.5; PCI-to-PCI Bridge 1.2 chapter 3).
const HEADER_TYPE_1: u32 = 0x01;
const CACHE_LINE_RW: u32 = 0xff; //       Cache Line Size: RW for legacy software, no effect (PCIe Base 7.5.1.1.7)
const COMMAND_RW: u32 = Command.Memory | Command.BusMaster | Command.ParityErrorResponse | Command.Serr | Command.InterruptDisable;
const STATUS_W1C: u32 = Status.MasterDataParityError | Status.SignaledTargetAbort | Status.ReceivedTargetAbort |
  Status.ReceivedMasterAbort | Status.SignaledSystemError | Status.DetectedParityError;
const BUSES_RW: u32 = 0x00ffffff; //       primary, secondary, subordinate; Secondary Latency Timer RO 0
const WINDOW_RW: u32 = 0xfff0fff0; //      base and limit bits 15:4 (address bits 31:20)
const PREFETCH_64: u32 = 0x00010001; //    base and limit bits 3:0 = 1: 64-bit addressing
const BRIDGE_CONTROL_RW: u32 = BridgeControl.ParityErrorResponse | BridgeControl.Serr | BridgeControl.SecondaryBusReset;
const INTERRUPT_LINE_RW: u32 = 0xff;

const EXP_VERSION: u32 = 2;
const FLAGS_UPSTREAM: u32 = EXP_VERSION | (PortType.UpstreamPort << 4);
const FLAGS_DOWNSTREAM: u32 = EXP_VERSION | (PortType.DownstreamPort << 4) | ExpFlags.SlotImplemented;
const MPS_256: u32 = 1;
const DEVCAP: u32 = MPS_256 | DevCap.RoleBasedErrors;
const MRRS_512: u32 = 0b010 << 12;
const DEVCTL_RESET: u32 = DevCtl.RelaxedOrdering | DevCtl.NoSnoop | MRRS_512; // the specification's defaults
const DEVCTL_RW: u32 = DevCtl.CorrectableErrorReporting | DevCtl.NonFatalErrorReporting | DevCtl.FatalErrorReporting |
  DevCtl.UnsupportedRequestReporting | DevCtl.RelaxedOrdering | DevCtl.MaxPayload | DevCtl.NoSnoop | DevCtl.MaxReadRequest;
const DEVSTA_W1C: u32 = DevSta.CorrectableError | DevSta.NonFatalError | DevSta.FatalError | DevSta.UnsupportedRequest;
const GEN3: u32 = 3;
const UPSTREAM_WIDTH: u32 = 8;
const DOWNSTREAM_WIDTH: u32 = 4;
const WIDTH_SHIFT: u32 = 4; //             Maximum Link Width and Negotiated Link Width, bits 9:4
const PORT_NUMBER_SHIFT: u32 = 24;
const LNKCAP_UPSTREAM: u32 = GEN3 | (UPSTREAM_WIDTH << WIDTH_SHIFT) | LnkCap.AspmOptionality;
const LNKCAP_DOWNSTREAM: u32 = GEN3 | (DOWNSTREAM_WIDTH << WIDTH_SHIFT) | LnkCap.DlActiveReporting |
  LnkCap.BandwidthNotification | LnkCap.AspmOptionality;
const LNKCTL_RW_UPSTREAM: u32 = LnkCtl.Aspm | LnkCtl.CommonClock | LnkCtl.ExtendedSynch;
const LNKCTL_RW_DOWNSTREAM: u32 = LNKCTL_RW_UPSTREAM | LnkCtl.LinkDisable |
  LnkCtl.BandwidthManagementInterrupt | LnkCtl.AutonomousBandwidthInterrupt;
const LNKSTA_UPSTREAM: u32 = GEN3 | (UPSTREAM_WIDTH << WIDTH_SHIFT);
const LNKSTA_DOWNSTREAM: u32 = GEN3; //     width 0 and DL Link Active 0 until a chassis slot is bound
const LNKSTA_W1C_DOWNSTREAM: u32 = LnkSta.BandwidthManagement | LnkSta.AutonomousBandwidth; // never set
// An attention button (the card presses it to hand the slot to another server) and both indicators; no power controller.
const SLTCAP: u32 = SltCap.AttentionButton | SltCap.AttentionIndicator | SltCap.PowerIndicator |
  SltCap.HotPlugSurprise | SltCap.HotPlugCapable; // Physical Slot Number added per port
const PHYSICAL_SLOT_SHIFT: u32 = 19;
const SLTCTL_RW: u32 = SltCtl.AttentionButtonEnable | SltCtl.PresenceDetectEnable | SltCtl.CommandCompletedEnable |
  SltCtl.HotPlugInterruptEnable | SltCtl.AttentionIndicator | SltCtl.PowerIndicator | SltCtl.DlStateChangedEnable;
const SLTCTL_RESET: u32 = 0x00c0 | 0x0100; // Attention Indicator Off (11b), Power Indicator On (01b)
const SLTSTA_W1C: u32 = SltSta.AttentionButtonPressed | SltSta.PresenceDetectChanged | SltSta.CommandCompleted | SltSta.DlStateChanged;
const LNKCAP2_SPEEDS: u32 = 0b1110; //     Supported Link Speeds Vector: 2.5, 5 and 8 GT/s
const LNKCTL2_RW: u32 = 0x000f; //         Target Link Speed (reset Gen3); no effect
const MSI_CONTROL_RW: u32 = MsiCtrl.Enable | MsiCtrl.MultipleMessageEnable;
const MSI_ADDRESS_RW: u32 = 0xfffffffc;
const MSI_DATA_RW: u32 = 0x0000ffff; //    Extended Message Data (bits 31:16) not supported: RO 0

// Row = [reset, RW, W1C] per DW, 0x00 to 0x8c. Two 16-bit registers share a DW as (low | high << 16).
const RESET: i32 = 0;
const RW: i32 = 4;
const W1C: i32 = 8;
const ROW: i32 = 12;

const UPSTREAM = memory.data<u32>([
  // reset                                                   RW                                  W1C
  /* 0x00 Vendor ID, Device ID */ SWITCH_VENDOR_ID | (SWITCH_UPSTREAM_DEVICE_ID << 16), 0, 0,
  /* 0x04 Command, Status */ Status.CapabilitiesList << 16, COMMAND_RW, STATUS_W1C << 16,
  /* 0x08 Revision ID, Class Code */ SWITCH_REVISION | (BRIDGE_CLASS << 8), 0, 0,
  /* 0x0c Cache Line, Latency Timer, Header Type, BIST */ HEADER_TYPE_1 << 16, CACHE_LINE_RW, 0,
  /* 0x10 BAR0 (none) */ 0, 0, 0,
  /* 0x14 BAR1 (none) */ 0, 0, 0,
  /* 0x18 Primary, Secondary, Subordinate Bus, Secondary Latency Timer */ 0, BUSES_RW, 0,
  /* 0x1c I/O Base, I/O Limit (no I/O window), Secondary Status */ 0, 0, STATUS_W1C << 16,
  /* 0x20 Memory Base, Memory Limit */ 0, WINDOW_RW, 0,
  /* 0x24 Prefetchable Base, Limit */ PREFETCH_64, WINDOW_RW, 0,
  /* 0x28 Prefetchable Base Upper 32 */ 0, 0xffffffff, 0,
  /* 0x2c Prefetchable Limit Upper 32 */ 0, 0xffffffff, 0,
  /* 0x30 I/O Base, Limit Upper 16 */ 0, 0, 0,
  /* 0x34 Capabilities Pointer */ EXP, 0, 0,
  /* 0x38 Expansion ROM (none) */ 0, 0, 0,
  /* 0x3c Interrupt Line, Pin (none), Bridge Control */ 0, INTERRUPT_LINE_RW | (BRIDGE_CONTROL_RW << 16), 0,
  /* 0x40 PCI Express: ID, Next, Capabilities */ CapabilityId.Express | (MSI << 8) | (FLAGS_UPSTREAM << 16), 0, 0,
  /* 0x44 Device Capabilities */ DEVCAP, 0, 0,
  /* 0x48 Device Control, Device Status */ DEVCTL_RESET, DEVCTL_RW, DEVSTA_W1C << 16,
  /* 0x4c Link Capabilities (Port Number 0) */ LNKCAP_UPSTREAM, 0, 0,
  /* 0x50 Link Control, Link Status */ LNKSTA_UPSTREAM << 16, LNKCTL_RW_UPSTREAM, 0,
  /* 0x54 Slot Capabilities (no slot) */ 0, 0, 0,
  /* 0x58 Slot Control, Slot Status (no slot) */ 0, 0, 0,
  /* 0x5c Root Control, Root Capabilities */ 0, 0, 0,
  /* 0x60 Root Status */ 0, 0, 0,
  /* 0x64 Device Capabilities 2 */ 0, 0, 0,
  /* 0x68 Device Control 2, Device Status 2 */ 0, 0, 0,
  /* 0x6c Link Capabilities 2 */ LNKCAP2_SPEEDS, 0, 0,
  /* 0x70 Link Control 2, Link Status 2 */ GEN3, LNKCTL2_RW, 0,
  /* 0x74 Slot Capabilities 2 */ 0, 0, 0,
  /* 0x78 Slot Control 2, Slot Status 2 */ 0, 0, 0,
  /* 0x7c (unused) */ 0, 0, 0,
  /* 0x80 MSI: ID, Next (end of list), Message Control */ CapabilityId.Msi | (MsiCtrl.Address64 << 16), MSI_CONTROL_RW << 16, 0,
  /* 0x84 Message Address */ 0, MSI_ADDRESS_RW, 0,
  /* 0x88 Message Upper Address */ 0, 0xffffffff, 0,
  /* 0x8c Message Data */ 0, MSI_DATA_RW, 0,
]);

const DOWNSTREAM = memory.data<u32>([
  // reset                                                   RW                                  W1C
  /* 0x00 Vendor ID, Device ID */ SWITCH_VENDOR_ID | (SWITCH_DOWNSTREAM_DEVICE_ID << 16), 0, 0,
  /* 0x04 Command, Status */ Status.CapabilitiesList << 16, COMMAND_RW, STATUS_W1C << 16,
  /* 0x08 Revision ID, Class Code */ SWITCH_REVISION | (BRIDGE_CLASS << 8), 0, 0,
  /* 0x0c Cache Line, Latency Timer, Header Type, BIST */ HEADER_TYPE_1 << 16, CACHE_LINE_RW, 0,
  /* 0x10 BAR0 (none) */ 0, 0, 0,
  /* 0x14 BAR1 (none) */ 0, 0, 0,
  /* 0x18 Primary, Secondary, Subordinate Bus, Secondary Latency Timer */ 0, BUSES_RW, 0,
  /* 0x1c I/O Base, I/O Limit (no I/O window), Secondary Status */ 0, 0, STATUS_W1C << 16,
  /* 0x20 Memory Base, Memory Limit */ 0, WINDOW_RW, 0,
  /* 0x24 Prefetchable Base, Limit */ PREFETCH_64, WINDOW_RW, 0,
  /* 0x28 Prefetchable Base Upper 32 */ 0, 0xffffffff, 0,
  /* 0x2c Prefetchable Limit Upper 32 */ 0, 0xffffffff, 0,
  /* 0x30 I/O Base, Limit Upper 16 */ 0, 0, 0,
  /* 0x34 Capabilities Pointer */ EXP, 0, 0,
  /* 0x38 Expansion ROM (none) */ 0, 0, 0,
  /* 0x3c Interrupt Line, Pin (none), Bridge Control */ 0, INTERRUPT_LINE_RW | (BRIDGE_CONTROL_RW << 16), 0,
  /* 0x40 PCI Express: ID, Next, Capabilities */ CapabilityId.Express | (MSI << 8) | (FLAGS_DOWNSTREAM << 16), 0, 0,
  /* 0x44 Device Capabilities */ DEVCAP, 0, 0,
  /* 0x48 Device Control, Device Status */ DEVCTL_RESET, DEVCTL_RW, DEVSTA_W1C << 16,
  /* 0x4c Link Capabilities (+ Port Number) */ LNKCAP_DOWNSTREAM, 0, 0,
  /* 0x50 Link Control, Link Status */ LNKSTA_DOWNSTREAM << 16, LNKCTL_RW_DOWNSTREAM, LNKSTA_W1C_DOWNSTREAM << 16,
  /* 0x54 Slot Capabilities (+ Physical Slot Number) */ SLTCAP, 0, 0,
  /* 0x58 Slot Control, Slot Status */ SLTCTL_RESET, SLTCTL_RW, SLTSTA_W1C << 16,
  /* 0x5c Root Control, Root Capabilities */ 0, 0, 0,
  /* 0x60 Root Status */ 0, 0, 0,
  /* 0x64 Device Capabilities 2 */ 0, 0, 0,
  /* 0x68 Device Control 2, Device Status 2 */ 0, 0, 0,
  /* 0x6c Link Capabilities 2 */ LNKCAP2_SPEEDS, 0, 0,
  /* 0x70 Link Control 2, Link Status 2 */ GEN3, LNKCTL2_RW, 0,
  /* 0x74 Slot Capabilities 2 */ 0, 0, 0,
  /* 0x78 Slot Control 2, Slot Status 2 */ 0, 0, 0,
  /* 0x7c (unused) */ 0, 0, 0,
  /* 0x80 MSI: ID, Next (end of list), Message Control */ CapabilityId.Msi | (MsiCtrl.Address64 << 16), MSI_CONTROL_RW << 16, 0,
  /* 0x84 Message Address */ 0, MSI_ADDRESS_RW, 0,
  /* 0x88 Message Upper Address */ 0, 0xffffffff, 0,
  /* 0x8c Message Data */ 0, MSI_DATA_RW, 0,
]);

const spaces = memory.data(SPACE_BYTES * SWITCH_PORTS);

function space(port: i32): usize {
  return spaces + port * SPACE_BYTES;
}

/** Bytes of a port's space that survive a reset of the soft-core (retain.ts): the DWs the tables define; the rest reads 0. */
export const SAVED: i32 = DEFINED_DWS * 4;

/** Where port `port`'s retained bytes are. */
export function saved(port: i32): usize {
  return space(port);
}

/** Port `port`'s space as a previous firmware left it (retain.ts). */
export function restore(port: i32, from: usize): void {
  memory.copy(space(port), from, SAVED);
}

function table(port: i32): usize {
  return port == 0 ? UPSTREAM : DOWNSTREAM;
}

/** Every port back to its reset values (a conventional reset: nothing bound, nothing enabled). */
export function reset(): void {
  memory.fill(spaces, 0, SPACE_BYTES * SWITCH_PORTS);
  for (let port = 0; port < SWITCH_PORTS; port++) {
    const rows = table(port);
    for (let dw = 0; dw < DEFINED_DWS; dw++) store<u32>(space(port) + (dw << 2), load<u32>(rows + dw * ROW + RESET));
    retain.spaceChanged(port);
    if (port == 0) continue;
    // Port Number and Physical Slot Number: the switch port index, so slot N is port N.
    or32(port, EXP + Exp.LnkCap, (port as u32) << PORT_NUMBER_SHIFT);
    or32(port, EXP + Exp.SltCap, (port as u32) << PHYSICAL_SLOT_SHIFT);
  }
}

// ---- Configuration accesses -------------------------------------------------------------

/** DW `dw` (0..1023) as a configuration read returns it. */
export function read(port: i32, dw: i32): u32 {
  return dw < CONVENTIONAL_DWS ? load<u32>(space(port) + (dw << 2)) : 0;
}

/** 0xff in each byte lane `firstBe` enables. */
function laneMask(firstBe: i32): u32 {
  let mask: u32 = 0;
  for (let lane = 0; lane < 4; lane++) {
    if ((firstBe & (1 << lane)) != 0) mask |= (0xff as u32) << (lane << 3);
  }
  return mask;
}

/** True when `firstBe` enables a byte of the register of `size` bytes at byte `offset`. */
export function touches(offset: i32, size: i32, dw: i32, firstBe: i32): bool {
  if (offset >> 2 != dw) return false;
  return (firstBe & (((1 << size) - 1) << (offset & 3))) != 0;
}

/**
 * A configuration write of `value` to DW `dw` with First DW BE `firstBe`: in each enabled
 * lane RW bits take the value, W1C bits clear where it has 1s, RO bits stay. A write that
 * enables any byte of Slot Control completes at once: Command Completed is set (after the
 * write's own W1C bits, so a write that clears it and changes Slot Control leaves it set).
 */
export function write(port: i32, dw: i32, value: u32, firstBe: i32): void {
  if (dw >= DEFINED_DWS) return;
  const lanes = laneMask(firstBe);
  const row = table(port) + dw * ROW;
  const rw = load<u32>(row + RW) & lanes;
  const w1c = load<u32>(row + W1C) & lanes;
  const at = space(port) + (dw << 2);
  const old = load<u32>(at);
  store<u32>(at, ((old & ~rw) | (value & rw)) & ~(value & w1c));
  retain.spaceChanged(port);
  if (port != 0 && touches(EXP + Exp.SltCtl, 2, dw, firstBe)) or16(port, EXP + Exp.SltSta, SltSta.CommandCompleted);
}

// ---- Fields the switch reads ------------------------------------------------------------

export function command(port: i32): u32 {
  return load<u16>(space(port) + Hdr.Command) as u32;
}

export function secondaryBus(port: i32): u32 {
  return load<u8>(space(port) + Hdr1.SecondaryBus) as u32;
}

export function slotControl(port: i32): u32 {
  return load<u16>(space(port) + EXP + Exp.SltCtl) as u32;
}

export function slotStatus(port: i32): u32 {
  return load<u16>(space(port) + EXP + Exp.SltSta) as u32;
}

export function msiControl(port: i32): u32 {
  return load<u16>(space(port) + MSI + Msi.Control) as u32;
}

export function msiAddressLow(port: i32): u32 {
  return load<u32>(space(port) + MSI + Msi.AddressLow);
}

export function msiAddressHigh(port: i32): u32 {
  return load<u32>(space(port) + MSI + Msi.AddressHigh);
}

export function msiData(port: i32): u32 {
  return load<u16>(space(port) + MSI + Msi.Data) as u32;
}

// ---- The hardware side --------------------------------------------------------------------

function or16(port: i32, offset: i32, bits: u32): void {
  const at = space(port) + offset;
  store<u16>(at, (load<u16>(at) as u32) | bits);
  retain.spaceChanged(port);
}

function or32(port: i32, offset: i32, bits: u32): void {
  const at = space(port) + offset;
  store<u32>(at, load<u32>(at) | bits);
  retain.spaceChanged(port);
}

function clear16(port: i32, offset: i32, bits: u32): void {
  const at = space(port) + offset;
  store<u16>(at, (load<u16>(at) as u32) & ~bits);
  retain.spaceChanged(port);
}

/** Sets `bits` of DW `dw` as the port's logic would (an error or event bit); specs use it for the W1C bits nothing else sets. */
export function raise(port: i32, dw: i32, bits: u32): void {
  if (dw < DEFINED_DWS) or32(port, dw << 2, bits);
}

/**
 * Downstream port `port` gains (`present`) or loses its chassis slot: Presence Detect State
 * and DL Link Active follow, the Negotiated Link Width is x4 or 0, and both events (Presence
 * Detect Changed, Data Link Layer State Changed) are raised.
 */
export function setSlotPresent(port: i32, present: bool): void {
  const width: u32 = DOWNSTREAM_WIDTH << WIDTH_SHIFT;
  if (present) {
    or16(port, EXP + Exp.SltSta, SltSta.PresenceDetectState);
    or16(port, EXP + Exp.LnkSta, LnkSta.DlActive | width);
  } else {
    clear16(port, EXP + Exp.SltSta, SltSta.PresenceDetectState);
    clear16(port, EXP + Exp.LnkSta, LnkSta.DlActive | LnkSta.Width);
  }
  or16(port, EXP + Exp.SltSta, SltSta.PresenceDetectChanged | SltSta.DlStateChanged);
}

/** The card presses downstream port `port`'s attention button: Attention Button Pressed is set. */
export function pressAttentionButton(port: i32): void {
  or16(port, EXP + Exp.SltSta, SltSta.AttentionButtonPressed);
}

// Compile-time checks: the tables end with the MSI capability's last DW, inside the conventional
// space (tests/assembly/switch.spec.ts checks every row against the specification).
assert(DEFINED_DWS * 4 == MSI + 0x10);
assert(DEFINED_DWS <= CONVENTIONAL_DWS);
assert(SPACE_BYTES == CONVENTIONAL_DWS * 4);
