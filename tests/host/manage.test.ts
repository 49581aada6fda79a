// The management protocol's station side (docs/management.md): the codec both ways and
// each frame it refuses, the QEMU stream framing against a raw socket, and the client
// against fake cards in virtual time (answers, retries on loss, a rebooted card found
// again, refusals, replies that must be ignored).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import {
  ALL_CARDS, ControlHeader, ControlType, LinkState, MANAGEMENT_ROLE, ManageOp, ManageReplyBody, ManageRequestBody, ManageStatus,
} from "../../board/map/link.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import { CONTROL_MULTICAST, encodeControl, wireFrame } from "../../board/link-codec.ts";
import {
  decodeReply, decodeRequest, encodeReply, encodeRequest, manageTag, ManageFrameError, REPLY_COUNTER_NAMES, REPLY_LABEL, REQUEST_LABEL,
  type ManageFrameProblem, type ManageRequest, type ReplyInput,
} from "../../board/manage-codec.ts";
import { ManageClient, ManageError, RequestCounter, stationIdentity } from "../../tools/manage/client.ts";
import { parseNetSpec, STREAM_MAX_FRAME, StreamDecoder, StreamTransport, streamFrame } from "../../tools/manage/transport.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { schedulerClock } from "../../tools/sim/management-port.ts";
import { adminKey } from "../../tools/sim/scenarios.ts";
import { FakeCard, FakeManagementNet } from "./support/manage-card.ts";
import { ROOT } from "./helpers.ts";

const KEY = adminKey("test");
const OTHER_KEY = adminKey("another installation");
const STATION_MAC = Uint8Array.of(0x02, 0x4d, 0x47, 0, 0, 7);
const CARD_MAC = Uint8Array.of(0x02, 0x10, 0x20, 0, 0, 1);

const request = (o: Partial<ManageRequest> = {}): ManageRequest => ({
  destination: CONTROL_MULTICAST, source: STATION_MAC, vlan: 4000, op: ManageOp.SetGroup, newGroup: 200, target: 0x2000_0001,
  bootId: 0xdead_beef, counter: 0x0000_0123_4567_89abn, station: { serial: 0x4d47_0007, bootId: 0x1234_5678 }, ...o,
});

const reply = (o: Partial<ReplyInput> = {}): ReplyInput => ({
  destination: STATION_MAC, source: CARD_MAC, vlan: 4000, op: ManageOp.Status, status: ManageStatus.Ok, group: 100,
  counter: 0x0000_0123_4567_89abn, firmware: { major: 0, minor: 2, patch: 3 }, slots: 2, bootSlot: 1, bootFlags: 1, slotsPresent: 0b10,
  ports: 2, linkStates: [LinkState.Active, LinkState.Discover], peerSerials: [0x1000_0001, 0],
  counters: { linkUps: 1, linkDowns: 2, recoveries: 3, authFailures: 4, hotplugEvents: 5, manageRequests: 6, manageAuthFailures: 7, manageReplays: 8 },
  macsecDrops: { badIcv: 9, late: 10, unknownAn: 11, unknownSci: 12, inClear: 13, badTag: 0xffff_fffe },
  paths: [{ on: [0, 1], silent: [1], health: [{ rttNs: 4_800, txFrames: 4186, rxFrames: 4000, resent: 3 }, { rttNs: 0xffff_ffff, txFrames: 1, rxFrames: 2, resent: 1 }] }, { on: [], silent: [], health: [{ rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }, { rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }] }],
  card: { role: CardRole.Host, serial: 0x1000_0002, bootId: 0xcafe_f00d, group: 100 }, ...o,
});

/** The ControlHeader and the body of a frame built by encodeControl (tagged). */
const parts = (frame: Uint8Array) => ({ header: frame.subarray(34, 50), body: frame.subarray(50) });

/** Writes a correct tag again after the body was changed, so that only the change is wrong. */
function reseal(frame: Uint8Array, label: Uint8Array, tagAt: number, key = KEY): Uint8Array {
  const { header, body } = parts(frame);
  body.set(manageTag(key, label, header, body.subarray(0, tagAt)), tagAt);
  return frame;
}

function rejects(run: () => unknown, problem: ManageFrameProblem, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ManageFrameError, String(error));
    assert.equal(error.problem, problem, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

test("a request is a tagged CONTROL frame on the management VLAN, and decodes to what was encoded", () => {
  const frame = encodeRequest(request(), KEY);
  assert.equal(frame.length, 18 + 16 + ControlHeader.Size + ManageRequestBody.Size);
  assert.deepEqual([...frame.subarray(0, 6)], [...CONTROL_MULTICAST]);
  assert.deepEqual([...frame.subarray(6, 12)], [...STATION_MAC]);
  assert.deepEqual([...frame.subarray(12, 18)], [0x81, 0x00, 0x0f, 0xa0, 0x88, 0xb5]); // VLAN 4000, EtherType 0x88B5
  assert.deepEqual([...frame.subarray(18, 24)], [1, 0x10, 0, ControlHeader.Size + ManageRequestBody.Size, 0, 0]); // tunnel v1, CONTROL, length, session 0
  const { header, body } = parts(frame);
  assert.deepEqual([...header], [ControlType.ManageRequest, 1, MANAGEMENT_ROLE, 0, 0, 0, 0, 0, 0x4d, 0x47, 0, 7, 0x12, 0x34, 0x56, 0x78]);
  assert.deepEqual([...body.subarray(0, 20)], [ManageOp.SetGroup, 0, 0, 200, 0x20, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
  const tag = createHmac("sha256", KEY).update("IOVm").update(header).update(body.subarray(0, 20)).digest();
  assert.deepEqual([...body.subarray(ManageRequestBody.Tag)], [...tag]);

  const decoded = decodeRequest(frame, KEY);
  const { sender, ...fields } = decoded;
  assert.deepEqual(fields, request());
  assert.deepEqual(sender, { role: MANAGEMENT_ROLE, serial: 0x4d47_0007, bootId: 0x1234_5678, mac: STATION_MAC });
  // With padding and FCS, as it crosses a cable.
  assert.deepEqual(decodeRequest(wireFrame(frame), KEY).counter, 0x0000_0123_4567_89abn);
  // The top of the 64-bit counter.
  assert.equal(decodeRequest(encodeRequest(request({ counter: (1n << 64n) - 1n }), KEY), KEY).counter, (1n << 64n) - 1n);
  assert.throws(() => encodeRequest(request({ counter: 1n << 64n }), KEY), RangeError);
  assert.throws(() => encodeRequest(request({ counter: -1n }), KEY), RangeError);
  assert.throws(() => encodeRequest(request(), KEY.subarray(0, 16)), /32 bytes/);
});

test("a reply decodes to the card's report, its identity and address", () => {
  const frame = encodeReply(reply(), KEY);
  assert.equal(frame.length, 18 + 16 + ControlHeader.Size + ManageReplyBody.Size);
  const { header, body } = parts(frame);
  assert.equal(header[ControlHeader.Type], ControlType.ManageReply);
  const tag = createHmac("sha256", KEY).update("IOVr").update(header).update(body.subarray(0, ManageReplyBody.Tag)).digest();
  assert.deepEqual([...body.subarray(ManageReplyBody.Tag)], [...tag]);
  assert.deepEqual([...body.subarray(ManageReplyBody.MacsecDrops, ManageReplyBody.MacsecDrops + 8)], [0, 0, 0, 9, 0, 0, 0, 10], "big-endian, bad ICV first");
  assert.deepEqual([...body.subarray(ManageReplyBody.Paths, ManageReplyBody.Paths + 3)], [0b10_0011, 0, 0], "port 0: paths on Ethernet ports 0 and 1, the second silent");
  const r = decodeReply(frame, KEY);
  assert.deepEqual({
    op: r.op, status: r.status, group: r.group, counter: r.counter, firmware: r.firmware, slots: r.slots, bootSlot: r.bootSlot,
    bootFlags: r.bootFlags, slotsPresent: r.slotsPresent, ports: r.ports, linkStates: r.linkStates, peerSerials: r.peerSerials, counters: r.counters,
    macsecDrops: r.macsecDrops, paths: r.paths,
  }, {
    op: ManageOp.Status, status: ManageStatus.Ok, group: 100, counter: 0x0000_0123_4567_89abn, firmware: { major: 0, minor: 2, patch: 3 },
    slots: 2, bootSlot: 1, bootFlags: 1, slotsPresent: 2, ports: 2, linkStates: [LinkState.Active, LinkState.Discover], peerSerials: [0x1000_0001, 0],
    counters: { linkUps: 1, linkDowns: 2, recoveries: 3, authFailures: 4, hotplugEvents: 5, manageRequests: 6, manageAuthFailures: 7, manageReplays: 8 },
    macsecDrops: { badIcv: 9, late: 10, unknownAn: 11, unknownSci: 12, inClear: 13, badTag: 0xffff_fffe },
    paths: [{ on: [0, 1], silent: [1], health: [{ rttNs: 4_800, txFrames: 4186, rxFrames: 4000, resent: 3 }, { rttNs: 0xffff_ffff, txFrames: 1, rxFrames: 2, resent: 1 }] }, { on: [], silent: [], health: [{ rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }, { rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }] }],
  });
  assert.deepEqual([...body.subarray(ManageReplyBody.PathHealth, ManageReplyBody.PathHealth + 8)], [0, 0, 0x12, 0xc0, 0, 0, 0x10, 0x5a], "big-endian: port 0's path on Ethernet port 0, its RTT then its frames out");
  assert.deepEqual([...body.subarray(ManageReplyBody.PathHealth + 16, ManageReplyBody.PathHealth + 20)], [0xff, 0xff, 0xff, 0xff], "then its path on Ethernet port 1");
  // A firmware from before the paths' health: a 156-byte body, its tag over bytes 0..123. It still decodes, its paths without figures.
  const noHealth = encodeReply(reply({ paths: [{ on: [0], silent: [], health: null }, { on: [], silent: [], health: null }] }), KEY);
  const h = parts(noHealth);
  assert.equal(h.body.length, 156);
  assert.deepEqual([...h.body.subarray(124)], [...createHmac("sha256", KEY).update("IOVr").update(h.header).update(h.body.subarray(0, 124)).digest()]);
  assert.deepEqual(decodeReply(noHealth, KEY).paths, [{ on: [0], silent: [], health: null }, { on: [], silent: [], health: null }]);
  // A firmware from before the paths: a 148-byte body, its tag over bytes 0..115. It still decodes, with no paths.
  const noPaths = encodeReply(reply({ paths: null }), KEY);
  const n = parts(noPaths);
  assert.equal(n.body.length, 148);
  assert.deepEqual([...n.body.subarray(116)], [...createHmac("sha256", KEY).update("IOVr").update(n.header).update(n.body.subarray(0, 116)).digest()]);
  assert.deepEqual([decodeReply(noPaths, KEY).paths, decodeReply(noPaths, KEY).macsecDrops?.badIcv], [null, 9]);
  // A firmware from before the MACsec drops: a 124-byte body, its tag over bytes 0..91. It still
  // decodes, with no drops.
  const older = encodeReply(reply({ macsecDrops: null, paths: null }), KEY);
  const o = parts(older);
  assert.equal(o.body.length, 124);
  assert.deepEqual([...o.body.subarray(92)], [...createHmac("sha256", KEY).update("IOVr").update(o.header).update(o.body.subarray(0, 92)).digest()]);
  assert.deepEqual([decodeReply(older, KEY).macsecDrops, decodeReply(older, KEY).counters.manageReplays], [null, 8]);
  assert.deepEqual(r.sender, { role: CardRole.Host, serial: 0x1000_0002, bootId: 0xcafe_f00d, mac: CARD_MAC });
  assert.deepEqual([r.vlan, r.headerGroup, [...r.destination]], [4000, 100, [...STATION_MAC]]);
  // Ports beyond `ports` are not reported; the body's unused entries are 0.
  const one = encodeReply(reply({ ports: 1 }), KEY);
  assert.deepEqual(decodeReply(one, KEY).linkStates, [LinkState.Active]);
  assert.equal(parts(one).body[ManageReplyBody.LinkStates + 1], 0);
  // A later version's longer body: the extra bytes are ignored (and not covered by the tag).
  const longer = encodeControl({
    destination: STATION_MAC, source: CARD_MAC, vlan: 4000, session: 0, type: ControlType.ManageReply, version: 1, role: CardRole.Host,
    group: 100, serial: 0x1000_0002, bootId: 0xcafe_f00d, body: new Uint8Array([...body, 0xee, 0xee]),
  });
  assert.equal(decodeReply(longer, KEY).counters.manageReplays, 8);
});

test("the codec refuses a bad tag, another key, a truncated or foreign frame, a wrong type, out-of-range fields and an unexpected counter", () => {
  const good = encodeReply(reply(), KEY);
  // Any covered byte changed, or the tag itself.
  for (const at of [0, 2, ManageReplyBody.CounterLow + 3, ManageReplyBody.Counters, ManageReplyBody.Tag, ManageReplyBody.Tag + 31]) {
    const bad = good.slice();
    parts(bad).body[at] ^= 0x01;
    rejects(() => decodeReply(bad, KEY), "bad-tag", /tag does not verify/);
  }
  const header = good.slice();
  parts(header).header[ControlHeader.Serial + 3] ^= 0x01; // the header is covered too
  rejects(() => decodeReply(header, KEY), "bad-tag");
  rejects(() => decodeReply(good, OTHER_KEY), "bad-tag");
  rejects(() => decodeRequest(encodeRequest(request(), OTHER_KEY), KEY), "bad-tag");

  // Truncated: the tunnel header announces more than the frame holds, or a body too short for a reply.
  rejects(() => decodeReply(good.subarray(0, good.length - 1), KEY), "not-control");
  const short = encodeControl({
    destination: STATION_MAC, source: CARD_MAC, vlan: 4000, session: 0, type: ControlType.ManageReply, version: 1, role: CardRole.Host,
    group: 100, serial: 1, bootId: 1, body: parts(good).body.subarray(0, 123),
  });
  rejects(() => decodeReply(short, KEY), "malformed", /shorter than 124/);
  // One byte short of the drops' layout: read as the older layout, whose tag is not there.
  const cut = encodeControl({
    destination: STATION_MAC, source: CARD_MAC, vlan: 4000, session: 0, type: ControlType.ManageReply, version: 1, role: CardRole.Host,
    group: 100, serial: 0x1000_0002, bootId: 0xcafe_f00d, body: parts(good).body.subarray(0, ManageReplyBody.Size - 1),
  });
  rejects(() => decodeReply(cut, KEY), "bad-tag");
  rejects(() => decodeReply(new Uint8Array(10), KEY), "not-control");
  rejects(() => decodeReply(good.subarray(0, 40), KEY), "not-control");

  // Wrong type: a request where a reply is expected and back, a link DISCOVER.
  rejects(() => decodeReply(encodeRequest(request(), KEY), KEY), "wrong-type", /ManageRequest, not ManageReply/);
  rejects(() => decodeRequest(good, KEY), "wrong-type");
  const discover = encodeControl({
    destination: CONTROL_MULTICAST, source: CARD_MAC, vlan: 100, session: 0, type: ControlType.Discover, version: 1, role: 0,
    group: 100, serial: 1, bootId: 1, body: new Uint8Array(4),
  });
  rejects(() => decodeReply(discover, KEY), "wrong-type");

  // Authentic but out of range.
  const resealed = (at: number, value: number, make: () => Uint8Array = () => good.slice(), label = REPLY_LABEL, tagAt = ManageReplyBody.Tag as number) => {
    const frame = make();
    parts(frame).body[at] = value;
    return reseal(frame, label, tagAt);
  };
  rejects(() => decodeReply(resealed(ManageReplyBody.Ports, 9), KEY), "malformed", /9 ports/);
  rejects(() => decodeReply(resealed(ManageReplyBody.Status, 4), KEY), "malformed", /status 4/);
  rejects(() => decodeReply(resealed(ManageReplyBody.Op, 0), KEY), "malformed", /operation 0/);
  rejects(() => decodeReply(resealed(ManageReplyBody.LinkStates, 8), KEY), "malformed", /link state 8/);
  const version = good.slice();
  parts(version).header[ControlHeader.Version] = 2;
  rejects(() => decodeReply(reseal(version, REPLY_LABEL, ManageReplyBody.Tag), KEY), "malformed", /version 2/);
  const role = good.slice();
  parts(role).header[ControlHeader.Role] = MANAGEMENT_ROLE; // a station does not reply
  rejects(() => decodeReply(reseal(role, REPLY_LABEL, ManageReplyBody.Tag), KEY), "malformed", /role 2/);
  const requestFrame = () => encodeRequest(request(), KEY);
  rejects(() => decodeRequest(resealed(ManageRequestBody.Op, 4, requestFrame, REQUEST_LABEL, ManageRequestBody.Tag), KEY), "malformed", /operation 4/);
  rejects(() => decodeRequest(encodeRequest(request({ target: ALL_CARDS }), KEY), KEY), "malformed", /every card/);
  rejects(() => decodeRequest(encodeRequest(request({ bootId: 0 }), KEY), KEY), "malformed", /without a boot ID/);
  const fromCard = requestFrame();
  parts(fromCard).header[ControlHeader.Role] = CardRole.Chassis;
  rejects(() => decodeRequest(reseal(fromCard, REQUEST_LABEL, ManageRequestBody.Tag), KEY), "malformed", /role 1/);

  // The counter ties a reply to its request.
  assert.equal(decodeReply(good, KEY, { counter: 0x0000_0123_4567_89abn }).group, 100);
  rejects(() => decodeReply(good, KEY, { counter: 0x0000_0123_4567_89acn }), "unexpected-counter");
});

test("the stream framing is QEMU's: a 4-byte big-endian length, then the frame, in any split", () => {
  assert.deepEqual([...streamFrame(Uint8Array.of(0xaa, 0xbb, 0xcc))], [0, 0, 0, 3, 0xaa, 0xbb, 0xcc]);
  const frames = [new Uint8Array(60).fill(1), new Uint8Array(0), new Uint8Array(1514).fill(2), Uint8Array.of(3)];
  const stream = Uint8Array.from(frames.flatMap((f) => [...streamFrame(f)]));
  for (const chunk of [1, 3, 4, 5, 64, stream.length]) {
    const got: Uint8Array[] = [];
    const decoder = new StreamDecoder((f) => got.push(f));
    for (let at = 0; at < stream.length; at += chunk) decoder.push(stream.subarray(at, at + chunk));
    assert.deepEqual(got.map((f) => [...f]), frames.map((f) => [...f]), `chunks of ${chunk}`);
  }
  const decoder = new StreamDecoder(() => {});
  decoder.push(streamFrame(new Uint8Array(STREAM_MAX_FRAME)));
  assert.throws(() => decoder.push(Uint8Array.of(0, 1, 0x10, 1)), /69633 bytes announced/);
});

test("--net takes tcp://HOST:PORT and names the supported scheme for any other", () => {
  assert.deepEqual(parseNetSpec("tcp://127.0.0.1:7100"), { kind: "tcp", host: "127.0.0.1", port: 7100 });
  assert.deepEqual(parseNetSpec("tcp://[::1]:9"), { kind: "tcp", host: "::1", port: 9 });
  for (const bad of ["raw://eth0", "udp://h:1", "unix:///tmp/s"]) assert.throws(() => parseNetSpec(bad), /unsupported network .*: the supported one is tcp:\/\/HOST:PORT/);
  for (const bad of ["eth0", "tcp://host", "tcp://h:0", "tcp://h:70000", ""]) assert.throws(() => parseNetSpec(bad), /bad network/);
});

test("the stream transport talks to a raw socket peer byte for byte, and closes on an oversized frame", async () => {
  let peer: Socket | null = null;
  const received: Buffer[] = [];
  const server = createServer((socket) => {
    peer = socket;
    socket.on("data", (chunk: Buffer) => received.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const transport = await StreamTransport.connect("127.0.0.1", port);
    const frames: number[][] = [];
    transport.onFrame((f) => frames.push([...f]));
    const closed = new Promise<Error | undefined>((resolve) => transport.onClose(resolve));
    transport.send(Uint8Array.of(1, 2, 3));
    transport.send(new Uint8Array(300).fill(9));
    while (!peer || Buffer.concat(received).length < 7 + 304) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual([...Buffer.concat(received)], [0, 0, 0, 3, 1, 2, 3, 0, 0, 1, 0x2c, ...new Array(300).fill(9)]);
    // Two frames in one write, then one a byte at a time.
    const sock = peer as Socket;
    sock.write(Buffer.from([0, 0, 0, 2, 0xa, 0xb, 0, 0, 0, 1, 0xc]));
    for (const byte of [0, 0, 0, 2, 0xd, 0xe]) {
      sock.write(Buffer.from([byte]));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    while (frames.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(frames, [[0xa, 0xb], [0xc], [0xd, 0xe]]);
    sock.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    const error = await closed;
    assert.match(String(error?.message), /more than the 69632 a stream carries; connection closed/);
  } finally {
    server.close();
  }
});

test("connecting to nothing says so in one line", async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  await assert.rejects(StreamTransport.connect("127.0.0.1", port), /connection refused; is `iov sim --manage` running\?/);
});

/** A station and fake cards on virtual time. */
function bench(o: { tries?: number; tryMs?: number } = {}) {
  const scheduler = new EventScheduler();
  const clock = schedulerClock(scheduler);
  const net = new FakeManagementNet(clock);
  const client = new ManageClient({
    transport: net.transport(), clock, key: KEY, vlan: 4000, station: stationIdentity(() => new Uint8Array(8).fill(0x11)),
    counter: new RequestCounter(1000n), ...o,
  });
  /** Runs the simulation until `promise` settles (and nothing more is scheduled). */
  const settle = async <T>(promise: Promise<T>): Promise<T> => {
    const outcome = promise.then((value) => ({ value }), (error: unknown) => ({ error }));
    await scheduler.run(Infinity);
    const done = await outcome;
    if ("error" in done) throw done.error;
    return done.value;
  };
  return { scheduler, clock, net, client, settle };
}

const chassis = (serial = 0x2000_0001) => new FakeCard({ serial, key: KEY, role: CardRole.Chassis });
const host = (serial = 0x1000_0001) => new FakeCard({ serial, key: KEY, role: CardRole.Host, slots: 2 });

test("discover collects one reply per card in serial order, learns each card's address and boot, and ignores foreign tags", async () => {
  const { net, client, settle, scheduler } = bench();
  const a = net.add(chassis());
  const b = net.add(host());
  const rogue = net.add(new FakeCard({ serial: 0x3000_0001, key: OTHER_KEY })); // another installation's card: does not even answer
  const forger = net.add(chassis(0x2000_0002));
  forger.replyKey = OTHER_KEY; // answers, with a tag the station cannot verify
  const cards = await settle(client.discover(100));
  assert.deepEqual(cards.map((c) => c.sender.serial), [0x1000_0001, 0x2000_0001]);
  assert.deepEqual(cards.map((c) => c.sender.role), [CardRole.Host, CardRole.Chassis]);
  assert.deepEqual([...client.cards.get(0x2000_0001)!.mac], [...a.mac]);
  assert.equal(client.cards.get(0x1000_0001)!.bootId, b.bootId);
  assert.deepEqual(rogue.refused, ["bad-tag", "bad-tag"]);
  // Sent twice (at 0 and halfway), to the multicast address, Target ALL_CARDS, BootId 0, counters 1000 and 1001.
  assert.equal(net.sent.length, 2);
  const sent = net.sent.map((f) => decodeRequest(f, KEY));
  assert.deepEqual(sent.map((r) => [r.op, r.target, r.bootId, r.counter, [...r.destination]]),
    [[ManageOp.Discover, ALL_CARDS, 0, 1000n, [...CONTROL_MULTICAST]], [ManageOp.Discover, ALL_CARDS, 0, 1001n, [...CONTROL_MULTICAST]]]);
  assert.deepEqual([sent[0].station.serial, [...sent[0].source]], [0x1111_1111, [0x02, 0x4d, 0x47, 0x11, 0x11, 0x11]]);
  assert.deepEqual(client.stats, { requests: 2, replies: 4, badTags: 2, unexpected: 0, malformed: 0 });
  assert.equal(scheduler.now, 100e6);
});

test("status goes to the card's own address with its boot ID and a counter above every earlier one", async () => {
  const { net, client, settle } = bench();
  const card = net.add(chassis());
  card.linkStates = [LinkState.Active];
  card.peerSerials = [0x1000_0001];
  const report = await settle(client.status(0x2000_0001)); // not seen yet: discovered first
  assert.deepEqual([report.op, report.status, report.group, report.linkStates, report.peerSerials], [ManageOp.Status, ManageStatus.Ok, 100, [LinkState.Active], [0x1000_0001]]);
  const sent = net.sent.map((f) => decodeRequest(f, KEY));
  assert.deepEqual(sent.map((r) => [ManageOp[r.op], r.target, r.bootId, r.counter]), [
    ["Discover", 0x2000_0001, 0, 1000n],
    ["Status", 0x2000_0001, card.bootId, 1001n],
  ]);
  assert.deepEqual([...sent[1].destination], [...card.mac]);
  await settle(client.status(0x2000_0001)); // known now: no discovery
  assert.equal(net.sent.length, 3);
  assert.equal(card.counters.manageRequests, 3);
});

test("a lost request or reply is sent again with a new counter; a late answer to an earlier try counts", async () => {
  const { net, client, settle, scheduler } = bench();
  const card = net.add(chassis());
  await settle(client.find(0x2000_0001));
  let requests = 0;
  net.drop = (_frame, direction) => direction === "request" && ++requests <= 2;
  const started = scheduler.now;
  const report = await settle(client.status(0x2000_0001));
  assert.equal(report.counter, 1003n);
  assert.equal(scheduler.now - started, 2 * 200e6 + 2 * 0.05e6); // two tries timed out, the third answered after one round trip
  assert.deepEqual(card.accepted.map((r) => r.counter), [1000n, 1003n]);
  // The reply to the first try arrives during the second: it is taken, and the second's late reply is unexpected.
  const slow = bench();
  slow.net.add(chassis());
  await slow.settle(slow.client.find(0x2000_0001));
  slow.net.latencyMs = 150; // 300 ms round trip, tries wait 200 ms
  const late = await slow.settle(slow.client.status(0x2000_0001));
  assert.equal(late.counter, 1001n);
  assert.equal(slow.client.stats.unexpected, 1);
});

test("a card that rebooted ignores the stale boot ID; the client discovers it again and retries", async () => {
  const { net, client, settle } = bench();
  const card = net.add(chassis());
  await settle(client.find(0x2000_0001));
  card.reboot(0x0bad_b007);
  const report = await settle(client.status(0x2000_0001));
  assert.equal(report.sender.bootId, 0x0bad_b007);
  assert.deepEqual(card.refused, ["stale-boot", "stale-boot", "stale-boot"]);
  assert.deepEqual(net.sent.map((f) => ManageOp[decodeRequest(f, KEY).op]), ["Discover", "Status", "Status", "Status", "Discover", "Status"]);
  assert.equal(client.cards.get(0x2000_0001)!.bootId, 0x0bad_b007);
});

test("a card that is gone, or never answers, is a no-answer error naming it", async () => {
  const { net, client, settle } = bench({ tries: 2, tryMs: 50 });
  const card = net.add(chassis());
  await assert.rejects(settle(client.status(0x2000_0009)), (error: unknown) => {
    assert.ok(error instanceof ManageError);
    assert.equal(error.kind, "no-answer");
    assert.match(error.message, /card 0x20000009 did not answer a discovery \(2 tries, 50 ms each\): is it on, on the management VLAN 4000, with this admin key\?/);
    return true;
  });
  await settle(client.find(0x2000_0001));
  // It answers the discovery but nothing else: silence, a discovery, silence again.
  let discoveries = 0;
  net.drop = (frame, direction) => direction === "request" && decodeRequest(frame, KEY).op !== ManageOp.Discover && ++discoveries > 0;
  await assert.rejects(settle(client.status(0x2000_0001)), /card 0x20000001 did not answer Status \(4 tries, 50 ms each, discovered again in between\)/);
  card.on = false;
  await assert.rejects(settle(client.status(0x2000_0001)), /did not answer a discovery/);
});

test("SetGroup: Ok moves the card; BadGroup, Busy and FlashFailed are refusals with the card's status", async () => {
  const { net, client, settle } = bench();
  const card = net.add(chassis());
  const moved = await settle(client.setGroup(0x2000_0001, 200));
  assert.deepEqual([moved.op, moved.status, moved.group, card.group], [ManageOp.SetGroup, ManageStatus.Ok, 200, 200]);
  assert.equal(decodeRequest(net.sent.at(-1)!, KEY).newGroup, 200);
  for (const [group, status, text] of [
    [4000, ManageStatus.Ok, /refused the group change to 4000: bad group/],
    [300, ManageStatus.Busy, /refused the group change to 300: busy/],
    [300, ManageStatus.FlashFailed, /refused the group change to 300: flash failed/],
  ] as const) {
    card.setGroupStatus = status;
    await assert.rejects(settle(client.setGroup(0x2000_0001, group)), (error: unknown) => {
      assert.ok(error instanceof ManageError);
      assert.equal(error.kind, "refused");
      assert.equal(error.status, group === 4000 ? ManageStatus.BadGroup : status);
      assert.match(error.message, text);
      return true;
    });
  }
  assert.equal(card.group, 200);
});

test("SetGroup whose Ok was lost: Busy to the retry, then a Status shows the change was made", async () => {
  const { net, client, settle } = bench();
  const card = net.add(chassis());
  await settle(client.find(0x2000_0001));
  let replies = 0;
  net.drop = (_frame, direction) => direction === "reply" && ++replies === 1;
  // The card applies the first SetGroup; while the change is in progress it answers Busy.
  const original = card.answer.bind(card);
  card.answer = (frame) => {
    const out = original(frame);
    if (card.group === 200) card.setGroupStatus = ManageStatus.Busy;
    return out;
  };
  const result = await settle(client.setGroup(0x2000_0001, 200));
  assert.deepEqual([result.op, result.status, result.group], [ManageOp.SetGroup, ManageStatus.Ok, 200]);
  assert.deepEqual(net.sent.map((f) => ManageOp[decodeRequest(f, KEY).op]), ["Discover", "SetGroup", "SetGroup", "Status"]);
});

test("SetGroup still being written when the retries come: Busy, then Status polled until the card shows the group", async () => {
  const { scheduler, net, client, settle } = bench();
  const card = net.add(chassis());
  await settle(client.find(0x2000_0001));
  // The first SetGroup is taken but its flash write lasts 900 ms (a simulation slower than real time):
  // no answer to it, Busy to the retries, the old group in every Status until the write is done.
  const original = card.answer.bind(card);
  let writing = false;
  card.answer = (frame) => {
    const op = decodeRequest(frame, KEY).op;
    if (op === ManageOp.SetGroup && !writing && card.group === 100) {
      writing = true;
      scheduler.after(900e6, () => {
        writing = false;
        card.group = 200;
      });
      return null;
    }
    card.setGroupStatus = writing ? ManageStatus.Busy : ManageStatus.Ok;
    return original(frame);
  };
  const result = await settle(client.setGroup(0x2000_0001, 200));
  assert.deepEqual([result.status, result.group], [ManageStatus.Ok, 200]);
  const ops = net.sent.map((f) => ManageOp[decodeRequest(f, KEY).op]);
  assert.ok(ops.filter((op) => op === "Status").length >= 2, `polled: ${ops.join(" ")}`);
  // Not for ever: a change that never shows is a refusal once settleMs has passed.
  let first = true;
  card.setGroupStatus = ManageStatus.Busy;
  card.answer = (frame) => {
    if (decodeRequest(frame, KEY).op === ManageOp.SetGroup && first) {
      first = false;
      return null;
    }
    return original(frame);
  };
  const started = scheduler.now;
  await assert.rejects(settle(client.setGroup(0x2000_0001, 300, 1000)), /refused the group change to 300: busy/);
  assert.ok(scheduler.now - started >= 1000 * 1e6, "polled for settleMs first");
});

test("replies that are duplicated, replayed, for another counter, card or station, or with a bad tag are ignored and counted", async () => {
  const { net, client, settle } = bench();
  const card = net.add(chassis());
  await settle(client.find(0x2000_0001));
  net.copies = (_frame, direction) => (direction === "reply" ? 2 : 1);
  await settle(client.status(0x2000_0001));
  assert.equal(client.stats.unexpected, 1);
  net.copies = () => 1;
  // A reply captured earlier, played back later.
  let captured: Uint8Array | null = null;
  const original = card.answer.bind(card);
  card.answer = (frame) => (captured = original(frame));
  await settle(client.status(0x2000_0001));
  net.deliver(captured!);
  assert.equal(client.stats.unexpected, 2);
  // Answers with a counter no request had, or in another card's name: never accepted; the request fails.
  card.tamper = (r) => (r.counter += 1000n);
  await assert.rejects(settle(client.status(0x2000_0001)), /did not answer/);
  card.tamper = (r) => (r.card.serial = 0x2000_0005);
  await assert.rejects(settle(client.status(0x2000_0001)), /did not answer/);
  card.tamper = null;
  card.replyKey = OTHER_KEY;
  await assert.rejects(settle(client.status(0x2000_0001)), /did not answer/);
  assert.equal(client.stats.badTags, 3, JSON.stringify(client.stats)); // the card was forgotten after the previous failure: three discoveries
  // For another station: not even looked at.
  card.replyKey = null;
  const before = { ...client.stats };
  const other = encodeReply(reply({ destination: Uint8Array.of(2, 0x4d, 0x47, 9, 9, 9) }), KEY);
  net.deliver(other);
  assert.deepEqual(client.stats, before);
});

test("docs/management.md documents every field of both bodies at its offset, and every status", () => {
  const doc = readFileSync(`${ROOT}docs/management.md`, "utf8");
  const section = (heading: string) => doc.split(heading)[1]?.split("\n### ")[0] ?? "";
  const fields = (e: object) => Object.entries(e).filter(([name, v]) => typeof v === "number" && name !== "Size") as [string, number][];
  const field = (name: string) => (name.startsWith("Reserved") ? "reserved" : `\`${name[0].toLowerCase()}${name.slice(1)}\``);
  const request = section("### MANAGE_REQUEST body");
  assert.ok(request.startsWith(` (${ManageRequestBody.Size} bytes)`));
  for (const [name, offset] of fields(ManageRequestBody)) assert.match(request, new RegExp(`\\| ${offset} \\| [^|]+ \\| ${field(name)}`), name);
  const replyDoc = section("### MANAGE_REPLY body");
  assert.ok(replyDoc.startsWith(` (${ManageReplyBody.Size} bytes)`));
  for (const [name, offset] of fields(ManageReplyBody)) {
    if (name === "FirmwareMinor" || name === "FirmwarePatch") continue; // one row with FirmwareMajor
    assert.match(replyDoc, new RegExp(`\\| ${offset} \\| [^|]+ \\| ${field(name)}`), name);
  }
  for (const [name, value] of fields(ManageStatus)) assert.match(section("### Statuses"), new RegExp(`\\| ${value} ${name} \\|`), name);
  assert.match(replyDoc, new RegExp(REPLY_COUNTER_NAMES.map((n) => `\`${n[0].toUpperCase()}${n.slice(1)}\``).join(", ")));
});
