// Driver for the keyboard/mouse device: sets up the report ring in server memory, and on
// each MSI takes every new report, hands it on with its latency (from the event at the
// device to the driver seeing it), and returns the consumer index to the device.

import { InputReg, INPUT_VENDOR, INPUT_DEVICE, REPORT_BYTES, decodeReport, type InputReport } from "../../../board/devices/input.ts";
import { u32le } from "../../../board/bytes.ts";
import { wait, type Task } from "../task.ts";
import type { OperatingSystem, PciFunction } from "../os.ts";

export function isInput(fn: PciFunction): boolean {
  return fn.vendorId === INPUT_VENDOR && fn.deviceId === INPUT_DEVICE;
}

/** Runs until `stop()` says so after an interrupt; `onReport` gets each report and its latency in ns. */
export function* inputDriver(
  os: OperatingSystem, fn: PciFunction, ring: number, entries: number, onReport: (report: InputReport, latencyNs: number) => void,
  stop: () => boolean = () => false,
): Task<number> {
  const bar = fn.bars.find((b) => b.index === 0);
  if (!bar || fn.msiVector === null) throw new Error(`input device ${fn.bus}:${fn.device}.${fn.fn} has no BAR 0 or no MSI`);
  const reg = (offset: number) => bar.address + offset;
  os.rc.memory.write(ring, new Uint8Array(REPORT_BYTES * entries + 4));
  yield* wait(os.rc.memoryWrite(reg(InputReg.Ring), u32le(ring % 2 ** 32)));
  yield* wait(os.rc.memoryWrite(reg(InputReg.Ring + 4), u32le(Math.floor(ring / 2 ** 32))));
  yield* wait(os.rc.memoryWrite(reg(InputReg.Entries), u32le(entries)));
  yield* wait(os.rc.memoryWrite(reg(InputReg.Control), u32le(1)));
  let tail = 0;
  let taken = 0;
  while (!stop()) {
    yield* wait(os.interrupt(fn.msiVector));
    const head = os.rc.memory.readU32(ring + REPORT_BYTES * entries);
    while (tail !== head) {
      const report = decodeReport(os.rc.memory.read(ring + REPORT_BYTES * (tail % entries), REPORT_BYTES));
      onReport(report, os.rc.now - report.timeNs);
      tail = (tail + 1) >>> 0;
      taken++;
    }
    yield* wait(os.rc.memoryWrite(reg(InputReg.Tail), u32le(tail)));
  }
  return taken;
}
