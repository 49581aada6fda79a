// Argument parsers of `iov manage`, apart from the command so that main.ts stays light.

import { InvalidArgumentError } from "commander";
import { ALL_CARDS } from "../../board/map/link.ts";
import { NetSpecError, parseNetSpec } from "../manage/transport.ts";

/** A card serial: hexadecimal, with or without 0x, as the firmware logs it (0x20000001). */
export function serialArg(text: string): number {
  const match = /^(?:0x)?([0-9a-f]{1,8})$/i.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`expected a card serial in hex, such as 0x20000001 or 20000001, got '${text}'`);
  const serial = parseInt(match[1], 16);
  if (serial === 0 || serial === ALL_CARDS) throw new InvalidArgumentError(`0x${match[1]} is not a card's serial`);
  return serial;
}

/** A --net value, checked without opening anything. */
export function netArg(text: string): string {
  try {
    parseNetSpec(text);
  } catch (error) {
    if (error instanceof NetSpecError) throw new InvalidArgumentError(error.message);
    throw error;
  }
  return text;
}
