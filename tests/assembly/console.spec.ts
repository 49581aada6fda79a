// The console on the card's UART (assembly/console/console.ts), driven through the mailbox:
// BOOT, the running image's header read (answered from a header built here), lines typed as
// UART_RX events, and the output read back from the UART_TX commands each batch ends with.
// Output is compared line by line: it is split at CR LF, so a bare LF or CR shows up inside
// a line. Line editing itself is specified in editor.spec.ts.

import * as firmware from "../../assembly/firmware";
import * as tx from "../../assembly/abi/tx";
import * as counters from "../../assembly/counters";
import { CONFIRM_AFTER_NS } from "../../assembly/system";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../../assembly/version";
import {
  Command, Counter, CardRole, BootBody, BootFlag, FlashOp, FlashStatus, FlashReadBody, FlashEraseBody,
  MAILBOX_VERSION, UartTxBody,
} from "../../board/map/mailbox";
import { CardReg, BootCommand } from "../../board/map/registers";
import { SWITCH_PORTS } from "../../board/map/pcie";
import { SLOT_SECTORS, slotBase } from "../../board/map/flash";
import { IMAGE_MAGIC, ImageHeader, BUILD_ID_SIZE } from "../../board/map/image";
import {
  deliver, sent, set8, bootEvent, timeEvent, syncEvent, timerFiredEvent, uartRxEvents, ascii,
  flashDoneEvent, regValueEvent, regWritesTo, uartBytesOf, textOf, expectText,
} from "./helpers";

const SECOND: u64 = 1_000_000_000;
const BOOT_TIME: u64 = 5 * SECOND;
const VERSION = FIRMWARE_MAJOR.toString() + "." + FIRMWARE_MINOR.toString() + "." + FIRMWARE_PATCH.toString();
const PROMPT = "iov> ";
/** The version in the running image's header: the console shows it, not the firmware's own, for the image. */
const IMAGE_PATCH = FIRMWARE_PATCH + 3;
const IMAGE_VERSION = FIRMWARE_MAJOR.toString() + "." + FIRMWARE_MINOR.toString() + "." + IMAGE_PATCH.toString();

let seq: u32 = 0;
let now: u64 = BOOT_TIME;
let output = ""; // what the card sent on its UART, not yet taken
let bootControl = new Array<u32>();
let erases = new Array<u32>(); // FLASH_ERASE addresses
let eraseSectors = 0; // of the last one
let answerFlash = true;
const header = new Array<u8>(ImageHeader.Size); // the running image's header, served to FLASH_READ

function fresh(): void {
  firmware.reset();
  tx.discard();
  seq = 0;
  now = BOOT_TIME;
  output = "";
  bootControl = new Array<u32>();
  erases = new Array<u32>();
  eraseSectors = 0;
  answerFlash = true;
  header.fill(0);
  for (let i = 0; i < 4; i++) header[ImageHeader.Magic + i] = (IMAGE_MAGIC >> (8 * i)) as u8;
  header[ImageHeader.Major] = FIRMWARE_MAJOR as u8;
  header[ImageHeader.Minor] = FIRMWARE_MINOR as u8;
  header[ImageHeader.Patch] = IMAGE_PATCH as u8;
  header[ImageHeader.Patch + 1] = (IMAGE_PATCH >> 8) as u8;
  for (let i = 0; i < BUILD_ID_SIZE; i++) header[ImageHeader.BuildId + i] = (0xb0 + i) as u8;
}

/**
 * Runs a batch at `now` with `events`, and the batch that answers a header read it sent.
 * Collects the UART output and the BootControl writes; the firmware must not report an ERROR.
 */
function run(events: u8[]): void {
  tx.discard();
  deliver(timeEvent(now).concat(events).concat(syncEvent(seq++)));
  firmware.handleAll();
  const out = sent();
  expect(out[out.length - 1].type).toBe(Command.SyncAck, "the batch ends with SYNC_ACK");
  output += textOf(uartBytesOf(out));
  const writes = regWritesTo(out, CardReg.BootControl);
  for (let i = 0; i < writes.length; i++) bootControl.push(writes[i]);
  let answer = new Array<u8>();
  for (let i = 0; i < out.length; i++) {
    const command = out[i];
    expect(command.type).not.toBe(Command.Error, "no ERROR");
    if (command.type == Command.FlashErase) {
      erases.push(command.u32(FlashEraseBody.Address));
      eraseSectors = command.u16(FlashEraseBody.Sectors);
    }
    if (command.type != Command.FlashRead || !answerFlash) continue;
    expect(command.u16(FlashReadBody.Length)).toBe(ImageHeader.Size, "a header read");
    answer = flashDoneEvent(FlashOp.Read, FlashStatus.Ok, command.u32(FlashReadBody.Address), header);
  }
  if (answer.length > 0) run(answer);
}

function boot(event: u8[] = bootEvent()): void {
  run(event);
  expect(firmware.isBooted()).toBe(true, "booted");
}

/** What the card sent since the last call, split at CR LF (the last element is what follows the last CR LF). */
function take(): string[] {
  const lines = output.split("\r\n");
  output = "";
  return lines;
}

/** Boots, drops the banner, and types `line` then Enter; returns the output, the echo first. */
function command(line: string, event: u8[] = bootEvent()): string[] {
  boot(event);
  take();
  return type(line);
}

/** Types `line` then Enter; returns the output, the echo first. */
function type(line: string): string[] {
  run(uartRxEvents(ascii(line + "\r")));
  return take();
}

function repeat(s: string, n: i32): string {
  let out = "";
  for (let i = 0; i < n; i++) out += s;
  return out;
}

function chassisBoot(slots: i32): u8[] {
  return set8(set8(bootEvent(), BootBody.Role, CardRole.Chassis), BootBody.Slots, slots);
}

function trialBoot(slot: i32): u8[] {
  return set8(set8(bootEvent(), BootBody.BootSlot, slot), BootBody.BootFlags, BootFlag.Trial);
}

function expectCounted(commands: u32, errors: u32): void {
  expect(counters.get(Counter.ConsoleCommands)).toBe(commands, "ConsoleCommands");
  expect(counters.get(Counter.ConsoleErrors)).toBe(errors, "ConsoleErrors");
}

describe("console: at BOOT", () => {
  beforeEach(fresh);

  it("prints the banner and the first prompt", () => {
    boot();
    expect(take()).toStrictEqual([
      "",
      "IOV card firmware " + VERSION + " (host card, serial 0x10000001), slot 0",
      "type 'help' for commands",
      PROMPT,
    ]);
  });

  it("names a chassis card, and the slot of an image on trial", () => {
    boot(set8(chassisBoot(2), BootBody.BootSlot, 1));
    expect(take()[1]).toBe("IOV card firmware " + VERSION + " (chassis card, serial 0x10000001), slot 1");
    fresh();
    boot(trialBoot(1));
    expect(take()[1]).toBe("IOV card firmware " + VERSION + " (host card, serial 0x10000001), slot 1 on trial");
  });

  it("sends its output as UART_TX commands at the end of the batch, before SYNC_ACK", () => {
    tx.discard();
    deliver(timeEvent(BOOT_TIME).concat(bootEvent()));
    firmware.handleAll();
    expect(uartBytesOf(sent()).length).toBe(0, "nothing before the SYNC");
    tx.discard();
    deliver(syncEvent(0));
    firmware.handleAll();
    const out = sent();
    const last = out.length - 1;
    expect(out[last].type).toBe(Command.SyncAck);
    expect(out[last - 1].type).toBe(Command.UartTx);
    expect(out[last - 1].length).toBeLessThanOrEqual(UartTxBody.MaxSize);
    expectText(textOf(uartBytesOf(out)), "type 'help' for commands\r\n" + PROMPT);
  });
});

describe("console: commands", () => {
  beforeEach(fresh);

  it("help lists every command, then the keys", () => {
    const lines = command("help");
    const names: string[] = ["help", "status", "link", "counters", "slots", "log", "version", "reboot", "update"];
    expect(lines.length).toBe(1 + names.length + 2);
    expect(lines[0]).toBe("help", "the echo");
    expect(lines[1]).toBe("  help      this list");
    for (let i = 0; i < names.length; i++) {
      const padded = names[i] + repeat(" ", 10 - names[i].length);
      expect(lines[1 + i].startsWith("  " + padded)).toBe(true, lines[1 + i]);
      expect(lines[1 + i].length).toBeGreaterThan(2 + 10, "a description for " + names[i]);
    }
    expect(lines[1 + names.length]).toBe("keys: Tab completes, Up/Down recall, Ctrl-A/E/B/F/K/U/W edit, Ctrl-C drops the line");
    expect(lines[2 + names.length]).toBe(PROMPT);
    expectCounted(1, 0);
  });

  it("status shows the card, the firmware, the uptime, the link and the error counts", () => {
    boot();
    take();
    now = BOOT_TIME + 7_000_000; // 7 ms after BOOT
    expect(type("status")).toStrictEqual([
      "status",
      "card: host, serial 0x10000001, 1 link port(s)",
      "firmware: " + VERSION + ", slot 0, reset power-on",
      "uptime: 0.007 s",
      "link: disabled (no link configuration)",
      "errors: mailbox 0, console 0, flash 0, management refused 0",
      PROMPT,
    ]);
  });

  it("status of a chassis card on trial after a watchdog reset counts its slots and errors", () => {
    const event = set8(set8(chassisBoot(3), BootBody.ResetCause, 1), BootBody.BootSlot, 1);
    boot(set8(event, BootBody.BootFlags, BootFlag.Trial));
    take();
    type("bogus");
    now = BOOT_TIME + 61 * SECOND + 250_000_000;
    const lines = type("status");
    expect(lines[1]).toBe("card: chassis, serial 0x10000001, 3 slot(s)");
    expect(lines[2]).toBe("firmware: " + VERSION + ", slot 1 on trial, reset watchdog");
    expect(lines[3]).toBe("uptime: 61.250 s"); // counted from BOOT, not from the card's clock
    expect(lines[5]).toBe("errors: mailbox 0, console 1, flash 0, management refused 0");
  });

  it("link says the link is disabled before it starts", () => {
    expect(command("link")).toStrictEqual(["link", "link: disabled", PROMPT]);
  });

  it("counters shows the counters that are not zero, with their names", () => {
    const lines = command("counters");
    expect(lines[0]).toBe("counters");
    expect(lines[lines.length - 1]).toBe(PROMPT);
    // This command is counted before it runs; nothing has failed.
    const shown = lines.slice(1, lines.length - 1);
    expect(shown).toContain("ConsoleCommands ..... 1");
    expect(shown[0].startsWith("EventsIn ............ ")).toBe(true, shown[0]);
    for (let i = 0; i < shown.length; i++) {
      expect(shown[i].endsWith(" 0")).toBe(false, "a zero counter: " + shown[i]);
      expect(shown[i].startsWith("Errors ")).toBe(false, "Errors is zero");
    }
  });

  it("counters all shows every counter in order, zeros included", () => {
    const lines = command("counters all");
    expect(lines.length).toBe(1 + Counter.Count + 1);
    expect(lines[1 + Counter.EventsIn].startsWith("EventsIn ............ ")).toBe(true, lines[1 + Counter.EventsIn]);
    expect(lines[1 + Counter.Errors]).toBe("Errors .............. 0");
    expect(lines[1 + Counter.ConsoleCommands]).toBe("ConsoleCommands ..... 1");
    expect(lines[1 + Counter.FlashErrors]).toBe("FlashErrors ......... 0");
    expect(lines[1 + Counter.Count]).toBe(PROMPT);
  });

  it("counters refuses any argument but 'all'", () => {
    expect(command("counters foo")).toStrictEqual(["counters foo", "counters: the only argument is 'all'", PROMPT]);
    expect(type("counters all all")).toStrictEqual(["counters all all", "counters: the only argument is 'all'", PROMPT]);
    expectCounted(0, 2);
  });

  it("slots of a host card lists the downstream ports, none bound yet", () => {
    const lines = command("slots");
    expect(lines.length).toBe(1 + (SWITCH_PORTS - 1) + 1);
    for (let p = 1; p < SWITCH_PORTS; p++) expect(lines[p]).toBe("slot " + p.toString() + ": empty, never bound");
    expect(lines[SWITCH_PORTS]).toBe(PROMPT);
  });

  it("slots of a chassis card shows which slots hold a device, as the fabric reported", () => {
    boot(chassisBoot(3));
    run(regValueEvent(CardReg.SlotsPresent, 0b101));
    take();
    expect(type("slots")).toStrictEqual(["slots", "slot 0: device present", "slot 1: empty", "slot 2: device present", PROMPT]);
  });

  it("version shows the firmware, the mailbox and the running image's slot, version and build", () => {
    let build = "";
    for (let i = 0; i < BUILD_ID_SIZE; i++) build += (0xb0 + i).toString(16);
    expect(command("version")).toStrictEqual([
      "version",
      "firmware " + VERSION + ", mailbox v" + MAILBOX_VERSION.toString(),
      "image: slot 0, confirmed, version " + IMAGE_VERSION + ", build " + build,
      PROMPT,
    ]);
    fresh();
    expect(command("version", trialBoot(1))[2]).toBe("image: slot 1, on trial, version " + IMAGE_VERSION + ", build " + build);
  });

  it("version leaves the image's version and build out until its header is read", () => {
    answerFlash = false;
    expect(command("version")[2]).toBe("image: slot 0, confirmed");
  });

  it("log shows the remembered log records, each line ending in CR LF", () => {
    const lines = command("log");
    expect(lines[0]).toBe("log");
    expect(lines[1]).toBe(
      "[    5.000000] I boot: firmware " + VERSION + ", mailbox v" + MAILBOX_VERSION.toString()
      + ", host card, serial 0x10000001, 1 port(s), reset power-on, image slot 0",
    );
    expect(lines[lines.length - 1]).toBe(PROMPT);
  });

  it("log shows the last records, whole lines only, once older ones are forgotten", () => {
    boot();
    for (let s: u64 = 1; s <= 30; s++) {
      now = BOOT_TIME + s * SECOND;
      run(timerFiredEvent(0));
    }
    const events = counters.get(Counter.EventsIn) - 1; // at the last heartbeat: its batch's SYNC came after
    take();
    const lines = type("log");
    const records = lines.slice(1, lines.length - 1);
    expect(records.length).toBeGreaterThan(2);
    for (let i = 0; i < records.length; i++) {
      expect(records[i].startsWith("[")).toBe(true, "a whole record: " + records[i]);
      expect(records[i].includes("\n") || records[i].includes("\r")).toBe(false, "CR LF line ends only: " + records[i]);
    }
    expect(records[0].includes("I boot: firmware")).toBe(false, "the boot record is forgotten");
    expect(records[records.length - 2]).toBe("[   35.000000] I heartbeat: " + events.toString() + " events, 31 batches, 0 errors");
    expect(records[records.length - 1]).toBe("[   35.000000] W link: disabled, no link configuration (CONFIG)");
  });

  it("reboot asks the boot ROM for a reset and gives no prompt", () => {
    expect(command("reboot")).toStrictEqual(["reboot", "rebooting", ""]);
    expect(bootControl).toStrictEqual([BootCommand.Reboot as u32]);
    expectCounted(1, 0);
  });

  it("update erases the inactive slot and keeps the prompt back", () => {
    expect(command("update")).toStrictEqual(["update", "update: erasing slot 1 (64 KiB)", ""]);
    expect(erases).toStrictEqual([slotBase(1) as u32]);
    expect(eraseSectors).toBe(SLOT_SECTORS);
  });

  it("runs a command among spaces", () => {
    expect(command("   link   ")).toStrictEqual(["   link   ", "link: disabled", PROMPT]);
    expectCounted(1, 0);
  });
});

describe("console: refused lines", () => {
  beforeEach(fresh);

  it("names an unknown command", () => {
    expect(command("frobnicate now")).toStrictEqual(["frobnicate now", "unknown command 'frobnicate'; type 'help' for the list", PROMPT]);
    expectCounted(0, 1);
  });

  it("refuses arguments to a command that takes none", () => {
    const names: string[] = ["help", "status", "link", "slots", "log", "version", "reboot", "update"];
    boot();
    take();
    for (let i = 0; i < names.length; i++) {
      expect(type(names[i] + " now")).toStrictEqual([names[i] + " now", names[i] + ": takes no arguments", PROMPT]);
    }
    expectCounted(0, names.length);
    expect(bootControl.length).toBe(0, "no reboot");
    expect(erases.length).toBe(0, "no update");
  });

  it("refuses a line of 81 characters as too long, and runs one of 80", () => {
    boot();
    take();
    const long = type(repeat("x", 81));
    expect(long[long.length - 2]).toBe("line too long (80 characters at most)");
    expect(long[long.length - 1]).toBe(PROMPT);
    const fits = type(repeat("x", 80));
    expect(fits[fits.length - 2]).toBe("unknown command '" + repeat("x", 80) + "'; type 'help' for the list");
    expectCounted(0, 2);
  });

  it("refuses a long line even when it starts with a command", () => {
    boot();
    take();
    const long = type("status" + repeat(" ", 80));
    expect(long[long.length - 2]).toBe("line too long (80 characters at most)");
    expectCounted(0, 1);
  });

  it("gives a new prompt for an empty line, counting nothing", () => {
    expect(command("")).toStrictEqual(["", PROMPT]);
    expect(type("    ")).toStrictEqual(["    ", PROMPT]);
    expectCounted(0, 0);
  });

  it("counts commands run and lines refused", () => {
    boot();
    take();
    type("help");
    type("nope");
    type("status now");
    type("");
    type("counters foo");
    type(repeat("y", 90));
    type("version");
    type("counters all");
    expectCounted(3, 4);
    expect(type("status")[5]).toBe("errors: mailbox 0, console 4, flash 0, management refused 0");
  });
});

describe("console: the trial's confirmation", () => {
  beforeEach(fresh);

  it("says the image is confirmed without losing the line being typed", () => {
    boot(trialBoot(1));
    take();
    run(uartRxEvents(ascii("sta")));
    expect(take()).toStrictEqual(["sta"]);
    now = BOOT_TIME + CONFIRM_AFTER_NS;
    run(timerFiredEvent(0));
    expect(take()).toStrictEqual(["\r\x1b[Jupdate: image " + IMAGE_VERSION + " confirmed", PROMPT + "sta"]);
    expect(bootControl).toStrictEqual([(BootCommand.Confirm | (1 << 8)) as u32]);
    expect(type("tus")[1]).toBe("card: host, serial 0x10000001, 1 link port(s)");
  });

  it("names the firmware's version when the image's header could not be read", () => {
    answerFlash = false;
    boot(trialBoot(1));
    take();
    now = BOOT_TIME + CONFIRM_AFTER_NS;
    run(timerFiredEvent(0));
    expect(take()).toStrictEqual(["\r\x1b[Jupdate: image " + VERSION + " confirmed", PROMPT]);
  });

  it("is quiet for an image that is not on trial", () => {
    boot();
    take();
    now = BOOT_TIME + 2 * CONFIRM_AFTER_NS;
    run(timerFiredEvent(0));
    expect(take()).toStrictEqual([""]);
  });
});
