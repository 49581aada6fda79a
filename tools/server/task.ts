// Software that runs on the simulated server (the OS model, drivers) is written as
// generator functions: each `yield` hands the executor an operation — a configuration read,
// an MMIO access, a wait for an interrupt — and the generator resumes with its result when
// the operation completes, inside the simulation's virtual time. It reads like async code,
// but nothing waits on a JavaScript promise, so runs stay deterministic.

/** Nanoseconds in a millisecond of virtual time. */
export const MS = 1_000_000;

/** An operation that finishes by calling `resume` once, from a scheduler action (or at once). */
export interface Op<T> {
  start(resume: (result: T | Error) => void): void;
}

export type Task<T> = Generator<Op<unknown>, T, unknown>;

/** Starts `task`; `done` runs once with its return value, or with the Error it threw. */
export function spawn<T>(task: Task<T>, done: (result: T | Error) => void = () => {}): void {
  // Operations that complete at once (a posted write) resume in this loop rather than by
  // recursion, so a task may do millions of them; one that completes later starts a new loop
  // from its callback.
  const run = (input: unknown, failed: boolean): void => {
    for (;;) {
      let next: IteratorResult<Op<unknown>, T>;
      try {
        next = failed ? task.throw(input) : task.next(input);
      } catch (error) {
        done(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (next.done) {
        done(next.value);
        return;
      }
      let synchronous = true;
      let settled = false;
      let result: unknown;
      next.value.start((value) => {
        if (settled) return;
        settled = true;
        if (synchronous) result = value;
        else run(value, value instanceof Error);
      });
      synchronous = false;
      if (!settled) return;
      input = result;
      failed = result instanceof Error;
    }
  };
  run(undefined, false);
}

/** Runs an operation inside a task: `const value = yield* wait(op)`. */
export function* wait<T>(op: Op<T>): Generator<Op<unknown>, T, unknown> {
  return (yield op) as T;
}

/** An operation that completes after `ns` of virtual time. */
export function sleep(scheduler: { now: number; at(time: number, action: () => void): number }, ns: number): Op<void> {
  return { start: (resume) => void scheduler.at(scheduler.now + ns, () => resume(undefined)) };
}

/**
 * A sleeping lock for tasks (a kernel mutex): `yield* wait(lock.acquire())`, then
 * `lock.release()`. Waiters get it in the order they asked.
 */
export class Lock {
  private held = false;
  private readonly queue: (() => void)[] = [];

  acquire(): Op<void> {
    return {
      start: (resume) => {
        if (!this.held) {
          this.held = true;
          resume(undefined);
        } else this.queue.push(() => resume(undefined));
      },
    };
  }

  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.held = false;
  }
}
