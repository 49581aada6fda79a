// MACsec frames, IEEE 802.1AE-2018 with the extended packet numbering of 802.1AEbw-2013: the
// SecTAG, the cipher suites' IVs and associated data, protection and validation of one frame.
// The fabric's SecY (board/macsec/secy.ts), the capture tools and the tests all use these
// functions; docs/wire-format.md ("MACsec") has the byte layout. AES-GCM is node:crypto's.
//
//   | DA (6) | SA (6) | [802.1Q tag (4), in clear] | 0x88E5 | TCI/AN | SL | PN (4) | [SCI (8)] | Secure Data | ICV (16) | FCS |
//
// The 802.1Q tag, when present, sits in front of the SecTAG and is neither encrypted nor covered
// by the ICV: it belongs to the network (switches forward and may re-mark it), as with a Linux
// macsec device stacked on a VLAN device. Everything else from DA to the ICV is authenticated;
// the Secure Data (the EtherType and payload of the protected frame) is also encrypted when E
// and C are set.

import { createCipheriv, createDecipheriv } from "node:crypto";
import { FCS_SIZE, HEADER_SIZE, MIN_FRAME, MIN_PAYLOAD, VLAN_TAG_SIZE, isTagged, writeFcs } from "../ethernet/frame.ts";

export const ETHERTYPE_MACSEC = 0x88e5;
/** SecTAG with an explicit SCI, its EtherType included. */
export const SECTAG_SIZE = 16;
/** SecTAG without the SCI. */
export const SECTAG_SHORT = 8;
export const ICV_SIZE = 16;
export const SCI_SIZE = 8;
export const SALT_SIZE = 12;
/** Secure Data shorter than this is announced in the SL field so that a receiver can strip padding. */
export const SHORT_LENGTH_LIMIT = 48;

/** TCI bits (802.1AE 9.5): the AN sits in the low two bits of the same octet. */
export enum Tci {
  Version = 0x80, //      V: must be 0
  EndStation = 0x40, //   ES: the SCI is the source address and port 1, not carried
  Sci = 0x20, //          SC: the SCI is carried in the SecTAG
  SingleCopy = 0x10, //   SCB: EPON single copy broadcast
  Encrypted = 0x08, //    E: the Secure Data is encrypted
  Changed = 0x04, //      C: the Secure Data differs from the User Data (set with E)
}
export const AN_MASK = 0x03;

/** The cipher suites of 802.1AE-2018 14.4 and 802.1AEbw. */
export enum CipherSuite {
  GcmAes128 = 0,
  GcmAes256 = 1,
  GcmAesXpn128 = 2,
  GcmAesXpn256 = 3,
}

/** Cipher Suite Identifiers (802.1AE-2018 Table 14-1), as shown by tools. */
export const CIPHER_SUITE_ID: Record<CipherSuite, string> = {
  [CipherSuite.GcmAes128]: "00-80-C2-00-01-00-00-01",
  [CipherSuite.GcmAes256]: "00-80-C2-00-01-00-00-02",
  [CipherSuite.GcmAesXpn128]: "00-80-C2-00-01-00-00-03",
  [CipherSuite.GcmAesXpn256]: "00-80-C2-00-01-00-00-04",
};

export const CIPHER_SUITE_NAME: Record<CipherSuite, string> = {
  [CipherSuite.GcmAes128]: "GCM-AES-128",
  [CipherSuite.GcmAes256]: "GCM-AES-256",
  [CipherSuite.GcmAesXpn128]: "GCM-AES-XPN-128",
  [CipherSuite.GcmAesXpn256]: "GCM-AES-XPN-256",
};

export function isXpn(suite: CipherSuite): boolean {
  return suite === CipherSuite.GcmAesXpn128 || suite === CipherSuite.GcmAesXpn256;
}

export function keyLength(suite: CipherSuite): number {
  return suite === CipherSuite.GcmAes128 || suite === CipherSuite.GcmAesXpn128 ? 16 : 32;
}

/** What protects or validates frames of one secure association. */
export interface SecureAssociationKey {
  suite: CipherSuite;
  /** The SAK: 16 or 32 bytes. */
  key: Uint8Array;
  /** XPN only: the 96-bit salt and the SC's 32-bit short SCI. */
  salt?: Uint8Array;
  ssci?: number;
}

/** A parsed SecTAG. */
export interface SecTag {
  /** Offset of the MACsec EtherType (12, or 16 behind an 802.1Q tag). */
  at: number;
  tci: number;
  an: number;
  /** Short length: bytes of Secure Data when fewer than 48, else 0. */
  sl: number;
  /** The PN field: the packet number, or its low 32 bits with XPN. */
  pn: number;
  /** The carried SCI, or null (ES or no SC bit). */
  sci: Uint8Array | null;
  /** Where the Secure Data begins and how long it is (ICV excluded). */
  dataAt: number;
  dataLength: number;
}

/** The SCI of an end station that does not carry it (ES set): its source address and port 1. */
export function endStationSci(frame: Uint8Array): Uint8Array {
  const sci = new Uint8Array(SCI_SIZE);
  sci.set(frame.subarray(6, 12));
  sci[7] = 1;
  return sci;
}

/** The SCI of a frame: carried, or implied by ES. Null when neither (the receiver's only SC is meant). */
export function frameSci(frame: Uint8Array, tag: SecTag): Uint8Array | null {
  return tag.sci ?? ((tag.tci & Tci.EndStation) !== 0 ? endStationSci(frame) : null);
}

export function sciKey(sci: Uint8Array): bigint {
  let key = 0n;
  for (const b of sci) key = (key << 8n) | BigInt(b);
  return key;
}

export function formatSci(sci: Uint8Array): string {
  return Array.from(sci, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether an Ethernet frame (FCS included) carries the MACsec EtherType, after an optional 802.1Q tag. */
export function isMacsec(frame: Uint8Array): boolean {
  const at = isTagged(frame) ? HEADER_SIZE + VLAN_TAG_SIZE - 2 : HEADER_SIZE - 2;
  return frame.length >= at + 2 && ((frame[at] << 8) | frame[at + 1]) === ETHERTYPE_MACSEC;
}

/**
 * Reads and checks the SecTAG of a MACsec frame (FCS included, already checked): the checks of
 * 802.1AE-2018 10.6 that need no key. Returns the reason as a string when the frame is not a
 * valid MACsec frame.
 */
export function parseSecTag(frame: Uint8Array): SecTag | string {
  const at = isTagged(frame) ? HEADER_SIZE + VLAN_TAG_SIZE - 2 : HEADER_SIZE - 2;
  const end = frame.length - FCS_SIZE;
  if (end < at + SECTAG_SHORT) return "shorter than a SecTAG";
  if (((frame[at] << 8) | frame[at + 1]) !== ETHERTYPE_MACSEC) return "not a MACsec frame";
  const tci = frame[at + 2] & ~AN_MASK;
  if (tci & Tci.Version) return "SecTAG version 1";
  if ((tci & Tci.EndStation) && (tci & Tci.Sci)) return "ES and SC both set";
  if ((tci & Tci.Sci) && (tci & Tci.SingleCopy)) return "SC and SCB both set";
  if ((tci & Tci.Changed) && !(tci & Tci.Encrypted)) return "C set without E";
  const sl = frame[at + 3];
  if (sl & 0xc0) return `SL ${sl}: its two high bits must be 0`;
  if (sl >= SHORT_LENGTH_LIMIT) return `SL ${sl} is not below ${SHORT_LENGTH_LIMIT}`;
  const pn = ((frame[at + 4] << 24) | (frame[at + 5] << 16) | (frame[at + 6] << 8) | frame[at + 7]) >>> 0;
  const withSci = (tci & Tci.Sci) !== 0;
  const dataAt = at + (withSci ? SECTAG_SIZE : SECTAG_SHORT);
  const room = end - dataAt - ICV_SIZE;
  if (room < 0) return "no room for the ICV";
  let dataLength = room;
  if (sl !== 0) {
    if (sl > room) return `SL ${sl} exceeds the ${room} bytes present`;
    dataLength = sl;
  } else if (room < SHORT_LENGTH_LIMIT) {
    return `SL 0 with ${room} bytes of Secure Data`;
  }
  return {
    at, tci, an: frame[at + 2] & AN_MASK, sl, pn,
    sci: withSci ? frame.slice(at + 8, at + 16) : null,
    dataAt, dataLength,
  };
}

/** The 96-bit IV of a frame (802.1AE 14.5; 802.1AEbw 14.7 for XPN). `pn` is the full packet number. */
export function frameIv(sa: SecureAssociationKey, sci: Uint8Array, pn: bigint): Uint8Array {
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  if (isXpn(sa.suite)) {
    if (!sa.salt || sa.salt.length !== SALT_SIZE || sa.ssci === undefined) throw new Error("an XPN cipher suite needs a 12-byte salt and an SSCI");
    view.setUint32(0, sa.ssci >>> 0);
    view.setBigUint64(4, pn & 0xffff_ffff_ffff_ffffn);
    for (let i = 0; i < SALT_SIZE; i++) iv[i] ^= sa.salt[i];
  } else {
    iv.set(sci, 0);
    view.setUint32(8, Number(pn & 0xffff_ffffn));
  }
  return iv;
}

function algorithm(suite: CipherSuite): "aes-128-gcm" | "aes-256-gcm" {
  return keyLength(suite) === 16 ? "aes-128-gcm" : "aes-256-gcm";
}

function checkKey(sa: SecureAssociationKey): void {
  if (sa.key.length !== keyLength(sa.suite)) throw new Error(`${CIPHER_SUITE_NAME[sa.suite]} needs a ${keyLength(sa.suite)}-byte key, not ${sa.key.length}`);
}

export interface ProtectOptions {
  an: number;
  /** The full packet number: 1..2^32-1, or 1..2^64-1 with XPN. */
  pn: bigint;
  /** The transmitting SC's SCI. */
  sci: Uint8Array;
  /** Carry the SCI in the SecTAG (SC); otherwise ES is set and the SCI must be the source address and port 1. */
  includeSci: boolean;
  /** Confidentiality (E and C); otherwise integrity only. */
  encrypt: boolean;
}

/**
 * Protects a frame: `clear` is an Ethernet II frame (DA, SA, optional 802.1Q tag, EtherType,
 * payload, FCS) and `userLength` the bytes after the tag that belong to the frame (EtherType and
 * payload, any padding excluded). Returns the MACsec frame, FCS included, padded to 64 bytes
 * when shorter.
 */
export function protectFrame(clear: Uint8Array, userLength: number, sa: SecureAssociationKey, options: ProtectOptions): Uint8Array {
  checkKey(sa);
  const head = isTagged(clear) ? HEADER_SIZE + VLAN_TAG_SIZE - 2 : HEADER_SIZE - 2;
  if (userLength < 2 || head + userLength > clear.length - FCS_SIZE) throw new Error(`user data of ${userLength} bytes does not fit the frame`);
  const tagSize = options.includeSci ? SECTAG_SIZE : SECTAG_SHORT;
  const bodyEnd = head + tagSize + userLength + ICV_SIZE;
  const out = new Uint8Array(Math.max(bodyEnd + FCS_SIZE, MIN_FRAME));
  out.set(clear.subarray(0, head), 0);
  out[head] = ETHERTYPE_MACSEC >> 8;
  out[head + 1] = ETHERTYPE_MACSEC & 0xff;
  out[head + 2] = (options.includeSci ? Tci.Sci : Tci.EndStation) | (options.encrypt ? Tci.Encrypted | Tci.Changed : 0) | (options.an & AN_MASK);
  out[head + 3] = userLength < SHORT_LENGTH_LIMIT ? userLength : 0;
  new DataView(out.buffer).setUint32(head + 4, Number(options.pn & 0xffff_ffffn));
  if (options.includeSci) out.set(options.sci, head + SECTAG_SHORT);
  const user = clear.subarray(head, head + userLength);
  const headerEnd = head + tagSize;
  const aad = associatedData(out, head, headerEnd);
  const cipher = createCipheriv(algorithm(sa.suite), sa.key, frameIv(sa, options.sci, options.pn), { authTagLength: ICV_SIZE });
  if (options.encrypt) {
    cipher.setAAD(aad);
    out.set(cipher.update(user), headerEnd);
    cipher.final();
  } else {
    out.set(user, headerEnd);
    cipher.setAAD(concat(aad, user));
    cipher.final();
  }
  out.set(cipher.getAuthTag(), headerEnd + userLength);
  writeFcs(out);
  return out;
}

/** DA and SA, then the SecTAG: the 802.1Q tag between them is the network's and stays out. */
function associatedData(frame: Uint8Array, tagAt: number, headerEnd: number): Uint8Array {
  return concat(frame.subarray(0, 12), frame.subarray(tagAt, headerEnd));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Validates a MACsec frame with the SA its SecTAG names and returns the frame as it was before
 * protection (DA, SA, the 802.1Q tag if any, EtherType, payload padded to 46 bytes, new FCS),
 * or null when the ICV does not match. `pn` is the full packet number (with XPN, recovered by
 * the receiver from the PN field and its lowest acceptable PN: recoverPn).
 */
export function validateFrame(frame: Uint8Array, tag: SecTag, sa: SecureAssociationKey, sci: Uint8Array, pn: bigint): Uint8Array | null {
  checkKey(sa);
  const headerEnd = tag.dataAt;
  const aad = associatedData(frame, tag.at, headerEnd);
  const secure = frame.subarray(tag.dataAt, tag.dataAt + tag.dataLength);
  const icv = frame.subarray(tag.dataAt + tag.dataLength, tag.dataAt + tag.dataLength + ICV_SIZE);
  const decipher = createDecipheriv(algorithm(sa.suite), sa.key, frameIv(sa, sci, pn), { authTagLength: ICV_SIZE });
  decipher.setAuthTag(icv);
  let user: Uint8Array;
  try {
    if (tag.tci & Tci.Encrypted) {
      decipher.setAAD(aad);
      user = decipher.update(secure);
      decipher.final();
    } else {
      decipher.setAAD(concat(aad, secure));
      decipher.final();
      user = secure;
    }
  } catch {
    return null;
  }
  // Padded as encodeFrame pads: the payload after the EtherType to at least 46 bytes.
  const out = new Uint8Array(tag.at + 2 + Math.max(user.length - 2, MIN_PAYLOAD) + FCS_SIZE);
  out.set(frame.subarray(0, tag.at), 0);
  out.set(user, tag.at);
  writeFcs(out);
  return out;
}

/**
 * The full packet number of a received frame (802.1AEbw 10.6.2): without XPN the PN field
 * itself; with XPN the 64-bit number nearest above the receiver's lowest acceptable PN whose low
 * 32 bits are the PN field.
 */
export function recoverPn(suite: CipherSuite, field: number, lowestPn: bigint): bigint {
  if (!isXpn(suite)) return BigInt(field >>> 0);
  const low = lowestPn & 0xffff_ffffn;
  const high = lowestPn >> 32n;
  return BigInt(field >>> 0) >= low ? (high << 32n) | BigInt(field >>> 0) : ((high + 1n) << 32n) | BigInt(field >>> 0);
}
