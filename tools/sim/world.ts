// A simulated world: the discrete-event scheduler, seeded randomness, the cards of a
// scenario (each running its own firmware instance on the chosen engine, each with its
// fabric), the network between them, and the traffic they carry.

import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { Card, type CardObserver } from "../../board/card.ts";
import { Fabric } from "../../board/fabric.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import { FabricEventKind } from "../../board/map/registers.ts";
import type { TlpClass } from "../../board/pcie/tlp.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import { Network } from "./net/network.ts";
import { PcapWriter } from "./pcap.ts";
import { TlpStream, DeliveryChecker } from "./traffic.ts";
import { programTunnel } from "./tunnel-pair.ts";
import { openSession, type EngineKind, type EngineOptions } from "../engines/index.ts";
import { EventScheduler } from "./scheduler.ts";
import { BOARD_ID, macFor, type Scenario } from "./scenarios.ts";
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
        slots: spec.slots, logLevel: options.scenario.logLevel,
      };
      const card = new Card(config, this.scheduler, entropy, this.observer(spec.name));
      const fabric = new Fabric({ boardId: BOARD_ID, mac: config.mac, tunnels: spec.role === CardRole.Host ? spec.slots : 1 }, this.scheduler, {
        event: (kind, tunnel, arg) => this.fabricEvent(card, kind, tunnel, arg),
        deliver: (tlp, cls, tunnel) => this.deliver(tlp, cls, tunnel),
      });
      card.fabric = fabric;
      this.cards.push(card);
      this.fabrics.set(spec.name, fabric);
      this.linkStates.set(spec.name, []);
    }
    this.network = new Network(this.scheduler, options.seed);
    for (const cable of options.scenario.cables) {
      const link = this.network.connect(cable.id, null, null, cable.config);
      this.fabric(cable.a).mac.connect(link.a);
      this.fabric(cable.b).mac.connect(link.b);
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

  /** A fabric event goes to the card's firmware, and tunnel state changes into the history. */
  private fabricEvent(card: Card, kind: FabricEventKind, tunnel: number, arg: number): void {
    card.post({ kind: "fabricEvent", tunnel, event: kind, arg });
    if (kind === FabricEventKind.PeerSilent) this.linkState(card.name, `tunnel${tunnel}:silent`);
    if (kind === FabricEventKind.PeerHeard) this.linkState(card.name, `tunnel${tunnel}:active`);
    if (kind === FabricEventKind.RetryLimit) this.linkState(card.name, `tunnel${tunnel}:retry-exhausted`);
  }

  private deliver(tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine): void {
    this.inbound.get(tunnel)?.checker.deliver(tlp);
    tunnel.release(cls, tlp);
  }

  /** Programs both ends of a tunnel, as link training will. */
  private bringUp(spec: Scenario["tunnels"][number]): void {
    const host = this.fabric(spec.host);
    const chassis = this.fabric(spec.chassis);
    const session = (0x5e55_0000 | (spec.port << 8) | this.cards.findIndex((c) => c.name === spec.chassis)) >>> 0;
    programTunnel(host, chassis.mac.address, { mtu: spec.mtu, session, tunnel: spec.port });
    programTunnel(chassis, host.mac.address, { mtu: spec.mtu, session, tunnel: 0 });
    this.note(spec.host, `tunnel ${spec.port} to ${spec.chassis} enabled by the scenario (MTU ${spec.mtu}, session 0x${session.toString(16)}; no link training yet)`);
    this.note(spec.chassis, `tunnel 0 to ${spec.host} enabled by the scenario`);
    this.linkState(spec.host, `tunnel${spec.port}:active`);
    this.linkState(spec.chassis, "tunnel0:active");
  }

  private tunnelBetween(from: string, to: string): TunnelEngine {
    const spec = this.options.scenario.tunnels.find((t) => (t.host === from && t.chassis === to) || (t.host === to && t.chassis === from));
    if (!spec) throw new Error(`scenario ${this.options.scenario.name}: no tunnel between ${from} and ${to}`);
    return this.fabric(from).tunnels[spec.host === from ? spec.port : 0];
  }

  private startTraffic(spec: Scenario["traffic"][number], index: number): void {
    const tunnel = this.tunnelBetween(spec.from, spec.to);
    const stream = new TlpStream(xoroshiro128plus((this.options.seed + 0x7a11 * (index + 1)) >>> 0), spec.mix, spec.payload);
    const flow: Flow = { spec, stream, checker: new DeliveryChecker(stream), tunnel };
    this.flows.push(flow);
    this.inbound.set(this.tunnelBetween(spec.to, spec.from), flow);
    this.note(spec.from, `traffic: ${spec.count} TLPs of ${spec.payload} bytes to ${spec.to} start`);
    const feed = () => {
      while (tunnel.queuedTlps < 256 && stream.count < spec.count) tunnel.submit(stream.next());
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

  async run(): Promise<RunSummary> {
    const { scenario, engine, engineOptions } = this.options;
    const duration = this.options.durationNs ?? scenario.durationNs;
    scenario.cards.forEach((spec, i) => {
      const card = this.cards[i];
      this.scheduler.at(spec.powerOnNs, () => card.powerOn(openSession(engine, { ...engineOptions, onLog: card.onFirmwareLog })));
    });
    for (const hook of this.startHooks) await hook(this);
    for (const spec of scenario.tunnels) if (spec.atNs <= duration) this.scheduler.at(spec.atNs, () => this.bringUp(spec));
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
        // Sent and neither delivered nor still waiting in or on the way through the tunnel.
        lost: this.flows.reduce((n, f) => n + f.stream.count - (f.checker.received.length - f.checker.duplicates) - f.tunnel.queuedTlps - f.tunnel.tlpsInFlight(), 0),
        duplicated: this.flows.reduce((n, f) => n + f.checker.duplicates, 0),
        reordered: this.flows.reduce((n, f) => n + f.checker.misordered, 0),
      },
      hostCompletionTimeouts: 0,
      dataVerificationErrors: 0,
      hotplugEvents: Object.fromEntries(cards.filter((c) => c.role === "host").map((c) => [c.name, { removals: 0, insertions: 0 }])),
      firmwareTraps: cards.reduce((n, c) => n + c.stats.traps, 0),
      mailboxErrors: cards.reduce((n, c) => n + c.stats.mailboxErrors, 0),
    };
  }
}
