// What can go wrong on one direction of a cable, decided frame by frame from seeded random
// streams: random (Bernoulli) loss, bursty Gilbert–Elliott loss, corruption (one bit flipped,
// so the FCS fails), duplication and reordering. Scheduled outages (link down/up) are a
// property of the whole cable and are carried out by the link (link.ts).
//
// Random streams: every link direction gets its own xoroshiro128+ generator whose 128-bit
// state is derived from the scenario seed and a hash of a stable stream identifier
// ("<link id>/a>b" or "<link id>/b>a"), so adding, removing or reordering other links never
// changes this one's draws. Each impairment then takes its own sub-stream, `jump()`ed 2^64
// steps from the previous one, so turning corruption on does not change which frames are lost.

import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { JumpableRandomGenerator } from "pure-rand/types/JumpableRandomGenerator";

/**
 * Gilbert–Elliott bursty loss: a two-state Markov chain advanced once per frame. A frame is
 * lost with `lossGood` in the good state and `lossBad` in the bad state; then the chain moves
 * good→bad with probability `p` and bad→good with probability `r`. The chain starts good.
 * Mean sojourn in the bad state is 1/r frames (the mean burst length when lossBad = 1 and
 * lossGood = 0), the stationary share of bad frames p/(p+r), and the long-run loss rate
 * (r·lossGood + p·lossBad)/(p+r).
 */
export interface GilbertElliott {
  /** Probability of moving good→bad after a frame. */
  p: number;
  /** Probability of moving bad→good after a frame. */
  r: number;
  /** Loss probability in the good state. Default 0 (Gilbert's original model). */
  lossGood?: number;
  /** Loss probability in the bad state. Default 1. */
  lossBad?: number;
}

export interface Reorder {
  /** Probability that a frame is held back. */
  probability: number;
  /** How long a held frame is delayed beyond its normal arrival, in ns (integer > 0). */
  delayNs: number;
}

/** Impairments of one direction of a link. Everything defaults to off. */
export interface ImpairmentConfig {
  /** Bernoulli loss: each frame is lost independently with this probability. */
  loss?: number;
  /** Bursty loss; composes with `loss` (a frame is lost if either model loses it). */
  gilbertElliott?: GilbertElliott;
  /** Probability that a delivered frame has one uniformly chosen bit flipped. */
  corruption?: number;
  /** Probability that a delivered frame is delivered twice (back to back, same instant). */
  duplication?: number;
  /** Holding frames back so that later frames overtake them. */
  reorder?: Reorder;
}

/** A scheduled outage of a whole cable: down at `downAtNs`, up again at `upAtNs` (never if absent). */
export interface Outage {
  downAtNs: number;
  upAtNs?: number;
}

/** True when the config would ever change a frame's fate. */
export function impairmentsActive(config: ImpairmentConfig | undefined): boolean {
  if (!config) return false;
  const ge = config.gilbertElliott;
  return (config.loss ?? 0) > 0 || (ge !== undefined && ((ge.p > 0 && (ge.lossBad ?? 1) > 0) || (ge.lossGood ?? 0) > 0)) ||
    (config.corruption ?? 0) > 0 || (config.duplication ?? 0) > 0 || (config.reorder?.probability ?? 0) > 0;
}

/** Throws a RangeError naming the first invalid parameter. */
export function validateImpairments(config: ImpairmentConfig, where: string): void {
  const probability = (name: string, value: number | undefined) => {
    if (value !== undefined && !(value >= 0 && value <= 1)) throw new RangeError(`${where}: ${name} must be a probability in [0, 1], got ${value}`);
  };
  probability("loss", config.loss);
  probability("corruption", config.corruption);
  probability("duplication", config.duplication);
  const ge = config.gilbertElliott;
  if (ge) {
    probability("gilbertElliott.p", ge.p);
    probability("gilbertElliott.r", ge.r);
    probability("gilbertElliott.lossGood", ge.lossGood);
    probability("gilbertElliott.lossBad", ge.lossBad);
    if (ge.p === undefined || ge.r === undefined) throw new RangeError(`${where}: gilbertElliott needs p and r`);
  }
  const reorder = config.reorder;
  if (reorder) {
    probability("reorder.probability", reorder.probability);
    if (!(Number.isSafeInteger(reorder.delayNs) && reorder.delayNs > 0)) {
      throw new RangeError(`${where}: reorder.delayNs must be a positive integer number of ns, got ${reorder.delayNs}`);
    }
  }
}

// cyrb53's two 32-bit lanes over the UTF-8 bytes of the identifier.
function hashId(id: string): [number, number] {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (const b of new TextEncoder().encode(id)) {
    h1 = Math.imul(h1 ^ b, 2654435761);
    h2 = Math.imul(h2 ^ b, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 | 0, h2 | 0];
}

// MurmurHash3's 32-bit finaliser: every input bit affects every output bit.
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x | 0;
}

/**
 * A xoroshiro128+ generator for stream `id` under scenario `seed` (any safe integer). The
 * 128-bit state mixes the seed's low and high 32 bits with a 64-bit hash of `id`; the first
 * 16 outputs are discarded so that similar states have drifted apart.
 */
export function deriveStream(seed: number, id: string): JumpableRandomGenerator {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const lo = seed | 0;
  const hi = Math.floor(seed / 2 ** 32) | 0;
  const [h1, h2] = hashId(id);
  const state = [
    mix32(lo ^ 0x243f6a88),
    mix32(hi ^ h1 ^ 0x7f4a7c15),
    mix32((h2 + Math.imul(lo, 0x9e3779b9)) | 0),
    mix32(h1 ^ ((h2 << 16) | (h2 >>> 16)) ^ 0x165667b1),
  ];
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;
  const rng = xoroshiro128plusFromState(state);
  for (let i = 0; i < 16; i++) rng.next();
  return rng;
}

/** Per-direction impairment state: the random streams and the Gilbert–Elliott chain. */
export class Impairments {
  private readonly loss: number;
  private readonly corruption: number;
  private readonly duplication: number;
  private readonly reorderProbability: number;
  readonly reorderDelayNs: number;
  private readonly ge: boolean;
  private readonly geP: number;
  private readonly geR: number;
  private readonly geLossGood: number;
  private readonly geLossBad: number;
  /** Current Gilbert–Elliott state. */
  bad = false;
  private readonly lossRng: JumpableRandomGenerator;
  private readonly burstRng: JumpableRandomGenerator;
  private readonly corruptRng: JumpableRandomGenerator;
  private readonly duplicateRng: JumpableRandomGenerator;
  private readonly reorderRng: JumpableRandomGenerator;

  constructor(config: ImpairmentConfig, seed: number, streamId: string) {
    validateImpairments(config, streamId);
    this.loss = config.loss ?? 0;
    this.corruption = config.corruption ?? 0;
    this.duplication = config.duplication ?? 0;
    this.reorderProbability = config.reorder?.probability ?? 0;
    this.reorderDelayNs = config.reorder?.delayNs ?? 0;
    const ge = config.gilbertElliott;
    this.ge = ge !== undefined;
    this.geP = ge?.p ?? 0;
    this.geR = ge?.r ?? 0;
    this.geLossGood = ge?.lossGood ?? 0;
    this.geLossBad = ge?.lossBad ?? 1;
    const base = deriveStream(seed, streamId);
    const next = () => {
      const stream = base.clone();
      base.jump();
      return stream;
    };
    this.lossRng = next();
    this.burstRng = next();
    this.corruptRng = next();
    this.duplicateRng = next();
    this.reorderRng = next();
  }

  /** Decides whether the next frame is lost (and advances the Gilbert–Elliott chain). */
  lose(): boolean {
    let lost = this.loss > 0 && uniformFloat64(this.lossRng) < this.loss;
    if (this.ge) {
      const rng = this.burstRng;
      const p = this.bad ? this.geLossBad : this.geLossGood;
      if (p >= 1 || (p > 0 && uniformFloat64(rng) < p)) lost = true;
      if (this.bad) {
        if (uniformFloat64(rng) < this.geR) this.bad = false;
      } else if (uniformFloat64(rng) < this.geP) {
        this.bad = true;
      }
    }
    return lost;
  }

  /** A copy of `frame` with one bit flipped, or null when this frame is not corrupted. */
  corrupt(frame: Uint8Array): Uint8Array | null {
    if (this.corruption <= 0 || frame.length === 0 || !(uniformFloat64(this.corruptRng) < this.corruption)) return null;
    const bit = uniformInt(this.corruptRng, 0, frame.length * 8 - 1);
    const copy = frame.slice();
    copy[bit >>> 3] ^= 1 << (bit & 7);
    return copy;
  }

  duplicate(): boolean {
    return this.duplication > 0 && uniformFloat64(this.duplicateRng) < this.duplication;
  }

  /** The extra delay for the next frame: reorderDelayNs when it is held back, else 0. */
  holdBack(): number {
    return this.reorderProbability > 0 && uniformFloat64(this.reorderRng) < this.reorderProbability ? this.reorderDelayNs : 0;
  }
}
