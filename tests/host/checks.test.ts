import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import binaryen from "binaryen";
import { checkFirmware, allocatorFunctions, memoryLimits, SIZE_BUDGET } from "../../tools/build/checks.ts";
import { FIRMWARE } from "./helpers.ts";
import { FIRMWARE_DEBUG } from "../../tools/paths.ts";

const WASI = `(import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))`;
const EXPORTS = `(func $s (result i32) (i32.const 0)) (func $st) (export "step" (func $s)) (export "_start" (func $st))`;

function wasm(body: string, features = binaryen.Features.All): Uint8Array {
  const module = binaryen.parseText(`(module ${body})`);
  module.setFeatures(features);
  const bytes = module.emitBinary();
  module.dispose();
  return bytes;
}

test("the built firmware passes every check", () => {
  assert.deepEqual(checkFirmware(new Uint8Array(readFileSync(FIRMWARE))), []);
  assert.deepEqual(allocatorFunctions(new Uint8Array(readFileSync(FIRMWARE_DEBUG))), []);
});

test("a minimal module with WASI imports, one page and the required exports passes", () => {
  assert.deepEqual(checkFirmware(wasm(`${WASI} (memory (export "memory") 1 1) ${EXPORTS}`)), []);
});

test("an import outside the allowed WASI functions is refused by name", () => {
  const problems = checkFirmware(wasm(`(import "env" "abort" (func (param i32 i32 i32 i32))) (memory (export "memory") 1 1) ${EXPORTS}`));
  assert.deepEqual(problems, ["imports env.abort; only wasi_snapshot_preview1.fd_read, wasi_snapshot_preview1.fd_write, wasi_snapshot_preview1.proc_exit are allowed"]);
  const clock = checkFirmware(wasm(`(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32))) (memory (export "memory") 1 1) ${EXPORTS}`));
  assert.match(clock[0], /imports wasi_snapshot_preview1.clock_time_get/);
});

test("SIMD, reference types and other features wasm3 lacks are refused", () => {
  const simd = checkFirmware(wasm(`(memory (export "memory") 1 1) ${EXPORTS} (func (export "v") (result v128) (v128.const i32x4 1 2 3 4))`));
  assert.equal(simd.length, 1);
  assert.match(simd[0], /^uses WebAssembly features wasm3 lacks .*: unexpected false: all used features should be allowed/);
  const tail = checkFirmware(wasm(`(memory (export "memory") 1 1) ${EXPORTS} (func $t (result i32) (return_call $t))`));
  assert.match(tail[0], /^uses WebAssembly features wasm3 lacks .*return_call\* requires tail calls/);
});

test("bulk memory and sign extension are allowed", () => {
  assert.deepEqual(checkFirmware(wasm(`(memory (export "memory") 1 1) ${EXPORTS} (func (export "b") (memory.fill (i32.const 0) (i32.const 0) (i32.const 1)) (drop (i32.extend8_s (i32.const 1))))`)), []);
});

test("more than one page, or a memory that may grow, is refused", () => {
  assert.match(checkFirmware(wasm(`(memory (export "memory") 2 2) ${EXPORTS}`))[0], /initial 2, maximum 2/);
  assert.match(checkFirmware(wasm(`(memory (export "memory") 1) ${EXPORTS}`))[0], /initial 1, maximum none/);
  assert.deepEqual(memoryLimits(wasm(`${WASI} (memory (export "memory") 1 1)`)), { initial: 1, maximum: 1 });
  assert.deepEqual(memoryLimits(wasm(`(import "env" "memory" (memory 3 7))`)), { initial: 3, maximum: 7 });
});

test("a module over the size budget is refused with its size", () => {
  const data = "\\ff".repeat(SIZE_BUDGET);
  const problems = checkFirmware(wasm(`(memory (export "memory") 1 1) (data (i32.const 0) "${data}") ${EXPORTS}`));
  assert.match(problems[0], new RegExp(`^is \\d+ bytes, over the ${SIZE_BUDGET}-byte budget$`));
});

test("missing exports and garbage are refused", () => {
  assert.deepEqual(checkFirmware(wasm(`(memory 1 1)`)), ["does not export _start", "does not export step", "does not export memory"]);
  assert.match(checkFirmware(new TextEncoder().encode("not wasm at all"))[0], /^not a valid WebAssembly module/);
});

test("a heap allocator in the debug build is found by name", () => {
  binaryen.setDebugInfo(true);
  const bytes = wasm(`(func $~lib/rt/stub/__alloc (param i32) (result i32) (local.get 0)) (export "a" (func $~lib/rt/stub/__alloc))`);
  binaryen.setDebugInfo(false);
  assert.deepEqual(allocatorFunctions(bytes), ["~lib/rt/stub/__alloc"]);
});
