// The tunnel's congestion window (docs/congestion.md): how many bytes of DATA frames a tunnel may
// have in flight, from two signals, both per acknowledgement:
//   - ECN: the switches mark frames congestion experienced (the 802.1Q tag's DEI) once their egress
//     queue passes a threshold; the receiver counts the marked DATA frames and echoes the count in
//     every ACK and KEEPALIVE. As DCTCP (RFC 8257): alpha, the moving average of the fraction of
//     frames marked per window of data (gain 1/16), and at most once per round trip, when marks
//     arrive, the window shrinks by alpha / 2.
//   - Delay: the round trip of the newest frame an ACK acknowledges, less the least round trip seen
//     on its path, is the queueing it met. Above TargetNs the window shrinks, as in Swift, by
//     0.8 x (queueing - target) / round trip, at most by half and at most once per round trip.
// Without either signal the window grows: doubling per round trip (slow start) until the first
// signal or loss, then by its floor per round trip (congestion avoidance): a frame with one largest
// TLP, about 300 bytes, so that the many tunnels of a switch port together add little per round trip
// and the queue stays near the marking threshold. It grows only while it limits the sender. A fast retransmit halves it; a retransmission timeout sets it to
// its floor and slow start begins again. The floor is one frame with one largest TLP.
//
// The arithmetic is integers as the RTL has it: alpha in 1/1024, the window in bytes.

import { seqDiff } from "./wire.ts";

export enum WindowState {
  /** Since the session started or a retransmission timeout: the window doubles per round trip. */
  SlowStart = 0,
  /** After the first congestion signal or loss: one frame more per round trip, less on signals. */
  Avoidance = 1,
}

/** alpha = 1 in the fixed point alpha is kept in. */
export const ALPHA_ONE = 1024;
/** The gain of alpha's moving average: 1/2^ALPHA_GAIN_SHIFT (DCTCP's g = 1/16). */
const ALPHA_GAIN_SHIFT = 4;
/** Swift's beta, the delay decrease per unit of excess queueing: 0.8, in 1/1024. */
const DELAY_BETA = 819;
/** The most one decrease takes: half the window. */
const MAX_DECREASE = ALPHA_ONE / 2;

/** What one acknowledgement tells the window. */
export interface AckSignals {
  /** Frames the acknowledgement took off the replay buffer, and their bytes. */
  frames: number;
  bytes: number;
  /** DATA frames the peer received marked since the last acknowledgement (from its echo). */
  marked: number;
  /** Queueing delay met by the newest frame acknowledged (its round trip less its path's least), ns; -1 for none (sent more than once). */
  queueingNs: number;
  /** Its round trip, ns. */
  rttNs: number;
  /** The sender's next and oldest unacknowledged sequence numbers after the acknowledgement. */
  nextSeq: number;
  sndUna: number;
  /** The window held the sender back since the last acknowledgement. */
  limited: boolean;
}

export interface WindowLimits {
  /** The floor, and the growth per round trip in congestion avoidance: one frame with one largest TLP. */
  minBytes: number;
  /** The ceiling: the replay buffer and WindowBytes. */
  maxBytes: number;
  /** TargetNs: queueing above which the window shrinks; 0 for no delay signal. */
  targetNs: number;
}

/** What an acknowledgement did to the window. */
export enum WindowChange {
  Kept = 0,
  Grew = 1,
  EcnDecrease = 2,
  DelayDecrease = 3,
}

export class CongestionWindow {
  state = WindowState.SlowStart;
  bytes = 0;
  alpha = ALPHA_ONE;
  /** alpha's observation window ends when this sequence number is acknowledged. */
  private observeEnd = 0;
  private observedFrames = 0;
  private observedMarked = 0;
  /** No decrease until this sequence number is acknowledged: one per round trip. */
  private holdEnd = 0;

  /** A new session: slow start from the initial window of `initialBytes`. */
  reset(initialBytes: number, nextSeq: number): void {
    this.state = WindowState.SlowStart;
    this.bytes = initialBytes;
    this.alpha = ALPHA_ONE;
    this.observeEnd = this.holdEnd = nextSeq;
    this.observedFrames = this.observedMarked = 0;
  }

  /** An acknowledgement that moved the window on. */
  acked(s: AckSignals, limits: WindowLimits): WindowChange {
    this.observe(s);
    const holding = seqDiff(s.sndUna, this.holdEnd) < 0;
    let change = WindowChange.Kept;
    if (s.marked > 0 && !holding) {
      this.decrease((this.alpha + 1) >> 1, s.nextSeq, limits);
      change = WindowChange.EcnDecrease;
    } else if (limits.targetNs > 0 && s.queueingNs > limits.targetNs && !holding) {
      const excess = Math.floor((DELAY_BETA * (s.queueingNs - limits.targetNs)) / Math.max(s.rttNs, 1));
      this.decrease(Math.min(excess, MAX_DECREASE), s.nextSeq, limits);
      change = WindowChange.DelayDecrease;
    } else if (s.marked === 0 && s.limited && this.bytes < limits.maxBytes) {
      const grow = this.state === WindowState.SlowStart ? s.bytes : Math.floor((limits.minBytes * s.bytes) / Math.max(this.bytes, 1));
      this.bytes = Math.min(this.bytes + Math.max(grow, 1), limits.maxBytes);
      change = WindowChange.Grew;
    }
    this.bytes = Math.max(this.bytes, limits.minBytes);
    return change;
  }

  /** A hole found by selective acknowledgement: half the window, once per round trip. */
  lost(nextSeq: number, sndUna: number, limits: WindowLimits): void {
    if (seqDiff(sndUna, this.holdEnd) < 0) return;
    this.decrease(MAX_DECREASE, nextSeq, limits);
  }

  /** A retransmission timeout: the floor, and slow start again. */
  timedOut(nextSeq: number, limits: WindowLimits): void {
    this.bytes = limits.minBytes;
    this.state = WindowState.SlowStart;
    this.holdEnd = nextSeq;
  }

  /** Shrinks by `fraction` / 1024, and holds for a round trip: until what is in flight now is acknowledged. */
  private decrease(fraction: number, nextSeq: number, limits: WindowLimits): void {
    this.bytes = Math.max(this.bytes - Math.floor((this.bytes * fraction) / ALPHA_ONE), limits.minBytes);
    this.state = WindowState.Avoidance;
    this.holdEnd = nextSeq;
  }

  /** DCTCP's alpha: once a window of data has been acknowledged, alpha += (F - alpha) / 16, F the fraction marked in it. */
  private observe(s: AckSignals): void {
    this.observedFrames += s.frames;
    this.observedMarked += Math.min(s.marked, s.frames);
    if (seqDiff(s.sndUna, this.observeEnd) < 0 || this.observedFrames === 0) return;
    const fraction = Math.floor((this.observedMarked * ALPHA_ONE) / this.observedFrames);
    this.alpha += (fraction - this.alpha) >> ALPHA_GAIN_SHIFT;
    this.observeEnd = s.nextSeq;
    this.observedFrames = this.observedMarked = 0;
  }
}
