// Driver for the DMA test device (board/devices/dma-test.ts): has the device write its
// pattern into a host buffer, checks the buffer, has the device read it back and verify it.

import { DmaReg, DmaCommand, DmaStatus, DMA_TEST_VENDOR, DMA_TEST_DEVICE, pattern } from "../../../board/devices/dma-test.ts";
import { u32le } from "../../../board/bytes.ts";
import { wait, type Task } from "../task.ts";
import type { OperatingSystem, PciFunction } from "../os.ts";

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
  const reg = (offset: number) => base + offset;
  const readReg = function* (offset: number): Task<number> {
    const data = yield* wait(os.rc.memoryRead(reg(offset), 4));
    return new DataView(data.buffer).getUint32(0, true);
  };
  yield* wait(os.rc.memoryWrite(reg(DmaReg.Address), u32le(buffer % 2 ** 32)));
  yield* wait(os.rc.memoryWrite(reg(DmaReg.Address + 4), u32le(Math.floor(buffer / 2 ** 32))));
  yield* wait(os.rc.memoryWrite(reg(DmaReg.Length), u32le(length)));
  yield* wait(os.rc.memoryWrite(reg(DmaReg.Seed), u32le(seed)));
  let started = os.rc.now;
  yield* wait(os.rc.memoryWrite(reg(DmaReg.Control), u32le(DmaCommand.Write)));
  yield* wait(os.interrupt(fn.msiVector));
  const writeNs = os.rc.now - started;
  const expected = pattern(seed, length);
  const actual = os.rc.memory.read(buffer, length);
  const view = [new DataView(expected.buffer), new DataView(actual.buffer)];
  let hostMismatches = 0;
  for (let i = 0; i < length; i += 4) if (view[0].getUint32(i, true) !== view[1].getUint32(i, true)) hostMismatches++;
  started = os.rc.now;
  yield* wait(os.rc.memoryWrite(reg(DmaReg.Control), u32le(DmaCommand.Verify)));
  yield* wait(os.interrupt(fn.msiVector));
  const verifyNs = os.rc.now - started;
  const status = yield* readReg(DmaReg.Status);
  const deviceErrors = status & DmaStatus.Error ? Math.max(yield* readReg(DmaReg.Errors), 1) : 0;
  return { hostMismatches, deviceErrors, writeNs, verifyNs };
}
