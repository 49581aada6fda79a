// Driver for the DMA test device (board/devices/dma-test.ts): has the device write its
// pattern into a host buffer, checks the buffer, has the device read it back and verify it.
// If the device goes away meanwhile, the register accesses and the wait for its MSI fail
// with DeviceRemoved (the OS refuses both for a function that is gone), and so does the test.

import { DmaReg, DmaCommand, DmaStatus, DMA_TEST_VENDOR, DMA_TEST_DEVICE, pattern } from "../../../board/devices/dma-test.ts";
import { u32le } from "../../../board/bytes.ts";
import { wait, type Task } from "../task.ts";
import type { OperatingSystem, PciDriver, PciFunction } from "../os.ts";

export function isDmaTest(fn: PciFunction): boolean {
  return fn.vendorId === DMA_TEST_VENDOR && fn.deviceId === DMA_TEST_DEVICE;
}

export interface DmaTestResult {
  /** Words of host memory that did not hold the pattern after the device wrote it. */
  hostMismatches: number;
  /** Words the device found wrong when it read the buffer back. */
  deviceErrors: number;
  /** From the driver's command to the device's MSI, as the server sees it. */
  writeNs: number;
  verifyNs: number;
}

export function* dmaTestDriver(os: OperatingSystem, fn: PciFunction, buffer: number, length: number, seed: number): Task<DmaTestResult> {
  const bar = fn.bars.find((b) => b.index === 0);
  if (!bar || fn.msiVector === null) throw new Error(`DMA test device ${fn.bus}:${fn.device}.${fn.fn} has no BAR 0 or no MSI`);
  const base = bar.address;
  const write = (offset: number, value: number) => os.mmioWrite(fn, base + offset, u32le(value));
  const readReg = (offset: number) => os.mmioRead32(fn, base + offset);
  yield* wait(write(DmaReg.Address, buffer % 2 ** 32));
  yield* wait(write(DmaReg.Address + 4, Math.floor(buffer / 2 ** 32)));
  yield* wait(write(DmaReg.Length, length));
  yield* wait(write(DmaReg.Seed, seed));
  let started = os.rc.now;
  yield* wait(write(DmaReg.Control, DmaCommand.Write));
  yield* wait(os.waitInterrupt(fn));
  const writeNs = os.rc.now - started;
  const expected = pattern(seed, length);
  const actual = os.rc.memory.read(buffer, length);
  const view = [new DataView(expected.buffer), new DataView(actual.buffer)];
  let hostMismatches = 0;
  for (let i = 0; i < length; i += 4) if (view[0].getUint32(i, true) !== view[1].getUint32(i, true)) hostMismatches++;
  started = os.rc.now;
  yield* wait(write(DmaReg.Control, DmaCommand.Verify));
  yield* wait(os.waitInterrupt(fn));
  const verifyNs = os.rc.now - started;
  const status = yield* readReg(DmaReg.Status);
  const deviceErrors = status & DmaStatus.Error ? Math.max(yield* readReg(DmaReg.Errors), 1) : 0;
  return { hostMismatches, deviceErrors, writeNs, verifyNs };
}

/**
 * The DMA test driver in the OS's driver model: probe runs one test of `length` bytes through
 * a buffer of its own. Nothing to cancel on removal: the OS fails its waits.
 */
export function dmaTestPciDriver(options: { length: number; seed: number }): PciDriver<DmaTestResult> {
  return {
    name: "dma-test",
    matches: isDmaTest,
    probe: (os, fn) => dmaTestDriver(os, fn, os.dmaAlloc(options.length), options.length, options.seed),
    remove: () => {},
  };
}
