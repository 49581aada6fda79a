// The soft-core model (board/softcore.ts) as the card charges it: a batch's commands take effect
// when the soft-core has finished it, events that arrive meanwhile wait and form the next
// batch, a batch that never ends is the watchdog's, long batches are counted.

import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageReader, decodeEvent } from "../../board/mailbox-codec.ts";
import { TlpRxReason, NO_TUNNEL } from "../../board/map/mailbox.ts";
import { SoftcoreTiming, CYCLES_PER_NATIVE, Wasm3Native, BATCH_EVENTS_MAX, type BatchCost, type FirmwareSession } from "../../board/softcore.ts";
import { WATCHDOG_TIMEOUT_NS } from "../../board/map/registers.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { testCard } from "./support/card.ts";
import { FIRMWARE } from "./helpers.ts";
import { readFileSync } from "node:fs";

const MHZ = 100;
const moduleBytes = readFileSync(FIRMWARE).length;

/** A card at `timing`, with every note's time and text, and every batch's events and cost. */
function card(timing: SoftcoreTiming, limit?: number) {
  const scheduler = new EventScheduler();
  const notes: { at: number; text: string }[] = [];
  const batches: { at: number; events: string[]; cost: BatchCost }[] = [];
  const c = testCard(scheduler, {
    firmware: FIRMWARE,
    softcore: timing,
    limit,
    observer: { note: (_c, text) => notes.push({ at: scheduler.now, text }) },
    wrap: (session: FirmwareSession) => ({
      engine: session.engine,
      get lastBatch() {
        return session.lastBatch;
      },
      exchange: async (events, seq) => {
        const at = scheduler.now;
        const commands = await session.exchange(events, seq);
        const reader = new MessageReader("events");
        reader.push(events);
        batches.push({ at, events: [...reader.all()].map((raw) => decodeEvent(raw).kind), cost: session.lastBatch! });
        return commands;
      },
      close: () => session.close(),
    }),
  });
  return { scheduler, card: c, notes, batches };
}

test("the cycle arithmetic: instructions and compiled bytes at the calibrated costs, over the clock", () => {
  const t = new SoftcoreTiming(MHZ);
  const cost = { instructions: 10_000, compiledBytes: 100 };
  const cycles = (10_000 * Wasm3Native.perInstruction + 100 * Wasm3Native.perCompiledByte) * CYCLES_PER_NATIVE;
  assert.equal(t.batchNs(cost), Math.ceil((cycles * 1000) / MHZ));
  assert.equal(new SoftcoreTiming(2 * MHZ).batchNs(cost), Math.ceil((cycles * 1000) / (2 * MHZ)));
  assert.equal(new SoftcoreTiming(0).batchNs(cost), 0, "the zero-time model");
  assert.ok(t.loadNs(moduleBytes) > 0);
  assert.throws(() => new SoftcoreTiming(0.5), /outside 0 or 1\.\.1000/);
  assert.throws(() => new SoftcoreTiming(5000), /outside 0 or 1\.\.1000/);
});

test("the firmware's answer to BOOT takes effect when the soft-core has loaded it and run the batch", async () => {
  const timing = new SoftcoreTiming(MHZ);
  const { scheduler, card: c, notes, batches } = card(timing);
  c.powerOn();
  await scheduler.run(0.5e9);
  assert.equal(batches[0].at, timing.loadNs(moduleBytes), "the first batch waits for wasm3 to load the module");
  const running = notes.find((n) => n.text.startsWith("firmware 0.1.0 running"))!;
  assert.equal(running.at, batches[0].at + timing.batchNs(batches[0].cost));
  assert.ok(c.stats.busyNs >= timing.loadNs(moduleBytes) + timing.batchNs(batches[0].cost));
  assert.equal(c.stats.instructions, batches.reduce((n, b) => n + b.cost.instructions, 0));
  await c.powerOff();
});

test("events that arrive while the soft-core is busy wait, and go in the next batches, in order", async () => {
  const timing = new SoftcoreTiming(MHZ);
  const { scheduler, card: c, batches } = card(timing);
  c.powerOn();
  const busy = timing.loadNs(moduleBytes);
  // Two bytes on the console while wasm3 is still loading the module.
  scheduler.at(busy / 3, () => c.post({ kind: "uartRx", bytes: Uint8Array.of(0x0d) }));
  scheduler.at((2 * busy) / 3, () => c.post({ kind: "uartRx", bytes: Uint8Array.of(0x0d) }));
  await scheduler.run(0.5e9);
  assert.equal(batches[0].at, busy);
  // BOOT, then ENTROPY, then the two bytes, one event a batch (BATCH_EVENTS_MAX), as they came.
  const carried = batches.slice(0, 4).map((b) => b.events.filter((k) => k !== "time" && k !== "sync").join(" "));
  assert.deepEqual(carried, ["boot", "entropy", "uartRx", "uartRx"]);
  // Each later batch starts no earlier than the previous one has finished.
  for (let i = 1; i < batches.length; i++) {
    assert.ok(batches[i].at >= batches[i - 1].at + timing.batchNs(batches[i - 1].cost), `batch ${i}`);
  }
  await c.powerOff();
});

test("a batch carries at most BATCH_EVENTS_MAX events; the rest wait for the next", async () => {
  const timing = new SoftcoreTiming(MHZ);
  const { scheduler, card: c, batches } = card(timing);
  c.powerOn();
  const busy = timing.loadNs(moduleBytes);
  // Six console bytes, one event each, while wasm3 is still loading the module.
  for (let i = 0; i < 6; i++) scheduler.at(busy / 2, () => c.post({ kind: "uartRx", bytes: Uint8Array.of(0x30 + i) }));
  await scheduler.run(0.5e9);
  const carried = batches.map((b) => b.events.filter((k) => k !== "time" && k !== "sync"));
  assert.equal(carried[0].length, BATCH_EVENTS_MAX, carried[0].join(" "));
  assert.ok(carried.every((events) => events.length <= BATCH_EVENTS_MAX));
  const uart = carried.flat().filter((k) => k === "uartRx").length;
  assert.equal(uart, 6, "every byte delivered");
  assert.ok(batches[1].at >= batches[0].at + timing.batchNs(batches[0].cost), "the rest when the soft-core is free");
  await c.powerOff();
});

const configRead = Uint8Array.of(0x04, 0, 0, 1, 0, 0x08, 0x01, 0x0f, 0, 0, 0, 0);

test("a server's request for the firmware (TLP_RX) passes the CONTROL frames waiting, not an event that came before it", async () => {
  const { scheduler, card: c, batches } = card(new SoftcoreTiming(0));
  c.powerOn();
  const at = 100_000_000;
  scheduler.at(at, () => {
    for (let i = 0; i < 2; i++) c.post({ kind: "frameRx", tunnel: NO_TUNNEL, port: 0, frame: new Uint8Array(30 + i) });
    c.post({ kind: "uartRx", bytes: Uint8Array.of(0x30) });
    c.post({ kind: "frameRx", tunnel: NO_TUNNEL, port: 0, frame: new Uint8Array(40) });
    c.post({ kind: "tlpRx", reason: TlpRxReason.Config, port: 0, tlp: configRead });
  });
  await scheduler.run(0.2e9);
  const carried = batches.filter((b) => b.at >= at).map((b) => b.events.filter((k) => k !== "time" && k !== "sync").join(" ")).filter((e) => e);
  // The frames before the console byte go first (the request does not pass the byte), then the
  // byte, then the request ahead of the frame after it.
  assert.deepEqual(carried.slice(0, 5), ["frameRx", "frameRx", "uartRx", "tlpRx", "frameRx"]);
  await c.powerOff();
});

test("a request that has waited 10 ms behind an event it may not pass makes the frames before that event wait too", async () => {
  const timing = new SoftcoreTiming(MHZ);
  const { scheduler, card: c, batches } = card(timing);
  c.powerOn();
  const busy = timing.loadNs(moduleBytes);
  // While wasm3 loads the module: three CONTROL frames of the network, a console byte, two more
  // frames, then a configuration read from the server. The boot batch compiles for milliseconds:
  // when it ends, the read has waited more than 10 ms.
  const frame = (n: number) => c.post({ kind: "frameRx", tunnel: NO_TUNNEL, port: 0, frame: new Uint8Array(30 + n) });
  for (let i = 0; i < 3; i++) scheduler.at(busy / 3, () => frame(i));
  scheduler.at(busy / 3, () => c.post({ kind: "uartRx", bytes: Uint8Array.of(0x30) }));
  for (let i = 3; i < 5; i++) scheduler.at(busy / 3, () => frame(i));
  scheduler.at(busy / 2, () => c.post({ kind: "tlpRx", reason: TlpRxReason.Config, port: 0, tlp: configRead }));
  await scheduler.run(0.5e9);
  const carried = batches.slice(0, 9).map((b) => b.events.filter((k) => k !== "time" && k !== "sync").join(" "));
  assert.ok(batches[1].at - busy / 2 >= 10_000_000, "the read has waited 10 ms when the boot batch ends");
  // BOOT first; then the console byte the read may not pass, ahead of the entropy and the frames
  // before it; then the read; then the rest in their order.
  assert.deepEqual(carried, ["boot", "uartRx", "tlpRx", "entropy", "frameRx", "frameRx", "frameRx", "frameRx", "frameRx"]);
  await c.powerOff();
});

test("in the zero-time model a batch's commands take effect at the instant of its events", async () => {
  const { scheduler, card: c, notes, batches } = card(new SoftcoreTiming(0));
  c.powerOn();
  await scheduler.run(0.1e9);
  assert.equal(batches[0].at, 0);
  assert.equal(notes.find((n) => n.text.startsWith("firmware 0.1.0 running"))!.at, 0);
  assert.equal(c.stats.busyNs, 0);
  assert.ok(c.stats.instructions > 0, "instructions are counted all the same");
  await c.powerOff();
});

test("a batch longer than the batch limit is logged and counted", async () => {
  const { scheduler, card: c, notes } = card(new SoftcoreTiming(MHZ, 1000));
  c.powerOn();
  await scheduler.run(0.5e9);
  assert.ok(c.stats.longBatches > 0);
  assert.ok(c.stats.maxBatchNs > 1000);
  assert.ok(notes.some((n) => /^batch 0 kept the soft-core busy [\d.]+ µs, over the 1 µs batch limit \(\d+ instructions\)$/.test(n.text)), notes.map((n) => n.text).join("\n"));
  await c.powerOff();
});

test("a batch that never finishes leaves the soft-core silent until the watchdog resets the card", async () => {
  const timing = new SoftcoreTiming(MHZ);
  const { scheduler, card: c, notes } = card(timing, 1000);
  c.powerOn();
  await scheduler.run(0.5e9);
  assert.equal(c.state, "faulted");
  assert.ok(notes.some((n) => /^firmware fault: batch 0 did not finish within 1000 instructions \(\d+ ms at 100 MHz\): the soft-core never answers, and the watchdog resets the card$/.test(n.text)), notes.map((n) => n.text).join("\n"));
  await scheduler.run(WATCHDOG_TIMEOUT_NS + 0.5e9);
  assert.equal(c.stats.watchdogResets, 1);
  assert.equal(notes.find((n) => n.text.startsWith("watchdog expired"))!.at, WATCHDOG_TIMEOUT_NS, "the watchdog armed at power-on, never kicked");
  await c.powerOff();
});
