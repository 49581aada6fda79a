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

test("real time, behind the wall clock: the loop still lets timers and sockets in, and outside input enters at its next action", async () => {
  const s = new EventScheduler();
  const busy = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  // 200 actions 1 µs of virtual time apart, each taking 1 ms of wall time: 1000 times slower than real time.
  for (let i = 0; i < 200; i++) s.at(i * 1000, () => busy(1));
  s.realTime(true);
  let timerAt = -1;
  let inputAt = -1;
  setTimeout(() => {
    timerAt = s.now;
    // By the wall clock this is ~20 ms of virtual time, far past anything run yet: it enters at the next action instead.
    s.at(s.realTimeNow(), () => {
      inputAt = s.now;
    });
  }, 20);
  await s.run(Infinity);
  assert.ok(timerAt >= 0 && timerAt < 199_000, `the timer ran while the loop was busy (virtual ${timerAt} ns)`);
  assert.ok(inputAt >= timerAt && inputAt <= timerAt + 1000, `the input ran at the next action, not after the lag (virtual ${inputAt} ns, timer at ${timerAt} ns)`);
});
