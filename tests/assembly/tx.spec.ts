import * as tx from "../../assembly/abi/tx";
import * as counters from "../../assembly/counters";
import {
  MAILBOX_VERSION, HEADER_SIZE, Command, Counter, HelloStatus, MailboxError, Event,
  HelloBody, SyncAckBody, TimerArmBody, TimerDisarmBody, ErrorBody, CountersBody, TlpTxBody,
} from "../../board/map/mailbox";
import { message, set8, set16, set32, set64, setBytes, txBytes } from "./helpers";

const COUNTERS_SIZE = CountersBody.Values + 4 * Counter.Count;
const DEADLINE: u64 = 0x0000_0123_4567_89ab; // above 2^32: both halves must be written

function helloBytes(status: i32, major: i32, minor: i32, patch: i32): u8[] {
  const msg = message(Command.Hello, HelloBody.Size);
  set16(msg, HelloBody.MailboxVersion, MAILBOX_VERSION);
  set8(msg, HelloBody.Status, status);
  set8(msg, HelloBody.FirmwareMajor, major);
  set8(msg, HelloBody.FirmwareMinor, minor);
  return set8(msg, HelloBody.FirmwarePatch, patch);
}

function syncAckBytes(seq: u32): u8[] {
  return set32(message(Command.SyncAck, SyncAckBody.Size), SyncAckBody.Seq, seq);
}

function timerArmBytes(channel: i32, deadline: u64): u8[] {
  const msg = message(Command.TimerArm, TimerArmBody.Size);
  set8(msg, TimerArmBody.Channel, channel);
  return set64(msg, TimerArmBody.Deadline, deadline);
}

function timerDisarmBytes(channel: i32): u8[] {
  return set8(message(Command.TimerDisarm, TimerDisarmBody.Size), TimerDisarmBody.Channel, channel);
}

/** Sets every counter to a distinct value: 0x1000 * (index + 1) + index. */
function distinctCounters(): void {
  for (let i = 0; i < Counter.Count; i++) counters.add(i, 0x1000 * (i + 1) + i);
}

describe("tx command encoders", () => {
  beforeEach(() => {
    tx.discard();
    counters.clearAll();
    // Stale bytes where the next commands go, so that every expected zero (flags,
    // reserved fields, unused high bytes) proves the encoder wrote it.
    memory.fill(tx.buffered(), 0xaa, 512);
  });

  it("encodes HELLO with the mailbox version, status and firmware version", () => {
    tx.hello(HelloStatus.VersionMismatch, 1, 2, 3);
    expect(txBytes()).toStrictEqual(helloBytes(HelloStatus.VersionMismatch, 1, 2, 3));
  });

  it("encodes SYNC_ACK with the acknowledged sequence number", () => {
    tx.syncAck(0x89abcdef);
    expect(txBytes()).toStrictEqual(syncAckBytes(0x89abcdef));
  });

  it("encodes TIMER_ARM with the channel and a 64-bit deadline", () => {
    tx.timerArm(0, DEADLINE);
    expect(txBytes()).toStrictEqual(timerArmBytes(0, DEADLINE));
    expect(load<u32>(tx.buffered() + HEADER_SIZE + TimerArmBody.Deadline + 4)).toBe(0x123, "deadline high word");
  });

  it("encodes TIMER_DISARM with the channel", () => {
    tx.timerDisarm(0);
    expect(txBytes()).toStrictEqual(timerDisarmBytes(0));
  });

  it("encodes TLP_TX as the TLP's bytes, its length the body length", () => {
    const tlp = memory.data<u8>([0x4a, 0, 0, 1, 0x01, 0x00, 0x00, 0x04, 0x00, 0x08, 0x21, 0x00, 0xff, 0x1f, 0x01, 0x00]);
    tx.tlpTx(tlp, TlpTxBody.MinSize + 4);
    const expected = message(Command.TlpTx, 16);
    setBytes(expected, TlpTxBody.Tlp, [0x4a, 0, 0, 1, 0x01, 0x00, 0x00, 0x04, 0x00, 0x08, 0x21, 0x00, 0xff, 0x1f, 0x01, 0x00]);
    expect(txBytes()).toStrictEqual(expected);
  });

  it("encodes ERROR with code, message type, body length, stream offset and detail", () => {
    tx.error(MailboxError.BadField, Event.Boot, 0x1234, 0xfedcba98, 0x01020304);
    const msg = message(Command.Error, ErrorBody.Size);
    set8(msg, ErrorBody.Code, MailboxError.BadField);
    set8(msg, ErrorBody.MessageType, Event.Boot);
    set16(msg, ErrorBody.BodyLength, 0x1234);
    set32(msg, ErrorBody.StreamOffset, 0xfedcba98);
    set32(msg, ErrorBody.Detail, 0x01020304);
    expect(txBytes()).toStrictEqual(msg);
  });

  it("encodes COUNTERS with Counter.Count values in Counter order", () => {
    distinctCounters();
    tx.countersReport();
    const msg = message(Command.Counters, COUNTERS_SIZE);
    set16(msg, CountersBody.Count, Counter.Count);
    for (let i = 0; i < Counter.Count; i++) {
      set32(msg, CountersBody.Values + 4 * i, counters.get(i));
    }
    expect(txBytes()).toStrictEqual(msg);
    // Every value other than the two the report itself moves is the one set above.
    const body = tx.buffered() + HEADER_SIZE + CountersBody.Values;
    for (let i = 0; i < Counter.Count; i++) {
      if (i == Counter.CommandsOut || i == Counter.BytesOut) continue;
      expect(load<u32>(body + 4 * i)).toBe((0x1000 * (i + 1) + i) as u32, "counter " + i.toString());
    }
  });

  it("includes the COUNTERS report itself in CommandsOut and BytesOut", () => {
    distinctCounters();
    const commandsBefore = counters.get(Counter.CommandsOut);
    const bytesBefore = counters.get(Counter.BytesOut);
    tx.countersReport();
    const body = tx.buffered() + HEADER_SIZE + CountersBody.Values;
    expect(load<u32>(body + 4 * Counter.CommandsOut)).toBe(commandsBefore + 1);
    expect(load<u32>(body + 4 * Counter.BytesOut)).toBe(bytesBefore + HEADER_SIZE + COUNTERS_SIZE);
  });

  it("lays out successive commands back to back", () => {
    tx.syncAck(7);
    tx.timerArm(0, DEADLINE);
    tx.timerDisarm(0);
    tx.hello(HelloStatus.Ok, 0, 1, 0);
    const expected = syncAckBytes(7)
      .concat(timerArmBytes(0, DEADLINE))
      .concat(timerDisarmBytes(0))
      .concat(helloBytes(HelloStatus.Ok, 0, 1, 0));
    expect(txBytes()).toStrictEqual(expected);
  });

  it("counts each command in CommandsOut and its header and body in BytesOut", () => {
    tx.syncAck(1);
    expect(counters.get(Counter.CommandsOut)).toBe(1);
    expect(counters.get(Counter.BytesOut)).toBe(HEADER_SIZE + SyncAckBody.Size);
    tx.timerArm(0, DEADLINE);
    tx.error(MailboxError.Truncated, 0, 0, 0, 0);
    expect(counters.get(Counter.CommandsOut)).toBe(3);
    expect(counters.get(Counter.BytesOut)).toBe(3 * HEADER_SIZE + SyncAckBody.Size + TimerArmBody.Size + ErrorBody.Size);
    expect(counters.get(Counter.EventsIn)).toBe(0, "no other counter moves");
  });

  it("empties the buffer on flush()", () => {
    tx.syncAck(1);
    tx.flush();
    expect(tx.bufferedLength()).toBe(0);
    expect(counters.get(Counter.CommandsOut)).toBe(1, "flushing is not a command");
  });

  it("flushes what it holds when the next command does not fit", () => {
    const size = HEADER_SIZE + TimerArmBody.Size;
    const fit = 4096 / size; // the buffer's capacity in TIMER_ARMs
    for (let i = 0; i < fit; i++) tx.timerArm(0, i);
    expect(tx.bufferedLength()).toBe(fit * size);
    tx.syncAck(42);
    expect(txBytes()).toStrictEqual(syncAckBytes(42));
  });
});
