// CardReg.SlotReset (chassis cards): a fundamental reset (PERST#) of the device in a chassis
// slot. The fabric refuses it on a host card and for slots the chassis lacks; each device
// model returns to its power-on state (configuration space, registers, work in flight) and
// keeps what a real device keeps (an NVMe namespace's blocks).

import { test } from "node:test";
import assert from "node:assert/strict";
import { runTask } from "./support/run-task.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { remotePcie } from "../../tools/sim/remote-pcie.ts";
import { spawn } from "../../tools/server/task.ts";
import { Fabric } from "../../board/fabric.ts";
import { ChassisRoot } from "../../board/pcie/chassis-root.ts";
import { BOARD_ID, CardReg, FabricEventKind } from "../../board/map/registers.ts";
import { Command, Hdr } from "../../board/map/pcie.ts";
import { encodeTlp, decodeTlp, DEFAULT_COMMON, type Tlp } from "../../board/pcie/tlp.ts";
import type { Endpoint } from "../../board/pcie/endpoint.ts";
import { NvmeController } from "../../board/devices/nvme/controller.ts";
import { NvmeReg, DOORBELL_BASE } from "../../board/devices/nvme/spec.ts";
import { GraphicsAdapter, GfxReg } from "../../board/devices/graphics.ts";
import { InputDevice, InputReg } from "../../board/devices/input.ts";
import { DmaTestDevice, DmaReg, DmaCommand } from "../../board/devices/dma-test.ts";
import { nvmeInit, isNvme } from "../../tools/server/drivers/nvme.ts";
import { graphicsDriver, isGraphics } from "../../tools/server/drivers/graphics.ts";
import { inputDriver, isInput } from "../../tools/server/drivers/input.ts";
import { pattern } from "../../board/devices/dma-test.ts";


/** A device's BAR registers as the device holds them (its BARs are unassigned after a reset, so not through TLPs). */
function registers(device: Endpoint, bar: number, length: number): Uint8Array {
  return (device as unknown as { mmioRead(bar: number, offset: number, length: number): Uint8Array }).mmioRead(bar, 0, length);
}

function barWrite(device: Endpoint, bar: number, offset: number, value: number): void {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, value >>> 0, true);
  (device as unknown as { mmioWrite(bar: number, offset: number, data: Uint8Array, f: number, l: number): void }).mmioWrite(bar, offset, data, 0xf, 0);
}

test("SlotReset: chassis cards only, bits of slots the chassis has; refused writes are counted and raised", () => {
  const scheduler = new EventScheduler();
  const card = (host: boolean) => {
    const events: [FabricEventKind, number][] = [];
    const resets: number[] = [];
    const fabric = new Fabric({ boardId: BOARD_ID, mac: new Uint8Array(6), tunnels: host ? 2 : 1, switchRouter: host, chassisSlots: host ? 0 : 2 }, scheduler, {
      event: (kind, _tunnel, arg) => events.push([kind, arg]),
      deliver: () => {},
      slotReset: (slots) => (resets.push(slots), true),
    });
    return { fabric, events, resets };
  };
  const chassis = card(false);
  assert.ok(chassis.fabric.writeRegister(CardReg.SlotReset, 0b01));
  assert.ok(chassis.fabric.writeRegister(CardReg.SlotReset, 0b11));
  assert.equal(chassis.fabric.writeRegister(CardReg.SlotReset, 0b100), false, "slot 2 of 2");
  assert.equal(chassis.fabric.writeRegister(CardReg.SlotReset, 0x8000_0001), false);
  assert.deepEqual(chassis.resets, [0b01, 0b11], "refused writes reset nothing");
  assert.equal(chassis.fabric.readRegister(CardReg.SlotReset), 0, "write-only: reads 0");
  assert.equal(chassis.fabric.readRegister(CardReg.RegErrors), 2);
  assert.deepEqual(chassis.events, [[FabricEventKind.RegisterRejected, CardReg.SlotReset], [FabricEventKind.RegisterRejected, CardReg.SlotReset]]);
  const host = card(true);
  assert.equal(host.fabric.writeRegister(CardReg.SlotReset, 0b01), false, "a host card has no chassis slots");
  assert.deepEqual(host.resets, []);
  assert.equal(host.fabric.readRegister(CardReg.RegErrors), 1);
  assert.deepEqual(host.events, [[FabricEventKind.RegisterRejected, CardReg.SlotReset]]);
  // The world's wiring: the fabric's callback is the chassis root's resetSlots.
  const root = new ChassisRoot(scheduler, { submit: () => true }, 2);
  const nvme = new NvmeController(scheduler, 64);
  root.plug(1, nvme);
  const wired = new Fabric({ boardId: BOARD_ID, mac: new Uint8Array(6), tunnels: 1, chassisSlots: 2 }, scheduler, {
    event: () => {}, deliver: () => {}, slotReset: (slots) => root.resetSlots(slots),
  });
  assert.ok(wired.writeRegister(CardReg.SlotReset, 0b01), "an empty slot's bit does nothing");
  assert.equal(nvme.resets, 0);
  assert.ok(wired.writeRegister(CardReg.SlotReset, 0b10));
  assert.equal(nvme.resets, 1);
  assert.equal(root.resetSlots(0b100), false);
});

test("a reset NVMe controller is back to its power-on state, queues and all, and its namespace keeps every block", async () => {
  const scheduler = new EventScheduler();
  const nvme = new NvmeController(scheduler);
  const fresh = new NvmeController(new EventScheduler());
  const remote = remotePcie(scheduler, { slots: [nvme], seed: 6 });
  await scheduler.run(50_000);
  const fn = (await runTask(scheduler, remote.os.enumerate())).find(isNvme)!;
  const disk = await runTask(scheduler, nvmeInit(remote.os, fn, 0x3_0000_0000));
  const data = pattern(5, 64 * 1024);
  await runTask(scheduler, disk.write(200, data, 0x4_0000_0000, 0x4_1000_0000));
  const reg = (r: NvmeReg) => new DataView(registers(nvme, 0, 0x40).buffer).getUint32(r, true);
  assert.equal(reg(NvmeReg.CC) & 1, 1, "enabled before the reset");
  assert.ok(nvme.header.command.test(Command.BusMaster) && nvme.msi.enabled());
  assert.notDeepEqual(nvme.config.bytes(), fresh.config.bytes());

  assert.ok(remote.chassisRoot.resetSlots(0b1));
  assert.equal(nvme.resets, 1);
  assert.deepEqual(nvme.config.bytes(), fresh.config.bytes(), "configuration space as at power-on: BARs, Command, MSI");
  assert.equal(nvme.config.peek(Hdr.Command, 2), 0);
  assert.deepEqual(registers(nvme, 0, 0x40), registers(fresh, 0, 0x40), "CAP and VS as ever, CC, CSTS, AQA, ASQ, ACQ cleared");
  assert.equal(nvme.routingId, 0);
  assert.deepEqual(nvme.media.read(200 * 512, data.length), data, "the stored blocks stay");

  // No queue survives: with Bus Master back on, moving the admin and I/O submission queue tails fetches nothing.
  nvme.header.command.set(Command.BusMaster | Command.Memory);
  const before = remote.chassisRoot.counters.upstreamTlps;
  for (const tail of [1, 2]) for (const queue of [0, 1]) barWrite(nvme, 0, DOORBELL_BASE + 8 * queue, tail);
  await scheduler.run(scheduler.now + 100_000);
  assert.equal(remote.chassisRoot.counters.upstreamTlps, before);
  assert.equal(nvme.counters.blockedRequests, 0);
});

test("a reset graphics adapter shows black, counts no frames and has its BARs unassigned", async () => {
  const scheduler = new EventScheduler();
  const graphics = new GraphicsAdapter(scheduler);
  const fresh = new GraphicsAdapter(new EventScheduler());
  const remote = remotePcie(scheduler, { slots: [null, graphics], seed: 3 });
  await scheduler.run(50_000);
  const fn = (await runTask(scheduler, remote.os.enumerate())).find(isGraphics)!;
  await runTask(scheduler, graphicsDriver(remote.os, fn));
  await scheduler.run(scheduler.now + 1_000_000);
  assert.ok(graphics.framebuffer.some((b) => b !== 0) && graphics.frames === 1);
  assert.ok(remote.chassisRoot.resetSlots(0b10));
  assert.ok(graphics.framebuffer.every((b) => b === 0));
  assert.equal(graphics.frames, 0);
  assert.equal(graphics.resets, 1);
  assert.deepEqual(graphics.config.bytes(), fresh.config.bytes());
  assert.deepEqual(registers(graphics, 2, 0x20), registers(fresh, 2, 0x20));
  assert.equal(new DataView(registers(graphics, 2, 0x20).buffer).getUint32(GfxReg.Width, true), 640);
});

test("a reset input device has no ring, no indices and no pending reports: new input is dropped until a driver sets it up", async () => {
  const scheduler = new EventScheduler();
  const input = new InputDevice(scheduler);
  const fresh = new InputDevice(new EventScheduler());
  const remote = remotePcie(scheduler, { slots: [input], seed: 4 });
  await scheduler.run(50_000);
  const fn = (await runTask(scheduler, remote.os.enumerate())).find(isInput)!;
  const got: number[] = [];
  spawn(inputDriver(remote.os, fn, 0x2_0000_0000, 64, (report) => got.push(report.code)));
  await scheduler.run(scheduler.now + 100_000);
  input.key(65, true);
  input.key(66, true);
  await scheduler.run(scheduler.now + 100_000);
  assert.deepEqual(got, [65, 66]);
  const writes = input.counters.blockedRequests;
  remote.chassisRoot.resetSlots(0b1);
  assert.equal(input.resets, 1);
  assert.deepEqual(input.config.bytes(), fresh.config.bytes());
  assert.deepEqual(registers(input, 0, 0x20), registers(fresh, 0, 0x20), "ring, entries, control, tail and dropped all 0");
  input.key(67, true);
  await scheduler.run(scheduler.now + 100_000);
  assert.deepEqual(got, [65, 66], "nothing reaches the server");
  assert.equal(new DataView(registers(input, 0, 0x20).buffer).getUint32(InputReg.Dropped, true), 1);
  assert.equal(input.counters.blockedRequests, writes, "not even tried: reporting is off");
});

test("a reset drops work in flight: a DMA test device's verify never completes, and a request on the slot's link is lost", async () => {
  const scheduler = new EventScheduler();
  const device = new DmaTestDevice(scheduler);
  const fresh = new DmaTestDevice(new EventScheduler());
  const upstream: Tlp[] = [];
  const root = new ChassisRoot(scheduler, { submit: (tlp) => (upstream.push(decodeTlp(tlp) as Tlp), true) }, 1);
  root.plug(0, device);
  const send = (tlp: Tlp) => root.fromHost(encodeTlp(tlp), 0);
  const configWrite = (register: number, value: number) => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value, true);
    send({ kind: "CfgWr0", ...DEFAULT_COMMON, requester: 0, tag: 1, firstBe: 0xf, bus: 1, device: 0, fn: 0, register, data });
  };
  configWrite(Hdr.Bar0 / 4, 0xe000_0000); // configuration requests address DWs
  configWrite(Hdr.Command / 4, Command.Memory | Command.BusMaster);
  await scheduler.run(10_000);
  for (const [offset, value] of [[DmaReg.Address, 0x1000], [DmaReg.Length, 4096], [DmaReg.Seed, 9], [DmaReg.Control, DmaCommand.Verify]]) {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value, true);
    send({ kind: "MWr", ...DEFAULT_COMMON, requester: 0, tag: 0, firstBe: 0xf, lastBe: 0, address: 0xe000_0000 + offset, data });
  }
  await scheduler.run(20_000);
  const reads = upstream.filter((t) => t.kind === "MRd").length;
  assert.ok(reads > 0, "the verify is reading server memory, which never answers");
  root.resetSlots(0b1);
  assert.deepEqual(registers(device, 0, 0x40), registers(fresh, 0, 0x40), "not busy, no address, length or seed");
  assert.deepEqual(device.config.bytes(), fresh.config.bytes());
  // A configuration read on its way down the slot's link when PERST# asserts is lost with it.
  send({ kind: "CfgRd0", ...DEFAULT_COMMON, requester: 0, tag: 2, firstBe: 0xf, bus: 1, device: 0, fn: 0, register: 0 });
  const completions = () => upstream.filter((t) => t.kind === "CplD").length;
  const answered = completions();
  root.resetSlots(0b1);
  await scheduler.run(scheduler.now + 100_000_000); // past the 50 ms completion timeout
  assert.equal(completions(), answered);
  assert.equal(device.counters.completionTimeouts, 0, "the abandoned reads do not time out later");
  assert.equal(upstream.filter((t) => t.kind === "MRd").length, reads, "and nothing new is read");
  assert.equal(device.resets, 2);
});
