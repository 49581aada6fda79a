// Instruction metering: a copy of firmware.wasm that counts the WebAssembly instructions it
// executes, the way Wasm runtimes meter gas. The code of every function is cut into straight
// runs (a run ends where control may leave it: a branch, a return, the arms of an if, the end of
// a block or loop, the start of a loop body); at the start of each run the copy adds the run's
// instruction count to a 64-bit global, `iov_meter`. So the count is exact, and the same on every
// engine: it is a property of the module and its input, not of who runs it.
//
// What counts: every instruction but the structural markers `block`, `loop`, `else` and `end`,
// and `nop` (an interpreter compiles them away). A call counts once at the caller; the callee's
// instructions count in the callee.
//
// wasm3 compiles a function the first time it is called. So the copy also adds, at each
// function's first entry, the size of its body in bytes to a third global, `iov_meter_compiled`:
// what the interpreter had to compile so far. Which functions were entered is a bitmap of
// 64-bit globals, exported as `iov_meter_seen_K` (functions 64K to 64K+63 of the module's own):
// the host sets a bit for a function it has the interpreter compile ahead (metered.ts).
//
// A runaway loop is stopped: at every function entry and loop header the copy compares the count
// with a second global, `iov_meter_limit`, and traps past it. The host sets the limit before
// each batch (docs/softcore.md).
//
// The copy's commands are the release's byte for byte (tests/host/meter.test.ts replays every
// golden trace through both). At the end of `_start` (end of input) it writes the final count,
// 8 bytes little-endian, to fd 3, so a WASI runner whose parent opened fd 3 reports it too.
// The release that is flashed is never instrumented.

import { WasmReader, functionBodies, readImports, sections } from "../build/wasm-binary.ts";

export const METER_GLOBAL = "iov_meter";
export const LIMIT_GLOBAL = "iov_meter_limit";
export const COMPILED_GLOBAL = "iov_meter_compiled";
/** Bit N % 64 of `iov_meter_seen_K`, K = floor(N / 64), is set once the module's own function N was entered (or compiled ahead). */
export const SEEN_PREFIX = "iov_meter_seen_";
/** With `profile`, the instructions executed in function N (module index) are in `iov_profile_N`. */
export const PROFILE_PREFIX = "iov_profile_";
/** The file descriptor on which `_start` reports the final count. */
export const METER_FD = 3;

function leb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return out;
}

function sleb(value: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(value & 0x7fn);
    value >>= 7n;
    if ((value === 0n && (b & 0x40) === 0) || (value === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
const nameOf = (text: string) => vec([...new TextEncoder().encode(text)].map((b) => [b]));

/** Where control flow splits; a run ends after the instruction (or, for markers, at it). */
const enum Flow {
  Plain,
  /** Not counted, and a new run starts after it: loop, else, end. */
  StartsRun,
  /** Not counted; control falls into it: block. */
  Marker,
  /** Counted, and a new run starts after it: if, br, br_if, br_table, return, unreachable. */
  EndsRun,
}

/** Skips the immediates of the instruction `op` (the opcode read); says how it shapes the runs. */
function skipImmediates(r: WasmReader, op: number): Flow {
  switch (op) {
    case 0x02: // block
      r.skipLeb();
      return Flow.Marker;
    case 0x03: // loop
      r.skipLeb();
      return Flow.StartsRun;
    case 0x04: // if
      r.skipLeb();
      return Flow.EndsRun;
    case 0x05: // else
    case 0x0b: // end
      return Flow.StartsRun;
    case 0x01: // nop
      return Flow.Marker;
    case 0x00: // unreachable
    case 0x0f: // return
      return Flow.EndsRun;
    case 0x0c: // br
    case 0x0d: // br_if
      r.u32();
      return Flow.EndsRun;
    case 0x0e: // br_table
      for (let n = r.u32() + 1; n > 0; n--) r.u32();
      return Flow.EndsRun;
    case 0x10: // call
      r.u32();
      return Flow.Plain;
    case 0x11: // call_indirect
      r.u32();
      r.u32();
      return Flow.Plain;
    case 0x1c: // select with types
      for (let n = r.u32(); n > 0; n--) r.byte();
      return Flow.Plain;
    case 0x3f: // memory.size
    case 0x40: // memory.grow
      r.byte();
      return Flow.Plain;
    case 0x41: // i32.const
    case 0x42: // i64.const
      r.skipLeb();
      return Flow.Plain;
    case 0x43: // f32.const
      r.pos += 4;
      return Flow.Plain;
    case 0x44: // f64.const
      r.pos += 8;
      return Flow.Plain;
    case 0xfc: {
      const sub = r.u32();
      if (sub <= 7) return Flow.Plain; // saturating truncations
      if (sub === 8) {
        r.u32(); // memory.init: data index, memory
        r.byte();
      } else if (sub === 9) r.u32(); // data.drop
      else if (sub === 10) r.pos += 2; // memory.copy
      else if (sub === 11) r.byte(); // memory.fill
      else throw new Error(`instruction 0xfc ${sub} is outside the firmware's feature set`);
      return Flow.Plain;
    }
  }
  if (op >= 0x20 && op <= 0x24) {
    r.u32(); // local and global index
    return Flow.Plain;
  }
  if (op >= 0x28 && op <= 0x3e) {
    r.u32(); // memarg: alignment, offset
    r.u32();
    return Flow.Plain;
  }
  if (op === 0x1a || op === 0x1b || (op >= 0x45 && op <= 0xc4)) return Flow.Plain;
  throw new Error(`instruction 0x${op.toString(16)} is outside the firmware's feature set`);
}

/** The code that adds `count` to the meter global. */
function charge(meter: number, count: number): number[] {
  return [0x23, ...leb(meter), 0x42, ...sleb(BigInt(count)), 0x7c, 0x24, ...leb(meter)];
}

/** Traps once the meter has passed the limit. */
function guard(meter: number, limit: number): number[] {
  return [0x23, ...leb(meter), 0x23, ...leb(limit), 0x56, 0x04, 0x40, 0x00, 0x0b];
}

/** At the first entry only: sets the function's bit in `seen` and adds `size` to `compiled`. */
function firstEntry(seen: number, bit: number, compiled: number, size: number): number[] {
  const mask = [0x42, ...sleb(BigInt.asIntN(64, 1n << BigInt(bit)))];
  return [
    0x23, ...leb(seen), ...mask, 0x83, 0x50, 0x04, 0x40, // if ((seen & mask) == 0)
    0x23, ...leb(seen), ...mask, 0x84, 0x24, ...leb(seen), // seen |= mask
    ...charge(compiled, size),
    0x0b,
  ];
}

interface MeterGlobals {
  /** With a profile: the first of one counter per function, `iov_profile_N` for function N. */
  profile: number | null;
  meter: number;
  limit: number;
  compiled: number;
  /** The first of the bitmaps of functions entered, 64 functions each. */
  seen: number;
}

/** Function `index` (of the module's own) with its runs charged; `body` is its locals and code. */
function meterBody(body: Uint8Array, index: number, g: MeterGlobals): number[] {
  const { meter, limit } = g;
  const r = new WasmReader(body);
  for (let groups = r.u32(); groups > 0; groups--) {
    r.u32();
    r.byte();
  }
  const out: number[] = [...body.subarray(0, r.pos), ...firstEntry(g.seen + (index >> 6), index & 63, g.compiled, body.length), ...guard(meter, limit)];
  let run: number[] = [];
  let count = 0;
  const close = () => {
    if (count > 0) out.push(...charge(meter, count));
    if (count > 0 && g.profile !== null) out.push(...charge(g.profile + index, count));
    out.push(...run);
    run = [];
    count = 0;
  };
  while (r.pos < body.length) {
    const start = r.pos;
    const op = r.byte();
    const flow = skipImmediates(r, op);
    const bytes = [...body.subarray(start, r.pos)];
    if (flow === Flow.StartsRun) {
      close();
      out.push(...bytes);
      if (op === 0x03) out.push(...guard(meter, limit));
    } else if (flow === Flow.Marker) {
      run.push(...bytes);
    } else {
      run.push(...bytes);
      count++;
      if (flow === Flow.EndsRun) close();
    }
  }
  close();
  return out;
}

function count(body: Uint8Array | undefined): number {
  return body ? new WasmReader(body).u32() : 0;
}

/** The items of a vector section, each as raw bytes, read with `item`. */
function items(body: Uint8Array, item: (r: WasmReader) => void): Uint8Array[] {
  const r = new WasmReader(body);
  const out: Uint8Array[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const start = r.pos;
    item(r);
    out.push(body.subarray(start, r.pos));
  }
  return out;
}

/** The size in bytes of each of the module's own function bodies (locals and code): what the meter charges at its first entry. */
export function bodySizes(wasm: Uint8Array): number[] {
  return functionBodies(wasm, sections(wasm).find((s) => s.id === 10)).map((body) => body.size);
}

/**
 * The metered copy of `wasm`: the runs charged, the two globals added and exported, and `_start`
 * wrapped to report the final count on fd 3. Custom sections (names) are dropped.
 */
export function meterModule(wasm: Uint8Array, options: { profile?: boolean } = {}): Uint8Array {
  const all = sections(wasm);
  const find = (id: number) => all.find((s) => s.id === id)?.body;
  const imported = readImports(find(2));
  const imports = { functions: imported.functions.length, globals: imported.globals, fdWrite: imported.functions.indexOf("wasi_snapshot_preview1.fd_write") };
  const globals = find(6) ?? Uint8Array.of(0);
  const functions = count(find(3));
  const meter = imports.globals + count(globals);
  const limit = meter + 1;
  const seenGlobals = Math.ceil(functions / 64);
  const g: MeterGlobals = { meter, limit, compiled: meter + 2, seen: meter + 3, profile: options.profile ? meter + 3 + seenGlobals : null };
  const wrapper = imports.functions + functions;

  const types = items(find(1)!, (r) => {
    r.byte(); // 0x60
    for (let n = r.u32(); n > 0; n--) r.byte();
    for (let n = r.u32(); n > 0; n--) r.byte();
  });
  const typeItems = types.map((t) => [...t]);
  const functionItems = items(find(3)!, (r) => r.u32()).map((f) => [...f]);
  const globalItems = items(globals, (r) => {
    r.byte();
    r.byte();
    while (r.byte() !== 0x0b);
  }).map((g) => [...g]);
  const zero64 = [0x7e, 0x01, 0x42, 0x00, 0x0b];
  globalItems.push(zero64, [0x7e, 0x01, 0x42, ...sleb(-1n), 0x0b], zero64);
  for (let i = 0; i < seenGlobals; i++) globalItems.push(zero64);
  if (g.profile !== null) for (let i = 0; i < functions; i++) globalItems.push(zero64);

  let start = -1;
  const exportItems = items(find(7)!, (r) => {
    r.name();
    r.byte();
    r.u32();
  }).map((e) => {
    const r = new WasmReader(e);
    const field = r.name();
    const kind = r.byte();
    if (field !== "_start" || kind !== 0 || imports.fdWrite < 0) return [...e];
    start = r.u32();
    return [...nameOf("_start"), 0x00, ...leb(wrapper)];
  });
  exportItems.push([...nameOf(METER_GLOBAL), 0x03, ...leb(meter)], [...nameOf(LIMIT_GLOBAL), 0x03, ...leb(limit)], [...nameOf(COMPILED_GLOBAL), 0x03, ...leb(g.compiled)]);
  for (let i = 0; i < seenGlobals; i++) exportItems.push([...nameOf(`${SEEN_PREFIX}${i}`), 0x03, ...leb(g.seen + i)]);
  if (g.profile !== null) for (let i = 0; i < functions; i++) exportItems.push([...nameOf(`${PROFILE_PREFIX}${imports.functions + i}`), 0x03, ...leb(g.profile + i)]);

  const bodies = items(find(10)!, (r) => {
    const size = r.u32();
    r.pos += size;
  }).map((b, index) => {
    const r = new WasmReader(b);
    const size = r.u32();
    const metered = meterBody(b.subarray(r.pos, r.pos + size), index, g);
    return [...leb(metered.length), ...metered];
  });
  // A WASI command (one that exports _start and imports fd_write) reports its count at the end:
  // _start, then the count (at address 16) written to fd 3 through an iovec at 0; the firmware's
  // memory is no longer needed then. The answer of fd_write is dropped: without fd 3 it fails.
  if (start >= 0 && imports.fdWrite >= 0) {
    let voidType = types.findIndex((t) => t.length === 3 && t[0] === 0x60 && t[1] === 0 && t[2] === 0);
    if (voidType < 0) {
      voidType = types.length;
      typeItems.push([0x60, 0, 0]);
    }
    functionItems.push(leb(voidType));
    const report = [
      0x00, // no locals
      0x10, ...leb(start),
      0x41, 16, 0x23, ...leb(meter), 0x37, 0x03, 0x00, // i64.store [16] = meter
      0x41, 0, 0x41, 16, 0x36, 0x02, 0x00, // iovec.buf = 16
      0x41, 4, 0x41, 8, 0x36, 0x02, 0x00, // iovec.len = 8
      0x41, METER_FD, 0x41, 0, 0x41, 1, 0x41, 24, 0x10, ...leb(imports.fdWrite), 0x1a,
      0x0b,
    ];
    bodies.push([...leb(report.length), ...report]);
  }

  const replaced = new Map<number, number[]>([
    [1, vec(typeItems)],
    [3, vec(functionItems)],
    [6, vec(globalItems)],
    [7, vec(exportItems)],
    [10, vec(bodies)],
  ]);
  const out: number[] = [...wasm.subarray(0, 8)];
  let globalsWritten = false;
  for (const s of all) {
    if (s.id === 0) continue;
    // A module without globals gets its global section before the export section.
    if (!globalsWritten && (s.id === 6 || s.id === 7)) {
      out.push(...section(6, replaced.get(6)!));
      globalsWritten = true;
      if (s.id === 6) continue;
    }
    out.push(...section(s.id, replaced.get(s.id) ?? [...s.body]));
  }
  return Uint8Array.from(out);
}
