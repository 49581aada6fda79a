// A lone card on a scheduler for tests: flash holding a signed image of the given
// firmware in slot 0 (confirmed), the development key in the boot ROM, no fabric.

import { readFileSync } from "node:fs";
import { createPublicKey } from "node:crypto";
import { Card, type CardObserver } from "../../../board/card.ts";
import { Flash } from "../../../board/flash.ts";
import { installImage } from "../../../board/boot-rom.ts";
import { developmentKey } from "../../../board/image.ts";
import { CardRole, LogLevel } from "../../../board/map/mailbox.ts";
import { BOARD_ID } from "../../../board/map/registers.ts";
import { developmentImage } from "../../../tools/build/image.ts";
import { MeteredSession, openSession, firmwareFile, type EngineKind } from "../../../tools/engines/index.ts";
import type { FirmwareSession, SoftcoreTiming } from "../../../board/softcore.ts";
import type { Scheduler } from "../../../board/scheduler.ts";

export interface TestCardOptions {
  /** firmware.wasm to install (a path). */
  firmware: string;
  engine?: EngineKind;
  observer?: CardObserver;
  /** Wraps each session the card opens (to tamper with its traffic). */
  wrap?: (session: FirmwareSession) => FirmwareSession;
  flash?: Flash;
  /** The soft-core's timing; with it the card runs a metered session (tools/engines/metered.ts). */
  softcore?: SoftcoreTiming;
  /** The metered session's instruction limit per batch (default: the soft-core's). */
  limit?: number;
}

export function testCard(scheduler: Scheduler, o: TestCardOptions): Card {
  const flash = o.flash ?? Flash.erased();
  if (!o.flash) installImage(flash, developmentImage(readFileSync(o.firmware)));
  let n = 0;
  return new Card(
    { name: "c", role: CardRole.Host, boardId: BOARD_ID, serial: 1, mac: new Uint8Array(6), slots: 1, logLevel: LogLevel.Info },
    scheduler, (count) => new Uint8Array(count),
    {
      flash,
      trustedKeys: [createPublicKey(developmentKey())],
      openFirmware: (payload, onLog) => {
        const options = { firmware: firmwareFile(payload), onLog };
        const session = o.softcore ? new MeteredSession(o.engine ?? "node", options, o.limit ?? o.softcore.instructionLimit) : openSession(o.engine ?? "node", options);
        return (o.wrap ?? ((s) => s))(session);
      },
      random: (bound) => n++ % bound,
      softcore: o.softcore,
    },
    o.observer,
  );
}
