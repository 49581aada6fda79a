import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import {
  encodeFrame, decodeFrame, writeFcs, fcsValid, vlanOf, etherTypeOf, payloadOffset, isTagged, isMulticast, macKey, formatMac,
  maxFrameSize, FrameError, ETHERTYPE_IOV, BROADCAST, MIN_FRAME, type EthernetFrame, type VlanTag,
} from "../../board/ethernet/frame.ts";
import { CardMac } from "../../board/ethernet/mac.ts";
import { FrameKind } from "../../board/tunnel/wire.ts";
import { Fabric } from "../../board/fabric.ts";
import { BOARD_ID, CardReg, FabricEventKind } from "../../board/map/registers.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";

const dst = Uint8Array.of(0x02, 0x10, 0x10, 0x00, 0x00, 0x02);
const src = Uint8Array.of(0x02, 0x10, 0x10, 0x00, 0x00, 0x01);
const bytesOf = (text: string) => new TextEncoder().encode(text);

function make(payload: Uint8Array, vlan: VlanTag | null = null, etherType = ETHERTYPE_IOV): EthernetFrame {
  return { dst, src, vlan, etherType, payload };
}

/** A frame of exactly `length` bytes with a valid FCS, tagged or not. */
function sized(length: number, tagged: boolean, vid = 5): Uint8Array {
  const bytes = new Uint8Array(length).fill(0x33);
  bytes.set(dst, 0);
  bytes.set(src, 6);
  if (tagged) bytes.set([0x81, 0x00, vid >> 8, vid & 0xff, 0x88, 0xb5], 12);
  else bytes.set([0x88, 0xb5], 12);
  writeFcs(bytes);
  return bytes;
}

test("the FCS is the CRC-32 check value 0xCBF43926 for \"123456789\", stored least significant byte first", () => {
  const bytes = new Uint8Array(13);
  bytes.set(bytesOf("123456789"));
  writeFcs(bytes);
  assert.deepEqual([...bytes.subarray(9)], [0x26, 0x39, 0xf4, 0xcb]);
  assert.ok(fcsValid(bytes));
});

test("the CRC-32 over a whole encoded frame, FCS included, is the 802.3 residue 0x2144DF1C", () => {
  for (const frame of [encodeFrame(make(bytesOf("x"))), encodeFrame(make(new Uint8Array(1500).fill(0xa5), { pcp: 6, dei: 1, vid: 300 }))]) {
    assert.equal(crc32(frame), 0x2144df1c);
  }
});

test("fcsValid is false for buffers shorter than an FCS and for any single flipped bit", () => {
  assert.equal(fcsValid(new Uint8Array(3)), false);
  const frame = encodeFrame(make(bytesOf("hello")));
  for (let bit = 0; bit < frame.length * 8; bit++) {
    const damaged = frame.slice();
    damaged[bit >> 3] ^= 1 << (bit & 7);
    assert.equal(fcsValid(damaged), false, `bit ${bit}`);
  }
});

test("a short untagged payload is zero-padded to the 64-byte minimum frame", () => {
  const frame = encodeFrame(make(Uint8Array.of(1, 2, 3)));
  assert.equal(frame.length, MIN_FRAME);
  assert.deepEqual([...frame.subarray(14, 17)], [1, 2, 3]);
  assert.ok(frame.subarray(17, 60).every((b) => b === 0));
  assert.ok(fcsValid(frame));
  assert.equal(encodeFrame(make(new Uint8Array(0))).length, 64);
  assert.equal(encodeFrame(make(new Uint8Array(46))).length, 64);
  assert.equal(encodeFrame(make(new Uint8Array(47))).length, 65);
});

test("a tagged frame keeps the 46-byte payload minimum, so it is at least 68 bytes", () => {
  const frame = encodeFrame(make(Uint8Array.of(9), { pcp: 0, dei: 0, vid: 1 }));
  assert.equal(frame.length, 68);
  assert.ok(frame.subarray(19, 64).every((b) => b === 0));
});

test("untagged and tagged frames survive encode and decode with every field intact", () => {
  const frames: EthernetFrame[] = [
    make(Uint8Array.from({ length: 46 }, (_, i) => i)),
    make(Uint8Array.from({ length: 1500 }, (_, i) => i * 7), null, 0x0800),
    make(Uint8Array.from({ length: 100 }, (_, i) => 255 - i), { pcp: 7, dei: 1, vid: 4094 }),
    make(new Uint8Array(46).fill(1), { pcp: 0, dei: 0, vid: 0 }),
    make(new Uint8Array(9216).fill(2), { pcp: 3, dei: 0, vid: 0x123 }),
    { dst: BROADCAST, src, vlan: { pcp: 5, dei: 1, vid: 1 }, etherType: 0xffff, payload: new Uint8Array(64).fill(0xff) },
  ];
  for (const frame of frames) assert.deepEqual(decodeFrame(encodeFrame(frame), 9216), frame);
});

test("decode keeps the padding of a short payload: upper layers carry their own lengths", () => {
  const decoded = decodeFrame(encodeFrame(make(Uint8Array.of(1, 2, 3))), 1500);
  assert.ok(typeof decoded === "object");
  assert.deepEqual(decoded.payload, Uint8Array.of(1, 2, 3, ...new Array(43).fill(0)));
});

test("isTagged, vlanOf, etherTypeOf and payloadOffset read past an optional 802.1Q tag", () => {
  const plain = encodeFrame(make(new Uint8Array(46), null, 0x86dd));
  const tagged = encodeFrame(make(new Uint8Array(46), { pcp: 7, dei: 1, vid: 0xabc }, 0x88b5));
  assert.deepEqual([isTagged(plain), vlanOf(plain), etherTypeOf(plain), payloadOffset(plain)], [false, 0, 0x86dd, 14]);
  assert.deepEqual([isTagged(tagged), vlanOf(tagged), etherTypeOf(tagged), payloadOffset(tagged)], [true, 0xabc, 0x88b5, 18]);
  assert.deepEqual([...tagged.subarray(12, 18)], [0x81, 0x00, 0xfa, 0xbc, 0x88, 0xb5]);
});

test("macKey is the 48-bit address as a number and formatMac prints lowercase colon-separated hex", () => {
  assert.equal(macKey(src), 0x02_10_10_00_00_01);
  assert.equal(macKey(BROADCAST), 2 ** 48 - 1);
  assert.equal(macKey(Uint8Array.of(0, 0, 0, 0xff, 0xff, 0xff)), 0xffffff);
  assert.equal(macKey(Uint8Array.of(0x80, 0, 0, 0x80, 0, 0)), 0x800000800000);
  const frame = encodeFrame(make(new Uint8Array(46)));
  assert.equal(macKey(frame, 6), macKey(src));
  assert.notEqual(macKey(frame, 0), macKey(frame, 6));
  assert.equal(formatMac(src), "02:10:10:00:00:01");
  assert.equal(formatMac(Uint8Array.of(0xab, 0xcd, 0xef, 0x0a, 0x0b, 0xff)), "ab:cd:ef:0a:0b:ff");
  assert.equal(formatMac(frame, 0), "02:10:10:00:00:02");
  assert.equal(formatMac(frame, 6), "02:10:10:00:00:01");
});

test("isMulticast reads the group bit of the first octet", () => {
  assert.equal(isMulticast(BROADCAST), true);
  assert.equal(isMulticast(Uint8Array.of(0x01, 0x80, 0xc2, 0, 0, 0)), true);
  assert.equal(isMulticast(src), false);
  assert.equal(isMulticast(Uint8Array.of(0, 0, 0, 0, 0, 0, 0x03), 6), true);
});

test("maxFrameSize adds header, optional tag and FCS to the MTU", () => {
  assert.deepEqual([maxFrameSize(1500, false), maxFrameSize(1500, true), maxFrameSize(9216, false), maxFrameSize(9216, true)], [1518, 1522, 9234, 9238]);
});

test("decodeFrame rejects a runt below 64 bytes even with a valid FCS, and accepts 64", () => {
  assert.equal(decodeFrame(sized(63, false), 1500), FrameError.Runt);
  assert.equal(decodeFrame(sized(63, true), 1500), FrameError.Runt);
  assert.equal(decodeFrame(new Uint8Array(0), 1500), FrameError.Runt);
  assert.equal(typeof decodeFrame(sized(64, false), 1500), "object");
  const tagged = decodeFrame(sized(64, true), 1500);
  assert.ok(typeof tagged === "object");
  assert.equal(tagged.payload.length, 42);
});

test("decodeFrame rejects frames over the MTU, allowing four more bytes when tagged", () => {
  for (const mtu of [1500, 9216]) {
    assert.equal(typeof decodeFrame(sized(mtu + 18, false), mtu), "object", `untagged at MTU ${mtu}`);
    assert.equal(decodeFrame(sized(mtu + 19, false), mtu), FrameError.Oversize, `untagged above MTU ${mtu}`);
    assert.equal(typeof decodeFrame(sized(mtu + 22, true), mtu), "object", `tagged at MTU ${mtu}`);
    assert.equal(decodeFrame(sized(mtu + 23, true), mtu), FrameError.Oversize, `tagged above MTU ${mtu}`);
  }
  assert.equal(decodeFrame(sized(1522, true), 1500 - 1), FrameError.Oversize);
});

test("decodeFrame rejects a bad FCS", () => {
  const frame = encodeFrame(make(new Uint8Array(100).fill(4)));
  for (const at of [0, 13, 60, frame.length - 1]) {
    const damaged = frame.slice();
    damaged[at] ^= 0x10;
    assert.equal(decodeFrame(damaged, 1500), FrameError.BadFcs, `byte ${at}`);
  }
});

test("decodeFrame rejects VID 0xfff but accepts VIDs 0 and 4094", () => {
  assert.equal(decodeFrame(sized(80, true, 0xfff), 1500), FrameError.BadVlan);
  assert.equal(decodeFrame(encodeFrame(make(new Uint8Array(46), { pcp: 2, dei: 1, vid: 0xfff })), 1500), FrameError.BadVlan);
  for (const vid of [0, 4094]) {
    const decoded = decodeFrame(sized(80, true, vid), 1500);
    assert.ok(typeof decoded === "object");
    assert.equal(decoded.vlan?.vid, vid);
  }
});

test("decodeFrame never throws on 10 000 random buffers of 0..2000 bytes and its verdicts are consistent", () => {
  const rng = xoroshiro128plus(0x1ee7);
  const seen = new Set<string>();
  for (let round = 0; round < 10_000; round++) {
    const bytes = new Uint8Array(uniformInt(rng, 0, 2000));
    for (let i = 0; i < bytes.length; i++) bytes[i] = uniformInt(rng, 0, 255);
    // Steer half the inputs past the FCS check, half of those through the tag path, and
    // one in eight of the tagged ones to VID 0xfff.
    if (round % 2 === 1 && bytes.length >= 18) {
      if (round % 4 === 1) bytes.set([0x81, 0x00], 12);
      if (round % 32 === 1) bytes[14] |= 0x0f, bytes[15] = 0xff;
      writeFcs(bytes);
    }
    const mtu = uniformInt(rng, 0, 1) ? 1500 : 9216;
    let result: EthernetFrame | FrameError;
    try {
      result = decodeFrame(bytes, mtu);
    } catch (error) {
      assert.fail(`round ${round}: decodeFrame threw on ${bytes.length} bytes: ${error}`);
    }
    if (typeof result === "string") {
      seen.add(result);
      continue;
    }
    seen.add(result.vlan ? "tagged" : "untagged");
    assert.ok(bytes.length >= 64 && bytes.length <= maxFrameSize(mtu, result.vlan !== null) && fcsValid(bytes));
    assert.equal(result.etherType, etherTypeOf(bytes));
    assert.equal(result.vlan?.vid ?? 0, vlanOf(bytes));
    if (result.payload.length >= 46) assert.deepEqual(encodeFrame(result), bytes, `round ${round} re-encodes`);
  }
  // The fuzz reached every verdict, so each branch above ran.
  assert.deepEqual([...seen].sort(), ["bad-fcs", "bad-vlan", "oversize", "runt", "tagged", "untagged"].sort());
});

/** A CONTROL frame for the MAC, tagged with `vid` (null: untagged). */
function control(vid: number | null): Uint8Array {
  const header = new Uint8Array(16);
  header[0] = 1;
  header[1] = FrameKind.Control;
  return encodeFrame(make(header, vid === null ? null : { pcp: 0, dei: 0, vid }));
}

test("the MAC hands the firmware only CONTROL frames of its control VLAN once one is set, and counts the others", () => {
  const mac = new CardMac(dst, new EventScheduler());
  const seen: number[] = [];
  mac.onControl = (frame) => seen.push(vlanOf(frame));
  for (const vid of [null, 100, 200]) mac.receive(control(vid));
  assert.deepEqual(seen, [0, 100, 200], "0: every VLAN, untagged too");
  mac.controlVlan = 100;
  for (const vid of [null, 100, 200]) mac.receive(control(vid));
  assert.deepEqual(seen, [0, 100, 200, 100]);
  assert.equal(mac.counters.rxControlFiltered, 2);
  assert.equal(mac.counters.rxControl, 4);
});

test("the MAC also hands over CONTROL frames of the management VLAN, and only while one is set", () => {
  const mac = new CardMac(dst, new EventScheduler());
  const seen: number[] = [];
  mac.onControl = (frame) => seen.push(vlanOf(frame));
  const all = [null, 100, 200, 4000];
  mac.controlVlan = 100;
  for (const vid of all) mac.receive(control(vid));
  assert.deepEqual(seen, [100], "management VLAN 0: the group's VLAN alone");
  mac.managementVlan = 4000;
  for (const vid of all) mac.receive(control(vid));
  assert.deepEqual(seen, [100, 100, 4000], "the group's and the management VLAN; untagged and other groups still dropped");
  assert.equal(mac.counters.rxControlFiltered, 3 + 2);
  mac.controlVlan = 0;
  for (const vid of all) mac.receive(control(vid));
  assert.deepEqual(seen, [100, 100, 4000, 0, 100, 200, 4000], "control VLAN 0: every frame, as before");
});

test("CardReg.ManagementVlan: read-write bits 11-0, above 4094 refused, 0 after a fabric reset", () => {
  const events: [FabricEventKind, number][] = [];
  const fabric = new Fabric({ boardId: BOARD_ID, mac: dst, tunnels: 1 }, new EventScheduler(), {
    event: (kind, _tunnel, arg) => events.push([kind, arg]),
    deliver: () => {},
  });
  assert.equal(fabric.readRegister(CardReg.ManagementVlan), 0);
  assert.ok(fabric.writeRegister(CardReg.ManagementVlan, 4000));
  assert.equal(fabric.readRegister(CardReg.ManagementVlan), 4000);
  assert.equal(fabric.mac.managementVlan, 4000);
  assert.equal(fabric.writeRegister(CardReg.ManagementVlan, 4095), false);
  assert.equal(fabric.writeRegister(CardReg.ManagementVlan, 0x1_0fa0), false);
  assert.equal(fabric.readRegister(CardReg.ManagementVlan), 4000, "a refused write changes nothing");
  assert.equal(fabric.readRegister(CardReg.RegErrors), 2);
  assert.deepEqual(events, [[FabricEventKind.RegisterRejected, CardReg.ManagementVlan], [FabricEventKind.RegisterRejected, CardReg.ManagementVlan]]);
  fabric.reset();
  assert.equal(fabric.readRegister(CardReg.ManagementVlan), 0);
});
