// Flash image format v1, shared by the firmware (which checks an image it has received
// before asking for a trial boot) and the host tools and boot ROM (which build, sign and
// verify images). docs/image-format.md describes it.
//
//   offset 0              header (ImageHeader.Size bytes, little-endian)
//   offset Size           payload: firmware.wasm, PayloadLength bytes
//   offset Size + length  Ed25519 signature (SIGNATURE_SIZE bytes) over the header bytes
//
// The header carries the payload's SHA-256, so the signature over the header covers the
// payload too. An image without the signature, or whose signature bytes are all 0x00 or
// all 0xff (erased flash), is unsigned.

export const IMAGE_MAGIC = 0x46564f49; // the bytes "IOVF"
export const IMAGE_FORMAT = 1;
export const BUILD_ID_SIZE = 16;
export const KEY_ID_SIZE = 8;
export const SHA256_SIZE = 32;
export const SIGNATURE_SIZE = 64;

export enum ImageHeader {
  Magic = 0, //          u32 IMAGE_MAGIC
  Format = 4, //         u16 IMAGE_FORMAT
  HeaderSize = 6, //     u16 ImageHeader.Size
  BoardId = 8, //        u32 the board the image is built for (CardReg.BoardId)
  Major = 12, //         u8  firmware version: major 0..127 (the top bit is reserved, zero; see versionKey)
  Minor = 13, //         u8  minor 0..255
  Patch = 14, //         u16 patch 0..65535
  BuildId = 16, //       u8[BUILD_ID_SIZE] identifies the build (by default the first bytes of the payload's SHA-256)
  PayloadLength = 32, // u32 bytes of firmware.wasm
  KeyId = 36, //         u8[KEY_ID_SIZE] first bytes of the SHA-256 of the signing key's raw 32-byte public key
  Reserved44 = 44, //    u32 zero
  Sha256 = 48, //        u8[SHA256_SIZE] SHA-256 of the payload
  Size = 80,
}

/** Bytes of a whole signed image with a payload of `payloadLength` bytes. */
export function imageSize(payloadLength: i32): i32 {
  return ImageHeader.Size + payloadLength + SIGNATURE_SIZE;
}

/** The version as one number that orders like the version: major, minor, patch. */
export function versionKey(major: i32, minor: i32, patch: i32): i32 {
  return ((major & 0x7f) << 24) | ((minor & 0xff) << 16) | (patch & 0xffff);
}
