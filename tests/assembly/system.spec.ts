// The card's system services (assembly/system.ts), driven through the mailbox: the
// watchdog kicks at BOOT and every KICK_NS, the confirmation of a trial image after
// CONFIRM_AFTER_NS, and the BOOT fields that name the image the boot ROM started.

import * as firmware from "../../assembly/firmware";
import * as tx from "../../assembly/abi/tx";
import * as counters from "../../assembly/counters";
import { KICK_NS, CONFIRM_AFTER_NS } from "../../assembly/system";
import { CardReg, BootCommand, WATCHDOG_KEY, WATCHDOG_TIMEOUT_NS } from "../../board/map/registers";
import { SLOTS } from "../../board/map/flash";
import { Command, Counter, MailboxError, BootBody, BootFlag, ErrorBody, TimerArmBody } from "../../board/map/mailbox";
import {
  Sent, deliver, deliverAndAnswer, sent, set8, bootEvent, timeEvent, syncEvent, timerFiredEvent, regWritesTo, logHistory, expectText,
} from "./helpers";

const SECOND: u64 = 1_000_000_000;
const BOOT_TIME: u64 = 5 * SECOND;

let seq: u32 = 0;

function fresh(): void {
  firmware.reset();
  tx.discard();
  seq = 0;
}

/** Delivers `bytes` as one read and handles them; returns only the commands they caused. */
function handle(bytes: u8[]): Sent[] {
  tx.discard();
  deliverAndAnswer(bytes);
  return sent();
}

/** A batch at `now`: TIME, `events`, SYNC. */
function batch(now: u64, events: u8[]): Sent[] {
  return handle(timeEvent(now).concat(events).concat(syncEvent(seq++)));
}

/** The hardware timer fires at `now`. */
function fireAt(now: u64): Sent[] {
  return batch(now, timerFiredEvent(0));
}

/** BOOT of the image in `slot`, on trial or not. */
function bootOf(slot: i32, trial: bool): u8[] {
  return set8(set8(bootEvent(), BootBody.BootSlot, slot), BootBody.BootFlags, trial ? BootFlag.Trial : 0);
}

function kicks(out: Sent[]): u32[] {
  return regWritesTo(out, CardReg.WatchdogKick);
}

function bootControls(out: Sent[]): u32[] {
  return regWritesTo(out, CardReg.BootControl);
}

/** The deadline of the TIMER_ARM among `out` (there must be one). */
function armedFor(out: Sent[]): u64 {
  let deadline: u64 = 0;
  let n = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i].type != Command.TimerArm) continue;
    deadline = out[i].u64(TimerArmBody.Deadline);
    n++;
  }
  expect(n).toBe(1, "one TIMER_ARM");
  return deadline;
}

/** Handles `bytes`, one BOOT, and expects exactly one ERROR with `code` and `detail`, and no boot. */
function expectBootRejected(bytes: u8[], code: i32, detail: u32): void {
  const out = handle(bytes);
  expect(out.length).toBe(1, "only an ERROR");
  expect(out[0].type).toBe(Command.Error, "an ERROR");
  expect(out[0].u8(ErrorBody.Code)).toBe(code, "error code");
  expect(out[0].u32(ErrorBody.Detail)).toBe(detail, "detail");
  expect(firmware.isBooted()).toBe(false, "not booted");
}

describe("watchdog", () => {
  beforeEach(fresh);

  it("is kicked at BOOT with WATCHDOG_KEY written to WatchdogKick", () => {
    const out = batch(BOOT_TIME, bootOf(0, false));
    expect(kicks(out)).toStrictEqual([WATCHDOG_KEY as u32]);
    expect(armedFor(out)).toBe(BOOT_TIME + KICK_NS, "the next kick's deadline");
  });

  it("kicks often enough that a late batch still beats the timeout", () => {
    expect(KICK_NS).toBeGreaterThan(0);
    expect(KICK_NS * 2).toBeLessThanOrEqual(WATCHDOG_TIMEOUT_NS, "two kicks per timeout at least");
  });

  it("is kicked again every KICK_NS, and not before", () => {
    batch(BOOT_TIME, bootOf(0, false));
    expect(kicks(fireAt(BOOT_TIME + KICK_NS - 1))).toStrictEqual(new Array<u32>(), "early: no kick");
    for (let k: u64 = 1; k <= 8; k++) {
      const out = fireAt(BOOT_TIME + k * KICK_NS);
      expect(kicks(out)).toStrictEqual([WATCHDOG_KEY as u32], "kick " + k.toString());
      expect(armedFor(out)).toBe(BOOT_TIME + (k + 1) * KICK_NS, "deadline after kick " + k.toString());
    }
  });

  it("kicks once when its timer fires late, and keeps its phase", () => {
    batch(BOOT_TIME, bootOf(0, false));
    const out = fireAt(BOOT_TIME + 10 * KICK_NS + KICK_NS / 2);
    expect(kicks(out)).toStrictEqual([WATCHDOG_KEY as u32]);
    expect(armedFor(out)).toBe(BOOT_TIME + 11 * KICK_NS);
  });

  it("is not kicked by events other than its timer", () => {
    batch(BOOT_TIME, bootOf(0, false));
    expect(kicks(batch(BOOT_TIME + KICK_NS / 2, []))).toStrictEqual(new Array<u32>());
    expect(kicks(batch(BOOT_TIME + KICK_NS / 2, timerFiredEvent(0)))).toStrictEqual(new Array<u32>());
  });

  it("is not kicked before BOOT", () => {
    expect(kicks(batch(BOOT_TIME, []))).toStrictEqual(new Array<u32>());
  });
});

describe("trial confirmation", () => {
  beforeEach(fresh);

  it("confirms a trial image CONFIRM_AFTER_NS after BOOT, with its slot in bits 15-8", () => {
    batch(BOOT_TIME, bootOf(1, true));
    expect(bootControls(fireAt(BOOT_TIME + CONFIRM_AFTER_NS - 1))).toStrictEqual(new Array<u32>(), "not before");
    expect(bootControls(fireAt(BOOT_TIME + CONFIRM_AFTER_NS))).toStrictEqual([(BootCommand.Confirm | (1 << 8)) as u32]);
    expectText(logHistory(), "I boot: image in slot 1 confirmed\n");
  });

  it("confirms a trial image in slot 0 with 0 in bits 15-8", () => {
    batch(BOOT_TIME, bootOf(0, true));
    expect(bootControls(fireAt(BOOT_TIME + CONFIRM_AFTER_NS))).toStrictEqual([BootCommand.Confirm as u32]);
  });

  it("confirms once only", () => {
    batch(BOOT_TIME, bootOf(1, true));
    let writes = 0;
    for (let t: u64 = BOOT_TIME + KICK_NS; t <= BOOT_TIME + 4 * CONFIRM_AFTER_NS; t += KICK_NS) {
      writes += bootControls(fireAt(t)).length;
    }
    expect(writes).toBe(1);
  });

  it("confirms a trial image whose timer fires late", () => {
    batch(BOOT_TIME, bootOf(1, true));
    expect(bootControls(fireAt(BOOT_TIME + 100 * CONFIRM_AFTER_NS))).toStrictEqual([(BootCommand.Confirm | (1 << 8)) as u32]);
  });

  it("never writes BootControl for an image that is not on trial", () => {
    const slots: i32[] = [0, 1];
    for (let i = 0; i < slots.length; i++) {
      fresh();
      let writes = bootControls(batch(BOOT_TIME, bootOf(slots[i], false))).length;
      for (let t: u64 = BOOT_TIME + KICK_NS; t <= BOOT_TIME + 3 * CONFIRM_AFTER_NS; t += KICK_NS) {
        writes += bootControls(fireAt(t)).length;
      }
      expect(writes).toBe(0, "slot " + slots[i].toString());
      expectText(logHistory(), "confirmed", false);
    }
  });
});

describe("BOOT: the image's slot and flags", () => {
  beforeEach(fresh);

  it("accepts every slot below SLOTS, on trial or not", () => {
    for (let slot = 0; slot < SLOTS; slot++) {
      for (let trial = 0; trial < 2; trial++) {
        fresh();
        handle(bootOf(slot, trial == 1));
        expect(firmware.isBooted()).toBe(true, "slot " + slot.toString() + " trial " + trial.toString());
        expect(counters.get(Counter.Errors)).toBe(0);
      }
    }
  });

  it("rejects a BootSlot at or above SLOTS with BadField and the field's offset", () => {
    const slots: i32[] = [SLOTS, SLOTS + 1, 0xff];
    for (let i = 0; i < slots.length; i++) {
      fresh();
      expectBootRejected(set8(bootEvent(), BootBody.BootSlot, slots[i]), MailboxError.BadField, BootBody.BootSlot);
    }
  });

  it("rejects each BootFlags bit other than Trial with Reserved and the field's offset", () => {
    for (let bit = 0; bit < 8; bit++) {
      if ((1 << bit) == BootFlag.Trial) continue;
      fresh();
      expectBootRejected(set8(bootEvent(), BootBody.BootFlags, (1 << bit) | BootFlag.Trial), MailboxError.Reserved, BootBody.BootFlags);
    }
  });

  it("reports unknown flags before a bad slot", () => {
    const event = set8(set8(bootEvent(), BootBody.BootSlot, SLOTS), BootBody.BootFlags, 0x80);
    expectBootRejected(event, MailboxError.Reserved, BootBody.BootFlags);
  });

  it("neither kicks the watchdog nor starts the trial's clock after a rejected BOOT", () => {
    const out = batch(BOOT_TIME, set8(bootOf(1, true), BootBody.BootSlot, SLOTS));
    expect(kicks(out)).toStrictEqual(new Array<u32>());
    let writes = 0;
    for (let t: u64 = BOOT_TIME + KICK_NS; t <= BOOT_TIME + 2 * CONFIRM_AFTER_NS; t += KICK_NS) {
      const fired = fireAt(t);
      writes += kicks(fired).length + bootControls(fired).length;
    }
    expect(writes).toBe(0);
  });
});
