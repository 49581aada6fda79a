// The release as a flash image: what `iov build` writes to build/firmware.img and what a
// simulated card leaves the factory with. Signed with the development key, which the
// simulated cards' boot ROMs trust (docs/image-format.md).

import { buildImage, developmentKey } from "../../board/image.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../../assembly/version.ts";
import { ROOT } from "../paths.ts";

export const FIRMWARE_IMAGE = `${ROOT}build/firmware.img`;
export const FIRMWARE_VERSION = { major: FIRMWARE_MAJOR, minor: FIRMWARE_MINOR, patch: FIRMWARE_PATCH };

/** `firmware` (a firmware.wasm) as an image for the IOV card, signed with the development key. */
export function developmentImage(firmware: Uint8Array): Uint8Array {
  return buildImage(firmware, { boardId: BOARD_ID, version: FIRMWARE_VERSION, key: developmentKey() });
}
