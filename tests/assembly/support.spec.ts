import * as counters from "../../assembly/counters";
import * as entropy from "../../assembly/entropy";
import * as timers from "../../assembly/timers";
import { TimerId } from "../../assembly/timers";
import * as clock from "../../assembly/clock";
import { DRBG_SEED_MIN, DRBG_RESEED_MIN } from "../../assembly/crypto/drbg";
import { Counter, MailboxError, errorCounter } from "../../board/map/mailbox";

const source = memory.data(256); // bytes handed to entropy.feed()

describe("counters", () => {
  beforeEach(() => {
    counters.clearAll();
  });

  it("count() adds one to its counter only", () => {
    counters.count(Counter.Batches);
    counters.count(Counter.Batches);
    expect(counters.get(Counter.Batches)).toBe(2);
    expect(counters.get(Counter.EventsIn)).toBe(0, "counter before");
    expect(counters.get(Counter.TimersFired)).toBe(0, "counter after");
  });

  it("add() adds an amount", () => {
    counters.add(Counter.BytesIn, 1000);
    counters.add(Counter.BytesIn, 24);
    expect(counters.get(Counter.BytesIn)).toBe(1024);
  });

  it("wraps at 2^32", () => {
    counters.add(Counter.BytesOut, 0x7fffffff);
    counters.add(Counter.BytesOut, 0x7fffffff);
    counters.count(Counter.BytesOut);
    expect(counters.get(Counter.BytesOut)).toBe(0xffffffff);
    counters.add(Counter.BytesOut, 3);
    expect(counters.get(Counter.BytesOut)).toBe(2);
  });

  it("clearAll() zeroes every counter, the first and the last included", () => {
    for (let i = 0; i < Counter.Count; i++) counters.add(i, i + 1);
    counters.clearAll();
    for (let i = 0; i < Counter.Count; i++) expect(counters.get(i)).toBe(0, "counter " + i.toString());
  });

  it("errorCounter() maps each MailboxError code to its own counter", () => {
    expect(errorCounter(MailboxError.UnknownType)).toBe(Counter.ErrUnknownType);
    expect(errorCounter(MailboxError.BadLength)).toBe(Counter.ErrBadLength);
    expect(errorCounter(MailboxError.Oversize)).toBe(Counter.ErrOversize);
    expect(errorCounter(MailboxError.Reserved)).toBe(Counter.ErrReserved);
    expect(errorCounter(MailboxError.BadField)).toBe(Counter.ErrBadField);
    expect(errorCounter(MailboxError.OutOfOrder)).toBe(Counter.ErrOutOfOrder);
    expect(errorCounter(MailboxError.Version)).toBe(Counter.ErrVersion);
    expect(errorCounter(MailboxError.Truncated)).toBe(Counter.ErrTruncated);
    expect(errorCounter(MailboxError.Truncated)).toBeLessThan(Counter.Count);
  });
});

/** `length` bytes from `at`, then the Entropy timer's work if they started it. */
function feedAndMix(at: usize, length: i32): void {
  entropy.feed(at, length);
  if (timers.isRunning(TimerId.Entropy)) {
    timers.stop(TimerId.Entropy);
    entropy.mix();
  }
}

describe("entropy pool and DRBG", () => {
  beforeEach(() => {
    entropy.reset();
    timers.reset();
    for (let i = 0; i < 256; i++) store<u8>(source + i, i as u8);
  });


  it("holds no bytes and is not ready after reset", () => {
    expect(entropy.bytesAvailable()).toBe(0);
    expect(entropy.ready()).toBe(false);
  });

  it("collects bytes across feeds; at DRBG_SEED_MIN it starts the Entropy timer, which seeds", () => {
    entropy.feed(source, 10);
    entropy.feed(source, 22);
    expect(entropy.bytesAvailable()).toBe(32);
    entropy.feed(source, DRBG_SEED_MIN - 33);
    expect(timers.isRunning(TimerId.Entropy)).toBe(false, "one byte short");
    entropy.feed(source, 1);
    expect(timers.isRunning(TimerId.Entropy)).toBe(true, "enough to seed: a batch of its own does it");
    expect(timers.deadline(TimerId.Entropy)).toBe(clock.now, "due at once");
    expect(entropy.ready()).toBe(false, "not in the batch that brought the bytes");
    entropy.mix();
    expect(entropy.ready()).toBe(true, "seeded");
    expect(entropy.bytesAvailable()).toBe(0, "the seed was used up");
  });

  it("keeps at most POOL_SIZE bytes of one large feed, and seeds with all of them", () => {
    entropy.feed(source, entropy.POOL_SIZE + 20);
    expect(entropy.bytesAvailable()).toBe(entropy.POOL_SIZE);
    entropy.mix();
    expect(entropy.ready()).toBe(true);
    expect(entropy.bytesAvailable()).toBe(0);
  });

  it("reseeds every DRBG_RESEED_MIN bytes, which changes what it generates", () => {
    feedAndMix(source, DRBG_SEED_MIN);
    const before = entropy.word32();
    entropy.reset();
    feedAndMix(source, DRBG_SEED_MIN);
    expect(entropy.word32()).toBe(before, "the same seed gives the same output");
    entropy.reset();
    feedAndMix(source, DRBG_SEED_MIN);
    feedAndMix(source + 100, DRBG_RESEED_MIN);
    expect(entropy.bytesAvailable()).toBe(0);
    expect(entropy.word32()).not.toBe(before, "a reseed changes the output");
  });

  it("different seeds give different output", () => {
    feedAndMix(source, DRBG_SEED_MIN);
    const a = entropy.word32();
    entropy.reset();
    feedAndMix(source + 1, DRBG_SEED_MIN);
    expect(entropy.word32()).not.toBe(a);
  });

  it("ignores an empty feed", () => {
    entropy.feed(source, 5);
    entropy.feed(source, 0);
    expect(entropy.bytesAvailable()).toBe(5);
  });

  it("reset() forgets the seed and the pool", () => {
    entropy.feed(source, DRBG_SEED_MIN + 5);
    entropy.reset();
    expect(entropy.bytesAvailable()).toBe(0);
    expect(entropy.ready()).toBe(false);
  });
});

describe("clock", () => {
  beforeEach(() => {
    clock.reset();
  });

  it("starts at zero after reset", () => {
    clock.advanceTo(123);
    clock.reset();
    expect(clock.now).toBe(0);
  });

  it("advanceTo() moves the clock forward, beyond 2^32 ns", () => {
    expect(clock.advanceTo(5_000_000_001)).toBe(true);
    expect(clock.now).toBe(5_000_000_001);
  });

  it("advanceTo() accepts the current time", () => {
    clock.advanceTo(500);
    expect(clock.advanceTo(500)).toBe(true);
    expect(clock.now).toBe(500);
  });

  it("advanceTo() refuses to go back and leaves the clock unchanged", () => {
    clock.advanceTo(5_000_000_000);
    expect(clock.advanceTo(4_999_999_999)).toBe(false);
    expect(clock.now).toBe(5_000_000_000);
  });

  it("advanceTo() compares all 64 bits", () => {
    clock.advanceTo(0x1_0000_0000);
    expect(clock.advanceTo(0xffff_ffff)).toBe(false, "lower time with a larger low word");
    expect(clock.now).toBe(0x1_0000_0000);
  });
});
