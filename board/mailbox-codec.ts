// Host side of the mailbox protocol: encoders, a streaming reader with the same framing
// rules as the firmware (assembly/abi/rx.ts), typed decoders, and EventChecker, the
// reference model of which events the firmware accepts and which it rejects and why.
// Layouts come from board/map/mailbox.ts, shared with the firmware.

import {
  MAILBOX_VERSION, HEADER_SIZE, MAX_BODY, MAX_SLOTS, TIMER_CHANNELS, Header, Event, Command,
  BootBody, TimeBody, SyncBody, TimerFiredBody, EntropyBody, HelloBody, SyncAckBody, TimerArmBody,
  TimerDisarmBody, ErrorBody, CountersBody, RegValueBody, FabricEventBody, RegWriteBody, RegReadBody, CardRole, ResetCause,
  LogLevel, HelloStatus, MailboxError, Counter, FABRIC_EVENT_LAST, MAX_TUNNELS, PORTS, minBody, maxBody, isEvent, isCommand,
  ConfigBody, FrameRxBody, FrameTxBody, NO_TUNNEL, TlpRxBody, TlpRxReason, TlpTxBody, TLP_RX_REASON_LAST, NO_PORT,
  BootFlag, UartRxBody, UartTxBody, FlashDoneBody, FlashOp, FlashStatus, FLASH_OP_LAST, FLASH_STATUS_LAST,
  FlashEraseBody, FlashProgramBody, FlashReadBody, HashBody, HashDoneBody, HashOp, HashStatus, HASH_OP_LAST, HASH_STATUS_LAST, RetainBody, RETAIN_BYTES,
  HASH_CONTEXTS, HASH_KEY_MAX, HASH_UPDATE_MAX, HASH_DIGEST_SIZE, MACSEC_SETTING_LAST, type MacsecSetting,
} from "./map/mailbox.ts";
import { SLOTS } from "./map/flash.ts";
import { FabricEventKind, MTU_MIN, MTU_MAX } from "./map/registers.ts";
import { LINK_PROTOCOL_MIN, LINK_PROTOCOL_MAX, PAIRING_KEY_SIZE, ADMIN_KEY_SIZE, SILENCE_MIN_KEEPALIVES, AckPolicy, ControlType } from "./map/link.ts";
import { decodeControl } from "./link-codec.ts";
import { formatMac } from "./ethernet/frame.ts";
import { describeHeader as describeTlpHeader } from "./pcie/tlp.ts";
import { Fmt, TlpHeader, SWITCH_PORTS } from "./map/pcie.ts";

/** The flash configuration record of CONFIG. */
export interface LinkConfig {
  group: number;
  protocolMax: number;
  ackPolicies: number;
  mtu: number;
  maxPayload: number;
  keepaliveNs: number;
  silenceNs: number;
  graceNs: number;
  /** VLAN of management requests and replies (docs/management.md). */
  managementVlan: number;
  /** How the data path is protected: MACsec with either XPN suite (default), XPN-256 only, or in clear. */
  macsec: MacsecSetting;
  pairingKey: Uint8Array;
  adminKey: Uint8Array;
}

export type EventMessage =
  | {
      kind: "boot"; mailboxVersion: number; role: CardRole; resetCause: ResetCause; boardId: number;
      /** The flash slot the boot ROM started, and BootFlag bits; both 0 when not given. */
      bootSlot?: number; bootFlags?: number;
      /** Bytes of retained RAM the RETAINED events after BOOT bring (0, or not given, after power-on). */
      retained?: number;
      /** Bit p for each Ethernet port with carrier (default: port 0 alone, a card with one cable). */
      carrier?: number;
      serial: number; logLevel: LogLevel; slots: number; mac: Uint8Array;
    }
  | { kind: "time"; now: bigint }
  | { kind: "sync"; seq: number }
  | { kind: "timerFired"; channel: number }
  | { kind: "entropy"; bytes: Uint8Array }
  | { kind: "countersQuery" }
  | { kind: "regValue"; address: number; value: number }
  | { kind: "fabricEvent"; tunnel: number; event: FabricEventKind; arg: number }
  | ({ kind: "config" } & LinkConfig)
  | { kind: "frameRx"; tunnel: number; port: number; frame: Uint8Array }
  /** `tlp`: the header and at most the first data DW (see TlpRxBody). */
  | { kind: "tlpRx"; reason: TlpRxReason; port: number; tlp: Uint8Array }
  | { kind: "uartRx"; bytes: Uint8Array }
  /** `data`: what a FLASH_READ read (empty for the other operations). */
  | { kind: "flashDone"; op: FlashOp; status: FlashStatus; address: number; data: Uint8Array }
  /** `digest`: HASH_DIGEST_SIZE bytes, zero unless `status` is Ok. */
  | { kind: "hashDone"; context: number; status: HashStatus; tag: number; digest: Uint8Array }
  /** `data` at `offset` of the retained RAM, after BOOT (docs/mailbox.md). */
  | { kind: "retained"; offset: number; data: Uint8Array };

export type CommandMessage =
  | { kind: "hello"; mailboxVersion: number; status: HelloStatus; firmware: [number, number, number] }
  | { kind: "syncAck"; seq: number }
  | { kind: "timerArm"; channel: number; deadline: bigint }
  | { kind: "timerDisarm"; channel: number }
  | { kind: "error"; code: MailboxError; messageType: number; bodyLength: number; streamOffset: number; detail: number }
  | { kind: "counters"; values: number[] }
  | { kind: "regWrite"; address: number; value: number }
  | { kind: "regRead"; address: number }
  | { kind: "frameTx"; frame: Uint8Array }
  | { kind: "tlpTx"; tlp: Uint8Array }
  | { kind: "uartTx"; bytes: Uint8Array }
  | { kind: "flashErase"; address: number; sectors: number }
  | { kind: "flashProgram"; address: number; data: Uint8Array }
  | { kind: "flashRead"; address: number; length: number }
  /** `data`: StartHmac's key or Update's bytes, empty for Start and Finish; `tag` is 0 except on Finish. */
  | { kind: "hash"; context: number; op: HashOp; tag: number; data: Uint8Array }
  | { kind: "retain"; offset: number; data: Uint8Array };

/** One framed message. `framing` is non-zero when the header already condemns it; then `body` is null. */
export interface RawMessage {
  type: number;
  flags: number;
  length: number;
  offset: number;
  body: Uint8Array | null;
  framing: MailboxError | 0;
}

export class MailboxFormatError extends Error {}

function message(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + body.length);
  const view = new DataView(out.buffer);
  view.setUint16(Header.BodyLength, body.length, true);
  out[Header.Type] = type;
  out.set(body, HEADER_SIZE);
  return out;
}

function body(size: number): [Uint8Array, DataView] {
  const bytes = new Uint8Array(size);
  return [bytes, new DataView(bytes.buffer)];
}

export function encodeEvent(event: EventMessage): Uint8Array {
  switch (event.kind) {
    case "boot": {
      const [b, v] = body(BootBody.Size);
      v.setUint16(BootBody.MailboxVersion, event.mailboxVersion, true);
      v.setUint8(BootBody.Role, event.role);
      v.setUint8(BootBody.ResetCause, event.resetCause);
      v.setUint32(BootBody.BoardId, event.boardId >>> 0, true);
      v.setUint32(BootBody.Serial, event.serial >>> 0, true);
      v.setUint8(BootBody.LogLevel, event.logLevel);
      v.setUint8(BootBody.Slots, event.slots);
      v.setUint8(BootBody.BootSlot, event.bootSlot ?? 0);
      v.setUint8(BootBody.BootFlags, event.bootFlags ?? 0);
      b.set(event.mac.subarray(0, 6), BootBody.Mac);
      v.setUint16(BootBody.Retained, event.retained ?? 0, true);
      v.setUint8(BootBody.Carrier, event.carrier ?? 1);
      return message(Event.Boot, b);
    }
    case "time": {
      const [b, v] = body(TimeBody.Size);
      v.setBigUint64(TimeBody.Now, event.now, true);
      return message(Event.Time, b);
    }
    case "sync": {
      const [b, v] = body(SyncBody.Size);
      v.setUint32(SyncBody.Seq, event.seq >>> 0, true);
      return message(Event.Sync, b);
    }
    case "timerFired": {
      const [b, v] = body(TimerFiredBody.Size);
      v.setUint8(TimerFiredBody.Channel, event.channel);
      return message(Event.TimerFired, b);
    }
    case "entropy":
      if (event.bytes.length < EntropyBody.MinSize || event.bytes.length > EntropyBody.MaxSize) {
        throw new MailboxFormatError(`entropy carries ${EntropyBody.MinSize}..${EntropyBody.MaxSize} bytes, not ${event.bytes.length}`);
      }
      return message(Event.Entropy, event.bytes);
    case "countersQuery":
      return message(Event.CountersQuery, new Uint8Array(0));
    case "regValue": {
      const [b, v] = body(RegValueBody.Size);
      v.setUint32(RegValueBody.Address, event.address >>> 0, true);
      v.setUint32(RegValueBody.Value, event.value >>> 0, true);
      return message(Event.RegValue, b);
    }
    case "fabricEvent": {
      const [b, v] = body(FabricEventBody.Size);
      v.setUint8(FabricEventBody.Tunnel, event.tunnel);
      v.setUint8(FabricEventBody.Kind, event.event);
      v.setUint32(FabricEventBody.Arg, event.arg >>> 0, true);
      return message(Event.FabricEvent, b);
    }
    case "config": {
      const [b, v] = body(ConfigBody.Size);
      v.setUint16(ConfigBody.Group, event.group, true);
      v.setUint8(ConfigBody.ProtocolMax, event.protocolMax);
      v.setUint8(ConfigBody.AckPolicies, event.ackPolicies);
      v.setUint16(ConfigBody.Mtu, event.mtu, true);
      v.setUint16(ConfigBody.MaxPayload, event.maxPayload, true);
      v.setUint32(ConfigBody.KeepaliveNs, event.keepaliveNs >>> 0, true);
      v.setUint32(ConfigBody.SilenceNs, event.silenceNs >>> 0, true);
      v.setUint32(ConfigBody.GraceNs, event.graceNs >>> 0, true);
      if (event.pairingKey.length !== PAIRING_KEY_SIZE) throw new MailboxFormatError(`a pairing key has ${PAIRING_KEY_SIZE} bytes, not ${event.pairingKey.length}`);
      b.set(event.pairingKey, ConfigBody.PairingKey);
      v.setUint16(ConfigBody.ManagementVlan, event.managementVlan, true);
      v.setUint8(ConfigBody.Macsec, event.macsec);
      if (event.adminKey.length !== ADMIN_KEY_SIZE) throw new MailboxFormatError(`an admin key has ${ADMIN_KEY_SIZE} bytes, not ${event.adminKey.length}`);
      b.set(event.adminKey, ConfigBody.AdminKey);
      return message(Event.Config, b);
    }
    case "frameRx": {
      const [b, v] = body(FrameRxBody.Frame + event.frame.length);
      v.setUint8(FrameRxBody.Tunnel, event.tunnel);
      v.setUint8(FrameRxBody.Port, event.port);
      b.set(event.frame, FrameRxBody.Frame);
      return message(Event.FrameRx, b);
    }
    case "tlpRx": {
      const [b, v] = body(TlpRxBody.Tlp + event.tlp.length);
      v.setUint8(TlpRxBody.Reason, event.reason);
      v.setUint8(TlpRxBody.Port, event.port);
      b.set(event.tlp, TlpRxBody.Tlp);
      return message(Event.TlpRx, b);
    }
    case "uartRx":
      return message(Event.UartRx, event.bytes);
    case "flashDone": {
      const [b, v] = body(FlashDoneBody.Data + event.data.length);
      v.setUint8(FlashDoneBody.Op, event.op);
      v.setUint8(FlashDoneBody.Status, event.status);
      v.setUint16(FlashDoneBody.Length, event.data.length, true);
      v.setUint32(FlashDoneBody.Address, event.address >>> 0, true);
      b.set(event.data, FlashDoneBody.Data);
      return message(Event.FlashDone, b);
    }
    case "hashDone": {
      if (event.digest.length !== HASH_DIGEST_SIZE) throw new MailboxFormatError(`a digest has ${HASH_DIGEST_SIZE} bytes, not ${event.digest.length}`);
      const [b, v] = body(HashDoneBody.Size);
      v.setUint8(HashDoneBody.Context, event.context);
      v.setUint8(HashDoneBody.Status, event.status);
      v.setUint16(HashDoneBody.Tag, event.tag, true);
      b.set(event.digest, HashDoneBody.Digest);
      return message(Event.HashDone, b);
    }
    case "retained": {
      const [b, v] = body(RetainBody.Data + event.data.length);
      v.setUint16(RetainBody.Offset, event.offset, true);
      b.set(event.data, RetainBody.Data);
      return message(Event.Retained, b);
    }
  }
}

export function encodeCommand(command: CommandMessage): Uint8Array {
  switch (command.kind) {
    case "hello": {
      const [b, v] = body(HelloBody.Size);
      v.setUint16(HelloBody.MailboxVersion, command.mailboxVersion, true);
      v.setUint8(HelloBody.Status, command.status);
      v.setUint8(HelloBody.FirmwareMajor, command.firmware[0]);
      v.setUint8(HelloBody.FirmwareMinor, command.firmware[1]);
      v.setUint8(HelloBody.FirmwarePatch, command.firmware[2]);
      return message(Command.Hello, b);
    }
    case "syncAck": {
      const [b, v] = body(SyncAckBody.Size);
      v.setUint32(SyncAckBody.Seq, command.seq >>> 0, true);
      return message(Command.SyncAck, b);
    }
    case "timerArm": {
      const [b, v] = body(TimerArmBody.Size);
      v.setUint8(TimerArmBody.Channel, command.channel);
      v.setBigUint64(TimerArmBody.Deadline, command.deadline, true);
      return message(Command.TimerArm, b);
    }
    case "timerDisarm": {
      const [b, v] = body(TimerDisarmBody.Size);
      v.setUint8(TimerDisarmBody.Channel, command.channel);
      return message(Command.TimerDisarm, b);
    }
    case "error": {
      const [b, v] = body(ErrorBody.Size);
      v.setUint8(ErrorBody.Code, command.code);
      v.setUint8(ErrorBody.MessageType, command.messageType);
      v.setUint16(ErrorBody.BodyLength, command.bodyLength, true);
      v.setUint32(ErrorBody.StreamOffset, command.streamOffset >>> 0, true);
      v.setUint32(ErrorBody.Detail, command.detail >>> 0, true);
      return message(Command.Error, b);
    }
    case "counters": {
      const [b, v] = body(CountersBody.Values + 4 * command.values.length);
      v.setUint16(CountersBody.Count, command.values.length, true);
      command.values.forEach((value, i) => v.setUint32(CountersBody.Values + 4 * i, value >>> 0, true));
      return message(Command.Counters, b);
    }
    case "regWrite": {
      const [b, v] = body(RegWriteBody.Size);
      v.setUint32(RegWriteBody.Address, command.address >>> 0, true);
      v.setUint32(RegWriteBody.Value, command.value >>> 0, true);
      return message(Command.RegWrite, b);
    }
    case "regRead": {
      const [b, v] = body(RegReadBody.Size);
      v.setUint32(RegReadBody.Address, command.address >>> 0, true);
      return message(Command.RegRead, b);
    }
    case "frameTx":
      return message(Command.FrameTx, command.frame);
    case "tlpTx":
      return message(Command.TlpTx, command.tlp);
    case "uartTx":
      return message(Command.UartTx, command.bytes);
    case "flashErase": {
      const [b, v] = body(FlashEraseBody.Size);
      v.setUint32(FlashEraseBody.Address, command.address >>> 0, true);
      v.setUint16(FlashEraseBody.Sectors, command.sectors, true);
      return message(Command.FlashErase, b);
    }
    case "flashProgram": {
      const [b, v] = body(FlashProgramBody.Data + command.data.length);
      v.setUint32(FlashProgramBody.Address, command.address >>> 0, true);
      b.set(command.data, FlashProgramBody.Data);
      return message(Command.FlashProgram, b);
    }
    case "flashRead": {
      const [b, v] = body(FlashReadBody.Size);
      v.setUint32(FlashReadBody.Address, command.address >>> 0, true);
      v.setUint16(FlashReadBody.Length, command.length, true);
      return message(Command.FlashRead, b);
    }
    case "hash": {
      const [b, v] = body(HashBody.Data + command.data.length);
      v.setUint8(HashBody.Context, command.context);
      v.setUint8(HashBody.Op, command.op);
      v.setUint16(HashBody.Tag, command.tag, true);
      b.set(command.data, HashBody.Data);
      return message(Command.Hash, b);
    }
    case "retain": {
      const [b, v] = body(RetainBody.Data + command.data.length);
      v.setUint16(RetainBody.Offset, command.offset, true);
      b.set(command.data, RetainBody.Data);
      return message(Command.Retain, b);
    }
  }
}

/**
 * Frames a byte stream into messages, whatever the chunking, with the firmware's rules:
 * oversize bodies are skipped (even across chunks), then flags, type and length are checked.
 */
export class MessageReader {
  private buffer = new Uint8Array(0);
  private skipping = 0;
  private offset = 0;

  constructor(private readonly direction: "events" | "commands") {}

  push(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    this.buffer = joined;
  }

  /** Bytes received that do not form a whole message yet (the bytes an oversize message still owes are not among them: bytesToBoundary()). */
  pending(): number {
    return this.buffer.length;
  }

  /**
   * How many more bytes complete the message (or the oversize skip) in progress, so that
   * a sender can bring a damaged stream back to a message boundary; 0 when aligned.
   * Meaningful once next() has returned null.
   */
  bytesToBoundary(): number {
    if (this.skipping > 0) return this.skipping;
    if (this.buffer.length === 0) return 0;
    if (this.buffer.length < HEADER_SIZE) return HEADER_SIZE - this.buffer.length;
    const length = this.buffer[Header.BodyLength] | (this.buffer[Header.BodyLength + 1] << 8);
    return HEADER_SIZE + length - this.buffer.length;
  }

  private consume(count: number): void {
    this.buffer = this.buffer.subarray(count);
    this.offset += count;
  }

  next(): RawMessage | null {
    if (this.skipping > 0) {
      const drop = Math.min(this.skipping, this.buffer.length);
      this.consume(drop);
      this.skipping -= drop;
      if (this.skipping > 0) return null;
    }
    if (this.buffer.length < HEADER_SIZE) return null;
    const view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
    const length = view.getUint16(Header.BodyLength, true);
    const type = this.buffer[Header.Type];
    const flags = this.buffer[Header.Flags];
    const offset = this.offset;
    if (length > MAX_BODY) {
      this.consume(HEADER_SIZE);
      this.skipping = length;
      const drop = Math.min(this.skipping, this.buffer.length);
      this.consume(drop);
      this.skipping -= drop;
      return { type, flags, length, offset, body: null, framing: MailboxError.Oversize };
    }
    if (this.buffer.length < HEADER_SIZE + length) return null;
    const bytes = this.buffer.slice(HEADER_SIZE, HEADER_SIZE + length);
    this.consume(HEADER_SIZE + length);
    const known = this.direction === "events" ? isEvent(type) : isCommand(type);
    let framing: MailboxError | 0 = 0;
    if (flags !== 0) framing = MailboxError.Reserved;
    else if (!known) framing = MailboxError.UnknownType;
    else if (length < minBody(type) || length > maxBody(type)) framing = MailboxError.BadLength;
    return { type, flags, length, offset, body: framing ? null : bytes, framing };
  }

  *all(): Generator<RawMessage> {
    for (let m = this.next(); m; m = this.next()) yield m;
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Decodes a well-framed event body (framing === 0). */
export function decodeEvent(raw: RawMessage): EventMessage {
  const b = raw.body;
  if (!b || raw.framing) throw new MailboxFormatError(`event at offset ${raw.offset} is malformed (${errorName(raw.framing)})`);
  const v = view(b);
  switch (raw.type as Event) {
    case Event.Boot:
      return {
        kind: "boot", mailboxVersion: v.getUint16(BootBody.MailboxVersion, true), role: b[BootBody.Role],
        resetCause: b[BootBody.ResetCause], boardId: v.getUint32(BootBody.BoardId, true),
        serial: v.getUint32(BootBody.Serial, true), logLevel: b[BootBody.LogLevel], slots: b[BootBody.Slots],
        bootSlot: b[BootBody.BootSlot], bootFlags: b[BootBody.BootFlags], mac: b.slice(BootBody.Mac, BootBody.Mac + 6),
        retained: v.getUint16(BootBody.Retained, true), carrier: b[BootBody.Carrier],
      };
    case Event.Time:
      return { kind: "time", now: v.getBigUint64(TimeBody.Now, true) };
    case Event.Sync:
      return { kind: "sync", seq: v.getUint32(SyncBody.Seq, true) };
    case Event.TimerFired:
      return { kind: "timerFired", channel: b[TimerFiredBody.Channel] };
    case Event.Entropy:
      return { kind: "entropy", bytes: b };
    case Event.CountersQuery:
      return { kind: "countersQuery" };
    case Event.RegValue:
      return { kind: "regValue", address: v.getUint32(RegValueBody.Address, true), value: v.getUint32(RegValueBody.Value, true) };
    case Event.FabricEvent:
      return { kind: "fabricEvent", tunnel: b[FabricEventBody.Tunnel], event: b[FabricEventBody.Kind], arg: v.getUint32(FabricEventBody.Arg, true) };
    case Event.Config:
      return {
        kind: "config", group: v.getUint16(ConfigBody.Group, true), protocolMax: b[ConfigBody.ProtocolMax], ackPolicies: b[ConfigBody.AckPolicies],
        mtu: v.getUint16(ConfigBody.Mtu, true), maxPayload: v.getUint16(ConfigBody.MaxPayload, true),
        keepaliveNs: v.getUint32(ConfigBody.KeepaliveNs, true), silenceNs: v.getUint32(ConfigBody.SilenceNs, true),
        graceNs: v.getUint32(ConfigBody.GraceNs, true), managementVlan: v.getUint16(ConfigBody.ManagementVlan, true), macsec: b[ConfigBody.Macsec],
        pairingKey: b.slice(ConfigBody.PairingKey, ConfigBody.PairingKey + PAIRING_KEY_SIZE),
        adminKey: b.slice(ConfigBody.AdminKey, ConfigBody.AdminKey + ADMIN_KEY_SIZE),
      };
    case Event.FrameRx:
      return { kind: "frameRx", tunnel: b[FrameRxBody.Tunnel], port: b[FrameRxBody.Port], frame: b.slice(FrameRxBody.Frame) };
    case Event.TlpRx:
      return { kind: "tlpRx", reason: b[TlpRxBody.Reason], port: b[TlpRxBody.Port], tlp: b.slice(TlpRxBody.Tlp) };
    case Event.UartRx:
      return { kind: "uartRx", bytes: b.slice(UartRxBody.Bytes) };
    case Event.FlashDone:
      return {
        kind: "flashDone", op: b[FlashDoneBody.Op], status: b[FlashDoneBody.Status], address: v.getUint32(FlashDoneBody.Address, true),
        data: b.slice(FlashDoneBody.Data),
      };
    case Event.HashDone:
      return {
        kind: "hashDone", context: b[HashDoneBody.Context], status: b[HashDoneBody.Status], tag: v.getUint16(HashDoneBody.Tag, true),
        digest: b.slice(HashDoneBody.Digest, HashDoneBody.Digest + HASH_DIGEST_SIZE),
      };
    case Event.Retained:
      return { kind: "retained", offset: v.getUint16(RetainBody.Offset, true), data: b.slice(RetainBody.Data) };
  }
  throw new MailboxFormatError(`type 0x${raw.type.toString(16)} is not an event`);
}

/** Decodes a well-framed command body (framing === 0). */
export function decodeCommand(raw: RawMessage): CommandMessage {
  const b = raw.body;
  if (!b || raw.framing) throw new MailboxFormatError(`command at offset ${raw.offset} is malformed (${errorName(raw.framing)})`);
  const v = view(b);
  switch (raw.type as Command) {
    case Command.Hello:
      return {
        kind: "hello", mailboxVersion: v.getUint16(HelloBody.MailboxVersion, true), status: b[HelloBody.Status],
        firmware: [b[HelloBody.FirmwareMajor], b[HelloBody.FirmwareMinor], b[HelloBody.FirmwarePatch]],
      };
    case Command.SyncAck:
      return { kind: "syncAck", seq: v.getUint32(SyncAckBody.Seq, true) };
    case Command.TimerArm:
      return { kind: "timerArm", channel: b[TimerArmBody.Channel], deadline: v.getBigUint64(TimerArmBody.Deadline, true) };
    case Command.TimerDisarm:
      return { kind: "timerDisarm", channel: b[TimerDisarmBody.Channel] };
    case Command.Error:
      return {
        kind: "error", code: b[ErrorBody.Code], messageType: b[ErrorBody.MessageType],
        bodyLength: v.getUint16(ErrorBody.BodyLength, true), streamOffset: v.getUint32(ErrorBody.StreamOffset, true),
        detail: v.getUint32(ErrorBody.Detail, true),
      };
    case Command.Counters: {
      const count = v.getUint16(CountersBody.Count, true);
      if (CountersBody.Values + 4 * count !== b.length) {
        throw new MailboxFormatError(`COUNTERS at offset ${raw.offset} declares ${count} values in ${b.length} bytes`);
      }
      return { kind: "counters", values: Array.from({ length: count }, (_, i) => v.getUint32(CountersBody.Values + 4 * i, true)) };
    }
    case Command.RegWrite:
      return { kind: "regWrite", address: v.getUint32(RegWriteBody.Address, true), value: v.getUint32(RegWriteBody.Value, true) };
    case Command.RegRead:
      return { kind: "regRead", address: v.getUint32(RegReadBody.Address, true) };
    case Command.FrameTx:
      return { kind: "frameTx", frame: b.slice(FrameTxBody.Frame) };
    case Command.TlpTx:
      return { kind: "tlpTx", tlp: b.slice(TlpTxBody.Tlp) };
    case Command.UartTx:
      return { kind: "uartTx", bytes: b.slice(UartTxBody.Bytes) };
    case Command.FlashErase:
      return { kind: "flashErase", address: v.getUint32(FlashEraseBody.Address, true), sectors: v.getUint16(FlashEraseBody.Sectors, true) };
    case Command.FlashProgram:
      return { kind: "flashProgram", address: v.getUint32(FlashProgramBody.Address, true), data: b.slice(FlashProgramBody.Data) };
    case Command.FlashRead:
      return { kind: "flashRead", address: v.getUint32(FlashReadBody.Address, true), length: v.getUint16(FlashReadBody.Length, true) };
    case Command.Hash: {
      const hash = { kind: "hash" as const, context: b[HashBody.Context], op: b[HashBody.Op], tag: v.getUint16(HashBody.Tag, true), data: b.slice(HashBody.Data) };
      const fault = hashFault(hash);
      if (fault) throw new MailboxFormatError(`HASH at offset ${raw.offset}: ${fault}`);
      return hash;
    }
    case Command.Retain: {
      const offset = v.getUint16(RetainBody.Offset, true);
      const data = b.slice(RetainBody.Data);
      if (v.getUint16(RetainBody.Reserved2, true) !== 0) throw new MailboxFormatError(`RETAIN at offset ${raw.offset}: reserved bytes not zero`);
      if (offset + data.length > RETAIN_BYTES) throw new MailboxFormatError(`RETAIN at offset ${raw.offset}: ${data.length} bytes at ${offset} run past the ${RETAIN_BYTES}-byte retained RAM`);
      return { kind: "retain", offset, data };
    }
  }
  throw new MailboxFormatError(`type 0x${raw.type.toString(16)} is not a command`);
}

/** Bytes of Data each HASH op carries. */
const HASH_DATA: Record<HashOp, [number, number]> = {
  [HashOp.Start]: [0, 0],
  [HashOp.StartHmac]: [1, HASH_KEY_MAX],
  [HashOp.Update]: [1, HASH_UPDATE_MAX],
  [HashOp.Finish]: [0, 0],
};

/** Why a HASH command is malformed, from the first field that is wrong (context, op, tag, data length); null when it is not. */
function hashFault(c: Extract<CommandMessage, { kind: "hash" }>): string | null {
  if (c.context >= HASH_CONTEXTS) return `context ${c.context} is not below ${HASH_CONTEXTS}`;
  if (c.op < 1 || c.op > HASH_OP_LAST) return `op ${c.op} is not 1..${HASH_OP_LAST}`;
  if (c.tag !== 0 && c.op !== HashOp.Finish) return `tag ${c.tag} on ${HashOp[c.op]}: only Finish carries one`;
  const [min, max] = HASH_DATA[c.op];
  if (c.data.length < min || c.data.length > max) {
    return `${HashOp[c.op]} carries ${min === max ? "no data" : `${min}..${max} bytes`}, not ${c.data.length}`;
  }
  return null;
}

export function errorName(code: number): string {
  return MailboxError[code] ?? `error ${code}`;
}

/** The wire name of a message type (TIMER_FIRED, SYNC_ACK), or its hex code if unknown. */
export function typeName(type: number): string {
  const name = type < 0x80 ? Event[type] : Command[type];
  return name ? name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() : `0x${type.toString(16).padStart(2, "0")}`;
}

/** Firmware counters from a COUNTERS command, keyed by Counter name. */
export function namedCounters(values: number[]): Record<string, number> {
  const named: Record<string, number> = {};
  values.forEach((value, i) => (named[Counter[i] ?? `counter${i}`] = value));
  return named;
}

export interface Verdict {
  error: MailboxError;
  detail: number;
}

function firstNonZero(b: Uint8Array, offset: number, length: number): number {
  for (let i = 0; i < length; i++) if (b[offset + i] !== 0) return offset + i;
  return -1;
}

/**
 * Reference model of the firmware's input validation (docs/mailbox.md, "Validation order").
 * check() returns the error the firmware reports for a framed event, or null if it accepts it,
 * and updates the model's state exactly as the firmware updates its own.
 */
export class EventChecker {
  booted = false;
  configured = false;
  now = 0n;
  private syncSeen = false;
  private expectedSeq = 0;
  private role = CardRole.Host;
  /** RETAINED bytes still to come, and the offset the next one starts at. */
  private retainedLeft = 0;
  private retainedNext = 0;

  check(raw: RawMessage): Verdict | null {
    if (raw.framing) return { error: raw.framing, detail: 0 };
    const b = raw.body!;
    const v = view(b);
    switch (raw.type as Event) {
      case Event.Time: {
        const now = v.getBigUint64(TimeBody.Now, true);
        if (now < this.now) return { error: MailboxError.OutOfOrder, detail: 0 };
        this.now = now;
        return null;
      }
      case Event.Sync: {
        const seq = v.getUint32(SyncBody.Seq, true);
        const verdict = this.syncSeen && seq !== this.expectedSeq ? { error: MailboxError.OutOfOrder, detail: this.expectedSeq } : null;
        this.syncSeen = true;
        this.expectedSeq = (seq + 1) >>> 0;
        return verdict;
      }
      case Event.Boot:
        return this.checkBoot(b, v);
    }
    if (!this.booted) return { error: MailboxError.OutOfOrder, detail: 0 };
    if (raw.type === Event.TimerFired) {
      const bad = firstNonZero(b, TimerFiredBody.Reserved1, 3);
      if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
      if (b[TimerFiredBody.Channel] >= TIMER_CHANNELS) return { error: MailboxError.BadField, detail: TimerFiredBody.Channel };
    }
    if (raw.type === Event.FabricEvent) {
      const bad = firstNonZero(b, FabricEventBody.Reserved2, 2);
      if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
      if (b[FabricEventBody.Tunnel] >= MAX_TUNNELS) return { error: MailboxError.BadField, detail: FabricEventBody.Tunnel };
      const kind = b[FabricEventBody.Kind];
      if (kind < 1 || kind > FABRIC_EVENT_LAST) return { error: MailboxError.BadField, detail: FabricEventBody.Kind };
    }
    if (raw.type === Event.Config) return this.checkConfig(b, v);
    if (raw.type === Event.FrameRx) {
      const bad = firstNonZero(b, FrameRxBody.Reserved2, 2);
      if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
      const tunnel = b[FrameRxBody.Tunnel];
      if (tunnel >= MAX_TUNNELS && tunnel !== NO_TUNNEL) return { error: MailboxError.BadField, detail: FrameRxBody.Tunnel };
      if (b[FrameRxBody.Port] >= PORTS) return { error: MailboxError.BadField, detail: FrameRxBody.Port };
    }
    if (raw.type === Event.TlpRx) return this.checkTlpRx(b);
    if (raw.type === Event.FlashDone) return checkFlashDone(b, v);
    if (raw.type === Event.HashDone) return checkHashDone(b);
    if (raw.type === Event.Retained) return this.checkRetained(b, v);
    return null;
  }

  /** RETAINED: only while bytes BOOT announced are still to come, in order, none past them. */
  private checkRetained(b: Uint8Array, v: DataView): Verdict | null {
    if (this.retainedLeft === 0) return { error: MailboxError.OutOfOrder, detail: 0 };
    const bad = firstNonZero(b, RetainBody.Reserved2, 2);
    if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
    const length = b.length - RetainBody.Data;
    if (v.getUint16(RetainBody.Offset, true) !== this.retainedNext || length > this.retainedLeft) return { error: MailboxError.BadField, detail: RetainBody.Offset };
    this.retainedNext += length;
    this.retainedLeft -= length;
    return null;
  }

  private checkTlpRx(b: Uint8Array): Verdict | null {
    if (this.role !== CardRole.Host) return { error: MailboxError.OutOfOrder, detail: 0 };
    const bad = firstNonZero(b, TlpRxBody.Reserved2, 2);
    if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
    const reason = b[TlpRxBody.Reason];
    if (reason < 1 || reason > TLP_RX_REASON_LAST) return { error: MailboxError.BadField, detail: TlpRxBody.Reason };
    const port = b[TlpRxBody.Port];
    if (port >= SWITCH_PORTS && port !== NO_PORT) return { error: MailboxError.BadField, detail: TlpRxBody.Port };
    const fmt = b[TlpRxBody.Tlp] >> 5;
    if (fmt > Fmt.Data4DW) return { error: MailboxError.BadField, detail: TlpRxBody.Tlp };
    const expected = TlpRxBody.Tlp + (fmt & 1 ? TlpHeader.Long : TlpHeader.Short) + (fmt & 2 ? 4 : 0);
    if (b.length !== expected) return { error: MailboxError.BadField, detail: TlpRxBody.Tlp };
    return null;
  }

  private checkConfig(b: Uint8Array, v: DataView): Verdict | null {
    if (this.configured) return { error: MailboxError.OutOfOrder, detail: 0 };
    const bad = firstNonZero(b, ConfigBody.Reserved23, 1);
    if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
    const field = configFieldError(b, v);
    if (field >= 0) return { error: MailboxError.BadField, detail: field };
    this.configured = true;
    return null;
  }

  private checkBoot(b: Uint8Array, v: DataView): Verdict | null {
    if (this.booted) return { error: MailboxError.OutOfOrder, detail: 0 };
    if (v.getUint16(BootBody.MailboxVersion, true) !== MAILBOX_VERSION) return { error: MailboxError.Version, detail: MAILBOX_VERSION };
    let bad = (b[BootBody.BootFlags] & ~BootFlag.Trial) !== 0 ? BootBody.BootFlags : firstNonZero(b, BootBody.Reserved25, 3);
    if (bad >= 0) return { error: MailboxError.Reserved, detail: bad };
    if (b[BootBody.Role] > CardRole.Chassis) bad = BootBody.Role;
    else if (b[BootBody.ResetCause] > ResetCause.Update) bad = BootBody.ResetCause;
    else if (b[BootBody.LogLevel] > LogLevel.Debug) bad = BootBody.LogLevel;
    else if (b[BootBody.Slots] < 1 || b[BootBody.Slots] > MAX_SLOTS) bad = BootBody.Slots;
    else if (b[BootBody.BootSlot] >= SLOTS) bad = BootBody.BootSlot;
    else if (v.getUint16(BootBody.Retained, true) > RETAIN_BYTES) bad = BootBody.Retained;
    else if (b[BootBody.Carrier] >> PORTS !== 0) bad = BootBody.Carrier;
    if (bad >= 0) return { error: MailboxError.BadField, detail: bad };
    this.booted = true;
    this.role = b[BootBody.Role];
    this.retainedLeft = v.getUint16(BootBody.Retained, true);
    return null;
  }
}

/** FLASH_DONE: a known operation and status, Length equal to the data carried, data only for a read that succeeded. */
function checkFlashDone(b: Uint8Array, v: DataView): Verdict | null {
  const op = b[FlashDoneBody.Op];
  if (op < 1 || op > FLASH_OP_LAST) return { error: MailboxError.BadField, detail: FlashDoneBody.Op };
  const status = b[FlashDoneBody.Status];
  if (status > FLASH_STATUS_LAST) return { error: MailboxError.BadField, detail: FlashDoneBody.Status };
  const length = v.getUint16(FlashDoneBody.Length, true);
  const carriesData = op === FlashOp.Read && status === FlashStatus.Ok;
  if (length !== b.length - FlashDoneBody.Data || (carriesData ? length === 0 : length !== 0)) {
    return { error: MailboxError.BadField, detail: FlashDoneBody.Length };
  }
  return null;
}

/** HASH_DONE: a context that exists and a known status (the firmware reads the digest only when it is Ok). */
function checkHashDone(b: Uint8Array): Verdict | null {
  if (b[HashDoneBody.Context] >= HASH_CONTEXTS) return { error: MailboxError.BadField, detail: HashDoneBody.Context };
  if (b[HashDoneBody.Status] > HASH_STATUS_LAST) return { error: MailboxError.BadField, detail: HashDoneBody.Status };
  return null;
}

/** Offset of the first out-of-range field of a CONFIG body, in the firmware's order, or -1. */
export function configFieldError(b: Uint8Array, v: DataView): number {
  const group = v.getUint16(ConfigBody.Group, true);
  const protocol = b[ConfigBody.ProtocolMax];
  const policies = b[ConfigBody.AckPolicies];
  const mtu = v.getUint16(ConfigBody.Mtu, true);
  const payload = v.getUint16(ConfigBody.MaxPayload, true);
  const keepalive = v.getUint32(ConfigBody.KeepaliveNs, true);
  const silence = v.getUint32(ConfigBody.SilenceNs, true);
  if (group < 1 || group > 4094) return ConfigBody.Group;
  if (protocol < LINK_PROTOCOL_MIN || protocol > LINK_PROTOCOL_MAX) return ConfigBody.ProtocolMax;
  if (policies === 0 || (policies & ~(AckPolicy.Selective | AckPolicy.GoBackN)) !== 0) return ConfigBody.AckPolicies;
  if (mtu < MTU_MIN || mtu > MTU_MAX) return ConfigBody.Mtu;
  if (payload < 128 || payload > 4096 || (payload & (payload - 1)) !== 0) return ConfigBody.MaxPayload;
  if (keepalive < 1000) return ConfigBody.KeepaliveNs;
  if (silence < SILENCE_MIN_KEEPALIVES * keepalive) return ConfigBody.SilenceNs;
  if (v.getUint32(ConfigBody.GraceNs, true) < silence) return ConfigBody.GraceNs;
  const management = v.getUint16(ConfigBody.ManagementVlan, true);
  if (management < 1 || management > 4094 || management === group) return ConfigBody.ManagementVlan;
  if (b[ConfigBody.Macsec] > MACSEC_SETTING_LAST) return ConfigBody.Macsec;
  return -1;
}

/** The Ethernet ports a BOOT's carrier bits name: `eth0`, `eth0 eth1`, `none`. */
function describeCarrier(bits: number): string {
  return Array.from({ length: PORTS }, (_, p) => p).filter((p) => (bits >> p) & 1).map((p) => `eth${p}`).join(" ") || "none";
}

/** One readable line for a message (trace decoding, timelines). */
export function describe(raw: RawMessage, direction: "events" | "commands"): string {
  const malformed = `${typeName(raw.type)} (type 0x${raw.type.toString(16).padStart(2, "0")}, flags 0x${raw.flags.toString(16)}, ${raw.length}-byte body): malformed`;
  if (raw.framing) return `${malformed}, ${errorName(raw.framing)}`;
  try {
    return describeMessage(direction === "events" ? decodeEvent(raw) : decodeCommand(raw));
  } catch (error) {
    if (!(error instanceof MailboxFormatError)) throw error;
    return `${malformed}: ${error.message}`;
  }
}

/** ": OFFER v2 from 02:10:... to ..., session 0x...", or "" for a frame that is not CONTROL. */
function describeControl(frame: Uint8Array): string {
  const m = decodeControl(frame);
  if (!m) return "";
  const name = ControlType[m.type]?.toUpperCase() ?? `type ${m.type}`;
  return `: ${name} v${m.version} from ${formatMac(m.source)} to ${formatMac(m.destination)}, group ${m.group}${m.session ? `, session ${hex(m.session)}` : ""}`;
}

function ackPolicyNames(bits: number): string {
  const names = [bits & AckPolicy.Selective ? "selective" : "", bits & AckPolicy.GoBackN ? "go-back-N" : ""].filter(Boolean);
  return names.length ? names.join("+") : `0x${bits.toString(16)}`;
}

/** Bytes as a quoted string with C escapes, cut after 48 characters. */
function printable(bytes: Uint8Array): string {
  let text = "";
  for (const c of bytes.subarray(0, 48)) {
    text += c === 0x0d ? "\\r" : c === 0x0a ? "\\n" : c === 0x22 || c === 0x5c ? `\\${String.fromCharCode(c)}` : c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return `"${text}"${bytes.length > 48 ? "..." : ""}`;
}

const hex = (n: number, width = 8) => `0x${(n >>> 0).toString(16).padStart(width, "0")}`;
export const seconds = (ns: bigint) => `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, "0")}s`;

export function describeMessage(m: EventMessage | CommandMessage): string {
  switch (m.kind) {
    case "boot":
      return `BOOT mailbox v${m.mailboxVersion}, ${CardRole[m.role]?.toLowerCase() ?? `role ${m.role}`}, reset ${ResetCause[m.resetCause] ?? m.resetCause}, slot ${m.bootSlot ?? 0}${(m.bootFlags ?? 0) & BootFlag.Trial ? " on trial" : ""}${m.retained ? `, ${m.retained} bytes retained` : ""}, carrier ${describeCarrier(m.carrier ?? 1)}, board ${hex(m.boardId)}, serial ${hex(m.serial)}, log ${LogLevel[m.logLevel] ?? m.logLevel}, ${m.slots} slot(s), mac ${Array.from(m.mac, (x) => x.toString(16).padStart(2, "0")).join(":")}`;
    case "time":
      return `TIME ${seconds(m.now)}`;
    case "sync":
      return `SYNC seq ${m.seq}`;
    case "timerFired":
      return `TIMER_FIRED channel ${m.channel}`;
    case "entropy":
      return `ENTROPY ${m.bytes.length} bytes`;
    case "countersQuery":
      return "COUNTERS_QUERY";
    case "regValue":
      return `REG_VALUE ${hex(m.address, 4)} = ${hex(m.value)}`;
    case "fabricEvent":
      return `FABRIC_EVENT tunnel ${m.tunnel} ${FabricEventKind[m.event] ?? `kind ${m.event}`} arg ${m.arg}`;
    case "config":
      return `CONFIG group ${m.group}, protocol <= ${m.protocolMax}, ack ${ackPolicyNames(m.ackPolicies)}, MTU ${m.mtu}, max payload ${m.maxPayload}, keepalive ${m.keepaliveNs} ns, silence ${m.silenceNs} ns, grace ${m.graceNs} ns`;
    case "frameRx":
      return `FRAME_RX ${m.tunnel === NO_TUNNEL ? "no tunnel" : `tunnel ${m.tunnel}`}, port ${m.port}, ${m.frame.length} bytes${describeControl(m.frame)}`;
    case "frameTx":
      return `FRAME_TX ${m.frame.length} bytes${describeControl(m.frame)}`;
    case "tlpRx":
      return `TLP_RX ${TlpRxReason[m.reason]?.toLowerCase() ?? `reason ${m.reason}`}, ${m.port === NO_PORT ? "no port" : `port ${m.port}`}: ${describeTlpHeader(m.tlp)}`;
    case "tlpTx":
      return `TLP_TX ${describeTlpHeader(m.tlp)}`;
    case "uartRx":
      return `UART_RX ${m.bytes.length} bytes ${printable(m.bytes)}`;
    case "uartTx":
      return `UART_TX ${m.bytes.length} bytes ${printable(m.bytes)}`;
    case "flashDone":
      return `FLASH_DONE ${FlashOp[m.op]?.toLowerCase() ?? `op ${m.op}`} at ${hex(m.address, 5)}: ${FlashStatus[m.status] ?? `status ${m.status}`}${m.data.length ? `, ${m.data.length} bytes` : ""}`;
    case "flashErase":
      return `FLASH_ERASE ${hex(m.address, 5)}, ${m.sectors} sector(s)`;
    case "flashProgram":
      return `FLASH_PROGRAM ${hex(m.address, 5)}, ${m.data.length} bytes`;
    case "flashRead":
      return `FLASH_READ ${hex(m.address, 5)}, ${m.length} bytes`;
    case "hash":
      return `HASH context ${m.context} ${HashOp[m.op] ?? `op ${m.op}`}${m.op === HashOp.StartHmac ? `, ${m.data.length}-byte key` : m.data.length ? `, ${m.data.length} bytes` : ""}${m.op === HashOp.Finish ? `, tag ${m.tag}` : ""}`;
    case "retained":
      return `RETAINED ${m.data.length} bytes at ${m.offset}`;
    case "retain":
      return `RETAIN ${m.data.length} bytes at ${m.offset}`;
    case "hashDone":
      return `HASH_DONE context ${m.context}, tag ${m.tag}: ${HashStatus[m.status] ?? `status ${m.status}`}${m.status === HashStatus.Ok ? `, digest ${Buffer.from(m.digest.subarray(0, 8)).toString("hex")}...` : ""}`;
    case "hello":
      return `HELLO mailbox v${m.mailboxVersion}, ${m.status === HelloStatus.Ok ? "ok" : (HelloStatus[m.status] ?? `status ${m.status}`)}, firmware ${m.firmware.join(".")}`;
    case "syncAck":
      return `SYNC_ACK seq ${m.seq}`;
    case "timerArm":
      return `TIMER_ARM channel ${m.channel} at ${seconds(m.deadline)}`;
    case "timerDisarm":
      return `TIMER_DISARM channel ${m.channel}`;
    case "error":
      return `ERROR ${errorName(m.code)}: ${typeName(m.messageType)} (${m.bodyLength}-byte body) at offset ${m.streamOffset}, detail ${m.detail}`;
    case "regWrite":
      return `REG_WRITE ${hex(m.address, 4)} = ${hex(m.value)}`;
    case "regRead":
      return `REG_READ ${hex(m.address, 4)}`;
    case "counters":
      return `COUNTERS ${Object.entries(namedCounters(m.values)).filter(([, v]) => v !== 0).map(([k, v]) => `${k}=${v}`).join(" ")}`;
  }
}
