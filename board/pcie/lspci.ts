// Configuration space dumps in the text format of `lspci -xxx` (256 bytes) and `lspci -xxxx`
// (4096 bytes), which the real `lspci -F FILE` reads back and decodes:
//
//   01:00.0 Class 0604: Device 1d0f:0001 (rev 01)
//   00: 0f 1d 01 00 07 05 10 00 01 00 04 06 00 00 01 00
//   10: ...
//   <blank line>
//
// The header line is what lspci prints when it has no name for the IDs (pci.ids absent);
// lspci's own dump reader takes only the slot from it.

import { ConfigSpace } from "./config-space.ts";

export interface LspciFunction {
  /** PCI domain (segment); printed on every line when any function has a non-zero one. */
  domain?: number;
  bus: number;
  device: number;
  function: number;
  config: ConfigSpace;
  /** Replaces "Device vvvv:dddd" in the header line. */
  name?: string;
}

export interface ParsedFunction extends LspciFunction {
  /** Everything after the slot on the header line. */
  description: string;
  /** The bytes the dump holds (64, 256 or 4096 for the usual -x, -xxx, -xxxx). */
  bytes: Uint8Array;
}

export class LspciFormatError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "LspciFormatError";
  }
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

function slotName(f: { domain?: number; bus: number; device: number; function: number }, domains: boolean): string {
  return `${domains ? `${hex(f.domain ?? 0, 4)}:` : ""}${hex(f.bus, 2)}:${hex(f.device, 2)}.${f.function}`;
}

function check(f: LspciFunction): void {
  const ok = (v: number | undefined, max: number) => v === undefined || (Number.isInteger(v) && v >= 0 && v <= max);
  if (!ok(f.domain, 0xffff) || !ok(f.bus, 0xff) || !ok(f.device, 31) || !ok(f.function, 7)) {
    throw new RangeError(`bad slot ${f.domain ?? 0}:${f.bus}:${f.device}.${f.function}`);
  }
  if (f.name !== undefined && /[\r\n]/.test(f.name)) throw new RangeError(`name ${JSON.stringify(f.name)} spans lines`);
}

/** The header line's text after the slot, as lspci prints it without an ID database. */
export function describe(config: ConfigSpace, name?: string): string {
  const cls = config.peek(0x0a, 2);
  const rev = config.peek(0x08, 1);
  const what = name ?? `Device ${hex(config.peek(0x00, 2), 4)}:${hex(config.peek(0x02, 2), 4)}`;
  return `Class ${hex(cls, 4)}: ${what}${rev ? ` (rev ${hex(rev, 2)})` : ""}`;
}

/**
 * The dump of these functions, sorted by slot as lspci sorts them: a header line, the whole
 * configuration space (256 or 4096 bytes) 16 bytes per line, and a blank line, per function.
 */
export function formatLspci(functions: readonly LspciFunction[]): string {
  functions.forEach(check);
  const key = (f: LspciFunction) => (((f.domain ?? 0) * 256 + f.bus) * 32 + f.device) * 8 + f.function;
  const sorted = [...functions].sort((a, b) => key(a) - key(b));
  for (let i = 1; i < sorted.length; i++) {
    if (key(sorted[i]) === key(sorted[i - 1])) throw new RangeError(`${slotName(sorted[i], true)} appears twice`);
  }
  const domains = functions.some((f) => (f.domain ?? 0) !== 0);
  const out: string[] = [];
  for (const f of sorted) {
    out.push(`${slotName(f, domains)} ${describe(f.config, f.name)}\n`);
    const bytes = f.config.bytes();
    for (let at = 0; at < bytes.length; at += 16) {
      let line = `${hex(at, 2)}:`;
      for (let i = at; i < at + 16; i++) line += ` ${hex(bytes[i], 2)}`;
      out.push(`${line}\n`);
    }
    out.push("\n");
  }
  return out.join("");
}

const HEADER = /^(?:([0-9a-fA-F]{4,6}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7]) (.*)$/;
const DATA = /^([0-9a-fA-F]{2,8}): (.*)$/;
const OURS = /^Class ([0-9a-f]{4}): (.*?)(?: \(rev ([0-9a-f]{2})\))?$/;

/**
 * Parse a dump written by formatLspci or by `lspci -x/-xxx/-xxxx` (other lines, such as the
 * indented ones of -v, are skipped, as lspci -F skips them). Each function's configuration
 * space is a read-only image of its bytes (bytes the dump lacks read ff). Malformed data
 * lines, offsets past 4096 and repeated slots throw LspciFormatError.
 */
export function parseLspci(text: string): ParsedFunction[] {
  const out: ParsedFunction[] = [];
  const seen = new Set<string>();
  let current: { f: Omit<ParsedFunction, "config" | "bytes">; data: Uint8Array; len: number } | null = null;
  const finish = () => {
    if (!current) return;
    const bytes = current.data.slice(0, current.len);
    const config = ConfigSpace.fromBytes(bytes, current.len > 256 ? 4096 : 256);
    const f: ParsedFunction = { ...current.f, config, bytes };
    const ours = OURS.exec(f.description);
    if (ours && bytes.length >= 4) {
      const plain = `Device ${hex(config.peek(0, 2), 4)}:${hex(config.peek(2, 2), 4)}`;
      if (ours[2] !== plain) f.name = ours[2];
    }
    out.push(f);
    current = null;
  };
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((raw, i) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const n = i + 1;
    const header = HEADER.exec(line);
    if (header) {
      finish();
      const f = {
        ...(header[1] !== undefined ? { domain: parseInt(header[1], 16) } : {}),
        bus: parseInt(header[2], 16),
        device: parseInt(header[3], 16),
        function: parseInt(header[4], 10),
        description: header[5],
      };
      if (f.device > 31) throw new LspciFormatError(n, `device number ${header[3]} is above 1f`);
      const id = `${f.domain ?? 0}:${f.bus}:${f.device}.${f.function}`;
      if (seen.has(id)) throw new LspciFormatError(n, `${line.split(" ")[0]} appears twice`);
      seen.add(id);
      current = { f, data: new Uint8Array(4096).fill(0xff), len: 0 };
      return;
    }
    if (line === "") {
      finish();
      return;
    }
    const data = DATA.exec(line);
    if (!data || !current) return; // lspci -F ignores anything else
    let at = parseInt(data[1], 16);
    const tokens = data[2].split(" ");
    for (const t of tokens) {
      if (!/^[0-9a-fA-F]{2}$/.test(t)) throw new LspciFormatError(n, `malformed byte ${JSON.stringify(t)}`);
      if (at >= 4096) throw new LspciFormatError(n, "at most 4096 bytes of configuration space");
      current.data[at++] = parseInt(t, 16);
    }
    current.len = Math.max(current.len, at);
  });
  finish();
  return out;
}
