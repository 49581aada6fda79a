// The card's system services: the watchdog, and the boot ROM's requests (confirm a trial
// image, reboot, try an update). The boot ROM starts the watchdog before the firmware;
// the firmware kicks it every KICK_NS from a timer, so a firmware that stops running
// events (a trap, a hang) is reset within WATCHDOG_TIMEOUT_NS.
//
// A trial image confirms itself once it has run CONFIRM_AFTER_NS: it booted and kept the
// watchdog fed all that time (a firmware that traps, hangs or stops kicking is reset
// first). Until then the boot ROM rolls it back at the next reset.

import { BootBody, BootFlag, ResetCause } from "../board/map/mailbox";
import { CardReg, BootCommand, WATCHDOG_KEY, WATCHDOG_TIMEOUT_NS } from "../board/map/registers";
import * as tx from "./abi/tx";
import { Text } from "./text";
import * as timers from "./timers";
import { TimerId } from "./timers";
import * as log from "./log";
import * as clock from "./clock";

export const KICK_NS: u64 = WATCHDOG_TIMEOUT_NS / 4;
export const CONFIRM_AFTER_NS: u64 = 1_000_000_000;

/** The flash slot the boot ROM started. */
export let bootSlot: i32 = 0;
/** The image runs on trial, not yet confirmed. */
export let trial = false;
export let resetCause: i32 = ResetCause.PowerOn;
/** Virtual time of BOOT: uptime counts from it. */
export let bootTime: u64 = 0;

export function reset(): void {
  bootSlot = 0;
  trial = false;
  resetCause = ResetCause.PowerOn;
  bootTime = 0;
}

/** At BOOT (fields already checked): start kicking the watchdog, and the trial's clock. */
export function start(body: usize): void {
  bootSlot = load<u8>(body, BootBody.BootSlot);
  trial = (load<u8>(body, BootBody.BootFlags) & BootFlag.Trial) != 0;
  resetCause = load<u8>(body, BootBody.ResetCause);
  bootTime = clock.now;
  kick();
  timers.start(TimerId.Watchdog, KICK_NS);
  if (trial) timers.start(TimerId.Confirm, CONFIRM_AFTER_NS);
}

function kick(): void {
  tx.regWrite(CardReg.WatchdogKick, WATCHDOG_KEY);
}

export function onWatchdogTimer(): void {
  kick();
  timers.restartPeriodic(TimerId.Watchdog, KICK_NS);
}

/** The trial ran long enough: asks the boot ROM to keep the image. True when it did. */
export function onConfirmTimer(): bool {
  if (!trial) return false;
  tx.regWrite(CardReg.BootControl, BootCommand.Confirm | (bootSlot << 8));
  trial = false;
  log.info();
  log.str("boot: image in slot ");
  log.dec(bootSlot);
  log.str(" confirmed");
  log.end();
  return true;
}

export function reboot(): void {
  tx.regWrite(CardReg.BootControl, BootCommand.Reboot);
}

/** Resets into a trial of the image in `slot`. */
export function tryImage(slot: i32): void {
  tx.regWrite(CardReg.BootControl, BootCommand.Trial | (slot << 8));
}

export function causeName(cause: i32): Text {
  return cause == ResetCause.PowerOn ? "power-on" : cause == ResetCause.Watchdog ? "watchdog" : cause == ResetCause.Software ? "software" : "update";
}
