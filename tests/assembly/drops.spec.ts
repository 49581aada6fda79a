import * as drops from "../../assembly/link/drops";
import * as tx from "../../assembly/abi/tx";
import { Command, RegReadBody } from "../../board/map/mailbox";
import { CardReg, MACSEC_DROP_REASONS } from "../../board/map/registers";
import { sent } from "./helpers";

describe("MACsec drop counts (CardReg.MacsecDrops)", () => {
  it("poll() reads each reason's count, bad ICV first", () => {
    tx.discard();
    drops.poll();
    const out = sent();
    expect(out.length).toBe(MACSEC_DROP_REASONS);
    for (let i = 0; i < MACSEC_DROP_REASONS; i++) {
      expect(out[i].type).toBe(Command.RegRead);
      expect(out[i].u32(RegReadBody.Address)).toBe((CardReg.MacsecDrops + 4 * i) as u32);
    }
  });

  it("keeps the values read, by reason, and takes no other register's", () => {
    for (let i = 0; i < MACSEC_DROP_REASONS; i++) drops.onRegValue((CardReg.MacsecDrops + 4 * i) as u32, (100 + i) as u32);
    drops.onRegValue((CardReg.MacsecDrops + 2) as u32, 7); // not a counter's address
    drops.onRegValue((CardReg.MacsecDrops + 4 * MACSEC_DROP_REASONS) as u32, 7); // past the last
    drops.onRegValue((CardReg.MacsecDrops - 4) as u32, 7); // before the first
    drops.onRegValue(CardReg.SlotsPresent as u32, 7);
    for (let i = 0; i < MACSEC_DROP_REASONS; i++) expect(drops.get(i)).toBe((100 + i) as u32);
    drops.onRegValue(CardReg.MacsecDrops as u32, 0xffff_ffff);
    expect(drops.get(0)).toBe(0xffff_ffff, "a count's whole 32 bits");
  });
});
