import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import {
  encodeEvent, encodeCommand, decodeEvent, decodeCommand, MessageReader, EventChecker, MailboxFormatError,
  type EventMessage, type CommandMessage, type RawMessage,
} from "../../board/mailbox-codec.ts";
import { Event, MailboxError, MAILBOX_VERSION, MAX_BODY, HelloStatus, CardRole, ResetCause, LogLevel, BootBody, HEADER_SIZE, minBody, maxBody, TlpRxReason, FlashOp, FlashStatus } from "../../board/map/mailbox.ts";
import { boot, encode } from "./helpers.ts";

function readAll(direction: "events" | "commands", ...chunks: Uint8Array[]): RawMessage[] {
  const reader = new MessageReader(direction);
  const out: RawMessage[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    out.push(...reader.all());
  }
  return out;
}

const events: EventMessage[] = [
  boot({ role: 1, resetCause: 2, serial: 0xdeadbeef, slots: 8, logLevel: 3, bootSlot: 1, bootFlags: 1 }),
  { kind: "time", now: 0x1234_5678_9abc_def0n },
  { kind: "sync", seq: 0xffff_ffff },
  { kind: "timerFired", channel: 0 },
  { kind: "entropy", bytes: Uint8Array.from({ length: 64 }, (_, i) => i) },
  { kind: "countersQuery" },
  { kind: "regValue", address: 0x1018, value: 0xdeadbeef },
  { kind: "fabricEvent", tunnel: 7, event: 6, arg: 0xffffffff },
  { kind: "tlpRx", reason: TlpRxReason.Orphaned, port: 8, tlp: Uint8Array.from({ length: 20 }, (_, i) => (i === 0 ? 0x60 : i)) },
  { kind: "uartRx", bytes: Uint8Array.from({ length: 64 }, (_, i) => i) },
  { kind: "flashDone", op: FlashOp.Read, status: FlashStatus.Ok, address: 0x3ff00, data: Uint8Array.from({ length: 256 }, (_, i) => i) },
  { kind: "flashDone", op: FlashOp.Erase, status: FlashStatus.Protected, address: 0x10000, data: new Uint8Array(0) },
];

const commandList: CommandMessage[] = [
  { kind: "hello", mailboxVersion: 1, status: HelloStatus.VersionMismatch, firmware: [1, 2, 3] },
  { kind: "syncAck", seq: 77 },
  { kind: "timerArm", channel: 0, deadline: 0xffff_ffff_0000_0001n },
  { kind: "timerDisarm", channel: 0 },
  { kind: "error", code: MailboxError.OutOfOrder, messageType: 0x7e, bodyLength: 1536, streamOffset: 0xfffffff0, detail: 9 },
  { kind: "counters", values: [1, 2, 0xffffffff] },
  { kind: "regWrite", address: 0x100, value: 1 },
  { kind: "regRead", address: 0xfffc },
  { kind: "tlpTx", tlp: Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x4a : i)) },
  { kind: "uartTx", bytes: Uint8Array.from({ length: 256 }, (_, i) => i) },
  { kind: "flashErase", address: 0x10000, sectors: 16 },
  { kind: "flashProgram", address: 0x100ff, data: Uint8Array.of(0xaa) },
  { kind: "flashRead", address: 0x3ff00, length: 256 },
];

test("every event kind survives encode, framing and decode unchanged", () => {
  for (const event of events) {
    const [raw] = readAll("events", encodeEvent(event));
    assert.equal(raw.framing, 0);
    assert.deepEqual(decodeEvent(raw), event);
  }
});

test("every command kind survives encode, framing and decode unchanged", () => {
  for (const command of commandList) {
    const [raw] = readAll("commands", encodeCommand(command));
    assert.equal(raw.framing, 0);
    assert.deepEqual(decodeCommand(raw), command);
  }
});

test("encoded bodies have the lengths the catalogue allows", () => {
  for (const event of events) {
    const bytes = encodeEvent(event);
    const length = bytes[0] | (bytes[1] << 8);
    assert.ok(length >= minBody(bytes[2]) && length <= maxBody(bytes[2]), `${event.kind}: ${length}`);
    assert.equal(bytes.length, HEADER_SIZE + length);
  }
});

test("framing is the same however the stream is split into chunks", () => {
  const stream = encode([...events, ...events, ...events]);
  const whole = readAll("events", stream);
  const rng = xoroshiro128plus(42);
  for (let round = 0; round < 50; round++) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.length; ) {
      const n = uniformInt(rng, 1, 40);
      chunks.push(stream.subarray(at, at + n));
      at += n;
    }
    assert.deepEqual(readAll("events", ...chunks), whole);
  }
});

test("an oversize body is skipped across chunks and framing resumes after it", () => {
  const header = Uint8Array.of((MAX_BODY + 10) & 0xff, (MAX_BODY + 10) >> 8, Event.Entropy, 0);
  const filler = new Uint8Array(MAX_BODY + 10).fill(0xee);
  const after = encodeEvent({ kind: "sync", seq: 5 });
  const out = readAll("events", header, filler.subarray(0, 100), filler.subarray(100), after);
  assert.equal(out.length, 2);
  assert.equal(out[0].framing, MailboxError.Oversize);
  assert.equal(out[1].offset, HEADER_SIZE + MAX_BODY + 10);
  assert.deepEqual(decodeEvent(out[1]), { kind: "sync", seq: 5 });
});

test("bytesToBoundary tells how many bytes realign a damaged stream", () => {
  const reader = new MessageReader("events");
  reader.push(Uint8Array.of(8, 0, Event.Time, 0, 1, 2));
  assert.equal([...reader.all()].length, 0);
  assert.equal(reader.bytesToBoundary(), 6);
  reader.push(new Uint8Array(6));
  assert.equal([...reader.all()].length, 1);
  assert.equal(reader.bytesToBoundary(), 0);
  reader.push(Uint8Array.of(0xff, 0xff, Event.Time, 0, 1));
  assert.equal([...reader.all()][0].framing, MailboxError.Oversize);
  assert.equal(reader.bytesToBoundary(), 0xffff - 1);
});

test("framing faults: flags, unknown type, command type on the event stream, bad length", () => {
  const out = readAll("events",
    Uint8Array.of(4, 0, Event.Sync, 1, 0, 0, 0, 0),
    Uint8Array.of(0, 0, 0x42, 0),
    Uint8Array.of(4, 0, 0x82, 0, 0, 0, 0, 0),
    Uint8Array.of(3, 0, Event.Sync, 0, 0, 0, 0));
  assert.deepEqual(out.map((m) => m.framing), [MailboxError.Reserved, MailboxError.UnknownType, MailboxError.UnknownType, MailboxError.BadLength]);
  assert.ok(out.every((m) => m.body === null));
});

test("the checker predicts order errors: events before boot, second boot, time going back, sync gaps", () => {
  const checker = new EventChecker();
  const verdicts = readAll("events", encode([
    { kind: "countersQuery" },
    { kind: "sync", seq: 10 },
    { kind: "sync", seq: 12 },
    { kind: "sync", seq: 13 },
    boot(),
    boot(),
    { kind: "time", now: 100n },
    { kind: "time", now: 99n },
    { kind: "time", now: 100n },
  ])).map((raw) => checker.check(raw));
  assert.deepEqual(verdicts, [
    { error: MailboxError.OutOfOrder, detail: 0 },
    null,
    { error: MailboxError.OutOfOrder, detail: 11 },
    null,
    null,
    { error: MailboxError.OutOfOrder, detail: 0 },
    null,
    { error: MailboxError.OutOfOrder, detail: 0 },
    null,
  ]);
});

test("the checker predicts boot field errors with the offending offset", () => {
  const cases: [Partial<Extract<EventMessage, { kind: "boot" }>>, MailboxError, number][] = [
    [{ mailboxVersion: MAILBOX_VERSION + 1 }, MailboxError.Version, MAILBOX_VERSION],
    [{ role: 2 as CardRole }, MailboxError.BadField, BootBody.Role],
    [{ resetCause: 9 as ResetCause }, MailboxError.BadField, BootBody.ResetCause],
    [{ logLevel: 4 as LogLevel }, MailboxError.BadField, BootBody.LogLevel],
    [{ slots: 0 }, MailboxError.BadField, BootBody.Slots],
    [{ slots: 9 }, MailboxError.BadField, BootBody.Slots],
  ];
  for (const [fields, error, detail] of cases) {
    const [raw] = readAll("events", encodeEvent(boot(fields)));
    assert.deepEqual(new EventChecker().check(raw), { error, detail }, JSON.stringify(fields));
  }
  const bytes = encodeEvent(boot());
  bytes[HEADER_SIZE + BootBody.Reserved22 + 1] = 1;
  assert.deepEqual(new EventChecker().check(readAll("events", bytes)[0]), { error: MailboxError.Reserved, detail: BootBody.Reserved22 + 1 });
});

test("encoders refuse what the catalogue cannot carry, decoders refuse inconsistent bodies", () => {
  assert.throws(() => encodeEvent({ kind: "entropy", bytes: new Uint8Array(65) }), MailboxFormatError);
  assert.throws(() => encodeEvent({ kind: "entropy", bytes: new Uint8Array(0) }), MailboxFormatError);
  const counters = encodeCommand({ kind: "counters", values: [1, 2] });
  counters[HEADER_SIZE] = 3; // claims three values, carries two
  assert.throws(() => decodeCommand(readAll("commands", counters)[0]), /declares 3 values/);
  const [bad] = readAll("events", Uint8Array.of(0, 0, 0x42, 0));
  assert.throws(() => decodeEvent(bad), MailboxFormatError);
});

test("the checker predicts TLP_RX errors in the firmware's order: chassis card, reserved, reason, port, Fmt and length", () => {
  const check = (role: CardRole, body: number[]) => {
    const checker = new EventChecker();
    const [bootRaw] = readAll("events", encodeEvent(boot({ role })));
    assert.equal(checker.check(bootRaw), null);
    const [raw] = readAll("events", Uint8Array.from([body.length, 0, Event.TlpRx, 0, ...body]));
    return checker.check(raw);
  };
  const configRead = [0x04, 0, 0, 1, 0, 8, 1, 0x0f, 1, 0, 0, 0];
  assert.equal(check(CardRole.Host, [1, 0, 0, 0, ...configRead]), null);
  assert.deepEqual(check(CardRole.Chassis, [1, 0, 0, 0, ...configRead]), { error: MailboxError.OutOfOrder, detail: 0 });
  assert.deepEqual(check(CardRole.Host, [1, 0, 0, 9, ...configRead]), { error: MailboxError.Reserved, detail: 3 });
  assert.deepEqual(check(CardRole.Host, [4, 0, 0, 0, ...configRead]), { error: MailboxError.BadField, detail: 0 });
  assert.deepEqual(check(CardRole.Host, [1, 9, 0, 0, ...configRead]), { error: MailboxError.BadField, detail: 1 });
  assert.equal(check(CardRole.Host, [1, 0xff, 0, 0, ...configRead]), null, "NO_PORT");
  assert.deepEqual(check(CardRole.Host, [1, 0, 0, 0, 0x84, ...configRead.slice(1)]), { error: MailboxError.BadField, detail: 4 }, "TLP prefix");
  assert.deepEqual(check(CardRole.Host, [1, 0, 0, 0, 0x44, ...configRead.slice(1)]), { error: MailboxError.BadField, detail: 4 }, "data promised, none carried");
});
