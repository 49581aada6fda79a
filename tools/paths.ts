// Where the project's files are, for every tool.
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const FIRMWARE = `${ROOT}build/firmware.wasm`;
export const FIRMWARE_DEBUG = `${ROOT}build/firmware.debug.wasm`;
