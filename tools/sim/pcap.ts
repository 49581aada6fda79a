// Classic libpcap capture files (not pcapng) of the frames the simulated cards exchange,
// for Wireshark, tshark and tcpdump.
//
// Layout (all fields little-endian as written here; readPcap accepts either byte order):
//   global header, 24 bytes: magic 0xa1b23c4d (nanosecond timestamps), version 2.4,
//     thiszone 0, sigfigs 0, snaplen, link type
//   per frame, 16 bytes: ts_sec, ts_nsec, incl_len, orig_len; then incl_len frame bytes
//
// Every frame is stored whole, FCS included, so the link type is LINKTYPE_ETHERNET (1) with
// libpcap's FCS-length extension in its upper bits: LT_FCS_DATALINK_EXT(2) =
// (2 << 28) | 0x04000000, "an FCS of 2 x 16 bits ends every frame" -> 0x24000001.
// Wireshark (wiretap/libpcap.c) reads the extension and checks the FCS of each frame,
// instead of guessing whether the last four bytes are an FCS or a trailer.
//
// Snaplen is 65535, the classic default that every reader accepts: the largest frame a port
// can carry, a 9216-byte jumbo payload with an 802.1Q tag and FCS, is 14 + 4 + 9216 + 4 =
// 9238 bytes, and even a deliberately oversize frame on the simulated wire stays far below it.
// Frames are never truncated; a frame longer than the snaplen is a bug and is refused.

import { closeSync, openSync, writeSync } from "node:fs";

export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_SNAPLEN = 65535;
export const LINKTYPE_ETHERNET = 1;
/** libpcap's LT_FCS_LENGTH_PRESENT bit of the link-type field. */
export const LT_FCS_LENGTH_PRESENT = 0x04000000;
/** LINKTYPE_ETHERNET with LT_FCS_DATALINK_EXT(2): every frame ends with a 4-byte FCS. */
export const LINKTYPE_ETHERNET_FCS4 = ((2 << 28) | LT_FCS_LENGTH_PRESENT | LINKTYPE_ETHERNET) >>> 0; // 0x24000001
export const GLOBAL_HEADER_SIZE = 24;
export const RECORD_HEADER_SIZE = 16;
/** Writes are gathered into chunks of this size before going to the file. */
const CHUNK_SIZE = 64 * 1024;

/** Streams frames into a classic pcap file, one record per frame. */
export class PcapWriter {
  private fd: number | null;
  private readonly chunk = Buffer.alloc(CHUNK_SIZE);
  private used = 0;

  /** Creates (or truncates) `path` and writes the global header at once. */
  constructor(readonly path: string) {
    this.fd = openSync(path, "w");
    const header = Buffer.alloc(GLOBAL_HEADER_SIZE);
    header.writeUInt32LE(PCAP_MAGIC_NS, 0);
    header.writeUInt16LE(PCAP_VERSION_MAJOR, 4);
    header.writeUInt16LE(PCAP_VERSION_MINOR, 6);
    header.writeInt32LE(0, 8); //   thiszone: timestamps are virtual time, no zone
    header.writeUInt32LE(0, 12); // sigfigs
    header.writeUInt32LE(PCAP_SNAPLEN, 16);
    header.writeUInt32LE(LINKTYPE_ETHERNET_FCS4, 20);
    writeAll(this.fd, header); // a valid empty capture from the start
  }

  /**
   * Appends one frame (FCS included) seen at virtual time `timeNs` (a non-negative integer
   * number of nanoseconds). Throws RangeError for a bad time or a frame over the snaplen.
   */
  write(timeNs: number, frame: Uint8Array): void {
    if (this.fd === null) throw new Error(`pcap ${this.path}: write after close`);
    if (!Number.isSafeInteger(timeNs) || timeNs < 0) throw new RangeError(`pcap: time ${timeNs} ns is not a non-negative integer`);
    const seconds = Math.floor(timeNs / 1e9);
    if (seconds > 0xffffffff) throw new RangeError(`pcap: time ${timeNs} ns does not fit 32-bit seconds`);
    if (frame.length > PCAP_SNAPLEN) throw new RangeError(`pcap: frame of ${frame.length} bytes exceeds the snaplen ${PCAP_SNAPLEN}`);
    if (this.used + RECORD_HEADER_SIZE > CHUNK_SIZE) this.flush();
    const c = this.chunk;
    c.writeUInt32LE(seconds, this.used);
    c.writeUInt32LE(timeNs - seconds * 1e9, this.used + 4);
    c.writeUInt32LE(frame.length, this.used + 8);
    c.writeUInt32LE(frame.length, this.used + 12);
    this.used += RECORD_HEADER_SIZE;
    this.put(frame);
  }

  /** Sends the buffered records to the file. */
  flush(): void {
    if (this.fd === null || this.used === 0) return;
    writeAll(this.fd, this.chunk.subarray(0, this.used));
    this.used = 0;
  }

  /** Flushes and closes the file; further calls do nothing. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }

  // Every piece fits one chunk: a record header is 16 bytes and a frame at most
  // PCAP_SNAPLEN (65535) < CHUNK_SIZE.
  private put(bytes: Uint8Array): void {
    if (this.used + bytes.length > CHUNK_SIZE) this.flush();
    this.chunk.set(bytes, this.used);
    this.used += bytes.length;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
}

export interface PcapRecord {
  /** Capture time in nanoseconds (microsecond files are scaled). */
  timeNs: number;
  /** The captured bytes (incl_len of them), a view into the input. */
  frame: Uint8Array;
  /** orig_len: the frame's length on the wire, more than frame.length if truncated. */
  origLength: number;
}

export interface PcapFile {
  /** LINKTYPE_* value: the low 16 bits of the link-type field. */
  linkType: number;
  /** FCS bytes at the end of every frame per the FCS-length extension, or null if not stated. */
  fcsLength: number | null;
  snaplen: number;
  /** Timestamp resolution of the file: 1e-9 (magic 0xa1b23c4d) or 1e-6 (0xa1b2c3d4). */
  nanosecond: boolean;
  records: PcapRecord[];
}

/** Parses a classic pcap file; throws an Error naming the first thing malformed in it. */
export function readPcap(bytes: Uint8Array): PcapFile {
  if (bytes.length < GLOBAL_HEADER_SIZE) {
    throw new Error(`pcap: truncated global header: ${bytes.length} of ${GLOBAL_HEADER_SIZE} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicLE = view.getUint32(0, true);
  let le: boolean;
  let nanosecond: boolean;
  if (magicLE === PCAP_MAGIC_NS || magicLE === PCAP_MAGIC_US) {
    le = true;
    nanosecond = magicLE === PCAP_MAGIC_NS;
  } else {
    const magicBE = view.getUint32(0, false);
    if (magicBE !== PCAP_MAGIC_NS && magicBE !== PCAP_MAGIC_US) {
      throw new Error(`pcap: bad magic 0x${magicBE.toString(16).padStart(8, "0")}: not a classic pcap file`);
    }
    le = false;
    nanosecond = magicBE === PCAP_MAGIC_NS;
  }
  const u16 = (at: number) => view.getUint16(at, le);
  const u32 = (at: number) => view.getUint32(at, le);
  if (u16(4) !== PCAP_VERSION_MAJOR) throw new Error(`pcap: unsupported version ${u16(4)}.${u16(6)}`);
  const snaplen = u32(16);
  const field = u32(20);
  const linkType = field & 0xffff;
  const fcsLength = field & LT_FCS_LENGTH_PRESENT ? (field >>> 28) * 2 : null;
  const scale = nanosecond ? 1 : 1000;

  const records: PcapRecord[] = [];
  for (let at = GLOBAL_HEADER_SIZE; at < bytes.length; ) {
    const n = records.length;
    if (bytes.length - at < RECORD_HEADER_SIZE) {
      throw new Error(`pcap: truncated record header: record ${n} at offset ${at} has ${bytes.length - at} of ${RECORD_HEADER_SIZE} bytes`);
    }
    const seconds = u32(at);
    const fraction = u32(at + 4);
    const inclLen = u32(at + 8);
    const origLength = u32(at + 12);
    if (inclLen > snaplen) {
      throw new Error(`pcap: incl_len ${inclLen} > snaplen ${snaplen}: record ${n} at offset ${at}`);
    }
    if (inclLen > origLength) {
      throw new Error(`pcap: incl_len ${inclLen} > orig_len ${origLength}: record ${n} at offset ${at}`);
    }
    const start = at + RECORD_HEADER_SIZE;
    if (bytes.length - start < inclLen) {
      throw new Error(`pcap: truncated record: record ${n} at offset ${at} has ${bytes.length - start} of ${inclLen} bytes`);
    }
    records.push({
      timeNs: seconds * 1e9 + fraction * scale,
      frame: new Uint8Array(bytes.buffer, bytes.byteOffset + start, inclLen),
      origLength,
    });
    at = start + inclLen;
  }
  return { linkType, fcsLength, snaplen, nanosecond, records };
}
