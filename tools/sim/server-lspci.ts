// The server's view of its PCI hierarchy as `lspci -xxx` / `lspci -xxxx` prints it: the root
// port, the host card's virtual switch ports and the remote devices the OS has enumerated,
// each read through configuration requests exactly as the OS sees it (so a removed device is
// absent and a slot's registers show what the firmware reports). 256 bytes per function, 4096
// when it has extended capabilities, which real `lspci -F FILE -vvv` decodes.

import { ConfigSpace } from "../../board/pcie/config-space.ts";
import { formatLspci, type LspciFunction } from "../../board/pcie/lspci.ts";
import { ROOT_PORT_DEVICE } from "../server/root-complex.ts";
import type { Task } from "../server/task.ts";
import type { OperatingSystem, PciFunction } from "../server/os.ts";

const EXTENDED_START = 0x100;

/** The function's configuration space as a CPU reads it (a failed request reads all ones), or null when nothing answers. */
function* readFunction(os: OperatingSystem, f: Pick<PciFunction, "bus" | "device" | "fn">): Task<Uint8Array | null> {
  if (((yield* os.readConfig(f, 0, 4)) & 0xffff) === 0xffff) return null;
  // An extended capability header at 0x100 that is neither 0 nor all ones: dump 4096 bytes.
  const first = yield* os.readConfig(f, EXTENDED_START, 4);
  const size = first !== 0 && first !== 0xffffffff ? 4096 : 256;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  for (let offset = 0; offset < size; offset += 4) view.setUint32(offset, offset === EXTENDED_START ? first : yield* os.readConfig(f, offset, 4), true);
  return bytes;
}

/**
 * Reads every function the OS knows (the root port first; only it before enumeration) and
 * returns the dump text. The list is taken once, when the dump starts, as lspci lists
 * /sys/bus/pci/devices once: the reads take virtual time, and meanwhile pciehp may add a
 * function (a hot-add splices it into the OS's list) or remove one. A function added meanwhile
 * is not in this dump; one removed while it was read is left out, as lspci skips a device
 * whose sysfs config file has gone.
 */
export function* lspciDump(os: OperatingSystem): Task<string> {
  const slots: Pick<PciFunction, "bus" | "device" | "fn" | "removed">[] = os.functions.length ? [...os.functions] : [{ bus: 0, device: ROOT_PORT_DEVICE, fn: 0, removed: false }];
  const functions: LspciFunction[] = [];
  for (const f of slots) {
    if (f.removed) continue;
    const bytes = yield* readFunction(os, f);
    if (bytes && !f.removed) functions.push({ bus: f.bus, device: f.device, function: f.fn, config: ConfigSpace.fromBytes(bytes, bytes.length as 256 | 4096) });
  }
  return formatLspci(functions);
}
