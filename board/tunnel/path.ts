// One path of a tunnel: the peer's address through one of the card's Ethernet ports, and what the
// engine keeps per path (docs/registers.md, "Path block"): whether it carries the session, when
// the peer was last heard on it and when this side last announced its credits on it, whether it
// went silent, its round trip and its counters. The engine (engine.ts) decides what goes on which
// path; this is the path's state and registers.

import { PathControl } from "../map/registers.ts";

/**
 * The least round trip is taken over the last one to two of these windows, so that it follows a
 * path that got longer (a switch rerouted it) and a standing queue is not taken for the path.
 */
export const MIN_RTT_WINDOW_NS = 50_000_000;

export class Path {
  /** PathReg.PeerMacHigh / PeerMacLow (a path other than the tunnel's first). */
  peerHigh = 0;
  peerLow = 0;
  /** PathReg.Control. */
  control = 0;
  /** Nothing heard on the path for SilenceNs, or its port lost carrier: it carries keepalives only. */
  silent = false;
  /** The peer was heard on the path since it started: a path joined to a session carries keepalives only until then, and is not watched for silence. */
  heard = false;
  lastHeardAt = 0;
  /** When this side last sent an ACK or KEEPALIVE on the path: its peer hears it at least every KeepaliveNs. */
  lastAnnouncedAt = 0;
  keepaliveDue = false;
  keepaliveTimer: number | null = null;
  silenceTimer: number | null = null;
  /** Smoothed round trip of frames sent once on the path, 7/8 old + 1/8 new; 0 before the first sample. */
  srtt = 0;
  /** The least round trip of the current and the previous MIN_RTT_WINDOW_NS: what the path takes with no queue on it; 0 before the first sample. */
  minRtt = 0;
  private minCurrent = 0;
  private minPrevious = 0;
  private minSince = 0;
  txFrames = 0;
  rxFrames = 0;
  resent = 0;
  /** The AN and PN of the newest MACsec frame validated on this path. */
  private lastAn = -1;
  private lastPn = -1n;

  constructor(readonly port: number) {}

  get enableBit(): boolean {
    return (this.control & PathControl.Enable) !== 0;
  }

  /**
   * A MACsec frame under `an` with `pn` was validated on this path: whether it is news of the peer
   * on this path (a PN above the path's last under that AN, or another AN). Its PN may be below
   * what the SecY has seen: a frame that came the long way, after later ones on a quicker path.
   * A replay on this path is no news; one of another path's frame may be (denial of service only:
   * it can hold a dead path up, which its frames' loss and retransmission then show).
   */
  newOnPath(an: number, pn: bigint): boolean {
    if (an === this.lastAn && pn <= this.lastPn) return false;
    this.lastAn = an;
    this.lastPn = pn;
    return true;
  }

  /** A round trip of a frame sent once on the path, `now`: into the smoothed and the least round trip. */
  rttSample(ns: number, now: number): void {
    this.srtt = this.srtt === 0 ? ns : Math.round(this.srtt + (ns - this.srtt) / 8);
    if (this.minRtt === 0 || now - this.minSince >= MIN_RTT_WINDOW_NS) {
      this.minPrevious = this.minCurrent;
      this.minCurrent = ns;
      this.minSince = now;
    } else this.minCurrent = Math.min(this.minCurrent, ns);
    this.minRtt = this.minPrevious === 0 ? this.minCurrent : Math.min(this.minPrevious, this.minCurrent);
  }

  /** What a new session starts from: no silence, no round trip yet, nothing due. */
  newSession(): void {
    this.silent = false;
    this.heard = false;
    this.lastAn = -1;
    this.lastPn = -1n;
    this.srtt = this.minRtt = this.minCurrent = this.minPrevious = 0;
    this.keepaliveDue = false;
  }

  /** A shut tunnel forgets the path's peer. */
  forget(): void {
    this.peerHigh = this.peerLow = this.control = 0;
    this.newSession();
  }
}
