// A rogue station on the cards' switch (scenario `attacker`, docs/scenarios.md#attack): it sits on
// a mirror port, so it sees every frame any card sends, and it can send any frame, with any source
// address. It does what docs/wire-format.md#macsec promises to defeat:
//
//   read     every frame it sees, looking for TLPs: a DATA frame in clear, or Secure Data that
//            reads as a tunnel header and TLP records (docs/wire-format.md)
//   forge    a DATA frame of the live session: the SecTAG of the last frame one card sent, with the
//            next PN, and a memory write of its own in place of the Secure Data (it cannot compute
//            the ICV, so it sends random bytes)
//   clear    a DATA frame in clear, from one card's address to the other, with a memory write
//   flip     a copy of a frame just seen with one bit flipped and the FCS recomputed
//   replay   a frame recorded up to RECORDED frames ago, or one of the first of the session, unchanged
//   stale    a frame recorded in an earlier session of the same cards, once they paired again
//
// One attack per interval, in that order, from a seeded generator. It counts what it read and
// sent; the world counts what got through (tools/sim/world.ts).

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { EthernetPort, PortDevice } from "../../board/ethernet/port.ts";
import type { Scheduler } from "../../board/scheduler.ts";
import { ETHERTYPE_IOV, FCS_SIZE, fcsValid, isTagged, payloadOffset, writeFcs } from "../../board/ethernet/frame.ts";
import { ETHERTYPE_MACSEC, ICV_SIZE, frameSci, parseSecTag } from "../../board/macsec/frame.ts";
import { FrameKind, RECORD_HEADER, RECORD_SIZE_MASK, TUNNEL_HEADER, TUNNEL_VERSION } from "../../board/tunnel/wire.ts";
import { memoryWrite, tlpBytes, tlpClass } from "../../board/pcie/tlp.ts";

export const ATTACKS = ["forge", "clear", "flip", "replay", "stale"] as const;
export type AttackKind = (typeof ATTACKS)[number];

/** Frames of the current session kept for replays and bit flips. */
export const RECORDED = 4096;
/** The first frames of each session kept for replays long after. */
export const EARLY = 256;

export interface AttackerSpec {
  /** The switch and its mirror port the station is plugged into. */
  switch: string;
  port: number;
  /** When it starts and stops attacking (it reads all along). */
  startNs: number;
  endNs?: number;
  /** One attack this often. */
  intervalNs: number;
}

export interface AttackerStats {
  /** Frames the mirror port showed it, and those of a session's data path (MACsec or DATA/ACK/KEEPALIVE in clear). */
  framesRead: number;
  dataPathFrames: number;
  /** TLPs it could read out of them. */
  tlpsRecovered: number;
  /** Frames it sent, by attack. */
  sent: Record<AttackKind, number>;
}

interface Recorded {
  frame: Uint8Array;
  /** The sending card's SCI, as hex (its session's). */
  sci: string;
}

/** The TLPs of a tunnel DATA frame's body at `at` in `bytes`, if it reads as one; else 0. */
function readableTlps(bytes: Uint8Array, at: number, end: number): number {
  if (end - at < TUNNEL_HEADER || bytes[at] !== TUNNEL_VERSION || bytes[at + 1] !== FrameKind.Data) return 0;
  const length = (bytes[at + 2] << 8) | bytes[at + 3];
  let p = at + TUNNEL_HEADER;
  const stop = p + length;
  if (length === 0 || stop > end) return 0;
  let tlps = 0;
  while (p < stop) {
    if (p + RECORD_HEADER > stop) return 0;
    const size = ((bytes[p] << 8) | bytes[p + 1]) & RECORD_SIZE_MASK;
    const tlp = bytes.subarray(p + RECORD_HEADER, p + RECORD_HEADER + size);
    if (size < 12 || p + RECORD_HEADER + size > stop || tlpClass(tlp) < 0 || tlpBytes(tlp) !== size) return 0;
    tlps++;
    p += RECORD_HEADER + size;
  }
  return tlps;
}

export class Attacker implements PortDevice {
  readonly stats: AttackerStats = { framesRead: 0, dataPathFrames: 0, tlpsRecovered: 0, sent: { forge: 0, clear: 0, flip: 0, replay: 0, stale: 0 } };
  /** Every frame it sent: the world checks none of them got through. */
  readonly injected = new WeakSet<Uint8Array>();
  /**
   * Those that are a card's own frame, resent as it was (replay, stale): one the network lost on
   * its way, and that the card never took, is a genuine frame to it, taken once.
   */
  readonly verbatim = new WeakSet<Uint8Array>();
  private port: EthernetPort | null = null;
  private readonly rng;
  private readonly recent: Recorded[] = [];
  /** The first frames of each session it saw: replayed once the replay window has moved past them. */
  private readonly early: Recorded[] = [];
  private readonly earlyPerSci = new Map<string, number>();
  /** Frames of sessions that have ended (their SCI is no longer seen), per sender SCI. */
  private readonly older: Recorded[] = [];
  /** The SCI each sender uses now. */
  private readonly currentSci = new Map<string, string>();
  private next = 0;
  private replays = 0;

  constructor(private readonly scheduler: Scheduler, private readonly spec: AttackerSpec, seed: number) {
    this.rng = xoroshiro128plus((seed ^ 0x0a77_ac00) >>> 0);
    scheduler.at(spec.startNs, () => this.tick());
  }

  /** The cable end it sends on (the network has attached it there already). */
  connect(port: EthernetPort): void {
    this.port = port;
  }

  receive(frame: Uint8Array): void {
    if (!fcsValid(frame)) return;
    this.stats.framesRead++;
    const at = payloadOffset(frame);
    const etherType = (frame[at - 2] << 8) | frame[at - 1];
    const end = frame.length - FCS_SIZE;
    if (etherType === ETHERTYPE_IOV && frame[at + 1] !== FrameKind.Control) {
      this.stats.dataPathFrames++;
      this.stats.tlpsRecovered += readableTlps(frame, at, end);
      return;
    }
    if (etherType !== ETHERTYPE_MACSEC) return;
    this.stats.dataPathFrames++;
    const tag = parseSecTag(frame);
    if (typeof tag === "string") return;
    // The Secure Data, read as if it were in clear (after the inner EtherType).
    this.stats.tlpsRecovered += readableTlps(frame, tag.dataAt + 2, tag.dataAt + tag.dataLength);
    const sci = Buffer.from(frameSci(frame, tag) ?? new Uint8Array(8)).toString("hex");
    const sender = sci.slice(0, 12);
    const was = this.currentSci.get(sender);
    if (was !== undefined && was !== sci) {
      // A new session of that card: what it sent before is stale from now on.
      for (const r of this.recent) if (r.sci === was) this.older.push(r);
      this.older.splice(0, Math.max(0, this.older.length - RECORDED));
    }
    this.currentSci.set(sender, sci);
    const copy = { frame: frame.slice(), sci };
    const early = this.earlyPerSci.get(sci) ?? 0;
    if (early < EARLY) {
      this.earlyPerSci.set(sci, early + 1);
      this.early.push(copy);
    }
    this.recent.push(copy);
    if (this.recent.length > RECORDED) this.recent.shift();
  }

  private random(max: number): number {
    return uniformInt(this.rng, 0, max);
  }

  private tick(): void {
    if (this.spec.endNs !== undefined && this.scheduler.now >= this.spec.endNs) return;
    const kind = ATTACKS[this.next++ % ATTACKS.length];
    const frame = this.craft(kind);
    if (frame && this.port) {
      writeFcs(frame);
      this.injected.add(frame);
      if (kind === "replay" || kind === "stale") this.verbatim.add(frame);
      if (this.port.send(frame)) this.stats.sent[kind]++;
    }
    this.scheduler.at(this.scheduler.now + this.spec.intervalNs, () => this.tick());
  }

  private craft(kind: AttackKind): Uint8Array | null {
    const last = this.recent.at(-1);
    switch (kind) {
      case "forge":
        return last ? this.forge(last.frame) : null;
      case "clear":
        return last ? this.clearData(last.frame) : null;
      case "flip": {
        if (!last) return null;
        const f = last.frame.slice();
        const from = isTagged(f) ? 16 : 12; // not the addresses: the frame must still reach its card
        const bit = from * 8 + this.random((f.length - FCS_SIZE - from) * 8 - 1);
        f[bit >> 3] ^= 1 << (bit & 7);
        return f;
      }
      case "replay": {
        // Every other replay is of a frame long past (the first of its session), the others of one just seen.
        const pool = this.replays++ % 2 === 0 ? this.recent : this.early.filter((r) => this.currentSci.get(r.sci.slice(0, 12)) === r.sci);
        return pool.length ? pool[this.random(pool.length - 1)].frame.slice() : null;
      }
      case "stale":
        return this.older.length ? this.older[this.random(this.older.length - 1)].frame.slice() : null;
    }
  }

  /** The last frame's SecTAG with the next PN, and a memory write of the attacker's in place of the Secure Data and ICV. */
  private forge(model: Uint8Array): Uint8Array | null {
    const tag = parseSecTag(model);
    if (typeof tag === "string") return null;
    const f = model.slice();
    const pn = (tag.pn + 1) >>> 0;
    f[tag.at + 4] = pn >>> 24;
    f[tag.at + 5] = (pn >>> 16) & 0xff;
    f[tag.at + 6] = (pn >>> 8) & 0xff;
    f[tag.at + 7] = pn & 0xff;
    const inner = this.dataPayload();
    const room = tag.dataLength;
    f.fill(0, tag.dataAt, tag.dataAt + room);
    f.set(inner.subarray(0, room), tag.dataAt);
    for (let i = 0; i < ICV_SIZE; i++) f[tag.dataAt + room + i] = this.random(255);
    return f;
  }

  /** A DATA frame in clear between the two addresses of `model` (same VLAN tag), with a memory write. */
  private clearData(model: Uint8Array): Uint8Array {
    const head = isTagged(model) ? 18 : 14;
    const payload = this.dataPayload();
    const f = new Uint8Array(Math.max(head + payload.length - 2 + FCS_SIZE, 64));
    f.set(model.subarray(0, head - 2), 0); // addresses and the 802.1Q tag
    f.set(payload, head - 2);
    return f;
  }

  /** EtherType 0x88B5, a tunnel DATA header with a guessed session and sequence number, and one memory write of 64 bytes. */
  private dataPayload(): Uint8Array {
    const tlp = memoryWrite(0x0100, 0, 0x1_0000_0000 + this.random(0xffff) * 64, new Uint8Array(64).fill(0xa5));
    const out = new Uint8Array(2 + TUNNEL_HEADER + RECORD_HEADER + tlp.length);
    const v = new DataView(out.buffer);
    v.setUint16(0, ETHERTYPE_IOV);
    v.setUint8(2, TUNNEL_VERSION);
    v.setUint8(3, FrameKind.Data);
    v.setUint16(4, RECORD_HEADER + tlp.length);
    v.setUint32(6, this.random(0x7fff_ffff));
    v.setUint32(10, this.random(0xffff));
    v.setUint16(18, tlp.length);
    out.set(tlp, 2 + TUNNEL_HEADER + RECORD_HEADER);
    return out;
  }
}
