// Host side of the flash image format (board/map/image.ts, docs/image-format.md): builds
// and signs images, reads their header, and checks an image the way the boot ROM does.
// Signatures are Ed25519 (node:crypto) over the 80 header bytes, which hold the payload's
// SHA-256.

import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import {
  IMAGE_MAGIC, IMAGE_FORMAT, BUILD_ID_SIZE, KEY_ID_SIZE, SHA256_SIZE, SIGNATURE_SIZE, ImageHeader, imageSize,
} from "./map/image.ts";
import { IMAGE_MAX } from "./map/flash.ts";

export interface ImageVersion {
  major: number;
  minor: number;
  patch: number;
}

/** What an image's header says, plus what its bytes showed. */
export interface ImageInfo {
  boardId: number;
  version: ImageVersion;
  buildId: Uint8Array;
  payloadLength: number;
  /** The header's KeyId: all zeros in an image built unsigned. */
  keyId: Uint8Array;
  /** The payload's SHA-256, as the header states it (checked against the payload). */
  sha256: Uint8Array;
  /** Bytes of the whole image including the signature; header + payload only for a file that stops after the payload. */
  size: number;
  /** False when the signature is missing or erased (all 0x00 or all 0xff). */
  signed: boolean;
}

export type DefectCode =
  | "truncated" | "magic" | "format" | "header-size" | "reserved" | "too-large" | "trailing-data"
  | "corrupt" | "unsigned" | "untrusted-key" | "bad-signature" | "foreign-board";

/** Why an image is refused. `reason` is one line, lower case, without a final period. */
export interface ImageDefect {
  code: DefectCode;
  reason: string;
}

/** An image that passed the checks, with its payload (firmware.wasm) as a view into the input. */
export interface CheckedImage {
  info: ImageInfo;
  payload: Uint8Array;
}

const VERSION_LIMITS = { major: 0x7f, minor: 0xff, patch: 0xffff };

export function formatVersion(v: ImageVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

/** "X.Y.Z" (decimal, each part within the header's range); throws Error naming what is wrong. */
export function parseVersion(text: string): ImageVersion {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(text.trim());
  if (!match) throw new Error(`expected a version such as 0.2.0 (MAJOR.MINOR.PATCH), got '${text}'`);
  const version = { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]) };
  for (const [part, max] of Object.entries(VERSION_LIMITS) as [keyof ImageVersion, number][]) {
    if (version[part] > max) throw new Error(`version ${text}: ${part} must be 0..${max}, got ${version[part]}`);
  }
  return version;
}

/** Negative, zero or positive as `a` is older than, the same as or newer than `b`. */
export function compareVersions(a: ImageVersion, b: ImageVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

function ed25519(key: KeyObject, type: "private" | "public"): KeyObject {
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`image keys are Ed25519, not ${key.asymmetricKeyType ?? key.type}`);
  if (type === "public") return key.type === "private" ? createPublicKey(key) : key;
  if (key.type !== "private") throw new Error("signing needs the private key, not the public one");
  return key;
}

/** The raw 32-byte Ed25519 public key of a public (or private) key. */
function rawPublicKey(key: KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(ed25519(key, "public").export({ format: "jwk" }).x!, "base64url"));
}

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

/** The first KEY_ID_SIZE bytes of the SHA-256 of the raw 32-byte public key (a private key gives its public key's ID). */
export function keyIdOf(publicKey: KeyObject): Uint8Array {
  return sha256(rawPublicKey(publicKey)).subarray(0, KEY_ID_SIZE);
}

const DEVELOPMENT_SEED_TEXT = "IOV development signing key: public, never trust it in a product";
const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";
let development: KeyObject | undefined;

/**
 * The development signing key (private). Its seed is the SHA-256 of a published sentence,
 * so anyone can sign with it: simulated cards trust it so that a fresh checkout can build,
 * boot and update firmware. A product must never trust it.
 */
export function developmentKey(): KeyObject {
  if (!development) {
    const seed = createHash("sha256").update(DEVELOPMENT_SEED_TEXT, "ascii").digest();
    development = createPrivateKey({ key: Buffer.concat([Buffer.from(PKCS8_ED25519_PREFIX, "hex"), seed]), format: "der", type: "pkcs8" });
  }
  return development;
}

export interface BuildOptions {
  boardId: number;
  version: ImageVersion;
  /** BUILD_ID_SIZE bytes; by default the first BUILD_ID_SIZE bytes of the payload's SHA-256. */
  buildId?: Uint8Array;
  /** Ed25519 private key; null builds an unsigned image (no signature bytes, KeyId zero). */
  key: KeyObject | null;
}

/** An image of `payload`, signed with `o.key` unless it is null. Throws Error when an argument does not fit the format. */
export function buildImage(payload: Uint8Array, o: BuildOptions): Uint8Array {
  if (!Number.isInteger(o.boardId) || o.boardId < 0 || o.boardId > 0xffffffff) throw new Error(`board ID must be a 32-bit unsigned number, got ${o.boardId}`);
  parseVersion(formatVersion(o.version));
  if (o.buildId && o.buildId.length !== BUILD_ID_SIZE) throw new Error(`a build ID has ${BUILD_ID_SIZE} bytes, not ${o.buildId.length}`);
  if (imageSize(payload.length) > IMAGE_MAX) {
    throw new Error(`a ${payload.length}-byte payload makes a ${imageSize(payload.length)}-byte image; a flash slot holds at most ${IMAGE_MAX}`);
  }
  const key = o.key && ed25519(o.key, "private");
  const hash = sha256(payload);
  const image = new Uint8Array(ImageHeader.Size + payload.length + (key ? SIGNATURE_SIZE : 0));
  const view = new DataView(image.buffer);
  view.setUint32(ImageHeader.Magic, IMAGE_MAGIC, true);
  view.setUint16(ImageHeader.Format, IMAGE_FORMAT, true);
  view.setUint16(ImageHeader.HeaderSize, ImageHeader.Size, true);
  view.setUint32(ImageHeader.BoardId, o.boardId, true);
  view.setUint8(ImageHeader.Major, o.version.major);
  view.setUint8(ImageHeader.Minor, o.version.minor);
  view.setUint16(ImageHeader.Patch, o.version.patch, true);
  image.set(o.buildId ?? hash.subarray(0, BUILD_ID_SIZE), ImageHeader.BuildId);
  view.setUint32(ImageHeader.PayloadLength, payload.length, true);
  if (key) image.set(keyIdOf(key), ImageHeader.KeyId);
  image.set(hash, ImageHeader.Sha256);
  image.set(payload, ImageHeader.Size);
  if (key) image.set(sign(null, image.subarray(0, ImageHeader.Size), key), ImageHeader.Size + payload.length);
  return image;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex");
const hex32 = (value: number) => `0x${(value >>> 0).toString(16).padStart(8, "0")}`;
const defect = (code: DefectCode, reason: string): ImageDefect => ({ code, reason });
const erased = (bytes: Uint8Array) => bytes.every((b) => b === 0x00) || bytes.every((b) => b === 0xff);

interface Parsed extends CheckedImage {
  signature: Uint8Array | null;
}

/**
 * The structural checks in order, stopping at the first failure. With `requireSignature`
 * an unsigned image fails right after the header and payload are known to be there; without
 * it, an unsigned image passes with `signed: false` and still gets the remaining checks.
 */
function parse(bytes: Uint8Array, inFlash: boolean, requireSignature: boolean): Parsed | ImageDefect {
  if (bytes.length < ImageHeader.Size) return defect("truncated", `${bytes.length} bytes, shorter than the ${ImageHeader.Size}-byte image header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const magic = view.getUint32(ImageHeader.Magic, true);
  if (magic !== IMAGE_MAGIC) return defect("magic", `not a flash image: magic ${hex32(magic)}, expected ${hex32(IMAGE_MAGIC)} ("IOVF")`);
  const format = view.getUint16(ImageHeader.Format, true);
  if (format !== IMAGE_FORMAT) return defect("format", `image format ${format} is not supported (only format ${IMAGE_FORMAT})`);
  const headerSize = view.getUint16(ImageHeader.HeaderSize, true);
  if (headerSize !== ImageHeader.Size) return defect("header-size", `header size ${headerSize}, format ${IMAGE_FORMAT} has an ${ImageHeader.Size}-byte header`);
  const reserved = view.getUint32(ImageHeader.Reserved44, true);
  if (reserved !== 0) return defect("reserved", `reserved header word at offset ${ImageHeader.Reserved44} is ${hex32(reserved)}, not zero`);
  const major = view.getUint8(ImageHeader.Major);
  if (major > VERSION_LIMITS.major) return defect("reserved", `major version byte is ${major}: its top bit is reserved and must be zero`);
  const payloadLength = view.getUint32(ImageHeader.PayloadLength, true);
  const size = imageSize(payloadLength);
  if (size > IMAGE_MAX) return defect("too-large", `a ${payloadLength}-byte payload makes a ${size}-byte image; a flash slot holds at most ${IMAGE_MAX}`);
  const end = ImageHeader.Size + payloadLength;
  if (bytes.length < end) return defect("truncated", `cut short: ${bytes.length} bytes, the header and ${payloadLength}-byte payload need ${end}`);
  const signature = bytes.length === end ? null : bytes.subarray(end, Math.min(bytes.length, size));
  const signed = signature !== null && signature.length === SIGNATURE_SIZE && !erased(signature);
  if (requireSignature && !signed && (signature === null || signature.length === SIGNATURE_SIZE)) {
    return defect("unsigned", signature === null ? "unsigned image (no signature after the payload)" : "unsigned image (the signature bytes are blank)");
  }
  if (signature && signature.length < SIGNATURE_SIZE) {
    return defect("truncated", `cut short inside the signature: ${signature.length} of its ${SIGNATURE_SIZE} bytes are there`);
  }
  if (!inFlash && bytes.length > size) return defect("trailing-data", `${bytes.length - size} byte(s) after the end of the ${size}-byte image`);
  const payload = bytes.subarray(ImageHeader.Size, end);
  const stated = bytes.slice(ImageHeader.Sha256, ImageHeader.Sha256 + SHA256_SIZE);
  if (hex(sha256(payload)) !== hex(stated)) return defect("corrupt", "payload SHA-256 does not match the header (corrupt image)");
  const info: ImageInfo = {
    boardId: view.getUint32(ImageHeader.BoardId, true),
    version: { major, minor: view.getUint8(ImageHeader.Minor), patch: view.getUint16(ImageHeader.Patch, true) },
    buildId: bytes.slice(ImageHeader.BuildId, ImageHeader.BuildId + BUILD_ID_SIZE),
    payloadLength,
    keyId: bytes.slice(ImageHeader.KeyId, ImageHeader.KeyId + KEY_ID_SIZE),
    sha256: stated,
    size: signature ? size : end,
    signed,
  };
  return { info, payload, signature: signed ? signature : null };
}

/**
 * The structural checks, without trust: magic, format, header size, reserved bits, the
 * size limit, that every byte is there, and the payload's SHA-256 (docs/image-format.md
 * lists the order). An unsigned image passes with `signed: false`. `inFlash`: `bytes` is a
 * whole flash slot, so bytes past the image are allowed (the blank rest of the slot).
 */
export function inspectImage(bytes: Uint8Array, o: { inFlash?: boolean } = {}): CheckedImage | ImageDefect {
  const parsed = parse(bytes, o.inFlash ?? false, false);
  return isDefect(parsed) ? parsed : { info: parsed.info, payload: parsed.payload };
}

/**
 * Every check the boot ROM makes: the structural ones, then that the image is signed, by
 * a key in `trustedKeys` (public or private Ed25519 keys), with a valid signature, and,
 * when `boardId` is given, for that board.
 */
export function verifyImage(bytes: Uint8Array, o: { trustedKeys: KeyObject[]; boardId?: number; inFlash?: boolean }): CheckedImage | ImageDefect {
  const parsed = parse(bytes, o.inFlash ?? false, true);
  if (isDefect(parsed)) return parsed;
  const { info, payload, signature } = parsed;
  const keyId = hex(info.keyId);
  const keys = o.trustedKeys.filter((k) => hex(keyIdOf(k)) === keyId);
  if (keys.length === 0) return defect("untrusted-key", `signed by key ${keyId}, which is not trusted`);
  const header = bytes.subarray(0, ImageHeader.Size);
  if (!keys.some((k) => verify(null, header, ed25519(k, "public"), signature!))) {
    return defect("bad-signature", `the signature does not verify with trusted key ${keyId} (header or signature altered)`);
  }
  if (o.boardId !== undefined && info.boardId !== o.boardId >>> 0) {
    return defect("foreign-board", `built for board ${hex32(info.boardId)}, this card is ${hex32(o.boardId)}`);
  }
  return { info, payload };
}

export function isDefect(x: unknown): x is ImageDefect {
  return typeof x === "object" && x !== null && typeof (x as ImageDefect).code === "string" && typeof (x as ImageDefect).reason === "string";
}
