// Argument parsers of `iov keygen` and `iov image`: each throws commander's
// InvalidArgumentError with a one-line reason (a usage error, exit status 2).

import { InvalidArgumentError } from "commander";
import { parseVersion, type ImageVersion } from "../../board/image.ts";
import { BUILD_ID_SIZE } from "../../board/map/image.ts";

/** "X.Y.Z" within the image header's ranges. */
export function version(text: string): ImageVersion {
  try {
    return parseVersion(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** A 32-bit board ID, hexadecimal with 0x or decimal. */
export function boardId(text: string): number {
  const t = text.trim();
  if (!/^(0x[0-9a-f]{1,8}|\d+)$/i.test(t)) throw new InvalidArgumentError(`expected a board ID such as 0x10f00a01, got '${text}'`);
  const value = Number(t);
  if (value > 0xffffffff) throw new InvalidArgumentError(`a board ID is 32 bits, ${text} is too large`);
  return value;
}

/** BUILD_ID_SIZE bytes as hexadecimal digits. */
export function buildId(text: string): Uint8Array {
  const t = text.trim();
  if (!/^[0-9a-f]*$/i.test(t) || t.length !== 2 * BUILD_ID_SIZE) {
    throw new InvalidArgumentError(`expected ${2 * BUILD_ID_SIZE} hexadecimal digits (${BUILD_ID_SIZE} bytes), got '${text}'`);
  }
  return new Uint8Array(Buffer.from(t, "hex"));
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
