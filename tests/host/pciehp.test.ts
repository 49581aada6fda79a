// The server's PCI Express hot-plug (tools/server/pciehp.ts) and the OS's driver model,
// against a fake of the host card (support/fake-switch.ts) whose downstream ports keep the
// hot-plug contract of docs/hotplug.md: boot with and without a device, the Slot Control
// sequence, surprise removal, re-insertion with Linux's waits, a pull under NVMe load, the
// edge-triggered MSI rule, a port that never completes a command, a port without DL Link
// Active reporting, and slots with an Attention Button and indicators: the 5 s of blinking
// after a press, the orderly removal it ends in, a press that cancels, a press that brings a
// slot up, and surprise removal and insertion with the indicators.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { PcieLink, type PcieDevice } from "../../board/pcie/link.ts";
import { decodeTlp, encodeTlp, isMalformed, CplStatus } from "../../board/pcie/tlp.ts";
import { errorCompletion } from "../../board/pcie/completer.ts";
import { Exp, SltCtl, SltSta, Command } from "../../board/map/pcie.ts";
import { RootComplex, ROOT_PORT_LINK } from "../../tools/server/root-complex.ts";
import {
  OperatingSystem, DeviceRemoved, HOTPLUG_MEMORY_BYTES, HOTPLUG_PREFETCH_BYTES, functionName,
  type OsEvent, type PciDriver,
} from "../../tools/server/os.ts";
import {
  SlotState, CONFIG_READY_MS, LINK_DETECT_MS, LINK_TIMEOUT_MS, VENDOR_ID_POLL_MS, BUTTON_DELAY_MS, PwrInd, AttnInd, type PciehpOptions,
} from "../../tools/server/pciehp.ts";
import { spawn, type Task } from "../../tools/server/task.ts";
import { NvmeController } from "../../board/devices/nvme/controller.ts";
import { NvmeDisk, nvmeDriver, nvmeLoad, newNvmeLoadStats, type NvmeLoadStats } from "../../tools/server/drivers/nvme.ts";
import { DmaTestDevice } from "../../board/devices/dma-test.ts";
import { dmaTestPciDriver } from "../../tools/server/drivers/dma-test.ts";
import { GraphicsAdapter } from "../../board/devices/graphics.ts";
import { graphicsPciDriver } from "../../tools/server/drivers/graphics.ts";
import { InputDevice } from "../../board/devices/input.ts";
import { inputPciDriver } from "../../tools/server/drivers/input.ts";
import { FakeHostSwitch, CABLE_GRACE_NS, type FakeSwitchOptions } from "./support/fake-switch.ts";

const MS = 1_000_000;
/** Slot Control register number (DW) of a fake port: Slot Control and Slot Status share it. */
const SLOT_DW = (0x40 + Exp.SltCtl) / 4;
const EVENTS = SltSta.AttentionButtonPressed | SltSta.PowerFaultDetected | SltSta.MrlSensorChanged | SltSta.PresenceDetectChanged | SltSta.CommandCompleted | SltSta.DlStateChanged;

function rig(options: FakeSwitchOptions & { hotplug?: PciehpOptions } = {}) {
  const scheduler = new EventScheduler();
  const fake = new FakeHostSwitch(scheduler, options);
  const rc = new RootComplex(scheduler);
  const link = new PcieLink(scheduler, ROOT_PORT_LINK);
  link.plugUp(rc);
  link.plugDown(fake);
  const log: { timeNs: number; text: string }[] = [];
  const os = new OperatingSystem(rc, (text) => log.push({ timeNs: scheduler.now, text }), { hotplug: options.hotplug });
  const events: OsEvent[] = [];
  os.onEvent((event) => events.push(event));
  const lines = () => log.map((l) => l.text);
  /** When the log line was written, or -1. */
  const when = (text: string) => log.find((l) => l.text === text)?.timeNs ?? -1;
  return { scheduler, fake, rc, os, log, events, lines, when };
}

/** Runs a task to completion in virtual time and returns its result. */
async function run<T>(scheduler: EventScheduler, task: Task<T>, limitNs = 5_000 * MS): Promise<T> {
  let outcome: T | Error | undefined;
  let finished = false;
  spawn(task, (result) => {
    outcome = result;
    finished = true;
  });
  const end = scheduler.now + limitNs;
  while (!finished && scheduler.now < end) await scheduler.run(scheduler.now + 100_000);
  assert.ok(finished, "the task finished");
  if (outcome instanceof Error) throw outcome;
  return outcome as T;
}

/** Advances virtual time until `done()` holds (checked every 100 µs), at most `limitNs`. */
async function until(scheduler: EventScheduler, done: () => boolean, limitNs = 5_000 * MS): Promise<void> {
  const end = scheduler.now + limitNs;
  while (!done() && scheduler.now < end) await scheduler.run(scheduler.now + 100_000);
  assert.ok(done(), `condition met within ${limitNs / MS} ms`);
}

const slotStatus = (fake: FakeHostSwitch, index: number) => fake.ports[index].express.registers.slotStatus.get();
const slotControl = (fake: FakeHostSwitch, index: number) => fake.ports[index].express.registers.slotControl.get();
const boundTo = (events: OsEvent[], driver: string) => events.filter((e): e is Extract<OsEvent, { kind: "bound" }> => e.kind === "bound" && e.driver === driver);
const port = (os: OperatingSystem, index: number) => os.functionAt(2, index, 0)!;

test("boot: an occupied slot comes up ON with its driver bound, empty slots OFF, every hot-plug port with its own controller and reserved windows", async () => {
  const { scheduler, fake, os, events, lines } = rig();
  fake.plug(2, new NvmeController(scheduler));
  os.registerDriver(nvmeDriver);
  const found = await run(scheduler, os.boot());
  assert.deepEqual(found.map(functionName), ["0:1.0", "1:0.0", "2:0.0", "2:1.0", "2:2.0", "5:0.0", "2:3.0", "2:4.0", "2:5.0", "2:6.0", "2:7.0"]);
  assert.equal(os.hotplug.length, 8, "one controller per downstream port");
  assert.deepEqual(os.hotplug.map((c) => [c.slotName, c.state]), [
    ["1", SlotState.Off], ["2", SlotState.Off], ["3", SlotState.On], ["4", SlotState.Off],
    ["5", SlotState.Off], ["6", SlotState.Off], ["7", SlotState.Off], ["8", SlotState.Off],
  ]);
  assert.ok(lines().includes("pcieport 0000:02:02.0: pciehp: Slot #3 AttnBtn- PwrCtrl- MRL- AttnInd- PwrInd- HotPlug+ Surprise+ Interlock- NoCompl- IbPresDis- LLActRep+"), lines().join("\n"));
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  const [bound] = boundTo(events, "nvme");
  assert.equal(functionName(bound.fn), "5:0.0");
  assert.ok(bound.result instanceof NvmeDisk && bound.result.blocks === 131_072);
  // Boot enumerated the device: probe found the slot as it should be, nothing to hot-add.
  assert.deepEqual(os.hotplugCounters(), {
    interrupts: 8, commands: 8, commandTimeouts: 0, removals: 0, orderlyRemovals: 0, surpriseRemovals: 0, buttonPresses: 0, insertions: 0, failedInsertions: 0,
  });
  for (let i = 0; i < 8; i++) {
    const { memory, prefetchable } = port(os, i).bridge!;
    assert.deepEqual([memory!.size, prefetchable!.size], [HOTPLUG_MEMORY_BYTES, HOTPLUG_PREFETCH_BYTES], `port ${i}'s windows are the reservation`);
    assert.equal(memory!.base % HOTPLUG_MEMORY_BYTES, 0);
    assert.equal(prefetchable!.base % HOTPLUG_PREFETCH_BYTES, 0);
  }
  const window = port(os, 2).bridge!.memory!;
  const bar = bound.fn.bars[0];
  assert.ok(bar.address >= window.base && bar.address + bar.size <= window.base + window.size, "the NVMe BAR lies inside its port's window");
});

test("probe clears stale Slot Status events and enables notification with one Slot Control command, waiting for its Command Completed interrupt", async () => {
  const { scheduler, fake, os, lines } = rig({ ports: 2 });
  fake.raise(0, SltSta.PresenceDetectChanged | SltSta.DlStateChanged); // left from before the OS; MSI is off, so no interrupt
  const found = await run(scheduler, os.boot());
  assert.deepEqual(found.map(functionName), ["0:1.0", "1:0.0", "2:0.0", "2:1.0"]);
  for (const [i, controller] of os.hotplug.entries()) {
    // PDCE | CCIE | HPIE | DLLSCE: what pcie_enable_notification writes for these slots.
    assert.equal(slotControl(fake, i), SltCtl.PresenceDetectEnable | SltCtl.CommandCompletedEnable | SltCtl.HotPlugInterruptEnable | SltCtl.DlStateChangedEnable);
    assert.equal(slotControl(fake, i), 0x1038);
    assert.equal(controller.slotCtrl, 0x1038);
    assert.equal(fake.ports[i].slotControlWrites, 1, "one command");
    assert.equal(fake.ports[i].msiSent, 1, "its Command Completed raised one MSI");
    assert.equal(controller.cmdBusy, false, "boot returned after the interrupt handler saw Command Completed");
    assert.equal(slotStatus(fake, i) & EVENTS, 0, "the handler cleared Command Completed; pcie_init the stale events");
    assert.deepEqual([controller.counters.commands, controller.counters.interrupts, controller.counters.commandTimeouts], [1, 1, 0]);
    assert.equal(controller.state, SlotState.Off, "an empty slot with stale events stays off");
    const msi = fake.ports[i].msi;
    assert.ok(msi.enabled(), "the port services enabled the port's MSI");
    assert.equal(os.interrupts.get(port(os, i).msiVector!), 1);
  }
  await scheduler.run(scheduler.now + 50 * MS);
  assert.ok(!lines().some((l) => /Timeout|Card present|Link Up/.test(l)), lines().join("\n"));
});

test("surprise removal: after the card's grace, Link Down and Card not present; the function is marked disconnected, its driver removed, then it is gone, with no completion timeout", async () => {
  const { scheduler, fake, rc, os, events, lines, when } = rig();
  fake.plug(0, new NvmeController(scheduler));
  const calls: string[] = [];
  os.registerDriver({
    ...nvmeDriver,
    remove: (fn) => {
      calls.push(`remove ${functionName(fn)}: disconnected ${fn.disconnected}, still listed ${os.functions.includes(fn)}`);
      nvmeDriver.remove(fn);
    },
  } satisfies PciDriver<NvmeDisk>);
  await run(scheduler, os.boot());
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  const fn = boundTo(events, "nvme")[0].fn;
  const msiBefore = fake.ports[0].msiSent;
  const pulled = scheduler.now;
  fake.pull(0);
  await scheduler.run(pulled + CABLE_GRACE_NS - 1);
  assert.ok(!lines().some((l) => l.includes("Slot(1)")), "nothing happens inside the grace");
  await scheduler.run(pulled + CABLE_GRACE_NS + 5 * MS);
  const down = when("pcieport 0000:02:00.0: pciehp: Slot(1): Link Down");
  assert.ok(down >= pulled + CABLE_GRACE_NS && down < pulled + CABLE_GRACE_NS + MS, lines().join("\n"));
  assert.ok(when("pcieport 0000:02:00.0: pciehp: Slot(1): Card not present") >= down);
  assert.equal(fake.ports[0].msiSent - msiBefore, 1, "both events, one MSI");
  assert.deepEqual(calls, ["remove 3:0.0: disconnected true, still listed true"]);
  const order = events.filter((e) => "fn" in e && e.fn === fn).map((e) => e.kind);
  assert.deepEqual(order, ["added", "bound", "unbound", "removed"]);
  assert.ok(fn.removed && fn.disconnected);
  assert.equal(os.functionAt(3, 0, 0), undefined, "the OS no longer has it");
  assert.ok(!lines().some((l) => l.includes("Slot(1): Card present")), "the slot stays off: nothing is there");
  const controller = os.hotplug[0];
  assert.equal(controller.state, SlotState.Off);
  assert.deepEqual([controller.counters.removals, controller.counters.surpriseRemovals, controller.counters.orderlyRemovals, controller.counters.insertions], [1, 1, 0, 0]);
  assert.ok(events.some((e) => e.kind === "hotplug" && e.slot === 1 && e.change === "removal"));
  assert.equal(fake.ports[0].slotControlWrites, 1, "no indicators: nothing written but the notification enable");
  assert.equal(slotStatus(fake, 0) & EVENTS, 0, "every event acknowledged");
  assert.equal(rc.counters.completionTimeouts, 0);
  await assert.rejects(run(scheduler, os.mmioRead32(fn, fn.bars[0].address)), DeviceRemoved, "no further MMIO to a removed function");
});

test("re-insertion: Card present and Link Up, 20 ms for the link to train, the 100 ms before configuration, the Vendor ID read, BARs in the reserved windows, the driver probed and verified I/O", async () => {
  const { scheduler, fake, rc, os, events, lines, when } = rig();
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  assert.equal(os.hotplug[1].state, SlotState.Off);
  const inserted = scheduler.now;
  fake.insert(1, new NvmeController(scheduler));
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  assert.ok(when("pcieport 0000:02:01.0: pciehp: Slot(2): Card present") >= inserted, lines().join("\n"));
  assert.ok(when("pcieport 0000:02:01.0: pciehp: Slot(2): Link Up") >= inserted);
  // Nothing reaches the slot until the link had its 20 ms and the device its 100 ms.
  const below = fake.requestsBelow.filter((r) => r.port === 1 && r.timeNs >= inserted);
  const first = below[0];
  assert.deepEqual([first.kind, first.register, first.device, first.outcome], ["CfgRd1", 0, 0, "forwarded"], "the first request is the Vendor ID read");
  const wait = first.timeNs - inserted;
  assert.ok(wait >= (LINK_DETECT_MS + CONFIG_READY_MS) * MS && wait < (LINK_DETECT_MS + CONFIG_READY_MS + 1) * MS, `${wait / MS} ms`);
  const fn = boundTo(events, "nvme")[0].fn;
  assert.equal(functionName(fn), "4:0.0");
  const window = port(os, 1).bridge!.memory!;
  for (const bar of fn.bars) assert.ok(bar.address >= window.base && bar.address + bar.size <= window.base + window.size, `BAR${bar.index} inside ${window.base.toString(16)}+${window.size}`);
  const controller = os.hotplug[1];
  assert.equal(controller.state, SlotState.On);
  assert.deepEqual([controller.counters.insertions, controller.counters.failedInsertions], [1, 0]);
  assert.equal(slotStatus(fake, 1) & EVENTS, 0);
  const disk = boundTo(events, "nvme")[0].result as NvmeDisk;
  let rounds = 0;
  const stats = await run(scheduler, nvmeLoad(disk, { region: { lba: 0, blocks: 2048 }, blocksPerCommand: 64, queueDepth: 4, verify: true, stop: () => rounds++ >= 40 }));
  assert.equal(stats.ended, "stopped");
  assert.ok(stats.verifiedBytes >= 32 * 64 * 512, `${stats.verifiedBytes} bytes verified`);
  assert.deepEqual([stats.errors, stats.mismatches, stats.aborted], [0, 0, 0]);
  assert.equal(rc.counters.completionTimeouts, 0);
});

/** A device that answers configuration requests Unsupported Request until `readyAt`, as a card still initialising. */
class NotReadyUntil implements PcieDevice {
  private send: (tlp: Uint8Array) => void = () => {};
  constructor(private readonly inner: PcieDevice, private readonly scheduler: EventScheduler, private readonly readyAt: number) {}
  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
    this.inner.connect(send);
  }
  receive(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    if (!isMalformed(tlp) && tlp.kind.startsWith("Cfg") && this.scheduler.now < this.readyAt) this.send(encodeTlp(errorCompletion(tlp, 0, CplStatus.UnsupportedRequest)));
    else this.inner.receive(bytes);
  }
}

test("a device that answers late is found by Vendor ID reads 20 ms apart (pci_bus_check_dev)", async () => {
  const { scheduler, fake, os, events } = rig({ ports: 1 });
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  const inserted = scheduler.now;
  fake.insert(0, new NotReadyUntil(new NvmeController(scheduler), scheduler, inserted + 190 * MS));
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  const reads = fake.requestsBelow.filter((r) => r.register === 0 && r.timeNs >= inserted).map((r) => (r.timeNs - inserted) / MS);
  // Polls from 120 ms (20 ms for the link, 100 ms for the device) every 20 ms until it answers
  // at 190 ms; then pci_scan_slot reads the ID once more.
  const polls = reads.slice(0, 5);
  assert.deepEqual(polls.map(Math.floor), [120, 140, 160, 180, 200], `reads at ${reads.join(", ")} ms`);
  polls.slice(1).forEach((t, i) => assert.ok(t - polls[i] >= VENDOR_ID_POLL_MS && t - polls[i] < VENDOR_ID_POLL_MS + 0.1));
  assert.equal(reads.length, 6);
  assert.ok(reads[5] - reads[4] < 0.1, "the scan follows at once");
  assert.equal(os.hotplug[0].counters.insertions, 1);
});

test("a cable pull under NVMe load: the load stops cleanly, its waiting commands aborted, nothing mismatched or timed out", async () => {
  const { scheduler, fake, rc, os, events } = rig({ ports: 2 });
  fake.plug(0, new NvmeController(scheduler));
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  const disk = boundTo(events, "nvme")[0].result as NvmeDisk;
  const stats: NvmeLoadStats = newNvmeLoadStats();
  const outcome: { result?: NvmeLoadStats | Error } = {};
  spawn(nvmeLoad(disk, { region: { lba: 0, blocks: 8192 }, blocksPerCommand: 64, queueDepth: 8, verify: true, stats }), (r) => (outcome.result = r));
  await scheduler.run(scheduler.now + 5 * MS);
  assert.ok(stats.rounds > 10, `${stats.rounds} rounds before the pull`);
  const roundsAtPull = stats.rounds;
  fake.pull(0);
  await until(scheduler, () => outcome.result !== undefined, 100 * MS);
  assert.equal(outcome.result, stats, String(outcome.result));
  assert.equal(stats.ended, "removed");
  assert.ok(stats.aborted > 0 && stats.aborted <= 8, `${stats.aborted} commands aborted`);
  assert.equal(stats.aborted, disk.abortedCommands);
  assert.deepEqual([stats.errors, stats.mismatches], [0, 0]);
  assert.ok(stats.rounds >= roundsAtPull && stats.verifiedBytes === stats.rounds * 64 * 512);
  assert.equal(disk.state, "removed");
  assert.equal(disk.outstanding, 0);
  assert.equal(rc.counters.completionTimeouts, 0);
  assert.equal(os.hotplug[0].counters.removals, 1);
});

test("edge-triggered MSI: an event that arrives between the handler's read and its write-back is found by reading Slot Status again", async () => {
  const { scheduler, fake, os } = rig({ ports: 1 });
  await run(scheduler, os.boot());
  const controller = os.hotplug[0];
  const before = { msi: fake.ports[0].msiSent, interrupts: controller.counters.interrupts };
  let statusReads = 0;
  fake.afterPortRead = (p, register) => {
    if (p.index !== 0 || register !== SLOT_DW) return;
    // The handler has read Presence Detect Changed; DL State Changed comes before it writes it back.
    if (++statusReads === 1) fake.raise(0, SltSta.DlStateChanged);
  };
  fake.raise(0, SltSta.PresenceDetectChanged);
  await scheduler.run(scheduler.now + 5 * MS);
  assert.equal(fake.ports[0].msiSent - before.msi, 1, "the line never went low: one MSI for both events");
  // The handler: read (Presence Detect Changed), read again (DL State Changed), read again
  // (nothing left); then the thread reads Presence Detect State.
  assert.equal(statusReads, 4);
  assert.equal(slotStatus(fake, 0) & EVENTS, 0, "both acknowledged");
  // With every event clear the next one is a rising edge again.
  fake.afterPortRead = null;
  fake.raise(0, SltSta.PresenceDetectChanged);
  await scheduler.run(scheduler.now + 5 * MS);
  assert.equal(fake.ports[0].msiSent - before.msi, 2);
  assert.equal(controller.counters.interrupts - before.interrupts, 2);
  assert.equal(controller.state, SlotState.Off, "an empty slot stays off whatever the events");
});

test("a port that never sets Command Completed: the command times out after 1 s, logged as Linux does, and hot-plug still works", async () => {
  const { scheduler, fake, os, events, lines, when } = rig({ ports: 1, commandCompleted: false });
  os.registerDriver(nvmeDriver);
  const started = scheduler.now;
  await run(scheduler, os.boot());
  const text = "pcieport 0000:02:00.0: pciehp: Timeout on hotplug command 0x1038 (issued 1000 msec ago)";
  assert.ok(lines().includes(text), lines().join("\n"));
  assert.ok(when(text) - started >= LINK_TIMEOUT_MS * MS);
  const controller = os.hotplug[0];
  assert.equal(controller.counters.commandTimeouts, 1);
  assert.equal(slotControl(fake, 0), 0x1038, "the command itself took effect");
  fake.insert(0, new NvmeController(scheduler));
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  assert.equal(controller.counters.insertions, 1);
});

test("without DL Link Active reporting: DLLSCE is not implemented, and an insertion waits the full 1 s + 100 ms before configuration", async () => {
  const { scheduler, fake, os, events, lines } = rig({ ports: 1, dlActiveReporting: false });
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  const controller = os.hotplug[0];
  assert.equal(controller.linkActiveReporting, false);
  assert.ok(lines().some((l) => l.endsWith("LLActRep-")));
  assert.equal(controller.slotCtrl, 0x1038, "Linux asks for DL State Changed events whatever the port reports");
  assert.equal(slotControl(fake, 0), 0x0038, "the port does not implement the enable");
  const inserted = scheduler.now;
  fake.insert(0, new NvmeController(scheduler));
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Card present"));
  assert.ok(!lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Link Up"), "no link state to report");
  const first = fake.requestsBelow.find((r) => r.timeNs >= inserted)!;
  const wait = first.timeNs - inserted;
  assert.ok(wait >= (LINK_TIMEOUT_MS + CONFIG_READY_MS) * MS && wait < (LINK_TIMEOUT_MS + CONFIG_READY_MS + 1) * MS, `${wait / MS} ms`);
  fake.pull(0);
  await scheduler.run(scheduler.now + CABLE_GRACE_NS + 5 * MS);
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Card not present"));
  assert.ok(!lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Link Down"));
  assert.equal(controller.counters.removals, 1);
});

test("every chassis device inserted after boot fits the hot-plug reservation and gets its driver", async () => {
  const { scheduler, fake, os, events } = rig({ ports: 4 });
  os.registerDriver(nvmeDriver);
  os.registerDriver(graphicsPciDriver);
  os.registerDriver(dmaTestPciDriver({ length: 64 * 1024, seed: 7 }));
  os.registerDriver(inputPciDriver({ entries: 16, onReport: () => {} }));
  await run(scheduler, os.boot());
  const devices = [new NvmeController(scheduler), new GraphicsAdapter(scheduler), new DmaTestDevice(scheduler), new InputDevice(scheduler)];
  devices.forEach((device, i) => fake.insert(i, device));
  await until(scheduler, () => events.filter((e) => e.kind === "bound").length === 4);
  assert.deepEqual(events.filter((e) => e.kind === "probeFailed"), []);
  devices.forEach((device, i) => {
    const fn = os.functionAt(3 + i, 0, 0)!;
    assert.equal(fn.bars.length, device.header.bars.filter(Boolean).length, `${functionName(fn)}: every BAR assigned`);
    const { memory, prefetchable } = port(os, i).bridge!;
    for (const bar of fn.bars) {
      const window = bar.prefetchable ? prefetchable! : memory!;
      assert.ok(bar.address >= window.base && bar.address + bar.size <= window.base + window.size);
      assert.equal(Number(device.header.bars[bar.index]!.address()), bar.address, "the device holds the address");
    }
  });
  assert.deepEqual(os.hotplug.map((c) => c.state), [SlotState.On, SlotState.On, SlotState.On, SlotState.On]);
});

test("a driver in the middle of its work when the device goes away fails with DeviceRemoved, not a timeout", async () => {
  const { scheduler, fake, rc, os, events } = rig({ ports: 1 });
  fake.plug(0, new DmaTestDevice(scheduler));
  os.registerDriver(dmaTestPciDriver({ length: 8 << 20, seed: 9 }));
  await run(scheduler, os.boot());
  await scheduler.run(scheduler.now + 100_000); // the device is writing 8 MiB
  fake.pull(0);
  await until(scheduler, () => events.some((e) => e.kind === "probeFailed"), 100 * MS);
  const failed = events.find((e): e is Extract<OsEvent, { kind: "probeFailed" }> => e.kind === "probeFailed")!;
  assert.ok(failed.error instanceof DeviceRemoved, failed.error.message);
  assert.equal(failed.error.message, "3:0.0: device removed");
  assert.equal(rc.counters.completionTimeouts, 0);
});

test("a safe removal asked for by software (sysfs) unbinds and removes without marking the function disconnected, and stops its bus mastering", async () => {
  const { scheduler, fake, os, events } = rig({ ports: 1 });
  const device = new NvmeController(scheduler);
  fake.plug(0, device);
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  const fn = boundTo(events, "nvme")[0].fn;
  assert.ok(os.hotplug[0].requestDisable());
  await until(scheduler, () => fn.removed);
  assert.equal(fn.disconnected, false);
  await scheduler.run(scheduler.now + MS);
  assert.equal(device.header.command.test(Command.BusMaster), false);
  assert.ok(device.header.command.test(Command.InterruptDisable));
  assert.equal(os.hotplug[0].state, SlotState.Off);
  assert.deepEqual([os.hotplug[0].counters.orderlyRemovals, os.hotplug[0].counters.surpriseRemovals], [1, 0]);
  assert.ok(os.hotplug[0].requestEnable(), "and it can be brought back");
  await until(scheduler, () => boundTo(events, "nvme").length === 2);
  assert.equal(os.hotplug[0].state, SlotState.On);
});

test("poll mode (pciehp_poll_mode): no hot-plug interrupts, Command Completed polled, Slot Status read every 2 s from 10 s after probe", async () => {
  const { scheduler, fake, os, events } = rig({ ports: 1, hotplug: { pollMode: true } });
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  assert.equal(slotControl(fake, 0), SltCtl.PresenceDetectEnable | SltCtl.DlStateChangedEnable);
  assert.equal(slotStatus(fake, 0) & SltSta.CommandCompleted, 0, "pcie_poll_cmd cleared Command Completed");
  assert.equal(fake.ports[0].msiSent, 0);
  assert.equal(os.hotplug[0].counters.commandTimeouts, 0);
  assert.ok(scheduler.now < MS, "probe was at the start");
  const inserted = scheduler.now;
  fake.insert(0, new NvmeController(scheduler));
  await until(scheduler, () => boundTo(events, "nvme").length === 1, 15_000 * MS);
  // Seen by the first poll, 10 s after probe; configured after the link's 20 ms and the device's 100 ms.
  const configured = fake.requestsBelow.find((r) => r.timeNs >= inserted)!.timeNs;
  assert.ok(configured >= 10_000 * MS + 120 * MS && configured < 10_000 * MS + 122 * MS, `${configured / MS} ms`);
});

test("presence without a link: DL Link Active is polled for 1 s, then No link, and the slot stays off", async () => {
  const { scheduler, fake, os, lines, when } = rig({ ports: 1 });
  await run(scheduler, os.boot());
  const detected = scheduler.now;
  fake.ports[0].slot.presenceDetectState.set(1); // a card, but its link never trains
  fake.raise(0, SltSta.PresenceDetectChanged);
  await scheduler.run(scheduler.now + 1200 * MS);
  const text = "pcieport 0000:02:00.0: Data Link Layer Link Active not set in 1000 msec";
  assert.ok(lines().includes(text), lines().join("\n"));
  const waited = when(text) - detected;
  assert.ok(waited >= (LINK_DETECT_MS + LINK_TIMEOUT_MS) * MS && waited < (LINK_DETECT_MS + LINK_TIMEOUT_MS + 1) * MS, `${waited / MS} ms`);
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): No link"));
  assert.deepEqual(fake.requestsBelow.filter((r) => r.timeNs >= detected), [], "nothing was sent below the port");
  assert.equal(os.hotplug[0].state, SlotState.Off);
  assert.equal(os.hotplug[0].counters.failedInsertions, 1);
});

test("a cable pulled again while the slot is coming up: the insertion fails cleanly and the slot ends off, ready for the next one", async () => {
  const { scheduler, fake, rc, os, events, lines } = rig({ ports: 1 });
  os.registerDriver(nvmeDriver);
  await run(scheduler, os.boot());
  fake.insert(0, new NvmeController(scheduler));
  await scheduler.run(scheduler.now + 50 * MS); // inside the 100 ms before configuration
  fake.pull(0);
  await scheduler.run(scheduler.now + 1500 * MS);
  const controller = os.hotplug[0];
  assert.equal(controller.state, SlotState.Off);
  assert.deepEqual([controller.counters.insertions, controller.counters.failedInsertions, controller.counters.removals], [0, 1, 0]);
  assert.ok(lines().some((l) => l.startsWith("pcieport 0000:02:00.0: pciehp: Slot(1): Cannot train link")), lines().join("\n"));
  assert.equal(os.functionAt(3, 0, 0), undefined);
  assert.equal(rc.counters.completionTimeouts, 0);
  assert.equal(slotStatus(fake, 0) & EVENTS, 0);
  fake.insert(0, new NvmeController(scheduler));
  await until(scheduler, () => boundTo(events, "nvme").length === 1);
  assert.equal(controller.counters.insertions, 1);
});

// ---- Attention Button and indicators -------------------------------------------------------

/** Slots as the host card's will be: Attention Button, Power Indicator and Attention Indicator, no power controller. */
const BUTTON: FakeSwitchOptions = { attentionButton: true, powerIndicator: true, attentionIndicator: true };
const PIC = (value: number) => value & SltCtl.PowerIndicator;
const AIC = (value: number) => value & SltCtl.AttentionIndicator;
/** A port's Slot Control writes from `from` on: ms after `from`, Power and Attention Indicator Control. */
const indicatorWrites = (fake: FakeHostSwitch, index: number, from: number) =>
  fake.ports[index].slotControlLog.filter((w) => w.timeNs >= from).map((w) => ({ ms: (w.timeNs - from) / MS, pic: PIC(w.value), aic: AIC(w.value) }));
const slotLines = (lines: string[]) => lines.filter((l) => l.startsWith("pcieport 0000:02:00.0: pciehp: Slot("));

/** Boots one slot with a button and indicators and an NVMe drive bound in it; the driver's remove calls are recorded. */
async function bootWithButton() {
  const r = rig({ ports: 1, ...BUTTON });
  const device = new NvmeController(r.scheduler);
  r.fake.plug(0, device);
  const calls: string[] = [];
  r.os.registerDriver({
    ...nvmeDriver,
    remove: (fn) => {
      calls.push(`remove ${functionName(fn)}: disconnected ${fn.disconnected}, still listed ${r.os.functions.includes(fn)}`);
      nvmeDriver.remove(fn);
    },
  } satisfies PciDriver<NvmeDisk>);
  await run(r.scheduler, r.os.boot());
  await until(r.scheduler, () => boundTo(r.events, "nvme").length === 1);
  return { ...r, device, calls, controller: r.os.hotplug[0], fn: boundTo(r.events, "nvme")[0].fn };
}

test("attention button: a press blinks the Power Indicator for 5 s, then an orderly removal: the driver removed with the device still reachable, the function gone, Power Indicator Off written last", async () => {
  const { scheduler, fake, rc, os, events, lines, when, device, calls, controller, fn } = await bootWithButton();
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot #1 AttnBtn+ PwrCtrl- MRL- AttnInd+ PwrInd+ HotPlug+ Surprise+ Interlock- NoCompl- IbPresDis- LLActRep+"), lines().join("\n"));
  // pcie_enable_notification with a button: ABPE, not PDCE; the indicators keep their reset values (Power On, Attention Off).
  assert.equal(controller.slotCtrl, SltCtl.AttentionButtonEnable | SltCtl.CommandCompletedEnable | SltCtl.HotPlugInterruptEnable | SltCtl.DlStateChangedEnable | PwrInd.On | AttnInd.Off);
  assert.equal(slotControl(fake, 0), 0x11f1);
  assert.equal(controller.state, SlotState.On);
  let atCompletion: { removed: boolean; busMaster: boolean; state: SlotState; unbound: number } | null = null;
  fake.onRemovalComplete = () => {
    atCompletion = { removed: fn.removed, busMaster: device.header.command.test(Command.BusMaster), state: controller.state, unbound: events.filter((e) => e.kind === "unbound").length };
  };
  const msiBefore = fake.ports[0].msiSent;
  const pressed = scheduler.now;
  fake.pressAttentionButton(0);
  await scheduler.run(pressed + 5 * MS);
  assert.equal(fake.ports[0].msiSent - msiBefore, 2, "the press, then the Command Completed of the indicator command");
  assert.equal(controller.state, SlotState.BlinkingOff);
  const pressedLine = "pcieport 0000:02:00.0: pciehp: Slot(1): Attention button pressed";
  assert.ok(when(pressedLine) >= pressed && when(pressedLine) < pressed + MS, lines().join("\n"));
  assert.ok(when("pcieport 0000:02:00.0: pciehp: Slot(1): Button press: will power off in 5 sec") >= when(pressedLine));
  assert.deepEqual(indicatorWrites(fake, 0, pressed).map((w) => [w.pic, w.aic]), [[PwrInd.Blink, AttnInd.Off]], "Power Indicator Blink, Attention Indicator Off");
  assert.ok(indicatorWrites(fake, 0, pressed)[0].ms < 1);
  assert.equal(slotStatus(fake, 0) & EVENTS, 0, "the press and the Command Completed acknowledged");
  // Nothing more for 5 s: the slot blinks, the driver keeps its device.
  await scheduler.run(pressed + BUTTON_DELAY_MS * MS - 1);
  assert.equal(controller.state, SlotState.BlinkingOff);
  assert.deepEqual(calls, []);
  assert.ok(!fn.removed);
  assert.equal(indicatorWrites(fake, 0, pressed).length, 1);
  assert.equal(fake.ports[0].removalCompletedAt, null);
  // Then the push-button work: a safe removal.
  await until(scheduler, () => fake.ports[0].removalCompletedAt !== null, 100 * MS);
  const completed = fake.ports[0].removalCompletedAt!;
  assert.ok(completed >= pressed + BUTTON_DELAY_MS * MS && completed < pressed + (BUTTON_DELAY_MS + 1) * MS, `${(completed - pressed) / MS} ms`);
  assert.deepEqual(calls, ["remove 3:0.0: disconnected false, still listed true"], "a safe removal: the device is still reachable, nothing is marked disconnected");
  assert.deepEqual(events.filter((e) => "fn" in e && e.fn === fn).map((e) => e.kind), ["added", "bound", "unbound", "removed"]);
  assert.ok(fn.removed && !fn.disconnected);
  assert.equal(os.functionAt(3, 0, 0), undefined, "the OS no longer has it");
  assert.deepEqual(atCompletion, { removed: true, busMaster: false, state: SlotState.PowerOff, unbound: 1 }, "Power Indicator Off after the function is gone and its bus mastering stopped, before the slot is OFF");
  const writes = indicatorWrites(fake, 0, pressed);
  assert.deepEqual(writes.map((w) => [w.pic, w.aic]), [[PwrInd.Blink, AttnInd.Off], [PwrInd.Off, AttnInd.Off]], "the last write turns the Power Indicator Off and leaves the Attention Indicator");
  assert.equal(writes[1].ms, (completed - pressed) / MS);
  assert.ok(lines().some((l) => l.startsWith("device 3:0.0 ") && l.endsWith(" removed")), "removed, not disconnected");
  assert.ok(!lines().some((l) => /Link Down|Card not present/.test(l)));
  await scheduler.run(scheduler.now + MS);
  assert.equal(controller.state, SlotState.Off);
  assert.ok(events.some((e) => e.kind === "hotplug" && e.slot === 1 && e.change === "removal"));
  const { buttonPresses, removals, orderlyRemovals, surpriseRemovals, insertions, commandTimeouts } = controller.counters;
  assert.deepEqual({ buttonPresses, removals, orderlyRemovals, surpriseRemovals, insertions, commandTimeouts }, { buttonPresses: 1, removals: 1, orderlyRemovals: 1, surpriseRemovals: 0, insertions: 0, commandTimeouts: 0 });
  assert.equal(os.hotplugCounters().orderlyRemovals, 1);
  // The card then closes the slot: presence and DL Link Active clear. A link change on a slot
  // that is OFF with nothing there does nothing.
  const before = { lines: lines().length, writes: fake.ports[0].slotControlWrites, msi: fake.ports[0].msiSent, interrupts: controller.counters.interrupts };
  fake.pull(0);
  await scheduler.run(scheduler.now + CABLE_GRACE_NS + 5 * MS);
  assert.equal(fake.ports[0].msiSent - before.msi, 1, "DL State Changed is enabled: one MSI");
  assert.equal(controller.counters.interrupts - before.interrupts, 1);
  assert.deepEqual(lines().slice(before.lines), [], "nothing logged");
  assert.equal(fake.ports[0].slotControlWrites, before.writes, "no command");
  assert.equal(slotStatus(fake, 0) & EVENTS, 0, "both events acknowledged");
  assert.equal(controller.state, SlotState.Off);
  assert.deepEqual([controller.counters.removals, controller.counters.insertions, controller.counters.failedInsertions], [1, 0, 0]);
  assert.equal(rc.counters.completionTimeouts, 0);
});

test("attention button: a second press within the 5 s cancels — Power Indicator back On, the device kept — and a later press starts 5 s of its own", async () => {
  const { scheduler, fake, os, lines, calls, controller, fn } = await bootWithButton();
  const pressed = scheduler.now;
  fake.pressAttentionButton(0);
  await scheduler.run(pressed + 2000 * MS);
  assert.equal(controller.state, SlotState.BlinkingOff);
  fake.pressAttentionButton(0);
  await scheduler.run(pressed + 2005 * MS);
  assert.equal(controller.state, SlotState.On);
  assert.deepEqual(slotLines(lines()), [
    "pcieport 0000:02:00.0: pciehp: Slot(1): Attention button pressed",
    "pcieport 0000:02:00.0: pciehp: Slot(1): Button press: will power off in 5 sec",
    "pcieport 0000:02:00.0: pciehp: Slot(1): Attention button pressed",
    "pcieport 0000:02:00.0: pciehp: Slot(1): Button press: canceling request to power off",
  ]);
  assert.deepEqual(indicatorWrites(fake, 0, pressed).map((w) => [Math.floor(w.ms), w.pic, w.aic]), [[0, PwrInd.Blink, AttnInd.Off], [2000, PwrInd.On, AttnInd.Off]]);
  assert.equal(fake.ports[0].removalCompletedAt, null);
  // A third press at 3 s blinks again; the first press's work was cancelled, so 5 s after the
  // first press nothing happens ...
  await scheduler.run(pressed + 3000 * MS);
  const again = scheduler.now;
  fake.pressAttentionButton(0);
  await scheduler.run(pressed + (BUTTON_DELAY_MS + 500) * MS);
  assert.equal(controller.state, SlotState.BlinkingOff);
  assert.deepEqual(calls, []);
  assert.ok(!fn.removed && os.functionAt(3, 0, 0) === fn);
  assert.deepEqual([controller.counters.buttonPresses, controller.counters.removals], [3, 0]);
  // ... and the removal comes 5 s after the third.
  await until(scheduler, () => fn.removed, (BUTTON_DELAY_MS + 100) * MS);
  assert.ok(scheduler.now >= again + BUTTON_DELAY_MS * MS, `${(scheduler.now - again) / MS} ms after the third press`);
  assert.deepEqual(calls, ["remove 3:0.0: disconnected false, still listed true"]);
  await scheduler.run(scheduler.now + MS);
  assert.deepEqual(indicatorWrites(fake, 0, again).map((w) => w.pic), [PwrInd.Blink, PwrInd.Off]);
  assert.deepEqual([controller.state, controller.counters.buttonPresses, controller.counters.orderlyRemovals], [SlotState.Off, 3, 1]);
});

test("attention button on a slot that is off with its device there: the slot blinks for 5 s, then comes up with Linux's waits, Power Indicator Blink then On", async () => {
  const { scheduler, fake, os, events, lines, when, controller } = await bootWithButton();
  // Software takes the slot down safely (sysfs): Power Indicator Off; the device stays in the slot.
  assert.ok(controller.requestDisable());
  await until(scheduler, () => controller.state === SlotState.Off);
  await scheduler.run(scheduler.now + MS);
  assert.equal(PIC(slotControl(fake, 0)), PwrInd.Off);
  assert.equal(os.functionAt(3, 0, 0), undefined);
  const pressed = scheduler.now;
  fake.pressAttentionButton(0);
  await scheduler.run(pressed + 5 * MS);
  assert.equal(controller.state, SlotState.BlinkingOn);
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Button press: will power on in 5 sec"));
  await scheduler.run(pressed + BUTTON_DELAY_MS * MS - 1);
  assert.equal(controller.state, SlotState.BlinkingOn);
  assert.equal(fake.requestsBelow.filter((r) => r.timeNs >= pressed).length, 0, "nothing is sent to the device while the slot blinks");
  await until(scheduler, () => boundTo(events, "nvme").length === 2, 1000 * MS);
  const present = when("pcieport 0000:02:00.0: pciehp: Slot(1): Card present");
  assert.ok(present >= pressed + BUTTON_DELAY_MS * MS && present < pressed + (BUTTON_DELAY_MS + 1) * MS, `${(present - pressed) / MS} ms`);
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Link Up"));
  const first = fake.requestsBelow.find((r) => r.timeNs >= pressed)!;
  const wait = first.timeNs - present;
  assert.ok(wait >= (LINK_DETECT_MS + CONFIG_READY_MS) * MS && wait < (LINK_DETECT_MS + CONFIG_READY_MS + 1) * MS, `${wait / MS} ms`);
  const writes = indicatorWrites(fake, 0, pressed);
  assert.deepEqual(writes.map((w) => [w.pic, w.aic]), [[PwrInd.Blink, AttnInd.Off], [PwrInd.Blink, AttnInd.Off], [PwrInd.On, AttnInd.Off]],
    "the press's Blink, board_added's Blink before the link check, On after configuration");
  assert.ok(writes[2].ms > (first.timeNs - pressed) / MS, "On after the device was configured");
  assert.equal(controller.state, SlotState.On);
  assert.equal(functionName(boundTo(events, "nvme")[1].fn), "3:0.0");
  const { buttonPresses, orderlyRemovals, insertions, failedInsertions } = controller.counters;
  assert.deepEqual({ buttonPresses, orderlyRemovals, insertions, failedInsertions }, { buttonPresses: 1, orderlyRemovals: 1, insertions: 1, failedInsertions: 0 });
});

test("attention button on an empty slot: after the 5 s nothing is there, so the slot goes back off (Card not present, Power Indicator Off)", async () => {
  const { scheduler, fake, os, lines } = rig({ ports: 1, ...BUTTON });
  await run(scheduler, os.boot());
  const controller = os.hotplug[0];
  assert.equal(controller.state, SlotState.Off);
  const pressed = scheduler.now;
  fake.pressAttentionButton(0);
  await scheduler.run(pressed + (BUTTON_DELAY_MS + 10) * MS);
  assert.deepEqual(slotLines(lines()), [
    "pcieport 0000:02:00.0: pciehp: Slot(1): Attention button pressed",
    "pcieport 0000:02:00.0: pciehp: Slot(1): Button press: will power on in 5 sec",
    "pcieport 0000:02:00.0: pciehp: Slot(1): Card not present",
  ]);
  assert.deepEqual(indicatorWrites(fake, 0, pressed).map((w) => [Math.floor(w.ms), w.pic, w.aic]), [[0, PwrInd.Blink, AttnInd.Off], [BUTTON_DELAY_MS, PwrInd.Off, AttnInd.Off]]);
  assert.equal(controller.state, SlotState.Off);
  assert.deepEqual([controller.counters.insertions, controller.counters.failedInsertions], [0, 0], "no insertion was tried");
  assert.deepEqual(fake.requestsBelow.filter((r) => r.timeNs >= pressed), [], "nothing sent below the port");
});

test("with a button and indicators, a surprise removal still comes through DL State Changed and ends with the Power Indicator Off; a re-insertion blinks it, then turns it On", async () => {
  const { scheduler, fake, rc, events, lines, when, calls, controller } = await bootWithButton();
  const msiBefore = fake.ports[0].msiSent;
  const pulled = scheduler.now;
  fake.pull(0);
  await scheduler.run(pulled + CABLE_GRACE_NS + 5 * MS);
  assert.ok(when("pcieport 0000:02:00.0: pciehp: Slot(1): Link Down") >= pulled + CABLE_GRACE_NS, lines().join("\n"));
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): Card not present"), "Presence Detect Changed is read with DL State Changed");
  assert.deepEqual(calls, ["remove 3:0.0: disconnected true, still listed true"]);
  assert.equal(fake.ports[0].msiSent - msiBefore, 2, "DL State Changed (Presence Detect Changed is not enabled), then the indicator command's Command Completed");
  assert.deepEqual(indicatorWrites(fake, 0, pulled).map((w) => [w.pic, w.aic]), [[PwrInd.Off, AttnInd.Off]], "remove_board: Power Indicator Off");
  assert.equal(fake.ports[0].removalCompletedAt, null, "no press: the card was not asking");
  assert.equal(controller.state, SlotState.Off);
  assert.deepEqual([controller.counters.surpriseRemovals, controller.counters.orderlyRemovals, controller.counters.buttonPresses], [1, 0, 0]);
  const inserted = scheduler.now;
  fake.insert(0, new NvmeController(scheduler));
  await until(scheduler, () => boundTo(events, "nvme").length === 2);
  assert.ok(when("pcieport 0000:02:00.0: pciehp: Slot(1): Card present") >= inserted);
  assert.ok(when("pcieport 0000:02:00.0: pciehp: Slot(1): Link Up") >= inserted);
  const first = fake.requestsBelow.find((r) => r.timeNs >= inserted)!;
  assert.ok(first.timeNs - inserted >= (LINK_DETECT_MS + CONFIG_READY_MS) * MS && first.timeNs - inserted < (LINK_DETECT_MS + CONFIG_READY_MS + 1) * MS);
  const writes = indicatorWrites(fake, 0, inserted);
  assert.deepEqual(writes.map((w) => [w.pic, w.aic]), [[PwrInd.Blink, AttnInd.Off], [PwrInd.On, AttnInd.Off]]);
  assert.ok(writes[0].ms < 1, "Blink at once, before the link check");
  assert.ok(writes[1].ms > (first.timeNs - inserted) / MS, "On once the device is configured");
  assert.equal(controller.state, SlotState.On);
  assert.deepEqual([controller.counters.insertions, controller.counters.commandTimeouts], [1, 0]);
  assert.equal(slotStatus(fake, 0) & EVENTS, 0);
  assert.equal(rc.counters.completionTimeouts, 0);
});

test("with indicators, an insertion that fails turns the slot off as set_slot_off does: Power Indicator Off and Attention Indicator On, then Power Indicator Off again (pciehp_enable_slot)", async () => {
  const { scheduler, fake, os, lines } = rig({ ports: 1, ...BUTTON });
  await run(scheduler, os.boot());
  const detected = scheduler.now;
  fake.ports[0].slot.presenceDetectState.set(1); // a card, but its link never trains
  fake.ports[0].slot.dlStateChanged.set(1); // DL State Changed, as Presence Detect Changed is not enabled with a button
  fake.raise(0, 0);
  await scheduler.run(detected + 1200 * MS);
  assert.ok(lines().includes("pcieport 0000:02:00.0: pciehp: Slot(1): No link"), lines().join("\n"));
  assert.deepEqual(indicatorWrites(fake, 0, detected).map((w) => [w.pic, w.aic]), [[PwrInd.Blink, AttnInd.Off], [PwrInd.Off, AttnInd.On], [PwrInd.Off, AttnInd.On]]);
  assert.equal(os.hotplug[0].state, SlotState.Off);
  assert.equal(os.hotplug[0].counters.failedInsertions, 1);
});
