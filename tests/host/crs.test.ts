// Configuration Request Retry Status on the server's side: the root complex completes a Vendor
// ID read as 0001h with CRS Software Visibility and re-issues every other configuration request
// itself (tools/server/root-complex.ts); the OS turns the visibility on and waits for a function
// that is not ready, as Linux does (tools/server/os.ts); and a whole run at 100 MHz, where the
// server enumerates long before the host card's firmware can serve it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { RootComplex, ROOT_PORT_DEVICE, ROOT_PORT_LINK, CRS_RETRY_NS, RequestFailed } from "../../tools/server/root-complex.ts";
import { OperatingSystem } from "../../tools/server/os.ts";
import { spawn, type Task } from "../../tools/server/task.ts";
import { PcieLink, type PcieDevice } from "../../board/pcie/link.ts";
import { ConfigSpace, defineType0Header } from "../../board/pcie/config-space.ts";
import { findCapability, CapabilityId, Exp, RootCap, RootCtl } from "../../board/pcie/capabilities.ts";
import { configCompletion, errorCompletion } from "../../board/pcie/completer.ts";
import { COMPLETION_TIMEOUT_NS } from "../../board/pcie/endpoint.ts";
import { decodeTlp, encodeTlp, isMalformed, isConfigRequest, routingId, CplStatus } from "../../board/pcie/tlp.ts";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS } from "../../tools/sim/scenarios.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;
const ID = 0x0d0a_1fff; // Device ID 0d0a, Vendor ID 1fff

/** A function on bus 1 that completes every configuration request with CRS until `readyAt`, then serves its space. */
class NotReady implements PcieDevice {
  readonly requests: { at: number; kind: string; register: number; tag: number }[] = [];
  private readonly config = new ConfigSpace(4096);
  private send: (tlp: Uint8Array) => void = () => {};

  constructor(private readonly scheduler: EventScheduler, public readyAt: number) {
    defineType0Header(this.config, { vendorId: ID & 0xffff, deviceId: ID >>> 16, classCode: 0xff0000 });
  }

  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
  }

  receive(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    assert.ok(!isMalformed(tlp) && isConfigRequest(tlp));
    this.requests.push({ at: this.scheduler.now, kind: tlp.kind, register: tlp.register, tag: tlp.tag });
    const self = routingId(tlp.bus, tlp.device, tlp.fn);
    const ready = this.scheduler.now >= this.readyAt && tlp.device === 0;
    this.send(encodeTlp(ready ? configCompletion(this.config, tlp, self) : errorCompletion(tlp, self, CplStatus.ConfigRequestRetry)));
  }

  /** When each Vendor ID read arrived, ns. */
  vendorReads(): number[] {
    return this.requests.filter((r) => r.kind === "CfgRd0" && r.register === 0).map((r) => r.at);
  }
}

function bench(readyAt: number) {
  const scheduler = new EventScheduler();
  const rc = new RootComplex(scheduler);
  const device = new NotReady(scheduler, readyAt);
  const link = new PcieLink(scheduler, ROOT_PORT_LINK);
  link.plugUp(rc);
  link.plugDown(device);
  rc.rootPort.header.secondaryBus.set(1);
  const log: string[] = [];
  const os = new OperatingSystem(rc, (line) => log.push(line));
  return { scheduler, rc, device, os, log };
}

/** Runs `task` until it ends or virtual time reaches `limitNs`; its result, its error, or "unfinished". */
async function run<T>(scheduler: EventScheduler, task: Task<T>, limitNs: number): Promise<T | Error | "unfinished"> {
  let outcome: T | Error | "unfinished" = "unfinished";
  spawn(task, (result) => (outcome = result));
  await scheduler.run(limitNs);
  return outcome;
}

function* read(rc: RootComplex, register: number): Task<number> {
  return (yield rc.configRead(1, 0, 0, register)) as number;
}

function* write(rc: RootComplex, register: number, value: number): Task<number> {
  return (yield rc.configWrite(1, 0, 0, register, value)) as number;
}

/** Turns Root Control's CRS Software Visibility Enable on, as the OS would. */
function* enableVisibility(rc: RootComplex): Task<number> {
  const express = findCapability(rc.rootPort.config, CapabilityId.Express)!;
  return (yield rc.configWrite(0, ROOT_PORT_DEVICE, 0, (express + Exp.RootCtl) >> 2, RootCtl.CrsVisibility, 0b0011)) as number;
}

const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]);

test("the root port offers CRS Software Visibility and leaves it off until software enables it", () => {
  const { rc } = bench(0);
  const express = findCapability(rc.rootPort.config, CapabilityId.Express)!;
  assert.equal(rc.rootPort.config.peek(express + Exp.RootCap, 2) & RootCap.CrsVisibility, RootCap.CrsVisibility, "Root Capabilities: CRS Software Visibility");
  assert.equal(rc.rootPort.config.peek(express + Exp.RootCtl, 2) & RootCtl.CrsVisibility, 0);
});

test("without CRS Software Visibility the root complex re-issues a configuration request every CRS_RETRY_NS until the function is ready", async () => {
  const { scheduler, rc, device } = bench(1 * MS);
  assert.equal(await run(scheduler, read(rc, 0), 2 * MS), ID);
  const tries = device.requests;
  assert.ok(tries.length > 50, `${tries.length} tries`);
  assert.ok(tries.every((r) => r.tag === tries[0].tag && r.kind === "CfgRd0"), "the same read each time");
  const rtt = tries[1].at - tries[0].at - CRS_RETRY_NS;
  assert.ok(rtt > 0 && rtt < 1000, `a round trip on the link: ${rtt} ns`);
  assert.ok(gaps(tries.map((r) => r.at)).every((g) => g === CRS_RETRY_NS + rtt));
  assert.ok(tries.at(-2)!.at < 1 * MS && tries.at(-1)!.at >= 1 * MS, "the last one after the function became ready");
  assert.equal(rc.counters.crsCompletions, tries.length - 1);
  assert.equal(rc.configReadNs.length, 1, "one read completed, retries included");
  assert.ok(rc.configReadNs[0] > 1 * MS - tries[0].at);
});

test("with CRS Software Visibility a Vendor ID read completes as 0xFFFF0001 at once; other reads and writes are re-issued", async () => {
  const { scheduler, rc, device } = bench(3 * MS);
  await run(scheduler, enableVisibility(rc), 1);
  assert.equal(await run(scheduler, read(rc, 0), 1 * MS), 0xffff_0001);
  assert.equal(device.requests.length, 1, "completed to software, not re-issued");
  assert.equal(rc.configReadNs.length, 0, "not a completed read of the function");
  assert.equal(await run(scheduler, read(rc, 2), 2 * MS), "unfinished", "the class code read is re-issued while the function is not ready");
  assert.equal(await run(scheduler, read(rc, 2), 4 * MS), 0xff00_0000);
  assert.equal(await run(scheduler, write(rc, 1, 0x0006), 5 * MS), 0, "a write once ready");
  assert.equal(rc.counters.crsCompletions, device.requests.length - 3);
  assert.equal(rc.counters.errorCompletions, 0);
});

test("a function that stays not ready fails the request when the completion timeout's budget runs out, and retries stop", async () => {
  const { scheduler, rc, device } = bench(Infinity);
  const outcome = await run(scheduler, read(rc, 1), COMPLETION_TIMEOUT_NS + 1 * MS);
  assert.ok(outcome instanceof RequestFailed && outcome.status === "timeout", String(outcome));
  assert.equal(rc.counters.completionTimeouts, 1);
  const tries = device.requests.length;
  assert.ok(tries > COMPLETION_TIMEOUT_NS / (CRS_RETRY_NS + 1000) && tries <= COMPLETION_TIMEOUT_NS / CRS_RETRY_NS + 1, `${tries} tries`);
  assert.ok(device.requests.at(-1)!.at < COMPLETION_TIMEOUT_NS);
  await scheduler.run(COMPLETION_TIMEOUT_NS + 10 * MS);
  assert.equal(device.requests.length, tries, "nothing re-issued after the request failed");
  assert.equal(rc.outstandingRequests, 0);
});

test("the OS enables CRS Software Visibility and re-reads the Vendor ID after 1, 2, 4, 8, 16 ms, then enumerates the function", async () => {
  const { scheduler, rc, device, os, log } = bench(20 * MS);
  const found = await run(scheduler, os.enumerate(), 100 * MS);
  assert.ok(Array.isArray(found));
  assert.deepEqual(found.map((f) => [`${f.bus}:${f.device}.${f.fn}`, f.vendorId, f.deviceId]), [["0:1.0", 0x8086, 0x1d10], ["1:0.0", 0x1fff, 0x0d0a]]);
  const express = findCapability(rc.rootPort.config, CapabilityId.Express)!;
  assert.ok(rc.rootPort.config.peek(express + Exp.RootCtl, 2) & RootCtl.CrsVisibility, "Root Control: CRS Software Visibility Enable");
  const reads = device.vendorReads();
  assert.deepEqual(gaps(reads).map((g) => Math.round(g / MS)), [1, 2, 4, 8, 16], "the doubling waits");
  assert.ok(reads.at(-2)! < 20 * MS && reads.at(-1)! >= 20 * MS);
  assert.equal(rc.counters.crsCompletions, 5, "each an answer to software, none re-issued by the root complex");
  assert.ok(!log.some((l) => l.includes("ready")), "Linux says nothing of waits under a second");
});

test("the OS logs its waits from one second on as Linux does, and gives up after 60 seconds", async () => {
  const slow = bench(3000 * MS);
  assert.equal((await run(slow.scheduler, slow.os.enumerate(), 5000 * MS) as unknown[]).length, 2);
  assert.deepEqual(slow.log.filter((l) => l.includes("ready")), [
    "pci 0000:01:00.0: not ready after 1023ms; waiting",
    "pci 0000:01:00.0: not ready after 2047ms; waiting",
    "pci 0000:01:00.0: ready after 4095ms",
  ]);
  const never = bench(Infinity);
  const found = await run(never.scheduler, never.os.enumerate(), 70_000 * MS);
  assert.deepEqual((found as { bus: number }[]).map((f) => f.bus), [0], "only the root port");
  assert.equal(never.log.filter((l) => l.includes("waiting")).length, 6, "1023 to 32767 ms");
  assert.ok(never.log.includes("pci 0000:01:00.0: not ready after 65535ms; giving up"), never.log.join("\n"));
  assert.ok(never.device.vendorReads().at(-1)! < 65_536 * MS);
});

test("a presence check (no wait) takes a not-ready function for absent at once", async () => {
  const { scheduler, os, device } = bench(10 * MS);
  await run(scheduler, enableVisibility(os.rc), 1);
  assert.equal(await run(scheduler, os.readVendorId(1, 0, 0), 1 * MS), null);
  assert.equal(device.requests.length, 1);
  await scheduler.run(10 * MS);
  assert.equal(await run(scheduler, os.readVendorId(1, 0, 0), 11 * MS), ID);
});

// The host card is ready when its BOOT batch has answered: about 37 ms after power-on at 100 MHz
// (wasm3 loading the module, then the batch). A server that asks before re-reads at 1, 2, 4, 8 ms
// ... intervals until then, and its reads after that wait only for the batches they need.
for (const enumerateMs of [2, 30]) {
  test(`at 100 MHz a server that enumerates ${enumerateMs} ms after power-on waits through CRS until the host card is ready, and finds the switch`, async () => {
    const scenario = { ...SCENARIOS.default, servers: SCENARIOS.default.servers.map((s) => ({ ...s, enumerateNs: enumerateMs * MS })) };
    const world = new World({ scenario, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, softcoreMhz: 100, durationNs: 400 * MS, print: null });
    const summary = await world.run();
    const router = world.fabrics.get("host")!.router!;
    const ready = summary.cards.find((c) => c.name === "host")!.stats.bootNs!;
    assert.ok(ready > enumerateMs * MS, "the server asks before the card is ready");
    // Vendor ID reads at enumerateMs, then 1, 2, 4 ... ms later, until the card is ready.
    let expected = 1;
    for (let at = enumerateMs * MS, wait = MS; at + wait < ready; at += wait, wait *= 2) expected++;
    assert.equal(router.counters.crsCompletions, expected, `CRS completions until the card was ready at ${(ready / MS).toFixed(1)} ms`);
    assert.equal(summary.hostCompletionTimeouts, 0);
    const reads = summary.servers[0].configReads;
    assert.ok(reads.count > 100, `${reads.count} configuration reads completed`);
    assert.ok(reads.maxNs < COMPLETION_TIMEOUT_NS, JSON.stringify(reads));
    const done = world.timeline.entries.find((e) => e.source === "os" && e.text.startsWith("enumeration"));
    const found = Number(/^enumeration done: (\d+) functions$/.exec(done?.text ?? "")?.[1]);
    assert.ok(found >= 10, `${done?.text}: the root port, the upstream port and its eight downstream ports, and the devices behind a link already up`);
  });
}
