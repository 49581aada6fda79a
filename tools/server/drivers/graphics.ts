// Driver for the graphics adapter: reads the mode, draws a test picture into the framebuffer
// through BAR 0 (writes of one line at a time, split at 256 bytes like a CPU's write-combining
// buffer flushes), then presents the frame. If the adapter goes away meanwhile, the OS refuses
// further accesses and the drawing fails with DeviceRemoved.

import { GfxReg, GRAPHICS_VENDOR, GRAPHICS_DEVICE, GRAPHICS_ID } from "../../../board/devices/graphics.ts";
import { wait, type Task } from "../task.ts";
import { u32le } from "../../../board/bytes.ts";
import type { OperatingSystem, PciDriver, PciFunction } from "../os.ts";

export function isGraphics(fn: PciFunction): boolean {
  return fn.vendorId === GRAPHICS_VENDOR && fn.deviceId === GRAPHICS_DEVICE;
}

const BARS = [[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]];

/** The test picture: SMPTE-style colour bars over a grey ramp, with a 1-pixel white border. XRGB8888, little-endian. */
export function testPicture(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let rgb: number[];
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1) rgb = [255, 255, 255];
      else if (y < (height * 2) / 3) rgb = BARS[Math.floor((x * BARS.length) / width)];
      else {
        const level = Math.floor((x * 255) / (width - 1));
        rgb = [level, level, level];
      }
      const p = 4 * (y * width + x);
      out[p] = rgb[2];
      out[p + 1] = rgb[1];
      out[p + 2] = rgb[0];
    }
  }
  return out;
}

export function* graphicsDriver(os: OperatingSystem, fn: PciFunction): Task<GraphicsResult> {
  const framebuffer = fn.bars.find((b) => b.index === 0);
  const registers = fn.bars.find((b) => b.index === 2);
  if (!framebuffer || !registers) throw new Error(`graphics ${fn.bus}:${fn.device}.${fn.fn} lacks its BARs`);
  const reg = (offset: number) => os.mmioRead32(fn, registers.address + offset);
  if ((yield* reg(GfxReg.Id)) !== GRAPHICS_ID) throw new Error("not a GFX1 adapter");
  const width = yield* reg(GfxReg.Width);
  const height = yield* reg(GfxReg.Height);
  const stride = yield* reg(GfxReg.Stride);
  const picture = testPicture(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width * 4; x += 256) {
      const chunk = picture.subarray(y * width * 4 + x, y * width * 4 + Math.min(x + 256, width * 4));
      yield* wait(os.mmioWrite(fn, framebuffer.address + y * stride + x, chunk));
    }
  }
  yield* wait(os.mmioWrite(fn, registers.address + GfxReg.Frames, u32le(1)));
  // A read cannot pass the writes before it: when it completes, the whole frame has landed.
  const frames = yield* reg(GfxReg.Frames);
  return { width, height, bytes: width * height * 4, frames };
}

export interface GraphicsResult {
  width: number;
  height: number;
  bytes: number;
  frames: number;
}

/** The graphics driver in the OS's driver model: probe draws and presents the test picture. */
export const graphicsPciDriver: PciDriver<GraphicsResult> = {
  name: "graphics",
  matches: isGraphics,
  probe: graphicsDriver,
  remove: () => {},
};
