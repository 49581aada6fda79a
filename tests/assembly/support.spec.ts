import * as counters from "../../assembly/counters";
import * as entropy from "../../assembly/entropy";
import * as clock from "../../assembly/clock";
import { Counter, MailboxError, errorCounter } from "../../board/map/mailbox";

const POOL_SIZE = 64;
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

describe("entropy pool", () => {
  beforeEach(() => {
    entropy.reset();
    for (let i = 0; i < 256; i++) store<u8>(source + i, i as u8);
  });

  it("holds no bytes after reset", () => {
    expect(entropy.bytesAvailable()).toBe(0);
  });

  it("counts the bytes fed, across feeds", () => {
    entropy.feed(source, 10);
    expect(entropy.bytesAvailable()).toBe(10);
    entropy.feed(source, 22);
    expect(entropy.bytesAvailable()).toBe(32);
  });

  it("caps the available bytes at the pool size when one feed overfills it", () => {
    entropy.feed(source, POOL_SIZE + 36);
    expect(entropy.bytesAvailable()).toBe(POOL_SIZE);
  });

  it("caps the available bytes at the pool size across feeds", () => {
    entropy.feed(source, POOL_SIZE - 4);
    entropy.feed(source, 10);
    expect(entropy.bytesAvailable()).toBe(POOL_SIZE);
    entropy.feed(source, 1);
    expect(entropy.bytesAvailable()).toBe(POOL_SIZE);
  });

  it("fills the pool exactly", () => {
    entropy.feed(source, POOL_SIZE);
    expect(entropy.bytesAvailable()).toBe(POOL_SIZE);
  });

  it("ignores an empty feed", () => {
    entropy.feed(source, 5);
    entropy.feed(source, 0);
    expect(entropy.bytesAvailable()).toBe(5);
  });

  it("reset() empties a full pool", () => {
    entropy.feed(source, POOL_SIZE);
    entropy.reset();
    expect(entropy.bytesAvailable()).toBe(0);
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
