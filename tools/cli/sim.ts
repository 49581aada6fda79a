import { writeFileSync } from "node:fs";
import { SCENARIOS, type Scenario } from "../sim/scenarios.ts";
import { loadScenarioFile } from "../sim/scenario-file.ts";
import { ScenarioError } from "../sim/scenario-check.ts";
import { World, captureFile } from "../sim/world.ts";
import { TIMELINE_HEADER } from "../sim/timeline.ts";
import type { RunSummary, MacsecSummary } from "../sim/summary.ts";
import { CliError, engineOptions, type EngineFlags } from "./args.ts";
import { FlashFileError } from "../../board/flash.ts";
import { FaultCell, UnknownFamily, family, formatVerdict } from "../sim/faults.ts";
import { STUDIES, isStudyFile, loadStudy, runStudyReport, type Study } from "../sim/study-file.ts";
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { MacsecSetting } from "../../board/map/mailbox.ts";
import { DISSECTOR } from "../paths.ts";

export interface SimFlags extends EngineFlags {
  scenario: string;
  list?: boolean;
  seed: number;
  duration?: number;
  record?: string;
  summary?: string;
  pcap?: string;
  keylog?: string;
  screenshot?: string;
  lspci?: string;
  verbose?: boolean;
  quiet?: boolean;
  /** true: ports the system picks; a number: the first port. */
  console?: boolean | number;
  /** The management port: true: a port the system picks; a number: that port. */
  manage?: boolean | number;
  flashDir?: string;
  softcoreMhz: number;
  /** A fault family: run its cell for --seed (tools/sim/faults.ts). */
  fault?: string;
}

/** A value of --scenario that names a file rather than a built-in scenario: one ending in .json, or with a / in it. */
export function isScenarioFile(value: string): boolean {
  return value.endsWith(".json") || value.includes("/");
}

/** The scenario --scenario names: a scenario file (docs/scenarios.md), or a built-in scenario. */
export function resolveScenario(value: string): Scenario {
  if (isScenarioFile(value)) {
    try {
      return loadScenarioFile(value);
    } catch (error) {
      if (error instanceof ScenarioError) throw new CliError(error.message);
      throw error;
    }
  }
  if (!Object.hasOwn(SCENARIOS, value)) throw new CliError(`unknown scenario '${value}'; built-in: ${Object.keys(SCENARIOS).join(", ")} (or a scenario file, PATH.json)`);
  return SCENARIOS[value];
}

/** `iov sim --list`: the built-in scenarios, one per line with what it shows, then the fabric studies. */
export function listScenarios(): string {
  const names = Object.keys(SCENARIOS);
  const width = Math.max(...names.map((n) => n.length), ...Object.keys(STUDIES).map((n) => n.length));
  return names.map((name) => {
    const s = SCENARIOS[name];
    return `${name.padEnd(width)}  ${(s.durationNs / 1e9).toString().padStart(6)} s  ${s.cards.length} cards, ${s.servers.length} server(s)${s.management ? ", management station" : ""}: ${s.description}`;
  }).join("\n") + "\n\nfabric studies (the data path as the firmware programs it, without firmware; docs/congestion.md):\n" +
    Object.values(STUDIES).map((s) => `${s.name.padEnd(width)}  ${s.description}`).join("\n") +
    "\n\nor a scenario file: iov sim --scenario PATH.json (docs/scenarios.md; scenarios/lab.json to start from),\nor a leaf-spine file: iov sim --scenario PATH.json (docs/congestion.md; scenarios/leaf-spine.json to start from)\n";
}

/** The fabric study --scenario names, if it names one: a built-in study, or a file of kind "leaf-spine". */
export function resolveStudy(value: string): Study | null {
  if (Object.hasOwn(STUDIES, value)) return STUDIES[value];
  if (!isScenarioFile(value)) return null;
  let text: string;
  try {
    text = readFileSync(value, "utf8");
  } catch {
    return null; // the scenario loader says why
  }
  if (!isStudyFile(text)) return null;
  try {
    return loadStudy(value);
  } catch (error) {
    if (error instanceof ScenarioError) throw new CliError(error.message);
    throw error;
  }
}

export async function runSim(flags: SimFlags): Promise<void> {
  if (flags.list) {
    process.stdout.write(listScenarios());
    return;
  }
  const study = flags.fault === undefined ? resolveStudy(flags.scenario) : null;
  if (study) {
    for (const [flag, set] of [["--pcap", flags.pcap], ["--record", flags.record], ["--console", flags.console], ["--manage", flags.manage], ["--screenshot", flags.screenshot], ["--lspci", flags.lspci]] as const) {
      if (set !== undefined && set !== false) throw new CliError(`${flag} does not apply to the fabric study ${study.name}: it has no firmware, consoles or servers to show`);
    }
    if (!flags.quiet) process.stdout.write(`study ${study.name}: ${study.description}\nseed ${flags.seed}\n\n`);
    process.stdout.write(await runStudyReport(study, flags.seed));
    return;
  }
  const cell = flags.fault === undefined ? null : faultCell(flags);
  const scenario = cell?.scenario ?? resolveScenario(flags.scenario);
  const options = engineOptions(flags);
  if (flags.screenshot && !scenario.devices.some((d) => d.kind === "graphics")) {
    throw new CliError(`scenario ${scenario.name} has no graphics adapter: --screenshot has nothing to save`);
  }
  if (flags.lspci && scenario.servers.length === 0) throw new CliError(`scenario ${scenario.name} has no server: --lspci has nothing to dump`);
  const managePort = flags.manage === undefined || flags.manage === false ? undefined : flags.manage === true ? 0 : flags.manage;
  if (managePort !== undefined && !scenario.management) {
    const managed = Object.values(SCENARIOS).filter((s) => s.management).map((s) => s.name);
    throw new CliError(`scenario ${scenario.name} has no management port: --manage needs one (built-in: ${managed.join(", ")})`);
  }
  for (const [flag, file] of [["--lspci", flags.lspci], ["--screenshot", flags.screenshot], ["--summary", flags.summary]] as const) {
    if (!file) continue;
    try {
      writeFileSync(file, "");
    } catch (error) {
      throw new CliError(`${flag} ${file}: cannot write it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  const print = flags.quiet ? null : (line: string) => process.stdout.write(line + "\n");
  if (print) {
    print(`scenario ${scenario.name}: ${scenario.description}`);
    print(`seed ${flags.seed}, engine ${flags.engine}${flags.record ? `, recording to ${flags.record}/` : ""}\n`);
    print(TIMELINE_HEADER);
  }
  const consolePort = flags.console === undefined || flags.console === false ? undefined : flags.console === true ? 0 : flags.console;
  let live = false;
  const realTime = () => {
    if (live) return;
    live = true;
    process.stdout.write("running in real time; Ctrl-C ends the run\n");
    process.once("SIGINT", () => world.scheduler.stop());
  };
  const world = created(() => new World({
    scenario, seed: flags.seed, engine: flags.engine, engineOptions: options, softcoreMhz: flags.softcoreMhz,
    durationNs: cell ? Infinity : flags.duration ?? (consolePort === undefined && managePort === undefined ? undefined : Infinity),
    record: flags.record, print, verbose: flags.verbose, pcap: flags.pcap, keylog: flags.keylog, screenshot: flags.screenshot, lspci: flags.lspci,
    flashDir: flags.flashDir, console: consolePort, manage: managePort,
    onConsoles: (endpoints) => {
      for (const e of endpoints) process.stdout.write(`console of ${e.card}: tcp://${e.host}:${e.port}  (attach: iov console --port tcp://${e.host}:${e.port})\n`);
      realTime();
    },
    onManage: (e) => {
      const vlan = scenario.link.managementVlan === 4000 ? "" : ` --vlan ${scenario.link.managementVlan}`;
      process.stdout.write(`management port: tcp://${e.host}:${e.port}  (try: iov manage discover --net tcp://${e.host}:${e.port} --installation ${scenario.link.installation}${vlan})\n`);
      realTime();
    },
  }));
  cell?.attach(world);
  const summary = await world.run().catch((error: Error) => {
    throw /^(console for |management port: )/.test(error.message) ? new CliError(error.message) : error;
  });
  process.stdout.write(`\n${formatSummary(summary)}\n`);
  if (flags.screenshot) process.stdout.write(`  remote screen saved to ${flags.screenshot}\n`);
  if (flags.lspci) process.stdout.write(`  the server's PCI hierarchy saved to ${flags.lspci} (read it with: lspci -F ${flags.lspci} -vvv)\n`);
  if (flags.pcap) process.stdout.write(captureHint(scenario.cables.map((c) => captureFile(flags.pcap!, scenario, c.id)), scenario, flags.keylog));
  if (flags.summary) writeFileSync(flags.summary, JSON.stringify(summary, null, 2) + "\n");
  // A fault cell's verdict covers what failures() looks at, and what its family allows.
  let reasons = failures(summary, scenario);
  if (cell) {
    const verdict = cell.verdict(summary);
    process.stdout.write(`\n${formatVerdict(cell.family.name, flags.seed, verdict)}\n`);
    reasons = verdict.reasons;
  }
  if (reasons.length > 0) {
    process.stdout.write(`\nexit status 1:\n${reasons.map((r) => `  - ${r}`).join("\n")}\n`);
    process.exitCode = 1;
  }
}

/** A path as one shell word. */
function shellWord(path: string): string {
  return /^[\w./@%+,:=-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * Where the capture went and the commands that show it decoded: tshark with the project's
 * dissector, after `iov pcap decrypt` when the data path is MACsec and the run kept its keys.
 */
export function captureHint(files: string[], scenario: Scenario, keylog: string | undefined): string {
  const lua = shellWord(relative(process.cwd(), DISSECTOR));
  const file = files[0];
  const lines = [files.length === 1 ? `  frames captured to ${file}` : `  frames captured to ${files.length} files, one per cable (${file} ...)`];
  const tshark = (capture: string) => `tshark -X lua_script:${lua} -r ${shellWord(capture)} -V`;
  if (scenario.link.macsec === MacsecSetting.Off) {
    lines.push(`  read them decoded: ${tshark(file)}`);
  } else if (keylog) {
    const clear = file.replace(/(\.pcap)?$/, "-clear.pcap");
    lines.push(`  read them decoded (the data path is MACsec: decrypt it first): iov pcap decrypt ${shellWord(file)} ${shellWord(clear)} --keylog ${shellWord(keylog)} && ${tshark(clear)}`);
  } else {
    lines.push(`  read them decoded: ${tshark(file)} (link training and management; the data path is MACsec: add --keylog FILE to decrypt it with iov pcap decrypt)`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Why a run failed, one line per reason; none for a run that kept every promise. A card that is
 * off at the end because the scenario cut its power last is what the scenario asked for, not a
 * failure; one halted, faulted or off for any other reason is.
 */
export function failures(summary: RunSummary, scenario: Scenario): string[] {
  const out: string[] = [];
  const { lost, duplicated, reordered } = summary.tlps;
  if (lost) out.push(`${lost} test TLP(s) lost`);
  if (duplicated) out.push(`${duplicated} test TLP(s) duplicated`);
  if (reordered) out.push(`${reordered} test TLP(s) out of order`);
  if (summary.hostCompletionTimeouts) out.push(`${summary.hostCompletionTimeouts} completion timeout(s) in the servers`);
  if (summary.deviceCompletionTimeouts) out.push(`${summary.deviceCompletionTimeouts} completion timeout(s) of DMA reads in the chassis devices`);
  if (summary.dataVerificationErrors) out.push(`${summary.dataVerificationErrors} data verification error(s) (the timeline's error lines say where)`);
  if (summary.firmwareTraps) out.push(`${summary.firmwareTraps} firmware trap(s)`);
  for (const invariant of summary.invariants) out.push(`invariant: ${invariant}`);
  for (const card of summary.cards) {
    if (card.state === "running") continue;
    const power = (scenario.actions ?? [])
      .filter((a) => (a.kind === "power-cut" || a.kind === "power-on") && a.card === card.name && a.atNs <= summary.simulatedNs)
      .sort((x, y) => x.atNs - y.atNs)
      .at(-1);
    if (card.state === "off" && power?.kind === "power-cut") continue;
    out.push(`card ${card.name} is ${card.state} at the end${card.state === "off" ? ", and the scenario did not cut its power" : ""}`);
  }
  return out;
}

/** The fault cell --fault and --seed name; the family's scenario, which --scenario and --duration would change, is its own. */
function faultCell(flags: SimFlags): FaultCell {
  if (flags.scenario !== "default") throw new CliError("--fault runs the default scenario as its family changes it: leave out --scenario");
  if (flags.duration !== undefined) throw new CliError("--fault: the run ends when the family's faults have settled: leave out --duration");
  try {
    return new FaultCell(family(flags.fault!), flags.seed);
  } catch (error) {
    if (error instanceof UnknownFamily) throw new CliError(`--fault: ${error.message}`);
    throw error;
  }
}

/** The world, or a CliError for a flash file that cannot be used. */
function created(make: () => World): World {
  try {
    return make();
  } catch (error) {
    if (error instanceof FlashFileError || error instanceof ScenarioError) throw new CliError(error.message);
    throw error;
  }
}

/** Past this many cards (or servers), the summary shows only those with something to tell, and counts the rest. */
const SUMMARY_ROWS = 16;

export function formatSummary(s: RunSummary): string {
  const many = s.cards.length > SUMMARY_ROWS;
  const shownCards = many ? s.cards.filter((c) => c.state !== "running" || c.stats.traps > 0 || (c.firmwareCounters?.Errors ?? 0) > 0) : s.cards;
  const rows = shownCards.map((c) => {
    const fw = c.firmwareCounters ?? {};
    return `  ${c.name.padEnd(8)} ${c.role.padEnd(8)} ${c.serial}  fw ${(c.firmware ?? "-").padEnd(6)} ${c.state.padEnd(8)} ` +
      `batches ${String(c.stats.batches).padStart(5)}  events ${String(fw.EventsIn ?? 0).padStart(5)}  ` +
      `commands ${String(fw.CommandsOut ?? 0).padStart(5)}  errors ${fw.Errors ?? 0}  traps ${c.stats.traps}  ` +
      (s.softcoreMhz === 0 ? `soft-core ${(c.stats.instructions / Math.max(c.stats.batches, 1)).toFixed(0)} instr/batch` :
        `soft-core ${((100 * c.stats.busyNs) / s.simulatedNs).toFixed(1)} % busy, worst batch ${(c.stats.maxWarmBatchNs / 1000).toFixed(1)} µs` +
        (c.stats.maxBatchNs > c.stats.maxWarmBatchNs ? ` (${(c.stats.maxBatchNs / 1000).toFixed(1)} µs with first calls)` : "") +
        (c.stats.longBatches ? `, ${c.stats.longBatches} over the limit (${c.stats.longWarmBatches} compiling nothing)` : ""));
  });
  const t = s.tlps;
  const busy = (v: RunSummary["servers"][number]) => v.hotplug.length > 0 || v.requestsOutstanding > 0 || v.nvme.some((r) => r.errors + r.mismatches > 0);
  const manyServers = s.servers.length > SUMMARY_ROWS;
  const servers = manyServers ? s.servers.filter(busy) : s.servers;
  const verified = (v: RunSummary["servers"][number]) => v.nvme.reduce((n, r) => n + r.bytesVerified, 0);
  return [
    `summary: ${s.scenario}, seed ${s.seed}, ${s.simulatedNs / 1e9} s simulated on ${s.engine}, ` +
      (s.softcoreMhz === 0 ? "soft-cores in zero time" : `soft-cores at ${s.softcoreMhz} MHz`),
    ...rows,
    ...(many ? [`  ${s.cards.length - shownCards.length} of ${s.cards.length} cards running without traps or mailbox errors${shownCards.length ? "; the others above" : ""}`] : []),
    `  TLPs: ${t.sent} sent, ${t.delivered} delivered, ${t.lost} lost, ${t.duplicated} duplicated, ${t.reordered} out of order, ${t.abortedByRemoval} aborted by removal`,
    `  server: ${s.hostCompletionTimeouts} completion timeouts (devices' DMA reads: ${s.deviceCompletionTimeouts}), ${s.dataVerificationErrors} data verification errors`,
    ...(s.worstRequest ? [`  longest wait for a completion: ${(s.worstRequestNs / 1e6).toFixed(3)} ms, ${s.worstRequest}`] : []),
    ...(manyServers ? [`  ${s.servers.length} servers: NVMe ${(s.servers.reduce((n, v) => n + verified(v), 0) / 2 ** 20).toFixed(1)} MiB verified in all; ${s.servers.length - servers.length} without hot-plug events, requests outstanding or NVMe errors; the others:`] : []),
    ...servers.map((v) => `  ${v.name} hot-plug: ${v.hotplug.filter((h) => h.change === "removal").length} removal(s), ${v.hotplug.filter((h) => h.change === "insertion").length} insertion(s); ` +
      `${v.errorCompletions} request(s) completed with Unsupported Request; NVMe ${(v.nvme.reduce((n, r) => n + r.bytesVerified, 0) / 2 ** 20).toFixed(1)} MiB verified, ` +
      `${v.nvme.reduce((n, r) => n + r.commandsAborted, 0)} command(s) aborted by removal`),
    ...s.assignments.map((a) => `  assign ${a.card} at ${a.timeNs / 1e9} s: group ${a.from} -> ${a.to}, ${a.outcome === "ok" ? (a.doneNs === null ? "taken, not done by the end" : `done at ${(a.doneNs / 1e9).toFixed(3)} s`) : a.outcome}`),
    macsecLine(s.macsec),
    ...pathLines(s),
    ...switchLines(s),
    ...(s.attack ? [attackLine(s.attack)] : []),
    `  invariants: ${s.invariants.length === 0 ? "all held" : `${s.invariants.length} violated`} (${s.crossDeliveries} cross-deliveries, ${s.unresetHandovers} handovers without a device reset)`,
    ...s.invariants.map((line) => `    !! ${line}`),
  ].join("\n");
}

/**
 * The paths of sessions with two or more at the end of the run, one line per tunnel, at most
 * PATH_LINES of them: each path's port, state, round trip, frames out and frames resent.
 */
function pathLines(s: RunSummary): string[] {
  const lines: string[] = [];
  let more = 0;
  for (const card of s.cards) {
    const tunnels = [...new Set(card.paths.map((p) => p.tunnel))];
    for (const tunnel of tunnels) {
      const paths = card.paths.filter((p) => p.tunnel === tunnel);
      if (paths.length < 2) continue;
      if (lines.length === PATH_LINES) {
        more++;
        continue;
      }
      lines.push(`  paths: ${card.name} tunnel ${tunnel} to ${paths[0].peer ?? "?"}: ` + paths.map((p) =>
        `eth${p.port} ${p.silent ? "silent" : "live"}, RTT ${(p.rttNs / 1000).toFixed(1)} us, ${p.txFrames} frames out, ${p.resent} resent`).join("; "));
    }
  }
  if (more) lines.push(`  paths: ${more} more tunnel(s) with two paths (--summary has them all)`);
  return lines;
}

const PATH_LINES = 8;

/**
 * A line per switch that dropped, marked or paused anything (at most PATH_LINES of them): its drops,
 * those of the shared buffer, its marks, its PFC pauses, and its most congested port's queue (p99 of the depth its frames
 * found, and the deepest it got).
 */
function switchLines(s: RunSummary): string[] {
  const congested = s.switches.filter((sw) => sw.egressDrops + sw.ecnMarked + sw.pauseSent > 0);
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  const lines = congested.slice(0, PATH_LINES).map((sw) => {
    const worst = sw.ports.reduce((a, b) => (b.queueP99Bytes > a.queueP99Bytes || (b.queueP99Bytes === a.queueP99Bytes && b.peakQueuedBytes > a.peakQueuedBytes) ? b : a));
    const pfc = sw.pauseSent + sw.headroomDrops > 0 ? `, ${sw.pauseSent} pause frame(s) sent (${sw.headroomDrops} frame(s) past a headroom)` : "";
    return `  switch ${sw.name}: ${sw.egressDrops} frame(s) dropped (${sw.bufferDrops} by the shared buffer), ${sw.ecnMarked} marked congestion experienced${pfc}; ` +
      `port ${worst.port}: queue p99 ${kib(worst.queueP99Bytes)}, peak ${kib(worst.peakQueuedBytes)}`;
  });
  if (congested.length > PATH_LINES) lines.push(`  switches: ${congested.length - PATH_LINES} more dropped or marked frames (--summary has them all)`);
  return lines;
}

/** The run's MACsec line: what went protected, what went in clear, and every frame refused by reason. */
function macsecLine(m: MacsecSummary): string {
  const refused = m.badIcv + m.late + m.unknownSa + m.unknownSci + m.untagged + m.badTag;
  return `  MACsec: ${m.protectedFrames} frames protected, ${m.clearFrames} sent in clear${m.clearFrames ? " (MACsec off by configuration)" : ""}; ${m.rekeys} rekey(s); ` +
    `${refused} refused (${m.badIcv} bad ICV, ${m.late} replayed, ${m.unknownSa} unknown AN, ${m.unknownSci} unknown SCI, ${m.untagged} in clear, ${m.badTag} bad SecTAG)`;
}

/** What the rogue station of an attack scenario tried, and what came of it. */
function attackLine(a: NonNullable<RunSummary["attack"]>): string {
  const sent = Object.values(a.sent).reduce((n, v) => n + v, 0);
  return `  attacker: read ${a.framesRead} frames (${a.dataPathFrames} of the data path), recovered ${a.tlpsRecovered} TLPs; sent ${sent} ` +
    `(${a.sent.forge} forged, ${a.sent.clear} in clear, ${a.sent.flip} bit-flipped, ${a.sent.replay} replayed, ${a.sent.stale} of an earlier session): ` +
    `${a.reached} reached a card, ${a.accepted} accepted, ${a.uncounted} uncounted; ${a.validatedReplays} replays inside the window dropped by the tunnel as duplicates` +
    (a.relayed ? `, ${a.relayed} replays of frames the network had lost taken as the genuine frames they are` : "");
}
