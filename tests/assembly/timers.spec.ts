import * as timers from "../../assembly/timers";
import * as clock from "../../assembly/clock";
import * as tx from "../../assembly/abi/tx";
import * as counters from "../../assembly/counters";
import { TimerId } from "../../assembly/timers";
import { Command, TimerArmBody, TimerDisarmBody } from "../../board/map/mailbox";
import { sent } from "./helpers";

// TimerId has a single logical timer today, so only Heartbeat is started; the
// multiplexing rules are checked as far as one timer exercises them.
const T = TimerId.Heartbeat;
const BASE: u64 = 5_000_000_000; // above 2^32 ns

/** Runs program() with tx emptied first, so that tx holds only what program() emitted. */
function program(): void {
  tx.discard();
  timers.program();
}

function expectArmed(deadline: u64): void {
  const commands = sent();
  expect(commands.length).toBe(1, "one command");
  expect(commands[0].type).toBe(Command.TimerArm);
  expect(commands[0].u8(TimerArmBody.Channel)).toBe(0, "channel");
  expect(commands[0].u64(TimerArmBody.Deadline)).toBe(deadline, "deadline");
}

function expectDisarmed(): void {
  const commands = sent();
  expect(commands.length).toBe(1, "one command");
  expect(commands[0].type).toBe(Command.TimerDisarm);
  expect(commands[0].u8(TimerDisarmBody.Channel)).toBe(0, "channel");
}

function expectNothingSent(): void {
  expect(tx.bufferedLength()).toBe(0);
}

describe("timer service", () => {
  beforeEach(() => {
    clock.reset();
    timers.reset();
    tx.discard();
    counters.clearAll();
  });

  it("runs no timer after reset", () => {
    timers.startAt(T, BASE);
    timers.reset();
    expect(timers.isRunning(T)).toBe(false);
  });

  it("start() runs a timer due `delay` after now", () => {
    clock.advanceTo(BASE);
    timers.start(T, 250);
    expect(timers.isRunning(T)).toBe(true);
    expect(timers.deadline(T)).toBe(BASE + 250);
  });

  it("startAt() on a running timer replaces its deadline", () => {
    timers.startAt(T, BASE);
    timers.startAt(T, BASE + 7);
    expect(timers.isRunning(T)).toBe(true);
    expect(timers.deadline(T)).toBe(BASE + 7);
  });

  it("stop() stops a running timer and is harmless on a stopped one", () => {
    timers.startAt(T, BASE);
    timers.stop(T);
    expect(timers.isRunning(T)).toBe(false);
    timers.stop(T);
    expect(timers.isRunning(T)).toBe(false);
  });

  it("program() arms hardware channel 0 for the earliest deadline", () => {
    timers.startAt(T, BASE + 1);
    program();
    expectArmed(BASE + 1);
  });

  it("program() emits nothing when the earliest deadline is already armed", () => {
    timers.startAt(T, BASE);
    program();
    program();
    expectNothingSent();
    timers.startAt(T, BASE); // restarted at the same deadline
    program();
    expectNothingSent();
  });

  it("program() re-arms when the timer restarts earlier", () => {
    timers.startAt(T, BASE + 1000);
    program();
    timers.startAt(T, BASE + 500);
    program();
    expectArmed(BASE + 500);
  });

  it("program() re-arms when the timer restarts later", () => {
    timers.startAt(T, BASE);
    program();
    timers.startAt(T, BASE + 1_000_000_000);
    program();
    expectArmed(BASE + 1_000_000_000);
  });

  it("program() disarms the hardware once, when the last timer has stopped while armed", () => {
    timers.startAt(T, BASE);
    program();
    timers.stop(T);
    program();
    expectDisarmed();
    program();
    expectNothingSent();
  });

  it("program() emits nothing when no timer runs and nothing is armed", () => {
    program();
    expectNothingSent();
    timers.startAt(T, BASE);
    timers.stop(T); // never programmed, so never armed
    program();
    expectNothingSent();
  });

  it("program() arms again after a disarm", () => {
    timers.startAt(T, BASE);
    program();
    timers.stop(T);
    program();
    timers.startAt(T, BASE);
    program();
    expectArmed(BASE);
  });

  it("nextExpired() returns -1 while no timer is due, leaving it running", () => {
    timers.startAt(T, BASE);
    clock.advanceTo(BASE - 1);
    expect(timers.nextExpired()).toBe(-1);
    expect(timers.isRunning(T)).toBe(true);
  });

  it("nextExpired() returns -1 when no timer runs, even past a stopped timer's deadline", () => {
    expect(timers.nextExpired()).toBe(-1);
    timers.startAt(T, BASE);
    timers.stop(T);
    clock.advanceTo(BASE + 1);
    expect(timers.nextExpired()).toBe(-1);
  });

  it("nextExpired() returns a timer due exactly now and stops it", () => {
    timers.startAt(T, BASE);
    clock.advanceTo(BASE);
    expect(timers.nextExpired()).toBe(T);
    expect(timers.isRunning(T)).toBe(false);
    expect(timers.nextExpired()).toBe(-1, "returned only once");
  });

  it("due() names the running timers that have expired; nextExpired(among) looks only at those", () => {
    const U = TimerId.Update;
    timers.startAt(T, BASE);
    timers.startAt(U, BASE + 10);
    clock.advanceTo(BASE);
    expect(timers.due()).toBe((1 << T) as u32, "only the one due");
    const eligible = timers.due();
    timers.startAt(U, BASE); // started meanwhile, already due
    expect(timers.nextExpired(eligible)).toBe(T);
    expect(timers.nextExpired(eligible & ~(1 << T))).toBe(-1, "not among those due when the event came");
    expect(timers.isRunning(U)).toBe(true, "it waits for the next call");
    expect(timers.nextExpired()).toBe(U);
  });

  it("nextExpired() returns a timer whose deadline has long passed", () => {
    timers.startAt(T, 1);
    clock.advanceTo(BASE);
    expect(timers.nextExpired()).toBe(T);
    expect(timers.nextExpired()).toBe(-1);
  });

  it("nextExpired() emits no command", () => {
    timers.startAt(T, BASE);
    clock.advanceTo(BASE);
    timers.nextExpired();
    expectNothingSent();
  });

  it("hardwareFired() makes the next program() re-arm the same deadline", () => {
    timers.startAt(T, BASE);
    program();
    timers.hardwareFired();
    program();
    expectArmed(BASE);
  });

  it("program() emits no disarm after the hardware fired and its timer expired", () => {
    timers.startAt(T, BASE);
    program();
    clock.advanceTo(BASE);
    timers.hardwareFired();
    expect(timers.nextExpired()).toBe(T);
    program();
    expectNothingSent();
  });

  it("a timer restarted from its own expiry is armed at its new deadline", () => {
    timers.startAt(T, BASE);
    program();
    clock.advanceTo(BASE);
    timers.hardwareFired();
    const id = timers.nextExpired();
    timers.startAt(id, timers.deadline(id) + 1_000_000_000);
    program();
    expectArmed(BASE + 1_000_000_000);
  });
});
