// Bulk beside latency on one tunnel (docs/congestion.md, "Short queues"): a server and a chassis
// over 10 m of cable, the chassis holding an NVMe drive kept busy at queue depth 32 both ways, a
// device whose register a poller reads back to back, and a keyboard typing. What the register
// poller and the keyboard wait while the bulk stream fills the tunnel, and what the bulk stream
// keeps of the link, with the card's short queues and congestion control, or without (the
// uncontrolled baseline: no send queue limit, no congestion control).

import { EventScheduler } from "./scheduler.ts";
import { remotePcie } from "./remote-pcie.ts";
import { spawn, wait, sleep, type Task } from "../server/task.ts";
import { DmaTestDevice, DmaReg } from "../../board/devices/dma-test.ts";
import { InputDevice } from "../../board/devices/input.ts";
import { NvmeController } from "../../board/devices/nvme/controller.ts";
import { nvmeInit, isNvme } from "../server/drivers/nvme.ts";
import { inputDriver, isInput } from "../server/drivers/input.ts";
import { TunnelReg, TunnelDefault } from "../../board/map/registers.ts";

export interface MixedOptions {
  /** The card's short queues and congestion control (the default), or neither. */
  controlled: boolean;
  /** Reads of the register to take, and the pause between them. */
  reads: number;
  pauseNs: number;
  /** NVMe tasks writing and tasks reading, 128 KiB commands, none (idle) for 0 and 0. */
  writers: number;
  readers: number;
  mtu?: number;
}

export interface MixedResult {
  /** Round trips of the 4-byte register reads, and latencies of key press to driver, ns, sorted. */
  readNs: number[];
  keyNs: number[];
  /** NVMe data moved per second while the reads ran, each way (Gb/s). */
  nvmeWriteGbps: number;
  nvmeReadGbps: number;
}

const CHUNK = 128 * 1024;

/** The mixed study's load: reads 10 µs apart beside 16 NVMe writers and 16 readers (docs/congestion.md). */
export const MIXED_LOAD = { pauseNs: 10_000, writers: 16, readers: 16 } as const;

export async function runMixed(options: MixedOptions): Promise<MixedResult> {
  const scheduler = new EventScheduler();
  const input = new InputDevice(scheduler);
  const remote = remotePcie(scheduler, {
    slots: [new NvmeController(scheduler), new DmaTestDevice(scheduler), input],
    lengthM: 10,
    mtu: options.mtu ?? 9000,
    congestionControl: options.controlled,
    registers: { [TunnelReg.QueueBytes]: options.controlled ? TunnelDefault.QueueBytes : 0 },
  });
  await scheduler.run(50_000);
  const { os, rc } = remote;
  const readNs: number[] = [];
  const keyNs: number[] = [];
  const result: MixedResult = { readNs, keyNs, nvmeWriteGbps: 0, nvmeReadGbps: 0 };
  let written = 0;
  let read = 0;
  let finished = false;
  let failure: Error | null = null;
  let measuring = false;
  const done = (result: unknown) => {
    if (result instanceof Error) failure = result;
  };
  spawn((function* (): Task<void> {
    const found = yield* os.enumerate();
    const disk = yield* nvmeInit(os, found.find(isNvme)!, 0x3_0000_0000);
    spawn(inputDriver(os, found.find(isInput)!, 0x2_0000_0000, 64, (_, latency) => measuring && keyNs.push(latency), () => finished), done);
    const data = new Uint8Array(CHUNK).fill(0x5a);
    for (let q = 0; q < options.writers + options.readers; q++) {
      const buffer = 0x10_0000_0000 + q * 0x100_0000;
      const writer = q < options.writers;
      spawn((function* (): Task<void> {
        for (let i = 0; !finished; i++) {
          const lba = ((q * 8 + (i % 8)) * CHUNK) / 512;
          if (writer) yield* disk.write(lba, data, buffer, buffer + 0x80_0000);
          else yield* disk.read(lba, CHUNK / 512, buffer, buffer + 0x80_0000);
          if (measuring) {
            if (writer) written += CHUNK;
            else read += CHUNK;
          }
        }
      })(), done);
    }
    // Let the bulk stream fill the path, then poll the register and type.
    yield* wait(sleep(scheduler, 2_000_000));
    const bar = found.find((f) => f.bars.length > 0 && !isNvme(f) && !isInput(f))!.bars[0].address;
    measuring = true;
    const started = rc.now;
    let key = 0;
    const type = () => {
      if (finished) return;
      input.key(0x61 + (key++ % 26), true);
      scheduler.at(scheduler.now + 100_000, type);
    };
    type();
    for (let i = 0; i < options.reads; i++) {
      const start = rc.now;
      yield* wait(rc.memoryRead(bar + DmaReg.Id, 4));
      readNs.push(rc.now - start);
      if (options.pauseNs > 0) yield* wait(sleep(scheduler, options.pauseNs));
    }
    measuring = false;
    finished = true;
    const seconds = (rc.now - started) / 1e9;
    result.nvmeWriteGbps = (written * 8) / seconds / 1e9;
    result.nvmeReadGbps = (read * 8) / seconds / 1e9;
  })(), done);
  while (!finished && failure === null) await scheduler.run(scheduler.now + 1_000_000);
  if (failure) throw failure;
  readNs.sort((x, y) => x - y);
  keyNs.sort((x, y) => x - y);
  return result;
}
