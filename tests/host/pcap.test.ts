import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  PcapWriter, readPcap, PCAP_SNAPLEN, LINKTYPE_ETHERNET, LINKTYPE_ETHERNET_FCS4, GLOBAL_HEADER_SIZE, RECORD_HEADER_SIZE,
} from "../../tools/sim/pcap.ts";
import { encodeFrame, etherTypeOf, fcsValid, vlanOf, maxFrameSize, ETHERTYPE_IOV, type VlanTag } from "../../board/ethernet/frame.ts";

const dir = mkdtempSync(join(tmpdir(), "iov-pcap-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const tempPath = () => join(dir, `${files++}.pcap`);

const dst = Uint8Array.of(0x02, 0x10, 0x10, 0x00, 0x00, 0x02);
const src = Uint8Array.of(0x02, 0x10, 0x10, 0x00, 0x00, 0x01);
function frame(payloadLength: number, vlan: VlanTag | null = null, fill = 0x5a): Uint8Array {
  return encodeFrame({ dst, src, vlan, etherType: ETHERTYPE_IOV, payload: new Uint8Array(payloadLength).fill(fill) });
}

/** Writes `records` to a new file and returns its path and bytes. */
function capture(records: [number, Uint8Array][]): { path: string; bytes: Buffer } {
  const path = tempPath();
  const writer = new PcapWriter(path);
  for (const [timeNs, bytes] of records) writer.write(timeNs, bytes);
  writer.close();
  return { path, bytes: readFileSync(path) };
}

/** A valid two-frame file, for the malformed-file cases to damage. */
function sample(): Buffer {
  return Buffer.from(capture([[5, frame(46)], [6, frame(100)]]).bytes);
}

test("frames read back byte-identical with nanosecond timestamps, Ethernet link type and a 4-byte FCS", () => {
  const records: [number, Uint8Array][] = [
    [0, frame(3)],
    [999_999_999, frame(46, { pcp: 3, dei: 0, vid: 7 })],
    [1_000_000_000, frame(1500)],
    [1_000_000_001, frame(200, { pcp: 7, dei: 1, vid: 4094 })],
    [Number.MAX_SAFE_INTEGER, frame(64)],
  ];
  const file = readPcap(capture(records).bytes);
  assert.equal(file.linkType, LINKTYPE_ETHERNET);
  assert.equal(file.fcsLength, 4);
  assert.equal(file.snaplen, PCAP_SNAPLEN);
  assert.equal(file.nanosecond, true);
  assert.deepEqual(file.records, records.map(([timeNs, bytes]) => ({ timeNs, frame: bytes, origLength: bytes.length })));
});

test("the global header is the nanosecond magic, version 2.4, zone 0, sigfigs 0, snaplen 65535, link type 0x24000001", () => {
  const { bytes } = capture([]);
  assert.equal(bytes.length, GLOBAL_HEADER_SIZE);
  assert.deepEqual([...bytes], [
    0x4d, 0x3c, 0xb2, 0xa1, // 0xa1b23c4d little-endian: nanosecond timestamps
    2, 0, 4, 0, //             version 2.4
    0, 0, 0, 0, //             thiszone
    0, 0, 0, 0, //             sigfigs
    0xff, 0xff, 0, 0, //       snaplen 65535
    0x01, 0x00, 0x00, 0x24, // LINKTYPE_ETHERNET | LT_FCS_DATALINK_EXT(2)
  ]);
  assert.equal(LINKTYPE_ETHERNET_FCS4, 0x24000001);
  assert.deepEqual(readPcap(bytes).records, []);
});

test("a record header holds ts_sec, ts_nsec, incl_len and orig_len, little-endian", () => {
  const bytes = frame(46);
  const file = capture([[3_000_000_042, bytes]]).bytes;
  const view = new DataView(file.buffer, file.byteOffset + GLOBAL_HEADER_SIZE, RECORD_HEADER_SIZE);
  assert.deepEqual([0, 4, 8, 12].map((at) => view.getUint32(at, true)), [3, 42, 64, 64]);
  assert.deepEqual(file.subarray(GLOBAL_HEADER_SIZE + RECORD_HEADER_SIZE), Buffer.from(bytes));
});

test("a 9216-byte jumbo payload with an 802.1Q tag and FCS (9238 bytes) is stored whole", () => {
  const jumbo = frame(9216, { pcp: 0, dei: 0, vid: 100 });
  assert.equal(jumbo.length, maxFrameSize(9216, true));
  assert.ok(jumbo.length <= PCAP_SNAPLEN);
  const [record] = readPcap(capture([[1, jumbo]]).bytes).records;
  assert.equal(record.origLength, 9238);
  assert.deepEqual(record.frame, jumbo);
});

test("records spanning many 64 KiB write chunks, up to a snaplen-sized frame, arrive whole and in order", () => {
  const records: [number, Uint8Array][] = [];
  for (let i = 0; i < 300; i++) records.push([i * 1000, frame(i % 3 === 0 ? 9216 : 50 + i, null, i & 0xff)]);
  const biggest = new Uint8Array(PCAP_SNAPLEN).fill(0xc3);
  records.push([10_000_000, biggest], [10_000_001, frame(46)]);
  const { path, bytes } = capture(records);
  const expectedSize = GLOBAL_HEADER_SIZE + records.reduce((n, [, b]) => n + RECORD_HEADER_SIZE + b.length, 0);
  assert.equal(statSync(path).size, expectedSize);
  assert.deepEqual(readPcap(bytes).records.map((r) => [r.timeNs, r.frame]), records);
});

test("the writer refuses a frame above the snaplen, negative or fractional times, and writes after close", () => {
  const writer = new PcapWriter(tempPath());
  assert.throws(() => writer.write(0, new Uint8Array(PCAP_SNAPLEN + 1)), { name: "RangeError", message: /exceeds the snaplen 65535/ });
  assert.throws(() => writer.write(-1, frame(46)), { name: "RangeError", message: /not a non-negative integer/ });
  assert.throws(() => writer.write(1.5, frame(46)), { name: "RangeError", message: /not a non-negative integer/ });
  writer.close();
  writer.close();
  assert.throws(() => writer.write(0, frame(46)), /write after close/);
});

test("flush puts buffered records in the file before close", () => {
  const path = tempPath();
  const writer = new PcapWriter(path);
  assert.equal(statSync(path).size, GLOBAL_HEADER_SIZE);
  writer.write(7, frame(46));
  writer.flush();
  assert.equal(statSync(path).size, GLOBAL_HEADER_SIZE + RECORD_HEADER_SIZE + 64);
  writer.close();
});

test("readPcap also reads big-endian and microsecond files", () => {
  const bytes = frame(46);
  const file = Buffer.alloc(GLOBAL_HEADER_SIZE + RECORD_HEADER_SIZE + bytes.length);
  file.writeUInt32BE(0xa1b2c3d4, 0);
  file.writeUInt16BE(2, 4);
  file.writeUInt16BE(4, 6);
  file.writeUInt32BE(65535, 16);
  file.writeUInt32BE(1, 20);
  file.writeUInt32BE(2, 24);
  file.writeUInt32BE(500_000, 28);
  file.writeUInt32BE(bytes.length, 32);
  file.writeUInt32BE(bytes.length, 36);
  file.set(bytes, 40);
  const read = readPcap(file);
  assert.equal(read.nanosecond, false);
  assert.equal(read.linkType, 1);
  assert.equal(read.fcsLength, null);
  assert.deepEqual(read.records, [{ timeNs: 2_500_000_000, frame: bytes, origLength: 64 }]);
});

const malformed: [string, (file: Buffer) => Buffer, RegExp][] = [
  ["a file shorter than the global header", (f) => f.subarray(0, 23), /truncated global header: 23 of 24 bytes/],
  ["an empty file", () => Buffer.alloc(0), /truncated global header: 0 of 24 bytes/],
  ["a bad magic number", (f) => (f.writeUInt32LE(0x0a0d0d0a, 0), f), /bad magic 0x0a0d0d0a/],
  ["a pcapng file", () => Buffer.from("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000", "hex"), /bad magic 0x0a0d0d0a: not a classic pcap file/],
  ["an unknown major version", (f) => (f.writeUInt16LE(3, 4), f), /unsupported version 3\.4/],
  ["a record header cut short", (f) => f.subarray(0, 104 + 12), /truncated record header: record 1 at offset 104 has 12 of 16 bytes/],
  ["record data cut short", (f) => f.subarray(0, f.length - 1), /truncated record: record 1 at offset 104 has 117 of 118 bytes/],
  ["incl_len above the snaplen", (f) => (f.writeUInt32LE(63, 16), f), /incl_len 64 > snaplen 63: record 0 at offset 24/],
  ["incl_len above orig_len", (f) => (f.writeUInt32LE(63, 24 + 12), f), /incl_len 64 > orig_len 63: record 0 at offset 24/],
];
for (const [what, damage, message] of malformed) {
  test(`readPcap rejects ${what} with a message naming the fault`, () => {
    const original = sample();
    assert.equal(readPcap(original).records.length, 2);
    assert.throws(() => readPcap(damage(original)), (error: unknown) => error instanceof Error && message.test(error.message));
  });
}

// tshark is installed only by .ci/run; elsewhere this test is skipped.
const tshark = spawnSync("tshark", ["-v"], { encoding: "utf8" });
const tsharkSkip = tshark.error || tshark.status !== 0 ? "tshark not on PATH: install it (apt-get install tshark) to check the capture decodes in Wireshark" : false;

test("tshark decodes every frame with its EtherType, VLAN ID and FCS status, without warnings", { skip: tsharkSkip }, () => {
  const bad = frame(60, null, 7);
  bad[bad.length - 1] ^= 0xff;
  const frames = [
    frame(3),
    frame(200, { pcp: 5, dei: 0, vid: 100 }),
    bad,
    frame(1500, { pcp: 0, dei: 1, vid: 4094 }),
    frame(9216),
    frame(46, { pcp: 0, dei: 0, vid: 1 }),
  ];
  const { path } = capture(frames.map((bytes, i) => [i * 1_000_000_007, bytes]));
  const fields = ["frame.number", "frame.time_epoch", "eth.fcs.status", "eth.type", "vlan.etype", "vlan.id", "_ws.malformed", "_ws.expert"];
  const result = spawnSync("tshark", [
    "-r", path, "-n", "-o", "eth.check_fcs:TRUE", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
    ...fields.flatMap((f) => ["-e", f]),
  ], { encoding: "utf8", timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  // tshark warns on stderr when run as root; anything else there is a problem with the file.
  const stderr = result.stderr.split("\n").filter((line) => line && !/^Running as user "root"/.test(line));
  assert.deepEqual(stderr, []);

  const rows = result.stdout.trimEnd().split("\n").map((line) => line.split("|"));
  assert.equal(rows.length, frames.length);
  const status = (value: string) => ({ "1": "good", Good: "good", "0": "bad", Bad: "bad" })[value] ?? `other (${value})`;
  rows.forEach(([number, time, fcs, ethType, vlanType, vid, malformedMark, expert], i) => {
    const bytes = frames[i];
    assert.equal(Number(number), i + 1);
    const [seconds, fraction = ""] = time.split(".");
    assert.equal(BigInt(seconds) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0")), BigInt(i * 1_000_000_007), `frame ${i + 1} time`);
    assert.equal(Number(vlanType || ethType), etherTypeOf(bytes), `frame ${i + 1} EtherType`);
    assert.equal(Number(vid || 0), vlanOf(bytes), `frame ${i + 1} VLAN ID`);
    assert.equal(status(fcs), fcsValid(bytes) ? "good" : "bad", `frame ${i + 1} FCS status`);
    assert.equal(malformedMark, "", `frame ${i + 1} malformed`);
    if (fcsValid(bytes)) assert.equal(expert, "", `frame ${i + 1} expert info`);
    else assert.match(expert, /Bad checksum/);
  });
});
