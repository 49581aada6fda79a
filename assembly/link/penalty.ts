// Back-off per peer after a failed handshake: a card that failed (wrong key, impossible
// proposal, no answer) is ignored for PenaltyMinNs, doubling with each failure in a row up to
// PenaltyMaxNs, with jitter; a link that comes up forgives its peer. A small table: when it is
// full, the entry that expires first gives way.

import { LinkTiming } from "../../board/map/link";
import * as clock from "../clock";
import * as entropy from "../entropy";

const ENTRIES: i32 = 8;
const ENTRY: i32 = 24; // u8[6] mac, u16 failures, u64 until, u64 unused
const table = memory.data(ENTRIES * ENTRY);

function find(mac: usize): i32 {
  for (let i = 0; i < ENTRIES; i++) {
    const e = table + i * ENTRY;
    if (load<u64>(e, 8) != 0 && load<u32>(e) == load<u32>(mac) && load<u16>(e, 4) == load<u16>(mac, 4)) return i;
  }
  return -1;
}

export function reset(): void {
  memory.fill(table, 0, ENTRIES * ENTRY);
}

/** True while `mac` is being ignored. */
export function active(mac: usize): bool {
  const i = find(mac);
  return i >= 0 && load<u64>(table + i * ENTRY, 8) > clock.now;
}

/** One more failure with `mac`. */
export function add(mac: usize): void {
  let i = find(mac);
  if (i < 0) {
    i = 0;
    for (let j = 1; j < ENTRIES; j++) {
      if (load<u64>(table + j * ENTRY, 8) < load<u64>(table + i * ENTRY, 8)) i = j;
    }
    const e = table + i * ENTRY;
    memory.copy(e, mac, 6);
    store<u16>(e, 0, 6);
  }
  const e = table + i * ENTRY;
  const failures = min<u32>(load<u16>(e, 6) as u32 + 1, 16);
  store<u16>(e, failures as u16, 6);
  const wait = min<u64>((LinkTiming.PenaltyMinNs as u64) << (failures - 1), LinkTiming.PenaltyMaxNs);
  const r = entropy.jitter16() as u64;
  store<u64>(e, clock.now + wait - (wait >> 2) + (((wait >> 1) * r) >> 16) + 1, 8);
}

/** A link with `mac` came up: its failures are forgotten. */
export function forgive(mac: usize): void {
  const i = find(mac);
  if (i >= 0) memory.fill(table + i * ENTRY, 0, ENTRY);
}
