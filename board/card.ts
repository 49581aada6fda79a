// The card as the firmware sees it: the fabric side of the mailbox, the hardware timer
// channel, the random number generator, the hash engine, the UART, the flash controller, the
// watchdog and the boot ROM. At every reset the boot ROM chooses the image to start from
// flash; the card then batches events that fall due at the same instant, runs them through
// the firmware in lockstep (TIME, events..., SYNC; the firmware answers with commands and
// SYNC_ACK), and carries out the commands.
//
// A reset of the soft-core (reboot, watchdog, an update's trial) leaves the fabric running:
// tunnels, switch router and slots keep their state and keep moving TLPs, and the retained RAM
// keeps what the firmware wrote there (RETAIN), which the card hands the new firmware after
// BOOT (RETAINED). Only a power cut resets the fabric and clears the retained RAM
// (docs/registers.md, "What survives a reset").

import type { KeyObject } from "node:crypto";
import {
  MAILBOX_VERSION, TIMER_CHANNELS, CardRole, ResetCause, LogLevel, HelloStatus, BootFlag, Event, Header, HEADER_SIZE, RETAIN_BYTES, RETAIN_CHUNK,
} from "./map/mailbox.ts";
import { CardReg, BootCommand, WATCHDOG_KEY, WATCHDOG_TIMEOUT_NS, ENTROPY_REQUEST_MAX, PORTS, PORT_BASE, PORT_STRIDE, PortReg, PortStatus } from "./map/registers.ts";
import { SLOTS } from "./map/flash.ts";
import { FlashController, type Flash } from "./flash.ts";
import { HashEngine } from "./hash-engine.ts";
import { inspectConfigRecords, readConfigRecord } from "./config-store.ts";
import { BootRom, RESET_CAUSES, type Booted } from "./boot-rom.ts";
import { formatVersion } from "./image.ts";
import { Uart } from "./uart.ts";
import {
  type LinkConfig, encodeEvent, MessageReader, decodeCommand, describe, describeMessage, namedCounters, errorName, typeName,
  MailboxFormatError, type EventMessage, type CommandMessage, type RawMessage,
} from "./mailbox-codec.ts";
import type { Scheduler } from "./scheduler.ts";
import { concat } from "./bytes.ts";
import type { Fabric } from "./fabric.ts";
import { BATCH_EVENTS_MAX, BatchOverrun, EngineFailure, SoftcoreTiming, type FirmwareSession } from "./softcore.ts";

export interface CardConfig {
  name: string;
  role: CardRole;
  boardId: number;
  serial: number;
  mac: Uint8Array;
  /** Downstream ports (host card) or chassis slots (chassis card). */
  slots: number;
  logLevel: LogLevel;
  /**
   * The factory configuration record's content: what whoever builds the card (the world's
   * factory) writes into a flash that holds no valid record (board/config-store.ts). The card
   * itself posts CONFIG from the newest valid record in its flash at every power-on; without
   * one, it posts none and the link stays disabled.
   */
  link?: LinkConfig;
}

/** What the card is built from besides its configuration. */
export interface CardParts {
  flash: Flash;
  /** Public keys in the boot ROM. */
  trustedKeys: KeyObject[];
  /** Starts the soft-core on the firmware image the boot ROM chose. */
  openFirmware(payload: Uint8Array, onLog: (text: string) => void): FirmwareSession;
  /** Seeded randomness: what a power cut leaves in flash. */
  random(bound: number): number;
  /** UART line rate (default 115 200). */
  baud?: number;
  /** The soft-core's clock and costs (default: the zero-time model). */
  softcore?: SoftcoreTiming;
}

/** Who watches the card: the timeline, trace recorders. All optional. */
export interface CardObserver {
  /** A board-side event worth a timeline line. */
  note?(card: Card, text: string, level: "info" | "warn" | "error"): void;
  /** A line of the firmware's fd 2 log. */
  log?(card: Card, line: string): void;
  /** Raw mailbox bytes: `events` written to fd 0, `commands` read from fd 1. */
  mailbox?(card: Card, events: Uint8Array, commands: Uint8Array): void;
  /** Every message, decoded (verbose timelines). */
  message?(card: Card, direction: "events" | "commands", text: string): void;
  /** The firmware's counters report took effect (firmwareCounters holds it), after the batch's commands before it. */
  counters?(card: Card): void;
  /** The card's power went off (a power cut) or came on: what a PCIe link to the card follows. */
  power?(card: Card, on: boolean): void;
}

export type CardState = "off" | "booting" | "running" | "halted" | "faulted";

export interface CardStats {
  batches: number;
  eventsSent: number;
  commandsReceived: number;
  /** ERROR commands: the firmware rejected something the board sent. */
  mailboxErrors: number;
  /** Firmware traps or runner deaths. */
  traps: number;
  /** Resets by the watchdog. */
  watchdogResets: number;
  /** Time the soft-core spent on batches and on loading the firmware. */
  busyNs: number;
  /** The longest batch, and how many took longer than the soft-core's batch limit. */
  maxBatchNs: number;
  longBatches: number;
  /** The longest batch that compiled nothing: wasm3 had compiled every function it ran before. */
  maxWarmBatchNs: number;
  /** Of longBatches, those that compiled nothing. */
  longWarmBatches: number;
  /** The median batch's WebAssembly instructions; 0 before the first batch. */
  instructionsP50: number;
  /** Busy time in each BUSY_BIN_NS of simulated time since the card was created (loading the firmware included). */
  busyNsPerBin: number[];
  /** WebAssembly instructions executed and bytes of code compiled, over every batch. */
  instructions: number;
  compiledBytes: number;
  /** From the last power-on or reset to the first batch's commands (its SYNC_ACK) taking effect; null until then. */
  bootNs: number | null;
  /** Bytes of function bodies compiled ahead, between batches (docs/softcore.md, "First calls"). */
  compiledAheadBytes: number;
  /** From the last power-on or reset until every function of the firmware was compiled; null until then. */
  warmNs: number | null;
}

/** The width of the bins of CardStats.busyNsPerBin. */
export const BUSY_BIN_NS = 10_000_000;

export type EntropySource = (bytes: number) => Uint8Array;

/** The text of one framed event. */
function describeFramed(message: Uint8Array): string {
  const reader = new MessageReader("events");
  reader.push(message);
  const raw: RawMessage | null = reader.next();
  return raw ? describe(raw, "events") : "(incomplete event)";
}

/** How deep into the waiting events the mailbox looks for a TLP_RX to hand over first. */
const PRIORITY_SCAN = 256;
/**
 * A TLP_RX that has waited this long behind events it may not pass makes the frames, entropy and
 * settings before them wait (nextEvents()): a fifth of the server's completion timeout. Right after
 * a restart, when wasm3 compiles each handler at its first call, one batch can take 10 ms.
 */
const REQUEST_URGENT_NS = 10_000_000;
const ENTROPY_AT_BOOT = ENTROPY_REQUEST_MAX; // fills the firmware's pool (assembly/entropy.ts): the boot ID and the first nonces

export class Card {
  state: CardState = "off";
  firmwareVersion: string | null = null;
  firmwareCounters: Record<string, number> | null = null;
  readonly stats: CardStats = {
    batches: 0, eventsSent: 0, commandsReceived: 0, mailboxErrors: 0, traps: 0, watchdogResets: 0,
    busyNs: 0, maxBatchNs: 0, longBatches: 0, maxWarmBatchNs: 0, longWarmBatches: 0, instructionsP50: 0, busyNsPerBin: [], instructions: 0, compiledBytes: 0, bootNs: null,
    compiledAheadBytes: 0, warmNs: null,
  };
  /** When the card last came out of reset. */
  private poweredAt = 0;
  readonly softcore: SoftcoreTiming;
  readonly uart: Uart;
  readonly flash: FlashController;
  readonly hash: HashEngine;
  /** What the boot ROM started at the last reset; null while off or halted. */
  booted: Booted | null = null;
  private readonly rom: BootRom;
  private watchdog: number | null = null;
  private session: FirmwareSession | null = null;
  /** The retained RAM, and how far into it the firmware has written since power-on. */
  private readonly retained = new Uint8Array(RETAIN_BYTES);
  private retainedBytes = 0;
  /** The events of the batch the soft-core is running: its commands have not taken effect yet. */
  private running: (EventMessage | Uint8Array)[] = [];
  /** Events for the next batch; a Uint8Array is a message already framed (CONFIG from flash, posted byte for byte). */
  private pending: (EventMessage | Uint8Array)[] = [];
  /** When each TLP_RX waiting in `pending` came. */
  private readonly postedAt = new WeakMap<EventMessage, number>();
  /** Each batch's WebAssembly instructions, for the median. */
  private readonly batchInstructions: number[] = [];
  private flushScheduled = false;
  /** The soft-core is busy (loading the firmware, or running a batch) until then. */
  private busyUntil = 0;
  /** Bumped at every power-off: a batch that finishes after it belongs to a firmware that is gone. */
  private generation = 0;
  private seq = 0;
  private timers: (number | null)[] = new Array(TIMER_CHANNELS).fill(null);
  private logLine = "";
  /** BootBody.Carrier: the Ethernet ports with carrier now (a card model without a fabric: port 0, as with one cable). */
  private carrier(): number {
    const fabric = this.fabric;
    if (!fabric) return 1;
    let bits = 0;
    for (let p = 0; p < PORTS; p++) if (fabric.readRegister(PORT_BASE + PORT_STRIDE * p + PortReg.Status) & PortStatus.Carrier) bits |= 1 << p;
    return bits;
  }

  /** The fabric behind REG_WRITE / REG_READ, when the card model has one. */
  fabric: Pick<Fabric, "readRegister" | "writeRegister" | "transmitControl" | "transmitTlp" | "reset" | "softcoreReset"> | null = null;

  constructor(
    readonly config: CardConfig,
    private readonly scheduler: Scheduler,
    private readonly entropy: EntropySource,
    private readonly parts: CardParts,
    private readonly observer: CardObserver = {},
  ) {
    this.softcore = parts.softcore ?? new SoftcoreTiming(0);
    this.uart = new Uart(scheduler, parts.baud);
    this.flash = new FlashController(parts.flash, scheduler, (done) => this.post({ kind: "flashDone", ...done }));
    this.hash = new HashEngine(scheduler, (done) => this.post({ kind: "hashDone", ...done }));
    this.rom = new BootRom(parts.flash, { boardId: config.boardId, trustedKeys: parts.trustedKeys }, (line, level) => {
      this.uart.transmit(new TextEncoder().encode(line + "\r\n"));
      if (level !== "detail") this.observer.note?.(this, line, level);
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** The card's statistics as of now: busy time counts only up to now, not the rest of a batch still running. */
  statsNow(): CardStats {
    const sorted = [...this.batchInstructions].sort((a, b) => a - b);
    return {
      ...this.stats,
      busyNs: this.stats.busyNs - Math.max(0, this.busyUntil - this.scheduler.now),
      instructionsP50: sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0,
      busyNsPerBin: [...this.stats.busyNsPerBin],
    };
  }

  /** Counts the soft-core busy for `ns` from now in the bins it covers. */
  private chargeBusy(ns: number): void {
    this.stats.busyNs += ns;
    const bins = this.stats.busyNsPerBin;
    for (let at = this.scheduler.now, end = at + ns; at < end;) {
      const bin = Math.floor(at / BUSY_BIN_NS);
      const next = Math.min(end, (bin + 1) * BUSY_BIN_NS);
      while (bins.length <= bin) bins.push(0);
      bins[bin] += next - at;
      at = next;
    }
  }

  /** Receives the firmware's fd 2 text as the engine delivers it. */
  onFirmwareLog = (text: string): void => {
    const lines = (this.logLine + text).split("\n");
    this.logLine = lines.pop()!;
    for (const line of lines) this.observer.log?.(this, line);
  };

  /**
   * Power on or reset: the boot ROM chooses an image, the soft-core starts it with the
   * watchdog running, and the card posts BOOT and the first entropy.
   */
  powerOn(cause: ResetCause = ResetCause.PowerOn, held: EventMessage[] = []): void {
    this.state = "booting";
    this.poweredAt = this.scheduler.now;
    this.stats.bootNs = null;
    this.stats.warmNs = null;
    this.seq = 0;
    const { role, boardId, serial, logLevel, slots, mac } = this.config;
    this.observer.note?.(this, `power on (reset cause: ${RESET_CAUSES[cause]})`, "info");
    if (cause === ResetCause.PowerOn) this.observer.power?.(this, true);
    const booted = this.rom.boot(cause);
    this.booted = booted;
    if (!booted) {
      this.state = "halted";
      return;
    }
    this.flash.protectedSlot = booted.slot;
    this.armWatchdog();
    const loadNs = this.softcore.loadNs(booted.payload.length);
    this.busyUntil = this.scheduler.now + loadNs;
    this.chargeBusy(loadNs);
    try {
      this.session = this.parts.openFirmware(booted.payload, this.onFirmwareLog);
    } catch (error) {
      if (error instanceof EngineFailure) throw error;
      this.fault((error as Error).message);
      return;
    }
    this.uart.receiver = (bytes) => this.post({ kind: "uartRx", bytes });
    const bootFlags = booted.trial ? BootFlag.Trial : 0;
    if (cause === ResetCause.PowerOn) this.clearRetained();
    const retained = this.retainedBytes;
    this.post({ kind: "boot", mailboxVersion: MAILBOX_VERSION, role, resetCause: cause, boardId, serial, logLevel, slots, mac, bootSlot: booted.slot, bootFlags, retained, carrier: this.carrier() });
    for (let offset = 0; offset < retained; offset += RETAIN_CHUNK) {
      this.post({ kind: "retained", offset, data: this.retained.slice(offset, Math.min(offset + RETAIN_CHUNK, retained)) });
    }
    // What the fabric held for the firmware across a reset goes first, once the state it needs is in.
    for (const event of held) this.post(event);
    this.post({ kind: "entropy", bytes: this.entropy(ENTROPY_AT_BOOT) });
    this.postStoredConfig();
  }

  private clearRetained(): void {
    this.retained.fill(0);
    this.retainedBytes = 0;
  }

  /**
   * CONFIG from the newest valid configuration record in flash, its body byte for byte (the
   * firmware checks the fields); none when no sector holds a valid record.
   */
  private postStoredConfig(): void {
    const sectors = inspectConfigRecords(this.parts.flash);
    const record = readConfigRecord(this.parts.flash);
    if (!record) {
      const why = sectors.map((r) => `sector ${r.sector}: ${r.ok ? "valid" : r.reason}`).join("; ");
      this.observer.note?.(this, `no valid configuration record in flash (${why}): no CONFIG, the link stays disabled`, "warn");
      return;
    }
    for (const r of sectors) {
      if (!r.ok && r.reason !== "erased") this.observer.note?.(this, `configuration sector ${r.sector} skipped: ${r.reason}; record ${record.sequence} (sector ${record.sector}) used`, "info");
    }
    const message = new Uint8Array(HEADER_SIZE + record.body.length);
    new DataView(message.buffer).setUint16(Header.BodyLength, record.body.length, true);
    message[Header.Type] = Event.Config;
    message.set(record.body, HEADER_SIZE);
    this.postFramed(message);
  }

  /** Queues an event for the firmware; it goes out in this instant's batch. */
  post(event: EventMessage): void {
    this.postFramed(event);
  }

  private postFramed(event: EventMessage | Uint8Array): void {
    if (this.state === "off" || this.state === "faulted") return;
    this.pending.push(event);
    if (!(event instanceof Uint8Array) && event.kind === "tlpRx") this.postedAt.set(event, this.scheduler.now);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.scheduler.at(this.scheduler.now, () => this.flush());
    }
  }

  /**
   * Runs the pending events as one batch, at most BATCH_EVENTS_MAX of them. While the soft-core is
   * busy they wait, and more join them, until it is free, as on the card. The batch's commands
   * take effect when the soft-core has finished it; then the events left go next.
   */
  private async flush(): Promise<void> {
    this.flushScheduled = false;
    if (!this.session || this.state === "off" || this.state === "faulted") return;
    if (this.scheduler.now < this.busyUntil) {
      this.flushScheduled = true;
      this.scheduler.at(this.busyUntil, () => this.flush());
      return;
    }
    const seq = this.seq;
    this.seq = (this.seq + 1) >>> 0;
    const taken = this.nextEvents();
    this.running = taken;
    const batch: (EventMessage | Uint8Array)[] = [{ kind: "time", now: BigInt(this.scheduler.now) }, ...taken, { kind: "sync", seq }];
    const events = concat(batch.map((e) => (e instanceof Uint8Array ? e : encodeEvent(e))));
    if (this.observer.message) for (const e of batch) this.observer.message(this, "events", e instanceof Uint8Array ? describeFramed(e) : describeMessage(e));
    let commands: Uint8Array;
    try {
      commands = await this.session.exchange(events, seq);
    } catch (error) {
      if (error instanceof EngineFailure) throw error;
      this.fault(error instanceof BatchOverrun ? this.overrun(error) : (error as Error).message);
      return;
    }
    this.stats.batches++;
    this.stats.eventsSent += batch.length;
    this.observer.mailbox?.(this, events, commands);
    const cost = this.session.lastBatch;
    const ns = cost ? this.softcore.batchNs(cost) : 0;
    if (cost) {
      this.stats.instructions += cost.instructions;
      this.stats.compiledBytes += cost.compiledBytes;
    }
    this.chargeBusy(ns);
    this.stats.maxBatchNs = Math.max(this.stats.maxBatchNs, ns);
    if (cost) {
      this.batchInstructions.push(cost.instructions);
      if (cost.compiledBytes === 0) this.stats.maxWarmBatchNs = Math.max(this.stats.maxWarmBatchNs, ns);
    }
    if (ns > this.softcore.batchLimitNs) {
      this.stats.longBatches++;
      if (cost?.compiledBytes === 0) this.stats.longWarmBatches++;
      this.observer.note?.(this, `batch ${seq} kept the soft-core busy ${(ns / 1000).toFixed(1)} µs, over the ${this.softcore.batchLimitNs / 1000} µs batch limit (${cost!.instructions} instructions)`, "warn");
    }
    if (ns === 0) {
      this.running = [];
      this.carryOut(commands);
      return;
    }
    this.busyUntil = this.scheduler.now + ns;
    const generation = this.generation;
    this.scheduler.at(this.busyUntil, () => {
      if (generation !== this.generation) return;
      this.running = [];
      this.carryOut(commands);
    });
  }

  /**
   * The events of the next batch: BATCH_EVENTS_MAX from the head of the FIFO, except that the
   * mailbox's priority arbiter favours a server's request for the firmware (TLP_RX): the server
   * waits for its answer (a completion timeout at 50 ms). A request passes the events waiting that
   * its answer cannot depend on, the network's CONTROL frames (FRAME_RX: a peer's DISCOVERs),
   * random bytes (ENTROPY) and the link's settings (CONFIG), as long as nothing else came before
   * it. The other events bring what the answer may depend on (the retained state after a reset,
   * the fabric's events and register values, the firmware's timers, which run the slots'
   * hot-plug work, digests, flash results, console input): a request never passes one. Once a
   * request has waited REQUEST_URGENT_NS behind one, the arbiter takes the first such event
   * next, and the frames, entropy and settings before it wait too.
   */
  private nextEvents(): (EventMessage | Uint8Array)[] {
    const scan = Math.min(this.pending.length, PRIORITY_SCAN);
    let first = -1;
    for (let i = 0; i < scan; i++) {
      const e = this.pending[i];
      if (e instanceof Uint8Array || e.kind === "frameRx" || e.kind === "entropy") continue;
      if (e.kind === "tlpRx") {
        if (first < 0) return i === 0 ? this.pending.splice(0, BATCH_EVENTS_MAX) : this.pending.splice(i, 1);
        if (this.scheduler.now - (this.postedAt.get(e) ?? this.scheduler.now) >= REQUEST_URGENT_NS) return this.pending.splice(first, 1);
        break;
      }
      if (first < 0) first = i;
    }
    return this.pending.splice(0, BATCH_EVENTS_MAX);
  }

  /** Why a batch that would not end stopped the soft-core, in the card's terms. */
  private overrun(error: BatchOverrun): string {
    const ms = this.softcore.batchNs({ instructions: error.limit, compiledBytes: 0 }) / 1e6;
    return `${error.message} (${this.softcore.mhz ? `${ms.toFixed(0)} ms at ${this.softcore.mhz} MHz` : "the watchdog period at the default clock"}): the soft-core never answers, and the watchdog resets the card`;
  }

  /** The commands of a finished batch take effect; events that waited for the soft-core go next. */
  private carryOut(commands: Uint8Array): void {
    this.stats.bootNs ??= this.scheduler.now - this.poweredAt;
    const reader = new MessageReader("commands");
    reader.push(commands);
    for (const raw of reader.all()) {
      this.stats.commandsReceived++;
      let command: CommandMessage;
      try {
        command = decodeCommand(raw);
      } catch (error) {
        if (!(error instanceof MailboxFormatError)) throw error;
        this.observer.note?.(this, `malformed command from firmware: ${describe(raw, "commands")}`, "error");
        continue;
      }
      this.observer.message?.(this, "commands", describeMessage(command));
      this.apply(command);
    }
    this.whenIdle();
  }

  /** The soft-core has nothing running: the events that waited go next, else wasm3 compiles ahead. */
  private whenIdle(): void {
    if (this.pending.length > 0) {
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.scheduler.at(this.scheduler.now, () => this.flush());
      }
      return;
    }
    this.compileAhead();
  }

  /**
   * Between batches the card build's main loop has wasm3 compile the next function the firmware
   * has not run yet, one function at a time (an event that comes meanwhile waits for it), until
   * all are compiled: a handler's first call then compiles nothing. Not in the zero-time model.
   */
  private compileAhead(): void {
    if (!this.session?.compileAhead || this.softcore.mhz === 0 || this.state !== "running" || this.stats.warmNs !== null) return;
    const bytes = this.session.compileAhead();
    if (bytes === 0) {
      this.stats.warmNs = this.scheduler.now - this.poweredAt;
      return;
    }
    const ns = this.softcore.batchNs({ instructions: 0, compiledBytes: bytes });
    this.stats.compiledAheadBytes += bytes;
    this.chargeBusy(ns);
    this.busyUntil = this.scheduler.now + ns;
    const generation = this.generation;
    this.scheduler.at(this.busyUntil, () => {
      if (generation === this.generation) this.whenIdle();
    });
  }

  /** The soft-core stopped: nothing serves the mailbox any more, until the watchdog resets the card. */
  private fault(reason: string): void {
    this.state = "faulted";
    this.stats.traps++;
    this.cancelTimers();
    this.uart.receiver = null;
    this.observer.note?.(this, `firmware fault: ${reason}`, "error");
  }

  private armWatchdog(): void {
    this.disarmWatchdog();
    this.watchdog = this.scheduler.at(this.scheduler.now + WATCHDOG_TIMEOUT_NS, () => {
      this.watchdog = null;
      this.stats.watchdogResets++;
      this.observer.note?.(this, `watchdog expired: the firmware did not kick it for ${WATCHDOG_TIMEOUT_NS / 1e6} ms`, "error");
      return this.reset(ResetCause.Watchdog);
    });
  }

  private disarmWatchdog(): void {
    if (this.watchdog !== null) this.scheduler.cancel(this.watchdog);
    this.watchdog = null;
  }

  /**
   * The system registers (CardReg.WatchdogKick, CardReg.EntropyRequest, CardReg.BootControl),
   * written through the fabric; false refuses the write.
   */
  system = (address: CardReg, value: number): boolean => {
    if (!this.booted) return false;
    if (address === CardReg.WatchdogKick) {
      if (value !== WATCHDOG_KEY) return false;
      this.armWatchdog();
      return true;
    }
    if (address === CardReg.EntropyRequest) {
      // The generator keeps a FIFO of conditioned bytes full: a request is answered at once.
      if (value < 1 || value > ENTROPY_REQUEST_MAX) return false;
      this.post({ kind: "entropy", bytes: this.entropy(value) });
      return true;
    }
    const command = value & 0xff;
    const slot = (value >>> 8) & 0xff;
    if ((value >>> 16) !== 0) return false;
    switch (command) {
      case BootCommand.Confirm:
        if (slot !== this.booted.slot) return false;
        if (this.booted.trial) {
          this.rom.confirm(slot);
          this.booted.trial = false;
          this.observer.note?.(this, `image ${formatVersion(this.booted.info.version)} in slot ${slot} confirmed`, "info");
        }
        return true;
      case BootCommand.Trial:
        if (slot >= SLOTS || slot === this.booted.slot || this.flash.busy) return false;
        this.rom.requestTrial(slot);
        this.scheduler.at(this.scheduler.now, () => this.reset(ResetCause.Update));
        return true;
      case BootCommand.Reboot:
        if (slot !== 0) return false;
        this.scheduler.at(this.scheduler.now, () => this.reset(ResetCause.Software));
        return true;
    }
    return false;
  };

  /**
   * A reset of the soft-core (watchdog, reboot, update): the flash, the UART line, the fabric and
   * the retained RAM keep their state. The switch router's requests for the firmware (TLP_RX) wait
   * in the fabric for the new firmware rather than being lost with the old one, those of a batch
   * the reset cut short (its answers never took effect) included.
   */
  async reset(cause: ResetCause): Promise<void> {
    const waiting = [...this.running, ...this.pending].filter((e): e is Extract<EventMessage, { kind: "tlpRx" }> => !(e instanceof Uint8Array) && e.kind === "tlpRx");
    // The reset is instantaneous: the new firmware starts loading now, while the engine closes the
    // old one's session, so that nothing the fabric posts in between is lost.
    const off = this.powerOff();
    this.fabric?.softcoreReset();
    this.powerOn(cause, waiting);
    await off;
  }

  /** Power is cut: a flash operation in progress stops halfway; the fabric and the retained RAM lose their state with the soft-core. */
  async powerCut(): Promise<void> {
    this.flash.powerCut(this.parts.random);
    // Everything stops at once: powerOff() has taken the soft-core down before it waits for the
    // engine to close the firmware's session.
    const off = this.powerOff();
    this.fabric?.reset();
    this.clearRetained();
    this.observer.power?.(this, false);
    await off;
  }

  private cancelTimers(): void {
    this.timers.forEach((handle, channel) => {
      if (handle !== null) this.scheduler.cancel(handle);
      this.timers[channel] = null;
    });
  }

  private apply(command: CommandMessage): void {
    switch (command.kind) {
      case "hello": {
        const version = command.firmware.join(".");
        this.firmwareVersion = version;
        if (command.status !== HelloStatus.Ok || command.mailboxVersion !== MAILBOX_VERSION) {
          this.state = "halted";
          this.cancelTimers();
          this.uart.receiver = null;
          this.observer.note?.(this, `firmware ${version} refused to boot: it speaks mailbox v${command.mailboxVersion}, this board v${MAILBOX_VERSION}; card halted until the watchdog resets it`, "error");
        } else {
          this.state = "running";
          this.observer.note?.(this, `firmware ${version} running (mailbox v${command.mailboxVersion})`, "info");
        }
        break;
      }
      case "timerArm": {
        const old = this.timers[command.channel];
        if (old !== null) this.scheduler.cancel(old);
        const when = Math.max(Number(command.deadline), this.scheduler.now);
        this.timers[command.channel] = this.scheduler.at(when, () => {
          this.timers[command.channel] = null;
          this.post({ kind: "timerFired", channel: command.channel });
        });
        break;
      }
      case "timerDisarm": {
        const old = this.timers[command.channel];
        if (old !== null) this.scheduler.cancel(old);
        this.timers[command.channel] = null;
        break;
      }
      case "error":
        this.stats.mailboxErrors++;
        this.observer.note?.(this, `firmware rejected ${typeName(command.messageType)} at offset ${command.streamOffset}: ${errorName(command.code)}`, "warn");
        break;
      case "counters":
        this.firmwareCounters = namedCounters(command.values);
        this.observer.counters?.(this);
        break;
      case "regWrite":
        this.fabric?.writeRegister(command.address, command.value);
        break;
      case "regRead":
        this.post({ kind: "regValue", address: command.address, value: this.fabric?.readRegister(command.address) ?? 0 });
        break;
      case "frameTx":
        this.fabric?.transmitControl(command.frame);
        break;
      case "tlpTx":
        this.fabric?.transmitTlp(command.tlp);
        break;
      case "uartTx":
        this.uart.transmit(command.bytes);
        break;
      case "flashErase":
        this.flash.erase(command.address, command.sectors);
        break;
      case "flashProgram":
        this.flash.program(command.address, command.data);
        break;
      case "flashRead":
        this.flash.read(command.address, command.length);
        break;
      case "hash":
        this.hash.command(command);
        break;
      case "retain":
        this.retained.set(command.data, command.offset);
        this.retainedBytes = Math.max(this.retainedBytes, command.offset + command.data.length);
        break;
      case "syncAck":
        break;
    }
  }

  /**
   * Powers the card off: ends the firmware session (closing its fd 0). A flash operation in
   * progress completes; the hash engine forgets its contexts.
   */
  async powerOff(): Promise<void> {
    this.cancelTimers();
    this.disarmWatchdog();
    this.uart.receiver = null;
    this.uart.reset();
    this.flash.reset();
    this.hash.reset();
    this.booted = null;
    const session = this.session;
    this.session = null;
    this.pending = [];
    this.running = [];
    this.generation++;
    this.busyUntil = 0;
    const faulted = this.state === "faulted";
    if (!faulted) this.state = "off";
    if (!session) return;
    // The card is off from here; what follows only closes the engine's session, and a reset powers
    // the card on again meanwhile: only while it is still off does the old firmware's end count.
    const generation = this.generation;
    try {
      const rest = await session.close();
      if (rest.length) this.observer.mailbox?.(this, new Uint8Array(0), rest);
    } catch (error) {
      if (error instanceof EngineFailure) throw error;
      if (!faulted && generation === this.generation && this.state === "off") this.fault((error as Error).message);
    }
    if (this.logLine && this.state === "off") this.onFirmwareLog("\n");
  }
}
