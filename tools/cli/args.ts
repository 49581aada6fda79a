// Argument parsers shared by the subcommands: each throws commander's
// InvalidArgumentError with a one-line reason.

import { InvalidArgumentError } from "commander";
import { existsSync } from "node:fs";
import { SOFTCORE_MHZ_MAX, SOFTCORE_MHZ_MIN } from "../../board/softcore.ts";
import { ENGINE_KINDS, checkWasm3, wasm3Path, type EngineKind, type EngineOptions } from "../engines/index.ts";
import { FIRMWARE } from "../paths.ts";

/** A failure the user can act on: printed as `iov: message`, exit status 1. */
export class CliError extends Error {}

export function integer(min: number, max: number) {
  return (text: string): number => {
    if (!/^-?\d+$/.test(text.trim())) throw new InvalidArgumentError(`expected a whole number, got '${text}'`);
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidArgumentError(`expected ${min}..${max}, got ${text}`);
    return value;
  };
}

/** --softcore-mhz: 0 (the zero-time model) or a clock the soft-core class can have. */
export function softcoreMhz(text: string): number {
  const range = `0 (zero-time model) or ${SOFTCORE_MHZ_MIN}..${SOFTCORE_MHZ_MAX}`;
  if (!/^\d+(\.\d+)?$/.test(text.trim())) throw new InvalidArgumentError(`expected a clock in MHz, ${range}, got '${text}'`);
  const value = Number(text);
  if (value !== 0 && !(value >= SOFTCORE_MHZ_MIN && value <= SOFTCORE_MHZ_MAX)) throw new InvalidArgumentError(`expected ${range}, got ${text}`);
  return value;
}

const UNITS: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 };

/** "3s", "250ms", "10us", "500ns" to nanoseconds. */
export function duration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ns|us|ms|s)$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`expected a duration such as 3s, 250ms, 10us or 500ns, got '${text}'`);
  const ns = Number(match[1]) * UNITS[match[2]];
  // Simulated time moves in whole nanoseconds: nothing happens in a fraction of one.
  if (!Number.isInteger(ns)) throw new InvalidArgumentError(`expected a whole number of nanoseconds, got '${text}' (${ns} ns)`);
  if (ns <= 0 || ns > 3600e9) throw new InvalidArgumentError(`expected a duration between 1ns and 3600s, got '${text}'`);
  return ns;
}

export function engine(text: string): EngineKind {
  if (!(ENGINE_KINDS as string[]).includes(text)) throw new InvalidArgumentError(`expected one of ${ENGINE_KINDS.join(", ")}, got '${text}'`);
  return text as EngineKind;
}

export interface EngineFlags {
  engine: EngineKind;
  wasm3?: string;
  firmware?: string;
}

/** Engine options from --engine/--wasm3/--firmware, with the checks a user needs. */
export function engineOptions(flags: EngineFlags): Omit<EngineOptions, "onLog"> {
  const firmware = flags.firmware ?? FIRMWARE;
  if (!existsSync(firmware)) {
    throw new CliError(flags.firmware ? `firmware not found: ${firmware}` : "build/firmware.wasm is missing: run `npm run build` first");
  }
  const wasm3 = wasm3Path(flags.wasm3);
  if (flags.engine === "wasm3") {
    if (!wasm3) throw new CliError("engine wasm3 needs a wasm3 binary: pass --wasm3 PATH or set IOV_WASM3");
    checkWasm3(wasm3);
  }
  return { firmware, wasm3 };
}
