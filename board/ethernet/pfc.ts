// IEEE 802.1Qbb priority-based flow control: the PFC frame, a MAC Control frame (IEEE 802.3
// clause 31, annex 31D) to the reserved group address 01-80-C2-00-00-01, untagged, EtherType
// 0x8808, opcode 0x0101, then a priority-enable vector (bit n for priority n, in the low byte)
// and eight 16-bit pause times, one per priority, in quanta of 512 bit times at the link's rate;
// 0 lets a paused priority go again. A MAC consumes the frame: a bridge never forwards it.

import { FCS_SIZE, MAC_SIZE, MIN_FRAME, encodeFrame, etherTypeOf, isTagged } from "./frame.ts";

export const ETHERTYPE_MAC_CONTROL = 0x8808;
export const PFC_OPCODE = 0x0101;
/** The MAC Control reserved group address PAUSE and PFC frames are sent to. */
export const MAC_CONTROL_ADDRESS = Uint8Array.of(0x01, 0x80, 0xc2, 0x00, 0x00, 0x01);
export const PRIORITIES = 8;
/** Bit times in one pause quantum. */
export const QUANTUM_BITS = 512;
/** The longest pause one frame asks for. */
export const MAX_QUANTA = 0xffff;

/** What a PFC frame asks: for each priority whose bit is set in `enable`, a pause of `quanta[p]` (0: go again). */
export interface PfcRequest {
  enable: number;
  quanta: number[];
}

/** A PFC frame from `src` (FCS included, 64 bytes). */
export function encodePfc(src: Uint8Array, request: PfcRequest): Uint8Array {
  const payload = new Uint8Array(2 + 2 + 2 * PRIORITIES);
  payload[0] = PFC_OPCODE >> 8;
  payload[1] = PFC_OPCODE & 0xff;
  payload[3] = request.enable & 0xff;
  for (let p = 0; p < PRIORITIES; p++) {
    const q = request.enable & (1 << p) ? request.quanta[p] ?? 0 : 0;
    payload[4 + 2 * p] = q >> 8;
    payload[5 + 2 * p] = q & 0xff;
  }
  return encodeFrame({ dst: MAC_CONTROL_ADDRESS, src, vlan: null, etherType: ETHERTYPE_MAC_CONTROL, payload });
}

/** Whether a frame is a MAC Control frame (any opcode): a MAC consumes it, a bridge does not forward it. */
export function isMacControl(frame: Uint8Array): boolean {
  return frame.length >= MIN_FRAME && !isTagged(frame) && etherTypeOf(frame) === ETHERTYPE_MAC_CONTROL;
}

/**
 * The request of a MAC Control frame whose FCS has been checked, or null for another opcode
 * (802.3x PAUSE among them) or a frame not sent to the reserved address, which a PFC receiver ignores.
 */
export function decodePfc(frame: Uint8Array): PfcRequest | null {
  const at = 2 * MAC_SIZE + 2;
  if (frame.length < at + 20 + FCS_SIZE) return null;
  for (let i = 0; i < MAC_SIZE; i++) if (frame[i] !== MAC_CONTROL_ADDRESS[i]) return null;
  if (((frame[at] << 8) | frame[at + 1]) !== PFC_OPCODE) return null;
  const enable = frame[at + 3];
  const quanta: number[] = [];
  for (let p = 0; p < PRIORITIES; p++) quanta.push(enable & (1 << p) ? (frame[at + 4 + 2 * p] << 8) | frame[at + 5 + 2 * p] : 0);
  return { enable, quanta };
}

/** The time `quanta` pause quanta last at `rateBps`, in whole ns (rounded up). */
export function pauseNs(quanta: number, rateBps: number): number {
  return Math.ceil((quanta * QUANTUM_BITS * 1e9) / rateBps);
}

/** The 802.1p priority of a frame: its tag's PCP, 0 untagged. */
export function priorityOf(frame: Uint8Array): number {
  return isTagged(frame) ? frame[14] >> 5 : 0;
}

/**
 * Transmit pause state of one MAC, per priority: when each paused priority may send again.
 * The MAC asks `paused(p, now)` before it starts a frame of priority p; a frame already on the
 * wire finishes (a PFC frame never pre-empts one).
 */
export class PauseState {
  private readonly until = new Float64Array(PRIORITIES);
  /** Bit p set while priority p is paused (as of the last apply or check). */
  mask = 0;

  /** Applies a received request at `now` on a link of `rateBps`; returns the earliest time a pause it set ends, or 0 if it set none. */
  apply(request: PfcRequest, now: number, rateBps: number): number {
    let earliest = 0;
    for (let p = 0; p < PRIORITIES; p++) {
      if (!(request.enable & (1 << p))) continue;
      const q = request.quanta[p];
      if (q === 0) {
        this.until[p] = 0;
        this.mask &= ~(1 << p);
        continue;
      }
      const end = now + pauseNs(q, rateBps);
      this.until[p] = end;
      this.mask |= 1 << p;
      if (earliest === 0 || end < earliest) earliest = end;
    }
    return earliest;
  }

  paused(priority: number, now: number): boolean {
    if (!(this.mask & (1 << priority))) return false;
    if (this.until[priority] > now) return true;
    this.mask &= ~(1 << priority);
    return false;
  }

  any(now: number): boolean {
    for (let p = 0; p < PRIORITIES; p++) if (this.paused(p, now)) return true;
    return false;
  }

  /** Every pause ends (link down). */
  clear(): void {
    this.until.fill(0);
    this.mask = 0;
  }
}
