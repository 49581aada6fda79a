import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigSpace, defineType0Header, defineType1Header } from "../../board/pcie/config-space.ts";
import { addDeviceSerialNumber, addExpress, addMsi, addPowerManagement, LinkSpeed, PortType } from "../../board/pcie/capabilities.ts";
import { formatLspci, LspciFormatError, parseLspci, type LspciFunction } from "../../board/pcie/lspci.ts";

// pciutils is installed only by .ci/run; elsewhere the tests that run it are skipped.
const probe = spawnSync("lspci", ["--version"], { encoding: "utf8" });
const lspciSkip = probe.error || probe.status !== 0 ? "lspci not on PATH: install pciutils (apt-get install pciutils) to check the dump decodes with the real lspci -F" : false;

const LINK = { maxSpeed: LinkSpeed.Gen3, maxWidth: 8 } as const;

/**
 * What the server sees of a host card with one slot and a graphics adapter behind it,
 * configured as the server's enumeration would leave it: the card's upstream port on bus 1,
 * its hot-plug downstream port on bus 2, the adapter on bus 3.
 */
function hierarchy(): LspciFunction[] {
  // Upstream Port 01:00.0: buses 2..3, windows covering the endpoint's BARs.
  const us = new ConfigSpace(256); // the ports are dumped as -xxx (256 bytes), the endpoint as -xxxx
  defineType1Header(us, { vendorId: 0x1fff, deviceId: 0x0001, revisionId: 0x01 });
  addPowerManagement(us);
  addExpress(us, { portType: PortType.UpstreamPort, link: LINK });
  // Downstream Port 02:00.0 with a hot-plug slot; MSI for hot-plug events.
  const ds = new ConfigSpace(256);
  defineType1Header(ds, { vendorId: 0x1fff, deviceId: 0x0002, interruptPin: 1 });
  addPowerManagement(ds);
  const dsMsi = addMsi(ds, { vectors: 1 });
  const dsx = addExpress(ds, {
    portType: PortType.DownstreamPort,
    link: { ...LINK, portNumber: 1, surpriseDown: true },
    slot: {
      physicalSlot: 1, attentionButton: true, powerController: true, attentionIndicator: true, powerIndicator: true,
      hotPlugSurprise: true, hotPlugCapable: true, powerLimit: { value: 25, scale: 0 },
    },
  });
  for (const [cs, primary, secondary] of [[us, 1, 2], [ds, 2, 3]] as const) {
    cs.write(0x04, 0x0107, 2); // I/O, Memory, Bus Master, SERR#
    cs.write(0x18, (3 << 16) | (secondary << 8) | primary, 4);
    cs.write(0x1c, 0xe0e0, 2); // I/O e000-efff
    cs.write(0x20, 0xfe00fe00, 4); // memory fe000000-fe0fffff
    cs.write(0x24, 0x0ff00000, 4); // prefetchable 40_0000_0000-40_0fff_ffff with the upper halves
    cs.write(0x28, 0x00000040, 4);
    cs.write(0x2c, 0x00000040, 4);
    cs.write(0x3e, 0x0002, 2); // SERR# forwarding
  }
  // The slot as pciehp leaves it after an insertion: events enabled, card present, link up,
  // Presence Detect Changed and DL State Changed still to be cleared.
  ds.write(dsMsi.offset + 2, 0x0001, 2);
  ds.write(dsMsi.offset + 4, 0xfee00000, 4);
  ds.write(dsMsi.offset + 0xc, 0x0031, 2);
  ds.write(dsx.offset + 0x18, 0x1039 | 0x01c0, 2); // AttnBtn, PresDet, CmdCplt, HPIrq, DLL State Changed enables; Attn off, Power on
  dsx.slot!.presenceDetectState.set(1);
  dsx.slot!.presenceDetectChanged.set(1);
  dsx.slot!.dlStateChanged.set(1);
  dsx.link.dlLinkActive.set(1);
  // Endpoint 03:00.0: a graphics adapter with a 256 MiB 64-bit prefetchable framebuffer,
  // 1 MiB of registers, legacy I/O, MSI with masking and a serial number (4096-byte space).
  const ep = new ConfigSpace(4096);
  defineType0Header(ep, {
    vendorId: 0x1fff, deviceId: 0x0100, revisionId: 0x03, classCode: 0x030000, subsystemVendorId: 0x1fff, subsystemId: 0x0101,
    interruptPin: 1,
    bars: [{ kind: "memory64", size: 256 << 20, prefetchable: true }, undefined, { kind: "memory32", size: 1 << 20 }, undefined, { kind: "io", size: 256 }],
  });
  addPowerManagement(ep, { pmeSupport: 0b11001 });
  const msi = addMsi(ep, { vectors: 4, perVectorMasking: true });
  addExpress(ep, { portType: PortType.Endpoint, link: LINK });
  addDeviceSerialNumber(ep, 0x0200_5e10_0000_0001n);
  ep.write(0x10, 0x00000000, 4);
  ep.write(0x14, 0x00000040, 4);
  ep.write(0x18, 0xfe000000, 4);
  ep.write(0x20, 0x0000e000, 4);
  ep.write(0x04, 0x0007, 2);
  ep.write(msi.offset + 4, 0xfee00000, 4);
  ep.write(msi.offset + 0xc, 0x4020, 2);
  ep.write(msi.offset + 2, 0x0011, 2); // enabled, 2 of 4 vectors
  return [
    { bus: 3, device: 0, function: 0, config: ep },
    { bus: 1, device: 0, function: 0, config: us },
    { bus: 2, device: 0, function: 0, config: ds },
  ];
}

function withDump<T>(text: string, run: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "iov-lspci-"));
  try {
    const file = join(dir, "dump.txt");
    writeFileSync(file, text);
    return run(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function lspci(file: string, ...args: string[]): string {
  const result = spawnSync("lspci", ["-F", file, ...args], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

test("formatLspci writes the lspci -xxx layout: header line, 16 lines of 16 bytes, a blank line, sorted by slot", () => {
  const text = formatLspci(hierarchy().filter((f) => f.bus !== 3));
  const lines = text.split("\n");
  assert.equal(lines[0], "01:00.0 Class 0604: Device 1fff:0001 (rev 01)");
  assert.equal(lines[1], "00: ff 1f 01 00 07 01 10 00 01 00 04 06 00 00 01 00");
  assert.equal(lines[2], "10: 00 00 00 00 00 00 00 00 01 02 03 00 e0 e0 00 00");
  assert.match(lines[16], /^f0:( [0-9a-f]{2}){16}$/);
  assert.equal(lines[17], "");
  assert.equal(lines[18], "02:00.0 Class 0604: Device 1fff:0002", "no revision, no (rev 00)");
  assert.equal(lines.length, 2 * 18 + 1);
  assert.equal(text.at(-1), "\n");
});

test("a 4096-byte space is dumped as lspci -xxxx does, offsets growing to three digits", () => {
  const text = formatLspci([hierarchy()[0]]);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 1 + 256);
  assert.match(lines[17], /^100: 03 00 01 00 01 00 00 00 10 5e 00 02 00 00 00 00$/);
  assert.match(lines[256], /^ff0:( 00){16}$/);
});

test("parseLspci reads back what formatLspci wrote: slots, names, domains and every byte", () => {
  const functions = hierarchy();
  functions[1] = { ...functions[1], name: "IOV host card upstream port" };
  const text = formatLspci(functions);
  const parsed = parseLspci(text);
  assert.deepEqual(parsed.map((f) => `${f.bus}:${f.device}.${f.function} ${f.name ?? "-"} ${f.bytes.length}`), [
    "1:0.0 IOV host card upstream port 256",
    "2:0.0 - 256",
    "3:0.0 - 4096",
  ]);
  assert.equal(parsed[0].description, "Class 0604: IOV host card upstream port (rev 01)");
  const byBus = new Map(functions.map((f) => [f.bus, f.config]));
  for (const f of parsed) assert.deepEqual(f.config.bytes(), byBus.get(f.bus)!.bytes());
  assert.equal(formatLspci(parsed), text);
  const domains = formatLspci([{ ...functions[1], domain: 0x10 }, { ...functions[2], domain: 0 }]);
  assert.match(domains, /^0000:02:00\.0 /m);
  assert.match(domains, /^0010:01:00\.0 /m);
  assert.deepEqual(parseLspci(domains).map((f) => f.domain), [0, 0x10]);
});

test("parseLspci reads real lspci output: names from pci.ids, -x length, -v lines and CRLF skipped", () => {
  const real = [
    "00:00.0 Host bridge [0600]: Intel Corporation Device [8086:0d57]\r",
    "\tSubsystem: Intel Corporation Device [8086:0000]\r",
    "00: 86 80 57 0d 00 00 00 00 00 00 00 06 00 00 00 00\r",
    "10: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\r",
    "20: 00 00 00 00 00 00 00 00 00 00 00 00 86 80 00 00\r",
    "30: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\r",
    "\r",
  ].join("\n");
  const [f] = parseLspci(real);
  assert.equal(f.description, "Host bridge [0600]: Intel Corporation Device [8086:0d57]");
  assert.equal(f.name, undefined);
  assert.equal(f.bytes.length, 64);
  assert.equal(f.config.size, 256);
  const id = f.config.read(0, 4);
  assert.deepEqual(id, { ok: true, value: 0x0d578086 });
  assert.equal(f.config.peek(0x40, 4), 0xffffffff, "bytes the dump lacks read as all ones");
});

test("parseLspci rejects malformed data lines, oversize dumps and repeated slots with the line number", () => {
  const bad: [string, RegExp][] = [
    ["00:00.0 x\n00: 86 80 5\n", /line 2: malformed byte "5"/],
    ["00:00.0 x\n00: 86 80 zz\n", /line 2: malformed byte "zz"/],
    ["00:00.0 x\nff8: 00 00 00 00 00 00 00 00 00\n", /line 2: at most 4096 bytes/],
    ["00:00.0 x\n\n00:00.0 y\n", /line 3: 00:00\.0 appears twice/],
    ["00:20.0 x\n", /line 1: device number 20/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseLspci(text), (e: unknown) => e instanceof LspciFormatError && message.test(e.message), text);
  }
  assert.deepEqual(parseLspci("00: 00 00\nrandom text\n"), [], "data before any header is ignored, as lspci does");
});

test("formatLspci output is byte for byte what lspci -F prints back with -xxxx", { skip: lspciSkip }, () => {
  const text = formatLspci(hierarchy());
  // -i with a missing ID file: lspci prints the numeric header line formatLspci writes.
  const back = withDump(text, (file) => lspci(file, "-xxxx", "-i", "/nonexistent/pci.ids"));
  assert.equal(back, text);
});

test("lspci -vvv decodes IDs, BARs, windows, MSI and the Express capabilities of the dump", { skip: lspciSkip }, () => {
  const out = withDump(formatLspci(hierarchy()), (file) => lspci(file, "-vvv", "-nn"));
  const blocks = new Map(out.split("\n\n").filter(Boolean).map((b) => [b.slice(0, 7), `${b}\n`]));
  assert.deepEqual([...blocks.keys()], ["01:00.0", "02:00.0", "03:00.0"]);
  const expect = (slot: string, patterns: RegExp[]) => {
    const block = blocks.get(slot)!;
    for (const p of patterns) assert.match(block, p, `${slot} should match ${p}:\n${block}`);
  };
  expect("01:00.0", [
    /^01:00\.0 .*\[0604\]: .*\[1fff:0001\] \(rev 01\)/,
    /\tControl: I\/O\+ Mem\+ BusMaster\+ .* SERR\+ /,
    /\tBus: primary=01, secondary=02, subordinate=03, sec-latency=0\n/,
    /\tI\/O behind bridge: e000-efff \[size=4K\] \[16-bit\]\n/,
    /\tMemory behind bridge: fe000000-fe0fffff \[size=1M\] \[32-bit\]\n/,
    /\tPrefetchable memory behind bridge: 0000004000000000-000000400fffffff \[size=256M\] \[64-bit\]\n/,
    /\tBridgeCtl: Parity- SERR\+ NoISA- VGA- VGA16- MAbort- >Reset- FastB2B-\n/,
    /\tCapabilities: \[40\] Power Management version 3\n/,
    /\tCapabilities: \[48\] Express \(v2\) Upstream Port, (MSI|IntMsgNum) 0+\n/,
    /\t\tLnkCap:\tPort #0, Speed 8GT\/s, Width x8, ASPM not supported\n\t\t\tClockPM- Surprise- LLActRep- BwNot- ASPMOptComp\+\n/,
    /\t\tLnkSta:\tSpeed 8GT\/s, Width x8\n/,
  ]);
  expect("02:00.0", [
    /^02:00\.0 .*\[0604\]: .*\[1fff:0002\] \(prog-if 00/,
    /\tInterrupt: pin A /,
    /\tBus: primary=02, secondary=03, subordinate=03, sec-latency=0\n/,
    /\tCapabilities: \[48\] MSI: Enable\+ Count=1\/1 Maskable- 64bit\+\n\t\tAddress: 00000000fee00000  Data: 0031\n/,
    /\tCapabilities: \[58\] Express \(v2\) Downstream Port \(Slot\+\), (MSI|IntMsgNum) 0+\n/,
    /\t\tDevCap:\tMaxPayload 256 bytes, PhantFunc 0\n\t\t\tExtTag\+ RBE\+/,
    /\t\tLnkCap:\tPort #1, Speed 8GT\/s, Width x8, ASPM not supported\n\t\t\tClockPM- Surprise\+ LLActRep\+ BwNot- ASPMOptComp\+\n/,
    /\t\tLnkSta:\tSpeed 8GT\/s, Width x8\n\t\t\tTrErr- Train- SlotClk- DLActive\+ BWMgmt- ABWMgmt-\n/,
    /\t\tSltCap:\tAttnBtn\+ PwrCtrl\+ MRL- AttnInd\+ PwrInd\+ HotPlug\+ Surprise\+\n\t\t\tSlot #1, PowerLimit 25W; Interlock- NoCompl-\n/,
    /\t\tSltCtl:\tEnable: AttnBtn\+ PwrFlt- MRL- PresDet\+ CmdCplt\+ HPIrq\+ LinkChg\+\n\t\t\tControl: AttnInd Off, PwrInd On, Power- Interlock-\n/,
    /\t\tSltSta:\tStatus: AttnBtn- PowerFlt- MRL- CmdCplt- PresDet\+ Interlock-\n\t\t\tChanged: MRL- PresDet\+ LinkState\+\n/,
    /\t\tDevCap2: Completion Timeout: Not Supported, TimeoutDis-/,
  ]);
  expect("03:00.0", [
    /^03:00\.0 .*\[0300\]: .*\[1fff:0100\] \(rev 03\)/,
    /\tSubsystem: .*\[1fff:0101\]\n/,
    /\tRegion 0: Memory at 4000000000 \(64-bit, prefetchable\)\n/,
    /\tRegion 2: Memory at fe000000 \(32-bit, non-prefetchable\)\n/,
    /\tRegion 4: I\/O ports at e000\n/,
    /\tCapabilities: \[40\] Power Management version 3\n\t\tFlags: PMEClk- DSI- D1- D2- AuxCurrent=0mA PME\(D0\+,D1-,D2-,D3hot\+,D3cold\+\)\n/,
    /\tCapabilities: \[48\] MSI: Enable\+ Count=2\/4 Maskable\+ 64bit\+\n\t\tAddress: 00000000fee00000  Data: 4020\n\t\tMasking: 00000000  Pending: 00000000\n/,
    /\tCapabilities: \[60\] Express \(v2\) Endpoint, (MSI|IntMsgNum) 0+\n/,
    /\t\tDevCtl:\tCorrErr- NonFatalErr- FatalErr- UnsupReq-\n\t\t\tRlxdOrd\+ ExtTag- PhantFunc- AuxPwr- NoSnoop\+\n\t\t\tMaxPayload 128 bytes, MaxReadReq 512 bytes\n/,
    /\t\tLnkCtl:\tASPM Disabled; RCB 64 bytes,/,
    /\t\tDevCap2: Completion Timeout: Range ABCD, TimeoutDis\+/,
    /\t\tDevCtl2: Completion Timeout: 50us to 50ms, TimeoutDis-/,
    /\t\tLnkCap2: Supported Link Speeds: 2\.5-8GT\/s,/,
    /\tCapabilities: \[100 v1\] Device Serial Number 02-00-5e-10-00-00-00-01\n/,
  ]);
  assert.doesNotMatch(out, /!!!|chain broken|chain looped|<access denied>/, "lspci found nothing to complain about");
});
