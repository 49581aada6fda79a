// The build's text transform (tools/build/text-transform.mjs): string literals in firmware
// sources become addresses in one UTF-8 table, compiled here from small sources laid out as
// the firmware is (assembly/text.ts beside the code that uses it).

import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import asc from "assemblyscript/asc";
import { ROOT } from "../../tools/paths.ts";

const TRANSFORM = join(ROOT, "tools/build/text-transform.mjs");

/** Compiles `index` (assembly/index.ts) with the firmware's text module and the transform. */
async function compile(index: string): Promise<{ error: string | null; exports: Record<string, (...args: number[]) => number>; memory: Uint8Array }> {
  const dir = mkdtempSync(join(tmpdir(), "iov-text-"));
  mkdirSync(join(dir, "assembly"));
  copyFileSync(join(ROOT, "assembly/text.ts"), join(dir, "assembly/text.ts"));
  writeFileSync(join(dir, "assembly/index.ts"), index);
  const stderr = asc.createMemoryStream();
  const { error } = await asc.main(
    ["assembly/index.ts", "--baseDir", dir, "--runtime", "stub", "--noAssert", "-O3", "--transform", TRANSFORM, "--outFile", "out.wasm"],
    { stderr, stdout: asc.createMemoryStream() },
  );
  if (error) return { error: `${error.message} ${stderr.toString()}`, exports: {}, memory: new Uint8Array() };
  const { instance } = await WebAssembly.instantiate(readFileSync(join(dir, "out.wasm")), { env: { abort: () => {} } });
  const exports = instance.exports as Record<string, unknown>;
  return { error: null, exports: exports as Record<string, (...args: number[]) => number>, memory: new Uint8Array((exports.memory as WebAssembly.Memory).buffer) };
}

const textAt = (memory: Uint8Array, at: number) => new TextDecoder().decode(memory.subarray(at + 1, at + 1 + memory[at]));

test("a literal becomes the address of a length byte and its bytes; identical literals share one entry", async () => {
  const { error, exports, memory } = await compile(`
    import { Text, textLength, textByte } from "./text";
    export function greeting(): Text { return "link: group "; }
    export function again(): Text { return "link: group "; }
    export function empty(): Text { return ""; }
    export function length(): i32 { return textLength("abc"); }
    export function second(): i32 { return textByte("abc", 1); }
  `);
  assert.equal(error, null);
  assert.equal(textAt(memory, exports.greeting()), "link: group ");
  assert.equal(exports.again(), exports.greeting());
  assert.equal(memory[exports.empty()], 0);
  assert.equal(exports.length(), 3);
  assert.equal(exports.second(), "b".charCodeAt(0));
});

test("texts in static arrays and conditionals are table entries too; import paths are left alone", async () => {
  const { error, exports, memory } = await compile(`
    import { Text } from "./text";
    const NAMES: StaticArray<Text> = ["help", "status"];
    export function name(i: i32): Text { return NAMES[i]; }
    export function pick(yes: bool): Text { return yes ? "yes" : "no"; }
  `);
  assert.equal(error, null);
  assert.deepEqual([textAt(memory, exports.name(0)), textAt(memory, exports.name(1))], ["help", "status"]);
  assert.equal(textAt(memory, exports.pick(1)), "yes");
  assert.equal(textAt(memory, exports.pick(0)), "no");
});

test("a text longer than 255 bytes and a template literal fail the build with the file named", async () => {
  const long = await compile(`import { Text } from "./text"; export function f(): Text { return "${"x".repeat(256)}"; }`);
  assert.match(long.error ?? "", /assembly\/index\.ts: a text of 256 bytes; the firmware's texts hold at most 255/);
  const template = await compile('import { Text } from "./text"; export function f(): Text { return `a${1}`; }');
  assert.match(template.error ?? "", /assembly\/index\.ts: a template literal; firmware texts are plain literals/);
});

test("a text with a byte that is not printable ASCII fails the build: the log and the console copy texts as they are", async () => {
  const micro = await compile('import { Text } from "./text"; export function f(): Text { return "5 \u00b5s"; }');
  assert.match(micro.error ?? "", /assembly\/index\.ts: the text "5 µs" has a byte 0xc2 at 2; the firmware's texts are printable ASCII/);
  const newline = await compile('import { Text } from "./text"; export function f(): Text { return "a\\nb"; }');
  assert.match(newline.error ?? "", /has a byte 0xa at 1/);
});
