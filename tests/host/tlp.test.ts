// The TLP codec against byte vectors written out from the PCI Express Base Specification's
// header layouts, round trips of every kind, and the receiver's malformed-TLP rules.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  encodeTlp, decodeTlp, isMalformed, readCompletionFields, routingId, tlpClass, tlpBytes, dataBytes, headerBytes,
  CplStatus, MsgRouting, TlpClass, DEFAULT_COMMON, type Tlp,
} from "../../board/pcie/tlp.ts";

const hex = (s: string) => Uint8Array.from(s.replace(/[\s|]/g, "").match(/../g)!.map((x) => parseInt(x, 16)));
const DATA = hex("11223344 55667788");

const vectors: [string, Tlp, string][] = [
  ["MRd, 32-bit address, 1 DW",
    { kind: "MRd", ...DEFAULT_COMMON, requester: 0x0100, tag: 0x0a, firstBe: 0xf, lastBe: 0, address: 0xfedcba98, readDw: 1 },
    "00000001 01000a0f fedcba98"],
  ["MRd, 64-bit address, 32 DW, TC 3, relaxed ordering",
    { kind: "MRd", ...DEFAULT_COMMON, tc: 3, attr: { relaxedOrdering: true, noSnoop: false, idBasedOrdering: false }, requester: 0x0a08, tag: 0x7f, firstBe: 0xf, lastBe: 0xf, address: 0x1_0000_1000, readDw: 32 },
    "20302020 0a087fff 00000001 00001000"],
  ["MWr, 64-bit address, 2 DW",
    { kind: "MWr", ...DEFAULT_COMMON, requester: 0x0210, tag: 0x05, firstBe: 0xf, lastBe: 0xf, address: 0x1_2345_6780, data: DATA },
    "60000002 021005ff 00000001 23456780 11223344 55667788"],
  ["MWr as MSI: 32-bit address 0xfee00000, one DW of message data",
    { kind: "MWr", ...DEFAULT_COMMON, requester: 0x0300, tag: 0, firstBe: 0xf, lastBe: 0, address: 0xfee00000, data: hex("21400000") },
    "40000001 0300000f fee00000 21400000"],
  ["MRdLk, 32-bit",
    { kind: "MRdLk", ...DEFAULT_COMMON, requester: 0x0001, tag: 1, firstBe: 0x3, lastBe: 0, address: 0x1000, readDw: 1 },
    "01000001 00010103 00001000"],
  ["IORd",
    { kind: "IORd", ...DEFAULT_COMMON, requester: 0x0008, tag: 2, firstBe: 0x1, address: 0x3f8 },
    "02000001 00080201 000003f8"],
  ["IOWr",
    { kind: "IOWr", ...DEFAULT_COMMON, requester: 0x0008, tag: 3, firstBe: 0x1, address: 0x3f8, data: hex("41000000") },
    "42000001 00080301 000003f8 41000000"],
  ["CfgRd0: bus 3, device 2, function 1, register 4 (offset 0x10)",
    { kind: "CfgRd0", ...DEFAULT_COMMON, requester: 0x0000, tag: 1, firstBe: 0xf, bus: 3, device: 2, fn: 1, register: 4 },
    "04000001 0000010f 03110010"],
  ["CfgWr0 to extended register 0x100 (register 64)",
    { kind: "CfgWr0", ...DEFAULT_COMMON, requester: 0x0000, tag: 2, firstBe: 0x3, bus: 1, device: 0, fn: 0, register: 64, data: hex("ffff0000") },
    "44000001 00000203 01000100 ffff0000"],
  ["CfgRd1 to bus 5",
    { kind: "CfgRd1", ...DEFAULT_COMMON, requester: 0x0000, tag: 3, firstBe: 0xf, bus: 5, device: 0, fn: 0, register: 0 },
    "05000001 0000030f 05000000"],
  ["CfgWr1",
    { kind: "CfgWr1", ...DEFAULT_COMMON, requester: 0x0000, tag: 4, firstBe: 0x1, bus: 5, device: 31, fn: 7, register: 1023, data: hex("01000000") },
    "45000001 00000401 05ff0ffc 01000000"],
  ["CplD: successful, 4 bytes left, lower address 0x18",
    { kind: "CplD", ...DEFAULT_COMMON, completer: 0x0300, status: CplStatus.SuccessfulCompletion, bcm: false, byteCount: 4, requester: 0x0100, tag: 0x0a, lowerAddress: 0x18, data: hex("deadbeef") },
    "4a000001 03000004 01000a18 deadbeef"],
  ["Cpl: Unsupported Request",
    { kind: "Cpl", ...DEFAULT_COMMON, completer: 0x0300, status: CplStatus.UnsupportedRequest, bcm: false, byteCount: 4, requester: 0x0100, tag: 0x0b, lowerAddress: 0 },
    "0a000000 03002004 01000b00"],
  ["Cpl: Completer Abort",
    { kind: "Cpl", ...DEFAULT_COMMON, completer: 0x0300, status: CplStatus.CompleterAbort, bcm: false, byteCount: 4, requester: 0x0100, tag: 0x0c, lowerAddress: 0 },
    "0a000000 03008004 01000c00"],
  ["Cpl: Configuration Request Retry Status",
    { kind: "Cpl", ...DEFAULT_COMMON, completer: 0x0500, status: CplStatus.ConfigRequestRetry, bcm: false, byteCount: 4, requester: 0x0000, tag: 1, lowerAddress: 0 },
    "0a000000 05004004 00000100"],
  ["CplD with BCM and a 4096-byte Byte Count (encoded 0)",
    { kind: "CplD", ...DEFAULT_COMMON, completer: 0x0300, status: CplStatus.SuccessfulCompletion, bcm: true, byteCount: 0, requester: 0x0100, tag: 1, lowerAddress: 0x40, data: hex("00000000") },
    "4a000001 03001000 01000140 00000000"],
  ["CplLk and CplDLk",
    { kind: "CplDLk", ...DEFAULT_COMMON, completer: 1, status: CplStatus.SuccessfulCompletion, bcm: false, byteCount: 2, requester: 2, tag: 3, lowerAddress: 0, data: hex("abcd0000") },
    "4b000001 00010002 00020300 abcd0000"],
  ["Msg Assert_INTA, local",
    { kind: "Msg", ...DEFAULT_COMMON, routing: MsgRouting.Local, requester: 0x0300, tag: 0, code: 0x20, specific: new Uint8Array(8) },
    "34000000 03000020 00000000 00000000"],
  ["MsgD vendor-defined type 1, routed by ID",
    { kind: "MsgD", ...DEFAULT_COMMON, routing: MsgRouting.ById, requester: 0x0300, tag: 0, code: 0x7f, specific: hex("01001ab4 00000000"), data: hex("cafef00d") },
    "72000001 0300007f 01001ab4 00000000 cafef00d"],
  ["10-bit tag, no snoop, poisoned, ID-based ordering, digest",
    { kind: "MWr", ...DEFAULT_COMMON, ep: true, td: true, attr: { relaxedOrdering: false, noSnoop: true, idBasedOrdering: true }, requester: 1, tag: 0x3ff, firstBe: 0xf, lastBe: 0, address: 0x2000, data: hex("01020304") },
    "408cd001 0001ff0f 00002000 01020304 00000000"],
];

for (const [name, tlp, bytes] of vectors) {
  test(`spec vector: ${name}`, () => {
    const encoded = encodeTlp(tlp);
    assert.equal(Buffer.from(encoded).toString("hex"), Buffer.from(hex(bytes)).toString("hex"));
    const decoded = decodeTlp(encoded);
    assert.ok(!isMalformed(decoded), isMalformed(decoded) ? decoded.malformed : "");
    assert.deepEqual(decoded, tlp);
    assert.equal(tlpBytes(encoded), encoded.length);
  });
}

test("fast accessors agree with the structured decoder", () => {
  const classes: Record<string, TlpClass> = {
    MRd: TlpClass.NonPosted, MRdLk: TlpClass.NonPosted, MWr: TlpClass.Posted, IORd: TlpClass.NonPosted, IOWr: TlpClass.NonPosted,
    CfgRd0: TlpClass.NonPosted, CfgWr0: TlpClass.NonPosted, CfgRd1: TlpClass.NonPosted, CfgWr1: TlpClass.NonPosted,
    Cpl: TlpClass.Completion, CplD: TlpClass.Completion, CplLk: TlpClass.Completion, CplDLk: TlpClass.Completion, Msg: TlpClass.Posted, MsgD: TlpClass.Posted,
  };
  for (const [, tlp] of vectors) {
    const bytes = encodeTlp(tlp);
    assert.equal(tlpClass(bytes), classes[tlp.kind], tlp.kind);
    assert.equal(dataBytes(bytes), "data" in tlp && tlp.data ? tlp.data.length : 0);
    assert.equal(headerBytes(bytes), tlp.kind.startsWith("Msg") || ("address" in tlp && tlp.address >= 2 ** 32) ? 16 : 12);
  }
});

test("a routing ID packs bus, device and function", () => {
  assert.equal(routingId(0x12, 0x1f, 7), 0x12ff);
  assert.equal(routingId(1, 0, 0), 0x0100);
});

const malformed: [string, string, RegExp][] = [
  ["shorter than a header", "00000001 01000a0f", /shorter than a 3DW header/],
  ["TLP prefix", "80000000 00000000 00000000", /prefixes/],
  ["reserved Type", "03000001 01000a0f fedcba98", /reserved Fmt\/Type/],
  ["Cfg request in 4DW format", "24000001 0000010f 03110010 00000000", /reserved Fmt\/Type/],
  ["data shorter than Length", "40000002 0300000f fee00000 21400000", /Length 2 DW means 20/],
  ["digest flag without a digest", "40008001 0300000f fee00000 21400000", /and a digest means 20/],
  ["Last DW BE with Length 1", "00000001 01000aff fedcba98", /Last DW BE 1111 with Length 1 DW/],
  ["zero First DW BE with Length 2", "00000002 01000af0 fedcba98", /zero byte enable with Length 2 DW/],
  ["read crossing 4 KiB", "00000002 01000aff 00000ffc", /crosses a 4 KiB boundary/],
  ["address bits 1:0 set without hints", "00000001 01000a0f 00001002", /address bits 1:0/],
  ["configuration request of 2 DW", "44000002 000002ff 01000100 00000000 00000000", /configuration request with Length/],
  ["configuration request with TC 1", "04100001 0000010f 03110010", /configuration request with Length/],
  ["I/O request with relaxed ordering", "02002001 00080201 000003f8", /I\/O request/],
  ["reserved completion status", "0a000000 03006004 01000b00", /reserved Completion Status 011/],
  ["message in 3DW format", "14000000 03000020 00000000", /reserved Fmt\/Type/],
  ["message with reserved routing", "36000000 03000020 00000000 00000000", /reserved Fmt\/Type/],
];

for (const [name, bytes, reason] of malformed) {
  test(`malformed: ${name}`, () => {
    const result = decodeTlp(hex(bytes));
    assert.ok(isMalformed(result), `decoded as ${JSON.stringify(result)}`);
    assert.match(result.malformed, reason);
  });
}

test("decoding never throws on random bytes", () => {
  let x = 7;
  for (let i = 0; i < 20_000; i++) {
    const length = (x = (x * 1103515245 + 12345) >>> 0) % 64;
    const bytes = Uint8Array.from({ length }, () => (x = (x * 1103515245 + 12345) >>> 0) >>> 24);
    const result = decodeTlp(bytes);
    if (!isMalformed(result)) assert.deepEqual(encodeTlp(result), bytes, "what decodes re-encodes to the same bytes");
  }
});

test("encoding refuses data it cannot carry", () => {
  const base = { kind: "MWr" as const, ...DEFAULT_COMMON, requester: 0, tag: 0, firstBe: 0xf, lastBe: 0, address: 0 };
  assert.throws(() => encodeTlp({ ...base, data: new Uint8Array(3) }), RangeError);
  assert.throws(() => encodeTlp({ ...base, data: new Uint8Array(4100) }), RangeError);
  assert.throws(() => encodeTlp({ ...base, data: new Uint8Array(0) }), RangeError);
  assert.throws(() => encodeTlp({ ...base, kind: "MRd", data: new Uint8Array(4) }), /has no data/);
});

test("Byte Count and Lower Address of a read's completion follow the byte enables (Table 2-39)", () => {
  const cases: [number, number, number, number, number][] = [
    // firstBe, lastBe, DW, byte count, lower address offset
    [0b1111, 0, 1, 4, 0], [0b1001, 0, 1, 4, 0], [0b0111, 0, 1, 3, 0], [0b1110, 0, 1, 3, 1], [0b0011, 0, 1, 2, 0],
    [0b0110, 0, 1, 2, 1], [0b1100, 0, 1, 2, 2], [0b0001, 0, 1, 1, 0], [0b1000, 0, 1, 1, 3], [0b0000, 0, 1, 1, 0],
    [0b1111, 0b1111, 2, 8, 0], [0b1110, 0b0111, 2, 6, 1], [0b1000, 0b0001, 3, 6, 3], [0b1111, 0b1111, 1024, 4096, 0],
  ];
  for (const [firstBe, lastBe, readDw, byteCount, offset] of cases) {
    assert.deepEqual(readCompletionFields({ address: 0x1000_0040, firstBe, lastBe, readDw }), { byteCount: byteCount & 0xfff, lowerAddress: (0x40 + offset) & 0x7f },
      `BE ${firstBe.toString(2)}/${lastBe.toString(2)} × ${readDw}`);
  }
});
