// The server's view of its PCI hierarchy as `lspci -xxx` / `lspci -xxxx` prints it: the root
// port, the host card's virtual switch ports and the remote devices the OS has enumerated,
// each read through configuration requests exactly as the OS sees it (so a removed device is
// absent and a slot's registers show what the firmware reports). 256 bytes per function, 4096
// when it has extended capabilities, which real `lspci -F FILE -vvv` decodes.

import { ConfigSpace } from "../../board/pcie/config-space.ts";
import { formatLspci, type LspciFunction } from "../../board/pcie/lspci.ts";
import { RequestFailed, ROOT_PORT_DEVICE } from "../server/root-complex.ts";
import { wait, type Task } from "../server/task.ts";
import type { OperatingSystem } from "../server/os.ts";

const EXTENDED_START_DW = 0x100 / 4;

function* readFunction(os: OperatingSystem, bus: number, device: number, fn: number): Task<Uint8Array | null> {
  const read = function* (register: number): Task<number> {
    try {
      return yield* wait(os.rc.configRead(bus, device, fn, register));
    } catch (error) {
      if (error instanceof RequestFailed) return 0xffffffff; // what a CPU reads from a request that fails
      throw error;
    }
  };
  if (((yield* read(0)) & 0xffff) === 0xffff) return null;
  // An extended capability header at 0x100 that is neither 0 nor all ones: dump 4096 bytes.
  const first = yield* read(EXTENDED_START_DW);
  const size = first !== 0 && first !== 0xffffffff ? 4096 : 256;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  for (let dw = 0; dw < size / 4; dw++) view.setUint32(dw * 4, dw === EXTENDED_START_DW ? first : yield* read(dw), true);
  return bytes;
}

/** Reads every function the OS knows (and its root port) and returns the dump text. */
export function* lspciDump(os: OperatingSystem): Task<string> {
  // The root port is the first function the OS records; before enumeration it is there all the same.
  const slots = new Map([[ROOT_PORT_DEVICE << 3, { bus: 0, device: ROOT_PORT_DEVICE, fn: 0 }]]);
  for (const f of os.functions) if (!f.removed) slots.set((f.bus << 8) | (f.device << 3) | f.fn, { bus: f.bus, device: f.device, fn: f.fn });
  const functions: LspciFunction[] = [];
  for (const { bus, device, fn } of slots.values()) {
    const bytes = yield* readFunction(os, bus, device, fn);
    if (bytes) functions.push({ bus, device, function: fn, config: ConfigSpace.fromBytes(bytes, bytes.length as 256 | 4096) });
  }
  return formatLspci(functions);
}
