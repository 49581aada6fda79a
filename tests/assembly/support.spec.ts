import * as counters from "../../assembly/counters";
import * as entropy from "../../assembly/entropy";
import * as clock from "../../assembly/clock";
import * as hash from "../../assembly/hash";
import { Context } from "../../assembly/hash";
import * as tx from "../../assembly/abi/tx";
import { sent } from "./helpers";
import {
  Counter, MailboxError, errorCounter, Command, RegWriteBody, HashBody, HashOp, HashStatus, HASH_UPDATE_MAX,
} from "../../board/map/mailbox";
import { CardReg } from "../../board/map/registers";

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

/** The EntropyRequest writes among the buffered commands: the byte counts asked for. */
function entropyRequests(): u32[] {
  const out = new Array<u32>();
  const commands = sent();
  for (let i = 0; i < commands.length; i++) {
    if (commands[i].type == Command.RegWrite && commands[i].u32(RegWriteBody.Address) == (CardReg.EntropyRequest as u32)) out.push(commands[i].u32(RegWriteBody.Value));
  }
  return out;
}

describe("entropy pool", () => {
  beforeEach(() => {
    entropy.reset();
    tx.discard();
    for (let i = 0; i < 256; i++) store<u8>(source + i, i as u8);
  });

  it("holds no bytes after reset", () => {
    expect(entropy.bytesAvailable()).toBe(0);
    expect(entropy.has(1)).toBe(false);
  });

  it("collects bytes across feeds, at most POOL_SIZE", () => {
    entropy.feed(source, 10);
    entropy.feed(source, 22);
    expect(entropy.bytesAvailable()).toBe(32);
    expect(entropy.has(32)).toBe(true);
    expect(entropy.has(33)).toBe(false);
    entropy.feed(source, entropy.POOL_SIZE);
    expect(entropy.bytesAvailable()).toBe(entropy.POOL_SIZE);
  });

  it("gives each byte once, and zeroes what it gave", () => {
    const out = memory.data(64);
    entropy.feed(source, 8);
    entropy.take(out, 4);
    entropy.take(out + 4, 4);
    const seen = new Set<u8>();
    for (let i = 0; i < 8; i++) seen.add(load<u8>(out + i));
    expect(seen.size).toBe(8, "eight different bytes from eight different ones");
    expect(entropy.bytesAvailable()).toBe(0);
  });

  it("asks the generator to fill the pool once a draw leaves less than half, and only once", () => {
    entropy.feed(source, entropy.POOL_SIZE);
    const out = memory.data(64);
    entropy.take(out, 16);
    expect(entropyRequests().length).toBe(0, "48 left: no request");
    entropy.take(out, 20);
    expect(entropyRequests()).toStrictEqual([36 as u32], "28 left: ask for the 36 missing");
    entropy.take(out, 16);
    expect(entropyRequests()).toStrictEqual([36 as u32, 16 as u32], "only what was not asked for yet");
    entropy.feed(source, 52);
    expect(entropy.bytesAvailable()).toBe(entropy.POOL_SIZE);
    tx.discard();
    entropy.take(out, 8);
    expect(entropyRequests().length).toBe(0, "the requests were answered: full again");
  });

  it("ignores an empty feed", () => {
    entropy.feed(source, 5);
    entropy.feed(source, 0);
    expect(entropy.bytesAvailable()).toBe(5);
  });

  it("jitter16() depends on the bytes fed", () => {
    entropy.feed(source, 8);
    const a = entropy.jitter16();
    entropy.reset();
    entropy.feed(source + 1, 8);
    expect(entropy.jitter16()).not.toBe(a);
  });
});

describe("hash engine driver", () => {
  beforeEach(() => {
    hash.reset();
    tx.discard();
  });

  it("splits a long update into HASH Updates of at most HASH_UPDATE_MAX bytes, in order", () => {
    hash.update(Context.Update, source, HASH_UPDATE_MAX * 2 + 5);
    const commands = sent(true);
    expect(commands.length).toBe(3);
    expect(commands[0].length).toBe(HashBody.Data + HASH_UPDATE_MAX);
    expect(commands[2].length).toBe(HashBody.Data + 5);
    for (let i = 0; i < 3; i++) {
      expect(commands[i].type).toBe(Command.Hash);
      expect(commands[i].u8(HashBody.Op)).toBe(HashOp.Update);
      expect(commands[i].u8(HashBody.Context)).toBe(Context.Update);
    }
  });

  it("accepts only the HASH_DONE of the last Finish on a context", () => {
    hash.finish(Context.Manage);
    const first = sent(true)[0].u16(HashBody.Tag) as u32;
    hash.finish(Context.Manage);
    const second = sent(true)[1].u16(HashBody.Tag) as u32;
    expect(second).not.toBe(first);
    expect(hash.current(Context.Manage, first, HashStatus.Ok)).toBe(false, "the abandoned hash");
    expect(hash.current(Context.Manage, second, HashStatus.Ok)).toBe(true);
    expect(hash.current(Context.Manage, second, HashStatus.Idle)).toBe(false, "no digest");
    expect(hash.current(Context.Store, second, HashStatus.Ok)).toBe(false, "another context");
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
