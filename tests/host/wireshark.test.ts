// The Wireshark dissector (tools/wireshark/iov.lua) as tshark runs it: every frame of a run
// decoded with each TLP as the project's own codec reads it, display filters on TLP fields that
// select what the tunnel engines counted, and bad or fuzzed frames marked without a Lua error.
// tshark is installed by .ci/run; elsewhere these tests are skipped.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { World, captureFile } from "../../tools/sim/world.ts";
import { SCENARIOS, pairScenario } from "../../tools/sim/scenarios.ts";
import { PcapWriter, readPcap } from "../../tools/sim/pcap.ts";
import { Decryptor, parseKeyLog } from "../../tools/sim/keylog.ts";
import { DISSECTOR } from "../../tools/paths.ts";
import { decodeTlp, isMalformed, type Tlp } from "../../board/pcie/tlp.ts";
import { FrameKind, RECORD_HEADER, RECORD_SIZE_MASK, RECORD_SLOT_SHIFT, TUNNEL_HEADER } from "../../board/tunnel/wire.ts";
import { ETHERTYPE_IOV, encodeFrame, etherTypeOf, formatMac, payloadOffset, writeFcs } from "../../board/ethernet/frame.ts";
import { TunnelCounter } from "../../board/map/registers.ts";
import { LinkState } from "../../board/map/link.ts";
import { MSI_BASE } from "../../tools/server/root-complex.ts";
import { FIRMWARE, iov } from "./helpers.ts";

const MS = 1_000_000;
const version = spawnSync("tshark", ["-v"], { encoding: "utf8" });
const skip = version.error || version.status !== 0 ? "tshark not on PATH: install it (apt-get install tshark) to check the dissector" : false;

const dir = mkdtempSync(join(tmpdir(), "iov-wireshark-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** tshark with the dissector: one row per frame (of those `filter` displays), one column per field, repeated fields joined by commas. */
function fields(capture: string, names: string[], filter?: string): string[][] {
  const result = spawnSync("tshark", [
    "-X", `lua_script:${DISSECTOR}`, "-r", capture, "-n", ...(filter ? ["-Y", filter] : []),
    "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,", ...names.flatMap((f) => ["-e", f]),
  ], { encoding: "utf8", timeout: 300_000, maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, result.stderr);
  // tshark warns on stderr when run as root; anything else there is a problem with the dissector.
  assert.deepEqual(result.stderr.split("\n").filter((line) => line && !/^Running as user "root"/.test(line)), []);
  return result.stdout === "" ? [] : result.stdout.replace(/\n$/, "").split("\n").map((line) => line.split("|"));
}

const list = (cell: string) => (cell === "" ? [] : cell.split(","));
const hex = (n: number) => `0x${n.toString(16).padStart(4, "0")}`;

interface Record {
  slot: number;
  tlp: Tlp;
}

/** The TLP records of a DATA frame in clear, read with the project's codec. */
function records(frame: Uint8Array): Record[] {
  const at = payloadOffset(frame);
  const length = (frame[at + 2] << 8) | frame[at + 3];
  const out: Record[] = [];
  for (let p = at + TUNNEL_HEADER; p < at + TUNNEL_HEADER + length;) {
    const word = (frame[p] << 8) | frame[p + 1];
    const size = word & RECORD_SIZE_MASK;
    const tlp = decodeTlp(frame.subarray(p + RECORD_HEADER, p + RECORD_HEADER + size));
    assert.ok(!isMalformed(tlp), `a malformed TLP in a frame the engines built: ${JSON.stringify(tlp)}`);
    out.push({ slot: word >> RECORD_SLOT_SHIFT, tlp });
    p += RECORD_HEADER + size;
  }
  return out;
}

const isMsi = (t: Tlp) => t.kind === "MWr" && (t.data?.length ?? 0) === 4 && t.address >= MSI_BASE && t.address <= MSI_BASE + 0xf_ffff;

test("every frame of the default run, decrypted, decodes without a malformed packet or Lua error, each TLP as the project's codec reads it", { skip }, () => {
  const pcap = join(dir, "default.pcap");
  const keys = join(dir, "default.keys");
  // Up to the cable pull: pairing, the server's enumeration, the devices' DMA, their first MSIs (from 257 ms), NVMe commands, test traffic.
  const run = iov(["sim", "--quiet", "--duration", "300ms", "--pcap", pcap, "--keylog", keys]);
  assert.equal(run.status, 0, run.stderr);
  const clear = join(dir, "default-clear.pcap");
  assert.match(run.stdout, new RegExp(`iov pcap decrypt ${pcap} ${clear} --keylog ${keys} && tshark -X lua_script:\\S*tools/wireshark/iov.lua -r ${clear} -V`));
  assert.equal(iov(["pcap", "decrypt", pcap, clear, "--keylog", keys]).status, 0);

  const captured = readPcap(new Uint8Array(readFileSync(clear))).records;
  const names = [
    "frame.number", "iov.kind", "iov.record.slot", "iov.tlp.type", "iov.tlp.length", "iov.tlp.tag", "iov.tlp.requester",
    "iov.tlp.addr", "iov.tlp.completer", "iov.tlp.byte_count", "iov.tlp.status", "iov.tlp.target", "iov.tlp.register",
    "iov.tlp.msg.code", "iov.tlp.msi", "iov.ctl.type", "_ws.malformed", "_ws.expert.severity", "_ws.lua.error",
  ];
  const rows = fields(clear, names);
  assert.equal(rows.length, captured.length, "a row per frame");
  const seen = new Map<string, number>();
  let msis = 0;
  rows.forEach((row, i) => {
    const [number, kind, slots, types, lengths, tags, requesters, addresses, completers, byteCounts, statuses, targets, registers, codes, msi, control, malformed, severity, luaError] = row;
    const frame = captured[i].frame;
    const where = `frame ${number}`;
    assert.equal(Number(number), i + 1);
    assert.equal(etherTypeOf(frame), ETHERTYPE_IOV, `${where} is in clear`);
    assert.equal(Number(kind), frame[payloadOffset(frame) + 1], `${where} kind`);
    assert.deepEqual([malformed, severity, luaError], ["", "", ""], `${where}: malformed, expert info or Lua error`);
    if (Number(kind) === FrameKind.Control) assert.notEqual(control, "", `${where}: a CONTROL message`);
    if (Number(kind) !== FrameKind.Data) {
      assert.equal(types, "", `${where}: no TLP outside DATA`);
      return;
    }
    const recs = records(frame);
    const tlps = recs.map((r) => r.tlp);
    const memory = tlps.filter((t) => t.kind === "MRd" || t.kind === "MWr");
    const completions = tlps.filter((t) => t.kind === "Cpl" || t.kind === "CplD");
    const configs = tlps.filter((t) => t.kind.startsWith("Cfg"));
    // Length: the data's DWs, a read's DWs (1 for configuration and I/O), 0 (reserved) in completions and messages without data.
    const dataDw = (t: Tlp) => (t.data ? t.data.length / 4 : t.kind === "MRd" || t.kind === "MRdLk" ? t.readDw! : t.kind.startsWith("Cfg") || t.kind === "IORd" ? 1 : 0);
    assert.deepEqual(list(slots).map(Number), recs.map((r) => r.slot), `${where} slots`);
    assert.deepEqual(list(types), tlps.map((t) => t.kind), `${where} types`);
    assert.deepEqual(list(lengths).map(Number), tlps.map(dataDw), `${where} lengths`);
    assert.deepEqual(list(tags).map(Number), tlps.map((t) => t.tag), `${where} tags`);
    assert.deepEqual(list(requesters), tlps.map((t) => hex(t.requester)), `${where} requesters`);
    assert.deepEqual(list(addresses).map((a) => Number(BigInt(a))), memory.map((t) => (t as { address: number }).address), `${where} addresses`);
    assert.deepEqual(list(completers), completions.map((t) => hex((t as { completer: number }).completer)), `${where} completers`);
    assert.deepEqual(list(byteCounts).map(Number), completions.map((t) => (t as { byteCount: number }).byteCount || 4096), `${where} byte counts`);
    assert.deepEqual(list(statuses).map(Number), completions.map((t) => (t as { status: number }).status), `${where} statuses`);
    assert.deepEqual(list(targets), configs.map((t) => {
      const c = t as { bus: number; device: number; fn: number };
      return hex((c.bus << 8) | (c.device << 3) | c.fn);
    }), `${where} configuration targets`);
    assert.deepEqual(list(registers).map(Number), configs.map((t) => 4 * (t as { register: number }).register), `${where} registers`);
    assert.deepEqual(list(codes).map(Number), tlps.filter((t) => t.kind === "Msg" || t.kind === "MsgD").map((t) => (t as { code: number }).code), `${where} message codes`);
    assert.equal(list(msi).length, tlps.filter(isMsi).length, `${where} MSIs`);
    msis += tlps.filter(isMsi).length;
    for (const t of tlps) seen.set(t.kind, (seen.get(t.kind) ?? 0) + 1);
  });
  // What the run holds, so that the comparison above covers each kind of TLP the server and devices use.
  for (const kind of ["MRd", "MWr", "CplD", "Cpl", "CfgRd0", "CfgWr0"]) assert.ok((seen.get(kind) ?? 0) > 0, `no ${kind} in the run: ${JSON.stringify([...seen])}`);
  assert.ok(msis > 0, "no MSI in the run");
});

test("a display filter on a TLP field selects the frames that carry such TLPs, and the TLPs add up to what the tunnel engines counted", { skip }, async () => {
  const pcap = join(dir, "pair.pcap");
  const keylog = join(dir, "pair.keys");
  const w = new World({ scenario: pairScenario({ durationNs: 120 * MS }), seed: 3, engine: "node", engineOptions: { firmware: FIRMWARE }, softcoreMhz: 0, pcap, keylog });
  let started = false;
  w.onLinkStateChange((card, _tunnel, state) => {
    if (card !== "host" || state !== LinkState.Active || started) return;
    started = true;
    w.startTraffic({ from: "host", to: "chassis", count: 3000, startNs: 0, payload: 128, mix: { posted: 3, nonPosted: 2, completion: 1 } }, 0);
    w.startTraffic({ from: "chassis", to: "host", count: 1000, startNs: 0, payload: 64, mix: { posted: 1, nonPosted: 1, completion: 2 } }, 1);
  });
  const summary = await w.run();
  assert.equal(summary.tlps.delivered, summary.tlps.sent, "the traffic had ended when the run did");
  const decryptor = new Decryptor(parseKeyLog(readFileSync(keylog, "utf8")));
  const clear = join(dir, "pair-clear.pcap");
  const writer = new PcapWriter(clear);
  const captured = readPcap(new Uint8Array(readFileSync(pcap))).records.map((r) => ({ timeNs: r.timeNs, frame: decryptor.decrypt(r.frame).frame }));
  for (const r of captured) writer.write(r.timeNs, r.frame);
  writer.close();

  const counter = (c: TunnelCounter) => ["host", "chassis"].reduce((n, card) => n + w.fabrics.get(card)!.tunnels.reduce((m, t) => m + t.counters[c], 0), 0);
  // The cable loses nothing, so every DATA frame sent is captured once per transmission.
  const data = fields(clear, ["frame.number", "eth.src", "iov.session", "iov.seq", "iov.records"], "iov.kind == 1");
  assert.equal(data.length, counter(TunnelCounter.TxDataFrames), "DATA frames against TxDataFrames");
  const first = new Map(data.map(([, src, session, seq, count]) => [`${src} ${session} ${seq}`, Number(count)]));
  assert.equal([...first.values()].reduce((a, b) => a + b, 0), counter(TunnelCounter.TxTlps), "TLP records of distinct frames against TxTlps");
  assert.equal(counter(TunnelCounter.TxTlps), counter(TunnelCounter.RxTlps));

  const framesWith = (wanted: (t: Tlp, frame: Uint8Array) => boolean) =>
    captured.flatMap((r, i) => (r.frame[payloadOffset(r.frame) + 1] === FrameKind.Data && records(r.frame).some((rec) => wanted(rec.tlp, r.frame)) ? [i + 1] : []));
  const numbers = (filter: string) => fields(clear, ["frame.number"], filter).map(([n]) => Number(n));
  for (const type of ["MRd", "MWr", "CplD"] as const) {
    const expected = framesWith((t) => t.kind === type);
    assert.ok(expected.length > 0, `no ${type} in the run`);
    assert.deepEqual(numbers(`iov.tlp.type == "${type}"`), expected, `frames with an ${type}`);
  }
  const host = formatMac(w.fabrics.get("host")!.macs[0].address);
  assert.deepEqual(numbers(`iov.tlp.type == "MRd" && eth.src == ${host} && iov.tlp.length > 1`),
    framesWith((t, frame) => t.kind === "MRd" && (t.readDw ?? 1) > 1 && formatMac(frame, 6) === host), "multi-DW reads from the host card");
});

test("a handover's management frames decode: the station's requests, each card's signed report, the RELEASE that follows", { skip }, async () => {
  const pcap = join(dir, "handover.pcap");
  const w = new World({
    scenario: { ...SCENARIOS.handover, durationNs: 400 * MS, actions: [{ atNs: 300 * MS, kind: "assign", card: "chassis", group: 200 }] },
    seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, pcap,
  });
  await w.run();
  const capture = captureFile(pcap, SCENARIOS.handover, "cable-chassis");
  const names = ["iov.ctl.type", "iov.ctl.role", "iov.ctl.serial", "iov.manage.op", "iov.manage.target", "iov.manage.new_group", "iov.manage.status",
    "iov.manage.group", "iov.manage.ports", "iov.manage.link_state", "iov.manage.peer", "iov.ctl.reason", "_ws.expert.severity", "_ws.lua.error"];
  const rows = fields(capture, names, "iov.ctl.type >= 8").map((row) => Object.fromEntries(names.map((n, i) => [n, row[i]])));
  assert.deepEqual(rows.filter((r) => r["_ws.expert.severity"] !== "" || r["_ws.lua.error"] !== ""), []);
  const setGroup = rows.filter((r) => r["iov.ctl.type"] === "9" && r["iov.manage.op"] === "3");
  assert.ok(setGroup.length >= 1, "the station's SetGroup");
  for (const r of setGroup) {
    assert.deepEqual([r["iov.ctl.role"], r["iov.manage.target"], r["iov.manage.new_group"]], ["2", "0x20000001", "200"]);
  }
  const replies = rows.filter((r) => r["iov.ctl.type"] === "10" && r["iov.manage.op"] === "3");
  assert.ok(replies.length >= 1, "the chassis card's reply");
  for (const r of replies) {
    // Ok, the new group, and its one link port as it was: a session with host1.
    assert.deepEqual([r["iov.ctl.serial"], r["iov.manage.status"], r["iov.manage.group"], r["iov.manage.ports"], r["iov.manage.link_state"], r["iov.manage.peer"]],
      ["0x20000001", "0", "200", "1", String(LinkState.Active), "0x10000001"]);
  }
  const release = rows.find((r) => r["iov.ctl.type"] === "8");
  assert.ok(release, "a RELEASE to host1");
  assert.equal(release["iov.ctl.reason"], "12", "Reassigned");
});

// ---- Bad input ---------------------------------------------------------------------------------

const DST = Uint8Array.of(2, 0x10, 0x20, 0, 0, 1);
const SRC = Uint8Array.of(2, 0x10, 0x10, 0, 0, 1);

/** A frame carrying `payload` after EtherType 0x88B5, padded to 64 bytes as a MAC would, with its FCS. */
const frameOf = (payload: Uint8Array) => encodeFrame({ dst: DST, src: SRC, vlan: { pcp: 0, dei: 0, vid: 100 }, etherType: ETHERTYPE_IOV, payload });

/** Tunnel header and body; `length` is the header's length field (the body's size unless given). */
function tunnel(kind: number, body: number[], length = body.length, seq = 7): Uint8Array {
  const b = new Uint8Array(TUNNEL_HEADER + body.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, 1);
  v.setUint8(1, kind);
  v.setUint16(2, length);
  v.setUint32(4, 0xdeef12e5);
  v.setUint32(8, seq);
  v.setUint32(12, 3);
  b.set(body, TUNNEL_HEADER);
  return b;
}

const be16 = (n: number) => [n >> 8, n & 0xff];
const record = (tlp: number[], slot = 0) => [...be16((slot << RECORD_SLOT_SHIFT) | tlp.length), ...tlp];
// A 4-byte memory read of 0x1000 by 00:01.0, tag 5; and a 1-DW write with its data.
const MRD = [0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0x05, 0x0f, 0x00, 0x00, 0x10, 0x00];
const MWR = [0x40, 0x00, 0x00, 0x01, 0x00, 0x08, 0x06, 0x0f, 0x00, 0x00, 0x20, 0x00, 1, 2, 3, 4];

test("bad frames are marked with what a receiver would reject, and the frames after them still decode", { skip }, () => {
  const cases: [string, Uint8Array, RegExp | null][] = [
    ["a good DATA frame", frameOf(tunnel(FrameKind.Data, [...record(MRD), ...record(MWR, 3)])), null],
    ["shorter than the tunnel header", (() => {
      const f = new Uint8Array(14 + 4 + 10 + 4);
      f.set(DST, 0);
      f.set(SRC, 6);
      f.set([0x81, 0x00, 0x00, 0x64, 0x88, 0xb5], 12);
      writeFcs(f);
      return f;
    })(), /shorter than the 16-byte tunnel header/],
    ["a length past the frame's end", frameOf(tunnel(FrameKind.Data, record(MRD), 400)), /length 400, but 30 byte\(s\) follow/],
    ["an unknown kind", frameOf(tunnel(0x07, [1, 2, 3, 4])), /kind 0x07/],
    ["a record longer than the frame", frameOf(tunnel(FrameKind.Data, [...be16(500), ...MRD])), /record of 500 bytes runs past the body's end/],
    ["garbage after a valid record", frameOf(tunnel(FrameKind.Data, [...record(MRD), 0xee])), /no room for a record header/],
    ["a record whose size disagrees with its TLP", frameOf(tunnel(FrameKind.Data, record([...MWR, 9, 9, 9, 9]))), /20 bytes, its header implies 16/],
    ["a reserved Fmt/Type", frameOf(tunnel(FrameKind.Data, record([0x1f, ...MRD.slice(1)]))), /Type 0x1f is reserved/],
    ["an ACK whose length disagrees with its SACK blocks", frameOf(tunnel(FrameKind.Ack, [...new Array(12).fill(0), 2, 0x80])), /2 SACK block\(s\) need 30 bytes, the body has 14/],
    ["a CONTROL message of an unknown type", frameOf(tunnel(FrameKind.Control, [0x55, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2])), /unknown message type/],
    ["an OFFER cut short", frameOf(tunnel(FrameKind.Control, [2, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, ...new Array(20).fill(0)])), /OFFER needs a body of 60 bytes, 20 here/],
    ["the good DATA frame again", frameOf(tunnel(FrameKind.Data, [...record(MRD), ...record(MWR, 3)])), null],
  ];
  const path = join(dir, "bad.pcap");
  const writer = new PcapWriter(path);
  cases.forEach(([, frame], i) => writer.write(i * 1000, frame));
  writer.close();
  const rows = fields(path, ["frame.number", "frame.protocols", "iov.tlp.type", "_ws.expert.message", "_ws.lua.error"]);
  assert.equal(rows.length, cases.length);
  rows.forEach(([, protocols, types, message, luaError], i) => {
    const [what, , expected] = cases[i];
    assert.equal(luaError, "", `${what}: Lua error`);
    assert.match(protocols, /:iov$/, `${what}: dissected`);
    if (expected === null) {
      assert.equal(message, "", `${what}: expert info`);
      assert.equal(types, "MRd,MWr");
    } else {
      assert.match(message, expected, what);
    }
  });
});

test("a fuzzed capture: every frame dissected, malformed ones marked, never a Lua error", { skip }, () => {
  const rng = xoroshiro128plus(24);
  const int = (lo: number, hi: number) => uniformInt(rng, lo, hi);
  const seeds = [
    tunnel(FrameKind.Data, [...record(MRD), ...record(MWR, 3), ...record([0x4a, 0, 0, 1, 0x03, 0, 0, 4, 0, 8, 5, 0, 1, 2, 3, 4])]),
    tunnel(FrameKind.Ack, [...new Array(12).fill(1), 1, 0x81, 0, 0, 0, 9, 0, 0, 0, 12]),
    tunnel(FrameKind.Control, [1, 4, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 1, 0, 0, 0, 2, 1, 4, 1, 1, 0, 0, 0, 1]),
    tunnel(FrameKind.Control, [10, 4, 1, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 0, 0, 0, 2, ...new Array(412).fill(0).map((_, i) => i & 0xff)]),
    tunnel(FrameKind.Control, [2, 4, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 1, 0, 0, 0, 2, ...new Array(64).fill(3)]),
  ];
  const path = join(dir, "fuzz.pcap");
  const writer = new PcapWriter(path);
  const count = 3000;
  for (let i = 0; i < count; i++) {
    const payload = seeds[i % seeds.length].slice();
    // Flip a few bytes, then cut the frame short or leave it, as a damaged or hostile frame would be.
    for (let k = int(1, 4); k > 0; k--) payload[int(0, payload.length - 1)] = int(0, 255);
    const cut = int(0, 2) === 0 ? payload.subarray(0, int(0, payload.length)) : payload;
    writer.write(i, frameOf(cut));
  }
  writer.close();
  const rows = fields(path, ["frame.number", "iov.version", "_ws.lua.error"]);
  assert.equal(rows.length, count);
  assert.deepEqual(rows.filter(([, , error]) => error !== "").slice(0, 3), [], "Lua errors");
  assert.deepEqual(rows.filter(([, v]) => v === "").slice(0, 3), [], "frames not dissected as IOV");
});
