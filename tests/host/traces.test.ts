import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventChecker, MessageReader, decodeCommand } from "../../board/mailbox-codec.ts";
import { MAILBOX_VERSION } from "../../board/map/mailbox.ts";
import { replay, type EngineKind } from "../../tools/engines/index.ts";
import { decodeLines, firstDifference } from "../../tools/cli/trace.ts";
import { FIXTURES, FIRMWARE, WASM3, wasm3Skip, iov } from "./helpers.ts";

const goldens = readdirSync(FIXTURES).filter((f) => f.endsWith(".in")).map((f) => f.slice(0, -3)).sort();
const read = (path: string) => new Uint8Array(readFileSync(path));

test("the golden traces cover a whole session, every mailbox error, and a version mismatch", () => {
  assert.deepEqual(goldens, ["default-chassis", "default-host", "malformed", "version-mismatch"]);
});

for (const engine of ["node", "node-wasi", "wasm3"] as EngineKind[]) {
  test(`every golden trace replays byte-identically on ${engine}`, { skip: engine === "wasm3" && wasm3Skip }, async () => {
    for (const name of goldens) {
      const result = await replay(engine, { firmware: FIRMWARE, wasm3: WASM3 }, read(`${FIXTURES}${name}.in`));
      assert.equal(result.exitCode, 0, `${name}: ${result.log}`);
      assert.equal(firstDifference(read(`${FIXTURES}${name}.out`), result.commands), null, name);
    }
  });
}

test("every ERROR in the malformed golden trace is one the reference model predicts, in order", () => {
  const events = new MessageReader("events");
  events.push(read(`${FIXTURES}malformed.in`));
  const checker = new EventChecker();
  const predicted = [...events.all()].flatMap((raw) => {
    const verdict = checker.check(raw);
    return verdict ? [{ code: verdict.error, offset: raw.offset, detail: verdict.detail }] : [];
  });
  const commands = new MessageReader("commands");
  commands.push(read(`${FIXTURES}malformed.out`));
  const reported = [...commands.all()].map(decodeCommand).flatMap((c) => (c.kind === "error" ? [{ code: c.code, offset: c.streamOffset, detail: c.detail }] : []));
  assert.deepEqual(reported.slice(0, -1), predicted, "all but the final Truncated");
  assert.equal(reported.length, 15);
});

test("trace decode names every message and marks what the firmware rejects", () => {
  const lines = decodeLines(read(`${FIXTURES}malformed.in`), "events");
  assert.match(lines[1], /^#1\s+@12\s+COUNTERS_QUERY  <- firmware rejects: OutOfOrder \(detail 0\)$/);
  assert.ok(lines.some((l) => /0x55 \(type 0x55, flags 0x0, 0-byte body\): malformed, UnknownType/.test(l)));
  assert.match(lines[lines.length - 1], /6 trailing byte\(s\) do not form a whole message: truncated/);
  const out = decodeLines(read(`${FIXTURES}version-mismatch.out`), "commands");
  assert.deepEqual(out.map((l) => l.replace(/^#\d+\s+@\d+\s+/, "")), [
    `ERROR Version: BOOT (28-byte body) at offset 12, detail ${MAILBOX_VERSION}`,
    `HELLO mailbox v${MAILBOX_VERSION}, VersionMismatch, firmware 0.1.0`,
    "SYNC_ACK seq 0",
    "ERROR OutOfOrder: COUNTERS_QUERY (0-byte body) at offset 64, detail 0",
    "SYNC_ACK seq 1",
  ]);
});

test("trace decode names the CONTROL frame inside FRAME_TX", () => {
  const lines = decodeLines(read(`${FIXTURES}default-host.out`), "commands");
  assert.ok(lines.some((l) => /FRAME_TX \d+ bytes: DISCOVER v1 from 02:10:10:00:00:01 to 03:49:4f:56:00:01, group 100$/.test(l)));
  assert.ok(lines.some((l) => /FRAME_TX \d+ bytes: READY v4 from 02:10:10:00:00:01 to 02:10:20:00:00:01, group 100, session 0x[0-9a-f]{8}$/.test(l)));
});

test("firstDifference points at the first command that differs", () => {
  const out = read(`${FIXTURES}default-host.out`);
  const changed = out.slice();
  changed[40] ^= 1; // the address of FLASH_READ #3 at byte 36 (the running image's header)
  assert.equal(firstDifference(out, changed), "command #3 at byte 36: expected FLASH_READ 0x00000, 80 bytes, got FLASH_READ 0x00001, 80 bytes");
  assert.match(firstDifference(out, out.subarray(0, 36))!, /^command #3 at byte 36: expected FLASH_READ .*, got end of output$/);
  assert.equal(firstDifference(out, out.slice()), null);
});

test("iov sim --record writes traces that replay to the recorded output, the same on every run", () => {
  const runs = [0, 1].map(() => {
    const dir = mkdtempSync(join(tmpdir(), "iov-record-"));
    const result = iov(["sim", "--quiet", "--duration", "2s", "--seed", "9", "--record", dir]);
    assert.equal(result.status, 0, result.stderr);
    return dir;
  });
  for (const card of ["host", "chassis"]) {
    for (const ext of ["in", "out", "log"]) {
      assert.deepEqual(read(join(runs[0], `${card}.${ext}`)), read(join(runs[1], `${card}.${ext}`)), `${card}.${ext}`);
    }
    const replayed = iov(["trace", "replay", join(runs[0], `${card}.in`), "--engine", "node-wasi"]);
    assert.equal(replayed.status, 0, replayed.stderr);
    assert.match(replayed.stdout, /output identical to .* \(\d+ bytes, \d+ commands\)/);
  }
});

test("iov trace replay under wasm3 reproduces a golden trace", { skip: wasm3Skip }, () => {
  const result = iov(["trace", "replay", `${FIXTURES}malformed.in`, "--engine", "wasm3", "--wasm3", WASM3!]);
  assert.equal(result.status, 0, result.stderr);
});

test("trace decode never reports more trailing bytes than the stream has: an oversize message cut short says how much of it is missing", () => {
  const oversize = Uint8Array.of(0xff, 0xff, 0x02, 0x00, ...new Array(10).fill(0xaa));
  const lines = decodeLines(oversize, "events");
  assert.match(lines[0], /Oversize/);
  assert.equal(lines.at(-1), "(the stream ends inside the oversize message above, 65525 byte(s) short of the end its header declares)");
  const cut = decodeLines(Uint8Array.of(0x08, 0x00, 0x02, 0x00, 1, 2, 3), "events");
  assert.equal(cut.at(-1), "(7 trailing byte(s) do not form a whole message: truncated)");
  for (let seed = 1; seed <= 50; seed++) {
    let x = seed;
    const bytes = Uint8Array.from({ length: 2000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
    const last = decodeLines(bytes, "events").at(-1) ?? "";
    const trailing = /^\((\d+) trailing byte/.exec(last);
    if (trailing) assert.ok(Number(trailing[1]) <= bytes.length, `seed ${seed}: ${last}`);
  }
});
