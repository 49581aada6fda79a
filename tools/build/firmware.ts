// `iov build`: compiles the firmware (release build/firmware.wasm, optimised by binaryen
// through asc; debug build/firmware.debug.wasm with names and source map), refuses
// to produce a release that breaks the card's constraints (tools/build/checks.ts), and
// packs the release into build/firmware.img, a flash image signed with the development key.

import asc from "assemblyscript/asc";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { checkFirmware, allocatorFunctions, memoryLimits, SIZE_BUDGET } from "./checks.ts";
import { ROOT, FIRMWARE, FIRMWARE_DEBUG, FIRMWARE_NAMES } from "../paths.ts";
import { sizeReport, type SizeReport } from "./sizes.ts";
import { stripCustom } from "./wasm-binary.ts";
import { lastTable } from "./text-transform.mjs";
import { developmentKey, formatVersion, keyIdOf, type ImageVersion } from "../../board/image.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { FIRMWARE_IMAGE, FIRMWARE_VERSION, developmentImage } from "./image.ts";

export class BuildError extends Error {}

async function compile(target: "release" | "debug", extra: string[] = []): Promise<void> {
  const stdout = asc.createMemoryStream();
  const stderr = asc.createMemoryStream();
  const { error } = await asc.main(
    ["assembly/index.ts", "--config", "asconfig.json", "--target", target, "--baseDir", ROOT, ...extra],
    { stdout, stderr },
  );
  if (error) throw new BuildError(`${target} build failed: ${error.message}\n${stderr.toString().trim()}`);
}

export interface BuildReport {
  bytes: number;
  pages: number;
  imports: string[];
  image: { bytes: number; version: ImageVersion };
  /** With `sizes`: where the release's bytes go. */
  sizes?: SizeReport;
}

/**
 * The release compiled again with its function names kept (build/firmware.names.wasm), checked
 * to be the release byte for byte once the names are stripped, and where its bytes go.
 */
export async function releaseSizes(release: Uint8Array, namedFile = FIRMWARE_NAMES): Promise<SizeReport> {
  await compile("release", ["--debug", "--outFile", namedFile]);
  const named = new Uint8Array(readFileSync(namedFile));
  if (!Buffer.from(stripCustom(named)).equals(release)) {
    throw new BuildError("the release compiled with names differs from the release without them: sizes would not describe firmware.wasm");
  }
  return sizeReport(named, lastTable);
}

export async function buildFirmware(options: { sizes?: boolean } = {}): Promise<BuildReport> {
  await compile("debug");
  await compile("release");
  const release = new Uint8Array(readFileSync(FIRMWARE));
  const problems = checkFirmware(release);
  const allocators = allocatorFunctions(new Uint8Array(readFileSync(FIRMWARE_DEBUG)));
  if (allocators.length) problems.push(`allocates on the heap (${allocators.join(", ")}); use static buffers (memory.data) instead`);
  if (problems.length) {
    rmSync(FIRMWARE, { force: true });
    rmSync(FIRMWARE_IMAGE, { force: true });
    throw new BuildError(`firmware.wasm rejected: it ${problems.join("; it ")}`);
  }
  const image = developmentImage(release);
  writeFileSync(FIRMWARE_IMAGE, image);
  return {
    sizes: options.sizes ? await releaseSizes(release) : undefined,
    image: { bytes: image.length, version: FIRMWARE_VERSION },
    bytes: release.length,
    pages: memoryLimits(release)!.initial,
    imports: WebAssembly.Module.imports(new WebAssembly.Module(release)).map((i) => i.name),
  };
}

export function describeBuild(report: BuildReport): string {
  const percent = ((100 * report.bytes) / SIZE_BUDGET).toFixed(1);
  return `build/firmware.wasm: ${report.bytes} bytes (${percent}% of the ${SIZE_BUDGET}-byte budget), ${report.pages} page of memory, imports ${report.imports.join(", ")}`;
}

export function describeImage(report: BuildReport): string {
  const key = Buffer.from(keyIdOf(developmentKey())).toString("hex");
  return `build/firmware.img: ${report.image.bytes} bytes, firmware ${formatVersion(report.image.version)} for board 0x${BOARD_ID.toString(16)}, ` +
    `signed with the development key ${key} (simulated cards only)`;
}
