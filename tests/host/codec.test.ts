import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import {
  encodeEvent, encodeCommand, decodeEvent, decodeCommand, describe, MessageReader, EventChecker, MailboxFormatError,
  type EventMessage, type CommandMessage, type RawMessage,
} from "../../board/mailbox-codec.ts";
import {
  Event, Command, MailboxError, MAILBOX_VERSION, MAX_BODY, HelloStatus, CardRole, ResetCause, LogLevel, BootBody, HEADER_SIZE, minBody, maxBody,
  TlpRxReason, FlashOp, FlashStatus, HashOp, HashStatus, HashBody, HashDoneBody, HASH_CONTEXTS, HASH_KEY_MAX, HASH_UPDATE_MAX, HASH_DIGEST_SIZE, RetainBody, RETAIN_BYTES, RETAIN_CHUNK,
} from "../../board/map/mailbox.ts";
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
  boot({ role: 1, resetCause: 2, serial: 0xdeadbeef, slots: 8, logLevel: 3, bootSlot: 1, bootFlags: 1, retained: RETAIN_BYTES, carrier: 0b10 }),
  { kind: "retained", offset: RETAIN_BYTES - RETAIN_CHUNK, data: Uint8Array.from({ length: RETAIN_CHUNK }, (_, i) => i & 0xff) },
  { kind: "time", now: 0x1234_5678_9abc_def0n },
  { kind: "sync", seq: 0xffff_ffff },
  { kind: "timerFired", channel: 0 },
  { kind: "entropy", bytes: Uint8Array.from({ length: 64 }, (_, i) => i) },
  { kind: "countersQuery" },
  { kind: "regValue", address: 0x1018, value: 0xdeadbeef },
  { kind: "fabricEvent", tunnel: 7, event: 6, arg: 0xffffffff },
  { kind: "tlpRx", reason: TlpRxReason.Unrouted, port: 8, tlp: Uint8Array.from({ length: 20 }, (_, i) => (i === 0 ? 0x60 : i)) },
  { kind: "uartRx", bytes: Uint8Array.from({ length: 64 }, (_, i) => i) },
  { kind: "flashDone", op: FlashOp.Read, status: FlashStatus.Ok, address: 0x3ff00, data: Uint8Array.from({ length: 256 }, (_, i) => i) },
  { kind: "flashDone", op: FlashOp.Erase, status: FlashStatus.Protected, address: 0x10000, data: new Uint8Array(0) },
  { kind: "hashDone", context: HASH_CONTEXTS - 1, status: HashStatus.Ok, tag: 0xffff, digest: Uint8Array.from({ length: HASH_DIGEST_SIZE }, (_, i) => 0xff - i) },
  { kind: "hashDone", context: 0, status: HashStatus.Idle, tag: 0, digest: new Uint8Array(HASH_DIGEST_SIZE) },
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
  { kind: "hash", context: 0, op: HashOp.Start, tag: 0, data: new Uint8Array(0) },
  { kind: "hash", context: HASH_CONTEXTS - 1, op: HashOp.StartHmac, tag: 0, data: Uint8Array.from({ length: HASH_KEY_MAX }, (_, i) => i) },
  { kind: "hash", context: 1, op: HashOp.Update, tag: 0, data: Uint8Array.from({ length: HASH_UPDATE_MAX }, (_, i) => i & 0xff) },
  { kind: "hash", context: 1, op: HashOp.Update, tag: 0, data: Uint8Array.of(0x61) },
  { kind: "hash", context: 1, op: HashOp.Finish, tag: 0xffff, data: new Uint8Array(0) },
  { kind: "retain", offset: 0, data: Uint8Array.of(1) },
  { kind: "retain", offset: RETAIN_BYTES - RETAIN_CHUNK, data: new Uint8Array(RETAIN_CHUNK).fill(7) },
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
    [{ carrier: 0b100 }, MailboxError.BadField, BootBody.Carrier],
  ];
  for (const [fields, error, detail] of cases) {
    const [raw] = readAll("events", encodeEvent(boot(fields)));
    assert.deepEqual(new EventChecker().check(raw), { error, detail }, JSON.stringify(fields));
  }
  const [tooMuch] = readAll("events", encodeEvent(boot({ retained: RETAIN_BYTES + 1 })));
  assert.deepEqual(new EventChecker().check(tooMuch), { error: MailboxError.BadField, detail: BootBody.Retained });
  const reserved = encodeEvent(boot());
  reserved[4 + BootBody.Reserved25 + 1] = 1;
  assert.deepEqual(new EventChecker().check(readAll("events", reserved)[0]), { error: MailboxError.Reserved, detail: BootBody.Reserved25 + 1 }, "a reserved byte after the carrier bits");
});

test("RETAINED comes only after a BOOT that announced it, in order, never past what it announced; RETAIN stays inside the retained RAM", () => {
  const checker = new EventChecker();
  const retained = (offset: number, length: number) => readAll("events", encodeEvent({ kind: "retained", offset, data: new Uint8Array(length) }))[0];
  assert.deepEqual(checker.check(readAll("events", encodeEvent(boot({ resetCause: ResetCause.Software, retained: 100 })))[0]), null);
  assert.deepEqual(checker.check(retained(10, 10)), { error: MailboxError.BadField, detail: RetainBody.Offset }, "a gap");
  assert.equal(checker.check(retained(0, 60)), null);
  assert.deepEqual(checker.check(retained(60, 41)), { error: MailboxError.BadField, detail: RetainBody.Offset }, "past the 100 bytes");
  assert.equal(checker.check(retained(60, 40)), null);
  assert.deepEqual(checker.check(retained(100, 1)), { error: MailboxError.OutOfOrder, detail: 0 }, "all of them came");
  const fresh = new EventChecker();
  fresh.check(readAll("events", encodeEvent(boot()))[0]);
  assert.deepEqual(fresh.check(retained(0, 1)), { error: MailboxError.OutOfOrder, detail: 0 }, "after power-on nothing is retained");
  const [past] = readAll("commands", encodeCommand({ kind: "retain", offset: RETAIN_BYTES - 1, data: new Uint8Array(2) }));
  assert.throws(() => decodeCommand(past), /run past/);
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

test("HASH: each malformed command is refused with the codec's format error, field by field in the fabric's order", () => {
  const hash = (context: number, op: number, tag: number, length: number): RawMessage => {
    const [raw] = readAll("commands", encodeCommand({ kind: "hash", context, op, tag, data: new Uint8Array(length).fill(1) }));
    assert.equal(raw.framing, 0, `${context} ${op} ${tag} ${length}: framed`);
    return raw;
  };
  const cases: [RawMessage, RegExp][] = [
    [hash(HASH_CONTEXTS, HashOp.Start, 0, 0), new RegExp(`context ${HASH_CONTEXTS} is not below ${HASH_CONTEXTS}`)],
    [hash(0xff, HashOp.Update, 5, 0), new RegExp(`context 255 is not below ${HASH_CONTEXTS}`)],
    [hash(0, 0, 0, 0), /op 0 is not 1\.\.4/],
    [hash(0, 5, 0, 0), /op 5 is not 1\.\.4/],
    [hash(0, HashOp.Start, 1, 0), /tag 1 on Start: only Finish carries one/],
    [hash(0, HashOp.StartHmac, 0x8000, 16), /tag 32768 on StartHmac/],
    [hash(0, HashOp.Update, 7, 16), /tag 7 on Update/],
    [hash(0, HashOp.Start, 0, 1), /Start carries no data, not 1/],
    [hash(0, HashOp.Finish, 3, 32), /Finish carries no data, not 32/],
    [hash(0, HashOp.StartHmac, 0, 0), /StartHmac carries 1\.\.64 bytes, not 0/],
    [hash(0, HashOp.StartHmac, 0, HASH_KEY_MAX + 1), /StartHmac carries 1\.\.64 bytes, not 65/],
    [hash(0, HashOp.Update, 0, 0), /Update carries 1\.\.1024 bytes, not 0/],
  ];
  for (const [raw, reason] of cases) {
    assert.throws(() => decodeCommand(raw), (error: Error) => error instanceof MailboxFormatError && /^HASH at offset 0: /.test(error.message) && reason.test(error.message), String(reason));
    assert.match(describe(raw, "commands"), /^HASH \(type 0x8f, flags 0x0, \d+-byte body\): malformed: HASH at offset 0: /, "trace decoding says why instead of throwing");
  }
  // Beyond the largest Update, or short of the header, the body length is already wrong: a framing fault.
  const [long] = readAll("commands", encodeCommand({ kind: "hash", context: 0, op: HashOp.Update, tag: 0, data: new Uint8Array(HASH_UPDATE_MAX + 1) }));
  const [short] = readAll("commands", Uint8Array.of(3, 0, Command.Hash, 0, 0, HashOp.Start, 0));
  assert.deepEqual([long.framing, short.framing], [MailboxError.BadLength, MailboxError.BadLength]);
  assert.deepEqual([minBody(Command.Hash), maxBody(Command.Hash)], [HashBody.MinSize, HashBody.Data + HASH_UPDATE_MAX]);
});

test("HASH_DONE: a 36-byte body; the checker wants a context below 32 and a known status", () => {
  assert.deepEqual([minBody(Event.HashDone), maxBody(Event.HashDone)], [HashDoneBody.Size, HashDoneBody.Size]);
  assert.equal(HashDoneBody.Digest + HASH_DIGEST_SIZE, HashDoneBody.Size);
  assert.throws(() => encodeEvent({ kind: "hashDone", context: 0, status: HashStatus.Ok, tag: 0, digest: new Uint8Array(31) }), MailboxFormatError);
  const check = (body: number[], booted = true) => {
    const checker = new EventChecker();
    if (booted) assert.equal(checker.check(readAll("events", encodeEvent(boot()))[0]), null);
    return checker.check(readAll("events", Uint8Array.from([body.length, 0, Event.HashDone, 0, ...body]))[0]);
  };
  const digest = Array.from({ length: HASH_DIGEST_SIZE }, (_, i) => i);
  const zero = new Array(HASH_DIGEST_SIZE).fill(0);
  assert.equal(check([HASH_CONTEXTS - 1, HashStatus.Ok, 0x34, 0x12, ...digest]), null);
  assert.equal(check([0, HashStatus.Idle, 0, 0, ...zero]), null);
  assert.deepEqual(check([0, HashStatus.Ok, 0, 0, ...digest], false), { error: MailboxError.OutOfOrder, detail: 0 });
  assert.deepEqual(check([HASH_CONTEXTS, HashStatus.Ok, 0, 0, ...digest]), { error: MailboxError.BadField, detail: HashDoneBody.Context });
  assert.deepEqual(check([0, HashStatus.Idle + 1, 0, 0, ...zero]), { error: MailboxError.BadField, detail: HashDoneBody.Status });
  assert.equal(check([0, HashStatus.Idle, 0, 0, ...digest]), null, "the digest of a status other than Ok is not read");
  assert.equal(readAll("events", Uint8Array.from([35, 0, Event.HashDone, 0, ...zero.slice(1), 0, 0, 0, 0]))[0].framing, MailboxError.BadLength);
});
