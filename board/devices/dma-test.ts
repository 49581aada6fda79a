// A DMA test device for the chassis: it writes a seeded pattern into host memory, or reads
// host memory back and checks it against the pattern, then raises MSI vector 0. Benchmarks
// and end-to-end tests use it to move verified data through the tunnel.
//
// BAR 0 (4 KiB, 32-bit memory), little-endian registers:
//   0x00 ID       ro  0x444d4131 ("DMA1")
//   0x08 ADDRESS  rw  64-bit host address (DW aligned)
//   0x10 LENGTH   rw  bytes, a multiple of 4, 4..16 MiB
//   0x14 SEED     rw  pattern seed
//   0x18 CONTROL  wo  1: write the pattern to host memory; 2: read host memory and verify it
//   0x1c STATUS   ro  bit 0 busy, bit 1 done, bit 2 error (DMA failed or data mismatched)
//   0x20 ERRORS   ro  DWs that did not match in the last verify
//   0x24 DONE_NS  ro  virtual time the last operation took, ns (saturates at 2^32 - 1)

import { Endpoint, DmaError } from "../pcie/endpoint.ts";
import { readRegisters, storeEnabled } from "./mmio.ts";
import type { Scheduler } from "../scheduler.ts";

export const DMA_TEST_ID = 0x444d4131;
export const DMA_TEST_VENDOR = 0x1fff;
export const DMA_TEST_DEVICE = 0x0d0a;

export enum DmaReg {
  Id = 0x00,
  Address = 0x08,
  Length = 0x10,
  Seed = 0x14,
  Control = 0x18,
  Status = 0x1c,
  Errors = 0x20,
  DoneNs = 0x24,
}

export enum DmaCommand {
  Write = 1,
  Verify = 2,
}

export enum DmaStatus {
  Busy = 1,
  Done = 2,
  Error = 4,
}

const MAX_LENGTH = 16 << 20;

/** The pattern: one 32-bit word per DW, an xorshift sequence from the seed and the word index. */
export function patternWord(seed: number, index: number): number {
  let x = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0 || 1;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

export function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < length / 4; i++) view.setUint32(4 * i, patternWord(seed, i), true);
  return out;
}

export class DmaTestDevice extends Endpoint {
  private readonly regs = new DataView(new ArrayBuffer(0x40));
  private startedAt = 0;

  constructor(scheduler: Scheduler) {
    super(scheduler, {
      vendorId: DMA_TEST_VENDOR, deviceId: DMA_TEST_DEVICE, classCode: 0xff0000, // unassigned class: a test device
      bars: [{ kind: "memory32", size: 4096 }], msiVectors: 1, interruptPin: 1,
    });
    this.resetRegisters();
  }

  /**
   * A fundamental reset: every register back to 0 but ID (no address, length or seed, not
   * busy), and an operation in progress abandoned: a verify waiting for its data never
   * finishes and raises no MSI.
   */
  override reset(): void {
    super.reset();
    this.startedAt = 0;
    this.resetRegisters();
  }

  private resetRegisters(): void {
    new Uint8Array(this.regs.buffer).fill(0);
    this.regs.setUint32(DmaReg.Id, DMA_TEST_ID, true);
  }

  protected mmioRead(bar: number, offset: number, length: number): Uint8Array | null {
    return bar === 0 ? readRegisters(this.regs, offset, length) : null;
  }

  protected mmioWrite(bar: number, offset: number, data: Uint8Array, firstBe: number, lastBe: number): void {
    if (bar !== 0) return;
    storeEnabled(this.regs, offset, data, firstBe, lastBe, DmaReg.Address, DmaReg.Seed + 4);
    if (offset <= DmaReg.Control && offset + data.length > DmaReg.Control) {
      this.command(new DataView(data.buffer, data.byteOffset).getUint32(DmaReg.Control - offset, true));
    }
  }

  private status(bits: number): void {
    this.regs.setUint32(DmaReg.Status, bits, true);
  }

  private command(command: number): void {
    if (this.regs.getUint32(DmaReg.Status, true) & DmaStatus.Busy) return;
    const address = this.regs.getUint32(DmaReg.Address + 4, true) * 2 ** 32 + this.regs.getUint32(DmaReg.Address, true);
    const length = this.regs.getUint32(DmaReg.Length, true);
    const seed = this.regs.getUint32(DmaReg.Seed, true);
    if ((command !== DmaCommand.Write && command !== DmaCommand.Verify) || length === 0 || length % 4 || length > MAX_LENGTH || address % 4) {
      this.status(DmaStatus.Done | DmaStatus.Error);
      return;
    }
    this.startedAt = this.scheduler.now;
    this.status(DmaStatus.Busy);
    if (command === DmaCommand.Write) {
      const ok = this.dmaWrite(address, pattern(seed, length));
      this.finish(ok ? 0 : -1);
      return;
    }
    this.dmaRead(address, length, (data) => {
      if (data instanceof DmaError) {
        this.finish(-1);
        return;
      }
      const view = new DataView(data.buffer);
      let errors = 0;
      for (let i = 0; i < length / 4; i++) if (view.getUint32(4 * i, true) !== patternWord(seed, i)) errors++;
      this.finish(errors);
    });
  }

  /** `errors` < 0: the DMA itself failed. */
  private finish(errors: number): void {
    this.regs.setUint32(DmaReg.Errors, Math.max(errors, 0), true);
    this.regs.setUint32(DmaReg.DoneNs, Math.min(this.scheduler.now - this.startedAt, 0xffffffff), true);
    this.status(DmaStatus.Done | (errors !== 0 ? DmaStatus.Error : 0));
    this.signalMsi(0);
  }
}
