// A keyboard/mouse device for the chassis: each input event becomes a 16-byte report that
// the device DMA-writes into a ring in server memory, followed by its new producer index,
// then an MSI. The server's driver consumes reports and tells the device how far it got.
//
// BAR 0 (4 KiB, 32-bit memory), little-endian registers:
//   0x00 ID        ro  0x314d424b ("KBM1")
//   0x08 RING      rw  64-bit server address of the ring (16-byte aligned)
//   0x10 ENTRIES   rw  ring size in reports, a power of two, 2..4096
//   0x14 CONTROL   rw  bit 0: enable (reset the indices and start reporting)
//   0x18 TAIL      rw  the driver's consumer index (reports it has taken)
//   0x1c DROPPED   ro  events lost because the ring was full or reporting was off
// The producer index (u32) is written at RING + 16 × ENTRIES after each report.
//
// Report (16 bytes): u8 kind (1 key, 2 mouse), u8 state (key: 1 pressed, 0 released; mouse:
// button bits), u16 code (key: the character code), i16 dx, i16 dy, u64 virtual time (ns) of
// the event at the device.

import { Endpoint } from "../pcie/endpoint.ts";
import { readRegisters, storeEnabled } from "./mmio.ts";
import type { Scheduler } from "../scheduler.ts";

export const INPUT_VENDOR = 0x1fff;
export const INPUT_DEVICE = 0x0200;
export const INPUT_ID = 0x314d424b;
export const REPORT_BYTES = 16;

export enum InputReg {
  Id = 0x00,
  Ring = 0x08,
  Entries = 0x10,
  Control = 0x14,
  Tail = 0x18,
  Dropped = 0x1c,
}

export enum ReportKind {
  Key = 1,
  Mouse = 2,
}

export interface InputReport {
  kind: ReportKind;
  state: number;
  code: number;
  dx: number;
  dy: number;
  timeNs: number;
}

export function encodeReport(report: InputReport): Uint8Array {
  const out = new Uint8Array(REPORT_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, report.kind);
  view.setUint8(1, report.state);
  view.setUint16(2, report.code, true);
  view.setInt16(4, report.dx, true);
  view.setInt16(6, report.dy, true);
  view.setUint32(8, report.timeNs % 2 ** 32, true);
  view.setUint32(12, Math.floor(report.timeNs / 2 ** 32), true);
  return out;
}

export function decodeReport(bytes: Uint8Array): InputReport {
  const view = new DataView(bytes.buffer, bytes.byteOffset, REPORT_BYTES);
  return {
    kind: view.getUint8(0), state: view.getUint8(1), code: view.getUint16(2, true), dx: view.getInt16(4, true), dy: view.getInt16(6, true),
    timeNs: view.getUint32(12, true) * 2 ** 32 + view.getUint32(8, true),
  };
}

export class InputDevice extends Endpoint {
  private readonly regs = new DataView(new ArrayBuffer(0x20));
  private head = 0;
  /** Called whenever a driver turns reporting on (a ring set up and Control bit 0 written). */
  onReporting: (() => void) | null = null;

  constructor(scheduler: Scheduler) {
    super(scheduler, {
      vendorId: INPUT_VENDOR, deviceId: INPUT_DEVICE, classCode: 0x090000, // input device: keyboard
      bars: [{ kind: "memory32", size: 4096 }], msiVectors: 1,
    });
    this.resetRegisters();
  }

  /**
   * A fundamental reset: reporting off, no ring, the producer and consumer indices and the
   * dropped count back to 0. Reports not yet written are lost; new input is dropped until a
   * driver sets the ring up again.
   */
  override reset(): void {
    super.reset();
    this.head = 0;
    this.resetRegisters();
  }

  private resetRegisters(): void {
    new Uint8Array(this.regs.buffer).fill(0);
    this.regs.setUint32(InputReg.Id, INPUT_ID, true);
  }

  private reg(offset: number): number {
    return this.regs.getUint32(offset, true);
  }

  protected mmioRead(bar: number, offset: number, length: number): Uint8Array | null {
    return bar === 0 ? readRegisters(this.regs, offset, length) : null;
  }

  protected mmioWrite(bar: number, offset: number, data: Uint8Array, firstBe: number, lastBe: number): void {
    if (bar !== 0) return;
    storeEnabled(this.regs, offset, data, firstBe, lastBe, InputReg.Ring, InputReg.Dropped);
    if (offset <= InputReg.Control && offset + data.length > InputReg.Control && this.reg(InputReg.Control) & 1) {
      this.head = 0;
      this.regs.setUint32(InputReg.Tail, 0, true);
      if (this.enabled()) this.onReporting?.();
    }
  }

  /** A driver has reporting on: input now goes into its ring instead of being dropped. */
  get reporting(): boolean {
    return this.enabled();
  }

  private enabled(): boolean {
    const entries = this.reg(InputReg.Entries);
    return (this.reg(InputReg.Control) & 1) === 1 && entries >= 2 && entries <= 4096 && (entries & (entries - 1)) === 0;
  }

  /** A key goes down (or up) now. */
  key(code: number, pressed: boolean): void {
    this.report({ kind: ReportKind.Key, state: pressed ? 1 : 0, code, dx: 0, dy: 0, timeNs: this.scheduler.now });
  }

  /** The mouse moves by (dx, dy) with `buttons` held, now. */
  mouse(dx: number, dy: number, buttons = 0): void {
    this.report({ kind: ReportKind.Mouse, state: buttons, code: 0, dx, dy, timeNs: this.scheduler.now });
  }

  private report(report: InputReport): void {
    const entries = this.reg(InputReg.Entries);
    const tail = this.reg(InputReg.Tail);
    if (!this.enabled() || ((this.head - tail) >>> 0) >= entries) {
      this.regs.setUint32(InputReg.Dropped, this.reg(InputReg.Dropped) + 1, true);
      return;
    }
    const ring = this.reg(InputReg.Ring + 4) * 2 ** 32 + this.reg(InputReg.Ring);
    const index = new Uint8Array(4);
    if (!this.dmaWrite(ring + REPORT_BYTES * (this.head % entries), encodeReport(report))) return;
    this.head = (this.head + 1) >>> 0;
    new DataView(index.buffer).setUint32(0, this.head, true);
    this.dmaWrite(ring + REPORT_BYTES * entries, index);
    this.signalMsi(0);
  }
}
