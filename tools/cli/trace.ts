import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { EventChecker, MessageReader, describe, errorName } from "../../board/mailbox-codec.ts";
import { Event } from "../../board/map/mailbox.ts";
import { replay } from "../engines/index.ts";
import { profileTrace } from "../engines/profile.ts";
import { namesOf } from "../build/sizes.ts";
import { stripCustom } from "../build/wasm-binary.ts";
import { FIRMWARE_NAMES } from "../paths.ts";
import { CliError, engineOptions, type EngineFlags } from "./args.ts";

function readTrace(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new CliError(`cannot read ${what} '${path}': ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
  }
}

/** Index and byte offset of the first message that differs, with both sides described. */
export function firstDifference(expected: Uint8Array, actual: Uint8Array): string | null {
  const a = new MessageReader("commands");
  const b = new MessageReader("commands");
  a.push(expected);
  b.push(actual);
  for (let index = 0; ; index++) {
    const x = a.next();
    const y = b.next();
    if (!x && !y) break;
    const same = x && y && x.type === y.type && x.flags === y.flags && x.length === y.length &&
      Buffer.compare(Buffer.from(x.body ?? []), Buffer.from(y.body ?? [])) === 0;
    if (!same) {
      const where = x ?? y!;
      return `command #${index} at byte ${where.offset}: expected ${x ? describe(x, "commands") : "end of output"}, got ${y ? describe(y, "commands") : "end of output"}`;
    }
  }
  if (a.pending() !== b.pending() || Buffer.compare(Buffer.from(expected), Buffer.from(actual)) !== 0) {
    return `trailing bytes differ: expected ${a.pending()} unframed byte(s), got ${b.pending()}`;
  }
  return null;
}

export interface ReplayFlags extends EngineFlags {
  expect?: string;
  write?: string;
}

export async function runReplay(input: string, flags: ReplayFlags): Promise<void> {
  const events = readTrace(input, "trace");
  const expectPath = flags.expect ?? input.replace(/\.in$/, "") + ".out";
  if (!flags.expect && (expectPath === input || !existsSync(expectPath))) {
    throw new CliError(`no expected output for '${input}': pass --expect FILE (looked for ${expectPath})`);
  }
  const expected = readTrace(expectPath, "expected output");
  const result = await replay(flags.engine, engineOptions(flags), events);
  if (flags.write) writeFileSync(flags.write, result.commands);
  if (result.exitCode !== 0) {
    throw new CliError(`firmware exited with status ${result.exitCode} under ${flags.engine}: ${result.log.trim().split("\n").pop() ?? ""}`);
  }
  const difference = firstDifference(expected, result.commands);
  if (difference) throw new CliError(`${input}: output differs under ${flags.engine}: ${difference}`);
  let count = 0;
  const reader = new MessageReader("commands");
  reader.push(result.commands);
  for (const _ of reader.all()) count++;
  process.stdout.write(`${input}: ${events.length} event bytes replayed on ${flags.engine}; output identical to ${expectPath} (${result.commands.length} bytes, ${count} commands)\n`);
}

export function decodeLines(bytes: Uint8Array, direction: "events" | "commands"): string[] {
  const reader = new MessageReader(direction);
  let checker = new EventChecker();
  reader.push(bytes);
  const lines: string[] = [];
  let index = 0;
  for (const raw of reader.all()) {
    let line = `#${String(index++).padEnd(6)} @${String(raw.offset).padEnd(8)} ${describe(raw, direction)}`;
    if (direction === "events" && !raw.framing) {
      // A recording spans the card's resets: each BOOT after the first begins the next firmware's stream.
      if (raw.type === Event.Boot && checker.booted) checker = new EventChecker();
      const verdict = checker.check(raw);
      if (verdict) line += `  <- firmware rejects: ${errorName(verdict.error)} (detail ${verdict.detail})`;
    }
    lines.push(line);
  }
  if (reader.pending() > 0) lines.push(`(${reader.pending()} trailing byte(s) do not form a whole message: truncated)`);
  else if (reader.bytesToBoundary() > 0) lines.push(`(the stream ends inside the oversize message above, ${reader.bytesToBoundary()} byte(s) short of the end its header declares)`);
  return lines;
}

export async function runDecode(file: string, flags: { as?: "events" | "commands" }): Promise<void> {
  const direction = flags.as ?? (file.endsWith(".in") ? "events" : file.endsWith(".out") ? "commands" : null);
  if (!direction) throw new CliError(`cannot tell whether '${file}' holds events or commands: name it .in or .out, or pass --as`);
  const bytes = readTrace(file, "trace");
  process.stdout.write(decodeLines(bytes, direction).join("\n") + "\n");
}

export interface ProfileFlags {
  firmware?: string;
  names?: string;
  top: number;
}

const group = (n: number) => Math.round(n).toLocaleString("en-US").replace(/,/g, " ");

/**
 * `iov trace profile NAME.in`: the firmware's WebAssembly instructions over a recorded stream,
 * by what each batch carried and by function (names from a release built with them:
 * `iov build --sizes` leaves build/firmware.names.wasm, used when it is that firmware).
 */
export async function runProfile(input: string, flags: ProfileFlags): Promise<void> {
  const { firmware: path } = engineOptions({ engine: "node", firmware: flags.firmware });
  const firmware = readTrace(path, "firmware");
  const profile = profileTrace(firmware, readTrace(input, "trace"));
  const namesFile = flags.names ?? FIRMWARE_NAMES;
  const named = existsSync(namesFile) ? new Uint8Array(readFileSync(namesFile)) : null;
  if (flags.names && !named) throw new CliError(`cannot read names '${flags.names}': no such file`);
  const usable = named !== null && namesOf(named).size > 0 && Buffer.from(stripCustom(named)).equals(firmware);
  if (flags.names && !usable) throw new CliError(`${flags.names} is not ${path} with names: build them together with \`iov build --sizes\``);
  const names = usable ? namesOf(named!) : new Map<number, string>();
  const share = (n: number) => `${((100 * n) / profile.instructions).toFixed(1).padStart(5)} %`;
  const out: string[] = [
    `${input}: ${profile.batches} batches, ${group(profile.instructions)} WebAssembly instructions (${group(profile.instructions / Math.max(profile.batches, 1))} per batch), ${group(profile.compiledBytes)} bytes of code compiled`,
    "",
    `${"batches carrying".padEnd(44)}${"n".padStart(7)}${"mean".padStart(10)}${"max".padStart(10)}${"total".padStart(13)}   share`,
    ...profile.groups.map((g) => `${g.carries.slice(0, 43).padEnd(44)}${String(g.batches).padStart(7)}${group(g.instructions / g.batches).padStart(10)}${group(g.max).padStart(10)}${group(g.instructions).padStart(13)} ${share(g.instructions)}`),
    "",
    `functions, most instructions first${usable ? "" : ` (no names: run \`iov build --sizes\` to have ${FIRMWARE_NAMES} match ${path})`}`,
    ...profile.functions.slice(0, flags.top).map((fn) => `${group(fn.instructions).padStart(13)} ${share(fn.instructions)}  ${names.get(fn.index) ?? `function ${fn.index}`}`),
  ];
  process.stdout.write(out.join("\n") + "\n");
}
