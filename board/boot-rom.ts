// The boot ROM: what the card's soft-core runs at every reset before the firmware.
//
// It examines both flash slots (board/map/flash.ts), verifies each image (board/image.ts:
// structure, SHA-256, Ed25519 signature by a key burnt into the ROM, board ID), and
// chooses what to start:
//   1. A slot whose trial was requested (Pending) and not yet decided: refused and revoked
//      if its image is bad or older than the active image; rolled back (revoked) if its
//      trial already ran (Tried) without a confirmation; otherwise marked Tried and
//      started on trial.
//   2. Otherwise the active image: confirmed, not revoked, valid; a slot not Superseded
//      first, then the newer version, then the lower slot.
// Every decision is printed on the UART, one line each, starting "boot: ".
// The flags are single words programmed in order, so a power cut at any point leaves a
// state from which this procedure starts a valid image (docs/image-format.md, "Boot ROM").

import type { KeyObject } from "node:crypto";
import type { Flash } from "./flash.ts";
import { SLOTS, SLOT_SIZE, SECTOR_SIZE, PAGE_SIZE, TRAILER_BASE, SlotTrailer, FLAG_CLEAR, slotBase } from "./map/flash.ts";
import { ResetCause } from "./map/mailbox.ts";
import { verifyImage, isDefect, formatVersion, compareVersions, type ImageInfo } from "./image.ts";

export interface BootRomOptions {
  /** CardReg.BoardId of this card: images for another board are refused. */
  boardId: number;
  /** Public keys burnt into the ROM. */
  trustedKeys: KeyObject[];
}

/** "detail" lines go to the UART only; the others are also worth a line in a timeline. */
export type RomLineLevel = "detail" | "info" | "warn" | "error";

export interface Booted {
  slot: number;
  trial: boolean;
  info: ImageInfo;
  payload: Uint8Array;
}

type Flag = keyof typeof SlotTrailer;

interface SlotView {
  slot: number;
  empty: boolean;
  flags: Record<Exclude<Flag, "Size">, boolean>;
  image: { info: ImageInfo; payload: Uint8Array } | null;
  defect: string | null;
}

/** How the ROM and the card name each reset cause (the firmware's log uses the same words). */
export const RESET_CAUSES: Record<ResetCause, string> = {
  [ResetCause.PowerOn]: "power-on", [ResetCause.Watchdog]: "watchdog", [ResetCause.Software]: "software", [ResetCause.Update]: "update",
};

export class BootRom {
  constructor(
    private readonly flash: Flash,
    private readonly options: BootRomOptions,
    private readonly print: (line: string, level: RomLineLevel) => void,
  ) {}

  /** Chooses and verifies the image to start; null when nothing is bootable (the card halts). */
  boot(cause: ResetCause): Booted | null {
    this.print(`boot: IOV boot ROM, reset cause ${RESET_CAUSES[cause] ?? cause}`, "detail");
    const slots = Array.from({ length: SLOTS }, (_, s) => this.examine(s));
    for (const view of slots) this.print(`boot: slot ${view.slot}: ${describe(view)}`, "detail");
    const trial = slots.find((v) => v.flags.Pending && !v.flags.Confirmed && !v.flags.Revoked && !v.empty);
    const active = chooseActive(slots.filter((v) => v !== trial));
    if (trial) {
      const started = this.decideTrial(trial, active);
      if (started) return started;
    }
    if (!active) {
      this.print("boot: no bootable image; card halted", "error");
      return null;
    }
    this.print(`boot: starting slot ${active.slot} (${formatVersion(active.image!.info.version)})`, "info");
    return { slot: active.slot, trial: false, ...active.image! };
  }

  /** The running trial image is healthy: make it permanent, and the other slot's image its fallback. */
  confirm(slot: number): void {
    if (this.flag(slot, "Confirmed")) return;
    this.setFlag(slot, "Confirmed");
    for (let other = 0; other < SLOTS; other++) {
      if (other !== slot && this.flag(other, "Confirmed") && !this.flag(other, "Superseded")) this.setFlag(other, "Superseded");
    }
  }

  /** Marks `slot` for a trial at the next reset. */
  requestTrial(slot: number): void {
    this.setFlag(slot, "Pending");
  }

  private decideTrial(trial: SlotView, active: SlotView | undefined): Booted | null {
    const version = trial.image ? formatVersion(trial.image.info.version) : "";
    let refusal: string | null = null;
    if (!trial.image) refusal = `refused: ${trial.defect}`;
    else if (trial.flags.Tried && active) refusal = `rolled back: the trial of ${version} was not confirmed`;
    else if (active && compareVersions(trial.image.info.version, active.image!.info.version) < 0) {
      refusal = `refused: downgrade from ${formatVersion(active.image!.info.version)} to ${version}`;
    }
    if (refusal) {
      this.print(`boot: slot ${trial.slot}: ${refusal}`, "warn");
      this.setFlag(trial.slot, "Revoked");
      return null;
    }
    if (trial.flags.Tried) this.print(`boot: slot ${trial.slot}: trial not confirmed, but no other image is bootable; trying it again`, "warn");
    else this.setFlag(trial.slot, "Tried");
    this.print(`boot: starting slot ${trial.slot} (${version}) on trial`, "info");
    return { slot: trial.slot, trial: true, ...trial.image! };
  }

  private examine(slot: number): SlotView {
    const bytes = this.flash.view(slotBase(slot), SLOT_SIZE);
    const flags = {} as SlotView["flags"];
    for (const name of Object.keys(SlotTrailer).filter((k) => isNaN(Number(k)) && k !== "Size") as Exclude<Flag, "Size">[]) {
      flags[name] = this.flag(slot, name);
    }
    const empty = bytes.subarray(0, 4).every((b) => b === 0xff);
    if (empty) return { slot, empty, flags, image: null, defect: "empty" };
    const verdict = verifyImage(bytes.subarray(0, TRAILER_BASE), { trustedKeys: this.options.trustedKeys, boardId: this.options.boardId, inFlash: true });
    return isDefect(verdict) ? { slot, empty, flags, image: null, defect: verdict.reason } : { slot, empty, flags, image: verdict, defect: null };
  }

  private flag(slot: number, name: Exclude<Flag, "Size">): boolean {
    const at = slotBase(slot) + TRAILER_BASE + SlotTrailer[name];
    const word = new DataView(this.flash.view(at, 4).slice().buffer).getUint32(0, true);
    return word !== FLAG_CLEAR;
  }

  private setFlag(slot: number, name: Exclude<Flag, "Size">): void {
    this.flash.program(slotBase(slot) + TRAILER_BASE + SlotTrailer[name], new Uint8Array(4));
  }
}

/** The active image: confirmed, valid, not revoked; not superseded first, then newer, then lower slot. */
function chooseActive(slots: SlotView[]): SlotView | undefined {
  return slots
    .filter((v) => v.image && v.flags.Confirmed && !v.flags.Revoked)
    .sort((a, b) =>
      Number(a.flags.Superseded) - Number(b.flags.Superseded) ||
      compareVersions(b.image!.info.version, a.image!.info.version) ||
      a.slot - b.slot)[0];
}

function describe(view: SlotView): string {
  if (view.empty) return "empty";
  const state = view.flags.Revoked ? "revoked" : view.flags.Confirmed ? (view.flags.Superseded ? "confirmed, superseded" : "confirmed")
    : view.flags.Tried ? "on trial, not confirmed" : view.flags.Pending ? "trial requested" : "not confirmed";
  if (!view.image) return `invalid (${view.defect}), ${state}`;
  const { version, buildId } = view.image.info;
  return `${formatVersion(version)} build ${Buffer.from(buildId).toString("hex").slice(0, 16)}, ${state}`;
}

/** Manufacturing: erases `slot`, writes `image` into it and marks it confirmed. */
export function installImage(flash: Flash, image: Uint8Array, slot = 0): void {
  const base = slotBase(slot);
  for (let at = base; at < base + SLOT_SIZE; at += SECTOR_SIZE) flash.eraseSector(at);
  for (let at = 0; at < image.length; at += PAGE_SIZE) flash.program(base + at, image.subarray(at, at + PAGE_SIZE));
  flash.program(base + TRAILER_BASE + SlotTrailer.Confirmed, new Uint8Array(4));
}
