// `iov manage`: the management station on the command line (docs/management.md). It finds
// the cards on the management VLAN, reports on one, and moves one to another group, through
// a FrameTransport (`--net tcp://HOST:PORT`: a QEMU-style frame stream, such as
// `iov sim --manage`), authenticated with the installation's admin key.

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { LinkState, ManageStatus } from "../../board/map/link.ts";
import { BootFlag, CardRole } from "../../board/map/mailbox.ts";
import { formatMac } from "../../board/ethernet/frame.ts";
import { formatFirmware, formatSerial, MACSEC_DROP_NAMES, REPLY_COUNTER_NAMES, type ManageReply, type PortPaths } from "../../board/manage-codec.ts";
import { ManageClient, ManageError, wallClock } from "../manage/client.ts";
import { NetSpecError, openTransport, type StreamTransport } from "../manage/transport.ts";
import { adminKey } from "../sim/scenarios.ts";
import { CliError } from "./args.ts";

export interface ManageFlags {
  net: string;
  installation?: string;
  keyFile?: string;
  vlan: number;
  /** discover: how long to collect answers; status, assign: how long each try waits. */
  timeout: number;
  json?: boolean;
}

export interface AssignFlags extends ManageFlags {
  group: number;
  /** How long to wait for the card to report the new group (and a chassis card's link to be active again). */
  wait: number;
}

export const TRY_TIMEOUT_MS = 200;
/** How often `assign` asks for the card's status while it waits. */
const POLL_MS = 250;

/** The admin key: --key-file (64 hex digits) or --installation (a simulated installation's). */
function keyOf(flags: ManageFlags, command: Command): Uint8Array {
  if (flags.installation !== undefined) return adminKey(flags.installation);
  if (flags.keyFile === undefined) {
    command.error("error: no admin key: pass --key-file FILE (64 hex digits) or, for a simulated installation, --installation NAME", { exitCode: 2, code: "commander.missingKey" });
  }
  let text: string;
  try {
    text = readFileSync(flags.keyFile!, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read key file '${flags.keyFile}': ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : code ?? (error as Error).message}`);
  }
  const hex = text.trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new CliError(`key file '${flags.keyFile}': expected the 32-byte admin key as 64 hex digits`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** A station client on the --net transport, with the admin key and VLAN of the flags. */
export async function openClient(flags: ManageFlags, command: Command, tryMs: number): Promise<{ client: ManageClient; transport: StreamTransport }> {
  const key = keyOf(flags, command);
  let transport: StreamTransport;
  try {
    transport = await openTransport(flags.net);
  } catch (error) {
    throw error instanceof NetSpecError ? new CliError(error.message) : error;
  }
  return { client: new ManageClient({ transport, clock: wallClock, key, vlan: flags.vlan, tryMs }), transport };
}

/** Why the --net transport closed, as the one line a command fails with. */
export function connectionLost(transport: StreamTransport, error: Error | undefined): CliError {
  return new CliError(error ? error.message : `${transport.name}: the connection was closed by the other end`);
}

/** Runs `work` with a client on the --net transport; a connection that ends first is a failure. */
async function withClient<T>(flags: ManageFlags, command: Command, tryMs: number, work: (client: ManageClient) => Promise<T>): Promise<T> {
  const { client, transport } = await openClient(flags, command, tryMs);
  let closedByUs = false;
  const lost = new Promise<never>((_, reject) => transport.onClose((error) => {
    if (!closedByUs) reject(connectionLost(transport, error));
  }));
  lost.catch(() => {});
  try {
    return await Promise.race([work(client), lost]);
  } finally {
    closedByUs = true;
    client.close();
  }
}

/** A failure whose --json document is already on stdout. */
class Reported extends CliError {}

/** A failure: one line on stderr (through CliError) and, with --json, the document on stdout. */
function fail(flags: ManageFlags, document: Record<string, unknown>, message: string): never {
  if (flags.json) printJson({ ...document, ok: false, error: message });
  throw new Reported(message);
}

/** What a failed command reports: a card's refusal or silence, a connection or key problem. */
function managed(flags: ManageFlags, command: string, error: unknown): never {
  if (error instanceof Reported) throw error;
  if (error instanceof ManageError) {
    fail(flags, { command, serial: formatSerial(error.serial), ...(error.status !== undefined ? { status: statusName(error.status) } : {}) }, error.message);
  }
  if (error instanceof CliError) fail(flags, { command }, error.message);
  throw error;
}

export async function runDiscover(flags: ManageFlags, command: Command): Promise<void> {
  const { cards, client } = await withClient(flags, command, TRY_TIMEOUT_MS, async (client) => ({ cards: await client.discover(flags.timeout), client }))
    .catch((error) => managed(flags, "discover", error));
  const ignored = { badTags: client.stats.badTags, unexpected: client.stats.unexpected, malformed: client.stats.malformed };
  const note = ignored.badTags ? `; ${ignored.badTags} reply(ies) with a bad tag ignored (another admin key?)` : "";
  if (cards.length === 0) {
    fail(flags, { command: "discover", cards: [], ignored },
      `no card answered within ${flags.timeout} ms on VLAN ${flags.vlan} of ${flags.net}${note || " (wrong admin key or VLAN? cards not on?)"}`);
  }
  if (flags.json) {
    printJson({ command: "discover", ok: true, cards: cards.map(cardJson), ignored });
    return;
  }
  process.stdout.write(discoverTable(cards) + "\n");
  process.stdout.write(`${cards.length} card(s) answered within ${flags.timeout} ms${note}\n`);
}

export async function runStatus(serial: number, flags: ManageFlags, command: Command): Promise<void> {
  const card = await withClient(flags, command, flags.timeout, (client) => client.status(serial)).catch((error) => managed(flags, "status", error));
  if (flags.json) printJson({ command: "status", ok: true, card: cardJson(card) });
  else process.stdout.write(statusText(card) + "\n");
}

export async function runAssign(serial: number, flags: AssignFlags, command: Command): Promise<void> {
  if (flags.group === flags.vlan) command.error(`error: group ${flags.group} is the management VLAN`, { exitCode: 2, code: "commander.badGroup" });
  const say = flags.json ? () => {} : (line: string) => process.stdout.write(line + "\n");
  const outcome = await withClient(flags, command, flags.timeout, async (client) => {
    const before = await client.status(serial);
    const from = before.group;
    const chassis = before.sender.role === CardRole.Chassis;
    if (from === flags.group) {
      say(`card ${formatSerial(serial)} (${roleName(before.sender.role)}) is already in group ${from}; nothing to do`);
      return { from, changed: false, link: linkSummary(before), waitedMs: 0, card: before, linkUp: true };
    }
    say(`card ${formatSerial(serial)} (${roleName(before.sender.role)}): group ${from} -> ${flags.group}`);
    const started = Date.now();
    await client.setGroup(serial, flags.group, Math.max(flags.wait, 2000));
    say("  the card took the new group (written to its flash) and is moving");
    // Until the card reports the new group (it reports the old one while it hands its slots
    // back) and, for a chassis card, a session with a host card again: after its old session
    // ended, or with another host card.
    const oldPeer = before.linkStates[0] === LinkState.Active ? before.peerSerials[0] : 0;
    let left = oldPeer === 0;
    const linked = (r: ManageReply) => !chassis || flags.wait === 0 ||
      (r.linkStates[0] === LinkState.Active && r.peerSerials[0] !== 0 && (left || r.peerSerials[0] !== oldPeer));
    const deadline = started + flags.wait;
    let card = before;
    let shown = `group ${before.group}, link ${linkSummary(before)}`;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      card = await client.status(serial);
      if (card.linkStates[0] !== LinkState.Active || card.peerSerials[0] !== oldPeer) left = true;
      const now = `group ${card.group}, link ${linkSummary(card)}`;
      if (now !== shown) say(`  ${((Date.now() - started) / 1000).toFixed(1)} s: ${now}`);
      shown = now;
      if ((card.group === flags.group && linked(card)) || Date.now() >= deadline) break;
    }
    return { from, changed: true, link: linkSummary(card), waitedMs: Date.now() - started, card, linkUp: linked(card) };
  }).catch((error) => managed(flags, "assign", error));
  const document = {
    command: "assign", serial: formatSerial(serial), from: outcome.from, to: flags.group, changed: outcome.changed,
    link: outcome.link, waitedMs: outcome.waitedMs, card: cardJson(outcome.card),
  };
  if (outcome.card.group !== flags.group) {
    fail(flags, document, `card ${formatSerial(serial)} still reports group ${outcome.card.group} after ${flags.wait} ms`);
  }
  if (!outcome.linkUp) {
    fail(flags, document, `card ${formatSerial(serial)} is in group ${flags.group}, but its link was not active with a host card within ${flags.wait} ms ` +
      `(${outcome.link}); is a host card in group ${flags.group}?`);
  }
  if (flags.json) printJson({ ...document, ok: true });
  else if (outcome.changed) say(`card ${formatSerial(serial)} is in group ${flags.group}${outcome.card.sender.role === CardRole.Chassis && flags.wait > 0 ? `, link active with host card ${formatSerial(outcome.card.peerSerials[0])}` : ""} after ${(outcome.waitedMs / 1000).toFixed(1)} s`);
}

function printJson(document: unknown): void {
  process.stdout.write(JSON.stringify(document, null, 2) + "\n");
}

const roleName = (role: number) => (role === CardRole.Host ? "host" : role === CardRole.Chassis ? "chassis" : `role ${role}`);
const stateName = (state: number) => LinkState[state]?.toLowerCase() ?? `state ${state}`;
const statusName = (status: number) => ManageStatus[status]?.replace(/^./, (c) => c.toLowerCase()) ?? `status ${status}`;

/** Slot numbers of a SlotsPresent bit mask. */
function slotList(mask: number): number[] {
  const slots: number[] = [];
  for (let s = 0; s < 8; s++) if (mask & (1 << s)) slots.push(s);
  return slots;
}

function linkSummary(r: ManageReply): string {
  if (r.ports === 0) return "no link ports";
  return r.linkStates.map((state, p) => `${r.ports > 1 ? `${p}:` : ""}${stateName(state)}${r.peerSerials[p] ? ` ${formatSerial(r.peerSerials[p])}` : ""}`).join(", ");
}

/** A card as `--json` shows it. */
export function cardJson(r: ManageReply) {
  return {
    serial: formatSerial(r.sender.serial),
    role: roleName(r.sender.role),
    mac: formatMac(r.source),
    bootId: formatSerial(r.sender.bootId),
    firmware: formatFirmware(r.firmware),
    group: r.group,
    boot: { slot: r.bootSlot, trial: (r.bootFlags & BootFlag.Trial) !== 0, flags: r.bootFlags },
    slots: r.slots,
    slotsPresent: slotList(r.slotsPresent),
    ports: r.linkStates.map((state, port) => ({
      port, state: stateName(state), peer: r.peerSerials[port] ? formatSerial(r.peerSerials[port]) : null,
      paths: r.paths ? r.paths[port].on.map((ethernet) => ({ ethernet, silent: r.paths![port].silent.includes(ethernet), ...healthJson(r.paths![port], ethernet) })) : null,
    })),
    counters: { ...r.counters },
    macsecDrops: r.macsecDrops ? { ...r.macsecDrops } : null,
  };
}

const COUNTER_LABELS: Record<(typeof REPLY_COUNTER_NAMES)[number], string> = {
  linkUps: "link ups", linkDowns: "link downs", recoveries: "recoveries", authFailures: "auth failures",
  hotplugEvents: "hot-plug events", manageRequests: "management requests", manageAuthFailures: "refused: bad tag", manageReplays: "refused: replayed or stale",
};

const DROP_LABELS: Record<(typeof MACSEC_DROP_NAMES)[number], string> = {
  badIcv: "bad ICV", late: "late", unknownAn: "unknown AN", unknownSci: "unknown SCI", inClear: "in clear", badTag: "bad SecTAG",
};

/** The MACsec drops a reply reports, or why there are none. */
function dropsText(r: ManageReply): string {
  const d = r.macsecDrops;
  if (!d) return "MACsec frames dropped: not reported by this firmware";
  return `MACsec frames dropped (as the card read them within the last second): ${MACSEC_DROP_NAMES.map((name) => `${DROP_LABELS[name]} ${d[name]}`).join(", ")}`;
}

/** All the MACsec drops of a reply, or "-" when the firmware reports none. */
function dropsTotal(r: ManageReply): string {
  return r.macsecDrops ? String(MACSEC_DROP_NAMES.reduce((n, name) => n + r.macsecDrops![name], 0)) : "-";
}

/** A path's figures for --json: null each from a firmware that reports none. */
function healthJson(p: PortPaths, ethernet: number): { rttNs: number | null; txFrames: number | null; rxFrames: number | null; resent: number | null } {
  const h = p.health?.[ethernet];
  return { rttNs: h ? h.rttNs : null, txFrames: h ? h.txFrames : null, rxFrames: h ? h.rxFrames : null, resent: h ? h.resent : null };
}

/**
 * A port's session paths as the reply says, with each path's round trip and the share of its
 * frames sent again: `, paths eth0 (RTT 4.8 us, 4186 frames out, 3 resent: 0.07 %), eth1 silent (…)`;
 * nothing without a session; no figures from a firmware that reports none.
 */
function pathsText(r: ManageReply, port: number): string {
  const p = r.paths?.[port];
  if (!p || p.on.length === 0) return "";
  const figures = (e: number) => {
    const h = p.health?.[e];
    if (!h) return "";
    const share = h.txFrames > 0 ? `: ${((100 * h.resent) / h.txFrames).toFixed(2)} %` : "";
    return ` (RTT ${h.rttNs ? `${(h.rttNs / 1000).toFixed(1)} us` : "not measured yet"}, ${h.txFrames} frames out, ${h.rxFrames} in, ${h.resent} resent${share})`;
  };
  return `, paths ${p.on.map((e) => `eth${e}${p.silent.includes(e) ? " silent" : ""}${figures(e)}`).join(", ")}`;
}

function bootText(r: ManageReply): string {
  return `slot ${r.bootSlot}${r.bootFlags & BootFlag.Trial ? " on trial" : ""}`;
}

function slotsText(r: ManageReply): string {
  if (r.sender.role !== CardRole.Chassis) return `${r.slots} port(s)`;
  const present = slotList(r.slotsPresent);
  return `${r.slots}, ${present.length ? `device in ${present.join(" ")}` : "empty"}`;
}

/** One line per card under a header, columns as wide as their widest cell. */
export function discoverTable(cards: ManageReply[]): string {
  const header = ["ROLE", "SERIAL", "MAC", "FIRMWARE", "BOOT", "GROUP", "SLOTS", "LINK (STATE PEER)", "UPS", "DOWNS", "AUTHFAIL", "REFUSED", "MACSEC DROPS"];
  const rows = cards.map((r) => [
    roleName(r.sender.role), formatSerial(r.sender.serial), formatMac(r.source), formatFirmware(r.firmware), bootText(r), String(r.group),
    slotsText(r), linkSummary(r), String(r.counters.linkUps), String(r.counters.linkDowns), String(r.counters.authFailures), String(r.counters.manageAuthFailures + r.counters.manageReplays),
    dropsTotal(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  return [header, ...rows].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join("  ")).join("\n");
}

/** `iov manage status`: the card's report in a few lines. */
export function statusText(r: ManageReply): string {
  const chassis = r.sender.role === CardRole.Chassis;
  return [
    `card ${formatSerial(r.sender.serial)}: ${roleName(r.sender.role)}, MAC ${formatMac(r.source)}, boot ID ${formatSerial(r.sender.bootId)}`,
    `firmware: ${formatFirmware(r.firmware)}, ${bootText(r)}`,
    `group: ${r.group}`,
    chassis ? `slots: ${slotsText(r)}` : `downstream ports: ${r.slots}`,
    ...(r.ports === 0 ? ["link: no link ports"] : r.linkStates.map((state, p) => `link port ${p}: ${stateName(state)}${r.peerSerials[p] ? `, peer ${formatSerial(r.peerSerials[p])}` : ""}${pathsText(r, p)}`)),
    `counters: ${REPLY_COUNTER_NAMES.map((name) => `${COUNTER_LABELS[name]} ${r.counters[name]}`).join(", ")}`,
    dropsText(r),
  ].join("\n");
}
