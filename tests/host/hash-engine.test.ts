// The fabric's hash engine (board/hash-engine.ts): SHA-256 and HMAC-SHA-256 against the
// published vectors, streaming, independent contexts, Idle answers, the shared core's timing,
// reset; then the card around it (HASH commands in, HASH_DONE out, malformed commands, card
// reset) and the random number generator's EntropyRequest register. No firmware runs: a
// scripted stand-in answers the card's batches.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPublicKey } from "node:crypto";
import { HashEngine, HASH_BLOCK_NS, type HashDone } from "../../board/hash-engine.ts";
import {
  HashOp, HashStatus, HASH_CONTEXTS, HASH_DIGEST_SIZE, HASH_KEY_MAX, HASH_UPDATE_MAX, CardRole, LogLevel, ResetCause,
} from "../../board/map/mailbox.ts";
import { BOARD_ID, CardReg, ENTROPY_REQUEST_MAX, FabricEventKind } from "../../board/map/registers.ts";
import {
  MessageReader, decodeEvent, encodeCommand, encodeEvent, decodeCommand, type CommandMessage, type EventMessage,
} from "../../board/mailbox-codec.ts";
import { Card } from "../../board/card.ts";
import { Fabric } from "../../board/fabric.ts";
import { Flash } from "../../board/flash.ts";
import { installImage } from "../../board/boot-rom.ts";
import { buildImage, developmentKey } from "../../board/image.ts";
import { concat } from "../../board/bytes.ts";
import type { FirmwareSession } from "../../board/softcore.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { decodeLines } from "../../tools/cli/trace.ts";
import { boot } from "./helpers.ts";

const text = (s: string) => new TextEncoder().encode(s);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const NONE = new Uint8Array(0);

/** An engine on its own scheduler, with its answers and when they came. */
function rig() {
  const scheduler = new EventScheduler();
  const done: (HashDone & { at: number })[] = [];
  const engine = new HashEngine(scheduler, (result) => done.push({ ...result, at: scheduler.now }));
  const send = (context: number, op: HashOp, data: Uint8Array = NONE, tag = 0) => engine.command({ context, op, tag, data });
  /** Start (or StartHmac under `key`), the message in Updates of at most `chunk` bytes, Finish. */
  const hash = (context: number, message: Uint8Array, o: { key?: Uint8Array; tag?: number; chunk?: number } = {}) => {
    if (o.key) send(context, HashOp.StartHmac, o.key);
    else send(context, HashOp.Start);
    const chunk = o.chunk ?? HASH_UPDATE_MAX;
    for (let at = 0; at < message.length; at += chunk) send(context, HashOp.Update, message.subarray(at, at + chunk));
    send(context, HashOp.Finish, NONE, o.tag ?? 0);
  };
  return { scheduler, engine, done, send, hash };
}

test("SHA-256: the FIPS 180-2 examples, each answered after the blocks it takes", async () => {
  const vectors: [Uint8Array, string, number][] = [
    [text("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 1],
    [text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", 2],
    [new Uint8Array(1_000_000).fill(0x61), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", 15_626],
  ];
  for (const [message, digest, blocks] of vectors) {
    const { scheduler, engine, done, hash } = rig();
    hash(5, message, { tag: 0xbeef });
    await scheduler.run(Infinity);
    assert.equal(done.length, 1);
    assert.deepEqual({ ...done[0], digest: hex(done[0].digest) }, { context: 5, status: HashStatus.Ok, tag: 0xbeef, digest, at: blocks * HASH_BLOCK_NS });
    assert.equal(engine.stats.blocks, blocks);
  }
});

test("HMAC-SHA-256: RFC 4231 test cases 1 to 5 (case 5 truncated to 128 bits, as the RFC gives it)", async () => {
  const cases: [Uint8Array, Uint8Array, string][] = [
    [new Uint8Array(20).fill(0x0b), text("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"],
    [text("Jefe"), text("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"],
    [new Uint8Array(20).fill(0xaa), new Uint8Array(50).fill(0xdd), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"],
    [Uint8Array.from({ length: 25 }, (_, i) => i + 1), new Uint8Array(50).fill(0xcd), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"],
    [new Uint8Array(20).fill(0x0c), text("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b"],
  ];
  const { scheduler, done, hash } = rig();
  cases.forEach(([key, data], i) => hash(i, data, { key, tag: i + 1 }));
  await scheduler.run(Infinity);
  assert.deepEqual(done.map((d) => [d.context, d.status, d.tag, hex(d.digest).slice(0, cases[d.context][2].length)]), cases.map(([, , mac], i) => [i, HashStatus.Ok, i + 1, mac]));
});

test("RFC 4231 cases 6 and 7 (a 131-byte key) do not fit: a key is 1..HASH_KEY_MAX bytes, one block", () => {
  const key = new Uint8Array(131).fill(0xaa);
  const raw = [...readCommands(encodeCommand({ kind: "hash", context: 0, op: HashOp.StartHmac, tag: 0, data: key }))][0];
  assert.throws(() => decodeCommand(raw), /StartHmac carries 1\.\.64 bytes, not 131/);
  assert.equal(HASH_KEY_MAX, 64);
  // A key of exactly one block is used as it is.
  const full = Uint8Array.from({ length: HASH_KEY_MAX }, (_, i) => i);
  assert.deepEqual(decodeCommand(readCommands(encodeCommand({ kind: "hash", context: 0, op: HashOp.StartHmac, tag: 0, data: full }))[0]), { kind: "hash", context: 0, op: HashOp.StartHmac, tag: 0, data: full });
});

test("streaming: a message fed in Updates of any size gives the one-shot digest after the same blocks", async () => {
  const message = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7 + 3) & 0xff);
  const key = text("streaming key");
  const results = new Set<string>();
  for (const chunk of [1, 55, 63, 64, 65, 1000, HASH_UPDATE_MAX]) {
    for (const hmac of [false, true]) {
      const { scheduler, done, hash } = rig();
      hash(0, message, { chunk, key: hmac ? key : undefined });
      await scheduler.run(Infinity);
      results.add(`${hmac} ${hex(done[0].digest)} at ${done[0].at}`);
    }
  }
  // 3000 bytes: 46 blocks full, 56 bytes left need 2 for the padding; HMAC adds its key block and the outer 2.
  assert.deepEqual([...results].sort(), [
    `false ${createHash("sha256").update(message).digest("hex")} at ${48 * HASH_BLOCK_NS}`,
    `true ${hmacHex(key, message)} at ${51 * HASH_BLOCK_NS}`,
  ].sort());
});

function hmacHex(key: Uint8Array, message: Uint8Array): string {
  // The RFC 2104 construction, spelled out, for a key of at most one block.
  const block = new Uint8Array(64);
  block.set(key);
  const inner = createHash("sha256").update(block.map((b) => b ^ 0x36)).update(message).digest();
  return createHash("sha256").update(block.map((b) => b ^ 0x5c)).update(inner).digest("hex");
}

test("contexts are independent: interleaved commands, a Start that drops a hash in progress, every context usable", async () => {
  const { scheduler, done, send } = rig();
  const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  const jefe = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  send(0, HashOp.Start);
  send(HASH_CONTEXTS - 1, HashOp.StartHmac, text("Jefe"));
  send(7, HashOp.Start);
  send(7, HashOp.Update, text("dropped by the next Start"));
  send(0, HashOp.Update, text("a"));
  send(HASH_CONTEXTS - 1, HashOp.Update, text("what do ya "));
  send(7, HashOp.Start);
  send(0, HashOp.Update, text("bc"));
  send(7, HashOp.Update, text("abc"));
  send(HASH_CONTEXTS - 1, HashOp.Update, text("want for nothing?"));
  send(HASH_CONTEXTS - 1, HashOp.Finish, NONE, 31);
  send(7, HashOp.Finish, NONE, 7);
  send(0, HashOp.Finish, NONE, 1);
  await scheduler.run(Infinity);
  assert.deepEqual(done.map((d) => [d.context, d.tag, hex(d.digest)]), [[HASH_CONTEXTS - 1, 31, jefe], [7, 7, abc], [0, 1, abc]]);
});

test("Update or Finish on an idle context: HASH_DONE Idle, a zero digest, the Finish's tag (0 for an Update), counted", async () => {
  const { scheduler, engine, done, send, hash } = rig();
  send(4, HashOp.Update, text("never started"));
  hash(2, text("abc"), { tag: 9 });
  send(2, HashOp.Finish, NONE, 10); // the first Finish ended it
  send(3, HashOp.Finish, NONE, 11);
  await scheduler.run(Infinity);
  const zero = hex(new Uint8Array(HASH_DIGEST_SIZE));
  assert.deepEqual(done.map((d) => [d.context, d.status, d.tag, d.status === HashStatus.Ok ? "digest" : hex(d.digest), d.at]), [
    [4, HashStatus.Idle, 0, zero, 0],
    [2, HashStatus.Ok, 9, "digest", HASH_BLOCK_NS],
    // Answered in command order: after the core has compressed what came before.
    [2, HashStatus.Idle, 10, zero, HASH_BLOCK_NS],
    [3, HashStatus.Idle, 11, zero, HASH_BLOCK_NS],
  ]);
  assert.deepEqual(engine.stats, { commands: 6, blocks: 1, idleErrors: 3, digests: 1 });
});

test("timing: 64 cycles per block at 250 MHz, padding and HMAC blocks counted, one core shared in command order", async () => {
  assert.equal(HASH_BLOCK_NS, 256);
  // Message length -> blocks: padding takes one more block once more than 55 bytes wait.
  for (const [length, blocks] of [[0, 1], [55, 1], [56, 2], [64, 2], [119, 2], [120, 3], [1000, 16]]) {
    const { scheduler, done, hash } = rig();
    hash(0, new Uint8Array(length));
    await scheduler.run(Infinity);
    assert.equal(done[0].at, blocks * HASH_BLOCK_NS, `${length} bytes`);
  }
  // HMAC: the key block at StartHmac, the message, the padding, the outer hash's 2.
  {
    const { scheduler, done, hash } = rig();
    hash(0, text("Hi There"), { key: new Uint8Array(20).fill(0x0b) });
    await scheduler.run(Infinity);
    assert.equal(done[0].at, 4 * HASH_BLOCK_NS);
  }
  // Two contexts share the core: context 1's short hash waits for context 0's 16 blocks,
  // and context 0's Finish waits for context 1's padding.
  const { scheduler, done, send, hash } = rig();
  send(0, HashOp.Start);
  send(0, HashOp.Update, new Uint8Array(1024));
  hash(1, text("abc"), { tag: 1 });
  send(0, HashOp.Finish, NONE, 2);
  await scheduler.run(Infinity);
  assert.deepEqual(done.map((d) => [d.tag, d.at]), [[1, 17 * HASH_BLOCK_NS], [2, 18 * HASH_BLOCK_NS]]);
  // An idle core banks no time: work given later starts when it arrives.
  await scheduler.run(100_000);
  hash(2, text("abc"), { tag: 3 });
  await scheduler.run(Infinity);
  assert.deepEqual([done[2].tag, done[2].at], [3, 100_000 + HASH_BLOCK_NS]);
});

test("reset: answers not yet given are lost, every context is idle, the core starts free", async () => {
  const { scheduler, engine, done, send } = rig();
  send(0, HashOp.Start);
  send(0, HashOp.Update, new Uint8Array(1024));
  send(0, HashOp.Finish, NONE, 1);
  send(1, HashOp.Start);
  await scheduler.run(100);
  engine.reset();
  send(1, HashOp.Update, text("abc"));
  await scheduler.run(Infinity);
  assert.deepEqual(done.map((d) => [d.context, d.status, d.at]), [[1, HashStatus.Idle, 100]]);
  assert.deepEqual(engine.stats, { commands: 5, blocks: 17, idleErrors: 1, digests: 1 }, "the statistics outlive the reset");
});

// The card around the engine, with a scripted stand-in for the firmware.

function readCommands(bytes: Uint8Array) {
  const reader = new MessageReader("commands");
  reader.push(bytes);
  return [...reader.all()];
}

const hashCommand = (context: number, op: HashOp, data: Uint8Array = NONE, tag = 0): CommandMessage => ({ kind: "hash", context, op, tag, data });
const regWrite = (address: number, value: number): CommandMessage => ({ kind: "regWrite", address, value });

/** A card with a fabric whose firmware answers each batch with `script(events)`; no CONFIG in flash. */
function scriptedCard(script: (events: EventMessage[]) => CommandMessage[]) {
  const scheduler = new EventScheduler();
  const batches: { at: number; events: EventMessage[] }[] = [];
  const notes: string[] = [];
  const session = (): FirmwareSession => ({
    engine: "test",
    async exchange(bytes) {
      const reader = new MessageReader("events");
      reader.push(bytes);
      const events = [...reader.all()].map(decodeEvent).filter((e) => e.kind !== "time" && e.kind !== "sync");
      batches.push({ at: scheduler.now, events });
      return concat(script(events).map(encodeCommand));
    },
    async close() {
      return NONE;
    },
  });
  const flash = Flash.erased();
  installImage(flash, buildImage(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0), { boardId: BOARD_ID, version: { major: 1, minor: 0, patch: 0 }, key: developmentKey() }));
  const card: Card = new Card(
    { name: "c", role: CardRole.Host, boardId: BOARD_ID, serial: 1, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), slots: 1, logLevel: LogLevel.Info },
    scheduler, (n) => new Uint8Array(n).fill(0xe5),
    { flash, trustedKeys: [createPublicKey(developmentKey())], openFirmware: session, random: () => 0 },
    { note: (_card, line, level) => notes.push(`${level}: ${line}`) },
  );
  const fabric = new Fabric({ boardId: BOARD_ID, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), tunnels: 1 }, scheduler, {
    event: (kind, tunnel, arg) => card.post({ kind: "fabricEvent", tunnel, event: kind, arg }),
    deliver: () => {},
    system: card.system,
  });
  card.fabric = fabric;
  return { card, fabric, scheduler, batches, notes };
}

const isBoot = (events: EventMessage[], cause: ResetCause) => events.some((e) => e.kind === "boot" && e.resetCause === cause);

test("the card: HASH takes effect with its batch, HASH_DONE comes when the core is done; a malformed HASH is logged and skipped", async () => {
  const { card, scheduler, batches, notes } = scriptedCard((events) => isBoot(events, ResetCause.PowerOn) ? [
    hashCommand(3, HashOp.Start),
    hashCommand(HASH_CONTEXTS, HashOp.Start),
    hashCommand(3, HashOp.Update, text("abc")),
    hashCommand(3, HashOp.Update, NONE, 5),
    hashCommand(3, HashOp.Finish, NONE, 7),
  ] : []);
  card.powerOn();
  await scheduler.run(1_000_000);
  const answers = batches.filter((b) => b.events.some((e) => e.kind === "hashDone"));
  assert.deepEqual(answers.map((b) => [b.at, b.events.map((e) => e.kind === "hashDone" && [e.context, e.status, e.tag, hex(e.digest)])]), [
    [HASH_BLOCK_NS, [[3, HashStatus.Ok, 7, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]]],
  ]);
  const malformed = notes.filter((n) => n.includes("malformed command from firmware"));
  assert.equal(malformed.length, 2, notes.join("\n"));
  assert.match(malformed[0], new RegExp(`^error: .*HASH .*context ${HASH_CONTEXTS} is not below ${HASH_CONTEXTS}`));
  assert.match(malformed[1], /^error: .*HASH .*tag 5 on Update: only Finish carries one/);
  assert.equal(card.stats.commandsReceived, 5);
  assert.deepEqual(card.hash.stats, { commands: 3, blocks: 1, idleErrors: 0, digests: 1 });
});

test("the card: a reset loses the HASH_DONE due and leaves every context idle", async () => {
  const { card, scheduler, batches } = scriptedCard((events) => {
    if (isBoot(events, ResetCause.PowerOn)) return [hashCommand(0, HashOp.Start), hashCommand(0, HashOp.Update, new Uint8Array(1024)), hashCommand(0, HashOp.Finish, NONE, 1)];
    if (isBoot(events, ResetCause.Software)) return [hashCommand(0, HashOp.Finish, NONE, 2)];
    return [];
  });
  card.powerOn();
  await scheduler.run(1000); // the Finish is due at 17 blocks: 4352 ns
  await card.reset(ResetCause.Software);
  await scheduler.run(1_000_000);
  const answers = batches.flatMap((b) => b.events.flatMap((e) => (e.kind === "hashDone" ? [[b.at, e.status, e.tag]] : [])));
  assert.deepEqual(answers, [[1000, HashStatus.Idle, 2]]);
});

test("EntropyRequest: 1..ENTROPY_REQUEST_MAX bytes of ENTROPY in the next batch; 0 and larger values refused (RegErrors, RegisterRejected)", async () => {
  const { card, fabric, scheduler, batches } = scriptedCard((events) => isBoot(events, ResetCause.PowerOn) ? [
    regWrite(CardReg.EntropyRequest, 1),
    regWrite(CardReg.EntropyRequest, 0),
    regWrite(CardReg.EntropyRequest, ENTROPY_REQUEST_MAX),
    regWrite(CardReg.EntropyRequest, ENTROPY_REQUEST_MAX + 1),
    regWrite(CardReg.EntropyRequest, 0x1_0010),
  ] : []);
  card.powerOn();
  await scheduler.run(1_000_000);
  assert.equal(ENTROPY_REQUEST_MAX, 64);
  const summary = (e: EventMessage) => e.kind === "entropy" ? `entropy ${e.bytes.length}` : e.kind === "fabricEvent" ? `${FabricEventKind[e.event]} 0x${e.arg.toString(16)}` : e.kind;
  assert.deepEqual(batches.map((b) => [b.at, b.events.map(summary)]), [
    // One event a batch (BATCH_EVENTS_MAX): each waits for the batches before it.
    [0, ["boot"]],
    [0, [`entropy ${ENTROPY_REQUEST_MAX}`]],
    [0, ["entropy 1"]],
    [0, ["RegisterRejected 0x30"]],
    [0, ["entropy 64"]],
    [0, ["RegisterRejected 0x30"]],
    [0, ["RegisterRejected 0x30"]],
  ]);
  assert.equal(fabric.readRegister(CardReg.RegErrors), 3);
  assert.equal(fabric.readRegister(CardReg.EntropyRequest), 0, "write-only");
});

test("iov trace decode names HASH and HASH_DONE, marks a HASH_DONE the firmware rejects and a malformed HASH", () => {
  const commands = concat([
    hashCommand(2, HashOp.StartHmac, new Uint8Array(32)),
    hashCommand(2, HashOp.Update, text("abc")),
    hashCommand(2, HashOp.Finish, NONE, 0x1234),
    hashCommand(2, HashOp.Finish, text("x")),
  ].map(encodeCommand));
  const lines = decodeLines(commands, "commands");
  assert.match(lines[0], /HASH context 2 StartHmac, 32-byte key$/);
  assert.match(lines[1], /HASH context 2 Update, 3 bytes$/);
  assert.match(lines[2], /HASH context 2 Finish, tag 4660$/);
  assert.match(lines[3], /HASH \(type 0x8f, flags 0x0, 5-byte body\): malformed: HASH at offset \d+: Finish carries no data, not 1$/);
  const digest = Uint8Array.from({ length: HASH_DIGEST_SIZE }, (_, i) => i + 1);
  const events = decodeLines(concat(([
    boot(),
    { kind: "hashDone", context: 2, status: HashStatus.Ok, tag: 0x1234, digest },
    { kind: "hashDone", context: 2, status: HashStatus.Idle, tag: 0, digest },
    { kind: "hashDone", context: 2, status: HashStatus.Idle + 1, tag: 0, digest },
  ] satisfies EventMessage[]).map(encodeEvent)), "events");
  assert.match(events[1], /HASH_DONE context 2, tag 4660: Ok, digest 0102030405060708\.\.\.$/);
  assert.match(events[2], /HASH_DONE context 2, tag 0: Idle$/);
  assert.match(events[3], /HASH_DONE context 2, tag 0: status 2  <- firmware rejects: BadField \(detail 1\)$/);
});
