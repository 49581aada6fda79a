import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigSpace, CplStatus, defineType0Header, defineType1Header, type CfgReadResult, type CfgWriteResult, type WriteEvent,
} from "../../board/pcie/config-space.ts";
import {
  addDeviceSerialNumber, addExpress, addMsi, addPowerManagement, CompletionTimeoutRanges, findCapability, LinkSpeed,
  listCapabilities, listExtendedCapabilities, PortType, type ExpressOptions,
} from "../../board/pcie/capabilities.ts";

// Offsets and bit values below are written out from the specifications on purpose, not
// taken from the module's constants, so a wrong constant fails a test.

function value(r: CfgReadResult): number {
  assert.ok(r.ok, `access failed: ${JSON.stringify(r)}`);
  return r.value;
}

function done(r: CfgWriteResult): void {
  assert.ok(r.ok, `access failed: ${JSON.stringify(r)}`);
}

const rd = (cs: ConfigSpace, offset: number, bytes = 4) => value(cs.read(offset, bytes));
const wr = (cs: ConfigSpace, offset: number, v: number, bytes = 4) => done(cs.write(offset, v, bytes));

function endpoint(size: 256 | 4096 = 4096) {
  const cs = new ConfigSpace(size);
  const header = defineType0Header(cs, {
    vendorId: 0x1fff, deviceId: 0x0100, revisionId: 0x02, classCode: 0x010802, subsystemVendorId: 0x1fff, subsystemId: 0x0101,
    interruptPin: 1,
    bars: [
      { kind: "memory64", size: 16384 },
      undefined,
      { kind: "memory32", size: 1 << 20 },
      { kind: "memory64", size: 8n << 30n, prefetchable: true },
      undefined,
      { kind: "io", size: 256 },
    ],
  });
  return { cs, header };
}

function bridge(options: Parameters<typeof defineType1Header>[1] = { vendorId: 0x1fff, deviceId: 0x0002 }) {
  const cs = new ConfigSpace();
  return { cs, header: defineType1Header(cs, options) };
}

const LINK = { maxSpeed: LinkSpeed.Gen3, maxWidth: 8 } as const;
const HOTPLUG_SLOT = {
  physicalSlot: 9, attentionButton: true, powerController: true, mrlSensor: true, attentionIndicator: true,
  powerIndicator: true, hotPlugSurprise: true, hotPlugCapable: true,
};

// ---- attributes and accesses -----------------------------------------------------------

test("read-only header fields ignore writes of all ones", () => {
  const { cs } = endpoint();
  const before = [0x00, 0x08, 0x0c, 0x2c, 0x34].map((o) => rd(cs, o));
  for (const o of [0x00, 0x08, 0x2c, 0x34]) wr(cs, o, 0xffffffff);
  assert.equal(rd(cs, 0x00), 0x01001fff, "Vendor/Device ID");
  assert.equal(rd(cs, 0x08), 0x01080202, "Revision/Class Code");
  assert.equal(rd(cs, 0x2c), 0x01011fff, "Subsystem IDs");
  assert.equal(rd(cs, 0x34), before[4], "Capabilities Pointer and reserved bytes");
  wr(cs, 0x0c, 0xffffffff);
  assert.equal(rd(cs, 0x0c), 0x000000ff, "only Cache Line Size is writable; Latency Timer, Header Type, BIST are hardwired");
  wr(cs, 0x3c, 0xffffffff);
  assert.equal(rd(cs, 0x3c), 0x000001ff, "Interrupt Line RW, Interrupt Pin RO (INTA), Min_Gnt/Max_Lat 0");
});

test("Command implements exactly I/O, Memory, Bus Master, Parity Error Response, SERR# and Interrupt Disable", () => {
  const { cs } = endpoint();
  wr(cs, 0x04, 0xffff, 2);
  assert.equal(rd(cs, 0x04, 2), 0b0000_0101_0100_0111);
  wr(cs, 0x04, 0, 2);
  assert.equal(rd(cs, 0x04, 2), 0);
});

test("byte enables select the lanes a configuration write changes", () => {
  const { cs } = endpoint();
  done(cs.writeDword(0x3c / 4, 0x44332211, 0b0001));
  assert.equal(rd(cs, 0x3c, 1), 0x11);
  done(cs.writeDword(0x0c / 4, 0xaabbccdd, 0b0000));
  assert.equal(rd(cs, 0x0c, 1), 0, "no lanes enabled: nothing written");
  done(cs.writeDword(0x0c / 4, 0xaabbccdd, 0b1110));
  assert.equal(rd(cs, 0x0c, 1), 0, "Cache Line Size's lane was not enabled");
  done(cs.writeDword(0x0c / 4, 0xaabbcc40, 0b0001));
  assert.equal(rd(cs, 0x0c, 1), 0x40);
  done(cs.writeDword(0x04 / 4, 0xffff0002, 0b0001));
  assert.equal(rd(cs, 0x04, 2), 0x0002, "a byte write of Command's low byte sets Memory Space only");
  done(cs.writeDword(0x04 / 4, 0x00000400, 0b0010));
  assert.equal(rd(cs, 0x04, 2), 0x0402, "the high byte alone sets Interrupt Disable and keeps Memory Space");
  assert.equal(value(cs.readDword(0x04 / 4, 0b0001)), value(cs.readDword(0x04 / 4)), "reads return the whole DWORD");
});

test("read returns little-endian values of 1, 2 and 4 bytes", () => {
  const { cs } = endpoint();
  assert.equal(rd(cs, 0, 1), 0xff);
  assert.equal(rd(cs, 1, 1), 0x1f);
  assert.equal(rd(cs, 2, 2), 0x0100);
  assert.equal(rd(cs, 8, 4), 0x01080202);
  assert.equal(rd(cs, 0x0b, 1), 0x01, "base class");
});

test("Status RW1C bits clear only when written with 1 and are set from the hardware side", () => {
  const { cs, header } = endpoint();
  addMsi(cs);
  header.status.setBits(0xf900); // every error bit, as the hardware would set them
  header.interruptStatus.set(1);
  assert.equal(rd(cs, 0x06, 2), 0xf918);
  wr(cs, 0x06, 0x0000, 2);
  assert.equal(rd(cs, 0x06, 2), 0xf918, "writing 0 changes nothing");
  wr(cs, 0x06, 0x2000, 2);
  assert.equal(rd(cs, 0x06, 2), 0xd918, "only Received Master Abort cleared");
  wr(cs, 0x06, 0xffff, 2);
  assert.equal(rd(cs, 0x06, 2), 0x0018, "Interrupt Status and Capabilities List are read-only");
});

test("a DWORD write to Command leaves Status events alone unless their bits are 1", () => {
  const { cs, header } = endpoint();
  header.status.setBits(0x2000 | 0x0100);
  done(cs.writeDword(1, 0x0000_0006));
  assert.equal(rd(cs, 0x04, 2), 0x0006);
  assert.equal(rd(cs, 0x06, 2), 0x2100);
  done(cs.writeDword(1, 0x0100_0006));
  assert.equal(rd(cs, 0x06, 2), 0x2000);
});

test("out-of-range accesses are Unsupported Requests, malformed ones Completer Aborts, and nothing throws", () => {
  const small = new ConfigSpace(256);
  defineType0Header(small, { vendorId: 0x1fff, deviceId: 1, classCode: 0 });
  const big = endpoint().cs;
  const ur = (r: CfgReadResult | CfgWriteResult) => assert.equal(!r.ok && r.status, CplStatus.UnsupportedRequest, JSON.stringify(r));
  const ca = (r: CfgReadResult | CfgWriteResult) => assert.equal(!r.ok && r.status, CplStatus.CompleterAbort, JSON.stringify(r));
  ur(small.read(0x100, 4));
  ur(small.readDword(64));
  ur(small.writeDword(64, 0));
  ur(big.read(0x1000, 4));
  ur(big.readDword(1024));
  ur(big.readDword(-1));
  ur(big.read(-4, 4));
  ur(big.read(1.5, 1));
  ur(big.writeDword(0.5, 0));
  ca(big.read(2, 4));
  ca(big.read(1, 2));
  ca(big.read(0, 3));
  ca(big.write(6, 0, 4));
  ca(big.readDword(0, 0x10));
  ca(big.writeDword(0, 0, -1));
  ca(big.write(0x3c, 0x100, 1));
  ca(big.write(0x3c, -1, 1));
  ca(big.writeDword(15, 2 ** 32));
  ca(big.writeDword(15, Number.NaN));
  assert.equal(rd(big, 0x3c, 1), 0, "a failed write changes nothing");
  assert.equal(CplStatus.UnsupportedRequest, 0b001);
  assert.equal(CplStatus.CompleterAbort, 0b100);
  done(big.writeDword(15, -1)); // ~0 is a valid 32-bit pattern
  assert.equal(rd(big, 0x3c, 1), 0xff);
});

test("write hooks see old value, new value, written data and enabled lanes, only for touched registers", () => {
  const { cs, header } = endpoint();
  const seen: [string, Omit<WriteEvent, "register">][] = [];
  const record = (e: WriteEvent) => seen.push([e.register.name, { old: e.old, value: e.value, written: e.written, enabled: e.enabled }]);
  header.command.onWrite(record);
  header.status.onWrite(record);
  header.interruptLine.onWrite(record);
  done(cs.writeDword(1, 0xffff_0002, 0b0011));
  assert.deepEqual(seen, [["command", { old: 0, value: 2, written: 2, enabled: 0xffff }]]);
  seen.length = 0;
  header.status.setBits(0x2000);
  done(cs.writeDword(1, 0x2000_0502, 0b1001));
  assert.deepEqual(seen, [
    ["command", { old: 2, value: 2, written: 0x02, enabled: 0x00ff }],
    ["status", { old: 0x2000, value: 0, written: 0x2000, enabled: 0xff00 }],
  ]);
  seen.length = 0;
  cs.read(0x3c, 1);
  assert.equal(cs.write(0x3d, 1, 2).ok, false);
  assert.deepEqual(seen, [], "reads and failed writes call no hook");
});

test("reset restores RW and RW1C bits and keeps read-only hardware state", () => {
  const { cs, header } = endpoint();
  const pcie = addExpress(cs, { portType: PortType.Endpoint, link: LINK });
  wr(cs, 0x04, 0x0006, 2);
  wr(cs, 0x10, 0xfebf0000);
  wr(cs, 0x3c, 11, 1);
  header.status.setBits(0x4000);
  pcie.device.transactionsPending.set(1);
  pcie.device.maxPayloadSize.set(1);
  cs.reset();
  assert.equal(rd(cs, 0x04, 2), 0);
  assert.equal(rd(cs, 0x06, 2), 0x0010);
  assert.equal(rd(cs, 0x10), 0x00000004, "BAR address cleared, type bits kept");
  assert.equal(rd(cs, 0x3c, 1), 0);
  assert.equal(pcie.device.maxPayloadSize.get(), 0);
  assert.equal(pcie.device.transactionsPending.get(), 1);
});

test("builder mistakes throw at build time", () => {
  const cs = new ConfigSpace();
  assert.throws(() => defineType0Header(cs, { vendorId: 1, deviceId: 1, classCode: 0, bars: [null, null, null, null, null, { kind: "memory64", size: 4096 }] }), /needs BAR 6/);
  assert.throws(() => defineType0Header(new ConfigSpace(), { vendorId: 1, deviceId: 1, classCode: 0, bars: [{ kind: "memory32", size: 3000 }] }), /power of two/);
  assert.throws(() => defineType0Header(new ConfigSpace(), { vendorId: 1, deviceId: 1, classCode: 0, bars: [{ kind: "memory64", size: 4096 }, { kind: "io", size: 4 }] }), /upper half/);
  const ok = new ConfigSpace();
  defineType0Header(ok, { vendorId: 1, deviceId: 1, classCode: 0 });
  assert.throws(() => ok.define("again", 0x3c, 1), /already defined/);
  assert.throws(() => ok.define("across", 0x42, 4), /cross a DWORD/);
  assert.throws(() => addExpress(ok, { portType: PortType.Endpoint, link: LINK, slot: { physicalSlot: 1 } }), /slot does not apply/);
  assert.throws(() => addMsi(new ConfigSpace()), /header/);
});

// ---- BARs ------------------------------------------------------------------------------

test("32-bit memory BAR: all ones read back as the size mask, then an address is programmed", () => {
  const { cs, header } = endpoint();
  wr(cs, 0x18, 0xffffffff);
  assert.equal(rd(cs, 0x18), 0xfff00000, "1 MiB, 32-bit, non-prefetchable");
  wr(cs, 0x18, 0xfe123456);
  assert.equal(rd(cs, 0x18), 0xfe100000);
  assert.equal(header.bars[2]!.address(), 0xfe100000n);
  assert.equal(header.bars[2]!.claims(0xfe100000n), false, "Memory Space Enable is off");
  wr(cs, 0x04, 0x0002, 2);
  assert.equal(header.bars[2]!.claims(0xfe1fffffn), true);
  assert.equal(header.bars[2]!.claims(0xfe200000n), false);
});

test("64-bit memory BAR below 4 GiB: the lower half sizes, the upper half is fully writable", () => {
  const { cs, header } = endpoint();
  wr(cs, 0x10, 0xffffffff);
  wr(cs, 0x14, 0xffffffff);
  assert.equal(rd(cs, 0x10), 0xffffc004, "16 KiB, type 10b (64-bit), non-prefetchable");
  assert.equal(rd(cs, 0x14), 0xffffffff);
  wr(cs, 0x10, 0x00008000);
  wr(cs, 0x14, 0x00000012);
  assert.equal(rd(cs, 0x10), 0x00008004);
  assert.equal(header.bars[0]!.address(), 0x12_0000_8000n);
  assert.equal(header.bars[1], undefined, "BAR1 is the upper half, not a BAR of its own");
});

test("64-bit prefetchable BAR above 4 GiB: both halves size, type and prefetchable bits stay", () => {
  const { cs, header } = endpoint();
  wr(cs, 0x1c, 0xffffffff);
  wr(cs, 0x20, 0xffffffff);
  assert.equal(rd(cs, 0x1c), 0x0000000c, "8 GiB: no writable address bits in the lower half; 64-bit, prefetchable");
  assert.equal(rd(cs, 0x20), 0xfffffffe, "bit 32 is inside the 8 GiB");
  wr(cs, 0x1c, 0x12345678);
  wr(cs, 0x20, 0x00000043);
  assert.equal(rd(cs, 0x1c), 0x0000000c);
  assert.equal(rd(cs, 0x20), 0x00000042);
  assert.equal(header.bars[3]!.address(), 0x42_0000_0000n);
  assert.equal(header.bars[3]!.size, 8n << 30n);
  assert.equal(header.bars[3]!.prefetchable, true);
});

test("I/O BAR sizes to its 256 bytes with the I/O space bit intact", () => {
  const { cs, header } = endpoint();
  wr(cs, 0x24, 0xffffffff);
  assert.equal(rd(cs, 0x24), 0xffffff01);
  wr(cs, 0x24, 0x0000e0ff);
  assert.equal(rd(cs, 0x24), 0x0000e001);
  assert.equal(header.bars[5]!.address(), 0xe000n);
  wr(cs, 0x04, 0x0001, 2);
  assert.equal(header.bars[5]!.claims(0xe0ffn), true);
});

test("unimplemented BARs and Expansion ROM read 0 after all ones; an implemented ROM sizes with its enable bit", () => {
  const plain = new ConfigSpace();
  defineType0Header(plain, { vendorId: 1, deviceId: 2, classCode: 0x118000 });
  for (let o = 0x10; o <= 0x30; o += 4) wr(plain, o, 0xffffffff);
  for (let o = 0x10; o <= 0x30; o += 4) assert.equal(rd(plain, o), 0, `0x${o.toString(16)}`);
  const cs = new ConfigSpace();
  const header = defineType0Header(cs, { vendorId: 1, deviceId: 2, classCode: 0x030000, expansionRomSize: 64 << 10 });
  wr(cs, 0x30, 0xffffffff);
  assert.equal(rd(cs, 0x30), 0xffff0001, "64 KiB and ROM Enable");
  wr(cs, 0x30, 0xfd000001);
  assert.equal(header.expansionRom!.address(), 0xfd000000);
  assert.equal(header.expansionRom!.enabled(), false, "needs Memory Space Enable too");
  wr(cs, 0x04, 2, 2);
  assert.equal(header.expansionRom!.enabled(), true);
});

test("Header Type carries the multi-function bit", () => {
  const a = new ConfigSpace();
  defineType0Header(a, { vendorId: 1, deviceId: 2, classCode: 0, multiFunction: true });
  assert.equal(rd(a, 0x0e, 1), 0x80);
  assert.equal(rd(bridge({ vendorId: 1, deviceId: 2, multiFunction: true }).cs, 0x0e, 1), 0x81);
  assert.equal(rd(bridge().cs, 0x0e, 1), 0x01);
  assert.equal(rd(bridge().cs, 0x08), 0x06040000, "class PCI-to-PCI bridge");
});

// ---- Type 1 ----------------------------------------------------------------------------

test("bridge bus numbers are read-write and decide which Type 1 requests are forwarded", () => {
  const { cs, header } = bridge();
  wr(cs, 0x18, 0xffffffff);
  assert.equal(rd(cs, 0x18), 0x00ffffff, "Secondary Latency Timer is hardwired to 0");
  wr(cs, 0x18, 0x00050302);
  assert.equal([header.primaryBus.get(), header.secondaryBus.get(), header.subordinateBus.get()].join(), "2,3,5");
  assert.deepEqual([2, 3, 4, 5, 6].map((b) => header.forwardsBus(b)), [false, true, true, true, false]);
});

test("memory window: bits 15:4 of base and limit at 1 MiB granularity", () => {
  const { cs, header } = bridge();
  wr(cs, 0x20, 0xffffffff);
  assert.equal(rd(cs, 0x20), 0xfff0fff0);
  wr(cs, 0x20, 0xfe2ffe00); // base fe000000, limit fe2fffff
  assert.deepEqual(header.memoryWindow(), { base: 0xfe000000n, limit: 0xfe2fffffn });
  wr(cs, 0x20, 0x0000fff0);
  assert.equal(header.memoryWindow(), null, "base above limit: closed");
});

test("prefetchable window with 64-bit addressing: low nibble 1 read-only, upper 32 bits read-write", () => {
  const { cs, header } = bridge();
  assert.equal(rd(cs, 0x24), 0x00010001);
  wr(cs, 0x24, 0xffffffff);
  assert.equal(rd(cs, 0x24), 0xfff1fff1);
  wr(cs, 0x24, 0x00000000);
  assert.equal(rd(cs, 0x24), 0x00010001);
  wr(cs, 0x28, 0xffffffff);
  wr(cs, 0x2c, 0xffffffff);
  assert.equal(rd(cs, 0x28), 0xffffffff);
  assert.equal(rd(cs, 0x2c), 0xffffffff);
  wr(cs, 0x24, 0x0ff00000); // base xx_0000_0000, limit xx_0fff_ffff
  wr(cs, 0x28, 0x40);
  wr(cs, 0x2c, 0x40);
  assert.deepEqual(header.prefetchableWindow(), { base: 0x40_0000_0000n, limit: 0x40_0fff_ffffn });
  const narrow = bridge({ vendorId: 1, deviceId: 2, prefetchable: 32 }).cs;
  wr(narrow, 0x24, 0xffffffff);
  wr(narrow, 0x28, 0xffffffff);
  assert.equal(rd(narrow, 0x24), 0xfff0fff0, "32-bit: low nibble 0");
  assert.equal(rd(narrow, 0x28), 0, "32-bit: no upper registers");
  const none = bridge({ vendorId: 1, deviceId: 2, prefetchable: false });
  wr(none.cs, 0x24, 0xffffffff);
  assert.equal(rd(none.cs, 0x24), 0);
  assert.equal(none.header.prefetchableWindow(), null);
});

test("I/O window: 16-bit, 32-bit with upper 16 bits, or not implemented (all zero)", () => {
  const { cs, header } = bridge();
  wr(cs, 0x1c, 0xffff, 2);
  wr(cs, 0x30, 0xffffffff);
  assert.equal(rd(cs, 0x1c, 2), 0xf0f0, "16-bit addressing: low nibbles 0");
  assert.equal(rd(cs, 0x30), 0, "no upper 16 bits");
  wr(cs, 0x1c, 0xe0d0, 2);
  assert.deepEqual(header.ioWindow(), { base: 0xd000n, limit: 0xefffn });
  const wide = bridge({ vendorId: 1, deviceId: 2, io: 32 });
  assert.equal(rd(wide.cs, 0x1c, 2), 0x0101);
  wr(wide.cs, 0x1c, 0x1010, 2);
  wr(wide.cs, 0x30, 0x00020001);
  assert.deepEqual(wide.header.ioWindow(), { base: 0x1_1000n, limit: 0x2_1fffn });
  const none = bridge({ vendorId: 1, deviceId: 2, io: false });
  wr(none.cs, 0x1c, 0xffff, 2);
  assert.equal(rd(none.cs, 0x1c, 2), 0);
  assert.equal(none.header.ioWindow(), null);
});

test("Secondary Status bits are RW1C and Bridge Control implements Secondary Bus Reset", () => {
  const { cs, header } = bridge();
  header.secondaryStatus.setBits(0xf900);
  wr(cs, 0x1e, 0x0800, 2);
  assert.equal(rd(cs, 0x1e, 2), 0xf100);
  wr(cs, 0x1c, 0xffff0000); // I/O base/limit lanes carry 0; status lanes clear everything
  assert.equal(rd(cs, 0x1e, 2), 0);
  wr(cs, 0x3e, 0xffff, 2);
  assert.equal(rd(cs, 0x3e, 2), 0x005f, "Parity, SERR#, ISA, VGA, VGA 16-bit, Secondary Bus Reset");
  assert.equal(header.secondaryBusReset.get(), 1);
  wr(cs, 0x3e, 0x0000, 2);
  assert.equal(header.secondaryBusReset.get(), 0);
});

// ---- capabilities ----------------------------------------------------------------------

test("the capability list from 0x34 reaches every capability and terminates", () => {
  const { cs } = endpoint();
  assert.equal(rd(cs, 0x06, 2) & 0x10, 0, "no capabilities: Capabilities List clear");
  assert.equal(rd(cs, 0x34, 1), 0);
  addPowerManagement(cs);
  addMsi(cs, { vectors: 8, perVectorMasking: true });
  addExpress(cs, { portType: PortType.Endpoint, link: LINK });
  assert.equal(rd(cs, 0x06, 2) & 0x10, 0x10);
  const walked: [number, number][] = [];
  let at = rd(cs, 0x34, 1);
  for (let hops = 0; at !== 0; hops++) {
    assert.ok(hops < 48, "the list loops");
    assert.equal(at % 4, 0, "DWORD-aligned");
    assert.ok(at >= 0x40 && at < 0x100);
    const header = rd(cs, at, 2);
    walked.push([header & 0xff, at]);
    at = header >> 8;
  }
  assert.deepEqual(walked.map(([id]) => id), [0x01, 0x05, 0x10]);
  assert.deepEqual(listCapabilities(cs), walked.map(([id, offset]) => ({ id, offset })));
  assert.equal(findCapability(cs, 0x10), walked[2][1]);
  // the structures do not overlap: PM is 8 bytes, 64-bit MSI with masking 24
  assert.ok(walked[1][1] >= walked[0][1] + 8 && walked[2][1] >= walked[1][1] + 24);
});

test("a capability list that loops is walked once without hanging", () => {
  const { cs } = endpoint();
  const pm = addPowerManagement(cs);
  const msi = addMsi(cs);
  cs.poke(msi.offset + 1, 1, pm.offset);
  assert.deepEqual(listCapabilities(cs).map((c) => c.offset), [pm.offset, msi.offset]);
});

test("Power Management version 3: D0/D3hot writable, unsupported D1/D2 ignored, PME_Status RW1C", () => {
  const { cs } = endpoint();
  const pm = addPowerManagement(cs, { pmeSupport: 0b11001, d1: false, d2: true });
  assert.equal(rd(cs, pm.offset + 2, 2), 0b11001_1_0_000_0_0_0_011 /* PME D0/D3hot/D3cold, D2, version 3 */);
  wr(cs, pm.offset + 4, 3, 2);
  assert.equal(pm.powerState.get(), 3);
  wr(cs, pm.offset + 4, 1, 2);
  assert.equal(pm.powerState.get(), 3, "D1 is not supported: the write is discarded");
  wr(cs, pm.offset + 4, 2, 2);
  assert.equal(pm.powerState.get(), 2);
  wr(cs, pm.offset + 4, 0x0100, 2);
  assert.equal(rd(cs, pm.offset + 4, 2), 0x0108, "D0, No_Soft_Reset, PME_En");
  pm.pmeStatus.set(1);
  wr(cs, pm.offset + 4, 0x0100, 2);
  assert.equal(pm.pmeStatus.get(), 1);
  wr(cs, pm.offset + 4, 0x8100, 2);
  assert.equal(pm.pmeStatus.get(), 0);
});

test("MSI with 32-bit addresses: Message Data at +8, Mask and Pending at +C and +10", () => {
  const { cs } = endpoint();
  const msi = addMsi(cs, { vectors: 4, address64: false, perVectorMasking: true });
  const at = msi.offset;
  assert.equal(rd(cs, at, 1), 0x05);
  assert.equal(rd(cs, at + 2, 2), 0x0104, "Per-vector Masking, not 64-bit, Multiple Message Capable 010b (4)");
  wr(cs, at + 2, 0xffff, 2);
  assert.equal(rd(cs, at + 2, 2), 0x0175, "MSI Enable and Multiple Message Enable are writable");
  wr(cs, at + 4, 0xffffffff);
  assert.equal(rd(cs, at + 4), 0xfffffffc, "address is DWORD aligned");
  wr(cs, at + 8, 0xffffffff);
  assert.equal(rd(cs, at + 8), 0x0000ffff, "16-bit Message Data, then reserved");
  wr(cs, at + 0xc, 0xffffffff);
  assert.equal(rd(cs, at + 0xc), 0x0000000f, "one mask bit per capable vector");
  wr(cs, at + 0x10, 0xffffffff);
  assert.equal(rd(cs, at + 0x10), 0, "Pending Bits are read-only");
  assert.equal(msi.addressHigh, undefined);
});

test("MSI with 64-bit addresses: upper address at +8, Message Data at +C, Mask and Pending at +10 and +14", () => {
  const { cs } = endpoint();
  const msi = addMsi(cs, { vectors: 2, perVectorMasking: true });
  const at = msi.offset;
  assert.equal(rd(cs, at + 2, 2), 0x0182, "Per-vector Masking, 64-bit, 2 vectors");
  wr(cs, at + 4, 0xfee00000);
  wr(cs, at + 8, 0x00000001);
  wr(cs, at + 0xc, 0x4020, 2);
  wr(cs, at + 0x10, 0xffffffff);
  assert.equal(rd(cs, at + 8), 1);
  assert.equal(rd(cs, at + 0xc), 0x4020);
  assert.equal(rd(cs, at + 0x10), 0b11);
  assert.equal(msi.address(), 0x1_fee0_0000n);
  const plain = addMsi(endpoint().cs);
  assert.equal(rd(plain.control.space, plain.offset + 2, 2), 0x0080, "no masking: 64-bit, one vector");
});

test("MSI signalling: disabled sends nothing, a masked vector goes pending and is sent when unmasked", () => {
  const { cs } = endpoint();
  const msi = addMsi(cs, { vectors: 4, perVectorMasking: true });
  assert.equal(msi.signal(0), null);
  wr(cs, msi.offset + 4, 0xfee00000);
  wr(cs, msi.offset + 0xc, 0x4020, 2);
  wr(cs, msi.offset + 2, 0x0011, 2); // enable, 2 vectors allocated
  assert.deepEqual(msi.signal(1), { address: 0xfee00000n, data: 0x4021 });
  assert.equal(msi.signal(2), null, "vector not allocated");
  wr(cs, msi.offset + 0x10, 0b10);
  assert.equal(msi.signal(1), null);
  assert.equal(rd(cs, msi.offset + 0x14), 0b10, "Pending bit set");
  assert.deepEqual(msi.releasePending(), []);
  wr(cs, msi.offset + 0x10, 0);
  assert.deepEqual(msi.releasePending(), [{ address: 0xfee00000n, data: 0x4021 }]);
  assert.equal(rd(cs, msi.offset + 0x14), 0);
});

function portFunction(options: Omit<ExpressOptions, "link"> & { link?: ExpressOptions["link"] }) {
  const cs = new ConfigSpace();
  if (options.portType === PortType.Endpoint) defineType0Header(cs, { vendorId: 1, deviceId: 2, classCode: 0x028000 });
  else defineType1Header(cs, { vendorId: 1, deviceId: 2 });
  const pcie = addExpress(cs, { link: LINK, ...options });
  return { cs, pcie, at: pcie.offset };
}

test("the PCI Express capability is version 2 with the right Device/Port Type and registers for each port type", () => {
  const cases = [
    { type: PortType.Endpoint, flags: 0x0002, slot: false, root: false, ct: 0x1f },
    { type: PortType.RootPort, flags: 0x0142, slot: true, root: true, ct: 0x1f },
    { type: PortType.UpstreamPort, flags: 0x0052, slot: false, root: false, ct: 0 },
    { type: PortType.DownstreamPort, flags: 0x0162, slot: true, root: false, ct: 0 },
  ];
  for (const c of cases) {
    const { cs, at } = portFunction({ portType: c.type, slot: c.slot ? HOTPLUG_SLOT : undefined, crsVisibility: c.root || undefined });
    const name = PortType[c.type];
    assert.equal(rd(cs, at, 1), 0x10, name);
    assert.equal(rd(cs, at + 0x02, 2), c.flags, `${name}: version 2, type, Slot Implemented`);
    assert.equal(rd(cs, at + 0x04) & 0x8007, 0x8001, `${name}: Role-Based Error Reporting, MPS supported 256`);
    assert.equal(rd(cs, at + 0x0c) & 0x3ff, 0x083, `${name}: Link Cap 8 GT/s x8`);
    assert.equal(rd(cs, at + 0x12, 2) & 0x3ff, 0x083, `${name}: Link Status 8 GT/s x8`);
    assert.equal(rd(cs, at + 0x14) !== 0, c.slot, `${name}: Slot Capabilities`);
    wr(cs, at + 0x1c, 0xffff, 2);
    assert.equal(rd(cs, at + 0x1c, 2), c.root ? 0x1f : 0, `${name}: Root Control`);
    assert.equal(rd(cs, at + 0x1e, 2), c.root ? 1 : 0, `${name}: Root Capabilities CRS Visibility`);
    assert.equal(rd(cs, at + 0x24) & 0x1f, c.ct, `${name}: Completion Timeout Ranges/Disable apply to endpoints and root ports`);
    assert.equal(rd(cs, at + 0x2c), 0b1110, `${name}: Supported Link Speeds 2.5, 5, 8 GT/s`);
    assert.equal(rd(cs, at + 0x30, 2), 3, `${name}: Target Link Speed`);
    for (const o of [0x34, 0x38]) assert.equal(rd(cs, at + o), 0, `${name}: Slot 2 registers reserved`);
    assert.equal(listCapabilities(cs).at(-1)!.offset, at);
    assert.equal(rd(cs, at + 1, 1), 0, "last in the list");
  }
});

test("Device Control takes Max Payload Size and Max Read Request Size; Device Status error bits are RW1C", () => {
  const { cs, pcie, at } = portFunction({ portType: PortType.Endpoint, flr: true });
  assert.equal(rd(cs, at + 0x08, 2), 0x2810, "Relaxed Ordering, No Snoop, MPS 128, MRRS 512");
  wr(cs, at + 0x08, 0xffff, 2);
  assert.equal(rd(cs, at + 0x08, 2), 0x79ff, "Initiate FLR reads 0; Phantom Functions and Aux Power hardwired");
  wr(cs, at + 0x08, 0x5020, 2);
  assert.equal(pcie.device.maxPayloadSize.get(), 1);
  assert.equal(pcie.device.maxReadRequestSize.get(), 5);
  pcie.registers.deviceStatus.setBits(0x2f);
  wr(cs, at + 0x0a, 0x0009, 2);
  assert.equal(rd(cs, at + 0x0a, 2), 0x26, "Correctable and UR cleared; Transactions Pending is read-only");
  assert.equal(rd(cs, at + 0x04) >>> 28 & 1, 1, "FLR capable");
});

test("Device Capabilities 2 / Control 2: completion timeout ranges, value defaults to 50 us-50 ms and is writable, disable", () => {
  const ep = portFunction({ portType: PortType.Endpoint, completionTimeoutRanges: CompletionTimeoutRanges.AB });
  assert.equal(rd(ep.cs, ep.at + 0x24) & 0x1f, 0x13, "ranges A and B, disable supported");
  assert.equal(rd(ep.cs, ep.at + 0x28, 2), 0, "default 0: 50 us to 50 ms");
  wr(ep.cs, ep.at + 0x28, 0xffff, 2);
  assert.equal(rd(ep.cs, ep.at + 0x28, 2), 0x1f);
  wr(ep.cs, ep.at + 0x28, 0x0006, 2);
  assert.equal(ep.pcie.device.completionTimeoutValue.get(), 6);
  assert.equal(ep.pcie.device.completionTimeoutDisable.get(), 0);
  const none = portFunction({ portType: PortType.Endpoint, completionTimeoutRanges: CompletionTimeoutRanges.NotSupported, completionTimeoutDisable: false });
  wr(none.cs, none.at + 0x28, 0xffff, 2);
  assert.equal(rd(none.cs, none.at + 0x28, 2), 0, "hardwired when not supported");
  const ds = portFunction({ portType: PortType.DownstreamPort, ariForwarding: true });
  wr(ds.cs, ds.at + 0x28, 0xffff, 2);
  assert.equal(rd(ds.cs, ds.at + 0x28, 2), 0x20, "a switch port only has ARI Forwarding Enable");
  assert.throws(() => portFunction({ portType: PortType.UpstreamPort, completionTimeoutRanges: CompletionTimeoutRanges.A }), /does not apply/);
});

test("Link Capabilities reports DL Link Active; Link Status DL Link Active is set only from the hardware side", () => {
  const ds = portFunction({ portType: PortType.DownstreamPort, slot: HOTPLUG_SLOT, link: { ...LINK, portNumber: 3, surpriseDown: true } });
  const cap = rd(ds.cs, ds.at + 0x0c);
  assert.equal((cap >>> 20) & 1, 1, "Data Link Layer Link Active Reporting Capable");
  assert.equal((cap >>> 19) & 1, 1, "Surprise Down Error Reporting Capable");
  assert.equal((cap >>> 22) & 1, 1, "ASPM Optionality Compliance");
  assert.equal(cap >>> 24, 3, "Port Number");
  wr(ds.cs, ds.at + 0x12, 0xffff, 2);
  assert.equal(rd(ds.cs, ds.at + 0x12, 2) & 0x2000, 0, "software cannot set DL Link Active");
  ds.pcie.link.dlLinkActive.set(1);
  assert.equal(rd(ds.cs, ds.at + 0x12, 2), 0x2083);
  wr(ds.cs, ds.at + 0x12, 0x0000, 2);
  assert.equal(rd(ds.cs, ds.at + 0x12, 2), 0x2083, "nor clear it");
  ds.pcie.link.negotiatedWidth.set(4);
  ds.pcie.link.currentSpeed.set(1);
  assert.equal(rd(ds.cs, ds.at + 0x12, 2), 0x2041);
  wr(ds.cs, ds.at + 0x10, 0xffff, 2);
  assert.equal(rd(ds.cs, ds.at + 0x10, 2), 0x00d3, "ASPM, Link Disable, Common Clock, Extended Synch; Retrain Link reads 0");
  const up = portFunction({ portType: PortType.UpstreamPort });
  assert.equal((rd(up.cs, up.at + 0x0c) >>> 20) & 1, 0, "an Upstream Port does not report DL Link Active");
  assert.throws(() => up.pcie.link.dlLinkActive.set(1), /not capable/);
  wr(up.cs, up.at + 0x10, 0xffff, 2);
  assert.equal(rd(up.cs, up.at + 0x10, 2), 0x00c3, "no Link Disable or RCB on an Upstream Port");
});

test("Slot Capabilities carry every hot-plug feature bit and the physical slot number", () => {
  const ds = portFunction({ portType: PortType.DownstreamPort, slot: { ...HOTPLUG_SLOT, noCommandCompleted: true, powerLimit: { value: 25, scale: 0 } } });
  const cap = rd(ds.cs, ds.at + 0x14);
  assert.equal(cap & 0x7f, 0x7f, "Attn Button, Power Controller, MRL Sensor, Attn Ind, Power Ind, Surprise, Hot-Plug Capable");
  assert.equal((cap >>> 7) & 0xff, 25, "Slot Power Limit Value");
  assert.equal((cap >>> 18) & 1, 1, "No Command Completed Support");
  assert.equal(cap >>> 19, 9, "Physical Slot Number");
  wr(ds.cs, ds.at + 0x14, 0);
  assert.equal(rd(ds.cs, ds.at + 0x14), cap, "read-only");
  const plain = portFunction({ portType: PortType.DownstreamPort, slot: { physicalSlot: 1, hotPlugCapable: true } });
  assert.equal(rd(plain.cs, plain.at + 0x14), (1 << 19) | 0x40);
});

test("Slot Control: only the enables and controls of present features are writable", () => {
  const full = portFunction({ portType: PortType.DownstreamPort, slot: HOTPLUG_SLOT });
  assert.equal(rd(full.cs, full.at + 0x18, 2), 0x01c0, "Attention Indicator off, Power Indicator on, power on");
  wr(full.cs, full.at + 0x18, 0xffff, 2);
  assert.equal(rd(full.cs, full.at + 0x18, 2), 0x17ff, "all enables, indicators, power; the interlock control reads 0");
  assert.equal(full.pcie.slot!.powerIndicator.get(), 3);
  const bare = portFunction({ portType: PortType.DownstreamPort, slot: { physicalSlot: 1, hotPlugCapable: true, noCommandCompleted: true }, link: { ...LINK, dlActiveReporting: false } });
  wr(bare.cs, bare.at + 0x18, 0xffff, 2);
  assert.equal(rd(bare.cs, bare.at + 0x18, 2), 0x0028, "Presence Detect Changed Enable and Hot-Plug Interrupt Enable only");
});

test("Slot Status: change bits are RW1C, state bits are read-only and set from the hardware side", () => {
  const ds = portFunction({ portType: PortType.DownstreamPort, slot: HOTPLUG_SLOT });
  const slot = ds.pcie.slot!;
  slot.presenceDetectState.set(1);
  slot.mrlSensorState.set(1);
  slot.presenceDetectChanged.set(1);
  slot.dlStateChanged.set(1);
  slot.commandCompleted.set(1);
  slot.attentionButtonPressed.set(1);
  assert.equal(rd(ds.cs, ds.at + 0x1a, 2), 0x0179);
  wr(ds.cs, ds.at + 0x1a, 0x0000, 2);
  assert.equal(rd(ds.cs, ds.at + 0x1a, 2), 0x0179, "writing 0 clears nothing");
  wr(ds.cs, ds.at + 0x1a, 0x0008, 2);
  assert.equal(rd(ds.cs, ds.at + 0x1a, 2), 0x0171, "Presence Detect Changed cleared alone");
  wr(ds.cs, ds.at + 0x1a, 0xffff, 2);
  assert.equal(rd(ds.cs, ds.at + 0x1a, 2), 0x0060, "Presence Detect State and MRL Sensor State stay");
  slot.presenceDetectState.set(0);
  assert.equal(rd(ds.cs, ds.at + 0x1a, 2), 0x0020);
  assert.throws(() => portFunction({ portType: PortType.DownstreamPort, slot: { physicalSlot: 1 } }).pcie.slot!.mrlSensorState.set(1), /no MRL sensor/);
  const noSlot = portFunction({ portType: PortType.DownstreamPort });
  assert.equal(rd(noSlot.cs, noSlot.at + 0x1a, 2), 0x0040, "a Downstream Port without a slot hardwires Presence Detect State to 1");
  assert.equal(noSlot.pcie.slot, undefined);
});

test("Root Status: PME Status is RW1C, requester ID and PME Pending are read-only", () => {
  const rp = portFunction({ portType: PortType.RootPort, slot: HOTPLUG_SLOT });
  rp.pcie.root!.pmeRequesterId.set(0x0300);
  rp.pcie.root!.pmeStatus.set(1);
  rp.pcie.root!.pmePending.set(1);
  wr(rp.cs, rp.at + 0x20, 0x0000ffff);
  assert.equal(rd(rp.cs, rp.at + 0x20), 0x00030300);
  wr(rp.cs, rp.at + 0x20, 0x00010000);
  assert.equal(rd(rp.cs, rp.at + 0x20), 0x00020300);
});

test("extended space: 0x100 reads 0 without extended capabilities; a Device Serial Number there ends the list", () => {
  const { cs } = endpoint();
  addExpress(cs, { portType: PortType.Endpoint, link: LINK });
  for (let o = 0x100; o < 0x1000; o += 4) assert.equal(rd(cs, o), 0, `0x${o.toString(16)}`);
  assert.deepEqual(listExtendedCapabilities(cs), []);
  addDeviceSerialNumber(cs, 0x0011_2233_4455_6677n);
  assert.equal(rd(cs, 0x100), 0x0001_0003, "ID 3, version 1, next 0");
  assert.equal(rd(cs, 0x104), 0x44556677);
  assert.equal(rd(cs, 0x108), 0x00112233);
  assert.deepEqual(listExtendedCapabilities(cs), [{ id: 3, version: 1, offset: 0x100 }]);
  assert.throws(() => addDeviceSerialNumber(endpoint(256).cs, 1n), /4096/);
});
