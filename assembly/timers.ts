// Timer service: many logical timers multiplexed onto hardware timer channel 0.
// Each logical timer has one owner, named in TimerId. The hardware channel is
// re-armed for the earliest deadline at the end of every batch (program()).

import * as clock from "./clock";
import * as tx from "./abi/tx";

export enum TimerId {
  Heartbeat = 0, //   log line every second
  Beacon = 1, //      DISCOVER repeats while a port is discovering
  PortState = 2, //   PortState + port: the timeout of the port's link state
  PortHealth = 10, // PortHealth + port: RTT samples while active, resume probes in recovery
  Watchdog = 18, //   kick the watchdog
  Confirm = 19, //    confirm a trial image after a healthy start
  Update = 20, //     the update's transfer: receiver start and timeouts
  Slots = 21, //      raise the next queued hot-plug event (pcie/switch.ts), due at once
  Boot = 22, //       the rest of a boot that adopts retained state, after what waited for it (firmware.ts)
  Count = 23,
}

const CHANNEL: i32 = 0;
const deadlines = memory.data(8 * TimerId.Count);
let running: u32 = 0; // bit per TimerId
let hardwareArmed = false;
let hardwareDeadline: u64 = 0;

export function reset(): void {
  running = 0;
  hardwareArmed = false;
  hardwareDeadline = 0;
}

export function startAt(id: i32, deadline: u64): void {
  store<u64>(deadlines + (id << 3), deadline);
  running |= 1 << id;
}

export function start(id: i32, delay: u64): void {
  startAt(id, clock.now + delay);
}

/**
 * Restarts a periodic timer one period after its last deadline, skipping whole periods
 * that already passed (keeping the phase), so a late expiry costs one run, not one per
 * missed period. A deadline past the end of time parks the timer at U64.MAX_VALUE.
 */
export function restartPeriodic(id: i32, period: u64): void {
  const last = deadline(id);
  const periods: u64 = clock.now >= last ? (clock.now - last) / period + 1 : 1;
  const room = (U64.MAX_VALUE - last) / period;
  startAt(id, periods > room ? U64.MAX_VALUE : last + periods * period);
}

export function stop(id: i32): void {
  running &= ~(1 << id);
}

export function isRunning(id: i32): bool {
  return (running & (1 << id)) != 0;
}

export function deadline(id: i32): u64 {
  return load<u64>(deadlines + (id << 3));
}

/** The hardware channel fired: it is one-shot, so it is no longer armed. */
export function hardwareFired(): void {
  hardwareArmed = false;
}

/** The running timers that have expired, a bit per TimerId. */
export function due(): u32 {
  let mask: u32 = 0;
  for (let bits = running; bits != 0; bits &= bits - 1) {
    const id = ctz(bits);
    if (deadline(id) <= clock.now) mask |= 1 << id;
  }
  return mask;
}

/**
 * Stops and returns the expired timer among `among` (a bit per TimerId) with the earliest
 * deadline (lowest id on ties), or -1 when none has expired. Callers loop until -1.
 */
export function nextExpired(among: u32 = 0xffffffff): i32 {
  let found = -1;
  let earliest: u64 = clock.now;
  for (let bits = running & among; bits != 0; bits &= bits - 1) {
    const id = ctz(bits);
    const due = deadline(id);
    if (due <= earliest && (found < 0 || due < earliest)) {
      found = id;
      earliest = due;
    }
  }
  if (found >= 0) stop(found);
  return found;
}

/** Arms, re-arms or disarms the hardware channel for the earliest running timer. */
export function program(): void {
  if (running == 0) {
    if (hardwareArmed) {
      tx.timerDisarm(CHANNEL);
      hardwareArmed = false;
    }
    return;
  }
  let earliest: u64 = U64.MAX_VALUE;
  // Only the running timers: usually two or three of TimerId.Count. This runs at every SYNC.
  for (let bits = running; bits != 0; bits &= bits - 1) {
    const at = deadline(ctz(bits));
    if (at < earliest) earliest = at;
  }
  if (hardwareArmed && hardwareDeadline == earliest) return;
  tx.timerArm(CHANNEL, earliest);
  hardwareArmed = true;
  hardwareDeadline = earliest;
}
