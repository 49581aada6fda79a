// The tunnel's frame format: the payload of an Ethernet frame with EtherType 0x88B5.
// docs/wire-format.md has the byte layout. All fields are big-endian (network order).
//
//   0  u8   version (TUNNEL_VERSION)
//   1  u8   kind (FrameKind)
//   2  u16  length: bytes after this 16-byte header (Ethernet may pad beyond it)
//   4  u32  session ID
//   8  u32  seq: DATA: this frame's sequence number; ACK/KEEPALIVE: the next one the sender will use
//  12  u32  ack: the next sequence number the sender expects from the peer (cumulative)
//  16  ...  body
//
// DATA body: TLP records, each a u16 record header (bits 15-13 chassis slot, bits 12-0 TLP
// size) then the TLP bytes.
// ACK / KEEPALIVE body: six u16 credit limits (PH, PD, NPH, NPD, CPLH, CPLD; cumulative
// counts mod 2^16), u8 SACK block count (0..MAX_SACK), u8 keys and echo (bit 7: bits 1-0 are
// the AN of the newest receive SA the sender's SecY holds, 0 without MACsec; bits 6-2: DATA
// frames received marked congestion experienced, a count mod 32), then per block u32 first,
// u32 end (exclusive) of a run of sequence numbers received beyond `ack`.

import { MACSEC_OVERHEAD } from "../map/registers.ts";

export const TUNNEL_VERSION = 1;
export const TUNNEL_HEADER = 16;
export const RECORD_HEADER = 2;
/** Record header: the chassis slot a TLP is for (downstream) or from (upstream), and its size. */
export const RECORD_SLOT_SHIFT = 13;
export const RECORD_SIZE_MASK = (1 << RECORD_SLOT_SHIFT) - 1;
export const RECORD_SLOTS = 8;
export const CREDIT_FIELDS = 6;
export const ACK_BODY_FIXED = 2 * CREDIT_FIELDS + 2;
export const SACK_BLOCK = 8;
export const MAX_SACK = 4;
/** The ACK body's keys byte: the bits of the SecY's advertisement, and where the echo of congestion marks sits. */
const KEYS_MASK = 0x83;
const ECHO_SHIFT = 2;
/** The echo counts marked DATA frames mod ECHO_MODULUS: an ACK goes at least every AckFrames (at most 255) frames, so a sender misses a wrap only if ACKs are lost. */
export const ECHO_MODULUS = 32;

export enum FrameKind {
  Data = 1,
  Ack = 2,
  Keepalive = 3,
  /** Link training, pairing and health frames of the firmware (docs/wire-format.md). */
  Control = 0x10,
}

export interface TunnelHeader {
  kind: FrameKind;
  length: number;
  session: number;
  seq: number;
  ack: number;
}

export interface SackBlock {
  first: number;
  end: number;
}

export interface AckBody {
  credits: number[]; // CREDIT_FIELDS limits
  sack: SackBlock[];
  /** Bit 7 set: bits 1-0 are the newest receive AN of the sender's SecY (board/macsec/secy.ts); 0 without MACsec. */
  keys: number;
  /** DATA frames the sender of the ACK received marked congestion experienced, mod ECHO_MODULUS (0 from a card before congestion control). */
  echo: number;
}

/** Sequence arithmetic mod 2^32: a - b as a signed distance. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function writeHeader(view: DataView, at: number, kind: FrameKind, length: number, session: number, seq: number, ack: number): void {
  view.setUint8(at, TUNNEL_VERSION);
  view.setUint8(at + 1, kind);
  view.setUint16(at + 2, length);
  view.setUint32(at + 4, session >>> 0);
  view.setUint32(at + 8, seq >>> 0);
  view.setUint32(at + 12, ack >>> 0);
}

export function ackBodySize(sackBlocks: number): number {
  return ACK_BODY_FIXED + SACK_BLOCK * sackBlocks;
}

export function writeAckBody(view: DataView, at: number, body: AckBody): void {
  for (let i = 0; i < CREDIT_FIELDS; i++) view.setUint16(at + 2 * i, body.credits[i] & 0xffff);
  view.setUint8(at + 2 * CREDIT_FIELDS, body.sack.length);
  view.setUint8(at + 2 * CREDIT_FIELDS + 1, (body.keys & KEYS_MASK) | ((body.echo % ECHO_MODULUS) << ECHO_SHIFT));
  body.sack.forEach((block, i) => {
    view.setUint32(at + ACK_BODY_FIXED + SACK_BLOCK * i, block.first >>> 0);
    view.setUint32(at + ACK_BODY_FIXED + SACK_BLOCK * i + 4, block.end >>> 0);
  });
}

export type Malformed = { malformed: string };

/** Reads and checks the tunnel header of an Ethernet payload. */
export function readHeader(view: DataView, at: number, available: number): TunnelHeader | Malformed {
  if (available < TUNNEL_HEADER) return { malformed: `payload of ${available} bytes is shorter than the tunnel header` };
  const version = view.getUint8(at);
  if (version !== TUNNEL_VERSION) return { malformed: `tunnel version ${version}` };
  const kind = view.getUint8(at + 1);
  if (kind !== FrameKind.Data && kind !== FrameKind.Ack && kind !== FrameKind.Keepalive && kind !== FrameKind.Control) {
    return { malformed: `frame kind ${kind}` };
  }
  const length = view.getUint16(at + 2);
  if (TUNNEL_HEADER + length > available) return { malformed: `length ${length} exceeds the ${available - TUNNEL_HEADER} bytes present` };
  return { kind, length, session: view.getUint32(at + 4), seq: view.getUint32(at + 8), ack: view.getUint32(at + 12) };
}

export function readAckBody(view: DataView, at: number, length: number): AckBody | Malformed {
  if (length < ACK_BODY_FIXED) return { malformed: `ack body of ${length} bytes` };
  const credits = Array.from({ length: CREDIT_FIELDS }, (_, i) => view.getUint16(at + 2 * i));
  const count = view.getUint8(at + 2 * CREDIT_FIELDS);
  if (count > MAX_SACK || length !== ackBodySize(count)) return { malformed: `${count} SACK blocks in ${length} bytes` };
  const sack: SackBlock[] = [];
  for (let i = 0; i < count; i++) {
    const first = view.getUint32(at + ACK_BODY_FIXED + SACK_BLOCK * i);
    const end = view.getUint32(at + ACK_BODY_FIXED + SACK_BLOCK * i + 4);
    if (seqDiff(end, first) <= 0) return { malformed: `empty SACK block ${first}..${end}` };
    sack.push({ first, end });
  }
  const keys = view.getUint8(at + 2 * CREDIT_FIELDS + 1);
  return { credits, sack, keys: keys & KEYS_MASK, echo: (keys >> ECHO_SHIFT) % ECHO_MODULUS };
}

/** Ethernet bytes around a tunnel payload on the wire: preamble, SFD, gap (20), header (14), FCS (4). */
const ETHERNET_WIRE_BYTES = 38;

/**
 * The analytic payload limit of the encapsulation (docs/wire-format.md): bits per second of
 * TLP data for a stream of TLPs with `payload` data bytes and `header` header bytes, at MTU
 * `mtu` and line rate `rateBps`, if every frame is full and nothing is lost; with `macsec`, each
 * frame is 32 bytes longer and carries 32 bytes less.
 */
export function payloadLimitBps(mtu: number, payload: number, header: number, rateBps: number, macsec = false): number {
  const overhead = macsec ? MACSEC_OVERHEAD : 0;
  const record = RECORD_HEADER + header + payload;
  const perFrame = Math.floor((mtu - overhead - TUNNEL_HEADER) / record);
  const wire = ETHERNET_WIRE_BYTES + overhead + TUNNEL_HEADER + perFrame * record;
  return (rateBps * perFrame * payload) / wire;
}
