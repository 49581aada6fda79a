// Discrete-event core: virtual time in nanoseconds and a binary min-heap of pending
// actions ordered by (time, handle). Handles grow with every at(), so equal-time actions
// run first-in first-out and every run is a pure function of its inputs. Actions may be
// async (a firmware batch in a child process); the loop awaits them, so nothing else
// runs meanwhile. Cancelled actions stay in the heap and are skipped when they surface.

import type { Action, Scheduler } from "../../board/scheduler.ts";

export class EventScheduler implements Scheduler {
  now = 0;
  executed = 0;
  private times: number[] = [];
  private handles: number[] = [];
  private readonly actions = new Map<number, Action>();
  private nextHandle = 1;
  private stopped = false;

  get pending(): number {
    return this.actions.size;
  }

  at(time: number, action: Action): number {
    if (!(time >= this.now)) throw new RangeError(`cannot schedule at ${time} ns: now is ${this.now} ns`);
    const handle = this.nextHandle++;
    this.actions.set(handle, action);
    let i = this.times.length;
    this.times.push(time);
    this.handles.push(handle);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
    return handle;
  }

  after(delay: number, action: Action): number {
    return this.at(this.now + delay, action);
  }

  cancel(handle: number): void {
    this.actions.delete(handle);
  }

  /** Ends run() after the current action. */
  stop(): void {
    this.stopped = true;
  }

  /** Runs actions in time order up to and including `until`; then time is `until`. */
  async run(until: number): Promise<void> {
    this.stopped = false;
    while (!this.stopped && this.times.length > 0 && this.times[0] <= until) {
      const time = this.times[0];
      const handle = this.handles[0];
      this.popTop();
      const action = this.actions.get(handle);
      if (!action) continue;
      this.actions.delete(handle);
      this.now = time;
      this.executed++;
      const result = action();
      if (result) await result;
    }
    if (!this.stopped && until > this.now && Number.isFinite(until)) this.now = until;
  }

  private before(a: number, b: number): boolean {
    const ta = this.times[a];
    const tb = this.times[b];
    return ta < tb || (ta === tb && this.handles[a] < this.handles[b]);
  }

  private swap(a: number, b: number): void {
    const t = this.times[a];
    this.times[a] = this.times[b];
    this.times[b] = t;
    const h = this.handles[a];
    this.handles[a] = this.handles[b];
    this.handles[b] = h;
  }

  private popTop(): void {
    const last = this.times.length - 1;
    this.swap(0, last);
    this.times.pop();
    this.handles.pop();
    const n = this.times.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.before(l, m)) m = l;
      if (r < n && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}
