// Throws random and mutated mailbox messages at the firmware. The firmware must never
// trap, and every error it reports (and every counter) must match what the reference
// model in board/mailbox-codec.ts predicts for the same bytes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { encodeEvent, EventChecker, MessageReader, type EventMessage, type CommandMessage } from "../../board/mailbox-codec.ts";
import { Counter, HEADER_SIZE, MailboxError, MAX_BODY, MAILBOX_VERSION, NO_TUNNEL, NO_PORT, errorCounter, LogLevel, CardRole } from "../../board/map/mailbox.ts";
import { ControlType, CONTROL_TYPE_LAST, HandshakeBody, Proposal, ALL_CARDS } from "../../board/map/link.ts";
import { encodeRequest } from "../../board/manage-codec.ts";
import { encodeControl, CONTROL_MULTICAST } from "../../board/link-codec.ts";
import { DEFAULT_LINK, pairingKey, adminKey } from "../../tools/sim/scenarios.ts";
import { InProcessFirmware } from "../../tools/engines/inprocess.ts";
import { replay } from "../../tools/engines/index.ts";
import { concat } from "../../board/bytes.ts";
import { Fmt, TlpType } from "../../board/map/pcie.ts";
import { FIRMWARE, WASM3, wasm3Skip, boot, commands } from "./helpers.ts";

function generator(seed: number) {
  const rng: RandomGenerator = xoroshiro128plus(seed);
  const int = (lo: number, hi: number) => uniformInt(rng, lo, hi);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(0, 255));
  let now = 0n;
  let seq = 1;

  const group = DEFAULT_LINK.group;

  /** A management request under the fuzz installation's admin key, for the booted card (serial 0x10000001) or another, mostly of a boot it does not run. */
  function manageRequest(): Uint8Array {
    return encodeRequest({
      destination: int(0, 1) ? CONTROL_MULTICAST : Uint8Array.of(2, 0x10, 0x10, 0, 0, 1), source: Uint8Array.of(2, 0x4d, 0x47, 0, 0, 1),
      vlan: int(0, 10) === 0 ? int(0, 4095) : DEFAULT_LINK.managementVlan,
      op: int(1, 3), newGroup: int(0, 4095), target: [0x1000_0001, ALL_CARDS, int(0, 0x7fffffff)][int(0, 2)],
      bootId: int(0, 1) ? 0 : int(0, 0x7fffffff), counter: BigInt(int(0, 0x7fffffff)) * BigInt(int(0, 0x7fffffff)),
      station: { serial: 0x5a00_0001, bootId: 1 },
    }, adminKey("fuzz"));
  }

  /** A CONTROL frame for the booted card (02:10:10:00:00:01 in group 100), mostly well formed; now and then an authenticated management request. */
  function controlFrame(): Uint8Array {
    if (int(0, 5) === 0) {
      const frame = manageRequest();
      if (int(0, 2) === 0) frame[int(0, frame.length - 1)] ^= 1 << int(0, 7);
      return frame;
    }
    const type = int(0, 10) === 0 ? int(0, 255) : int(ControlType.Discover, CONTROL_TYPE_LAST);
    const sizes: Record<number, number> = { [ControlType.Offer]: HandshakeBody.Proposal + Proposal.SizeV2, [ControlType.Accept]: HandshakeBody.Proposal + Proposal.SizeV2, [ControlType.Auth]: 32 };
    const body = bytes(int(0, 3) === 0 ? int(0, 80) : sizes[type] ?? 4);
    if (type === ControlType.Offer || type === ControlType.Accept) {
      body[HandshakeBody.Proposal + Proposal.VersionMin] = 1;
      body[HandshakeBody.Proposal + Proposal.VersionMax] = int(1, 3);
    }
    const frame = encodeControl({
      destination: int(0, 1) ? CONTROL_MULTICAST : Uint8Array.of(2, 0x10, 0x10, 0, 0, 1),
      source: Uint8Array.of(2, 0x10, 0x20, 0, 0, int(1, 3)),
      vlan: int(0, 10) === 0 ? int(0, 4095) : group,
      session: int(0, 3) === 0 ? int(0, 0x7fffffff) : 0,
      type, version: int(0, 10) === 0 ? int(0, 255) : int(1, 2), role: int(0, 10) === 0 ? int(0, 255) : CardRole.Chassis,
      group: int(0, 10) === 0 ? int(0, 4095) : group, serial: int(0, 0x7fffffff), bootId: int(0, 3), body,
    });
    if (int(0, 4) === 0) frame[int(0, frame.length - 1)] ^= 1 << int(0, 7);
    return frame;
  }

  /** A TLP_RX for the virtual switch: mostly configuration requests for its ports, with random headers among them. */
  function tlpRx(): EventMessage {
    const header = bytes(int(0, 1) ? 12 : 16);
    if (int(0, 2)) header[0] = (int(0, 3) << 5) | [TlpType.Cfg0, TlpType.Cfg1, TlpType.Mem, TlpType.Cpl][int(0, 3)];
    const fmt = header[0] >> 5;
    const size = fmt > Fmt.Data4DW || int(0, 10) === 0 ? int(12, 20) : (fmt & 1 ? 16 : 12) + (fmt & 2 ? 4 : 0);
    const tlp = Uint8Array.from({ length: size }, (_, i) => header[i] ?? int(0, 255));
    return { kind: "tlpRx", reason: int(0, 10) === 0 ? int(0, 255) : int(1, 3), port: int(0, 10) === 0 ? int(0, 255) : int(0, 1) ? int(0, 8) : NO_PORT, tlp };
  }

  function valid(): EventMessage {
    switch (int(0, 13)) {
      case 0:
        now += BigInt(int(0, 1e6));
        return { kind: "time", now: int(0, 50) === 0 ? now - BigInt(int(1, 1000)) : now };
      case 1:
        return { kind: "sync", seq: int(0, 20) === 0 ? int(0, 0x7fffffff) : seq++ };
      case 2:
        return { kind: "timerFired", channel: int(0, 10) === 0 ? int(1, 255) : 0 };
      case 3:
        return { kind: "entropy", bytes: bytes(int(1, 64)) };
      case 4:
        return { kind: "countersQuery" };
      case 5:
        return boot({ role: int(0, 2), resetCause: int(0, 4), logLevel: int(0, 4), slots: int(0, 9) });
      case 6: {
        const keepaliveNs = int(0, 3) ? DEFAULT_LINK.keepaliveNs : int(0, 2000);
        return {
          kind: "config", ...DEFAULT_LINK, keepaliveNs, pairingKey: pairingKey("fuzz"), adminKey: adminKey("fuzz"),
          ...(int(0, 1) ? {} : { group: int(0, 4095), protocolMax: int(0, 3), ackPolicies: int(0, 4), mtu: int(500, 9100), maxPayload: 1 << int(6, 13) }),
        };
      }
      case 7:
      case 8:
      case 9:
      case 10:
        return { kind: "frameRx", tunnel: int(0, 10) === 0 ? int(0, 255) : int(0, 1) ? 0 : NO_TUNNEL, port: int(0, 10) === 0 ? int(0, 255) : int(0, 1), frame: controlFrame() };
      case 11:
      case 12:
        return tlpRx();
      default:
        return { kind: "time", now };
    }
  }

  function mutated(): Uint8Array {
    const m = encodeEvent(valid());
    switch (int(0, 5)) {
      case 0: // flip a byte anywhere, header included
        m[int(0, m.length - 1)] ^= 1 << int(0, 7);
        return m;
      case 1: // another type
        m[2] = int(0, 255);
        return m;
      case 2: // reserved flags
        m[3] = int(1, 255);
        return m;
      case 3: { // body of another length, header kept consistent
        const body = bytes(int(0, 80));
        const out = new Uint8Array(HEADER_SIZE + body.length);
        out.set(m.subarray(0, HEADER_SIZE));
        out[0] = body.length & 0xff;
        out[1] = body.length >> 8;
        out.set(body, HEADER_SIZE);
        return out;
      }
      case 4: { // oversize: declared length above MAX_BODY, followed by that many bytes
        const length = int(MAX_BODY + 1, MAX_BODY + 600);
        const out = new Uint8Array(HEADER_SIZE + length);
        out.set([length & 0xff, length >> 8, m[2], 0]);
        return out;
      }
      default: // declared length that disagrees with the bytes that follow
        m[0] = int(0, 60);
        return m;
    }
  }

  function garbage(): Uint8Array {
    const body = bytes(int(0, 48));
    return concat([Uint8Array.of(body.length, 0, int(0, 255), int(0, 20) === 0 ? 1 : 0), body]);
  }

  return {
    int,
    message(): Uint8Array {
      const kind = int(0, 9);
      return kind < 4 ? encodeEvent(valid()) : kind < 8 ? mutated() : garbage();
    },
  };
}

/** A fuzz stream: a valid boot, `count` random messages, padding back to a message boundary, then a counters query. */
function fuzzStream(seed: number, count: number): { stream: Uint8Array; gen: ReturnType<typeof generator> } {
  const gen = generator(seed);
  // Some traffic before boot (including a BOOT of another mailbox version), then a valid BOOT.
  const parts = [encodeEvent({ kind: "time", now: 0n }), encodeEvent(boot({ mailboxVersion: MAILBOX_VERSION + 1 }))];
  for (let i = 0; i < 100; i++) parts.push(gen.message());
  const reader = new MessageReader("events");
  reader.push(concat(parts));
  for (const _ of reader.all());
  parts.push(new Uint8Array(reader.bytesToBoundary()), encodeEvent(boot({ logLevel: LogLevel.Error })));
  for (let i = 0; i < count; i++) parts.push(gen.message());
  const tail = new MessageReader("events");
  const body = concat(parts);
  tail.push(body);
  for (const _ of tail.all());
  return { stream: concat([body, new Uint8Array(tail.bytesToBoundary()), encodeEvent({ kind: "countersQuery" })]), gen };
}

function expectedErrors(stream: Uint8Array) {
  const reader = new MessageReader("events");
  const checker = new EventChecker();
  reader.push(stream);
  const errors: CommandMessage[] = [];
  let accepted = 0;
  let syncs = 0;
  for (const raw of reader.all()) {
    const verdict = checker.check(raw);
    if (!raw.framing && raw.type === 0x03) syncs++;
    if (verdict) {
      errors.push({ kind: "error", code: verdict.error, messageType: raw.type, bodyLength: raw.length, streamOffset: raw.offset, detail: verdict.detail });
    } else accepted++;
  }
  assert.equal(reader.bytesToBoundary(), 0, "stream ends on a message boundary");
  return { errors, accepted, syncs };
}

test("100 000 random and mutated messages: no trap, every error and counter as predicted", () => {
  const count = 100_000;
  const { stream, gen } = fuzzStream(20261124, count);
  const firmware = new InProcessFirmware({ firmware: FIRMWARE });
  const out: Uint8Array[] = [];
  for (let at = 0; at < stream.length; ) {
    const n = gen.int(1, 4096);
    out.push(firmware.feed(stream.subarray(at, at + n)));
    at += n;
  }
  const output = concat(out);
  const actual = commands(output);
  const { errors, accepted, syncs } = expectedErrors(stream);
  assert.ok(errors.length > count / 4, `the stream exercises errors (${errors.length} of ${count} messages)`);
  const byCode = new Set(errors.map((e) => (e.kind === "error" ? e.code : 0)));
  for (const code of [MailboxError.UnknownType, MailboxError.BadLength, MailboxError.Oversize, MailboxError.Reserved, MailboxError.BadField, MailboxError.OutOfOrder, MailboxError.Version]) {
    assert.ok(byCode.has(code), `stream exercises ${MailboxError[code]}`);
  }
  assert.deepEqual(actual.filter((c) => c.kind === "error"), errors);

  const report = actual[actual.length - 1];
  assert.equal(report.kind, "counters");
  const values = (report as Extract<CommandMessage, { kind: "counters" }>).values;
  assert.equal(values[Counter.Errors], errors.length);
  for (let code = MailboxError.UnknownType; code <= MailboxError.Truncated; code++) {
    assert.equal(values[errorCounter(code)], errors.filter((e) => e.kind === "error" && e.code === code).length, MailboxError[code]);
  }
  assert.equal(values[Counter.EventsIn], accepted);
  assert.equal(values[Counter.Batches], syncs);
  assert.equal(values[Counter.BytesIn], stream.length);
  assert.equal(values[Counter.CommandsOut], actual.length);
  assert.equal(values[Counter.BytesOut], output.length);
  // The link protocol ran on the frames: it sent, and it refused frames of every kind.
  for (const counter of [Counter.ControlTx, Counter.ControlMalformed, Counter.ForeignGroup, Counter.ControlIgnored]) {
    assert.ok(values[counter] > 0, `the stream exercises ${Counter[counter]} (${values[counter]})`);
  }
});

test("a stream that ends inside a message is reported as truncated at end of input", () => {
  const stream = concat([encodeEvent(boot()), encodeEvent({ kind: "countersQuery" }).subarray(0, 3)]);
  const out = commands(new InProcessFirmware({ firmware: FIRMWARE }).runToEnd(stream));
  assert.deepEqual(out[out.length - 1], { kind: "error", code: MailboxError.Truncated, messageType: 0, bodyLength: 0, streamOffset: 32, detail: 3 });
});

const crossEngine = fuzzStream(7, 5_000).stream;

test("a fuzz stream gives byte-identical output in-process and in a Node WASI child", async () => {
  const inproc = new InProcessFirmware({ firmware: FIRMWARE }).runToEnd(crossEngine);
  const child = await replay("node-wasi", { firmware: FIRMWARE }, crossEngine);
  assert.equal(child.exitCode, 0);
  assert.deepEqual(child.commands, inproc);
});

test("a fuzz stream gives byte-identical output under wasm3", { skip: wasm3Skip }, async () => {
  const inproc = new InProcessFirmware({ firmware: FIRMWARE }).runToEnd(crossEngine);
  const real = await replay("wasm3", { firmware: FIRMWARE, wasm3: WASM3 }, crossEngine);
  assert.equal(real.exitCode, 0);
  assert.deepEqual(real.commands, inproc);
});
