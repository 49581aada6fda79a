// What firmware.wasm must satisfy to run on the card (DESIGN.md section 2): WASI imports
// only, Wasm features wasm3 supports, one 64 KiB page, a size budget, the exports a
// WASI runner and the engines call, and (on the debug build) no heap allocator at all.

import binaryen from "binaryen";
import { WasmReader, sections } from "./wasm-binary.ts";

/**
 * What the card's on-chip RAM affords (docs/firmware-build.md): wasm3 keeps the module, its
 * compiled code (several times the module's size) and the 64 KiB memory in RAM.
 */
export const SIZE_BUDGET = 40 * 1024;
export const PAGE_LIMIT = 1;
export const ALLOWED_IMPORTS = ["fd_read", "fd_write", "proc_exit"].map((name) => `wasi_snapshot_preview1.${name}`);
export const REQUIRED_EXPORTS = ["_start", "step", "memory"];
/** Features wasm3 implements; anything else must not appear in the code. */
export const ALLOWED_FEATURES =
  binaryen.Features.MVP | binaryen.Features.MutableGlobals | binaryen.Features.SignExt |
  binaryen.Features.NontrappingFPToInt | binaryen.Features.BulkMemory | binaryen.Features.Multivalue;
export const ALLOCATOR_FUNCTIONS = ["~lib/rt/stub/__alloc", "~lib/rt/stub/__new", "~lib/rt/tlsf/__alloc", "~lib/rt/itcms/__new"];

export interface MemoryLimits {
  initial: number;
  maximum: number | null;
}

/** The limits of the module's memory, declared (section 5) or imported (section 2). */
export function memoryLimits(bytes: Uint8Array): MemoryLimits | null {
  const limits = (r: WasmReader) => {
    const flags = r.u32();
    const initial = r.u32();
    return { initial, maximum: flags & 1 ? r.u32() : null };
  };
  for (const section of sections(bytes)) {
    const r = new WasmReader(section.body);
    if (section.id === 5 && r.u32() > 0) return limits(r);
    if (section.id !== 2) continue;
    for (let n = r.u32(); n > 0; n--) {
      r.name(); // module name, then field name
      r.name();
      const kind = r.byte();
      if (kind === 2) return limits(r);
      if (kind === 0) r.u32();
      else if (kind === 1) {
        r.byte();
        limits(r);
      } else if (kind === 3) r.pos += 2;
      else throw new Error(`unknown import kind ${kind}`);
    }
  }
  return null;
}

/** Every reason `bytes` cannot ship as firmware.wasm; empty when it can. */
export function checkFirmware(bytes: Uint8Array): string[] {
  const problems: string[] = [];
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (error) {
    return [`not a valid WebAssembly module: ${(error as Error).message}`];
  }
  for (const imp of WebAssembly.Module.imports(module)) {
    const name = `${imp.module}.${imp.name}`;
    if (!ALLOWED_IMPORTS.includes(name)) problems.push(`imports ${name}; only ${ALLOWED_IMPORTS.join(", ")} are allowed`);
  }
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of REQUIRED_EXPORTS) if (!exports.includes(name)) problems.push(`does not export ${name}`);
  const memory = memoryLimits(bytes);
  if (!memory) problems.push("has no memory");
  else if (memory.initial > PAGE_LIMIT || memory.maximum === null || memory.maximum > PAGE_LIMIT) {
    problems.push(`memory must be at most ${PAGE_LIMIT} page of 64 KiB with that maximum; it declares initial ${memory.initial}, maximum ${memory.maximum ?? "none"}`);
  }
  if (bytes.length > SIZE_BUDGET) problems.push(`is ${bytes.length} bytes, over the ${SIZE_BUDGET}-byte budget`);
  const features = featureProblems(bytes);
  if (features) problems.push(`uses WebAssembly features wasm3 lacks (only MVP, mutable-globals, sign-extension, non-trapping float-to-int, bulk-memory and multi-value are allowed): ${features}`);
  return problems;
}

/** Validates under the allowed feature set; returns binaryen's complaint or null. */
export function featureProblems(bytes: Uint8Array): string | null {
  const module = binaryen.readBinary(bytes);
  try {
    module.setFeatures(ALLOWED_FEATURES);
    // binaryen prints validation errors through console streams bound when it loaded:
    // catch them at the stream so they become the reason instead of noise.
    const messages: string[] = [];
    const streams = [process.stdout, process.stderr];
    const writes = streams.map((stream) => stream.write);
    for (const stream of streams) stream.write = ((chunk: string | Uint8Array) => messages.push(String(chunk)) > 0) as typeof stream.write;
    let valid: number;
    try {
      valid = module.validate();
    } finally {
      streams.forEach((stream, i) => (stream.write = writes[i]));
    }
    if (valid) return null;
    const first = messages.join("\n").split("\n").find((line) => line.includes("error")) ?? "validation failed";
    return first.replace(/^\[wasm-validator error[^\]]*\]\s*/, "").trim();
  } finally {
    module.dispose();
  }
}

/** Names of heap allocator functions present in a build that keeps its name section. */
export function allocatorFunctions(debugBytes: Uint8Array): string[] {
  binaryen.setDebugInfo(true);
  const module = binaryen.readBinary(debugBytes);
  try {
    const found: string[] = [];
    for (let i = 0; i < module.getNumFunctions(); i++) {
      const name = binaryen.getFunctionInfo(module.getFunctionByIndex(i)).name;
      if (ALLOCATOR_FUNCTIONS.includes(name)) found.push(name);
    }
    return found;
  } finally {
    module.dispose();
    binaryen.setDebugInfo(false);
  }
}
