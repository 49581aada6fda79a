// Driver for the keyboard/mouse device: sets up the report ring in server memory, and on
// each MSI takes every new report, hands it on with its latency (from the event at the
// device to the driver seeing it), and returns the consumer index to the device. When the
// device is removed, the wait for its next MSI fails with DeviceRemoved and the loop ends.

import { InputReg, INPUT_VENDOR, INPUT_DEVICE, REPORT_BYTES, decodeReport, type InputReport } from "../../../board/devices/input.ts";
import { u32le } from "../../../board/bytes.ts";
import { spawn, wait, type Task } from "../task.ts";
import type { OperatingSystem, PciDriver, PciFunction } from "../os.ts";

export function isInput(fn: PciFunction): boolean {
  return fn.vendorId === INPUT_VENDOR && fn.deviceId === INPUT_DEVICE;
}

/** Points the device at a ring of `entries` reports at `ring` and starts it; returns the BAR 0 address. */
function* startRing(os: OperatingSystem, fn: PciFunction, ring: number, entries: number): Task<number> {
  const bar = fn.bars.find((b) => b.index === 0);
  if (!bar || fn.msiVector === null) throw new Error(`input device ${fn.bus}:${fn.device}.${fn.fn} has no BAR 0 or no MSI`);
  const write = (offset: number, value: number) => os.mmioWrite(fn, bar.address + offset, u32le(value));
  os.rc.memory.write(ring, new Uint8Array(REPORT_BYTES * entries + 4));
  yield* wait(write(InputReg.Ring, ring % 2 ** 32));
  yield* wait(write(InputReg.Ring + 4, Math.floor(ring / 2 ** 32)));
  yield* wait(write(InputReg.Entries, entries));
  yield* wait(write(InputReg.Control, 1));
  return bar.address;
}

/** Takes the reports at each MSI until `stop()` says so after one; returns how many it took. */
function* takeReports(
  os: OperatingSystem, fn: PciFunction, base: number, ring: number, entries: number,
  onReport: (report: InputReport, latencyNs: number) => void, stop: () => boolean,
): Task<number> {
  let tail = 0;
  let taken = 0;
  while (!stop()) {
    yield* wait(os.waitInterrupt(fn));
    const head = os.rc.memory.readU32(ring + REPORT_BYTES * entries);
    while (tail !== head) {
      const report = decodeReport(os.rc.memory.read(ring + REPORT_BYTES * (tail % entries), REPORT_BYTES));
      onReport(report, os.rc.now - report.timeNs);
      tail = (tail + 1) >>> 0;
      taken++;
    }
    yield* wait(os.mmioWrite(fn, base + InputReg.Tail, u32le(tail)));
  }
  return taken;
}

/** Runs until `stop()` says so after an interrupt; `onReport` gets each report and its latency in ns. */
export function* inputDriver(
  os: OperatingSystem, fn: PciFunction, ring: number, entries: number, onReport: (report: InputReport, latencyNs: number) => void,
  stop: () => boolean = () => false,
): Task<number> {
  const base = yield* startRing(os, fn, ring, entries);
  return yield* takeReports(os, fn, base, ring, entries, onReport, stop);
}

/**
 * The keyboard/mouse driver in the OS's driver model: probe sets the ring up (in memory of
 * its own) and returns it; the reports then flow to `onReport` from a task of their own,
 * which ends when the device is removed.
 */
export function inputPciDriver(options: { entries: number; onReport: (fn: PciFunction, report: InputReport, latencyNs: number) => void }): PciDriver<{ ring: number }> {
  return {
    name: "input",
    matches: isInput,
    probe: function* (os, fn) {
      const ring = os.dmaAlloc(REPORT_BYTES * options.entries + 4);
      const base = yield* startRing(os, fn, ring, options.entries);
      spawn(takeReports(os, fn, base, ring, options.entries, (report, latency) => options.onReport(fn, report, latency), () => false));
      return { ring };
    },
    remove: () => {},
  };
}
