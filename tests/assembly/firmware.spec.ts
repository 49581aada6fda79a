import * as firmware from "../../assembly/firmware";
import { CardReg } from "../../board/map/registers";
import { SLOTS } from "../../board/map/flash";
import * as rx from "../../assembly/abi/rx";
import * as tx from "../../assembly/abi/tx";
import * as clock from "../../assembly/clock";
import * as counters from "../../assembly/counters";
import * as entropy from "../../assembly/entropy";
import * as timers from "../../assembly/timers";
import { TimerId } from "../../assembly/timers";
import { KICK_NS } from "../../assembly/system";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../../assembly/version";
import {
  MAILBOX_VERSION, HEADER_SIZE, MAX_BODY, MAX_SLOTS, TIMER_CHANNELS, Event, Command, Counter,
  MailboxError, HelloStatus, CardRole, ResetCause, LogLevel, errorCounter,
  BootBody, TimeBody, SyncBody, TimerFiredBody, HelloBody, SyncAckBody, TimerArmBody, ErrorBody,
  CountersBody, FabricEventBody, RegValueBody, RegReadBody, MAX_TUNNELS, FABRIC_EVENT_LAST,
  FlashDoneBody, FlashOp, FlashStatus, FLASH_OP_LAST, FLASH_STATUS_LAST, HashDoneBody, HashStatus, HASH_CONTEXTS, HASH_STATUS_LAST, RETAIN_BYTES,
} from "../../board/map/mailbox";
import {
  Sent, message, set8, set16, set32, typeOf, bodyLengthOf, deliver, deliverAndAnswer, sent, sentTypes,
  bootEvent, timeEvent, syncEvent, timerFiredEvent, entropyEvent, countersQueryEvent, logHistory,
  uartRxEvents, ascii, flashDoneEvent, expectText,
} from "./helpers";

const SECOND: u64 = 1_000_000_000;
const BOOT_TIME: u64 = 5 * SECOND; // above 2^32 ns, so deadlines need both halves

let streamed: u32 = 0; // stream offset of the next byte delivered

function fresh(): void {
  firmware.reset();
  tx.discard();
  streamed = 0;
}

/** Delivers `bytes` as one read and handles them; returns only the commands they caused. */
function handle(bytes: u8[]): Sent[] {
  tx.discard();
  streamed += bytes.length;
  deliverAndAnswer(bytes);
  return sent();
}

/** TIME, a valid BOOT and the first SYNC, as the board starts a card. */
function boot(): void {
  handle(timeEvent(BOOT_TIME).concat(bootEvent()).concat(syncEvent(0)));
  expect(firmware.isBooted()).toBe(true, "booted");
  tx.discard();
}

function bootWith(offset: i32, value: u32): u8[] {
  return set8(bootEvent(), offset, value);
}

function expectError(command: Sent, code: i32, type: i32, length: i32, offset: u32, detail: u32): void {
  expect(command.type).toBe(Command.Error, "an ERROR");
  expect(command.length).toBe(ErrorBody.Size, "ERROR body length");
  expect(command.u8(ErrorBody.Code)).toBe(code, "error code");
  expect(command.u8(ErrorBody.MessageType)).toBe(type, "offending type");
  expect(command.u16(ErrorBody.BodyLength)).toBe(length, "declared body length");
  expect(command.u32(ErrorBody.StreamOffset)).toBe(offset, "stream offset");
  expect(command.u32(ErrorBody.Detail)).toBe(detail, "detail");
}

/** Handles `bytes`, one event, and expects exactly one ERROR for it. */
function expectRejected(bytes: u8[], code: i32, detail: u32): void {
  const at = streamed;
  const out = handle(bytes);
  expect(out.length).toBe(1, "only an ERROR");
  expectError(out[0], code, typeOf(bytes), bodyLengthOf(bytes), at, detail);
}

function expectHello(command: Sent, status: i32): void {
  expect(command.type).toBe(Command.Hello, "a HELLO");
  expect(command.u16(HelloBody.MailboxVersion)).toBe(MAILBOX_VERSION, "mailbox version");
  expect(command.u8(HelloBody.Status)).toBe(status, "status");
  expect(command.u8(HelloBody.FirmwareMajor)).toBe(FIRMWARE_MAJOR, "major");
  expect(command.u8(HelloBody.FirmwareMinor)).toBe(FIRMWARE_MINOR, "minor");
  expect(command.u8(HelloBody.FirmwarePatch)).toBe(FIRMWARE_PATCH, "patch");
}

function expectSyncAck(command: Sent, seq: u32): void {
  expect(command.type).toBe(Command.SyncAck, "a SYNC_ACK");
  expect(command.u32(SyncAckBody.Seq)).toBe(seq, "acknowledged seq");
}

function expectTimerArm(command: Sent, deadline: u64): void {
  expect(command.type).toBe(Command.TimerArm, "a TIMER_ARM");
  expect(command.u8(TimerArmBody.Channel)).toBe(0, "channel");
  expect(command.u64(TimerArmBody.Deadline)).toBe(deadline, "deadline");
}

/** The one command of `type` among `out` (there must be exactly one). */
function only(out: Sent[], type: i32): Sent {
  let found = -1;
  let n = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i].type == type) {
      found = i;
      n++;
    }
  }
  expect(n).toBe(1, "one command of type 0x" + type.toString(16));
  return out[found];
}

/** Heartbeat records in the firmware's log history. */
function heartbeats(): i32 {
  const lines = logHistory().split("\n");
  let n = 0;
  for (let i = 0; i < lines.length; i++) if (lines[i].includes(" I heartbeat: ")) n++;
  return n;
}

/** Handles `bytes` and returns the types of the commands they caused. */
function sentTypesOf(bytes: u8[]): i32[] {
  handle(bytes);
  return sentTypes();
}

/** Snapshot of the counters, to compare after handling one event. */
function snapshot(): u32[] {
  const values = new Array<u32>(Counter.Count);
  for (let i = 0; i < Counter.Count; i++) values[i] = counters.get(i);
  return values;
}

/** Handles `bytes`, rejected with `code`: Errors and that code's counter move by one, nothing else. */
function expectCounted(bytes: u8[], code: i32): void {
  const before = snapshot();
  const out = handle(bytes);
  expect(out.length).toBeGreaterThanOrEqual(1);
  expect(out[0].u8(ErrorBody.Code)).toBe(code, "error code");
  for (let i = Counter.Errors; i < Counter.Count; i++) {
    const moved: u32 = i == Counter.Errors || i == errorCounter(code) ? 1 : 0;
    expect(counters.get(i) - before[i]).toBe(moved, "counter " + i.toString() + " for error " + code.toString());
  }
  expect(counters.get(Counter.EventsIn)).toBe(before[Counter.EventsIn], "EventsIn for error " + code.toString());
}

/** A malformed message followed by a SYNC: ERROR for the first at offset 0, SYNC_ACK for the second. */
function expectSkippedThenHandled(bad: u8[], code: i32): void {
  const out = handle(bad.concat(syncEvent(77)));
  expect(out.length).toBe(2);
  expectError(out[0], code, typeOf(bad), bodyLengthOf(bad), 0, 0);
  expectSyncAck(out[1], 77);
}

describe("BOOT", () => {
  beforeEach(fresh);

  it("answers a valid BOOT with HELLO Ok and the firmware version, and boots", () => {
    expectHello(only(handle(bootEvent()), Command.Hello), HelloStatus.Ok);
    expect(firmware.isBooted()).toBe(true);
    expect(firmware.cardRole()).toBe(CardRole.Host);
    expect(counters.get(Counter.EventsIn)).toBe(1);
  });

  it("accepts the largest valid value of each BOOT field", () => {
    const event = bootWith(BootBody.Role, CardRole.Chassis);
    set8(event, BootBody.ResetCause, ResetCause.Update);
    set8(event, BootBody.LogLevel, LogLevel.Debug);
    set8(event, BootBody.Slots, MAX_SLOTS);
    const out = handle(event);
    expectHello(only(out, Command.Hello), HelloStatus.Ok);
    // A chassis card asks its fabric which slots hold a device.
    expect(only(out, Command.RegRead).u32(RegReadBody.Address)).toBe(CardReg.SlotsPresent);
    expect(firmware.cardRole()).toBe(CardRole.Chassis);
  });

  it("answers another mailbox version with ERROR(Version) then HELLO(VersionMismatch) and stays unbooted", () => {
    const out = handle(set16(bootEvent(), BootBody.MailboxVersion, MAILBOX_VERSION + 1));
    expect(out.length).toBe(2);
    expectError(out[0], MailboxError.Version, Event.Boot, BootBody.Size, 0, MAILBOX_VERSION);
    expectHello(out[1], HelloStatus.VersionMismatch);
    expect(firmware.isBooted()).toBe(false);
    expectRejected(countersQueryEvent(), MailboxError.OutOfOrder, 0);
  });

  it("rejects a second BOOT as OutOfOrder without a HELLO", () => {
    handle(bootEvent());
    expectRejected(bootEvent(), MailboxError.OutOfOrder, 0);
    expect(firmware.isBooted()).toBe(true);
  });

  it("rejects more retained bytes than the retained RAM holds with BadField Retained", () => {
    expectRejected(set16(bootEvent(), BootBody.Retained, RETAIN_BYTES + 1), MailboxError.BadField, BootBody.Retained);
    expect(firmware.isBooted()).toBe(false);
  });

  it("rejects an unknown boot flag with Reserved and the byte's offset", () => {
    expectRejected(bootWith(BootBody.BootFlags, 0x02), MailboxError.Reserved, BootBody.BootFlags);
    expect(firmware.isBooted()).toBe(false);
  });

  it("rejects out-of-range fields with BadField and the field's offset", () => {
    const offsets: i32[] = [BootBody.Role, BootBody.ResetCause, BootBody.LogLevel, BootBody.Slots, BootBody.Slots, BootBody.BootSlot];
    const values: u32[] = [CardRole.Chassis + 1, ResetCause.Update + 1, LogLevel.Debug + 1, 0, MAX_SLOTS + 1, SLOTS];
    for (let i = 0; i < offsets.length; i++) {
      fresh();
      expectRejected(bootWith(offsets[i], values[i]), MailboxError.BadField, offsets[i]);
      expect(firmware.isBooted()).toBe(false, "unbooted after field " + offsets[i].toString() + " = " + values[i].toString());
    }
  });
});

describe("events before BOOT", () => {
  beforeEach(fresh);

  it("rejects TIMER_FIRED, ENTROPY and COUNTERS_QUERY as OutOfOrder", () => {
    expectRejected(timerFiredEvent(0), MailboxError.OutOfOrder, 0);
    expectRejected(entropyEvent(8), MailboxError.OutOfOrder, 0);
    expectRejected(countersQueryEvent(), MailboxError.OutOfOrder, 0);
    expect(entropy.bytesAvailable()).toBe(0, "entropy not fed");
    expect(counters.get(Counter.EventsIn)).toBe(0, "nothing accepted");
  });

  it("accepts TIME and SYNC", () => {
    const out = handle(timeEvent(BOOT_TIME).concat(syncEvent(0)));
    expect(out.length).toBe(1);
    expectSyncAck(out[0], 0);
    expect(clock.now).toBe(BOOT_TIME);
    expect(counters.get(Counter.EventsIn)).toBe(2);
  });
});

describe("TIME", () => {
  beforeEach(fresh);

  it("moves the clock and emits nothing", () => {
    expect(handle(timeEvent(BOOT_TIME)).length).toBe(0);
    expect(clock.now).toBe(BOOT_TIME);
  });

  it("rejects time going backwards as OutOfOrder and keeps the clock", () => {
    handle(timeEvent(BOOT_TIME));
    expectRejected(timeEvent(BOOT_TIME - 1), MailboxError.OutOfOrder, 0);
    expect(clock.now).toBe(BOOT_TIME);
  });
});

describe("SYNC", () => {
  beforeEach(fresh);

  it("acknowledges a SYNC with its sequence number and counts the batch", () => {
    const out = handle(syncEvent(0x12345678));
    expect(out.length).toBe(1);
    expectSyncAck(out[0], 0x12345678);
    expect(counters.get(Counter.Batches)).toBe(1);
  });

  it("accepts any sequence number on the first SYNC, then expects its successor mod 2^32", () => {
    expect(sentTypesOf(syncEvent(0xffffffff))).toStrictEqual([Command.SyncAck]);
    expect(sentTypesOf(syncEvent(0))).toStrictEqual([Command.SyncAck]);
    expect(counters.get(Counter.Errors)).toBe(0);
  });

  it("reports a gap as OutOfOrder with the expected seq, still acknowledges, and follows the received seq", () => {
    handle(syncEvent(5));
    const at = streamed;
    const out = handle(syncEvent(9));
    expect(out.length).toBe(2);
    expectError(out[0], MailboxError.OutOfOrder, Event.Sync, SyncBody.Size, at, 6);
    expectSyncAck(out[1], 9);
    expect(sentTypesOf(syncEvent(10))).toStrictEqual([Command.SyncAck]);
    expect(counters.get(Counter.Batches)).toBe(3, "every SYNC is a batch");
  });

  it("reports a repeated seq as OutOfOrder", () => {
    handle(syncEvent(3));
    const at = streamed;
    const out = handle(syncEvent(3));
    expect(out.length).toBe(2);
    expectError(out[0], MailboxError.OutOfOrder, Event.Sync, SyncBody.Size, at, 4);
    expectSyncAck(out[1], 3);
  });
});

function hashDone(context: i32, status: i32, tag: i32): u8[] {
  const event = message(Event.HashDone, HashDoneBody.Size);
  set8(event, HashDoneBody.Context, context);
  set8(event, HashDoneBody.Status, status);
  return set16(event, HashDoneBody.Tag, tag);
}

describe("HASH_DONE", () => {
  beforeEach(() => {
    fresh();
    boot();
  });

  it("rejects a context at or above HASH_CONTEXTS, then a status past the last, with BadField", () => {
    expectRejected(hashDone(HASH_CONTEXTS, HashStatus.Ok, 0), MailboxError.BadField, HashDoneBody.Context);
    expectRejected(hashDone(HASH_CONTEXTS, HASH_STATUS_LAST + 1, 0), MailboxError.BadField, HashDoneBody.Context);
    expectRejected(hashDone(0, HASH_STATUS_LAST + 1, 0), MailboxError.BadField, HashDoneBody.Status);
  });

  it("drops a digest nobody waits for, and logs the engine's Idle status as an error", () => {
    expect(handle(hashDone(0, HashStatus.Ok, 7)).length).toBe(0, "no Finish with tag 7 on context 0");
    expect(handle(hashDone(1, HashStatus.Idle, 0)).length).toBe(0);
    expectText(logHistory(), "E hash: the engine had no hash on context 1\n");
    expect(counters.get(Counter.Errors)).toBe(0, "well-formed: no mailbox error");
  });
});

describe("TIMER_FIRED", () => {
  beforeEach(() => {
    fresh();
    boot();
  });

  it("rejects a channel at or above TIMER_CHANNELS with BadField", () => {
    expectRejected(timerFiredEvent(TIMER_CHANNELS), MailboxError.BadField, TimerFiredBody.Channel);
    expectRejected(timerFiredEvent(0xff), MailboxError.BadField, TimerFiredBody.Channel);
  });

  it("rejects a non-zero reserved byte with Reserved and the byte's offset", () => {
    for (let offset = TimerFiredBody.Reserved1; offset < TimerFiredBody.Size; offset++) {
      expectRejected(set8(timerFiredEvent(0), offset, 0x80), MailboxError.Reserved, offset);
    }
  });

  it("checks the reserved bytes before the channel", () => {
    const event = set8(timerFiredEvent(TIMER_CHANNELS), TimerFiredBody.Reserved1 + 2, 1);
    expectRejected(event, MailboxError.Reserved, TimerFiredBody.Reserved1 + 2);
  });

  it("counts nothing as fired when no timer is due", () => {
    // The earliest deadline after BOOT is the watchdog's first kick.
    const out = handle(timeEvent(BOOT_TIME + KICK_NS - 1).concat(timerFiredEvent(0)));
    expect(out.length).toBe(0);
    expect(counters.get(Counter.TimersFired)).toBe(0);
  });
});

function fabricEvent(tunnel: u32, kind: u32, arg: u32): u8[] {
  return set32(set8(set8(message(Event.FabricEvent, FabricEventBody.Size), FabricEventBody.Tunnel, tunnel), FabricEventBody.Kind, kind), FabricEventBody.Arg, arg);
}

describe("FABRIC_EVENT and REG_VALUE", () => {
  beforeEach(() => {
    fresh();
    boot();
  });

  it("accepts every event kind for every tunnel and counts it", () => {
    for (let tunnel = 0; tunnel < MAX_TUNNELS; tunnel++) {
      for (let kind = 1; kind <= FABRIC_EVENT_LAST; kind++) {
        expect(handle(fabricEvent(tunnel as u32, kind as u32, 1000)).length).toBe(0);
      }
    }
    expect(counters.get(Counter.FabricEvents)).toBe(MAX_TUNNELS * FABRIC_EVENT_LAST);
    expect(counters.get(Counter.Errors)).toBe(0);
  });

  it("rejects a tunnel index at or above MAX_TUNNELS, then a kind out of range, with BadField", () => {
    expectRejected(fabricEvent(MAX_TUNNELS as u32, 1, 0), MailboxError.BadField, FabricEventBody.Tunnel);
    expectRejected(fabricEvent(0, 0, 0), MailboxError.BadField, FabricEventBody.Kind);
    expectRejected(fabricEvent(0, (FABRIC_EVENT_LAST + 1) as u32, 0), MailboxError.BadField, FabricEventBody.Kind);
    expect(counters.get(Counter.FabricEvents)).toBe(0);
  });

  it("checks the reserved bytes first", () => {
    expectRejected(set8(fabricEvent(MAX_TUNNELS as u32, 0, 0), FabricEventBody.Reserved2 + 1, 1), MailboxError.Reserved, FabricEventBody.Reserved2 + 1);
  });

  it("accepts a register value", () => {
    const value = set32(set32(message(Event.RegValue, RegValueBody.Size), RegValueBody.Address, 0x118), RegValueBody.Value, 1500);
    expect(handle(value).length).toBe(0);
    expect(counters.get(Counter.EventsIn)).toBeGreaterThan(0);
    expect(counters.get(Counter.Errors)).toBe(0);
  });
});

describe("UART_RX and FLASH_DONE", () => {
  beforeEach(fresh);

  it("rejects both before BOOT as OutOfOrder", () => {
    expectRejected(uartRxEvents(ascii("help\r")), MailboxError.OutOfOrder, 0);
    expectRejected(flashDoneEvent(FlashOp.Erase, FlashStatus.Ok, 0), MailboxError.OutOfOrder, 0);
  });

  it("accepts and counts UART_RX", () => {
    boot();
    const before = counters.get(Counter.EventsIn);
    expect(handle(uartRxEvents(ascii("help\r"))).length).toBe(0, "the console answers at the SYNC");
    expect(counters.get(Counter.EventsIn)).toBe(before + 1);
    expect(counters.get(Counter.Errors)).toBe(0);
  });

  it("accepts a FLASH_DONE of each operation, a read with its data", () => {
    boot();
    expect(handle(flashDoneEvent(FlashOp.Read, FlashStatus.Ok, 0, [1, 2, 3])).length).toBe(0);
    expect(handle(flashDoneEvent(FlashOp.Erase, FlashStatus.Ok, 0)).length).toBe(0);
    expect(handle(flashDoneEvent(FlashOp.Program, FlashStatus.Range, 0)).length).toBe(0);
    expect(handle(flashDoneEvent(FlashOp.Read, FlashStatus.Busy, 0)).length).toBe(0);
    expect(counters.get(Counter.Errors)).toBe(0);
    expect(counters.get(Counter.FlashErrors)).toBe(2, "the two that failed");
  });

  it("rejects an unknown operation, then an unknown status, with BadField and the field's offset", () => {
    boot();
    expectRejected(flashDoneEvent(0, FlashStatus.Ok, 0), MailboxError.BadField, FlashDoneBody.Op);
    expectRejected(flashDoneEvent(FLASH_OP_LAST + 1, FLASH_STATUS_LAST + 1, 0), MailboxError.BadField, FlashDoneBody.Op);
    expectRejected(flashDoneEvent(FlashOp.Erase, FLASH_STATUS_LAST + 1, 0), MailboxError.BadField, FlashDoneBody.Status);
  });

  it("rejects a Length that is not the data carried, or data where none belongs, with BadField at Length", () => {
    boot();
    expectRejected(set16(flashDoneEvent(FlashOp.Read, FlashStatus.Ok, 0, [1, 2, 3]), FlashDoneBody.Length, 2), MailboxError.BadField, FlashDoneBody.Length);
    expectRejected(flashDoneEvent(FlashOp.Read, FlashStatus.Ok, 0), MailboxError.BadField, FlashDoneBody.Length);
    expectRejected(flashDoneEvent(FlashOp.Read, FlashStatus.Busy, 0, [1]), MailboxError.BadField, FlashDoneBody.Length);
    expectRejected(flashDoneEvent(FlashOp.Program, FlashStatus.Ok, 0, [1]), MailboxError.BadField, FlashDoneBody.Length);
    expect(counters.get(Counter.FlashErrors)).toBe(0, "nothing reached the update");
  });
});

describe("heartbeat", () => {
  beforeEach(fresh);

  // The watchdog's kicks (every KICK_NS) share the hardware channel: the TIMER_ARM of a
  // batch is for the earliest logical timer, so the heartbeat's own deadline is read from
  // the timer service, and its runs from the log.

  it("is started at BOOT one second after boot time, and the first SYNC arms the earliest deadline", () => {
    const out = handle(timeEvent(BOOT_TIME).concat(bootEvent()).concat(syncEvent(0)));
    expect(timers.isRunning(TimerId.Heartbeat)).toBe(true, "heartbeat running");
    expect(timers.deadline(TimerId.Heartbeat)).toBe(BOOT_TIME + SECOND, "heartbeat deadline");
    expectHello(only(out, Command.Hello), HelloStatus.Ok);
    expectTimerArm(only(out, Command.TimerArm), BOOT_TIME + KICK_NS);
    expectSyncAck(out[out.length - 1], 0);
  });

  it("does not run before its deadline, while the watchdog's kicks do", () => {
    boot();
    const out = handle(timeEvent(BOOT_TIME + SECOND - 1).concat(timerFiredEvent(0)).concat(syncEvent(1)));
    expect(heartbeats()).toBe(0, "no heartbeat record");
    expect(timers.deadline(TimerId.Heartbeat)).toBe(BOOT_TIME + SECOND, "heartbeat deadline kept");
    expect(counters.get(Counter.TimersFired)).toBe(1, "the watchdog's kick only");
    expectTimerArm(only(out, Command.TimerArm), BOOT_TIME + SECOND);
  });

  it("fires at its deadline, counts TimersFired and is re-armed one second later", () => {
    boot();
    const out = handle(timeEvent(BOOT_TIME + SECOND).concat(timerFiredEvent(0)).concat(syncEvent(1)));
    expect(heartbeats()).toBe(1, "one heartbeat record");
    expect(timers.deadline(TimerId.Heartbeat)).toBe(BOOT_TIME + 2 * SECOND, "heartbeat deadline");
    expect(counters.get(Counter.TimersFired)).toBe(2, "the heartbeat and the watchdog's kick");
    expectTimerArm(only(out, Command.TimerArm), BOOT_TIME + SECOND + KICK_NS);
    expectSyncAck(out[out.length - 1], 1);
  });

  it("keeps its period when it fires late", () => {
    boot();
    handle(timeEvent(BOOT_TIME + SECOND + SECOND / 4).concat(timerFiredEvent(0)).concat(syncEvent(1)));
    expect(heartbeats()).toBe(1, "one heartbeat record");
    expect(timers.deadline(TimerId.Heartbeat)).toBe(BOOT_TIME + 2 * SECOND, "heartbeat deadline");
  });

  it("runs once, not once per missed period, when it fires long after its deadline", () => {
    boot();
    const late: u64 = BOOT_TIME + 1_000_000 * SECOND + SECOND / 2;
    handle(timeEvent(late).concat(timerFiredEvent(0)).concat(syncEvent(1)));
    expect(heartbeats()).toBe(1, "one heartbeat record");
    expect(timers.deadline(TimerId.Heartbeat)).toBe(BOOT_TIME + 1_000_001 * SECOND, "heartbeat deadline");
    expect(counters.get(Counter.TimersFired)).toBe(2, "the heartbeat and the watchdog's kick, once each");
  });

  it("parks at the end of time instead of wrapping when the clock is near 2^64", () => {
    boot();
    const out = handle(timeEvent(U64.MAX_VALUE - 1).concat(timerFiredEvent(0)).concat(syncEvent(1)));
    expect(timers.deadline(TimerId.Heartbeat)).toBe(U64.MAX_VALUE, "heartbeat deadline");
    expectTimerArm(only(out, Command.TimerArm), U64.MAX_VALUE);
    expect(counters.get(Counter.TimersFired)).toBe(2, "the heartbeat and the watchdog's kick");
  });

  it("is re-armed for the same deadline when the hardware fired early", () => {
    boot();
    const out = handle(timeEvent(BOOT_TIME + KICK_NS - 1).concat(timerFiredEvent(0)).concat(syncEvent(1)));
    expect(out.length).toBe(2);
    expectTimerArm(out[0], BOOT_TIME + KICK_NS);
    expectSyncAck(out[1], 1);
    expect(counters.get(Counter.TimersFired)).toBe(0);
    expect(timers.deadline(TimerId.Heartbeat)).toBe(BOOT_TIME + SECOND, "heartbeat deadline");
  });

  it("is not re-armed at a SYNC when its deadline is already armed", () => {
    boot();
    expect(sentTypesOf(syncEvent(1))).toStrictEqual([Command.SyncAck]);
  });
});

describe("ENTROPY and COUNTERS_QUERY", () => {
  beforeEach(() => {
    fresh();
    boot();
  });

  it("feeds ENTROPY bytes to the pool without answering", () => {
    expect(handle(entropyEvent(16)).length).toBe(0);
    expect(entropy.bytesAvailable()).toBe(16);
  });

  it("answers COUNTERS_QUERY with a COUNTERS report of every counter", () => {
    handle(timeEvent(0)); // one error to report
    const out = handle(countersQueryEvent());
    expect(out.length).toBe(1);
    const report = out[0];
    expect(report.type).toBe(Command.Counters);
    expect(report.length).toBe(CountersBody.Values + 4 * Counter.Count);
    expect(report.u16(CountersBody.Count)).toBe(Counter.Count);
    for (let i = 0; i < Counter.Count; i++) {
      expect(report.u32(CountersBody.Values + 4 * i)).toBe(counters.get(i), "counter " + i.toString());
    }
    // TIME, BOOT, SYNC, COUNTERS_QUERY accepted; HELLO, REG_WRITE (watchdog kick), FLASH_READ
    // (the image header), REG_WRITE (the switch's ConfigReady), TIMER_ARM, RETAIN x 13 (the
    // header, the switch's state in 3, each port's configuration space: retain.ts), UART_TX (the
    // console's banner), SYNC_ACK, ERROR, COUNTERS sent.
    expect(report.u32(CountersBody.Values + 4 * Counter.EventsIn)).toBe(4, "EventsIn");
    expect(report.u32(CountersBody.Values + 4 * Counter.CommandsOut)).toBe(22, "CommandsOut, the ERROR included");
    expect(report.u32(CountersBody.Values + 4 * Counter.Errors)).toBe(1, "Errors");
  });
});

describe("errors", () => {
  beforeEach(fresh);

  it("carries the code, type, declared body length and stream offset of the offending message", () => {
    const before = timeEvent(1).concat(syncEvent(0));
    const bad = message(Event.Sync, SyncBody.Size - 1);
    const out = handle(before.concat(bad));
    expect(out.length).toBe(2);
    expectSyncAck(out[0], 0);
    expectError(out[1], MailboxError.BadLength, Event.Sync, SyncBody.Size - 1, before.length, 0);
  });

  it("counts every rejection in Errors and in its code's counter, and nothing in EventsIn", () => {
    expectCounted(set16(bootEvent(), BootBody.MailboxVersion, 0), MailboxError.Version);
    handle(bootEvent());
    expectCounted(message(0x7e, 0), MailboxError.UnknownType);
    expectCounted(message(Event.Time, TimeBody.Size + 1), MailboxError.BadLength);
    expectCounted(message(Event.Entropy, MAX_BODY + 1), MailboxError.Oversize);
    expectCounted(message(Event.CountersQuery, 0, 0x01), MailboxError.Reserved);
    expectCounted(timerFiredEvent(TIMER_CHANNELS), MailboxError.BadField);
    expectCounted(bootEvent(), MailboxError.OutOfOrder);
    expect(counters.get(Counter.Errors)).toBe(7);
    // Truncated is reported by finish(); see below.
  });

  it("reports an unknown type with UnknownType and handles the next message", () => {
    expectSkippedThenHandled(message(0x7e, 3), MailboxError.UnknownType);
  });

  it("reports a body length the type does not allow with BadLength and handles the next message", () => {
    expectSkippedThenHandled(message(Event.Time, TimeBody.Size - 1), MailboxError.BadLength);
  });

  it("reports non-zero header flags with Reserved and handles the next message", () => {
    expectSkippedThenHandled(message(Event.Sync, SyncBody.Size, 0x40), MailboxError.Reserved);
  });

  it("reports an oversize body with Oversize and handles the next message", () => {
    expectSkippedThenHandled(message(Event.Entropy, MAX_BODY + 1), MailboxError.Oversize);
  });
});

describe("finish", () => {
  beforeEach(fresh);

  it("reports a partial message as Truncated: pending bytes in detail, its header's type, length and offset", () => {
    const before = timeEvent(1);
    const partial = syncEvent(1).slice(0, HEADER_SIZE + 1);
    expect(handle(before.concat(partial)).length).toBe(0, "nothing before the end");
    firmware.finish();
    const out = sent();
    expect(out.length).toBe(1);
    expectError(out[0], MailboxError.Truncated, Event.Sync, SyncBody.Size, before.length, partial.length);
    expect(counters.get(Counter.Errors)).toBe(1);
    expect(counters.get(errorCounter(MailboxError.Truncated))).toBe(1);
  });

  it("reports a partial header with its offset and type and length 0", () => {
    const before = timeEvent(1);
    handle(before.concat(syncEvent(1).slice(0, 2)));
    firmware.finish();
    const out = sent();
    expect(out.length).toBe(1);
    expectError(out[0], MailboxError.Truncated, 0, 0, before.length, 2);
  });

  it("counts the rest of an oversize body as pending", () => {
    const length = MAX_BODY + 10;
    handle(message(Event.Entropy, length).slice(0, HEADER_SIZE + 4));
    expect(rx.pending()).toBe(length - 4);
    tx.discard();
    firmware.finish();
    const out = sent();
    expect(out.length).toBe(1);
    expectError(out[0], MailboxError.Truncated, Event.Entropy, length, 0, length - 4);
  });

  it("emits nothing when no message is pending", () => {
    handle(timeEvent(1).concat(syncEvent(0)));
    tx.discard();
    firmware.finish();
    expect(tx.bufferedLength()).toBe(0);
    expect(counters.get(Counter.Errors)).toBe(0);
  });
});
