// Runs a server-side task (tools/server/task.ts) to completion in virtual time, for tests
// that drive the OS model and its drivers by hand.

import assert from "node:assert/strict";
import type { EventScheduler } from "../../../tools/sim/scheduler.ts";
import { spawn, type Task } from "../../../tools/server/task.ts";

/** Runs `task` until it finishes, at most until virtual time `limitNs`; returns its result or throws its error. */
export async function runTask<T>(scheduler: EventScheduler, task: Task<T>, limitNs = 2e9): Promise<T> {
  let outcome: T | Error | undefined;
  let finished = false;
  spawn(task, (result) => {
    outcome = result;
    finished = true;
  });
  while (!finished && scheduler.now < limitNs) await scheduler.run(scheduler.now + 100_000);
  assert.ok(finished, "the task finished");
  if (outcome instanceof Error) throw outcome;
  return outcome as T;
}
