import { test } from "node:test";
import assert from "node:assert/strict";
import { EventScheduler } from "../../tools/sim/scheduler.ts";

test("actions run in time order, equal times first-in first-out", async () => {
  const s = new EventScheduler();
  const seen: string[] = [];
  s.at(30, () => void seen.push("c@30"));
  s.at(10, () => void seen.push("a@10"));
  s.at(20, () => void seen.push("b1@20"));
  s.at(20, () => void seen.push("b2@20"));
  s.at(10, () => void seen.push("a2@10"));
  await s.run(100);
  assert.deepEqual(seen, ["a@10", "a2@10", "b1@20", "b2@20", "c@30"]);
  assert.equal(s.now, 100);
});

test("an action may schedule more work, including at the current instant, which runs after what was queued", async () => {
  const s = new EventScheduler();
  const seen: string[] = [];
  s.at(5, () => {
    seen.push("first");
    s.at(5, () => void seen.push("same instant, later"));
    s.after(1, () => void seen.push("a nanosecond later"));
  });
  s.at(5, () => void seen.push("second"));
  await s.run(10);
  assert.deepEqual(seen, ["first", "second", "same instant, later", "a nanosecond later"]);
});

test("cancelled actions never run; cancelling twice or after running is harmless", async () => {
  const s = new EventScheduler();
  const seen: number[] = [];
  const handles = [1, 2, 3, 4].map((t) => s.at(t, () => void seen.push(t)));
  s.cancel(handles[1]);
  s.cancel(handles[1]);
  await s.run(3);
  s.cancel(handles[0]);
  s.cancel(handles[3]);
  await s.run(10);
  assert.deepEqual(seen, [1, 3]);
  assert.equal(s.pending, 0);
});

test("run(until) leaves later actions pending and resumes them", async () => {
  const s = new EventScheduler();
  const seen: number[] = [];
  for (const t of [5, 15, 25]) s.at(t, () => void seen.push(t));
  await s.run(10);
  assert.deepEqual(seen, [5]);
  assert.equal(s.now, 10);
  await s.run(30);
  assert.deepEqual(seen, [5, 15, 25]);
});

test("async actions are awaited before the next action starts", async () => {
  const s = new EventScheduler();
  const seen: string[] = [];
  s.at(1, async () => {
    seen.push("start");
    await new Promise((resolve) => setTimeout(resolve, 5));
    seen.push("end");
  });
  s.at(1, () => void seen.push("next"));
  await s.run(2);
  assert.deepEqual(seen, ["start", "end", "next"]);
});

test("scheduling in the past is refused", async () => {
  const s = new EventScheduler();
  await s.run(100);
  assert.throws(() => s.at(99, () => {}), RangeError);
  assert.throws(() => s.at(Number.NaN, () => {}), RangeError);
});

test("a large random load comes out sorted and stable", async () => {
  const s = new EventScheduler();
  const times: number[] = [];
  let x = 12345;
  for (let i = 0; i < 20_000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const t = x % 1000;
    s.at(t, () => void times.push(t * 100_000 + i));
  }
  await s.run(1000);
  const sorted = [...times].sort((a, b) => a - b);
  assert.deepEqual(times, sorted);
  assert.equal(s.executed, 20_000);
});
