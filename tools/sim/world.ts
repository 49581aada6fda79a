// A simulated world: the discrete-event scheduler, seeded randomness and the cards of a
// scenario, each running its own firmware instance on the chosen engine.

import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { Card, type CardObserver } from "../../board/card.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import { openSession, type EngineKind, type EngineOptions } from "../engines/index.ts";
import { EventScheduler } from "./scheduler.ts";
import { BOARD_ID, macFor, type Scenario } from "./scenarios.ts";
import { Timeline, type Level } from "./timeline.ts";
import type { RunSummary } from "./summary.ts";

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
}

const FIRMWARE_LOG_STAMP = /^\[\s*\d+\.\d+\] /;

export class World {
  readonly scheduler = new EventScheduler();
  readonly timeline: Timeline;
  readonly cards: Card[] = [];
  private readonly files: number[] = [];

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
      this.cards.push(new Card(config, this.scheduler, entropy, this.observer(spec.name)));
    }
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
    await this.scheduler.run(duration);
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
      linkStates: [],
      stats: { ...card.stats },
      firmwareCounters: card.firmwareCounters,
    }));
    return {
      scenario: this.options.scenario.name,
      seed: this.options.seed,
      engine: this.options.engine,
      simulatedNs: duration,
      cards,
      tlps: { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0 },
      hostCompletionTimeouts: 0,
      dataVerificationErrors: 0,
      hotplugEvents: Object.fromEntries(cards.filter((c) => c.role === "host").map((c) => [c.name, { removals: 0, insertions: 0 }])),
      firmwareTraps: cards.reduce((n, c) => n + c.stats.traps, 0),
      mailboxErrors: cards.reduce((n, c) => n + c.stats.mailboxErrors, 0),
    };
  }
}
