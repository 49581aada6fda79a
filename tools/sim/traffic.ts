// Test and benchmark traffic for the tunnel: TLP streams whose every TLP carries its
// position in the stream, and a checker on the far side that proves delivery exactly once,
// in order within each class, and under the PCIe ordering rules across classes.

import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { copyBytes } from "../../board/bytes.ts";
import { TlpClass, completionWithData, memoryRead, memoryWrite, tlpClass, headerBytes, hasData } from "../../board/pcie/tlp.ts";

/**
 * Each request has a 4 KiB page of its own above 4 GiB: a 64-bit address, so a 4DW header as DMA
 * uses, and never a request across a 4 KiB boundary (PCIe forbids it), whatever the payload.
 */
const ADDRESS_BASE = 2 ** 32;
const PAGE = 4096;

export interface TrafficMix {
  posted: number;
  nonPosted: number;
  completion: number;
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

/** The position of a TLP in its stream: the first data DW, or the address of a read. */
export function streamIndex(tlp: Uint8Array): number {
  if (hasData(tlp)) return readU32(tlp, headerBytes(tlp));
  return (readU32(tlp, 8) * 2 ** 32 + readU32(tlp, 12) - ADDRESS_BASE) / PAGE;
}

function writeAddress(tlp: Uint8Array, at: number, index: number): void {
  const address = ADDRESS_BASE + index * PAGE;
  writeU32(tlp, at, Math.floor(address / 2 ** 32));
  writeU32(tlp, at + 4, address % 2 ** 32);
}

/** Byte offsets patched in each class's template: the index, the 64-bit address, the tag. */
const PATCH = [
  { index: 16, address: 8, tag: 6 }, //  4DW memory write
  { index: -1, address: 8, tag: 6 }, //  4DW memory read
  { index: 12, address: -1, tag: 10 }, // completion with data
];

export class TlpStream {
  /** Class of every TLP generated, by stream index. */
  readonly classes: TlpClass[] = [];
  /** Posted TLPs generated before each TLP, by stream index (for the ordering check). */
  readonly postedBefore: number[] = [];
  /** Each TLP's position among the TLPs of its class, by stream index. */
  readonly positionInClass: number[] = [];
  private readonly perClass = [0, 0, 0];
  private posted = 0;
  private readonly weights: number[];
  private readonly templates: Uint8Array[];

  constructor(private readonly rng: RandomGenerator, mix: TrafficMix, payload: number) {
    this.weights = [mix.posted, mix.posted + mix.nonPosted, mix.posted + mix.nonPosted + mix.completion];
    const data = new Uint8Array(payload).fill(0xa5);
    this.templates = [
      memoryWrite(0x0100, 0, ADDRESS_BASE, data),
      memoryRead(0x0100, 0, ADDRESS_BASE, payload),
      completionWithData(0x0200, 0x0100, 0, data),
    ];
  }

  get count(): number {
    return this.classes.length;
  }

  /** The next TLP: a copy of its class's template with the stream index written in. */
  next(): Uint8Array {
    const index = this.classes.length;
    const pick = this.weights[2] === this.weights[0] ? 0 : uniformInt(this.rng, 0, this.weights[2] - 1);
    const cls = pick < this.weights[0] ? TlpClass.Posted : pick < this.weights[1] ? TlpClass.NonPosted : TlpClass.Completion;
    this.classes.push(cls);
    this.postedBefore.push(this.posted);
    this.positionInClass.push(this.perClass[cls]++);
    if (cls === TlpClass.Posted) this.posted++;
    const tlp = copyBytes(this.templates[cls]);
    const patch = PATCH[cls];
    if (patch.index >= 0) writeU32(tlp, patch.index, index);
    if (patch.address >= 0) writeAddress(tlp, patch.address, index);
    tlp[patch.tag] = index & 0xff;
    return tlp;
  }
}

/**
 * The far end of a TlpStream: counts each fault once and by kind. A TLP delivered again is one
 * duplicate. A TLP that comes after one it must precede (a later one of its class, or for a
 * posted write any later TLP: PCIe lets nothing pass a posted write) is one reordering, so a
 * swap of two is one. A TLP never delivered is lost, unless it is still on its way (inFlight)
 * or was discarded when its session ended (abort(): aborted by removal, legitimate, never lost).
 */
export class DeliveryChecker {
  /** Stream indices in the order they were delivered, repeats included. */
  readonly received: number[] = [];
  /** TLPs delivered a second (third, ...) time. */
  duplicates = 0;
  /** TLPs delivered after a TLP they must precede. */
  misordered = 0;
  /** Distinct TLPs delivered. */
  unique = 0;
  /** A bit per stream index delivered at least once. */
  private delivered = new Uint8Array(0);
  private readonly aborted = new Set<number>();
  /** The highest stream index delivered, per class and of any class. */
  private readonly latestPerClass = [-1, -1, -1];
  private latest = -1;
  readonly errors: string[] = [];

  constructor(private readonly stream: TlpStream) {}

  /** Records a delivered TLP; a fault is counted and described in `errors` (the first few), never thrown. */
  deliver(tlp: Uint8Array): void {
    const index = streamIndex(tlp);
    const cls = tlpClass(tlp);
    this.received.push(index);
    const expected = this.stream.classes[index];
    if (expected === undefined || cls !== expected) {
      this.fail(`TLP ${index}: class ${cls}, sent as ${expected}`);
      return;
    }
    if (this.seen(index)) {
      this.duplicates++;
      this.fail(`TLP ${index} delivered twice`);
      return;
    }
    this.mark(index);
    this.unique++;
    const late = this.latestPerClass[cls] > index || (cls === TlpClass.Posted && this.latest > index);
    if (late) {
      this.misordered++;
      this.fail(`TLP ${index} (${TlpClass[cls]}) came after TLP ${cls === TlpClass.Posted ? this.latest : this.latestPerClass[cls]}, sent after it`);
    }
    this.latestPerClass[cls] = Math.max(this.latestPerClass[cls], index);
    this.latest = Math.max(this.latest, index);
  }

  /** A TLP of the stream discarded when its session ended (a removal): it will not come, and is not lost. */
  abort(tlp: Uint8Array): void {
    this.aborted.add(streamIndex(tlp));
  }

  /** TLPs discarded at a removal and never delivered. */
  abortedByRemoval(): number {
    let n = 0;
    for (const index of this.aborted) if (!this.seen(index)) n++;
    return n;
  }

  /** TLPs sent and never delivered, neither among `inFlight` (TLPs the tunnels still hold) nor aborted by removal. */
  lost(inFlight: Uint8Array[] = []): number {
    const waiting = new Set(inFlight.map(streamIndex));
    let n = 0;
    for (let index = 0; index < this.stream.count; index++) {
      if (!this.seen(index) && !waiting.has(index) && !this.aborted.has(index)) n++;
    }
    return n;
  }

  private seen(index: number): boolean {
    return index < this.delivered.length * 8 && (this.delivered[index >> 3] & (1 << (index & 7))) !== 0;
  }

  private mark(index: number): void {
    const bytes = (index >> 3) + 1;
    if (bytes > this.delivered.length) {
      const grown = new Uint8Array(Math.max(bytes, 2 * this.delivered.length));
      grown.set(this.delivered);
      this.delivered = grown;
    }
    this.delivered[index >> 3] |= 1 << (index & 7);
  }

  private fail(message: string): void {
    if (this.errors.length < 10) this.errors.push(message);
  }

  /** Every generated TLP delivered exactly once, with no order violation. */
  complete(): boolean {
    return this.errors.length === 0 && this.unique === this.stream.count;
  }
}
