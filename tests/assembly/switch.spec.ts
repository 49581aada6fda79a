// The host card's virtual PCIe switch (assembly/pcie/): configuration space of its ports,
// routing of the slow path's TLPs and their completions, the switch router's registers, and
// hot-plug (binding chassis slots, presence, DL Link Active, the MSI edge rule). Driven through
// the mailbox as the board drives it: TLP_RX events in, TLP_TX and REG_WRITE commands out.
// Expected register values are written out below from the PCI Express Base Specification and
// docs/config-space.md, independently of the firmware's own tables.

import * as firmware from "../../assembly/firmware";
import * as tx from "../../assembly/abi/tx";
import * as counters from "../../assembly/counters";
import * as vswitch from "../../assembly/pcie/switch";
import * as timers from "../../assembly/timers";
import { TimerId } from "../../assembly/timers";
import * as config from "../../assembly/pcie/config";
import * as retain from "../../assembly/retain";
import {
  Command, Counter, MailboxError, CardRole, ErrorBody, TlpRxBody, TlpRxReason, NO_PORT, BootBody, TLP_RX_REASON_LAST,
  Event, errorCounter, ResetCause, RetainBody, RETAIN_BYTES, RETAIN_CHUNK,
} from "../../board/map/mailbox";
import { SWITCH_BASE, SWITCH_STRIDE, SwitchReg, SwitchControl, FabricEventKind } from "../../board/map/registers";
import {
  Fmt, TlpType, CplStatus, TlpHeader, Hdr, Hdr1, Exp, SltCtl, SltSta, LnkSta, LnkCtl, MsiCtrl, BridgeControl,
  Command as PciCommand, CapabilityId, SwitchCapability, SWITCH_PORTS, SWITCH_DOWNSTREAM_PORTS,
} from "../../board/map/pcie";
import {
  Sent, TlpSent, message, set8, set16, set32, setBytes, typeOf, bodyLengthOf, deliver, deliverAndAnswer, sent, bootEvent, timeEvent,
  tlpRxEvent, tlpTxOf, regWriteOf, fabricEvent,
} from "./helpers";

const T0: u64 = 5_000_000_000;
/** The server's root port, 00:01.0: the requester of every configuration request. */
const ROOT_PORT: u32 = 0x0008;
/** Where the server enumerates the switch: upstream port 01:00.0, internal bus 2, downstream ports 02:00.0-02:07.0. */
const UPSTREAM_BUS: u32 = 1;
const INTERNAL_BUS: u32 = 2;
const UPSTREAM_ID: u32 = UPSTREAM_BUS << 8;
const CHASSIS: u32 = 0x20000001;
const OTHER_CHASSIS: u32 = 0x20000002;
const MSI_ADDRESS: u32 = 0xfee00040;
const MSI_DATA: u32 = 0x4031;

const EXP: i32 = SwitchCapability.Express;
const MSI: i32 = SwitchCapability.Msi;
const SLOT_DW: i32 = EXP + Exp.SltCtl; // Slot Control (15:0), Slot Status (31:16)
const LINK_DW: i32 = EXP + Exp.LnkCtl; // Link Control (15:0), Link Status (31:16)
const STATUS_LANES: i32 = 0b1100; //    the high half of a DW
const CONTROL_LANES: i32 = 0b0011; //   the low half

let streamed: u32 = 0;

// ---- TLPs the server sends (PCIe Base 2.2; big-endian headers) ------------------------------

function header(fmt: i32, type: i32, lengthDw: i32, requester: u32, tag: u32, firstBe: i32): u8[] {
  const bytes = new Array<u8>((fmt & 1) != 0 ? TlpHeader.Long : TlpHeader.Short);
  bytes[TlpHeader.FmtType] = ((fmt << 5) | type) as u8;
  bytes[TlpHeader.Flags] = ((((tag >> 9) & 1) << 7) | (((tag >> 8) & 1) << 3)) as u8;
  bytes[TlpHeader.LengthHigh] = ((lengthDw >> 8) & 3) as u8;
  bytes[TlpHeader.LengthLow] = lengthDw as u8;
  bytes[TlpHeader.RequesterId] = (requester >> 8) as u8;
  bytes[TlpHeader.RequesterId + 1] = requester as u8;
  bytes[TlpHeader.Tag] = tag as u8;
  bytes[TlpHeader.ByteEnables] = firstBe as u8;
  return bytes;
}

function withData(bytes: u8[], value: u32): u8[] {
  for (let i = 0; i < 4; i++) bytes.push((value >> (8 * i)) as u8);
  return bytes;
}

/** A configuration request: Type 0 or 1, a read or (with `value`) a write of DW `dw` (0..1023). */
function cfg(type0: bool, write: bool, bus: u32, device: u32, fn: u32, dw: i32, firstBe: i32 = 0xf, value: u32 = 0, tag: u32 = 0x21): u8[] {
  const bytes = header(write ? Fmt.Data3DW : Fmt.NoData3DW, type0 ? TlpType.Cfg0 : TlpType.Cfg1, 1, ROOT_PORT, tag, firstBe);
  bytes[TlpHeader.Bus] = bus as u8;
  bytes[TlpHeader.DevFn] = ((device << 3) | fn) as u8;
  bytes[TlpHeader.ExtRegister] = ((dw >> 6) & 0xf) as u8;
  bytes[TlpHeader.Register] = ((dw & 0x3f) << 2) as u8;
  return write ? withData(bytes, value) : bytes;
}

/** A memory read (or locked read) of one DW at `address`, 4DW above 4 GiB. */
function memRead(address: u64, requester: u32, tag: u32, locked: bool = false): u8[] {
  const wide = address >= (1 << 32);
  const bytes = header(wide ? Fmt.NoData4DW : Fmt.NoData3DW, locked ? TlpType.MemLocked : TlpType.Mem, 1, requester, tag, 0xf);
  putAddress(bytes, address);
  return bytes;
}

function memWrite(address: u64, requester: u32, value: u32): u8[] {
  const wide = address >= (1 << 32);
  const bytes = header(wide ? Fmt.Data4DW : Fmt.Data3DW, TlpType.Mem, 1, requester, 0, 0xf);
  putAddress(bytes, address);
  return withData(bytes, value);
}

function putAddress(bytes: u8[], address: u64): void {
  const at = bytes.length == TlpHeader.Long ? TlpHeader.Address64 : TlpHeader.Address32;
  if (bytes.length == TlpHeader.Long) put32(bytes, at, (address >> 32) as u32);
  put32(bytes, bytes.length - 4, address as u32);
}

function put32(bytes: u8[], at: i32, value: u32): void {
  for (let i = 0; i < 4; i++) bytes[at + i] = (value >> (24 - 8 * i)) as u8;
}

// ---- Driving the firmware ---------------------------------------------------------------

function fresh(): void {
  firmware.reset();
  tx.discard();
  streamed = 0;
}

/** Delivers `bytes` as one read and handles them; returns the commands they caused. */
function handle(bytes: u8[]): Sent[] {
  tx.discard();
  streamed += bytes.length;
  deliverAndAnswer(bytes);
  return sent();
}

function bootAs(role: i32): void {
  fresh();
  handle(timeEvent(T0).concat(set8(bootEvent(), BootBody.Role, role)));
  expect(firmware.isBooted()).toBe(true, "booted");
  tx.discard();
}

function bootHost(): void {
  bootAs(CardRole.Host);
}

/** A configuration request for `port` as the router hands it over: Type 0 for port 0, Type 1 on the internal bus. */
function configEvent(port: i32, dw: i32, write: bool, value: u32, firstBe: i32): u8[] {
  if (port == 0) return tlpRxEvent(TlpRxReason.Config, 0, cfg(true, write, UPSTREAM_BUS, 0, 0, dw, firstBe, value));
  return tlpRxEvent(TlpRxReason.Config, port, cfg(false, write, INTERNAL_BUS, (port - 1) as u32, 0, dw, firstBe, value));
}

function expectCompletion(cpl: TlpSent, withData: bool, status: u32, completer: u32, requester: u32, tag: u32): void {
  expect(cpl.fmt()).toBe(withData ? Fmt.Data3DW : Fmt.NoData3DW, "completion Fmt");
  expect(cpl.type()).toBe(TlpType.Cpl, "completion Type");
  expect(cpl.lengthField()).toBe(withData ? 1 : 0, "completion Length");
  expect(cpl.bytes.length).toBe(withData ? 16 : 12, "completion size");
  expect(cpl.status()).toBe(status, "Completion Status");
  expect(cpl.completer()).toBe(completer, "Completer ID");
  expect(cpl.cplRequester()).toBe(requester, "Requester ID");
  expect(cpl.cplTag()).toBe(tag, "Tag");
  expect(cpl.bcm()).toBe(false, "BCM");
  expect(cpl.byteCount()).toBe(4, "Byte Count");
  expect(cpl.lowerAddress()).toBe(0, "Lower Address");
}

/** Reads the DW at byte `offset` of `port`'s configuration space (one successful CplD). */
function readDw(port: i32, offset: i32): u32 {
  const out = handle(configEvent(port, offset >> 2, false, 0, 0xf));
  expect(out.length).toBe(1, "one completion for a configuration read");
  const cpl = tlpTxOf(out[0]);
  expect(cpl.type()).toBe(TlpType.Cpl, "a completion");
  expect(cpl.fmt()).toBe(Fmt.Data3DW, "with data");
  expect(cpl.status()).toBe(CplStatus.SuccessfulCompletion, "successful");
  return cpl.data();
}

/** Writes `value` to the DW at `offset` of `port` with `firstBe`; returns the commands (one successful Cpl among them). */
function writeDw(port: i32, offset: i32, value: u32, firstBe: i32 = 0xf): Sent[] {
  const out = handle(configEvent(port, offset >> 2, true, value, firstBe));
  let completions = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i].type != Command.TlpTx) continue;
    const t = tlpTxOf(out[i]);
    if (t.type() != TlpType.Cpl) continue;
    completions++;
    expect(t.fmt()).toBe(Fmt.NoData3DW, "a write's completion has no data");
    expect(t.status()).toBe(CplStatus.SuccessfulCompletion, "a configuration write succeeds");
  }
  expect(completions).toBe(1, "one completion for a configuration write");
  return out;
}

function field16(port: i32, offset: i32): u32 {
  const dw = readDw(port, offset & ~3);
  return (offset & 2) != 0 ? dw >> 16 : dw & 0xffff;
}

function slotStatus(port: i32): u32 {
  return field16(port, EXP + Exp.SltSta);
}

function linkStatus(port: i32): u32 {
  return field16(port, EXP + Exp.LnkSta);
}

/** The hot-plug events attach() and detach() queue, raised as the Slots timer would, one per firing. */
function raiseSlotEvents(): void {
  for (let i = 0; i < 2 * SWITCH_PORTS; i++) vswitch.onSlotsTimer();
  timers.stop(TimerId.Slots);
}

/** The commands attach() sends, then those of the hot-plug events it queued; every slot holds a device unless `present` says otherwise. */
function attach(tunnel: i32, serial: u32, slots: i32, present: u32 = 0xff): Sent[] {
  tx.discard();
  vswitch.attach(tunnel, serial, slots, present);
  raiseSlotEvents();
  return sent();
}

function detach(tunnel: i32): Sent[] {
  tx.discard();
  vswitch.detach(tunnel);
  raiseSlotEvents();
  return sent();
}

function routerAddress(port: i32, reg: i32): u32 {
  return (SWITCH_BASE + port * SWITCH_STRIDE + reg) as u32;
}

/** The values written to `reg` of `port` among `out`. */
function routerWrites(out: Sent[], port: i32, reg: i32): u32[] {
  const values = new Array<u32>();
  for (let i = 0; i < out.length; i++) {
    if (out[i].type == Command.RegWrite && regWriteOf(out[i]).address == routerAddress(port, reg)) values.push(regWriteOf(out[i]).value);
  }
  return values;
}

function typesOf(out: Sent[]): i32[] {
  const types = new Array<i32>(out.length);
  for (let i = 0; i < out.length; i++) types[i] = out[i].type;
  return types;
}

/** The MSI writes (memory writes among the TLP_TX) in `out`. */
function msis(out: Sent[]): TlpSent[] {
  const list = new Array<TlpSent>();
  for (let i = 0; i < out.length; i++) {
    if (out[i].type != Command.TlpTx) continue;
    const t = tlpTxOf(out[i]);
    if (t.type() == TlpType.Mem) list.push(t);
  }
  return list;
}

/** Enumerates the upstream port as the server does: bus numbers 1 / 2 / 2..9. */
function enumerateUpstream(): void {
  // The Type 0 request itself tells the upstream port it is 01:00.0.
  writeDw(0, Hdr1.PrimaryBus, (9 << 16) | (INTERNAL_BUS << 8) | UPSTREAM_BUS);
}

/** MSI of downstream `port` programmed and enabled, Bus Master on, and `enables` in Slot Control (Command Completed cleared after). */
function armInterrupts(port: i32, enables: u32, addressHigh: u32 = 0): void {
  writeDw(port, MSI + 4, MSI_ADDRESS);
  writeDw(port, MSI + 8, addressHigh);
  writeDw(port, MSI + 0xc, MSI_DATA);
  writeDw(port, MSI, MsiCtrl.Enable << 16, STATUS_LANES);
  writeDw(port, Hdr.Command, PciCommand.Memory | PciCommand.BusMaster, CONTROL_LANES);
  writeDw(port, SLOT_DW, enables, CONTROL_LANES);
  clearSlotEvents(port);
}

function clearSlotEvents(port: i32): Sent[] {
  return writeDw(port, SLOT_DW, (SltSta.PresenceDetectChanged | SltSta.CommandCompleted | SltSta.DlStateChanged) << 16, STATUS_LANES);
}

const HOTPLUG_ENABLES: u32 = SltCtl.PresenceDetectEnable | SltCtl.DlStateChangedEnable | SltCtl.HotPlugInterruptEnable;

// ---- The registers, written out from the specification ---------------------------------------

/** One DW of a port's configuration space: its reset value and which bits are RW and W1C (the rest RO). */
class Dw {
  constructor(public offset: i32, public name: string, public reset: u32, public rw: u32, public w1c: u32) {}
}

/** Every DW 0x00-0xfc of port `port` (0 upstream, else downstream): listed ones as given, the rest reserved RO 0. */
function registers(port: i32): Dw[] {
  const down = port != 0;
  const p = port as u32;
  const listed: Dw[] = [
    new Dw(0x00, "Vendor ID, Device ID", down ? 0x00021fff : 0x00011fff, 0, 0),
    // Command RW: Memory (1), Bus Master (2), Parity Error Response (6), SERR# (8), Interrupt Disable (10); I/O (0) hardwired 0.
    // Status: Capabilities List (4) RO 1; W1C 8, 11, 12, 13, 14, 15.
    new Dw(0x04, "Command, Status", 0x00100000, 0x00000546, 0xf9000000),
    new Dw(0x08, "Revision, Class Code 060400", 0x06040001, 0, 0),
    new Dw(0x0c, "Cache Line Size, Header Type 01", 0x00010000, 0x000000ff, 0),
    new Dw(0x18, "Primary, Secondary, Subordinate Bus", 0, 0x00ffffff, 0),
    new Dw(0x1c, "I/O Base/Limit (none), Secondary Status", 0, 0, 0xf9000000),
    new Dw(0x20, "Memory Base, Limit", 0, 0xfff0fff0, 0),
    new Dw(0x24, "Prefetchable Base, Limit (64-bit)", 0x00010001, 0xfff0fff0, 0),
    new Dw(0x28, "Prefetchable Base Upper", 0, 0xffffffff, 0),
    new Dw(0x2c, "Prefetchable Limit Upper", 0, 0xffffffff, 0),
    new Dw(0x34, "Capabilities Pointer", 0x40, 0, 0),
    // Interrupt Line RW, Interrupt Pin 0; Bridge Control RW: Parity Error Response (0), SERR# (1), Secondary Bus Reset (6).
    new Dw(0x3c, "Interrupt Line, Pin, Bridge Control", 0, 0x004300ff, 0),
    // ID 10, Next 80; version 2, type 0101 Upstream / 0110 Downstream + Slot Implemented.
    new Dw(0x40, "PCI Express Capabilities", down ? 0x01628010 : 0x00528010, 0, 0),
    new Dw(0x44, "Device Capabilities: MPS 256, Role-Based Errors", 0x00008001, 0, 0),
    // RW: error enables (3:0), Relaxed Ordering (4), MPS (7:5), No Snoop (11), MRRS (14:12); reset RO, NS, MRRS 512.
    new Dw(0x48, "Device Control, Device Status", 0x00002810, 0x000078ff, 0x000f0000),
    // Gen3, x8 up / x4 down, DLLA Reporting (20) and Bandwidth Notification (21) down, ASPM Optionality (22), Port Number (31:24).
    new Dw(0x4c, "Link Capabilities", down ? 0x00700043 | (p << 24) : 0x00400083, 0, 0),
    // LnkCtl RW: ASPM (1:0), Common Clock (6), Extended Synch (7); down also Link Disable (4) and the bandwidth interrupt enables (11:10).
    // LnkSta: Gen3, x8 up; down x0 until a slot is bound, bandwidth status bits (15:14) W1C.
    new Dw(0x50, "Link Control, Link Status", down ? 0x00030000 : 0x00830000, down ? 0x00000cd3 : 0x000000c3, down ? 0xc0000000 : 0),
    // Hot-Plug Surprise (5), Hot-Plug Capable (6), Physical Slot Number (31:19) = port.
    // Attention Button, Attention and Power Indicators, Hot-Plug Surprise and Capable; Physical Slot Number = port.
    new Dw(0x54, "Slot Capabilities", down ? 0x00000079 | (p << 19) : 0, 0, 0),
    // SltCtl RW: Presence Detect Changed Enable (3), Command Completed Enable (4), HPIE (5), DLLSC Enable (12).
    // SltSta W1C: Presence Detect Changed (3), Command Completed (4), DLLSC (8).
    // Attention Indicator Off and Power Indicator On at reset; Attention Button Pressed is RW1C.
    new Dw(0x58, "Slot Control, Slot Status", down ? 0x000001c0 : 0, down ? 0x000013f9 : 0, down ? 0x01190000 : 0),
    new Dw(0x6c, "Link Capabilities 2: 2.5, 5, 8 GT/s", 0x0000000e, 0, 0),
    new Dw(0x70, "Link Control 2: Target Link Speed", 0x00000003, 0x0000000f, 0),
    // ID 05, Next 00; Message Control: 64-bit (7) RO, Enable (0) and MME (6:4) RW, MMC 0.
    new Dw(0x80, "MSI: ID, Next, Message Control", 0x00800005, 0x00710000, 0),
    new Dw(0x84, "MSI Message Address", 0, 0xfffffffc, 0),
    new Dw(0x88, "MSI Message Upper Address", 0, 0xffffffff, 0),
    new Dw(0x8c, "MSI Message Data", 0, 0x0000ffff, 0),
  ];
  const all = new Array<Dw>();
  for (let offset = 0; offset < 0x100; offset += 4) {
    let dw = new Dw(offset, "reserved", 0, 0, 0);
    for (let i = 0; i < listed.length; i++) if (listed[i].offset == offset) dw = listed[i];
    all.push(dw);
  }
  return all;
}

function lanes(firstBe: i32): u32 {
  let mask: u32 = 0;
  for (let lane = 0; lane < 4; lane++) if ((firstBe & (1 << lane)) != 0) mask |= (0xff as u32) << (8 * lane);
  return mask;
}

/** What `dw` reads after writing `value` with `firstBe` over `old` (Command Completed: every Slot Control write sets it). */
function afterWrite(port: i32, dw: Dw, old: u32, value: u32, firstBe: i32): u32 {
  const rw = dw.rw & lanes(firstBe);
  const w1c = dw.w1c & lanes(firstBe);
  let result = ((old & ~rw) | (value & rw)) & ~(value & w1c);
  if (port != 0 && dw.offset == SLOT_DW && (firstBe & CONTROL_LANES) != 0) result |= SltSta.CommandCompleted << 16;
  return result;
}

function hex(value: u32): string {
  return "0x" + value.toString(16);
}

/** Every register of `port`, bit by bit: reset value, all ones, all zeros, each byte lane alone, and W1C bits. */
function checkEveryRegister(port: i32): void {
  const all = registers(port);
  for (let i = 0; i < all.length; i++) {
    const dw = all[i];
    const what = "port " + port.toString() + " " + hex(dw.offset) + " " + dw.name;
    bootHost();
    expect(readDw(port, dw.offset)).toBe(dw.reset, what + ": reset value");
    writeDw(port, dw.offset, 0xffffffff);
    const ones = afterWrite(port, dw, dw.reset, 0xffffffff, 0xf);
    expect(readDw(port, dw.offset)).toBe(ones, what + ": after writing ones, RW bits set, RO bits unchanged");
    writeDw(port, dw.offset, 0);
    expect(readDw(port, dw.offset)).toBe(afterWrite(port, dw, ones, 0, 0xf), what + ": after writing zeros, RW bits clear, RO bits unchanged");
    for (let lane = 0; lane < 4; lane++) {
      bootHost();
      writeDw(port, dw.offset, 0xffffffff, 1 << lane);
      expect(readDw(port, dw.offset)).toBe(afterWrite(port, dw, dw.reset, 0xffffffff, 1 << lane), what + ": ones in byte lane " + lane.toString() + " only");
    }
    if (dw.w1c == 0) continue;
    for (let bit = 0; bit < 32; bit++) {
      const mask: u32 = 1 << bit;
      if ((dw.w1c & mask) == 0) continue;
      bootHost();
      config.raise(port, dw.offset >> 2, dw.w1c);
      const raised = dw.reset | dw.w1c;
      expect(readDw(port, dw.offset)).toBe(raised, what + ": W1C bits set by the hardware side");
      writeDw(port, dw.offset, 0, 0xf);
      expect(readDw(port, dw.offset)).toBe(afterWrite(port, dw, raised, 0, 0xf), what + ": writing 0 clears nothing");
      writeDw(port, dw.offset, mask, 0xf);
      expect(readDw(port, dw.offset)).toBe(afterWrite(port, dw, raised, mask, 0xf), what + ": writing 1 to bit " + bit.toString() + " clears it alone");
      bootHost();
      config.raise(port, dw.offset >> 2, dw.w1c);
      const lane = bit >> 3;
      const other = (lane + 1) & 3;
      writeDw(port, dw.offset, 0xffffffff, 1 << other);
      if ((dw.w1c & lanes(1 << other)) == 0) {
        expect(readDw(port, dw.offset) & dw.w1c).toBe(dw.w1c, what + ": ones in another byte lane leave W1C bit " + bit.toString());
      }
    }
  }
}

/** Expects exactly one ERROR for `bytes` with `code` and `detail`, and no other counter than the error's to move. */
function expectRejected(bytes: u8[], code: i32, detail: u32): void {
  const at = streamed;
  const events = counters.get(Counter.EventsIn);
  const tlps = counters.get(Counter.TlpRx);
  const errors = counters.get(errorCounter(code));
  const out = handle(bytes);
  expect(out.length).toBe(1, "only an ERROR");
  expect(out[0].type).toBe(Command.Error);
  expect(out[0].u8(ErrorBody.Code)).toBe(code, "error code");
  expect(out[0].u8(ErrorBody.MessageType)).toBe(Event.TlpRx, "offending type");
  expect(out[0].u16(ErrorBody.BodyLength)).toBe(bodyLengthOf(bytes), "declared length");
  expect(out[0].u32(ErrorBody.StreamOffset)).toBe(at, "stream offset");
  expect(out[0].u32(ErrorBody.Detail)).toBe(detail, "detail");
  expect(counters.get(Counter.EventsIn)).toBe(events, "not accepted");
  expect(counters.get(Counter.TlpRx)).toBe(tlps, "not counted as a TLP");
  expect(counters.get(errorCounter(code))).toBe(errors + 1, "its error counter");
}

function readRequest(): u8[] {
  return cfg(true, false, UPSTREAM_BUS, 0, 0, 0);
}

// ---- Specs ---------------------------------------------------------------------------------

describe("switch: TLP_RX validation", () => {
  beforeEach(fresh);

  it("accepts a valid TLP_RX: EventsIn and TlpRx counted, the completion sent", () => {
    bootHost();
    const out = handle(tlpRxEvent(TlpRxReason.Config, 0, readRequest()));
    expect(typesOf(out)).toStrictEqual([Command.TlpTx]);
    expect(counters.get(Counter.EventsIn)).toBe(3, "TIME, BOOT and TLP_RX");
    expect(counters.get(Counter.TlpRx)).toBe(1);
    expect(counters.get(Counter.ConfigRequests)).toBe(1);
  });

  it("refuses bodies shorter than a 3DW header or longer than a 4DW header and one DW (BadLength)", () => {
    bootHost();
    const short = message(Event.TlpRx, TlpRxBody.MinSize - 1);
    set8(short, TlpRxBody.Reason, TlpRxReason.Config);
    expectRejected(short, MailboxError.BadLength, 0);
    const long = message(Event.TlpRx, TlpRxBody.MaxSize + 1);
    set8(long, TlpRxBody.Reason, TlpRxReason.Config);
    expectRejected(long, MailboxError.BadLength, 0);
  });

  it("is OutOfOrder before BOOT", () => {
    expectRejected(tlpRxEvent(TlpRxReason.Config, 0, readRequest()), MailboxError.OutOfOrder, 0);
  });

  it("is OutOfOrder on a chassis card, which has no switch", () => {
    bootAs(CardRole.Chassis);
    expectRejected(tlpRxEvent(TlpRxReason.Config, 0, readRequest()), MailboxError.OutOfOrder, 0);
    // Nor does the switch serve anything if called directly.
    tx.discard();
    vswitch.attach(0, CHASSIS, 2, 0b11);
    expect(sent().length).toBe(0, "no ports to bind on a chassis card");
  });

  it("checks Reserved2 before the other fields, detail the first non-zero byte", () => {
    bootHost();
    expectRejected(set8(tlpRxEvent(TlpRxReason.Config, 0, readRequest()), TlpRxBody.Reserved2 + 1, 1), MailboxError.Reserved, TlpRxBody.Reserved2 + 1);
    expectRejected(set16(tlpRxEvent(0, 0xfe, readRequest()), TlpRxBody.Reserved2, 0x0101), MailboxError.Reserved, TlpRxBody.Reserved2);
  });

  it("refuses Reason 0 and Reasons past the last (BadField Reason), before Port", () => {
    bootHost();
    expectRejected(tlpRxEvent(0, 0, readRequest()), MailboxError.BadField, TlpRxBody.Reason);
    expectRejected(tlpRxEvent(TLP_RX_REASON_LAST + 1, 0xfe, readRequest()), MailboxError.BadField, TlpRxBody.Reason);
    expectRejected(tlpRxEvent(0xff, 0, readRequest()), MailboxError.BadField, TlpRxBody.Reason);
  });

  it("refuses a Port past the switch's ports unless it is NO_PORT (BadField Port), before the TLP", () => {
    bootHost();
    expectRejected(tlpRxEvent(TlpRxReason.Unrouted, SWITCH_PORTS, readRequest()), MailboxError.BadField, TlpRxBody.Port);
    const tlp = readRequest();
    tlp[TlpHeader.FmtType] = 0xe0; // a prefix, which the Port check comes before
    expectRejected(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT - 1, tlp), MailboxError.BadField, TlpRxBody.Port);
    const out = handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, memRead(0x1000, ROOT_PORT, 1)));
    expect(typesOf(out)).toStrictEqual([Command.TlpTx], "NO_PORT is accepted");
  });

  it("refuses a TLP prefix or reserved Fmt (BadField Tlp)", () => {
    bootHost();
    for (let f = Fmt.Prefix; f <= 7; f++) {
      const tlp = readRequest();
      tlp[TlpHeader.FmtType] = ((f << 5) | TlpType.Cfg0) as u8;
      expectRejected(tlpRxEvent(TlpRxReason.Config, 0, tlp), MailboxError.BadField, TlpRxBody.Tlp);
    }
  });

  it("refuses a body whose length is not the header its Fmt names plus one DW when it has data (BadField Tlp)", () => {
    bootHost();
    const read3 = readRequest();
    expectRejected(tlpRxEvent(TlpRxReason.Config, 0, withData(read3, 0)), MailboxError.BadField, TlpRxBody.Tlp);
    const write3 = cfg(true, true, UPSTREAM_BUS, 0, 0, 0, 0xf, 0);
    expectRejected(tlpRxEvent(TlpRxReason.Config, 0, write3.slice(0, TlpHeader.Short)), MailboxError.BadField, TlpRxBody.Tlp);
    const read4 = memRead(0x1_0000_0000, ROOT_PORT, 1);
    expectRejected(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, read4.slice(0, TlpHeader.Short)), MailboxError.BadField, TlpRxBody.Tlp);
    const write4 = memWrite(0x1_0000_0000, ROOT_PORT, 5);
    expectRejected(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, write4.slice(0, TlpHeader.Long)), MailboxError.BadField, TlpRxBody.Tlp);
    // Length in the header may say more than the one DW carried: that is how TLP_RX works.
    const long = memWrite(0x2000, ROOT_PORT, 5);
    long[TlpHeader.LengthLow] = 16;
    const out = handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, long));
    expect(out.length).toBe(0, "a posted write of 16 DW, accepted and dropped");
    expect(counters.get(Counter.TlpRx)).toBe(1);
  });

  it("logs a TlpRejected fabric event as accepted, with nothing sent", () => {
    bootHost();
    const out = handle(fabricEvent(0, FabricEventKind.TlpRejected, 20));
    expect(out.length).toBe(0);
    expect(counters.get(Counter.FabricEvents)).toBe(1);
  });

  it("never traps on random TLP_RX bodies: each is accepted or refused, and what it sends is a well-formed TLP_TX or REG_WRITE", () => {
    bootHost();
    let state: u32 = 0x9e3779b9;
    for (let i = 0; i < 3000; i++) {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      // Most events plausible (valid fields, the length the Fmt implies), so that they reach the switch.
      const plausible = (state & 3) != 0;
      const fmt = (state >> 12) & 7;
      let length = TlpRxBody.MinSize - 1 + ((state % 11) as i32); // 15..25
      if (plausible && fmt <= (Fmt.Data4DW as u32)) length = TlpRxBody.Tlp + ((fmt & 1) != 0 ? 16 : 12) + ((fmt & 2) != 0 ? 4 : 0);
      const event = message(Event.TlpRx, length);
      let r = state;
      for (let j = 0; j < length; j++) {
        r = r * 1103515245 + 12345;
        set8(event, j, (r >> 16) & 0xff);
      }
      if (plausible) {
        set8(event, TlpRxBody.Reason, 1 + ((state >> 8) % 3));
        set8(event, TlpRxBody.Port, (state & 0x100) != 0 ? NO_PORT : (state >> 9) % SWITCH_PORTS);
        set16(event, TlpRxBody.Reserved2, 0);
        set8(event, TlpRxBody.Tlp, (fmt << 5) | ((state >> 15) & 0x1f));
      }
      const before = counters.get(Counter.EventsIn) + counters.get(Counter.Errors);
      const out = handle(event);
      expect(counters.get(Counter.EventsIn) + counters.get(Counter.Errors)).toBe(before + 1, "accepted or refused");
      for (let k = 0; k < out.length; k++) {
        if (out[k].type == Command.TlpTx) {
          const t = tlpTxOf(out[k]);
          const kind = t.type();
          expect(kind == TlpType.Cpl || kind == TlpType.CplLocked || kind == TlpType.Mem).toBe(true, "a completion or an MSI");
          expect(t.bytes.length).toBe(t.headerBytes() + ((t.fmt() & 2) != 0 ? 4 : 0), "size as the header says");
        } else if (out[k].type != Command.RegWrite) {
          expect(out[k].type).toBe(Command.Error, "nothing but TLP_TX, REG_WRITE or ERROR");
        }
      }
    }
    expect(counters.get(Counter.TlpRx)).toBeGreaterThan(500, "most reached the switch");
  });

  it("never traps when the switch is handed arbitrary bytes directly, whatever the length claimed", () => {
    bootHost();
    const buffer = memory.data(32);
    let state: u32 = 12345;
    for (let i = 0; i < 3000; i++) {
      for (let j = 0; j < 32; j += 4) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        store<u32>(buffer + j, state);
      }
      tx.discard();
      vswitch.onTlpRx(((state >> 3) & 3) as i32, ((state >> 5) % 12) as i32, buffer, ((state >> 9) % 21) as i32);
      const out = sent();
      for (let k = 0; k < out.length; k++) {
        expect(out[k].type == Command.TlpTx || out[k].type == Command.RegWrite).toBe(true, "only TLP_TX and REG_WRITE");
        if (out[k].type == Command.TlpTx) tlpTxOf(out[k]);
      }
    }
  });
});

describe("switch: configuration space", () => {
  beforeEach(bootHost);

  it("identifies the ports: vendor, device, revision, class PCI-to-PCI bridge, header type 1", () => {
    expect(readDw(0, Hdr.VendorId)).toBe(0x00011fff);
    for (let port = 1; port < SWITCH_PORTS; port++) expect(readDw(port, Hdr.VendorId)).toBe(0x00021fff);
    expect(readDw(3, Hdr.RevisionId)).toBe(0x06040001, "revision 1, class 06 04 00");
    expect((readDw(3, Hdr.CacheLineSize) >> 16) & 0xff).toBe(1, "Type 1 header, single function");
  });

  it("walks the capability list: 0x34 → PCI Express at 0x40 → MSI at 0x80 → end", () => {
    for (let port = 0; port < SWITCH_PORTS; port += SWITCH_DOWNSTREAM_PORTS) {
      expect((readDw(port, Hdr.Command) >> 16) & 0x10).toBe(0x10, "Status: Capabilities List");
      let at = readDw(port, Hdr.CapabilitiesPointer) & 0xfc;
      const ids = new Array<u32>();
      const offsets = new Array<i32>();
      while (at != 0 && ids.length < 8) {
        const head = readDw(port, at as i32);
        ids.push(head & 0xff);
        offsets.push(at as i32);
        at = (head >> 8) & 0xfc;
      }
      expect(ids).toStrictEqual([CapabilityId.Express as u32, CapabilityId.Msi as u32]);
      expect(offsets).toStrictEqual([0x40, 0x80]);
    }
  });

  it("says PCI Express version 2, Upstream Port for port 0, Downstream Port with a slot for 1..8", () => {
    expect(field16(0, EXP + Exp.Flags)).toBe(0x0052);
    for (let port = 1; port < SWITCH_PORTS; port++) expect(field16(port, EXP + Exp.Flags)).toBe(0x0162);
  });

  it("numbers ports and slots by switch port index: LnkCap Port Number and a unique Physical Slot Number", () => {
    expect(readDw(0, EXP + Exp.LnkCap) >> 24).toBe(0);
    for (let port = 1; port < SWITCH_PORTS; port++) {
      expect(readDw(port, EXP + Exp.LnkCap) >> 24).toBe(port as u32, "Port Number");
      expect(readDw(port, EXP + Exp.SltCap) >> 19).toBe(port as u32, "Physical Slot Number");
    }
  });

  it("reads 0 past the MSI capability and in the whole extended space, and ignores writes there", () => {
    for (let offset = 0x90; offset < 0x100; offset += 4) expect(readDw(2, offset)).toBe(0, hex(offset));
    const extended: i32[] = [0x100, 0x104, 0x400, 0xffc];
    for (let i = 0; i < extended.length; i++) {
      expect(readDw(0, extended[i])).toBe(0, "no extended capabilities: " + hex(extended[i]));
      writeDw(0, extended[i], 0xffffffff);
      writeDw(5, extended[i], 0xffffffff);
      expect(readDw(0, extended[i])).toBe(0);
      expect(readDw(5, extended[i])).toBe(0);
    }
    // A register number past 0x3f with Extended Register Number 0 still lands in the conventional space.
    expect(readDw(1, 0x0fc)).toBe(0);
  });

  it("every register of the upstream port, bit by bit", () => {
    checkEveryRegister(0);
  });

  it("every register of a downstream port, bit by bit (ports 1 and 8)", () => {
    checkEveryRegister(1);
    checkEveryRegister(SWITCH_DOWNSTREAM_PORTS);
  });

  it("the ports are independent: a write to one changes no other", () => {
    writeDw(4, Hdr1.PrimaryBus, 0x00050402);
    for (let port = 0; port < SWITCH_PORTS; port++) expect(readDw(port, Hdr1.PrimaryBus)).toBe(port == 4 ? 0x00050402 : 0, "port " + port.toString());
  });

  it("Command Completed is set by every Slot Control write, the same value too, and by no other write", () => {
    const cc: u32 = SltSta.CommandCompleted;
    writeDw(2, SLOT_DW, 0, CONTROL_LANES);
    expect(slotStatus(2) & cc).toBe(cc, "a write of the reset value");
    clearSlotEvents(2);
    expect(slotStatus(2) & cc).toBe(0, "cleared by writing 1");
    writeDw(2, SLOT_DW, SltCtl.PresenceDetectEnable, 0b0001);
    expect(slotStatus(2) & cc).toBe(cc, "a one-byte write");
    clearSlotEvents(2);
    writeDw(2, SLOT_DW, SltCtl.DlStateChangedEnable, 0b0010);
    expect(slotStatus(2) & cc).toBe(cc, "the other byte alone");
    clearSlotEvents(2);
    writeDw(2, SLOT_DW, SltCtl.DlStateChangedEnable, 0b0010);
    expect(slotStatus(2) & cc).toBe(cc, "the same value again");
    clearSlotEvents(2);
    writeDw(2, SLOT_DW, 0xffff0000, STATUS_LANES);
    expect(slotStatus(2) & cc).toBe(0, "a Slot Status write is not a command");
    writeDw(2, SLOT_DW, 0xffffffff, 0);
    expect(slotStatus(2) & cc).toBe(0, "no byte enabled, no command");
    writeDw(0, SLOT_DW, 0xffffffff);
    expect(readDw(0, SLOT_DW)).toBe(0, "the upstream port has no slot");
  });

  it("Presence Detect State and DL Link Active are read-only and follow the slot", () => {
    writeDw(3, SLOT_DW, SltSta.PresenceDetectState << 16, STATUS_LANES);
    writeDw(3, LINK_DW, LnkSta.DlActive << 16, STATUS_LANES);
    expect(slotStatus(3) & SltSta.PresenceDetectState).toBe(0);
    expect(linkStatus(3) & LnkSta.DlActive).toBe(0);
    attach(0, CHASSIS, 3);
    expect(slotStatus(3) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState);
    expect(linkStatus(3)).toBe(LnkSta.DlActive | (4 << 4) | 3, "DL Link Active, x4, Gen3");
    writeDw(3, SLOT_DW, 0, STATUS_LANES);
    writeDw(3, LINK_DW, 0, STATUS_LANES);
    expect(slotStatus(3) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState, "writing 0 does not clear it");
    expect(linkStatus(3) & LnkSta.DlActive).toBe(LnkSta.DlActive);
    detach(0);
    expect(slotStatus(3) & SltSta.PresenceDetectState).toBe(0);
    expect(linkStatus(3)).toBe(3, "link down: width 0, Gen3");
  });

  it("Link Disable and Secondary Bus Reset are stored and have no effect on the slot", () => {
    attach(0, CHASSIS, 1);
    const out = writeDw(1, LINK_DW, LnkCtl.LinkDisable | LnkCtl.RetrainLink, CONTROL_LANES);
    expect(typesOf(out)).toStrictEqual([Command.TlpTx], "no router write");
    expect(field16(1, LINK_DW)).toBe(LnkCtl.LinkDisable, "Link Disable stored, Retrain Link reads 0");
    writeDw(1, Hdr.InterruptLine, BridgeControl.SecondaryBusReset << 16, STATUS_LANES);
    expect(field16(1, Hdr1.BridgeControl)).toBe(BridgeControl.SecondaryBusReset);
    expect(vswitch.boundTunnel(1)).toBe(0, "still bound");
    expect(linkStatus(1) & LnkSta.DlActive).toBe(LnkSta.DlActive, "link still up");
  });
});

describe("switch: routing and completions", () => {
  beforeEach(bootHost);

  it("serves Type 0 requests as the upstream port, completer ID its bus and device from the request", () => {
    const out = handle(tlpRxEvent(TlpRxReason.Config, 0, cfg(true, false, 5, 3, 0, 0, 0xf, 0, 0x2a5)));
    expectCompletion(tlpTxOf(out[0]), true, CplStatus.SuccessfulCompletion, 0x0518, ROOT_PORT, 0x2a5);
    expect(tlpTxOf(out[0]).data()).toBe(0x00011fff);
    const write = handle(tlpRxEvent(TlpRxReason.Config, 0, cfg(true, true, UPSTREAM_BUS, 0, 0, Hdr1.PrimaryBus >> 2, 0xf, 0x00090201, 0x103)));
    expectCompletion(tlpTxOf(write[write.length - 1]), false, CplStatus.SuccessfulCompletion, UPSTREAM_ID, ROOT_PORT, 0x103);
    expect(counters.get(Counter.ConfigRequests)).toBe(2);
  });

  it("answers Type 0 requests to functions 1..7 with Unsupported Request from the upstream port", () => {
    const out = handle(tlpRxEvent(TlpRxReason.Config, 0, cfg(true, false, UPSTREAM_BUS, 0, 1, 0)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, UPSTREAM_ID, ROOT_PORT, 0x21);
    expect(counters.get(Counter.UnsupportedRequests)).toBe(1);
    expect(counters.get(Counter.ConfigRequests)).toBe(0);
  });

  it("serves Type 1 requests on the internal bus as downstream port Port, completer ID device Port - 1 on the secondary bus", () => {
    enumerateUpstream();
    for (let port = 1; port < SWITCH_PORTS; port++) {
      const out = handle(tlpRxEvent(TlpRxReason.Config, port, cfg(false, false, INTERNAL_BUS, (port - 1) as u32, 0, 0, 0xf, 0, port as u32)));
      expectCompletion(tlpTxOf(out[0]), true, CplStatus.SuccessfulCompletion, (INTERNAL_BUS << 8) | (((port - 1) as u32) << 3), ROOT_PORT, port as u32);
      expect(tlpTxOf(out[0]).data()).toBe(0x00021fff);
    }
  });

  it("answers Type 1 requests for NO_PORT, port 0 or a function other than 0 with Unsupported Request from the upstream port", () => {
    enumerateUpstream();
    let out = handle(tlpRxEvent(TlpRxReason.Config, NO_PORT, cfg(false, false, INTERNAL_BUS, 9, 0, 0)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, UPSTREAM_ID, ROOT_PORT, 0x21);
    out = handle(tlpRxEvent(TlpRxReason.Config, 2, cfg(false, true, INTERNAL_BUS, 1, 4, 0, 0xf, 0)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, UPSTREAM_ID, ROOT_PORT, 0x21);
    out = handle(tlpRxEvent(TlpRxReason.Config, 0, cfg(false, false, INTERNAL_BUS, 0, 0, 0)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, UPSTREAM_ID, ROOT_PORT, 0x21);
    expect(counters.get(Counter.UnsupportedRequests)).toBe(3);
  });

  it("completes unrouted non-posted requests with Unsupported Request from the claiming port, or the upstream port", () => {
    enumerateUpstream();
    let out = handle(tlpRxEvent(TlpRxReason.Unrouted, 4, memRead(0xe0100000, 0x0300, 0x3ff)));
    expect(out.length).toBe(1);
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, (INTERNAL_BUS << 8) | (3 << 3), 0x0300, 0x3ff);
    out = handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, memRead(0x40_0000_0000, 0x0300, 7)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, UPSTREAM_ID, 0x0300, 7);
    // A configuration request below a port that does not forward.
    out = handle(tlpRxEvent(TlpRxReason.Unrouted, 2, cfg(false, false, 4, 0, 0, 0)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, (INTERNAL_BUS << 8) | (1 << 3), ROOT_PORT, 0x21);
    // I/O requests: the switch has no I/O windows.
    const io = header(Fmt.NoData3DW, TlpType.Io, 1, ROOT_PORT, 9, 0xf);
    put32(io, TlpHeader.Address32, 0x0cf8);
    out = handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, io));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, UPSTREAM_ID, ROOT_PORT, 9);
    expect(counters.get(Counter.UnsupportedRequests)).toBe(4);
  });

  it("copies TC and attributes into an Unsupported Request completion, and answers a locked read with CplLk", () => {
    const read = memRead(0xe0000000, 0x0100, 0x155);
    read[TlpHeader.Flags] |= 0x50 | 0x04; // TC 5, ID-based ordering
    read[TlpHeader.LengthHigh] |= 0x30 | 0x80; // relaxed ordering, no snoop; TD (not copied)
    const cpl = tlpTxOf(handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, read))[0]);
    expect(cpl.byte(TlpHeader.Flags)).toBe(0x50 | 0x04 | 0x08, "TC, Attr[2] and T8 of tag 0x155");
    expect(cpl.byte(TlpHeader.LengthHigh)).toBe(0x30, "Attr[1:0]; no digest, Length 0");
    expect(cpl.cplTag()).toBe(0x155);
    const locked = tlpTxOf(handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, memRead(0xe0000000, 0x0100, 3, true)))[0]);
    expect(locked.type()).toBe(TlpType.CplLocked, "CplLk");
    expect(locked.fmt()).toBe(Fmt.NoData3DW);
    expect(locked.status()).toBe(CplStatus.UnsupportedRequest);
  });

  it("configuration completions carry TC 0 and no attributes, whatever the request says", () => {
    const request = cfg(true, false, UPSTREAM_BUS, 0, 0, 0);
    request[TlpHeader.Flags] |= 0x70;
    request[TlpHeader.LengthHigh] |= 0x30;
    const cpl = tlpTxOf(handle(tlpRxEvent(TlpRxReason.Config, 0, request))[0]);
    expect(cpl.byte(TlpHeader.Flags)).toBe(0);
    expect(cpl.byte(TlpHeader.LengthHigh)).toBe(0);
  });

  it("drops unrouted posted requests (memory writes, messages) and counts them", () => {
    expect(handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, memWrite(0xe0000000, 0x0100, 1))).length).toBe(0);
    expect(handle(tlpRxEvent(TlpRxReason.Unrouted, 3, memWrite(0x40_0000_0000, 0x0100, 1))).length).toBe(0);
    const msg = header(Fmt.NoData4DW, TlpType.Msg | 0b100, 0, ROOT_PORT, 0, 0x7f);
    expect(handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, msg)).length).toBe(0);
    expect(counters.get(Counter.UnsupportedRequests)).toBe(3);
  });

  it("answers what it cannot serve under the Config reason with Unsupported Request when non-posted, and drops it otherwise", () => {
    let out = handle(tlpRxEvent(TlpRxReason.Config, 0, memRead(0xe0000000, 0x0100, 2)));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, 0, 0x0100, 2);
    const msgd = header(Fmt.Data4DW, TlpType.Msg, 1, ROOT_PORT, 0, 0x7e);
    out = handle(tlpRxEvent(TlpRxReason.Config, 0, withData(msgd, 0)));
    expect(out.length).toBe(0, "a message is posted");
    // Configuration requests in the 4DW format are reserved: not served, answered UR.
    const cfg4 = header(Fmt.NoData4DW, TlpType.Cfg0, 1, ROOT_PORT, 4, 0xf);
    cfg4[TlpHeader.Bus] = UPSTREAM_BUS as u8;
    out = handle(tlpRxEvent(TlpRxReason.Config, 0, cfg4));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, 0, ROOT_PORT, 4);
    expect(counters.get(Counter.ConfigRequests)).toBe(0);
  });

  it("answers AtomicOps (non-posted with data) with Unsupported Request", () => {
    const fetchAdd = header(Fmt.Data3DW, 0b01100, 1, 0x0100, 6, 0xf);
    put32(fetchAdd, TlpHeader.Address32, 0xe0000000);
    withData(fetchAdd, 1);
    const out = handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, fetchAdd));
    expectCompletion(tlpTxOf(out[0]), false, CplStatus.UnsupportedRequest, 0, 0x0100, 6);
  });

  it("counts and drops a completion handed to it", () => {
    const cpl = header(Fmt.Data3DW, TlpType.Cpl, 1, 0x0300, 0, 0);
    expect(handle(tlpRxEvent(TlpRxReason.Unrouted, NO_PORT, withData(cpl, 0))).length).toBe(0);
    expect(handle(tlpRxEvent(TlpRxReason.Config, 2, header(Fmt.NoData3DW, TlpType.CplLocked, 0, 0x0300, 0, 0))).length).toBe(0);
    expect(counters.get(Counter.UnsupportedRequests)).toBe(2);
  });
});

describe("switch: router registers", () => {
  beforeEach(bootHost);

  it("mirrors Command, bus numbers and windows into the port's router block before the completion", () => {
    const cases: i32[] = [Hdr1.PrimaryBus, Hdr1.MemoryBase, Hdr1.PrefetchableBase, Hdr1.PrefetchableBaseUpper, Hdr1.PrefetchableLimitUpper];
    const regs: i32[] = [SwitchReg.Buses, SwitchReg.MemoryWindow, SwitchReg.PrefetchWindow, SwitchReg.PrefetchBaseUpper, SwitchReg.PrefetchLimitUpper];
    const values: u32[] = [0x00050403, 0xe0f0e000, 0x0001fff1, 0x00000040, 0x00000041];
    const expected: u32[] = [0x00050403, 0xe0f0e000, 0x0001fff1, 0x00000040, 0x00000041];
    for (let port = 0; port < SWITCH_PORTS; port += 3) {
      for (let i = 0; i < cases.length; i++) {
        const out = writeDw(port, cases[i], values[i]);
        expect(typesOf(out)).toStrictEqual([Command.RegWrite, Command.TlpTx], "REG_WRITE, then the completion");
        const write = regWriteOf(out[0]);
        expect(write.address).toBe(routerAddress(port, regs[i]), "port " + port.toString() + " " + hex(cases[i]));
        expect(write.value).toBe(expected[i], "the configuration DW as it reads");
        expect(write.value).toBe(readDw(port, cases[i]));
      }
    }
  });

  it("mirrors the RW result, not the written value", () => {
    const out = writeDw(2, Hdr1.MemoryBase, 0xffffffff);
    expect(regWriteOf(out[0]).value).toBe(0xfff0fff0);
    const prefetch = writeDw(2, Hdr1.PrefetchableBase, 0);
    expect(regWriteOf(prefetch[0]).value).toBe(0x00010001, "the 64-bit capability nibbles stay");
  });

  it("Control: MemoryEnable and BusMaster from Command, Forward only while the port is bound", () => {
    let out = writeDw(0, Hdr.Command, PciCommand.Memory | PciCommand.BusMaster, CONTROL_LANES);
    expect(typesOf(out)).toStrictEqual([Command.RegWrite, Command.TlpTx]);
    expect(regWriteOf(out[0]).address).toBe(routerAddress(0, SwitchReg.Control));
    expect(regWriteOf(out[0]).value).toBe(SwitchControl.MemoryEnable | SwitchControl.BusMaster);
    out = writeDw(3, Hdr.Command, PciCommand.Memory, CONTROL_LANES);
    expect(routerWrites(out, 3, SwitchReg.Control)).toStrictEqual([SwitchControl.MemoryEnable as u32], "unbound: no Forward");
    attach(1, CHASSIS, 3);
    out = writeDw(3, Hdr.Command, PciCommand.Memory | PciCommand.BusMaster, CONTROL_LANES);
    expect(routerWrites(out, 3, SwitchReg.Control)).toStrictEqual([(SwitchControl.Forward | SwitchControl.MemoryEnable | SwitchControl.BusMaster) as u32]);
    out = writeDw(3, Hdr.Command, 0, CONTROL_LANES);
    expect(routerWrites(out, 3, SwitchReg.Control)).toStrictEqual([SwitchControl.Forward as u32], "bound, Command off");
  });

  it("ConfigReady: written on the upstream port in the BOOT batch, once per boot; never on a chassis card", () => {
    for (let role = CardRole.Host; role <= CardRole.Chassis; role++) {
      fresh();
      const out = handle(timeEvent(T0).concat(set8(bootEvent(), BootBody.Role, role)));
      const readies = routerWrites(out, 0, SwitchReg.Control);
      if (role == CardRole.Host) expect(readies).toStrictEqual([SwitchControl.ConfigReady as u32], "the host card serves configuration from BOOT on");
      else expect(readies.length).toBe(0, "a chassis card has no switch");
      tx.discard();
      vswitch.setReady(true);
      expect(sent().length).toBe(0, "once: the router keeps it until the card resets");
    }
  });

  it("writes no router register for a Status-only write, a write with no byte enabled, or any other register", () => {
    expect(typesOf(writeDw(1, Hdr.Command, 0xffff0000, STATUS_LANES))).toStrictEqual([Command.TlpTx]);
    expect(typesOf(writeDw(1, Hdr1.PrimaryBus, 0xffffffff, 0))).toStrictEqual([Command.TlpTx]);
    const others: i32[] = [Hdr.VendorId, Hdr.CacheLineSize, Hdr1.IoBase, Hdr.InterruptLine, EXP + Exp.DevCtl, SLOT_DW, MSI];
    for (let i = 0; i < others.length; i++) expect(typesOf(writeDw(1, others[i], 0))).toStrictEqual([Command.TlpTx], hex(others[i]));
  });
});

describe("switch: hot-plug", () => {
  beforeEach(bootHost);

  it("attach binds one downstream port per chassis slot: Binding, then Control with Forward, then presence", () => {
    const out = attach(2, CHASSIS, 3);
    expect(typesOf(out)).toStrictEqual([Command.RegWrite, Command.RegWrite, Command.RegWrite, Command.RegWrite, Command.RegWrite, Command.RegWrite]);
    for (let slot = 0; slot < 3; slot++) {
      const port = slot + 1;
      expect(regWriteOf(out[2 * slot]).address).toBe(routerAddress(port, SwitchReg.Binding));
      expect(regWriteOf(out[2 * slot]).value).toBe(2 | ((slot as u32) << 8), "tunnel | slot << 8");
      expect(regWriteOf(out[2 * slot + 1]).address).toBe(routerAddress(port, SwitchReg.Control));
      expect(regWriteOf(out[2 * slot + 1]).value).toBe(SwitchControl.Forward);
      expect(vswitch.boundTunnel(port)).toBe(2);
      expect(slotStatus(port)).toBe(SltSta.PresenceDetectState | SltSta.PresenceDetectChanged | SltSta.DlStateChanged);
      expect(linkStatus(port) & LnkSta.DlActive).toBe(LnkSta.DlActive);
    }
    expect(vswitch.boundTunnel(4)).toBe(-1);
    expect(slotStatus(4)).toBe(0, "an empty slot: no presence, no events");
    expect(counters.get(Counter.HotplugEvents)).toBe(3);
  });

  it("an empty chassis slot gets its port, forwarding, but no presence, no event and no MSI; detach raises nothing for it", () => {
    for (let port = 1; port <= 3; port++) armInterrupts(port, HOTPLUG_ENABLES);
    const out = attach(0, CHASSIS, 3, 0b101);
    expect(vswitch.boundTunnel(2)).toBe(0, "slot 1 is bound");
    expect(routerWrites(out, 2, SwitchReg.Control)).toStrictEqual([(SwitchControl.Forward | SwitchControl.MemoryEnable | SwitchControl.BusMaster) as u32]);
    expect(slotStatus(2)).toBe(0, "slot 1 is empty: no presence, no change events");
    expect(linkStatus(2) & LnkSta.DlActive).toBe(0);
    expect(slotStatus(1) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState);
    expect(slotStatus(3) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState);
    expect(typesOf(out).filter((t) => t == Command.TlpTx).length).toBe(2, "one MSI per occupied slot");
    expect(counters.get(Counter.HotplugEvents)).toBe(2);
    clearSlotEvents(1);
    clearSlotEvents(3);
    detach(0);
    expect(slotStatus(2)).toBe(0, "nothing to remove in the empty slot");
    expect(counters.get(Counter.HotplugEvents)).toBe(4);
  });

  it("detach clears Forward of every port first, then presence and DL Link Active go, with both change events, a port per Slots timer", () => {
    attach(0, CHASSIS, 2);
    clearSlotEvents(1);
    clearSlotEvents(2);
    armInterrupts(1, HOTPLUG_ENABLES);
    const out = detach(0);
    expect(typesOf(out)).toStrictEqual([Command.RegWrite, Command.RegWrite, Command.TlpTx], "Control (port 1), Control (port 2), then port 1's MSI");
    expect(regWriteOf(out[0]).address).toBe(routerAddress(1, SwitchReg.Control));
    expect(regWriteOf(out[0]).value).toBe(SwitchControl.MemoryEnable | SwitchControl.BusMaster, "Forward cleared, Command kept");
    expect(regWriteOf(out[1]).address).toBe(routerAddress(2, SwitchReg.Control));
    expect(regWriteOf(out[1]).value).toBe(0);
    for (let port = 1; port <= 2; port++) {
      expect(slotStatus(port)).toBe(SltSta.PresenceDetectChanged | SltSta.DlStateChanged, "removed: events, no presence");
      expect(linkStatus(port)).toBe(3, "DL Link Active clear, width 0");
      expect(vswitch.boundTunnel(port)).toBe(-1);
    }
    expect(counters.get(Counter.HotplugEvents)).toBe(4);
    expect(detach(0).length).toBe(0, "nothing left to detach");
  });

  it("binds a tunnel's slots one per Slots timer, each with its insertion; detach drops the slots not bound yet", () => {
    tx.discard();
    vswitch.attach(0, CHASSIS, 3, 0xff);
    expect(counters.get(Counter.HotplugEvents)).toBe(0, "attach only queues the bindings");
    expect(vswitch.boundTunnel(1)).toBe(-1);
    expect(timers.isRunning(TimerId.Slots)).toBe(true, "the Slots timer runs");
    vswitch.onSlotsTimer();
    expect(counters.get(Counter.HotplugEvents)).toBe(1, "one per firing");
    expect(slotStatus(1) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState, "port 1 first");
    expect(slotStatus(2)).toBe(0);
    vswitch.detach(0);
    raiseSlotEvents();
    expect(counters.get(Counter.HotplugEvents)).toBe(2, "port 1 removed; ports 2 and 3 were never bound, so nothing to remove");
    expect(vswitch.boundTunnel(2)).toBe(-1);
    expect(slotStatus(2)).toBe(0);
    expect(timers.isRunning(TimerId.Slots)).toBe(false);
  });

  it("a removal still queued when its port is bound again is raised first, then the new binding and insertion", () => {
    attach(0, CHASSIS, 1);
    tx.discard();
    vswitch.detach(0);
    vswitch.attach(1, CHASSIS, 1, 0xff);
    expect(counters.get(Counter.HotplugEvents)).toBe(1, "attach only queues the binding");
    vswitch.onSlotsTimer();
    expect(counters.get(Counter.HotplugEvents)).toBe(2, "the removal first");
    expect(slotStatus(1) & SltSta.PresenceDetectState).toBe(0, "removed");
    expect(vswitch.boundTunnel(1)).toBe(-1, "not bound again yet");
    raiseSlotEvents();
    expect(counters.get(Counter.HotplugEvents)).toBe(3, "then the new insertion");
    expect(vswitch.boundTunnel(1)).toBe(1);
    expect(slotStatus(1) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState);
  });

  it("gives a chassis that comes back the same ports for the same slots", () => {
    attach(0, CHASSIS, 2);
    attach(1, OTHER_CHASSIS, 2);
    detach(0);
    detach(1);
    attach(3, OTHER_CHASSIS, 2);
    expect(vswitch.boundTunnel(3)).toBe(3, "ports 3 and 4 again");
    expect(vswitch.boundTunnel(4)).toBe(3);
    attach(5, CHASSIS, 3);
    expect(vswitch.boundTunnel(1)).toBe(5, "slot 0 on port 1 again");
    expect(vswitch.boundTunnel(2)).toBe(5, "slot 1 on port 2 again");
    expect(vswitch.boundTunnel(5)).toBe(5, "the new slot 2 on a port never bound");
    const out = attach(6, 0x20000009, 1);
    expect(regWriteOf(out[0]).address).toBe(routerAddress(6, SwitchReg.Binding), "the lowest port never bound");
  });

  it("once every port was used, a new chassis takes the lowest free ports", () => {
    attach(0, CHASSIS, 8);
    detach(0);
    attach(1, OTHER_CHASSIS, 2);
    expect(vswitch.boundTunnel(1)).toBe(1);
    expect(vswitch.boundTunnel(2)).toBe(1);
    expect(vswitch.boundTunnel(3)).toBe(-1);
  });

  it("two tunnels get distinct ports, and one going down leaves the other's alone", () => {
    attach(0, CHASSIS, 2);
    attach(1, OTHER_CHASSIS, 2);
    expect(vswitch.boundTunnel(1)).toBe(0);
    expect(vswitch.boundTunnel(2)).toBe(0);
    expect(vswitch.boundTunnel(3)).toBe(1);
    expect(vswitch.boundTunnel(4)).toBe(1);
    const out = detach(1);
    expect(routerWrites(out, 3, SwitchReg.Control).length).toBe(1);
    expect(routerWrites(out, 1, SwitchReg.Control).length).toBe(0);
    expect(vswitch.boundTunnel(1)).toBe(0);
    expect(slotStatus(1) & SltSta.PresenceDetectState).toBe(SltSta.PresenceDetectState);
  });

  it("binds no more slots than there are free ports", () => {
    attach(0, CHASSIS, 6);
    const out = attach(1, OTHER_CHASSIS, 4);
    expect(out.length).toBe(4, "two slots bound, two left out");
    expect(vswitch.boundTunnel(8)).toBe(1);
    expect(counters.get(Counter.HotplugEvents)).toBe(8);
  });

  it("attach on a tunnel that is still attached ends the old binding first", () => {
    attach(0, CHASSIS, 1);
    const out = attach(0, OTHER_CHASSIS, 1);
    expect(routerWrites(out, 1, SwitchReg.Control)).toStrictEqual([0 as u32], "port 1 stops forwarding");
    expect(vswitch.boundTunnel(1)).toBe(-1);
    expect(vswitch.boundTunnel(2)).toBe(0, "the new chassis on a port never bound");
  });

  it("sends one MSI on an enabled event: the message data to the message address, from the port's ID", () => {
    enumerateUpstream();
    armInterrupts(2, HOTPLUG_ENABLES);
    attach(0, CHASSIS, 1); // port 1, no interrupts armed there
    const out = attach(1, OTHER_CHASSIS, 1); // port 2
    const list = msis(out);
    expect(list.length).toBe(1);
    const msi = list[0];
    expect(msi.fmt()).toBe(Fmt.Data3DW, "32-bit address: 3DW");
    expect(msi.lengthField()).toBe(1);
    expect(msi.requester()).toBe((INTERNAL_BUS << 8) | (1 << 3), "02:01.0");
    expect(msi.byteEnables()).toBe(0x0f, "First DW BE 1111, Last DW BE 0000");
    expect(msi.address()).toBe(MSI_ADDRESS as u64);
    expect(msi.data()).toBe(MSI_DATA, "the 16-bit data, zero-extended");
    expect(msi.byte(TlpHeader.Flags)).toBe(0, "TC 0");
    expect(msi.bytes.length).toBe(16);
    expect(typesOf(out)[out.length - 1]).toBe(Command.TlpTx, "after the router writes");
    expect(counters.get(Counter.MsiSent)).toBe(1);
  });

  it("uses a 4DW memory write when the MSI address has an upper half", () => {
    armInterrupts(1, HOTPLUG_ENABLES, 0x12);
    const msi = msis(attach(0, CHASSIS, 1));
    expect(msi.length).toBe(1);
    expect(msi[0].fmt()).toBe(Fmt.Data4DW);
    expect(msi[0].address()).toBe(((0x12 as u64) << 32) | (MSI_ADDRESS as u64));
    expect(msi[0].bytes.length).toBe(20);
  });

  it("MSI is edge-triggered: none while the condition stays true, another once it was cleared and an event comes", () => {
    armInterrupts(1, HOTPLUG_ENABLES | SltCtl.CommandCompletedEnable); // its own Command Completed interrupted, then cleared
    const base = counters.get(Counter.MsiSent);
    expect(msis(attach(0, CHASSIS, 1)).length).toBe(1, "insertion");
    expect(msis(writeDw(1, SLOT_DW, HOTPLUG_ENABLES | SltCtl.CommandCompletedEnable, CONTROL_LANES)).length).toBe(0, "Command Completed while pending: no MSI");
    expect(msis(detach(0)).length).toBe(0, "removal while still pending: no MSI");
    // Software clears one event at a time: still pending until the last is clear.
    expect(msis(writeDw(1, SLOT_DW, SltSta.PresenceDetectChanged << 16, STATUS_LANES)).length).toBe(0);
    expect(msis(writeDw(1, SLOT_DW, SltSta.DlStateChanged << 16, STATUS_LANES)).length).toBe(0);
    expect(msis(writeDw(1, SLOT_DW, SltSta.CommandCompleted << 16, STATUS_LANES)).length).toBe(0, "now clear");
    expect(msis(attach(0, CHASSIS, 1)).length).toBe(1, "the next event interrupts again");
    expect(counters.get(Counter.MsiSent) - base).toBe(2);
  });

  it("Command Completed interrupts when enabled, on each Slot Control write once cleared", () => {
    armInterrupts(4, SltCtl.CommandCompletedEnable | SltCtl.HotPlugInterruptEnable);
    const enables: u32 = SltCtl.CommandCompletedEnable | SltCtl.HotPlugInterruptEnable;
    const out = writeDw(4, SLOT_DW, enables, CONTROL_LANES);
    expect(typesOf(out)).toStrictEqual([Command.TlpTx, Command.TlpTx], "the completion, then the MSI");
    expect(tlpTxOf(out[0]).type()).toBe(TlpType.Cpl);
    expect(msis(out).length).toBe(1);
    clearSlotEvents(4);
    expect(msis(writeDw(4, SLOT_DW, enables, CONTROL_LANES)).length).toBe(1, "the same value again");
  });

  it("sends no MSI without Hot-Plug Interrupt Enable, MSI Enable, Bus Master or the event's enable", () => {
    armInterrupts(1, SltCtl.PresenceDetectEnable | SltCtl.DlStateChangedEnable);
    expect(msis(attach(0, CHASSIS, 1)).length).toBe(0, "HPIE off");
    detach(0);
    clearSlotEvents(1);
    armInterrupts(1, HOTPLUG_ENABLES);
    writeDw(1, MSI, 0, STATUS_LANES);
    expect(msis(attach(0, CHASSIS, 1)).length).toBe(0, "MSI disabled");
    detach(0);
    clearSlotEvents(1);
    armInterrupts(1, HOTPLUG_ENABLES);
    writeDw(1, Hdr.Command, PciCommand.Memory, CONTROL_LANES);
    expect(msis(attach(0, CHASSIS, 1)).length).toBe(0, "Bus Master off");
    detach(0);
    clearSlotEvents(1);
    armInterrupts(1, SltCtl.HotPlugInterruptEnable);
    expect(msis(attach(0, CHASSIS, 1)).length).toBe(0, "presence and link events not enabled");
    expect(counters.get(Counter.MsiSent)).toBe(0);
  });

  it("an MSI is owed when an enable arrives while its event is pending: HPIE, MSI Enable or Bus Master", () => {
    armInterrupts(1, SltCtl.PresenceDetectEnable);
    attach(0, CHASSIS, 1);
    expect(msis(writeDw(1, SLOT_DW, SltCtl.PresenceDetectEnable | SltCtl.HotPlugInterruptEnable, CONTROL_LANES)).length).toBe(1, "HPIE set");
    writeDw(1, MSI, 0, STATUS_LANES);
    expect(msis(writeDw(1, MSI, MsiCtrl.Enable << 16, STATUS_LANES)).length).toBe(1, "MSI enabled again");
    writeDw(1, Hdr.Command, 0, CONTROL_LANES);
    expect(msis(writeDw(1, Hdr.Command, PciCommand.BusMaster, CONTROL_LANES)).length).toBe(1, "Bus Master set again");
  });

  it("logs, counts and raises nothing on the upstream port", () => {
    writeDw(0, SLOT_DW, 0xffffffff);
    writeDw(0, MSI, 0xffffffff);
    writeDw(0, Hdr.Command, 0xffffffff);
    expect(counters.get(Counter.MsiSent)).toBe(0);
    expect(counters.get(Counter.HotplugEvents)).toBe(0);
  });
});

// ---- A restart of the firmware (assembly/retain.ts) -------------------------------------------

/** The retained RAM as the card keeps it: what every RETAIN so far wrote. */
const ram = new Array<u8>(RETAIN_BYTES);
let ramBytes: i32 = 0;

/** Ends a batch (what SYNC does): the RETAINs it writes go into `ram`. */
function keepRetained(): void {
  tx.discard();
  retain.flush();
  const out = sent();
  for (let i = 0; i < out.length; i++) {
    if (out[i].type != Command.Retain) continue;
    const offset = out[i].u16(RetainBody.Offset);
    const bytes = out[i].length - RetainBody.Data;
    for (let b = 0; b < bytes; b++) ram[offset + b] = out[i].u8(RetainBody.Data + b) as u8;
    ramBytes = max(ramBytes, offset + bytes);
  }
}

/** A reset of the soft-core: BOOT (reset Software) announcing `ram`, then RETAINED events with it; returns what the firmware sent. */
function restart(): Sent[] {
  fresh();
  let events = timeEvent(T0 + 1_000_000).concat(set16(set8(bootEvent(), BootBody.ResetCause, ResetCause.Software), BootBody.Retained, ramBytes));
  for (let at = 0; at < ramBytes; at += RETAIN_CHUNK) {
    const bytes = min(RETAIN_CHUNK, ramBytes - at);
    const chunk = set16(message(Event.Retained, RetainBody.Data + bytes), RetainBody.Offset, at);
    for (let b = 0; b < bytes; b++) set8(chunk, RetainBody.Data + b, ram[at + b]);
    events = events.concat(chunk);
  }
  return handle(events);
}

/** A host card the server has enumerated: buses, windows and commands on the upstream port and port 1, a chassis card bound to port 1. */
function enumerated(): void {
  bootHost();
  ramBytes = 0;
  ram.fill(0);
  writeDw(0, Hdr1.PrimaryBus, 0x00_02_02_01);
  writeDw(0, Hdr.Command, PciCommand.Memory | PciCommand.BusMaster);
  writeDw(1, Hdr1.PrimaryBus, 0x00_03_03_02);
  writeDw(1, Hdr1.MemoryBase, 0xe000_e000);
  writeDw(1, Hdr.Command, PciCommand.Memory | PciCommand.BusMaster);
  attach(0, CHASSIS, 1);
  keepRetained();
}

/** `bytes` (one RETAINED) gets only an ERROR with `code` and `detail`. */
function expectRetainedRejected(bytes: u8[], code: i32, detail: u32): void {
  const out = handle(bytes);
  expect(out.length).toBe(1, "only an ERROR");
  expect(out[0].type).toBe(Command.Error);
  expect(out[0].u8(ErrorBody.Code)).toBe(code, "error code");
  expect(out[0].u8(ErrorBody.MessageType)).toBe(Event.Retained, "offending type");
  expect(out[0].u32(ErrorBody.Detail)).toBe(detail, "detail");
}

describe("switch: a restart of the firmware", () => {
  it("adopts what the server set up: configuration space, bindings and hot-plug state, and writes the router registers again from them", () => {
    enumerated();
    const before = slotStatus(1);
    const out = restart();
    expect(readDw(1, Hdr1.PrimaryBus)).toBe(0x00_03_03_02, "port 1's buses");
    expect(readDw(0, Hdr1.PrimaryBus)).toBe(0x00_02_02_01, "the upstream port's buses");
    expect(slotStatus(1)).toBe(before, "presence and the events the server has not cleared");
    expect(vswitch.boundTunnel(1)).toBe(0, "port 1 still bound to tunnel 0");
    expect(vswitch.chassisOf(1)).toBe(CHASSIS);
    expect(routerWrites(out, 0, SwitchReg.Control)).toStrictEqual([(SwitchControl.ConfigReady | SwitchControl.MemoryEnable | SwitchControl.BusMaster) as u32]);
    expect(routerWrites(out, 1, SwitchReg.Control)).toStrictEqual([(SwitchControl.Forward | SwitchControl.MemoryEnable | SwitchControl.BusMaster) as u32]);
    expect(routerWrites(out, 1, SwitchReg.Buses)).toStrictEqual([0x00_03_03_02 as u32]);
    expect(routerWrites(out, 1, SwitchReg.MemoryWindow)).toStrictEqual([0xe000_e000 as u32]);
    expect(routerWrites(out, 1, SwitchReg.Binding)).toStrictEqual([0 as u32], "tunnel 0, chassis slot 0");
  });

  it("answers configuration requests only once the retained state is in: ConfigReady waits for the last RETAINED", () => {
    enumerated();
    fresh();
    const out = handle(timeEvent(T0 + 1_000_000).concat(set16(set8(bootEvent(), BootBody.ResetCause, ResetCause.Software), BootBody.Retained, ramBytes)));
    expect(routerWrites(out, 0, SwitchReg.Control).length).toBe(0, "no router register written before the state is adopted");
  });

  it("does not adopt a retained state of another layout: the switch starts from reset", () => {
    enumerated();
    ram[4] = ram[4] + 1; // the layout word
    const out = restart();
    expect(vswitch.boundTunnel(1)).toBe(-1);
    expect(readDw(1, Hdr1.PrimaryBus)).toBe(0, "reset values");
    expect(routerWrites(out, 1, SwitchReg.Buses)).toStrictEqual([0 as u32], "the router follows the reset configuration space");
  });

  it("checks RETAINED: only after a BOOT that announced it, the next bytes in order, no reserved bits", () => {
    bootHost();
    expectRetainedRejected(set16(message(Event.Retained, RetainBody.Data + 4), RetainBody.Offset, 0), MailboxError.OutOfOrder, 0);
    fresh();
    handle(timeEvent(T0).concat(set16(set8(bootEvent(), BootBody.ResetCause, ResetCause.Software), BootBody.Retained, 8)));
    expectRetainedRejected(set16(message(Event.Retained, RetainBody.Data + 4), RetainBody.Offset, 4), MailboxError.BadField, RetainBody.Offset);
    expectRetainedRejected(set16(message(Event.Retained, RetainBody.Data + 9), RetainBody.Offset, 0), MailboxError.BadField, RetainBody.Offset);
    expectRetainedRejected(set8(message(Event.Retained, RetainBody.Data + 4), RetainBody.Reserved2 + 1, 1), MailboxError.Reserved, RetainBody.Reserved2 + 1);
  });
});
