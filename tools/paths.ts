// Where the project's files are, for every tool.
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const FIRMWARE = `${ROOT}build/firmware.wasm`;
export const FIRMWARE_DEBUG = `${ROOT}build/firmware.debug.wasm`;
/** The release with its function names kept, made by `iov build --sizes`. */
export const FIRMWARE_NAMES = `${ROOT}build/firmware.names.wasm`;
/** The Wireshark dissector of the tunnel protocol (docs/traces.md, "Wireshark"). */
export const DISSECTOR = `${ROOT}tools/wireshark/iov.lua`;
