// MACsec frames the card's SecYs dropped, by reason (CardReg.MacsecDrops, docs/registers.md):
// the fabric counts them; the firmware reads the counts once a second (the heartbeat; the first a
// second after its boot, so that the boot's batches stay short), and reports the last values read
// in its management replies and on the console.

import { CardReg, MACSEC_DROP_REASONS } from "../../board/map/registers";
import * as tx from "../abi/tx";

const values = memory.data(4 * MACSEC_DROP_REASONS);

/** Asks the fabric for every count (REG_READ); the values come back as REG_VALUE. */
export function poll(): void {
  for (let i = 0; i < MACSEC_DROP_REASONS; i++) tx.regRead((CardReg.MacsecDrops + 4 * i) as u32);
}

/** Keeps a REG_VALUE of one of the counts; others are not this module's. */
export function onRegValue(address: u32, value: u32): void {
  const offset = address - (CardReg.MacsecDrops as u32);
  if (offset < ((4 * MACSEC_DROP_REASONS) as u32) && (offset & 3) == 0) store<u32>(values + offset, value);
}

/** The last count read of `reason` (0 .. MACSEC_DROP_REASONS - 1, in TunnelCounter order from RxBadIcv); 0 before the first. */
export function get(reason: i32): u32 {
  return load<u32>(values + 4 * reason);
}
