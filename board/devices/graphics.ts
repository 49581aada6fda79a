// A graphics adapter for the chassis: a linear framebuffer in a 64-bit prefetchable BAR and a
// small register BAR. The server's driver draws by writing the framebuffer through the tunnel;
// screenshot() returns the remote screen as a PNG.
//
// BAR 0: framebuffer, 2 MiB, 64-bit prefetchable; pixel (x, y) at y * STRIDE + 4 * x,
//        XRGB8888 stored little-endian (bytes blue, green, red, unused).
// BAR 2: registers, 4 KiB, 32-bit:
//   0x00 ID      ro  0x31584647 ("GFX1")
//   0x04 WIDTH   ro  pixels
//   0x08 HEIGHT  ro  pixels
//   0x0c STRIDE  ro  bytes per line
//   0x10 FORMAT  ro  0: XRGB8888
//   0x14 FRAMES  rw  frames presented: the driver writes it after drawing one (the count
//                    moves on by one per write, whatever the value)

import { PNG } from "pngjs";
import { Endpoint } from "../pcie/endpoint.ts";
import { readRegisters, storeEnabled } from "./mmio.ts";
import type { Scheduler } from "../scheduler.ts";

export const GRAPHICS_VENDOR = 0x1fff;
export const GRAPHICS_DEVICE = 0x0100;
export const GRAPHICS_ID = 0x31584647;
export const FRAMEBUFFER_BYTES = 2 << 20;

export enum GfxReg {
  Id = 0x00,
  Width = 0x04,
  Height = 0x08,
  Stride = 0x0c,
  Format = 0x10,
  Frames = 0x14,
}

export class GraphicsAdapter extends Endpoint {
  readonly framebuffer = new Uint8Array(FRAMEBUFFER_BYTES);
  private readonly regs = new DataView(new ArrayBuffer(0x20));
  frames = 0;

  constructor(scheduler: Scheduler, readonly width = 640, readonly height = 480) {
    super(scheduler, {
      vendorId: GRAPHICS_VENDOR, deviceId: GRAPHICS_DEVICE, classCode: 0x038000, // display controller
      bars: [{ kind: "memory64", size: FRAMEBUFFER_BYTES, prefetchable: true }, undefined, { kind: "memory32", size: 4096 }],
      msiVectors: 1,
    });
    if (width * height * 4 > FRAMEBUFFER_BYTES) throw new RangeError(`${width}x${height} does not fit the framebuffer`);
    this.resetRegisters();
  }

  /** A fundamental reset: the framebuffer is cleared to black and the frame count to 0. */
  override reset(): void {
    super.reset();
    this.framebuffer.fill(0);
    this.frames = 0;
    this.resetRegisters();
  }

  private resetRegisters(): void {
    new Uint8Array(this.regs.buffer).fill(0);
    this.regs.setUint32(GfxReg.Id, GRAPHICS_ID, true);
    this.regs.setUint32(GfxReg.Width, this.width, true);
    this.regs.setUint32(GfxReg.Height, this.height, true);
    this.regs.setUint32(GfxReg.Stride, this.width * 4, true);
  }

  protected mmioRead(bar: number, offset: number, length: number): Uint8Array | null {
    if (bar === 0) return this.framebuffer.slice(offset, offset + length);
    if (bar !== 2) return null;
    this.regs.setUint32(GfxReg.Frames, this.frames, true);
    return readRegisters(this.regs, offset, length);
  }

  protected mmioWrite(bar: number, offset: number, data: Uint8Array, firstBe: number, lastBe: number): void {
    if (bar === 0) storeEnabled(this.framebuffer, offset, data, firstBe, lastBe);
    else if (bar === 2 && offset <= GfxReg.Frames && offset + data.length > GfxReg.Frames) {
      this.frames++;
    }
  }

  /** The visible picture as RGBA rows. */
  rgba(): Uint8Array {
    const out = new Uint8Array(this.width * this.height * 4);
    for (let p = 0; p < this.width * this.height; p++) {
      out[4 * p] = this.framebuffer[4 * p + 2];
      out[4 * p + 1] = this.framebuffer[4 * p + 1];
      out[4 * p + 2] = this.framebuffer[4 * p];
      out[4 * p + 3] = 0xff;
    }
    return out;
  }

  /** The remote screen as a PNG file. */
  screenshot(): Buffer {
    const png = new PNG({ width: this.width, height: this.height });
    png.data = Buffer.from(this.rgba());
    return PNG.sync.write(png);
  }
}
