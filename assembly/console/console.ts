// The console on the card's UART (docs/console.md): a banner and prompt at boot, lines
// edited by editor.ts, and the commands below. While an update's transfer owns the line,
// received bytes go to the XMODEM receiver and nothing else is printed.

import { Counter, CardRole, MAILBOX_VERSION } from "../../board/map/mailbox";
import { LinkState, LinkCipher } from "../../board/map/link";
import { SWITCH_PORTS } from "../../board/map/pcie";
import { MACSEC_DROP_REASONS, PORTS } from "../../board/map/registers";
import { BUILD_ID_SIZE, ImageHeader } from "../../board/map/image";
import * as editor from "./editor";
import * as uart from "./uart";
import * as update from "../update/update";
import * as system from "../system";
import * as config from "../link/config";
import * as link from "../link/link";
import * as keys from "../link/keys";
import * as drops from "../link/drops";
import * as paths from "../link/paths";
import { port } from "../link/port";
import * as vswitch from "../pcie/switch";
import * as clock from "../clock";
import * as log from "../log";
import { Text, textByte, textLength } from "../text";
import { count, get } from "../counters";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../version";

/** CardReg.MacsecDrops' reasons, in order, as `link` shows them. */
const DROP_NAMES: StaticArray<Text> = ["bad ICV", "late", "unknown AN", "unknown SCI", "in clear", "bad SecTAG"];
const NAMES: StaticArray<Text> = ["help", "status", "link", "counters", "slots", "log", "version", "reboot", "update"];
const HELP: StaticArray<Text> = [
  "this list",
  "card, firmware and link at a glance",
  "each link port: state, peer, MTU, round trip",
  "firmware counters that are not zero ('counters all': every one)",
  "hot-plug slots and the chassis slots behind them",
  "recent log lines",
  "firmware, mailbox and image versions",
  "reset the card",
  "receive a new image with XMODEM and boot it on trial",
];
const COUNTER_NAMES: StaticArray<Text> = [
  "EventsIn", "CommandsOut", "BytesIn", "BytesOut", "Batches", "TimersFired", "Errors", "ErrUnknownType", "ErrBadLength",
  "ErrOversize", "ErrReserved", "ErrBadField", "ErrOutOfOrder", "ErrVersion", "ErrTruncated", "FabricEvents", "ControlRx",
  "ControlTx", "ControlMalformed", "ForeignGroup", "ControlIgnored", "NegotiationFailures", "AuthFailures", "PeerRejects",
  "HandshakeTimeouts", "LinkUps", "Recoveries", "Resumes", "LinkDowns", "PeerReboots", "RtoUpdates", "TlpRx", "ConfigRequests",
  "UnsupportedRequests", "HotplugEvents", "MsiSent", "ConsoleCommands", "ConsoleErrors", "XmodemBlocks",
  "XmodemErrors", "UpdatesVerified", "UpdatesRefused", "FlashErrors", "ManageRequests", "ManageAuthFailures", "ManageReplays",
  "GroupChanges", "Releases", "StaleControl", "PathJoins", "JoinsRefused", "PathLosses", "OwnFrames",
];

// The line being run, split into words: start and length of the first two.
let at: usize = 0;
let words: i32 = 0;
let word0: i32 = 0;
let length0: i32 = 0;
let word1: i32 = 0;
let length1: i32 = 0;

export function reset(): void {
  editor.reset();
  editor.setCompletions(NAMES);
}

/** At BOOT: the banner and the first prompt. */
export function start(): void {
  uart.newline();
  uart.text("IOV card firmware ");
  firmwareVersion();
  uart.text(config.role == CardRole.Host ? " (host card, serial 0x" : " (chassis card, serial 0x");
  uart.hex(config.serial, 8);
  uart.text("), slot ");
  uart.dec(system.bootSlot);
  uart.line(system.trial ? " on trial" : "");
  uart.line("type 'help' for commands");
  editor.prompt();
}

/** UART_RX. */
export function onBytes(bytes: usize, length: i32): void {
  for (let i = 0; i < length; i++) {
    const c = load<u8>(bytes + i) as i32;
    if (update.ownsLine()) update.onByte(c);
    else if (update.state == update.State.Erasing) continue; // the transfer has not begun: typing is dropped
    else if (editor.feed(c)) run();
  }
  resumeAfterUpdate();
}

/** After the update module acted (FLASH_DONE, its timer): give the console back when it is done. */
export function resumeAfterUpdate(): void {
  if (update.takeFinished()) editor.prompt();
}

/** The trial image confirmed itself: say so (with the version in its header) without breaking the line being typed. */
export function confirmed(): void {
  if (update.ownsLine()) return;
  editor.hide();
  uart.text("update: image ");
  if (update.ownHeader() != 0) update.versionText(update.ownHeader());
  else firmwareVersion();
  uart.line(" confirmed");
  editor.prompt();
}

function run(): void {
  if (editor.overflowed()) {
    refuse();
    uart.line("line too long (80 characters at most)");
    editor.prompt();
    return;
  }
  split(editor.lineAt(), editor.lineLength());
  if (words == 0) {
    editor.prompt();
    return;
  }
  let command = -1;
  for (let i = 0; i < NAMES.length; i++) if (is(word0, length0, unchecked(NAMES[i]))) command = i;
  if (command < 0) {
    refuse();
    uart.text("unknown command '");
    uart.bytes(at + word0, length0);
    uart.line("'; type 'help' for the list");
  } else if (words > (command == 3 ? 2 : 1) || (words == 2 && !is(word1, length1, "all"))) {
    refuse();
    uart.text(unchecked(NAMES[command]));
    uart.line(command == 3 ? ": the only argument is 'all'" : ": takes no arguments");
  } else {
    count(Counter.ConsoleCommands);
    if (execute(command)) return;
  }
  editor.prompt();
}

function refuse(): void {
  count(Counter.ConsoleErrors);
}

/** Runs command `index`; true when it keeps the prompt back (an update took the line, or a reset). */
function execute(index: i32): bool {
  switch (index) {
    case 0: help(); break;
    case 1: status(); break;
    case 2: links(); break;
    case 3: counters(words == 2); break;
    case 4: slots(); break;
    case 5: log.replay(lineOut); break;
    case 6: version(); break;
    case 7:
      uart.line("rebooting");
      system.reboot();
      return true;
    case 8: return update.begin();
  }
  return false;
}

function split(line: usize, length: i32): void {
  at = line;
  words = 0;
  let i = 0;
  while (i < length) {
    while (i < length && load<u8>(line + i) == 0x20) i++;
    if (i == length) break;
    const start = i;
    while (i < length && load<u8>(line + i) != 0x20) i++;
    if (words == 0) {
      word0 = start;
      length0 = i - start;
    } else if (words == 1) {
      word1 = start;
      length1 = i - start;
    }
    words++;
  }
}

function is(start: i32, length: i32, name: Text): bool {
  if (length != textLength(name)) return false;
  for (let i = 0; i < length; i++) if ((load<u8>(at + start + i) as i32) != textByte(name, i)) return false;
  return true;
}

/** The log ring's bytes, with CR LF line ends. */
function lineOut(c: i32): void {
  if (c == 0x0a) uart.newline();
  else uart.put(c);
}

function help(): void {
  for (let i = 0; i < NAMES.length; i++) {
    uart.text("  ");
    const name = unchecked(NAMES[i]);
    uart.text(name);
    for (let pad = textLength(name); pad < 10; pad++) uart.put(0x20);
    uart.line(unchecked(HELP[i]));
  }
  uart.line("keys: Tab completes, Up/Down recall, Ctrl-A/E/B/F/K/U/W edit, Ctrl-C drops the line");
}

function firmwareVersion(): void {
  uart.dec(FIRMWARE_MAJOR);
  uart.put(0x2e);
  uart.dec(FIRMWARE_MINOR);
  uart.put(0x2e);
  uart.dec(FIRMWARE_PATCH);
}

function seconds(ns: u64): void {
  uart.dec(ns / 1_000_000_000);
  uart.put(0x2e);
  const ms = (ns / 1_000_000) % 1000;
  if (ms < 100) uart.put(0x30);
  if (ms < 10) uart.put(0x30);
  uart.dec(ms);
  uart.text(" s");
}

function status(): void {
  uart.text(config.role == CardRole.Host ? "card: host, serial 0x" : "card: chassis, serial 0x");
  uart.hex(config.serial, 8);
  uart.text(", ");
  uart.dec(config.role == CardRole.Host ? config.ports : config.slots);
  uart.line(config.role == CardRole.Host ? " link port(s)" : " slot(s)");
  uart.text("firmware: ");
  firmwareVersion();
  uart.text(", slot ");
  uart.dec(system.bootSlot);
  uart.text(system.trial ? " on trial" : "");
  uart.text(", reset ");
  uart.line(system.causeName(system.resetCause));
  uart.text("uptime: ");
  seconds(clock.now - system.bootTime);
  uart.newline();
  uart.text("link: ");
  if (!link.isStarted()) {
    uart.line(config.configured ? "disabled (waiting for entropy)" : "disabled (no link configuration)");
  } else {
    let up = 0;
    for (let i = 0; i < config.ports; i++) if (link.state(i) == LinkState.Active) up++;
    uart.dec(up);
    uart.text(" of ");
    uart.dec(config.ports);
    uart.text(" port(s) active, group ");
    uart.dec(config.group);
    uart.newline();
  }
  uart.text("errors: mailbox ");
  uart.dec(get(Counter.Errors));
  uart.text(", console ");
  uart.dec(get(Counter.ConsoleErrors));
  uart.text(", flash ");
  uart.dec(get(Counter.FlashErrors));
  uart.text(", management refused ");
  uart.dec(get(Counter.ManageAuthFailures) + get(Counter.ManageReplays));
  uart.newline();
}

function links(): void {
  if (!link.isStarted()) {
    uart.line("link: disabled");
    return;
  }
  for (let i = 0; i < config.ports; i++) {
    const p = port(i);
    uart.text("port ");
    uart.dec(i);
    uart.text(": ");
    uart.text(p.state <= LinkState.Down ? link.stateName(p.state) : "?");
    if (p.peerSerial != 0) {
      uart.text(", peer 0x");
      uart.hex(p.peerSerial, 8);
    }
    if (p.state == LinkState.Active || p.state == LinkState.Recovery) {
      uart.text(", protocol v");
      uart.dec(p.version);
      uart.text(", MTU ");
      uart.dec(p.mtu);
      uart.text(", session 0x");
      uart.hex(p.session, 8);
      uart.text(", RTT ");
      uart.dec(p.srtt);
      uart.text(" ns, RTO ");
      uart.dec(p.rto / 1000);
      uart.text(" us, MACsec ");
      uart.text(keys.cipherName(p.cipher));
      if (p.cipher != LinkCipher.Clear) {
        uart.text(", key generation ");
        uart.dec(p.txGen);
        uart.text(" out, up to ");
        uart.dec(p.rxGen);
        uart.text(" in");
      }
      uart.text(", paths");
      const on = paths.ports(i);
      for (let q = 0; q < PORTS; q++) {
        if ((on & (1 << q)) == 0) continue;
        uart.text(" eth");
        uart.dec(q);
        uart.text(q == p.ethPort ? " first" : " joined");
        if ((p.silentPaths & (1 << q)) != 0) uart.text(" silent");
        uart.text(" (RTT ");
        uart.dec(paths.figure(i, q, 0));
        uart.text(" ns, frames ");
        uart.dec(paths.figure(i, q, 1));
        uart.text(" out, ");
        uart.dec(paths.figure(i, q, 2));
        uart.text(" in, ");
        uart.dec(paths.figure(i, q, 3));
        uart.text(" resent)");
      }
    }
    uart.newline();
  }
  uart.text("Ethernet:");
  for (let q = 0; q < PORTS; q++) {
    uart.text(" eth");
    uart.dec(q);
    uart.text(paths.hasCarrier(q) ? " up" : " down");
    if (paths.looped(q)) uart.text(" (hears only this card)");
  }
  uart.newline();
  uart.text("MACsec frames dropped (read each second):");
  for (let i = 0; i < MACSEC_DROP_REASONS; i++) {
    uart.text(i == 0 ? " " : ", ");
    uart.text(unchecked(DROP_NAMES[i]));
    uart.put(0x20);
    uart.dec(drops.get(i));
  }
  uart.newline();
}

function counters(all: bool): void {
  let shown = 0;
  // A counter without a name would be left out (and the console spec fails), never read past the list.
  const named = min(Counter.Count, COUNTER_NAMES.length);
  for (let i = 0; i < named; i++) {
    const value = get(i);
    if (value == 0 && !all) continue;
    const name = unchecked(COUNTER_NAMES[i]);
    uart.text(name);
    uart.put(0x20);
    for (let pad = textLength(name); pad < 20; pad++) uart.put(0x2e);
    uart.put(0x20);
    uart.dec(value);
    uart.newline();
    shown++;
  }
  if (shown == 0) uart.line("all counters are zero");
}

function slots(): void {
  if (config.role != CardRole.Host) {
    for (let s = 0; s < config.slots; s++) {
      uart.text("slot ");
      uart.dec(s);
      uart.line((config.slotsPresent & (1 << s)) != 0 ? ": device present" : ": empty");
    }
    return;
  }
  for (let p = 1; p < SWITCH_PORTS; p++) {
    uart.text("slot ");
    uart.dec(p);
    const chassis = vswitch.chassisOf(p);
    if (chassis == 0) {
      uart.line(": empty, never bound");
      continue;
    }
    const tunnel = vswitch.boundTunnel(p);
    uart.text(tunnel >= 0 ? (vswitch.isOccupied(p) ? ": present, link up" : ": bound, no device") : ": empty");
    uart.text(tunnel >= 0 ? ", chassis 0x" : ", last chassis 0x");
    uart.hex(chassis, 8);
    uart.text(" slot ");
    uart.dec(vswitch.chassisSlotOf(p));
    if (tunnel >= 0) {
      uart.text(" via link port ");
      uart.dec(tunnel);
    }
    uart.newline();
  }
}

function version(): void {
  uart.text("firmware ");
  firmwareVersion();
  uart.text(", mailbox v");
  uart.dec(MAILBOX_VERSION);
  uart.newline();
  uart.text("image: slot ");
  uart.dec(system.bootSlot);
  uart.text(system.trial ? ", on trial" : ", confirmed");
  const header = update.ownHeader();
  if (header != 0) {
    uart.text(", version ");
    update.versionText(header);
    uart.text(", build ");
    for (let i = 0; i < BUILD_ID_SIZE; i++) uart.hex(load<u8>(header + ImageHeader.BuildId + i), 2);
  }
  uart.newline();
}
