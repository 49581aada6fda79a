// Types of text-transform.mjs for the TypeScript tools.
import { Transform } from "assemblyscript/transform";

export interface TextTable {
  /** The table's bytes: per text a length byte, then its UTF-8 bytes. */
  bytes: Uint8Array;
  /** Each text, the firmware source that first used it, and its bytes in the table. */
  entries: { text: string; module: string; bytes: number }[];
}

export let lastTable: TextTable | null;

export default class TextTransform extends Transform {}
