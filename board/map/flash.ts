// The card's serial NOR flash, shared by the firmware (which writes updates into the
// inactive slot) and the board model (flash controller, boot ROM). docs/image-format.md
// describes the layout and the boot ROM's rules.
//
//   0x00000-0x0ffff  slot 0: an image (board/map/image.ts), its trailer in the last 32 bytes
//   0x10000-0x1ffff  slot 1
//   0x20000-0x21fff  the card's configuration: one ConfigRecord per sector, the newest valid one counts
//   0x22000-0x3ffff  reserved
//
// NOR semantics: erase sets a whole sector to 0xff; programming can only clear bits and
// must stay inside one page.

export const FLASH_SIZE = 0x40000;
export const SECTOR_SIZE = 0x1000;
export const PAGE_SIZE = 256;
export const SLOTS = 2;
export const SLOT_SIZE = 0x10000;
export const SLOT_SECTORS = SLOT_SIZE / SECTOR_SIZE;

/** Timing of the flash operations, typical figures of a serial NOR part (Winbond W25Q series). */
export const ERASE_SECTOR_NS = 45_000_000;
export const PROGRAM_PAGE_NS = 700_000;
export const READ_NS_PER_BYTE = 20;

/**
 * The slot trailer, at the end of each slot: boot-state flags, one u32 word each. A word
 * reads 0xffffffff while the flag is clear (erased); any other value means set, so a flag
 * half-written by a power cut counts as set. Erasing the slot clears them all.
 */
export enum SlotTrailer {
  Pending = 0, //    a trial boot of this slot's image was requested
  Tried = 4, //      the boot ROM started that trial
  Confirmed = 8, //  the firmware confirmed the image after a healthy start: it may boot for good
  Revoked = 12, //   the boot ROM refused the image or rolled it back: never boot it again
  Superseded = 16, // another slot's image was confirmed after this one
  Size = 32,
}

export const TRAILER_BASE = SLOT_SIZE - SlotTrailer.Size;
/** Largest image a slot holds. */
export const IMAGE_MAX = TRAILER_BASE;
export const FLAG_CLEAR = 0xffffffff;

export function slotBase(slot: i32): i32 {
  return slot * SLOT_SIZE;
}

/**
 * The card's configuration: records of the CONFIG body (board/map/mailbox.ts), written in
 * turn to CONFIG_SECTORS sectors from CONFIG_BASE so that the previous record survives a
 * power cut during a write. At power-on the board posts CONFIG from the valid record with
 * the highest Sequence; a record is valid when Magic, Length and the SHA-256 check out.
 * Little-endian, like the image header.
 */
export const CONFIG_BASE = 0x20000;
export const CONFIG_SECTORS = 2;
/** "IOVC" read as a little-endian u32. */
export const CONFIG_MAGIC = 0x4356_4f49;

export enum ConfigRecord {
  Magic = 0, //      u32 CONFIG_MAGIC
  Sequence = 4, //   u32 1 for the factory record, then one more for each write; never 0xffffffff
  Length = 8, //     u16 bytes of Body: ConfigBody.Size
  Reserved10 = 10, // u16
  Reserved12 = 12, // u32
  Body = 16, //      u8[Length] the CONFIG body
  // then u8[32]: SHA-256 of bytes 0 .. Body + Length
}

export const CONFIG_HASH_SIZE = 32;

export function configSector(index: i32): i32 {
  return CONFIG_BASE + index * SECTOR_SIZE;
}
