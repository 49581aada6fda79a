// `iov build --sizes`: where the release's bytes go, on a small named module and on the firmware.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { releaseSizes } from "../../tools/build/firmware.ts";
import { formatSizes, moduleOf, sizeReport, type SizeReport } from "../../tools/build/sizes.ts";
import { SIZE_BUDGET } from "../../tools/build/checks.ts";
import { FIRMWARE } from "./helpers.ts";

function named(text: string): Uint8Array {
  const module = binaryen.parseText(text);
  binaryen.setDebugInfo(true);
  try {
    return module.emitBinary();
  } finally {
    binaryen.setDebugInfo(false);
    module.dispose();
  }
}

const item = (report: SizeReport, module: string, name: string) => report.modules.find((m) => m.module === module)?.items.find((i) => i.name === name);
const total = (report: SizeReport) => report.modules.reduce((sum, m) => sum + m.bytes, 0);

test("a function's module is its name's path; generics and members keep to their library file", () => {
  assert.equal(moduleOf("assembly/link/link/onOffer"), "assembly/link/link.ts");
  assert.equal(moduleOf("~lib/staticarray/StaticArray<~lib/string/String>#__get"), "~lib/staticarray");
  assert.equal(moduleOf("~start"), "(compiler)");
});

test("functions go to their modules, data to the module whose code holds its address, and every byte is counted once", () => {
  const bytes = named(`(module
    (memory 1)
    (data (i32.const 1024) "0123456789abcdef0123")
    (data (i32.const 4096) "table")
    (func $assembly/a/small (result i32) (i32.const 1))
    (func $assembly/b/big (result i32) (i32.add (i32.load (i32.const 1024)) (i32.add (i32.const 2) (i32.const 3))))
    (func $assembly/b/other (result i32) (i32.const 4100))
    (export "small" (func $assembly/a/small)) (export "big" (func $assembly/b/big)) (export "other" (func $assembly/b/other)))`);
  const report = sizeReport(bytes, null);
  assert.ok(report.bytes < bytes.length, "the name section is not what ships, so it is not counted");
  assert.equal(total(report), report.bytes);
  assert.equal(report.sections.reduce((sum, s) => sum + s.bytes, 0), report.bytes);
  const b = report.modules.find((m) => m.module === "assembly/b.ts")!;
  assert.deepEqual(b.items.filter((i) => i.kind === "function").map((i) => i.name), ["assembly/b/big", "assembly/b/other"], "largest first");
  assert.ok(item(report, "assembly/b.ts", "20 bytes at 0x400"), "the segment at 1024 belongs to the code that loads from it");
  assert.ok(item(report, "assembly/b.ts", "5 bytes at 0x1000"), "an address inside a segment counts");
  assert.equal(report.modules.find((m) => m.module === "assembly/a.ts")!.items.length, 1);
  assert.match(formatSizes(report, 100), /^firmware\.wasm: \d+ bytes, \d+\.\d % of the 100-byte budget/);
});

test("the firmware's sizes add up to firmware.wasm, with each module's functions and texts", async () => {
  const release = new Uint8Array(readFileSync(FIRMWARE));
  const report = await releaseSizes(release, join(mkdtempSync(join(tmpdir(), "iov-sizes-")), "firmware.names.wasm"));
  assert.equal(report.bytes, release.length);
  assert.equal(total(report), release.length);
  assert.ok(report.bytes <= SIZE_BUDGET, `${report.bytes} bytes`);
  assert.ok(item(report, "assembly/link/link.ts", "assembly/link/link/enter"));
  const texts = report.modules.find((m) => m.module === "assembly/console/console.ts")!.items.find((i) => i.kind === "texts");
  assert.match(texts?.name ?? "", /^\d+ texts$/);
  const text = formatSizes(report, SIZE_BUDGET);
  assert.match(text, /\nassembly\/link\/link\.ts +[\d ]+ +\d+\.\d %\n/);
  assert.match(text, /\n +[\d ]+  enter\n/);
});
