// A simulated world: the discrete-event scheduler, seeded randomness, the cards of a
// scenario (each running its own firmware instance on the chosen engine, each with its
// fabric), the network between them, and the traffic they carry.

import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { Card, type CardObserver } from "../../board/card.ts";
import { Fabric } from "../../board/fabric.ts";
import { CardRole, ResetCause } from "../../board/map/mailbox.ts";
import { FabricEventKind, TunnelReg } from "../../board/map/registers.ts";
import { LinkState } from "../../board/map/link.ts";
import { macKey } from "../../board/ethernet/frame.ts";
import type { TlpClass } from "../../board/pcie/tlp.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import { Network } from "./net/network.ts";
import { PcapWriter } from "./pcap.ts";
import { TlpStream, DeliveryChecker } from "./traffic.ts";
import { writeFileSync } from "node:fs";
import { PcieLink } from "../../board/pcie/link.ts";
import { HostSwitch } from "../../board/pcie/host-switch.ts";
import { ChassisRoot } from "../../board/pcie/chassis-root.ts";
import { DmaTestDevice } from "../../board/devices/dma-test.ts";
import { GraphicsAdapter } from "../../board/devices/graphics.ts";
import { RootComplex, ROOT_PORT_LINK } from "../server/root-complex.ts";
import { OperatingSystem, type PciFunction } from "../server/os.ts";
import { spawn } from "../server/task.ts";
import { dmaTestDriver, isDmaTest } from "../server/drivers/dma-test.ts";
import { graphicsDriver, isGraphics, testPicture } from "../server/drivers/graphics.ts";
import { InputDevice, ReportKind } from "../../board/devices/input.ts";
import { inputDriver, isInput } from "../server/drivers/input.ts";
import { NvmeController } from "../../board/devices/nvme/controller.ts";
import { nvmeInit, isNvme } from "../server/drivers/nvme.ts";
import { pattern } from "../../board/devices/dma-test.ts";
import type { Task } from "../server/task.ts";
import { openSession, type EngineKind, type EngineOptions } from "../engines/index.ts";
import { EventScheduler } from "./scheduler.ts";
import { BOARD_ID, macFor, cardLink, type Scenario, type CableSpec } from "./scenarios.ts";
import { Timeline, type Level } from "./timeline.ts";
import type { RunSummary, LinkStateChange } from "./summary.ts";

export interface WorldOptions {
  scenario: Scenario;
  seed: number;
  engine: EngineKind;
  engineOptions: Omit<EngineOptions, "onLog">;
  durationNs?: number;
  /** Directory for raw mailbox traces: CARD.in, CARD.out, CARD.log. */
  record?: string;
  /** Where timeline lines go; null keeps them only in memory. */
  print?: ((line: string) => void) | null;
  /** Also show every mailbox message. */
  verbose?: boolean;
  /** Capture every frame delivered on each cable: FILE, or FILE with the cable name inserted when there are several. */
  pcap?: string;
  /** Save the first graphics adapter's screen as a PNG when the run ends. */
  screenshot?: string;
}

/** Chassis slot number that scenario test traffic uses; devices sit in the others. */
export const TRAFFIC_SLOT = 7;

interface Server {
  name: string;
  /** Its host card. */
  host: string;
  rc: RootComplex;
  os: OperatingSystem;
  hostSwitch: HostSwitch;
}

interface Flow {
  spec: { from: string; to: string; count: number };
  stream: TlpStream;
  checker: DeliveryChecker;
  tunnel: TunnelEngine;
}

const FIRMWARE_LOG_STAMP = /^\[\s*\d+\.\d+\] /;

export type Hook = (world: World) => void | Promise<void>;

export class World {
  readonly scheduler = new EventScheduler();
  /** Run at time 0, before anything else happens. */
  readonly startHooks: Hook[] = [];
  /** Run when simulated time is up, before the cards are powered off. */
  readonly stopHooks: Hook[] = [];
  readonly timeline: Timeline;
  readonly cards: Card[] = [];
  readonly fabrics = new Map<string, Fabric>();
  readonly network: Network;
  private readonly files: number[] = [];
  private readonly flows: Flow[] = [];
  /** Flows by receiving tunnel: TLPs arriving there are checked against them. */
  private readonly inbound = new Map<TunnelEngine, Flow>();
  private readonly linkStates = new Map<string, LinkStateChange[]>();
  private readonly chassisRoots = new Map<string, ChassisRoot>();
  private readonly hostSwitches = new Map<TunnelEngine, HostSwitch>();
  private readonly chassisTunnels = new Map<TunnelEngine, ChassisRoot>();
  readonly servers: Server[] = [];
  readonly graphics: GraphicsAdapter[] = [];
  /** Keyboard/mouse devices with what has been typed at them so far and what the server's driver received. */
  readonly inputs: { device: InputDevice; typed: string; typedAt: number[]; keys: string; reports: number; latenciesNs: number[] }[] = [];
  private dataErrors = 0;

  constructor(private readonly options: WorldOptions) {
    this.timeline = new Timeline(options.print ?? null);
    const base = xoroshiro128plus(options.seed);
    if (options.record) mkdirSync(options.record, { recursive: true });
    for (const spec of options.scenario.cards) {
      const rng = base.clone();
      base.jump();
      const entropy = (n: number) => Uint8Array.from({ length: n }, () => uniformInt(rng, 0, 255));
      const config = {
        name: spec.name, role: spec.role, boardId: BOARD_ID, serial: spec.serial, mac: macFor(spec.serial),
        slots: spec.slots, logLevel: options.scenario.logLevel, link: cardLink(options.scenario, spec),
      };
      const card = new Card(config, this.scheduler, entropy, this.observer(spec.name));
      const fabric = new Fabric({ boardId: BOARD_ID, mac: config.mac, tunnels: spec.role === CardRole.Host ? spec.slots : 1 }, this.scheduler, {
        event: (kind, tunnel, arg) => this.fabricEvent(card, kind, tunnel, arg),
        deliver: (tlp, cls, tunnel, slot) => this.deliver(tlp, cls, tunnel, slot),
        control: (frame, tunnel) => card.post({ kind: "frameRx", tunnel, frame: frame.slice() }),
        linkState: (tunnel, state) => this.onLinkState(card, tunnel, state),
      });
      card.fabric = fabric;
      this.cards.push(card);
      this.fabrics.set(spec.name, fabric);
      this.linkStates.set(spec.name, []);
    }
    this.buildPcie();
    this.network = new Network(this.scheduler, options.seed);
    for (const spec of options.scenario.switches ?? []) this.network.addSwitch(spec.name, spec.config);
    for (const cable of options.scenario.cables) {
      const end = (e: CableSpec["a"]) => (typeof e === "string" ? null : e);
      const link = this.network.connect(cable.id, end(cable.a), end(cable.b), cable.config);
      if (typeof cable.a === "string") this.fabric(cable.a).mac.connect(link.a);
      if (typeof cable.b === "string") this.fabric(cable.b).mac.connect(link.b);
      if (options.pcap) {
        const file = options.scenario.cables.length === 1 ? options.pcap : options.pcap.replace(/(\.pcap)?$/, `.${cable.id}$1`);
        const capture = new PcapWriter(file);
        link.tap = (frame) => capture.write(this.scheduler.now, frame);
        this.stopHooks.push(() => {
          link.tap = null;
          capture.close();
        });
      }
    }
  }

  /** Chassis roots with their devices, and each server with its host card's switch. */
  private buildPcie(): void {
    const { scenario } = this.options;
    for (const spec of scenario.cards.filter((c) => c.role === CardRole.Chassis)) {
      const tunnel = this.fabric(spec.name).tunnels[0];
      const root = new ChassisRoot(this.scheduler, tunnel, spec.slots);
      this.chassisRoots.set(spec.name, root);
      this.chassisTunnels.set(tunnel, root);
    }
    for (const device of scenario.devices) {
      const root = this.chassisRoots.get(device.chassis);
      if (!root) throw new Error(`scenario ${scenario.name}: no chassis card named ${device.chassis}`);
      if (device.kind === "graphics") {
        const adapter = new GraphicsAdapter(this.scheduler);
        this.graphics.push(adapter);
        root.plug(device.slot, adapter);
      } else if (device.kind === "keyboard-mouse") {
        const input = new InputDevice(this.scheduler);
        root.plug(device.slot, input);
        const entry = { device: input, typed: "", typedAt: [] as number[], keys: "", reports: 0, latenciesNs: [] as number[] };
        this.inputs.push(entry);
        const typing = device.typing;
        if (typing) {
          [...typing.text].forEach((ch, i) => {
            const at = typing.startNs + i * typing.intervalNs;
            this.scheduler.at(at, () => {
              entry.typed += ch;
              entry.typedAt.push(at);
              input.key(ch.charCodeAt(0), true);
            });
            this.scheduler.at(at + typing.intervalNs / 2, () => input.mouse(4, (i % 5) - 2));
          });
        }
      } else if (device.kind === "nvme") root.plug(device.slot, new NvmeController(this.scheduler));
      else root.plug(device.slot, new DmaTestDevice(this.scheduler));
    }
    for (const spec of scenario.servers) {
      // Downstream ports appear as the host card's tunnels come up (see onLinkState).
      const hostSwitch = new HostSwitch([]);
      const rc = new RootComplex(this.scheduler);
      const link = new PcieLink(this.scheduler, ROOT_PORT_LINK);
      link.plugUp(rc);
      link.plugDown(hostSwitch);
      const os = new OperatingSystem(rc, (line) => this.timeline.add({ timeNs: this.scheduler.now, card: spec.name, source: "os", text: line, level: "info" }));
      this.servers.push({ name: spec.name, host: spec.host, rc, os, hostSwitch });
    }
  }

  /** Enumerates, then runs every driver the OS has for what it found. */
  private boot(server: Server): void {
    const say = (text: string, level: Level = "info") => this.timeline.add({ timeNs: this.scheduler.now, card: server.name, source: "os", text, level });
    say("enumerating PCI");
    spawn(server.os.enumerate(), (found) => {
      if (found instanceof Error) {
        say(`enumeration failed: ${found.message}`, "error");
        return;
      }
      say(`enumeration done: ${found.length} functions`);
      for (const fn of found) this.bind(server, fn, say);
    });
  }

  private bind(server: Server, fn: PciFunction, say: (text: string, level?: Level) => void): void {
    const where = `${fn.bus}:${fn.device}.${fn.fn}`;
    if (isGraphics(fn)) {
      spawn(graphicsDriver(server.os, fn), (result) => {
        if (result instanceof Error) return say(`graphics ${where}: ${result.message}`, "error");
        const adapter = this.graphics.find((g) => g.routingId === ((fn.bus << 8) | (fn.device << 3)));
        const same = adapter !== undefined && Buffer.compare(Buffer.from(adapter.framebuffer.subarray(0, result.bytes)), Buffer.from(testPicture(result.width, result.height))) === 0;
        if (!same) this.dataErrors++;
        say(`graphics ${where}: test picture drawn, ${result.width}x${result.height}${same ? ", remote framebuffer matches" : ", remote framebuffer DIFFERS"}`, same ? "info" : "error");
      });
    } else if (isInput(fn)) {
      const entry = this.inputs.find((e) => e.device.routingId === ((fn.bus << 8) | (fn.device << 3)));
      if (!entry) return;
      say(`keyboard/mouse ${where}: driver listening`);
      spawn(inputDriver(server.os, fn, 0x2_0000_0000 + 0x10000 * this.inputs.indexOf(entry), 64, (report, latency) => {
        entry.reports++;
        entry.latenciesNs.push(latency);
        if (report.kind === ReportKind.Key) entry.keys += String.fromCharCode(report.code);
      }));
      this.stopHooks.push(() => {
        const sorted = [...entry.latenciesNs].sort((x, y) => x - y);
        // Keys typed in the last millisecond may still be on their way; anything older must have arrived.
        const due = entry.typedAt.filter((t) => t <= this.scheduler.now - 1_000_000).length;
        const ok = entry.typed.startsWith(entry.keys) && entry.keys.length >= due;
        if (!ok) this.dataErrors++;
        const p50 = sorted.length ? (sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2) : "-";
        const max = sorted.length ? (sorted[sorted.length - 1] / 1000).toFixed(2) : "-";
        say(`keyboard/mouse ${where}: received "${entry.keys}" (${entry.reports} reports)${ok ? "" : `, typed "${entry.typed}"`}; latency p50 ${p50} µs, max ${max} µs`, ok ? "info" : "error");
      });
    } else if (isNvme(fn)) {
      const os = server.os;
      spawn((function* (): Task<string> {
        const disk = yield* nvmeInit(os, fn, 0x3_0000_0000);
        const data = pattern(0x4e56, 1 << 20);
        const started = os.rc.now;
        for (let i = 0; i < 8; i++) yield* disk.write(i * 256, data.subarray(i * 131_072, (i + 1) * 131_072), 0x4_0000_0000, 0x4_1000_0000);
        const wrote = os.rc.now - started;
        let bad = 0;
        for (let i = 0; i < 8; i++) {
          const back = yield* disk.read(i * 256, 256, 0x5_0000_0000, 0x5_1000_0000);
          if (Buffer.compare(Buffer.from(back), Buffer.from(data.subarray(i * 131_072, (i + 1) * 131_072))) !== 0) bad++;
        }
        return `${disk.identity!.mn.trim()} (${disk.blocks} blocks of 512 bytes): 1 MiB written in ${(wrote / 1000).toFixed(1)} µs and read back, ${bad} of 8 commands' data differ`;
      })(), (result) => {
        if (result instanceof Error) return say(`nvme ${where}: ${result.message}`, "error");
        const bad = !result.includes(", 0 of 8");
        if (bad) this.dataErrors++;
        say(`nvme ${where}: ${result}`, bad ? "error" : "info");
      });
    } else if (isDmaTest(fn)) {
      spawn(dmaTestDriver(server.os, fn, 0x1_0000_0000, 1 << 20, 0x5eed), (result) => {
        if (result instanceof Error) return say(`dma-test ${where}: ${result.message}`, "error");
        const errors = result.hostMismatches + result.deviceErrors;
        this.dataErrors += errors;
        const rate = (ns: number) => (((1 << 20) * 8) / ns).toFixed(2);
        say(`dma-test ${where}: 1 MiB written to server memory in ${(result.writeNs / 1000).toFixed(1)} µs (${rate(result.writeNs)} Gb/s) and read back in ${(result.verifyNs / 1000).toFixed(1)} µs (${rate(result.verifyNs)} Gb/s), ${errors} word errors`, errors ? "error" : "info");
      });
    }
  }

  private fabric(name: string): Fabric {
    const fabric = this.fabrics.get(name);
    if (!fabric) throw new Error(`scenario ${this.options.scenario.name}: no card named ${name}`);
    return fabric;
  }

  private note(card: string, text: string, level: Level = "info"): void {
    this.timeline.add({ timeNs: this.scheduler.now, card, source: "board", text, level });
  }

  private linkState(card: string, state: string): void {
    this.linkStates.get(card)!.push({ timeNs: this.scheduler.now, state });
  }

  /** A fabric event goes to the card's firmware. */
  private fabricEvent(card: Card, kind: FabricEventKind, tunnel: number, arg: number): void {
    card.post({ kind: "fabricEvent", tunnel, event: kind, arg });
  }

  /** A TLP out of a tunnel: test traffic to its checker, the rest to the card's PCIe side. */
  private deliver(tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number): void {
    if (slot === TRAFFIC_SLOT) this.inbound.get(tunnel)?.checker.deliver(tlp);
    else {
      const copy = tlp.slice();
      const chassis = this.chassisTunnels.get(tunnel);
      if (chassis) chassis.fromHost(copy, slot);
      else this.hostSwitches.get(tunnel)?.fromTunnel(copy);
    }
    tunnel.release(cls, tlp);
  }

  /**
   * The firmware moved a tunnel's link state: the history records it, and a host card's
   * tunnel that comes up with a chassis card gives the server's switch one downstream port
   * per chassis slot (until the firmware serves the virtual switch itself).
   */
  private onLinkState(card: Card, tunnel: TunnelEngine, state: number): void {
    this.linkState(card.name, `tunnel${tunnel.index}:${LinkState[state]?.toLowerCase() ?? state}`);
    if (state !== LinkState.Active || card.config.role !== CardRole.Host) return;
    const peer = this.cards.find((c) => macKey(c.config.mac) === tunnel.peerKey());
    const server = this.servers.find((s) => s.host === card.name);
    if (!peer || !server || peer.config.role !== CardRole.Chassis) return;
    for (let slot = 0; slot < peer.config.slots; slot++) server.hostSwitch.addPort(tunnel, slot);
    this.hostSwitches.set(tunnel, server.hostSwitch);
  }

  /** `from`'s tunnel that is up with card `to`, if any. */
  private tunnelBetween(from: string, to: string): TunnelEngine | null {
    const peer = this.cards.find((c) => c.name === to);
    if (!peer) throw new Error(`scenario ${this.options.scenario.name}: no card named ${to}`);
    const key = macKey(peer.config.mac);
    return this.fabric(from).tunnels.find((t) => t.peerKey() === key && t.readRegister(TunnelReg.LinkState) === LinkState.Active) ?? null;
  }

  private startTraffic(spec: Scenario["traffic"][number], index: number): void {
    const tunnel = this.tunnelBetween(spec.from, spec.to);
    const back = this.tunnelBetween(spec.to, spec.from);
    if (!tunnel || !back) {
      this.note(spec.from, `traffic: no tunnel is up between ${spec.from} and ${spec.to}; ${spec.count} TLPs not sent`, "error");
      return;
    }
    const stream = new TlpStream(xoroshiro128plus((this.options.seed + 0x7a11 * (index + 1)) >>> 0), spec.mix, spec.payload);
    const flow: Flow = { spec, stream, checker: new DeliveryChecker(stream), tunnel };
    this.flows.push(flow);
    this.inbound.set(back, flow);
    this.note(spec.from, `traffic: ${spec.count} TLPs of ${spec.payload} bytes to ${spec.to} start`);
    const feed = () => {
      while (tunnel.queuedTlps < 256 && stream.count < spec.count) tunnel.submit(stream.next(), TRAFFIC_SLOT);
      if (stream.count < spec.count) this.scheduler.at(this.scheduler.now + 2_000, feed);
      else this.scheduler.at(this.scheduler.now + 2_000, () => this.watchDone(flow));
    };
    feed();
  }

  private watchDone(flow: Flow): void {
    if (flow.checker.received.length < flow.spec.count) {
      this.scheduler.at(this.scheduler.now + 10_000, () => this.watchDone(flow));
      return;
    }
    const { checker, spec } = flow;
    const ok = checker.complete();
    this.note(spec.to, `traffic from ${spec.from}: all ${spec.count} TLPs delivered${ok ? " exactly once, in order" : `, ${checker.errors[0]}`}`, ok ? "info" : "error");
  }

  private observer(name: string): CardObserver {
    const add = (source: "board" | "fw" | "mailbox", text: string, level: Level = "info") =>
      this.timeline.add({ timeNs: this.scheduler.now, card: name, source, text, level });
    const observer: CardObserver = {
      note: (_card, text, level) => add("board", text, level),
      log: (_card, line) => {
        const level = line.includes("] E ") ? "error" : line.includes("] W ") ? "warn" : "info";
        add("fw", line.replace(FIRMWARE_LOG_STAMP, ""), level);
      },
    };
    if (this.options.verbose) observer.message = (_card, direction, text) => add("mailbox", `${direction === "events" ? "->" : "<-"} ${text}`);
    if (this.options.record) {
      const open = (ext: string) => {
        const fd = openSync(join(this.options.record!, `${name}.${ext}`), "w");
        this.files.push(fd);
        return fd;
      };
      const input = open("in");
      const output = open("out");
      const log = open("log");
      observer.mailbox = (_card, events, commands) => {
        writeSync(input, events);
        writeSync(output, commands);
      };
      const show = observer.log!;
      observer.log = (card, line) => {
        writeSync(log, line + "\n");
        show(card, line);
      };
    }
    return observer;
  }

  /** A software reset: the soft-core restarts its firmware and the fabric returns to its reset state. */
  private async reboot(card: Card): Promise<void> {
    await card.powerOff();
    this.fabric(card.name).reset();
    card.powerOn(openSession(this.options.engine, { ...this.options.engineOptions, onLog: card.onFirmwareLog }), ResetCause.Software);
  }

  async run(): Promise<RunSummary> {
    const { scenario, engine, engineOptions } = this.options;
    const duration = this.options.durationNs ?? scenario.durationNs;
    scenario.cards.forEach((spec, i) => {
      const card = this.cards[i];
      this.scheduler.at(spec.powerOnNs, () => card.powerOn(openSession(engine, { ...engineOptions, onLog: card.onFirmwareLog })));
    });
    for (const action of scenario.actions ?? []) {
      const card = this.cards.find((c) => c.name === action.card);
      if (!card) throw new Error(`scenario ${scenario.name}: no card named ${action.card}`);
      if (action.atNs <= duration) this.scheduler.at(action.atNs, () => this.reboot(card));
    }
    for (const hook of this.startHooks) await hook(this);
    scenario.servers.forEach((spec, i) => {
      if (spec.enumerateNs <= duration) this.scheduler.at(spec.enumerateNs, () => this.boot(this.servers[i]));
    });
    if (this.options.screenshot) {
      const file = this.options.screenshot;
      this.stopHooks.push(() => {
        if (this.graphics.length === 0) throw new Error(`scenario ${scenario.name} has no graphics adapter to take a screenshot of`);
        writeFileSync(file, this.graphics[0].screenshot());
      });
    }
    scenario.traffic.forEach((spec, i) => {
      if (spec.startNs <= duration) this.scheduler.at(spec.startNs, () => this.startTraffic(spec, i));
    });
    await this.scheduler.run(duration);
    for (const hook of this.stopHooks) await hook(this);
    // Collect each firmware's own counters before powering the cards off.
    for (const card of this.cards) card.post({ kind: "countersQuery" });
    await this.scheduler.run(this.scheduler.now);
    const summary = this.summary(duration);
    for (const card of this.cards) await card.powerOff();
    for (const fd of this.files.splice(0)) closeSync(fd);
    return summary;
  }

  private summary(duration: number): RunSummary {
    const cards = this.cards.map((card) => ({
      name: card.name,
      role: card.config.role === CardRole.Host ? ("host" as const) : ("chassis" as const),
      serial: `0x${card.config.serial.toString(16).padStart(8, "0")}`,
      firmware: card.firmwareVersion,
      state: card.state,
      linkStates: this.linkStates.get(card.name)!,
      stats: { ...card.stats },
      firmwareCounters: card.firmwareCounters,
    }));
    return {
      scenario: this.options.scenario.name,
      seed: this.options.seed,
      engine: this.options.engine,
      simulatedNs: duration,
      cards,
      tlps: {
        sent: this.flows.reduce((n, f) => n + f.stream.count, 0),
        delivered: this.flows.reduce((n, f) => n + f.checker.received.length - f.checker.duplicates, 0),
        // Sent and neither delivered nor still waiting in or on the way through the tunnel. A frame
        // delivered but not yet acknowledged counts as in flight too, hence the floor at 0 mid-run.
        lost: this.flows.reduce((n, f) => n + Math.max(0, f.stream.count - (f.checker.received.length - f.checker.duplicates) - f.tunnel.queuedTlps - f.tunnel.tlpsInFlight()), 0),
        duplicated: this.flows.reduce((n, f) => n + f.checker.duplicates, 0),
        reordered: this.flows.reduce((n, f) => n + f.checker.misordered, 0),
      },
      hostCompletionTimeouts: this.servers.reduce((n, s) => n + s.rc.counters.completionTimeouts, 0),
      dataVerificationErrors: this.dataErrors,
      hotplugEvents: Object.fromEntries(cards.filter((c) => c.role === "host").map((c) => [c.name, { removals: 0, insertions: 0 }])),
      firmwareTraps: cards.reduce((n, c) => n + c.stats.traps, 0),
      mailboxErrors: cards.reduce((n, c) => n + c.stats.mailboxErrors, 0),
    };
  }
}
