// A growable first-in first-out ring of frames with two numeric columns per entry (times,
// port numbers). The link and the switch keep their per-frame state here instead of in one
// object or closure per frame: pushing and shifting allocate nothing once the ring has grown
// to the working size.

export class FrameRing {
  frames: (Uint8Array | undefined)[];
  x: Float64Array;
  y: Float64Array;
  mask: number;
  head = 0;
  size = 0;

  constructor(capacity = 64) {
    let cap = 1;
    while (cap < capacity) cap <<= 1;
    this.frames = new Array<Uint8Array | undefined>(cap).fill(undefined);
    this.x = new Float64Array(cap);
    this.y = new Float64Array(cap);
    this.mask = cap - 1;
  }

  push(frame: Uint8Array, x: number, y: number): void {
    if (this.size > this.mask) this.grow();
    const i = (this.head + this.size) & this.mask;
    this.frames[i] = frame;
    this.x[i] = x;
    this.y[i] = y;
    this.size++;
  }

  /** Removes and returns the oldest frame. The caller checks size first. */
  shift(): Uint8Array {
    const i = this.head;
    const frame = this.frames[i]!;
    this.frames[i] = undefined;
    this.head = (i + 1) & this.mask;
    this.size--;
    return frame;
  }

  /** Index into the columns of the k-th oldest entry (0 = head). */
  index(k: number): number {
    return (this.head + k) & this.mask;
  }

  clear(): void {
    for (let k = 0; k < this.size; k++) this.frames[(this.head + k) & this.mask] = undefined;
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const frames = new Array<Uint8Array | undefined>(cap).fill(undefined);
    const x = new Float64Array(cap);
    const y = new Float64Array(cap);
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) & this.mask;
      frames[k] = this.frames[i];
      x[k] = this.x[i];
      y[k] = this.y[i];
    }
    this.frames = frames;
    this.x = x;
    this.y = y;
    this.mask = cap - 1;
    this.head = 0;
  }
}
