// Reading the WebAssembly binary format (the core specification's section 5): LEB128 numbers,
// names, the sections and the import vector. The size report (sizes.ts) and the instruction
// meter (tools/engines/meter.ts) read modules through it.

export class WasmReader {
  constructor(readonly bytes: Uint8Array, public pos = 0) {}

  byte(): number {
    if (this.pos >= this.bytes.length) throw new Error("truncated module");
    return this.bytes[this.pos++];
  }

  /** An unsigned LEB128 (u32 and smaller). */
  u32(): number {
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
  }

  /** A signed LEB128 of up to 53 bits. */
  s32(): number {
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return b & 0x40 ? result - 2 ** shift : result;
  }

  /** Skips a signed LEB128 of any width. */
  skipLeb(): void {
    while (this.byte() & 0x80);
  }

  /** A name: its length, then UTF-8. */
  name(): string {
    const length = this.u32();
    const start = this.pos;
    this.pos += length;
    return new TextDecoder().decode(this.bytes.subarray(start, this.pos));
  }
}

export interface WasmSection {
  id: number;
  /** Where its contents start and end in the module. */
  start: number;
  end: number;
  /** The whole section: id, size and contents. */
  bytes: number;
  body: Uint8Array;
}

export function sections(module: Uint8Array): WasmSection[] {
  const r = new WasmReader(module, 8);
  const out: WasmSection[] = [];
  while (r.pos < module.length) {
    const at = r.pos;
    const id = r.byte();
    const size = r.u32();
    out.push({ id, start: r.pos, end: r.pos + size, bytes: r.pos + size - at, body: module.subarray(r.pos, r.pos + size) });
    r.pos += size;
  }
  return out;
}

export interface Imports {
  /** `module.field` of each imported function, in index order. */
  functions: string[];
  globals: number;
}

/** The imports of an import section's contents (none without one). */
export function readImports(body: Uint8Array | undefined): Imports {
  const imports: Imports = { functions: [], globals: 0 };
  if (!body) return imports;
  const r = new WasmReader(body);
  for (let n = r.u32(); n > 0; n--) {
    const name = `${r.name()}.${r.name()}`;
    const kind = r.byte();
    if (kind === 0) {
      r.u32();
      imports.functions.push(name);
    } else if (kind === 1) {
      r.byte();
      if (r.u32() & 1) r.u32();
      r.u32();
    } else if (kind === 2) {
      if (r.u32() & 1) r.u32();
      r.u32();
    } else if (kind === 3) {
      r.byte();
      r.byte();
      imports.globals++;
    } else throw new Error(`unknown import kind ${kind}`);
  }
  return imports;
}

/** Each function body of a code section: its size (locals and code) and the bytes it takes in the section, size prefix included. */
export function functionBodies(bytes: Uint8Array, section: WasmSection | undefined): { size: number; encoded: number }[] {
  if (!section) return [];
  const r = new WasmReader(bytes, section.start);
  const out: { size: number; encoded: number }[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const at = r.pos;
    const size = r.u32();
    r.pos += size;
    out.push({ size, encoded: r.pos - at });
  }
  return out;
}

/** The module without its custom sections (names, source maps): what a release ships. */
export function stripCustom(module: Uint8Array): Uint8Array {
  const kept = sections(module).filter((s) => s.id !== 0);
  const out = new Uint8Array(8 + kept.reduce((n, s) => n + s.bytes, 0));
  out.set(module.subarray(0, 8));
  let at = 8;
  for (const s of kept) {
    out.set(module.subarray(s.end - s.bytes, s.end), at);
    at += s.bytes;
  }
  return out;
}
