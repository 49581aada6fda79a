// The server's view of its PCI hierarchy, as `iov sim --lspci FILE` dumps it from a run of the
// default scenario: once with the chassis connected, once while its cable is pulled (300 ms to
// 500 ms). Each dump is read back with parseLspci and, when pciutils is installed, decoded by
// the real `lspci -F FILE -vvv`.
//
// The dump takes virtual time: at the soft-cores' 100 MHz each configuration read of the host
// card's switch ports is a batch of its firmware, and the 10 ports' 640 reads take ~120 ms.
// So each dump starts where the hierarchy holds still for longer than that (seed 1):
// - connected: at 700 ms. The first connection is no good: slot 1's device comes up only at
//   ~280 ms (its slot appeared after the server had scanned its bus, so pciehp hot-adds it
//   after its 120 ms of link waits) and the pull removes everything at ~325 ms. After the
//   reconnect at 500 ms every device is back by ~640 ms, and the dump ends at ~820 ms.
// - removed: at 340 ms, when the removal is done (~328 ms); it ends at ~456 ms, before the
//   cable comes back at 500 ms.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { iov } from "./helpers.ts";
import { parseLspci, type ParsedFunction } from "../../board/pcie/lspci.ts";
import { lspciDump } from "../../tools/sim/server-lspci.ts";
import { spawn, type Op, type Task } from "../../tools/server/task.ts";
import type { OperatingSystem, PciFunction } from "../../tools/server/os.ts";

// pciutils is installed only by .ci/run; elsewhere the tests that run it are skipped.
const probe = spawnSync("lspci", ["--version"], { encoding: "utf8" });
const lspciSkip = probe.error || probe.status !== 0 ? "lspci not on PATH: install pciutils (apt-get install pciutils) to check the simulator's dumps decode with the real lspci -F" : false;

const PORTS = 8;
/** The default scenario's chassis devices, by bus: graphics, DMA test, keyboard/mouse, NVMe (slots 0..3 → ports 02:00.0..02:03.0). */
const DEVICES: [string, number][] = [["03:00.0", 0x038000], ["04:00.0", 0xff0000], ["05:00.0", 0x090000], ["06:00.0", 0x010802]];
/** The NVMe drive's port: chassis slot 3, physical slot 4. */
const NVME_PORT = "02:03.0";

const CAP_EXPRESS = 0x10;
const LNKCAP = 0x0c;
const LNKSTA = 0x12;
const SLTCAP = 0x14;
const SLTSTA = 0x1a;

let dir = "";
const dumps = { connected: "", removed: "" };

before(() => {
  dir = mkdtempSync(join(tmpdir(), "iov-sim-lspci-"));
  for (const [which, duration] of [["connected", "700ms"], ["removed", "340ms"]] as const) {
    const file = join(dir, `${which}.txt`);
    const result = iov(["sim", "--quiet", "--lspci", file, "--duration", duration]);
    assert.equal(result.status, 0, `iov sim --quiet --lspci ${file} --duration ${duration}:\n${result.stderr}${result.stdout}`);
    dumps[which] = file;
  }
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const slot = (f: ParsedFunction) => `${f.bus.toString(16).padStart(2, "0")}:${f.device.toString(16).padStart(2, "0")}.${f.function}`;

function parsed(which: keyof typeof dumps): Map<string, ParsedFunction> {
  const functions = parseLspci(readFileSync(dumps[which], "utf8"));
  const bySlot = new Map(functions.map((f) => [slot(f), f]));
  assert.equal(bySlot.size, functions.length, "every slot once");
  return bySlot;
}

function view(f: ParsedFunction): DataView {
  return new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength);
}

/** The offset of the PCI Express capability, walking the capability list. */
function express(f: ParsedFunction): number {
  const v = view(f);
  for (let at = v.getUint8(0x34), hops = 0; at !== 0 && hops < 48; at = v.getUint8(at + 1), hops++) {
    if (v.getUint8(at) === CAP_EXPRESS) return at;
  }
  assert.fail(`${slot(f)} has no PCI Express capability`);
}

function ids(f: ParsedFunction): string {
  const v = view(f);
  return `${v.getUint16(0, true).toString(16).padStart(4, "0")}:${v.getUint16(2, true).toString(16).padStart(4, "0")}`;
}

const classCode = (f: ParsedFunction) => view(f).getUint32(8, true) >>> 8;

/** The root port, the host card's upstream port and its 8 hot-plug downstream ports, in every dump. */
function checkSwitch(functions: Map<string, ParsedFunction>): void {
  const root = functions.get("00:01.0");
  assert.ok(root, "the root port 00:01.0");
  assert.equal(classCode(root) >>> 8, 0x0604, "the root port is a PCI bridge");
  const upstream = functions.get("01:00.0");
  assert.ok(upstream, "the host card's upstream port 01:00.0");
  assert.equal(ids(upstream), "1fff:0001");
  for (let d = 0; d < PORTS; d++) {
    const name = `02:0${d}.0`;
    const port = functions.get(name);
    assert.ok(port, `downstream port ${name}`);
    assert.equal(ids(port), "1fff:0002", name);
    const sltCap = view(port).getUint32(express(port) + SLTCAP, true);
    assert.equal(sltCap >>> 19, d + 1, `${name}: physical slot ${d + 1}`);
    assert.equal(sltCap & 0x60, 0x60, `${name}: Hot-Plug Capable and Hot-Plug Surprise`);
  }
  for (const [name, f] of functions) assert.ok(f.bytes.length >= 256, `${name}: ${f.bytes.length} bytes, at least 256`);
}

/** Presence Detect State and DL Link Active of a downstream port, from its bytes. */
function slotState(f: ParsedFunction): { present: boolean; linkActive: boolean } {
  const v = view(f);
  const cap = express(f);
  return { present: (v.getUint16(cap + SLTSTA, true) & 0x40) !== 0, linkActive: (v.getUint16(cap + LNKSTA, true) & 0x2000) !== 0 };
}

test("iov sim --lspci, connected: the root port, the host card's switch and the 4 chassis devices below it", () => {
  const functions = parsed("connected");
  checkSwitch(functions);
  const devices = [...functions.keys()].filter((name) => !/^0[0-2]:/.test(name));
  assert.deepEqual(devices, DEVICES.map(([name]) => name));
  for (const [name, cls] of DEVICES) {
    assert.equal(ids(functions.get(name)!).slice(0, 4), "1fff", name);
    assert.equal(classCode(functions.get(name)!), cls, `${name}: class ${cls.toString(16)}`);
  }
  for (let d = 0; d < PORTS; d++) {
    const occupied = d < DEVICES.length;
    assert.deepEqual(slotState(functions.get(`02:0${d}.0`)!), { present: occupied, linkActive: occupied }, `02:0${d}.0`);
  }
  // DL Link Active reporting, which pciehp relies on.
  const nvmePort = functions.get(NVME_PORT)!;
  assert.ok(view(nvmePort).getUint32(express(nvmePort) + LNKCAP, true) & (1 << 20), "LnkCap: Data Link Layer Link Active Reporting Capable");
});

test("iov sim --lspci, during the pull: the ports are still there, nothing below them, every slot empty and its link down", () => {
  const functions = parsed("removed");
  checkSwitch(functions);
  assert.deepEqual([...functions.keys()].filter((name) => !/^0[0-2]:/.test(name)), [], "no function below the downstream ports");
  for (let d = 0; d < PORTS; d++) assert.deepEqual(slotState(functions.get(`02:0${d}.0`)!), { present: false, linkActive: false }, `02:0${d}.0`);
});

/** `lspci -F FILE -vvv`, split into one block per function keyed by slot. */
function decode(which: keyof typeof dumps): Map<string, string> {
  const result = spawnSync("lspci", ["-F", dumps[which], "-vvv"], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  assert.doesNotMatch(result.stdout, /!!!|chain broken|chain looped|<access denied>/, "lspci found nothing to complain about");
  return new Map(result.stdout.split("\n\n").filter((b) => b.trim()).map((b) => [b.slice(0, 7), `${b}\n`]));
}

function expect(blocks: Map<string, string>, name: string, patterns: RegExp[]): void {
  const block = blocks.get(name);
  assert.ok(block, `lspci printed no ${name}`);
  for (const p of patterns) assert.match(block, p, `${name} should match ${p}:\n${block}`);
}

// What lspci -vvv prints for a hot-plug downstream port (pciutils 3.x). "Physical Slot: N"
// comes from sysfs and is not printed with -F; the slot number is in SltCap as "Slot #N".
const hotplugPort = (n: number) => [
  /^02:0\d\.0 PCI bridge: .*1fff:0002/,
  /\tCapabilities: \[40\] Express \(v2\) Downstream Port \(Slot\+\)/,
  new RegExp(`\\t\\tLnkCap:\\tPort #${n}, Speed 8GT/s, Width x4, [^\\n]*\\n\\t\\t\\t[^\\n]*LLActRep\\+`),
  new RegExp(`\\t\\tSltCap:\\tAttnBtn\\+ PwrCtrl- MRL- AttnInd\\+ PwrInd\\+ HotPlug\\+ Surprise\\+\\n\\t\\t\\tSlot #${n}, `),
  // pciehp enabled notification (with an attention button: ABPE, not PDCE; DLLSCE, HPIE, CCIE) and cleared every event.
  /\t\tSltCtl:\tEnable: AttnBtn\+ PwrFlt- MRL- PresDet- CmdCplt\+ HPIrq\+ LinkChg\+\n/,
  /\t\t\tChanged: MRL- PresDet- LinkState-\n/,
];
const NVME = /^06:00\.0 (Non-Volatile memory controller|Class 0108): Device 1fff:0300 \(prog-if 02/m;

test("lspci -F -vvv decodes the connected dump: slot 4's port with presence and link up, the NVMe controller below it", { skip: lspciSkip }, () => {
  const blocks = decode("connected");
  for (const name of ["00:01.0", "01:00.0", ...Array.from({ length: PORTS }, (_, d) => `02:0${d}.0`), ...DEVICES.map(([n]) => n)]) {
    assert.ok(blocks.has(name), `lspci printed ${name}`);
  }
  expect(blocks, "01:00.0", [/^01:00\.0 PCI bridge: .*1fff:0001/, /\tCapabilities: \[40\] Express \(v2\) Upstream Port/]);
  for (let d = 0; d < PORTS; d++) expect(blocks, `02:0${d}.0`, hotplugPort(d + 1));
  expect(blocks, NVME_PORT, [
    ...hotplugPort(4),
    /\t\tLnkSta:\tSpeed 8GT\/s, Width x4\n\t\t\tTrErr- Train- SlotClk- DLActive\+ /,
    /\t\tSltSta:\tStatus: AttnBtn- PowerFlt- MRL- CmdCplt- PresDet\+ Interlock-\n/,
  ]);
  expect(blocks, "06:00.0", [NVME, /\tRegion 0: Memory at [0-9a-f]+ \(64-bit, non-prefetchable\)\n/, /\tCapabilities: \[[0-9a-f]+\] MSI: Enable\+ /]);
});

test("lspci -F -vvv decodes the dump during the pull: slot 4 empty, its link down, no NVMe controller", { skip: lspciSkip }, () => {
  const blocks = decode("removed");
  assert.deepEqual([...blocks.keys()], ["00:01.0", "01:00.0", ...Array.from({ length: PORTS }, (_, d) => `02:0${d}.0`)]);
  for (let d = 0; d < PORTS; d++) expect(blocks, `02:0${d}.0`, [...hotplugPort(d + 1), /\t\tSltSta:\tStatus: [^\n]*PresDet- /]);
  expect(blocks, NVME_PORT, [
    ...hotplugPort(4),
    /\t\tLnkSta:\tSpeed 8GT\/s, Width x0\n\t\t\tTrErr- Train- SlotClk- DLActive- /,
    /\t\tSltSta:\tStatus: AttnBtn- PowerFlt- MRL- CmdCplt- PresDet- Interlock-\n/,
  ]);
  assert.doesNotMatch([...blocks.values()].join(""), /Non-Volatile memory controller|Class 0108/);
});

test("lspciDump dumps the functions the OS had when it started, each once, even when pciehp adds and removes functions while it reads", () => {
  // A stand-in for the OS: every configuration read completes later (as through the host card),
  // and while the dump reads 02:01.0 a hot-add puts 03:00.0 into the list before it (where
  // scanSlot splices it: after its port 02:00.0) and a surprise removal takes 04:00.0 away.
  type Fn = Pick<PciFunction, "bus" | "device" | "fn" | "removed">;
  const fn = (bus: number, device: number): Fn => ({ bus, device, fn: 0, removed: false });
  const functions: Fn[] = [fn(0, 1), fn(1, 0), fn(2, 0), fn(2, 1), fn(4, 0), fn(2, 2)];
  const pending: (() => void)[] = [];
  let hotplugged = false;
  const os = {
    functions,
    *readConfig(f: Fn, offset: number): Task<number> {
      if (f.bus === 2 && f.device === 1 && offset === 0x40 && !hotplugged) {
        hotplugged = true;
        functions.splice(3, 0, fn(3, 0));
        const gone = functions.findIndex((g) => g.bus === 4);
        functions[gone].removed = true;
        functions.splice(gone, 1);
      }
      const later: Op<void> = { start: (resume) => void pending.push(() => resume(undefined)) };
      yield later;
      if (f.removed) return 0xffffffff;
      return offset === 0 ? (0x0002 << 16) | 0x1fff : 0;
    },
  } as unknown as OperatingSystem;
  let result: string | Error | undefined;
  spawn(lspciDump(os), (r) => (result = r));
  while (result === undefined && pending.length) pending.shift()!();
  assert.ok(hotplugged, "the hot-add and the removal happened during the dump");
  assert.ok(typeof result === "string", `the dump failed: ${result}`);
  const slots = parseLspci(result).map(slot);
  assert.deepEqual(slots, ["00:01.0", "01:00.0", "02:00.0", "02:01.0", "02:02.0"]);
});
