// `iov build --sizes`: where the release's bytes go, as twiggy and bloaty show it. Each section's
// size; then each firmware module (assembly/link/link.ts, ~lib/staticarray, …) with its functions
// and its data, largest first. A function's size is its body in the code section. A data segment
// belongs to the module whose code (or global) holds an address inside it; the text table's bytes
// are shared out by text, each to the module whose literal first used it.

import binaryen from "binaryen";
import { WasmReader, functionBodies, readImports, sections, type WasmSection } from "./wasm-binary.ts";
import type { TextTable } from "./text-transform.mjs";

export interface SizeItem {
  kind: "function" | "data" | "texts";
  name: string;
  bytes: number;
}

export interface ModuleSizes {
  module: string;
  bytes: number;
  items: SizeItem[];
}

export interface SizeReport {
  bytes: number;
  sections: { name: string; bytes: number }[];
  modules: ModuleSizes[];
}

const SECTION_NAMES = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count"];

interface Segment {
  offset: number;
  length: number;
  /** Its share of the data section: flags, offset expression, length and bytes. */
  bytes: number;
  data: Uint8Array;
}

/** The function names of a module's name section, by function index (empty without one). */
export function namesOf(bytes: Uint8Array): Map<number, string> {
  return functionNames(bytes, sections(bytes).filter((s) => s.id === 0));
}

function functionNames(bytes: Uint8Array, custom: WasmSection[]): Map<number, string> {
  const names = new Map<number, string>();
  for (const section of custom) {
    const r = new WasmReader(bytes, section.start);
    if (r.name() !== "name") continue;
    while (r.pos < section.end) {
      const sub = bytes[r.pos++];
      const end = r.u32() + r.pos;
      if (sub === 1) for (let n = r.u32(); n > 0; n--) names.set(r.u32(), r.name());
      r.pos = end;
    }
  }
  return names;
}

function segments(bytes: Uint8Array, section: WasmSection | undefined): Segment[] {
  if (!section) return [];
  const r = new WasmReader(bytes, section.start);
  const out: Segment[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const at = r.pos;
    const flags = r.u32();
    let offset = -1;
    if (flags === 2) r.u32();
    if (flags !== 1) {
      const op = bytes[r.pos++];
      offset = op === 0x41 ? r.s32() : -1;
      while (bytes[r.pos++] !== 0x0b);
    }
    const length = r.u32();
    out.push({ offset, length, data: bytes.subarray(r.pos, r.pos + length), bytes: r.pos + length - at });
    r.pos += length;
  }
  return out;
}

/** The module a function or global belongs to: its name's path without the last part. */
export function moduleOf(name: string): string {
  const plain = name.split(/[<#|@]/)[0];
  const slash = plain.lastIndexOf("/");
  if (slash < 0) return "(compiler)";
  const path = plain.slice(0, slash);
  return path.startsWith("~lib/") ? path : `${path}.ts`;
}

/** Addresses each function and global of the named module holds as i32 constants. */
function constantsByOwner(named: Uint8Array): Map<string, number[]> {
  const module = binaryen.readBinary(named);
  let text: string;
  try {
    text = module.emitText();
  } finally {
    module.dispose();
  }
  const owners = new Map<string, number[]>();
  let owner: string | null = null;
  for (const line of text.split("\n")) {
    const func = /^ \(func \$(\S+)/.exec(line);
    const global = /^ \(global \$(\S+)/.exec(line);
    if (func) owner = func[1];
    else if (global) owner = global[1];
    else if (/^ \(/.test(line)) owner = null;
    if (owner === null) continue;
    for (const match of line.matchAll(/i32\.const (-?\d+)/g)) {
      const list = owners.get(owner) ?? [];
      list.push(Number(match[1]) >>> 0);
      owners.set(owner, list);
    }
  }
  return owners;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * The sizes of `named`, a release build that kept its name section (and otherwise the same
 * bytes as the release), with the text table its build made.
 */
export function sizeReport(named: Uint8Array, table: TextTable | null): SizeReport {
  const all = sections(named);
  const custom = all.filter((s) => s.id === 0);
  const names = functionNames(named, custom);
  const shipped = all.filter((s) => s.id !== 0);
  const bytes = 8 + shipped.reduce((sum, s) => sum + s.bytes, 0);
  const imported = readImports(all.find((s) => s.id === 2)?.body).functions.length;
  const modules = new Map<string, ModuleSizes>();
  const add = (module: string, item: SizeItem) => {
    const entry = modules.get(module) ?? { module, bytes: 0, items: [] };
    entry.bytes += item.bytes;
    entry.items.push(item);
    modules.set(module, entry);
  };

  functionBodies(named, all.find((s) => s.id === 10)).forEach(({ encoded: size }, i) => {
    const name = names.get(imported + i) ?? `function ${imported + i}`;
    add(moduleOf(name), { kind: "function", name, bytes: size });
  });

  const segs = segments(named, all.find((s) => s.id === 11));
  const owners = constantsByOwner(named);
  let tableSegment: Segment | undefined;
  if (table) {
    tableSegment = segs.find((s) => indexOf(s.data, table.bytes) >= 0);
  }
  segs.forEach((seg, i) => {
    if (seg === tableSegment && table) {
      const start = indexOf(seg.data, table.bytes);
      const other = seg.bytes - table.bytes.length;
      const perModule = new Map<string, { count: number; bytes: number }>();
      for (const entry of table.entries) {
        const m = perModule.get(entry.module) ?? { count: 0, bytes: 0 };
        m.count++;
        m.bytes += entry.bytes;
        perModule.set(entry.module, m);
      }
      for (const [module, m] of perModule) add(module, { kind: "texts", name: `${m.count} text${m.count === 1 ? "" : "s"}`, bytes: m.bytes });
      if (other > 0) add("(data section)", { kind: "data", name: `text table segment header${start > 0 ? " and neighbours" : ""}`, bytes: other });
      return;
    }
    const users = new Set<string>();
    for (const [owner, constants] of owners) {
      if (constants.some((c) => c >= seg.offset && c < seg.offset + seg.length)) users.add(moduleOf(owner));
    }
    // An object's header is a segment of its own that no code addresses: it goes with the
    // object's contents, the next segment.
    const next = segs[i + 1];
    if (users.size === 0 && next && next.offset - (seg.offset + seg.length) < 16) {
      for (const [owner, constants] of owners) {
        if (constants.some((c) => c >= next.offset && c < next.offset + next.length)) users.add(moduleOf(owner));
      }
    }
    // Initial data inside a buffer (memory.data with values, split where it is zero) belongs
    // with the code that holds the nearest address below it: the buffer's start.
    if (users.size === 0) {
      let nearest = -1;
      for (const constants of owners.values()) for (const c of constants) if (c <= seg.offset && c > nearest) nearest = c;
      for (const [owner, constants] of owners) if (nearest >= 0 && constants.includes(nearest)) users.add(moduleOf(owner));
    }
    const module = users.size === 1 ? [...users][0] : users.size === 0 ? "(unreferenced data)" : "(shared data)";
    add(module, { kind: "data", name: `${seg.length} byte${seg.length === 1 ? "" : "s"} at 0x${seg.offset.toString(16)}${users.size > 1 ? ` (${[...users].join(", ")})` : ""}`, bytes: seg.bytes });
  });
  // The vector counts and headers of the code and data sections and everything else.
  const counted = [...modules.values()].reduce((sum, m) => sum + m.bytes, 0);
  add("(module structure)", { kind: "data", name: "section headers, types, imports, exports, globals, memory", bytes: bytes - counted });

  for (const m of modules.values()) m.items.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  return {
    bytes,
    sections: [{ name: "header", bytes: 8 }, ...shipped.map((s) => ({ name: SECTION_NAMES[s.id] ?? `section ${s.id}`, bytes: s.bytes }))],
    modules: [...modules.values()].sort((a, b) => b.bytes - a.bytes || a.module.localeCompare(b.module)),
  };
}

const group = (n: number) => n.toLocaleString("en-US").replace(/,/g, " ");
const pad = (n: number, width = 7) => group(n).padStart(width);

/** The report as text: sections, then modules with their items, largest first. */
export function formatSizes(report: SizeReport, budget: number): string {
  const out: string[] = [];
  const percent = (n: number) => `${((100 * n) / report.bytes).toFixed(1).padStart(5)} %`;
  out.push(`firmware.wasm: ${group(report.bytes)} bytes, ${((100 * report.bytes) / budget).toFixed(1)} % of the ${group(budget)}-byte budget`, "");
  out.push("section          bytes");
  for (const s of [...report.sections].sort((a, b) => b.bytes - a.bytes)) out.push(`${s.name.padEnd(12)}${pad(s.bytes, 10)}  ${percent(s.bytes)}`);
  out.push("", "module, then its functions, texts and data          bytes");
  for (const m of report.modules) {
    out.push(`${m.module.padEnd(48)}${pad(m.bytes, 10)}  ${percent(m.bytes)}`);
    for (const item of m.items) {
      const name = item.kind === "function" ? item.name.slice(m.module.replace(/\.ts$/, "").length + 1) || item.name : `[${item.kind}] ${item.name}`;
      out.push(`  ${pad(item.bytes)}  ${name}`);
    }
  }
  return out.join("\n") + "\n";
}
