// Virtual time: the firmware never reads a clock; TIME events set it.

export let now: u64 = 0;

/** Moves the clock to `time`; false (clock unchanged) if that would go back. */
export function advanceTo(time: u64): bool {
  if (time < now) return false;
  now = time;
  return true;
}

export function reset(): void {
  now = 0;
}
