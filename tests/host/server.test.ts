// The server model: root complex and OS enumerate the remote hierarchy through the host
// switch, the tunnel and the chassis root, and a driver runs verified DMA on the device.

import { test } from "node:test";
import assert from "node:assert/strict";
import { runTask } from "./support/run-task.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { remotePcie } from "../../tools/sim/remote-pcie.ts";
import { DmaTestDevice } from "../../board/devices/dma-test.ts";
import type { PciFunction } from "../../tools/server/os.ts";
import { spawn, type Task } from "../../tools/server/task.ts";
import { dmaTestDriver, isDmaTest, type DmaTestResult } from "../../tools/server/drivers/dma-test.ts";
import { TunnelReg, TUNNEL_BASE } from "../../board/map/registers.ts";
import { GraphicsAdapter } from "../../board/devices/graphics.ts";
import { graphicsDriver, isGraphics, testPicture } from "../../tools/server/drivers/graphics.ts";
import { PNG } from "pngjs";
import { InputDevice, InputReg, ReportKind, type InputReport } from "../../board/devices/input.ts";
import { inputDriver, isInput } from "../../tools/server/drivers/input.ts";
import { wait } from "../../tools/server/task.ts";
import { NvmeController } from "../../board/devices/nvme/controller.ts";
import { nvmeInit, isNvme } from "../../tools/server/drivers/nvme.ts";
import { readCommand, type Cqe } from "../../board/devices/nvme/spec.ts";
import { pattern } from "../../board/devices/dma-test.ts";

function server(loss = 0, withGraphics = false) {
  const scheduler = new EventScheduler();
  const device = new DmaTestDevice(scheduler);
  const graphics = new GraphicsAdapter(scheduler);
  const remote = remotePcie(scheduler, { slots: [device, withGraphics ? graphics : null], impair: { loss }, seed: 3 });
  return { scheduler, device, graphics, ...remote, a: remote.host, b: remote.chassis };
}


const name = (f: PciFunction) => `${f.bus}:${f.device}.${f.fn}`;

test("the OS enumerates the remote hierarchy: buses depth first, BARs assigned, windows around them", async () => {
  const { scheduler, os, device, log } = server();
  await scheduler.run(50_000);
  const found = await runTask(scheduler, os.enumerate());
  assert.deepEqual(found.map((f) => [name(f), f.bridge ? `${f.bridge.secondary}-${f.bridge.subordinate}` : "endpoint"]), [
    ["0:1.0", "1-4"], ["1:0.0", "2-4"], ["2:0.0", "3-3"], ["3:0.0", "endpoint"], ["2:1.0", "4-4"],
  ]);
  const dma = found.find(isDmaTest)!;
  assert.deepEqual(dma.bars.map((b) => [b.index, b.address, b.size]), [[0, 0xe000_0000, 4096]]);
  assert.equal(Number(device.header.bars[0]!.address()), 0xe000_0000, "the device holds the address the OS gave it");
  assert.ok(device.msi.enabled());
  assert.equal(device.routingId, 0x0300);
  assert.ok(log.some((l) => /^device 3:0.0 \[0x1fff:0xd0a\] class 0xff0000, BAR0 0xe0000000 \(4 KiB\), MSI 0x30$/.test(l)), log.join("\n"));
  // A hot-plug port's windows hold at least the hot-plug reservation (2 MiB each), so a device
  // inserted later fits; a plain bridge's only what was assigned below it, in 1 MiB steps.
  const port = found.find((f) => name(f) === "2:0.0")!;
  const windows = port.bridge!.hotplug ? "memory 0xe0000000-0xe01fffff, prefetchable 0x4000000000-0x40001fffff, hot-plug slot" : "memory 0xe0000000-0xe00fffff";
  assert.ok(log.includes(`bridge 2:0.0 [0x1fff:0x2] buses 3-3, ${windows}`), log.join("\n"));
});

for (const loss of [0, 0.01]) {
  test(`a driver runs verified DMA on the remote device through the tunnel (${loss * 100} % frame loss)`, async () => {
    const { scheduler, os, rc } = server(loss);
    await scheduler.run(50_000);
    const found = await runTask(scheduler, os.enumerate());
    const result: DmaTestResult = await runTask(scheduler, dmaTestDriver(os, found.find(isDmaTest)!, 0x1_0000_0000, 256 * 1024, 77));
    assert.deepEqual(result, { hostMismatches: 0, deviceErrors: 0, writeNs: result.writeNs, verifyNs: result.verifyNs });
    assert.equal(result.hostMismatches, 0);
    assert.equal(result.deviceErrors, 0);
    assert.ok(result.writeNs >= 0 && result.verifyNs > 0);
    assert.equal(rc.counters.completionTimeouts, 0);
    assert.equal(os.interrupts.get(0x30), 2);
  });
}

test("when the chassis stops answering, requests fail by completion timeout and are counted, and enumeration treats the slot as empty", async () => {
  const { scheduler, os, rc, b } = server();
  await scheduler.run(50_000);
  b.fabric.writeRegister(TUNNEL_BASE + TunnelReg.Control, 0); // the chassis card goes silent
  const started = scheduler.now;
  const found = await runTask(scheduler, os.enumerate());
  assert.deepEqual(found.map(name), ["0:1.0", "1:0.0", "2:0.0", "2:1.0"], "no device behind either downstream port");
  assert.equal(rc.counters.completionTimeouts, 2, "one probe per downstream port timed out");
  assert.ok(scheduler.now - started >= 2 * 50_000_000, "each after the 50 ms completion timeout");
});

test("the driver draws the test picture on the remote screen, and the screenshot shows exactly it", async () => {
  const { scheduler, os, graphics, log } = server(0, true);
  await scheduler.run(50_000);
  const found = await runTask(scheduler, os.enumerate());
  const gfx = found.find(isGraphics)!;
  assert.equal(`${gfx.bus}:${gfx.device}.${gfx.fn}`, "4:0.0");
  // Behind the first downstream port's windows: its hot-plug reservation when it is a hot-plug port.
  const hotplug = found.find((f) => name(f) === "2:0.0")!.bridge!.hotplug;
  const [memory, prefetchable] = hotplug ? [0xe020_0000, 0x40_0020_0000] : [0xe010_0000, 0x40_0000_0000];
  assert.deepEqual(gfx.bars.map((b) => [b.index, b.kind, b.prefetchable, b.address, b.size]), [
    [0, "memory64", true, prefetchable, 2 << 20], [2, "memory32", false, memory, 4096],
  ]);
  const hex = (n: number) => n.toString(16);
  const windows = `memory 0x${hex(memory)}-0x${hex(memory + (hotplug ? 2 << 20 : 1 << 20) - 1)}, prefetchable 0x${hex(prefetchable)}-0x${hex(prefetchable + (2 << 20) - 1)}${hotplug ? ", hot-plug slot" : ""}`;
  assert.ok(log.includes(`bridge 2:1.0 [0x1fff:0x2] buses 4-4, ${windows}`), log.join("\n"));
  const drawn = await runTask(scheduler, graphicsDriver(os, gfx));
  assert.deepEqual(drawn, { width: 640, height: 480, bytes: 640 * 480 * 4, frames: 1 });
  await scheduler.run(scheduler.now + 1_000_000);
  assert.deepEqual(graphics.framebuffer.subarray(0, drawn.bytes), testPicture(640, 480));
  assert.equal(graphics.frames, 1);
  const png = PNG.sync.read(graphics.screenshot());
  assert.deepEqual([png.width, png.height], [640, 480]);
  assert.deepEqual(new Uint8Array(png.data), graphics.rgba());
  assert.deepEqual([...png.data.subarray(4 * (100 * 640 + 40), 4 * (100 * 640 + 40) + 4)], [255, 255, 255, 255], "the first bar is white");
  assert.deepEqual([...png.data.subarray(4 * (100 * 640 + 120), 4 * (100 * 640 + 120) + 4)], [255, 255, 0, 255], "the second yellow");
});

test("keys and mouse moves at the chassis reach the server's driver in order, each within microseconds", async () => {
  const scheduler = new EventScheduler();
  const input = new InputDevice(scheduler);
  const remote = remotePcie(scheduler, { slots: [input], seed: 4 });
  await scheduler.run(50_000);
  const found = await runTask(scheduler, remote.os.enumerate());
  const fn = found.find(isInput)!;
  const got: [InputReport, number][] = [];
  spawn(inputDriver(remote.os, fn, 0x2_0000_0000, 64, (report, latency) => got.push([report, latency])));
  await scheduler.run(scheduler.now + 100_000);
  const text = "hello, server";
  const start = scheduler.now;
  [...text].forEach((ch, i) => {
    scheduler.at(start + i * 1_000_000, () => input.key(ch.charCodeAt(0), true));
    scheduler.at(start + i * 1_000_000 + 300_000, () => input.mouse(i, 1 - i, 1));
  });
  await scheduler.run(start + text.length * 1_000_000 + 1_000_000);
  const keys = got.filter(([r]) => r.kind === ReportKind.Key).map(([r]) => String.fromCharCode(r.code)).join("");
  assert.equal(keys, text);
  assert.deepEqual(got.filter(([r]) => r.kind === ReportKind.Mouse).map(([r]) => [r.dx, r.dy, r.state]), [...text].map((_, i) => [i, 1 - i, 1]));
  const latencies = got.map(([, l]) => l);
  assert.ok(latencies.every((l) => l > 500 && l < 20_000), `latencies ${Math.min(...latencies)}..${Math.max(...latencies)} ns`);
  assert.equal(input.counters.blockedRequests, 0);
});

test("an input device with a full ring counts what it drops instead of overwriting", async () => {
  const scheduler = new EventScheduler();
  const input = new InputDevice(scheduler);
  const remote = remotePcie(scheduler, { slots: [input], seed: 4 });
  await scheduler.run(50_000);
  const found = await runTask(scheduler, remote.os.enumerate());
  const fn = found.find(isInput)!;
  const bar = fn.bars[0].address;
  const write = (offset: number, value: number) => spawn((function* () { yield* wait(remote.rc.memoryWrite(bar + offset, Uint8Array.of(value & 0xff, (value >> 8) & 0xff, 0, 0))); })());
  remote.rc.memory.write(0x3000_0000, new Uint8Array(64));
  write(InputReg.Ring, 0);
  write(InputReg.Entries, 2);
  write(InputReg.Control, 1);
  await scheduler.run(scheduler.now + 100_000);
  for (let i = 0; i < 5; i++) input.key(65 + i, true); // nobody consumes: two fit
  await scheduler.run(scheduler.now + 100_000);
  const [dropped] = await runTask(scheduler, (function* () { return [new DataView((yield* wait(remote.rc.memoryRead(bar + InputReg.Dropped, 4))).buffer).getUint32(0, true)]; })());
  assert.equal(dropped, 3);
});

test("the NVMe driver brings the remote controller up, writes and reads back 1 MiB in 128 KiB commands", async () => {
  const scheduler = new EventScheduler();
  const nvme = new NvmeController(scheduler);
  const remote = remotePcie(scheduler, { slots: [nvme], seed: 6 });
  await scheduler.run(50_000);
  const found = await runTask(scheduler, remote.os.enumerate());
  const fn = found.find(isNvme)!;
  assert.deepEqual(fn.bars.map((b) => [b.kind, b.size]), [["memory64", 16384]]);
  const disk = await runTask(scheduler, nvmeInit(remote.os, fn, 0x3_0000_0000));
  assert.equal(disk.blocks, 131_072);
  assert.equal(disk.identity!.sn, "IOV0000000001");
  assert.equal(disk.identity!.mn, "IOV remote NVMe");
  const data = pattern(11, 1 << 20);
  const chunk = 128 * 1024;
  await runTask(scheduler, (function* (): Task<void> {
    for (let i = 0; i < 8; i++) yield* disk.write(100 + i * 256, data.subarray(i * chunk, (i + 1) * chunk), 0x4_0000_0000, 0x4_1000_0000);
  })());
  assert.deepEqual(nvme.media.read(100 * 512, 1 << 20), data, "the media holds what was written");
  const back = await runTask(scheduler, (function* (): Task<Uint8Array> {
    const out = new Uint8Array(1 << 20);
    for (let i = 0; i < 8; i++) out.set(yield* disk.read(100 + i * 256, 256, 0x5_0000_0000, 0x5_1000_0000), i * chunk);
    return out;
  })());
  assert.deepEqual(back, data, "and reads back the same");
  assert.equal(remote.rc.counters.completionTimeouts, 0);
});

test("NVMe errors come back as statuses: a read past the end, a namespace that does not exist", async () => {
  const scheduler = new EventScheduler();
  const nvme = new NvmeController(scheduler, 1024);
  const remote = remotePcie(scheduler, { slots: [nvme], seed: 6 });
  await scheduler.run(50_000);
  const fn = (await runTask(scheduler, remote.os.enumerate())).find(isNvme)!;
  const disk = await runTask(scheduler, nvmeInit(remote.os, fn, 0x3_0000_0000));
  await assert.rejects(runTask(scheduler, disk.read(1020, 8, 0x4_0000_0000, 0x4_1000_0000)), /status 0\/128/);
  const cqe = await runTask(scheduler, (function* (): Task<Cqe> {
    return yield* wait(disk.submit(1, readCommand({ cid: 0, nsid: 9, slba: 0, nlb: 0, prp1: 0x4_0000_0000 })));
  })());
  assert.deepEqual([cqe.status.sct, cqe.status.sc], [0, 0x0b]);
  assert.equal(nvme.counters2.errors, 2);
});
