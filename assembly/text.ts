// The firmware's texts: log messages, console output, names. Every string literal in a
// firmware source is a `Text`: the address of an entry in TEXT_TABLE, a length byte and then
// the text's UTF-8 bytes. The build's transform (tools/build/text-transform.mjs) collects the
// literals into the table and puts each entry's address where its literal was, so that a text
// costs its bytes plus one, not an AssemblyScript string's UTF-16 object and data segment.
// Code outside the firmware (the specs) can make a Text anywhere in memory with the same layout.

export type Text = usize;

/** Filled by the build's transform; the firmware does not compile without it. */
@global export const TEXT_TABLE: usize = memory.data<u8>([]);

/** How many bytes `text` holds. */
export function textLength(text: Text): i32 {
  return load<u8>(text);
}

/** Byte `index` of `text` (0 ≤ index < textLength(text)). */
export function textByte(text: Text, index: i32): i32 {
  return load<u8>(text + 1 + index);
}
