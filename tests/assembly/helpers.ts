// Shared by the firmware specs: building message bytes (events to feed rx, or the exact
// bytes a command should have), delivering them to rx, and reading back the commands
// buffered by tx and the firmware's log history. Layouts come from board/map/mailbox.ts,
// never from literal offsets.

import * as rx from "../../assembly/abi/rx";
import * as tx from "../../assembly/abi/tx";
import * as log from "../../assembly/log";
import * as firmware from "../../assembly/firmware";
import { boardAnswers } from "./support/engine";
import { Text } from "../../assembly/text";
import {
  MAILBOX_VERSION, HEADER_SIZE, Header, Event, BootBody, TimeBody, SyncBody, TimerFiredBody,
  CardRole, ResetCause, LogLevel, ConfigBody, RegValueBody, FabricEventBody, FrameRxBody, NO_TUNNEL,
  TlpRxBody, Command, RegWriteBody, TlpTxBody, UartRxBody, UartTxBody, FlashDoneBody,
} from "../../board/map/mailbox";
import { TlpHeader } from "../../board/map/pcie";
import { TunnelDefault } from "../../board/map/registers";
import { AckPolicy, LinkTiming, LINK_PROTOCOL_MAX, PAIRING_KEY_SIZE, ADMIN_KEY_SIZE } from "../../board/map/link";

// ---- Building messages -------------------------------------------------------------

/** A whole message: the header for `bodySize` bytes of `type`, then a zeroed body. */
export function message(type: i32, bodySize: i32, flags: i32 = 0): u8[] {
  const bytes = new Array<u8>(HEADER_SIZE + bodySize);
  setLE(bytes, Header.BodyLength, bodySize, 2);
  bytes[Header.Type] = type as u8;
  bytes[Header.Flags] = flags as u8;
  return bytes;
}

function setLE(bytes: u8[], at: i32, value: u64, size: i32): void {
  for (let i = 0; i < size; i++) bytes[at + i] = (value >> (8 * i)) as u8;
}

// Store a little-endian field at a body offset of a message built by message(); each
// returns the message so that fields can be chained.
export function set8(msg: u8[], offset: i32, value: u32): u8[] {
  setLE(msg, HEADER_SIZE + offset, value, 1);
  return msg;
}

export function set16(msg: u8[], offset: i32, value: u32): u8[] {
  setLE(msg, HEADER_SIZE + offset, value, 2);
  return msg;
}

export function set32(msg: u8[], offset: i32, value: u32): u8[] {
  setLE(msg, HEADER_SIZE + offset, value, 4);
  return msg;
}

export function set64(msg: u8[], offset: i32, value: u64): u8[] {
  setLE(msg, HEADER_SIZE + offset, value, 8);
  return msg;
}

/** Copies `bytes` into a message built by message(), from body offset `offset`. */
export function setBytes(msg: u8[], offset: i32, bytes: u8[]): u8[] {
  for (let i = 0; i < bytes.length; i++) msg[HEADER_SIZE + offset + i] = bytes[i];
  return msg;
}

export function typeOf(msg: u8[]): i32 {
  return msg[Header.Type];
}

export function bodyLengthOf(msg: u8[]): i32 {
  return (msg[Header.BodyLength] as i32) | ((msg[Header.BodyLength + 1] as i32) << 8);
}

// ---- Events ------------------------------------------------------------------------

/** A valid BOOT: mailbox v1, host card, power-on reset, log level Info, one port. */
export function bootEvent(): u8[] {
  const msg = message(Event.Boot, BootBody.Size);
  set16(msg, BootBody.MailboxVersion, MAILBOX_VERSION);
  set8(msg, BootBody.Role, CardRole.Host);
  set8(msg, BootBody.ResetCause, ResetCause.PowerOn);
  set32(msg, BootBody.BoardId, 0x10f00a01);
  set32(msg, BootBody.Serial, 0x10000001);
  set8(msg, BootBody.LogLevel, LogLevel.Info);
  set8(msg, BootBody.Slots, 1);
  const mac: u8[] = [2, 0x10, 0x10, 0, 0, 1];
  for (let i = 0; i < mac.length; i++) set8(msg, BootBody.Mac + i, mac[i]);
  set8(msg, BootBody.Carrier, 1); // one cable, in Ethernet port 0
  return msg;
}

export function timeEvent(now: u64): u8[] {
  return set64(message(Event.Time, TimeBody.Size), TimeBody.Now, now);
}

export function syncEvent(seq: u32): u8[] {
  return set32(message(Event.Sync, SyncBody.Size), SyncBody.Seq, seq);
}

export function timerFiredEvent(channel: i32): u8[] {
  return set8(message(Event.TimerFired, TimerFiredBody.Size), TimerFiredBody.Channel, channel);
}

export function entropyEvent(length: i32): u8[] {
  const msg = message(Event.Entropy, length);
  for (let i = 0; i < length; i++) set8(msg, i, 0xa0 + i);
  return msg;
}

export function countersQueryEvent(): u8[] {
  return message(Event.CountersQuery, 0);
}

/** The pairing key configEvent() carries: 0x40, 0x41, ... */
export function pairingKey(): u8[] {
  const key = new Array<u8>(PAIRING_KEY_SIZE);
  for (let i = 0; i < PAIRING_KEY_SIZE; i++) key[i] = (0x40 + i) as u8;
  return key;
}

/** The admin key configEvent() carries: 0x60, 0x61, ... */
export function adminKey(): u8[] {
  const key = new Array<u8>(ADMIN_KEY_SIZE);
  for (let i = 0; i < ADMIN_KEY_SIZE; i++) key[i] = (0x60 + i) as u8;
  return key;
}

/** The management VLAN configEvent() carries. */
export const MANAGEMENT_VLAN: u32 = 4000;

/**
 * A valid CONFIG for `group`: every protocol version and acknowledgement policy, the
 * tunnel's default MTU and payload, the default timers, management on MANAGEMENT_VLAN,
 * pairingKey() and adminKey().
 */
export function configEvent(group: u32): u8[] {
  const msg = message(Event.Config, ConfigBody.Size);
  set16(msg, ConfigBody.Group, group);
  set8(msg, ConfigBody.ProtocolMax, LINK_PROTOCOL_MAX);
  set8(msg, ConfigBody.AckPolicies, AckPolicy.Selective | AckPolicy.GoBackN);
  set16(msg, ConfigBody.Mtu, TunnelDefault.Mtu);
  set16(msg, ConfigBody.MaxPayload, TunnelDefault.MaxPayload);
  set32(msg, ConfigBody.KeepaliveNs, LinkTiming.KeepaliveNs);
  set32(msg, ConfigBody.SilenceNs, LinkTiming.SilenceNs);
  set32(msg, ConfigBody.GraceNs, LinkTiming.GraceNs);
  set16(msg, ConfigBody.ManagementVlan, MANAGEMENT_VLAN);
  return setBytes(setBytes(msg, ConfigBody.PairingKey, pairingKey()), ConfigBody.AdminKey, adminKey());
}

export function regValueEvent(address: u32, value: u32): u8[] {
  return set32(set32(message(Event.RegValue, RegValueBody.Size), RegValueBody.Address, address), RegValueBody.Value, value);
}

export function fabricEvent(tunnel: u32, kind: u32, arg: u32): u8[] {
  const msg = message(Event.FabricEvent, FabricEventBody.Size);
  set8(msg, FabricEventBody.Tunnel, tunnel);
  set8(msg, FabricEventBody.Kind, kind);
  return set32(msg, FabricEventBody.Arg, arg);
}

/** FRAME_RX of `frame` (an Ethernet frame without FCS), for `tunnel` or NO_TUNNEL. */
export function frameRxEvent(frame: u8[], tunnel: u32 = NO_TUNNEL, port: u32 = 0): u8[] {
  const msg = message(Event.FrameRx, FrameRxBody.Frame + frame.length);
  set8(msg, FrameRxBody.Tunnel, tunnel);
  set8(msg, FrameRxBody.Port, port);
  return setBytes(msg, FrameRxBody.Frame, frame);
}

/** TLP_RX of `tlp` (a header and at most one data DW) for `reason`, through switch port `port`. */
export function tlpRxEvent(reason: u32, port: u32, tlp: u8[]): u8[] {
  const msg = message(Event.TlpRx, TlpRxBody.Tlp + tlp.length);
  set8(msg, TlpRxBody.Reason, reason);
  set8(msg, TlpRxBody.Port, port);
  return setBytes(msg, TlpRxBody.Tlp, tlp);
}

/** UART_RX events carrying `bytes`, at most UartRxBody.MaxSize bytes each, as the UART posts them. */
export function uartRxEvents(bytes: u8[]): u8[] {
  const events = (bytes.length + UartRxBody.MaxSize - 1) / UartRxBody.MaxSize;
  const out = new Array<u8>(events * HEADER_SIZE + bytes.length);
  let to = 0;
  for (let at = 0; at < bytes.length; at += UartRxBody.MaxSize) {
    const length = min(UartRxBody.MaxSize, bytes.length - at);
    setLE(out, to + Header.BodyLength, length, 2);
    out[to + Header.Type] = Event.UartRx as u8;
    to += HEADER_SIZE;
    for (let i = 0; i < length; i++) out[to + UartRxBody.Bytes + i] = bytes[at + i];
    to += length;
  }
  return out;
}

/** The bytes of an ASCII `text`. */
export function ascii(text: string): u8[] {
  const bytes = new Array<u8>(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) as u8;
  return bytes;
}

/** A firmware Text (assembly/text.ts: a length byte, then the bytes) holding an ASCII `text`. */
export function firmwareText(text: string): Text {
  const bytes = new StaticArray<u8>(text.length + 1);
  bytes[0] = text.length as u8;
  for (let i = 0; i < text.length; i++) bytes[i + 1] = text.charCodeAt(i) as u8;
  kept.push(bytes);
  return changetype<Text>(bytes);
}
const kept: StaticArray<u8>[] = []; // keeps the texts' memory from the collector

/** FLASH_DONE for the operation `op` at `address`, with the bytes a FLASH_READ read. */
export function flashDoneEvent(op: u32, status: u32, address: u32, data: u8[] = []): u8[] {
  const msg = message(Event.FlashDone, FlashDoneBody.Data + data.length);
  set8(msg, FlashDoneBody.Op, op);
  set8(msg, FlashDoneBody.Status, status);
  set16(msg, FlashDoneBody.Length, data.length);
  set32(msg, FlashDoneBody.Address, address);
  return setBytes(msg, FlashDoneBody.Data, data);
}

/** Hands `bytes` to rx as one read, the way assembly/index.ts step() does. */
export function deliver(bytes: u8[]): void {
  const room = rx.freeSpace(); // compacts, so it must precede writePointer()
  assert(bytes.length <= room, "rx buffer full");
  const at = rx.writePointer();
  for (let i = 0; i < bytes.length; i++) store<u8>(at + i, bytes[i]);
  rx.commit(bytes.length);
}

/**
 * Hands `bytes` to the firmware and handles them; then, as the fabric does a moment later, the
 * HASH_DONEs for the Finishes among the commands and ENTROPY for its EntropyRequests, until the
 * firmware asks for no more.
 */
export function deliverAndAnswer(bytes: u8[]): void {
  let from = tx.bufferedLength();
  deliver(bytes);
  firmware.handleAll();
  for (let answers = boardAnswers(from); answers.length > 0; answers = boardAnswers(from)) {
    from = tx.bufferedLength();
    deliver(answers);
    firmware.handleAll();
  }
}

// ---- Commands ----------------------------------------------------------------------

/** A copy of the bytes tx holds, not yet flushed. */
export function txBytes(): u8[] {
  const length = tx.bufferedLength();
  const bytes = new Array<u8>(length);
  for (let i = 0; i < length; i++) bytes[i] = load<u8>(tx.buffered() + i);
  return bytes;
}

/** One command in the tx buffer; the field readers take body offsets. */
export class Sent {
  constructor(
    public type: i32,
    public flags: i32,
    public length: i32,
    public body: usize,
  ) {}

  u8(offset: i32): i32 {
    return load<u8>(this.body + offset) as i32;
  }

  u16(offset: i32): i32 {
    return load<u16>(this.body + offset) as i32;
  }

  u32(offset: i32): u32 {
    return load<u32>(this.body + offset);
  }

  u64(offset: i32): u64 {
    return load<u64>(this.body + offset);
  }
}

/**
 * The commands buffered by tx, in order, but for the HASH commands (deliverAndAnswer() answers
 * them) unless `withHash`; the buffer must end on a message boundary.
 */
export function sent(withHash: bool = false): Sent[] {
  const start = tx.buffered();
  const end = tx.bufferedLength();
  const out = new Array<Sent>();
  let at = 0;
  while (at + HEADER_SIZE <= end) {
    const head = start + at;
    const length = load<u16>(head, Header.BodyLength) as i32;
    const type = load<u8>(head, Header.Type) as i32;
    if (withHash || type != Command.Hash) out.push(new Sent(type, load<u8>(head, Header.Flags), length, head + HEADER_SIZE));
    at += HEADER_SIZE + length;
  }
  expect(at).toBe(end, "tx buffer ends on a message boundary");
  return out;
}

/** The types of the buffered commands, in order. */
export function sentTypes(): i32[] {
  const commands = sent();
  const types = new Array<i32>(commands.length);
  for (let i = 0; i < commands.length; i++) types[i] = commands[i].type;
  return types;
}

/** The bytes the UART_TX commands among `commands` carry, in order. */
export function uartBytesOf(commands: Sent[]): u8[] {
  const bytes = new Array<u8>();
  for (let i = 0; i < commands.length; i++) {
    const command = commands[i];
    if (command.type != Command.UartTx) continue;
    expect(command.length).toBeGreaterThanOrEqual(UartTxBody.MinSize, "UART_TX body length");
    expect(command.length).toBeLessThanOrEqual(UartTxBody.MaxSize, "UART_TX body length");
    for (let j = 0; j < command.length; j++) bytes.push(command.u8(UartTxBody.Bytes + j) as u8);
  }
  return bytes;
}

/** `bytes` as a string, one character per byte. */
export function textOf(bytes: u8[]): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
  return out;
}

/** Expects `text` to contain `part` (a failure shows both) or, with `present` false, not to. */
export function expectText(text: string, part: string, present: bool = true): void {
  expect(text.includes(part)).toBe(present, (present ? "expected " : "did not expect ") + quoted(part) + " in " + quoted(text));
}

/** `text` in double quotes, control characters escaped: readable in a failure message. */
function quoted(text: string): string {
  let out = "\"";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x0d) out += "\\r";
    else if (c == 0x0a) out += "\\n";
    else if (c < 0x20 || c >= 0x7f) out += "\\x" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** A REG_WRITE command, decoded. */
export class RegWrite {
  constructor(public address: u32, public value: u32) {}
}

/** The REG_WRITE `command` carries (it must be one). */
export function regWriteOf(command: Sent): RegWrite {
  expect(command.type).toBe(Command.RegWrite, "a REG_WRITE");
  expect(command.length).toBe(RegWriteBody.Size, "REG_WRITE body length");
  return new RegWrite(command.u32(RegWriteBody.Address), command.u32(RegWriteBody.Value));
}

/** The values of the REG_WRITE commands to `address` among `commands`, in order. */
export function regWritesTo(commands: Sent[], address: u32): u32[] {
  const values = new Array<u32>();
  for (let i = 0; i < commands.length; i++) {
    if (commands[i].type != Command.RegWrite) continue;
    const write = regWriteOf(commands[i]);
    if (write.address == address) values.push(write.value);
  }
  return values;
}

/**
 * The TLP a TLP_TX command carries, with readers for its header fields (big-endian, offsets
 * from TlpHeader) and its data DW (little-endian, as configuration data and MSI data are).
 */
export class TlpSent {
  constructor(public bytes: u8[]) {}

  byte(at: i32): u32 {
    return this.bytes[at] as u32;
  }

  be16(at: i32): u32 {
    return (this.byte(at) << 8) | this.byte(at + 1);
  }

  be32(at: i32): u32 {
    return (this.be16(at) << 16) | this.be16(at + 2);
  }

  fmt(): u32 {
    return this.byte(TlpHeader.FmtType) >> 5;
  }

  type(): u32 {
    return this.byte(TlpHeader.FmtType) & 0x1f;
  }

  /** Length in DW, as encoded (0 stays 0). */
  lengthField(): u32 {
    return ((this.byte(TlpHeader.LengthHigh) & 3) << 8) | this.byte(TlpHeader.LengthLow);
  }

  headerBytes(): i32 {
    return (this.fmt() & 1) != 0 ? TlpHeader.Long : TlpHeader.Short;
  }

  // Completions.
  completer(): u32 {
    return this.be16(TlpHeader.CompleterId);
  }

  status(): u32 {
    return this.byte(TlpHeader.StatusBcm) >> 5;
  }

  bcm(): bool {
    return (this.byte(TlpHeader.StatusBcm) & 0x10) != 0;
  }

  byteCount(): u32 {
    return ((this.byte(TlpHeader.StatusBcm) & 0xf) << 8) | this.byte(TlpHeader.ByteCountLow);
  }

  cplRequester(): u32 {
    return this.be16(TlpHeader.CplRequesterId);
  }

  /** The 10-bit tag: T9 (byte 1 bit 7), T8 (byte 1 bit 3), Tag. */
  cplTag(): u32 {
    const flags = this.byte(TlpHeader.Flags);
    return ((flags >> 7) << 9) | (((flags >> 3) & 1) << 8) | this.byte(TlpHeader.CplTag);
  }

  lowerAddress(): u32 {
    return this.byte(TlpHeader.LowerAddress) & 0x7f;
  }

  // Requests (the MSI memory write).
  requester(): u32 {
    return this.be16(TlpHeader.RequesterId);
  }

  byteEnables(): u32 {
    return this.byte(TlpHeader.ByteEnables);
  }

  address(): u64 {
    if (this.headerBytes() == TlpHeader.Short) return this.be32(TlpHeader.Address32) as u64;
    return ((this.be32(TlpHeader.Address64) as u64) << 32) | (this.be32(TlpHeader.Address64 + 4) as u64);
  }

  /** The data DW after the header. */
  data(): u32 {
    const at = this.headerBytes();
    return this.byte(at) | (this.byte(at + 1) << 8) | (this.byte(at + 2) << 16) | (this.byte(at + 3) << 24);
  }
}

/** The TLP of the TLP_TX `command` (it must be one). */
export function tlpTxOf(command: Sent): TlpSent {
  expect(command.type).toBe(Command.TlpTx, "a TLP_TX");
  expect(command.length).toBeGreaterThanOrEqual(TlpTxBody.MinSize, "TLP_TX body length");
  expect(command.length).toBeLessThanOrEqual(TlpTxBody.MaxSize, "TLP_TX body length");
  const bytes = new Array<u8>(command.length);
  for (let i = 0; i < command.length; i++) bytes[i] = command.u8(TlpTxBody.Tlp + i) as u8;
  return new TlpSent(bytes);
}

// ---- Log -----------------------------------------------------------------------------

let history = "";

function collect(c: i32): void {
  history += String.fromCharCode(c);
}

/** The firmware's remembered log records, oldest first, each ending in LF. */
export function logHistory(): string {
  history = "";
  log.replay(collect);
  return history;
}
