// Discrete-event core: virtual time in nanoseconds and a binary min-heap of pending
// actions ordered by (time, handle). Handles grow with every at(), so equal-time actions
// run first-in first-out and every run is a pure function of its inputs. Actions may be
// async (a firmware batch in a child process); the loop awaits them, so nothing else
// runs meanwhile. Cancelled actions stay in the heap and are skipped when they surface.
//
// Real-time mode (interactive sessions: a user on a card's console) paces the loop so
// that virtual time keeps up with the wall clock and no further; input from outside
// enters at realTimeNow(), at once even when the simulation runs behind the wall clock.
// Such a run is no longer a function of its inputs alone.

import { setTimeout as sleep } from "node:timers/promises";
import type { Action, Scheduler } from "../../board/scheduler.ts";

/** Longest real-time sleep between looks at the queue. */
const PACE_SLICE_MS = 5;

export class EventScheduler implements Scheduler {
  now = 0;
  executed = 0;
  private times: number[] = [];
  private handles: number[] = [];
  private readonly actions = new Map<number, Action>();
  private nextHandle = 1;
  private stopped = false;
  /** Real-time mode: the wall clock (ms) and virtual time (ns) at which pacing began. */
  private origin: { wall: number; virtual: number } | null = null;
  /** Real-time mode: the wall clock (ms) when the loop last let other work run. */
  private yielded = 0;

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

  /** Paces run() against the wall clock from now on (or stops pacing). */
  realTime(on: boolean): void {
    this.origin = on ? { wall: performance.now(), virtual: this.now } : null;
  }

  /**
   * Where input from outside enters in real-time mode (else `now`): the virtual time of the
   * wall clock, or, when the simulation has fallen behind the wall clock, the time of its next
   * pending action, so that the input is taken at once instead of after the lag (a busy
   * scenario runs slower than real time; its virtual time then runs behind the wall clock).
   */
  realTimeNow(): number {
    if (!this.origin) return this.now;
    const wall = Math.floor(this.origin.virtual + (performance.now() - this.origin.wall) * 1e6);
    return Math.max(this.now, Math.min(wall, this.times.length > 0 ? this.times[0] : wall));
  }

  /** Ends run() after the current action. */
  stop(): void {
    this.stopped = true;
  }

  /** Runs actions in time order up to and including `until`; then time is `until`. */
  async run(until: number): Promise<void> {
    this.stopped = false;
    while (!this.stopped && this.times.length > 0 && this.times[0] <= until) {
      if (this.origin) {
        // Sleep in short slices, so that input arriving meanwhile is scheduled and run in time;
        // behind the wall clock, still let input in (sockets, timers) every slice.
        const wall = performance.now();
        const ahead = (this.times[0] - this.origin.virtual) / 1e6 - (wall - this.origin.wall);
        if (ahead > 0 || wall - this.yielded >= PACE_SLICE_MS) {
          await (ahead > 0 ? sleep(Math.min(ahead, PACE_SLICE_MS)) : new Promise<void>((resolve) => setImmediate(resolve)));
          this.yielded = performance.now();
          continue;
        }
      }
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
