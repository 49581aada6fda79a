// A simulated world: the discrete-event scheduler, seeded randomness, the cards of a
// scenario (each running its own firmware instance on the chosen engine, each with its
// fabric), the network between them, and the traffic they carry.

import { createPublicKey, type KeyObject } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { Card, type CardObserver, type CardStats } from "../../board/card.ts";
import { Fabric } from "../../board/fabric.ts";
import { Flash } from "../../board/flash.ts";
import { installImage } from "../../board/boot-rom.ts";
import { readConfigRecord, writeFactoryConfig } from "../../board/config-store.ts";
import type { LinkConfig } from "../../board/mailbox-codec.ts";
import { developmentKey } from "../../board/image.ts";
import { developmentImage } from "../build/image.ts";
import { CardRole, ResetCause } from "../../board/map/mailbox.ts";
import {
  FabricEventKind, TunnelReg, TunnelCounter, PORTS, PORT_BASE, PORT_STRIDE, PortReg, PortStatus, PATH_BASE, PATH_STRIDE, PATH_SIZE, PathReg, PathStatus,
} from "../../board/map/registers.ts";
import { LinkState } from "../../board/map/link.ts";
import { macKey } from "../../board/ethernet/frame.ts";
import { routingId, TlpClass } from "../../board/pcie/tlp.ts";
import type { TunnelEngine } from "../../board/tunnel/engine.ts";
import { Network } from "./net/network.ts";
import type { LinkPort } from "./net/link.ts";
import { PcapWriter } from "./pcap.ts";
import { keyLogLine } from "./keylog.ts";
import { Attacker } from "./attacker.ts";
import { TlpStream, DeliveryChecker } from "./traffic.ts";
import { PcieLink } from "../../board/pcie/link.ts";
import type { SwitchRouter } from "../../board/pcie/switch-router.ts";
import { ChassisRoot } from "../../board/pcie/chassis-root.ts";
import { Endpoint, COMPLETION_TIMEOUT_NS, type RequestHold } from "../../board/pcie/endpoint.ts";
import { DmaTestDevice } from "../../board/devices/dma-test.ts";
import { GraphicsAdapter } from "../../board/devices/graphics.ts";
import { RootComplex, ROOT_PORT_LINK } from "../server/root-complex.ts";
import { OperatingSystem, DeviceRemoved, functionName, type PciFunction } from "../server/os.ts";
import { spawn } from "../server/task.ts";
import { lspciDump } from "./server-lspci.ts";
import { dmaTestPciDriver, type DmaTestResult } from "../server/drivers/dma-test.ts";
import { graphicsPciDriver, testPicture, type GraphicsResult } from "../server/drivers/graphics.ts";
import { InputDevice, ReportKind, type InputReport } from "../../board/devices/input.ts";
import { inputPciDriver } from "../server/drivers/input.ts";
import { NvmeController } from "../../board/devices/nvme/controller.ts";
import { nvmeDriver, nvmeLoad, newNvmeLoadStats, type NvmeDisk, type NvmeLoadStats } from "../server/drivers/nvme.ts";
import { MeteredSession, firmwareFile, type EngineKind, type EngineOptions } from "../engines/index.ts";
import { SoftcoreTiming, SOFTCORE_DEFAULT_MHZ } from "../../board/softcore.ts";
import { EventScheduler } from "./scheduler.ts";
import { ConsoleServers, type ConsoleEndpoint } from "./console-server.ts";
import { ManagementPort, type ManagementEndpoint } from "./management-port.ts";
import { BOARD_ID, WATCHDOG_TIMEOUT_NS } from "../../board/map/registers.ts";
import { macFor, cardLink, cardEnd, adminKey, NVME_LOAD, type Scenario, type CableSpec, type NvmeLoadSpec, type ActionSpec, type TrafficSpec } from "./scenarios.ts";
import { checkScenario, describeAction, ScenarioError } from "./scenario-check.ts";
import { FleetAudit, type AuditedCard } from "./invariants.ts";
import { Timeline, type Level } from "./timeline.ts";
import { percentile, type RunSummary, type MacsecSummary, type LinkStateChange, type ServerSummary, type NvmeRun, type PortSummary, type PathSummary, type SwitchSummary } from "./summary.ts";
import { QueueHistogram } from "./net/switch.ts";

export interface WorldOptions {
  scenario: Scenario;
  /** Keep each card's flash in DIR/CARD.flash (created with the factory image when missing), so that it outlives the run. */
  flashDir?: string;
  /** Public keys in the cards' boot ROMs (default: the development key). */
  trustedKeys?: KeyObject[];
  /** Serve each card's UART on a local TCP port (this base port + the card's index; 0: ports the system picks) and run in real time. */
  console?: number;
  /** Told where each card's console listens. */
  onConsoles?: (endpoints: ConsoleEndpoint[]) => void;
  /** Serve the scenario's management port on this local TCP port (0: one the system picks), QEMU stream framing, and run in real time. */
  manage?: number;
  /** Told where the management port listens. */
  onManage?: (endpoint: ManagementEndpoint) => void;
  seed: number;
  engine: EngineKind;
  engineOptions: Omit<EngineOptions, "onLog">;
  /** The cards' soft-core clock in MHz (default 100); 0 is the zero-time model (board/softcore.ts). */
  softcoreMhz?: number;
  durationNs?: number;
  /** Directory for raw mailbox traces: CARD.in, CARD.out, CARD.log. */
  record?: string;
  /** Where timeline lines go; null keeps them only in memory. */
  print?: ((line: string) => void) | null;
  /** Also show every mailbox message. */
  verbose?: boolean;
  /** Capture every frame delivered on each cable: FILE, or FILE with the cable name inserted when there are several. */
  pcap?: string;
  /** Write every MACsec key a card puts in use for sending to FILE (tools/sim/keylog.ts), to decrypt captures. */
  keylog?: string;
  /** Save the first graphics adapter's screen as a PNG when the run ends. */
  screenshot?: string;
  /** Write each server's PCI hierarchy in `lspci -xxx` format when the run ends: FILE, or FILE with the server's name inserted when there are several. */
  lspci?: string;
}

/** Chassis slot number that scenario test traffic uses; devices sit in the others. */
export const TRAFFIC_SLOT = 7;

interface Server {
  name: string;
  /** Its host card. */
  host: string;
  rc: RootComplex;
  os: OperatingSystem;
  /** The host card's switch router, at the other end of the root port's link. */
  router: SwitchRouter;
  summary: ServerSummary;
}

interface Flow {
  spec: { from: string; to: string; count: number };
  stream: TlpStream;
  checker: DeliveryChecker;
  /** The tunnel it is sent through, and the far one it arrives through. */
  tunnel: TunnelEngine;
  end: TunnelEngine;
}

/** How often the end of a run looks whether every card has reported its counters. */
const COUNTERS_POLL_NS = 100_000;

const FIRMWARE_LOG_STAMP = /^\[\s*\d+\.\d+\] /;

/** The routing ID a device model takes from its configuration requests, for the function the OS found. */
const idOf = (fn: PciFunction) => routingId(fn.bus, fn.device, fn.fn);

/** Count, 50th and 99th percentile and maximum of `samples` (zeros when empty). */
function latencies(samples: number[]): ServerSummary["configReads"] {
  if (samples.length === 0) return { count: 0, p50Ns: 0, p99Ns: 0, maxNs: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  return { count: sorted.length, p50Ns: percentile(sorted, 50), p99Ns: percentile(sorted, 99), maxNs: sorted[sorted.length - 1] };
}

export type Hook = (world: World) => void | Promise<void>;

/** Where `--pcap FILE` puts a cable's frames: FILE itself when the scenario has one cable, else FILE.CABLE.pcap. */
export function captureFile(pcap: string, scenario: Scenario, cable: string): string {
  return scenario.cables.length === 1 ? pcap : pcap.replace(/(\.pcap)?$/, `.${cable}$1`);
}

export class World {
  readonly scheduler = new EventScheduler();
  /** The cards' soft-core timing. */
  readonly softcore: SoftcoreTiming;
  /** Run at time 0, before anything else happens. */
  readonly startHooks: Hook[] = [];
  /** Run when simulated time is up, before the cards are powered off. */
  readonly stopHooks: Hook[] = [];
  readonly timeline: Timeline;
  readonly cards: Card[] = [];
  readonly fabrics = new Map<string, Fabric>();
  readonly network: Network;
  /** The management station on the scenario's `management` switch port, if it has one (docs/management.md). */
  readonly management: ManagementPort | null = null;
  /** The rogue station on the scenario's `attacker` switch port, if it has one (tools/sim/attacker.ts). */
  readonly attacker: Attacker | null = null;
  private readonly files: number[] = [];
  private readonly flows: Flow[] = [];
  /** Flows by receiving tunnel: TLPs arriving there are checked against them. */
  private readonly inbound = new Map<TunnelEngine, Flow>();
  private readonly linkStates = new Map<string, LinkStateChange[]>();
  /** whenActive's waiters, looked at whenever a firmware moves a link state. */
  private readonly activeWaiters: { cards: string[]; tunnel: number; then: () => void }[] = [];
  /** Told of every link state a firmware writes (onLinkStateChange). */
  private readonly stateListeners: ((card: string, tunnel: number, state: LinkState) => void)[] = [];
  private readonly chassisRoots = new Map<string, ChassisRoot>();
  /** Host cards' tunnels, each to its card's switch router. */
  private readonly routers = new Map<TunnelEngine, SwitchRouter>();
  private readonly chassisTunnels = new Map<TunnelEngine, ChassisRoot>();
  readonly servers: Server[] = [];
  readonly graphics: GraphicsAdapter[] = [];
  /** Keyboard/mouse devices with what has been typed at them so far and what the server's driver received. */
  readonly inputs: {
    device: InputDevice; typed: string; typedAt: number[]; keys: string; reports: number; latenciesNs: number[]; boundAs: { server: string; fn: string } | null;
    /** When its driver was bound, and unbound because the device was removed (a surprise removal). */
    bindings: { boundNs: number; removedNs: number | null }[];
  }[] = [];
  private dataErrors = 0;
  /** The load each NVMe controller's disk runs once bound. */
  private readonly nvmeLoads = new Map<NvmeController, NvmeLoadSpec>();
  /** The live counters behind each NVMe run of the summary. */
  private readonly nvmeStats = new Map<NvmeRun, NvmeLoadStats>();
  /** Set when simulated time is up: NVMe loads start no new round. */
  private stopping = false;
  /** The scenario's firmware.wasm, and the image of it that the factory installs. */
  private factory: { payload: Uint8Array; image: Uint8Array } | null = null;
  /** The fleet invariants, watched throughout the run (tools/sim/invariants.ts). */
  readonly audit: FleetAudit;
  private readonly audited: AuditedCard[] = [];

  /** Throws a ScenarioError (one line naming the field) for a scenario that cannot run as written. */
  constructor(private readonly options: WorldOptions) {
    try {
      checkScenario(options.scenario);
    } catch (error) {
      if (error instanceof ScenarioError) throw new ScenarioError(error.path, error.reason, error.source ?? `scenario ${options.scenario.name}`);
      throw error;
    }
    this.timeline = new Timeline(options.print ?? null);
    const audited = this.audited;
    const base = xoroshiro128plus(options.seed);
    if (options.record) mkdirSync(options.record, { recursive: true });
    const softcore = (this.softcore = new SoftcoreTiming(options.softcoreMhz ?? SOFTCORE_DEFAULT_MHZ));
    for (const spec of options.scenario.cards) {
      const rng = base.clone();
      base.jump();
      const entropy = (n: number) => Uint8Array.from({ length: n }, () => uniformInt(rng, 0, 255));
      const cuts = base.clone();
      base.jump();
      const config = {
        name: spec.name, role: spec.role, boardId: BOARD_ID, serial: spec.serial, mac: macFor(spec.serial),
        slots: spec.slots, logLevel: options.scenario.logLevel, link: cardLink(options.scenario, spec),
      };
      const card = new Card(config, this.scheduler, entropy, {
        flash: this.flashFor(spec.name, config.link),
        trustedKeys: options.trustedKeys ?? [createPublicKey(developmentKey())],
        openFirmware: (payload, onLog) => new MeteredSession(options.engine, { ...options.engineOptions, firmware: this.firmwareFile(payload), onLog }, softcore.instructionLimit),
        random: (bound) => uniformInt(cuts, 0, bound - 1),
        baud: options.scenario.uartBaud,
        softcore,
      }, this.observer(spec.name));
      const host = spec.role === CardRole.Host;
      const slotsPresent = () => this.chassisRoots.get(spec.name)?.slotsPresent() ?? 0;
      const fabric = new Fabric({ boardId: BOARD_ID, mac: config.mac, tunnels: host ? spec.slots : 1, switchRouter: host, slotsPresent, chassisSlots: host ? 0 : spec.slots }, this.scheduler, {
        event: (kind, tunnel, arg) => this.fabricEvent(card, kind, tunnel, arg),
        deliver: (tlp, cls, tunnel, slot) => this.deliver(entry, tlp, cls, tunnel, slot),
        discarded: (tlp, slot, tunnel, received) => this.discarded(tlp, slot, tunnel, received),
        unprotected: (clear, fresh) => this.audit.unprotected(clear, fresh),
        control: (frame, tunnel, port) => card.post({ kind: "frameRx", tunnel, port, frame: frame.slice() }),
        linkState: (tunnel, state) => this.onLinkState(entry, tunnel, state),
        tlp: (reason, port, tlp) => card.post({ kind: "tlpRx", reason, port, tlp }),
        system: card.system,
        slotReset: (slots) => this.chassisRoots.get(spec.name)?.resetSlots(slots) ?? false,
      });
      for (const tunnel of fabric.tunnels) if (fabric.router) this.routers.set(tunnel, fabric.router);
      const entry: AuditedCard = { name: spec.name, role: spec.role, card, fabric, mac: macKey(config.mac) };
      audited.push(entry);
      // The audit sees what the firmware has its hash engine compute: a management reply's tag under
      // way is a request taken and not answered yet.
      const hashCommand = card.hash.command.bind(card.hash);
      card.hash.command = (command) => {
        this.audit.hashCommand(entry, command);
        hashCommand(command);
      };
      // The card reaches its fabric through the audit's eyes: resets and the frames the firmware sends.
      card.fabric = {
        readRegister: (address) => fabric.readRegister(address),
        writeRegister: (address, value) => fabric.writeRegister(address, value),
        transmitControl: (frame) => {
          this.audit.controlSent(entry, frame);
          return fabric.transmitControl(frame);
        },
        transmitTlp: (tlp) => fabric.transmitTlp(tlp),
        reset: () => {
          this.audit.fabricReset(entry);
          fabric.reset();
        },
        softcoreReset: () => {
          this.audit.softcoreReset(entry);
          fabric.softcoreReset();
        },
      };
      this.cards.push(card);
      this.fabrics.set(spec.name, fabric);
      this.linkStates.set(spec.name, []);
    }
    this.buildPcie();
    this.audit = new FleetAudit({
      now: () => this.scheduler.now,
      report: (card, text, level) => this.timeline.add({ timeNs: this.scheduler.now, card, source: "board", text, level }),
      devices: (chassis) => {
        const root = this.chassisRoots.get(chassis);
        return root ? Array.from({ length: root.slots }, (_, slot) => root.device(slot)) : [];
      },
      servers: () => this.servers,
    }, audited);
    if (options.keylog) this.writeKeyLog(options.keylog);
    this.network = new Network(this.scheduler, options.seed);
    for (const spec of options.scenario.switches ?? []) this.network.addSwitch(spec.name, spec.config);
    for (const cable of options.scenario.cables) {
      const end = (e: CableSpec["a"]) => (typeof e === "string" || !("switch" in e) ? null : e);
      const link = this.network.connect(cable.id, end(cable.a), end(cable.b), cable.config);
      for (const [spec, port] of [[cable.a, link.a], [cable.b, link.b]] as const) {
        const onCard = cardEnd(spec);
        if (onCard) this.plugCard(onCard.card, onCard.port, port);
      }
      if (options.pcap) {
        const capture = new PcapWriter(captureFile(options.pcap, options.scenario, cable.id));
        link.tap = (frame) => capture.write(this.scheduler.now, frame);
        this.stopHooks.push(() => {
          link.tap = null;
          capture.close();
        });
      }
    }
    const { management, link, attacker } = options.scenario;
    if (attacker) {
      this.attacker = new Attacker(this.scheduler, attacker, options.seed);
      this.attacker.connect(this.network.connect("attacker", this.attacker, { switch: attacker.switch, port: attacker.port }).a);
      this.audit.injected = this.attacker.injected;
      this.audit.verbatim = this.attacker.verbatim;
    }
    if (management) {
      this.management = new ManagementPort(this.scheduler, this.network, management, { seed: options.seed, vlan: link.managementVlan, key: adminKey(link.installation) });
    }
  }

  private switchSummaries(): SwitchSummary[] {
    return [...this.network.switches.values()].map((sw) => {
      const c = sw.snapshot();
      const ports = c.ports.flatMap((p, port) => {
        if (!sw.plugged(port) || p.txFrames + p.egressDrops === 0) return [];
        return [{ port, txFrames: p.txFrames, egressDrops: p.egressDrops, ecnMarked: p.ecnMarked, peakQueuedBytes: sw.egressPeakBytes(port), queueP99Bytes: QueueHistogram.percentile(p.queueDepths, 99) }];
      });
      return { name: sw.name, egressDrops: c.egressDrops, bufferDrops: c.bufferDrops, ecnMarked: c.ecnMarked, pauseSent: c.pauseSent, headroomDrops: c.headroomDrops, ports };
    });
  }

  private macsecSummary(): MacsecSummary {
    const sum = (c: TunnelCounter) => this.audited.reduce((n, card) => n + card.fabric.tunnels.reduce((m, t) => m + t.counters[c], 0), 0);
    return {
      protectedFrames: sum(TunnelCounter.TxProtected),
      clearFrames: sum(TunnelCounter.TxFrames) - sum(TunnelCounter.TxProtected),
      validated: sum(TunnelCounter.RxValidated),
      badIcv: sum(TunnelCounter.RxBadIcv),
      late: sum(TunnelCounter.RxLate),
      unknownSa: sum(TunnelCounter.RxUnknownSa),
      unknownSci: sum(TunnelCounter.RxUnknownSci),
      untagged: sum(TunnelCounter.RxUntagged),
      badTag: sum(TunnelCounter.RxBadTag),
      rekeys: sum(TunnelCounter.SaSwitches),
    };
  }

  /** Appends a key log line for each transmit SA any card installs (a debugging aid: no card shows its keys). */
  private writeKeyLog(path: string): void {
    const fd = openSync(path, "w");
    writeSync(fd, `# MACsec key log of scenario ${this.options.scenario.name}, seed ${this.options.seed} (iov pcap decrypt --keylog)\n`);
    for (const card of this.audited) {
      for (const tunnel of card.fabric.tunnels) {
        tunnel.secy.onKeyInstalled = (key) => {
          if (key.transmit) writeSync(fd, keyLogLine(key) + "\n");
        };
      }
    }
    this.stopHooks.push(() => closeSync(fd));
  }

  /** Card `name`'s Ethernet ports, as its PortReg blocks say. */
  private portSummaries(name: string): PortSummary[] {
    const fabric = this.fabric(name);
    return Array.from({ length: PORTS }, (_, port) => {
      const reg = (r: PortReg) => fabric.readRegister(PORT_BASE + PORT_STRIDE * port + r);
      const status = reg(PortReg.Status);
      return {
        port, connected: (status & PortStatus.Connected) !== 0, carrier: (status & PortStatus.Carrier) !== 0, rxFrames: reg(PortReg.RxFrames),
        txFrames: reg(PortReg.TxFrames), rxFcsErrors: reg(PortReg.RxFcsErrors), rxDropped: reg(PortReg.RxDropped), txDropped: reg(PortReg.TxDropped),
      };
    });
  }

  /** The paths of card `name`'s tunnels in a session, as their PathReg blocks say. */
  private pathSummaries(name: string): PathSummary[] {
    const fabric = this.fabric(name);
    const out: PathSummary[] = [];
    for (const tunnel of fabric.tunnels) {
      const state = tunnel.readRegister(TunnelReg.LinkState);
      if (state !== LinkState.Active && state !== LinkState.Recovery) continue;
      const first = tunnel.readRegister(TunnelReg.Port);
      for (const port of [first, ...Array.from({ length: PORTS }, (_, p) => p).filter((p) => p !== first)]) {
        const reg = (r: PathReg) => fabric.readRegister(PATH_BASE + PATH_STRIDE * tunnel.index + PATH_SIZE * port + r);
        const status = reg(PathReg.Status);
        if (!(status & PathStatus.Enabled)) continue;
        const peer = this.audited.find((c) => c.fabric.macs.some((m) => macKey(m.address) === reg(PathReg.PeerMacHigh) * 2 ** 32 + reg(PathReg.PeerMacLow)));
        out.push({
          tunnel: tunnel.index, port, peer: peer?.name ?? null, first: port === first, silent: (status & PathStatus.Silent) !== 0,
          rttNs: reg(PathReg.RttNs), txFrames: reg(PathReg.TxFrames), rxFrames: reg(PathReg.RxFrames), resent: reg(PathReg.Resent),
        });
      }
    }
    return out;
  }

  /** Plugs the MAC of card `name`'s Ethernet port `index` into a cable end, with the audit seeing every frame it receives. */
  private plugCard(name: string, index: number, port: LinkPort): void {
    const mac = this.fabric(name).macs[index];
    const entry = this.audited.find((c) => c.name === name)!;
    mac.connect(port);
    port.attach({
      receive: (frame) => this.audit.receiving(entry, frame, mac),
      transmitIdle: () => mac.transmitIdle(),
      carrier: (up) => mac.carrier(up),
    });
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
        const entry = {
          device: input, typed: "", typedAt: [] as number[], keys: "", reports: 0, latenciesNs: [] as number[], boundAs: null as { server: string; fn: string } | null,
          bindings: [] as { boundNs: number; removedNs: number | null }[],
        };
        this.inputs.push(entry);
        this.stopHooks.push(() => this.reportInput(entry));
        const typing = device.typing;
        if (typing) {
          const type = (startNs: number) => [...typing.text].forEach((ch, i) => {
            const at = startNs + i * typing.intervalNs;
            this.scheduler.at(at, () => {
              entry.typed += ch;
              entry.typedAt.push(at);
              input.key(ch.charCodeAt(0), true);
            });
            this.scheduler.at(at + typing.intervalNs / 2, () => input.mouse(4, (i % 5) - 2));
          });
          // The typist starts at startNs, or, when no driver listens yet, once one does: when the
          // server's driver binds depends on how fast enumeration goes (the cards' soft-cores serve
          // the switch's configuration requests), and keys typed before would only be dropped.
          this.scheduler.at(typing.startNs, () => {
            if (input.reporting) return type(this.scheduler.now);
            input.onReporting = () => {
              input.onReporting = null;
              type(this.scheduler.now);
            };
          });
        }
      } else if (device.kind === "nvme") {
        const controller = new NvmeController(this.scheduler);
        this.nvmeLoads.set(controller, device.load ?? NVME_LOAD);
        root.plug(device.slot, controller);
      }
      else root.plug(device.slot, new DmaTestDevice(this.scheduler));
    }
    for (const spec of scenario.servers) {
      const router = this.fabric(spec.host).router;
      if (!router) throw new Error(`scenario ${scenario.name}: server ${spec.name} sits on ${spec.host}, which is not a host card`);
      const rc = new RootComplex(this.scheduler, { hotPlugSlot: true });
      const link = new PcieLink(this.scheduler, ROOT_PORT_LINK);
      link.plugUp(rc);
      link.plugDown(router);
      const os = new OperatingSystem(rc, (line) => this.timeline.add({ timeNs: this.scheduler.now, card: spec.name, source: "os", text: line, level: "info" }));
      this.servers.push({
        name: spec.name, host: spec.host, rc, os, router,
        summary: {
          name: spec.name, host: spec.host, hotplug: [], drivers: [], errorCompletions: 0, requestsOutstanding: 0,
          configReads: latencies([]), nvme: [],
        },
      });
    }
  }

  /** Registers the drivers for the chassis devices, then boots the OS: enumeration, port services (pciehp), driver binding. */
  private boot(server: Server): void {
    const say = (text: string, level: Level = "info") => this.timeline.add({ timeNs: this.scheduler.now, card: server.name, source: "os", text, level });
    const { os, summary } = server;
    os.onEvent((event) => {
      const now = this.scheduler.now;
      if (event.kind === "hotplug") summary.hotplug.push({ timeNs: now, slot: event.slot, change: event.change });
      else if (event.kind === "bound" || event.kind === "unbound" || event.kind === "probeFailed") {
        summary.drivers.push({ timeNs: now, fn: functionName(event.fn), driver: event.driver, event: event.kind });
        if (event.kind === "bound") this.bound(server, event.fn, event.driver, event.result, say);
        else if (event.kind === "unbound") {
          say(`${event.driver} ${functionName(event.fn)}: driver unbound${event.fn.disconnected ? " (device gone)" : ""}`);
          // The device itself may have lost its bus number with the removal: known by where it was bound.
          const input = event.driver === "input" && event.fn.disconnected ? this.inputs.find((e) => e.boundAs?.server === server.name && e.boundAs.fn === functionName(event.fn)) : undefined;
          const binding = input?.bindings[input.bindings.length - 1];
          if (binding && binding.removedNs === null) binding.removedNs = now;
        }
        else say(`${event.driver} ${functionName(event.fn)}: ${event.error.message}`, event.error instanceof DeviceRemoved ? "warn" : "error");
      }
    });
    os.registerDriver(graphicsPciDriver);
    os.registerDriver(dmaTestPciDriver({ length: 1 << 20, seed: 0x5eed }));
    os.registerDriver(nvmeDriver);
    os.registerDriver(inputPciDriver({ entries: 64, onReport: (fn, report, latency) => this.inputReport(fn, report, latency) }));
    say("enumerating PCI");
    spawn(os.boot(), (found) => {
      if (found instanceof Error) say(`enumeration failed: ${found.message}`, "error");
      else say(`enumeration done: ${found.length} functions`);
    });
  }

  private inputReport(fn: PciFunction, report: InputReport, latency: number): void {
    const entry = this.inputs.find((e) => e.device.routingId === idOf(fn));
    if (!entry) return;
    entry.reports++;
    entry.latenciesNs.push(latency);
    if (report.kind === ReportKind.Key) entry.keys += String.fromCharCode(report.code);
  }

  /** What a keyboard/mouse's driver received against what was typed at the chassis. */
  private reportInput(entry: World["inputs"][number]): void {
    if (!entry.boundAs) return;
    const sorted = [...entry.latenciesNs].sort((x, y) => x - y);
    // Keys typed in the last millisecond may still be on their way; anything older must have arrived,
    // in order, unless a surprise removal took it: typed within the server's completion timeout
    // before its driver was unbound with the device gone (held in the tunnel, then discarded at the
    // removal), or after that and before the driver bound again (the device drops input while no
    // driver has set its ring up). Those may arrive or not; nothing else may.
    const mayBeLost = (t: number) => entry.bindings.some((b, i) => b.removedNs !== null && t >= b.removedNs - COMPLETION_TIMEOUT_NS && t < (entry.bindings[i + 1]?.boundNs ?? Infinity));
    let received = 0;
    let lost = 0;
    let ok = true;
    entry.typedAt.forEach((t, i) => {
      if (received < entry.keys.length && entry.keys[received] === entry.typed[i]) received++;
      else if (mayBeLost(t)) lost++;
      else if (t <= this.scheduler.now - 1_000_000) ok = false;
    });
    if (received < entry.keys.length) ok = false; // a key nobody typed, or out of order
    if (!ok) this.dataErrors++;
    const p50 = sorted.length ? (sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2) : "-";
    const max = sorted.length ? (sorted[sorted.length - 1] / 1000).toFixed(2) : "-";
    this.timeline.add({
      timeNs: this.scheduler.now, card: entry.boundAs.server, source: "os", level: ok ? "info" : "error",
      text: `keyboard/mouse ${entry.boundAs.fn}: received "${entry.keys}" (${entry.reports} reports)${ok ? "" : `, typed "${entry.typed}"`}` +
        `${lost ? `, ${lost} key(s) lost with a surprise removal` : ""}; latency p50 ${p50} µs, max ${max} µs`,
    });
  }

  /** A driver bound: report what its probe did, and start the NVMe load on a disk. */
  private bound(server: Server, fn: PciFunction, driver: string, result: unknown, say: (text: string, level?: Level) => void): void {
    const where = functionName(fn);
    if (driver === "graphics") {
      const picture = result as GraphicsResult;
      const adapter = this.graphics.find((g) => g.routingId === idOf(fn));
      const same = adapter !== undefined && Buffer.compare(Buffer.from(adapter.framebuffer.subarray(0, picture.bytes)), Buffer.from(testPicture(picture.width, picture.height))) === 0;
      if (!same) this.dataErrors++;
      say(`graphics ${where}: test picture drawn, ${picture.width}x${picture.height}${same ? ", remote framebuffer matches" : ", remote framebuffer DIFFERS"}`, same ? "info" : "error");
    } else if (driver === "dma-test") {
      const r = result as DmaTestResult;
      const errors = r.hostMismatches + r.deviceErrors;
      this.dataErrors += errors;
      const rate = (ns: number) => (((1 << 20) * 8) / ns).toFixed(2);
      say(`dma-test ${where}: 1 MiB written to server memory in ${(r.writeNs / 1000).toFixed(1)} µs (${rate(r.writeNs)} Gb/s) and read back in ${(r.verifyNs / 1000).toFixed(1)} µs (${rate(r.verifyNs)} Gb/s), ${errors} word errors`, errors ? "error" : "info");
    } else if (driver === "input") {
      const entry = this.inputs.find((e) => e.device.routingId === idOf(fn));
      if (entry) {
        entry.boundAs = { server: server.name, fn: where };
        entry.bindings.push({ boundNs: this.scheduler.now, removedNs: null });
      }
      say(`keyboard/mouse ${where}: driver listening`);
    } else if (driver === "nvme") {
      this.startNvmeLoad(server, fn, result as NvmeDisk, say);
    }
  }

  /** A verified write/read-back load on a disk, from its binding until the run ends or the disk goes. */
  private startNvmeLoad(server: Server, fn: PciFunction, disk: NvmeDisk, say: (text: string, level?: Level) => void): void {
    const where = functionName(fn);
    const { queueDepth, blocksPerCommand, intervalNs } = [...this.nvmeLoads].find(([c]) => c.routingId === idOf(fn))?.[1] ?? NVME_LOAD;
    const pace = intervalNs ? `, a round every ${intervalNs / 1e6} ms per command slot` : "";
    say(`nvme ${where}: ${disk.identity!.mn.trim()} (${disk.blocks} blocks of 512 bytes): verified write and read-back load starts, queue depth ${queueDepth}, ${(blocksPerCommand * 512) / 1024} KiB commands${pace}`);
    const stats = newNvmeLoadStats();
    const run: NvmeRun = {
      fn: where, boundNs: this.scheduler.now, firstVerifiedNs: null, ended: "running", endedNs: null,
      bytesVerified: 0, commands: 0, commandsAborted: 0, errors: 0, mismatches: 0,
    };
    server.summary.nvme.push(run);
    this.nvmeStats.set(run, stats);
    const report = (what: string, level: Level) => {
      const ns = this.scheduler.now - run.boundNs;
      const rate = ns > 0 ? ((stats.verifiedBytes * 8) / ns).toFixed(2) : "0";
      say(`nvme ${where}: ${what}: ${(stats.verifiedBytes / 2 ** 20).toFixed(1)} MiB written and verified in ${(ns / 1e6).toFixed(1)} ms (${rate} Gb/s), ${stats.aborted} command(s) aborted, ${stats.errors} error(s), ${stats.mismatches} mismatch(es)`, level);
    };
    spawn(nvmeLoad(disk, {
      region: { lba: 0, blocks: disk.blocks }, blocksPerCommand, queueDepth, intervalNs, verify: true, stats,
      stop: () => this.stopping,
      onVerified: () => {
        if (run.firstVerifiedNs !== null) return;
        run.firstVerifiedNs = this.scheduler.now;
        say(`nvme ${where}: first read verified ${((this.scheduler.now - run.boundNs) / 1000).toFixed(1)} µs after the driver bound`);
      },
    }), (result) => {
      run.endedNs = this.scheduler.now;
      if (result instanceof Error) {
        stats.ended = "error";
        say(`nvme ${where}: load failed: ${result.message}`, "error");
      } else if (stats.ended === "removed") report("load stopped cleanly, device removed", "warn");
      else if (stats.ended !== "stopped") report(`load ended: ${stats.lastError ?? stats.ended}`, "error");
    });
    this.stopHooks.push(() => {
      if (stats.ended === "running") report("load running at the end of the run", stats.errors + stats.mismatches ? "error" : "info");
    });
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

  /** A TLP out of a tunnel of `card`: checked for cross-delivery, then test traffic to its checker, the rest to the card's PCIe side. */
  private deliver(card: AuditedCard, tlp: Uint8Array, cls: TlpClass, tunnel: TunnelEngine, slot: number): void {
    this.audit.delivered(card, tunnel, tlp, slot);
    if (slot === TRAFFIC_SLOT) this.inbound.get(tunnel)?.checker.deliver(tlp);
    else {
      const copy = tlp.slice();
      const chassis = this.chassisTunnels.get(tunnel);
      if (chassis) chassis.fromHost(copy, slot);
      else this.routers.get(tunnel)?.fromTunnel(tunnel.index, slot, copy);
    }
    tunnel.release(cls, tlp);
  }

  /** The firmware moved a tunnel's link state: the history records it, the audit follows the sessions. */
  private onLinkState(card: AuditedCard, tunnel: TunnelEngine, state: number): void {
    this.linkState(card.name, `tunnel${tunnel.index}:${LinkState[state]?.toLowerCase() ?? state}`);
    this.audit.linkState(card, tunnel, state);
    if (state === LinkState.Active) this.wakeActiveWaiters();
    for (const listener of this.stateListeners) listener(card.name, tunnel.index, state);
  }

  /**
   * Calls `listener` whenever a card's firmware writes a tunnel's LinkState, at that instant (a fault
   * injected "when the chassis card enters Configure" schedules itself from here).
   */
  onLinkStateChange(listener: (card: string, tunnel: number, state: LinkState) => void): void {
    this.stateListeners.push(listener);
  }

  /** Whether every card of `cards` has its tunnel `tunnel` Active now. */
  private allActive(cards: string[], tunnel: number): boolean {
    return cards.every((name) => this.fabric(name).tunnels[tunnel]?.readRegister(TunnelReg.LinkState) === LinkState.Active);
  }

  private wakeActiveWaiters(): void {
    for (const waiter of [...this.activeWaiters]) {
      if (!this.allActive(waiter.cards, waiter.tunnel)) continue;
      this.activeWaiters.splice(this.activeWaiters.indexOf(waiter), 1);
      // In this instant, after the firmware's batch has finished taking effect.
      this.scheduler.at(this.scheduler.now, waiter.then);
    }
  }

  /**
   * Calls `then` once, at the first moment every card of `cards` has its tunnel `tunnel` Active
   * (its firmware wrote LinkState Active); in this instant if they already have. Pairing takes
   * the soft-cores' batches (about 110 ms from power-on at 100 MHz: docs/softcore.md), so tests
   * start what needs a link (traffic, faults) from there rather than at a fixed time.
   */
  whenActive(cards: string[], then: () => void, tunnel = 0): void {
    for (const name of cards) this.fabric(name);
    this.activeWaiters.push({ cards, tunnel, then });
    this.wakeActiveWaiters();
  }

  /** `from`'s tunnel that is up with card `to`, if any. */
  private tunnelBetween(from: string, to: string): TunnelEngine | null {
    const peer = this.cards.find((c) => c.name === to);
    if (!peer) throw new Error(`scenario ${this.options.scenario.name}: no card named ${to}`);
    const keys = this.fabric(to).macs.map((mac) => macKey(mac.address));
    return this.fabric(from).tunnels.find((t) => keys.includes(t.peerKey()) && t.readRegister(TunnelReg.LinkState) === LinkState.Active) ?? null;
  }

  /**
   * Starts test traffic `spec` now, whatever its startNs, as a scenario's traffic entry number
   * `index` starts at its startNs (the index seeds its TLPs). With no tunnel up between the two
   * cards it sends nothing and says so on the timeline. With `whileUp`, TLPs go into the tunnel
   * only while its link is Active or Recovery, as the PCIe side sends them (a flow that outlives
   * its session waits for the next one); else whatever the link state, to see what the tunnel
   * does with them.
   */
  startTraffic(spec: TrafficSpec, index: number, o: { whileUp?: boolean } = {}): void {
    const tunnel = this.tunnelBetween(spec.from, spec.to);
    const back = this.tunnelBetween(spec.to, spec.from);
    if (!tunnel || !back) {
      this.note(spec.from, `traffic: no tunnel is up between ${spec.from} and ${spec.to}; ${spec.count} TLPs not sent`, "error");
      return;
    }
    const stream = new TlpStream(xoroshiro128plus((this.options.seed + 0x7a11 * (index + 1)) >>> 0), spec.mix, spec.payload);
    const flow: Flow = { spec, stream, checker: new DeliveryChecker(stream), tunnel, end: back };
    this.flows.push(flow);
    this.inbound.set(back, flow);
    this.note(spec.from, `traffic: ${spec.count} TLPs of ${spec.payload} bytes to ${spec.to} start`);
    const up = () => !o.whileUp || [LinkState.Active, LinkState.Recovery].includes(tunnel.readRegister(TunnelReg.LinkState));
    // Test traffic enters the tunnel as the card's PCIe side would: while its send queue has room
    // (TunnelReg.QueueBytes), so it takes its turn with the server's and the devices' TLPs.
    const room = () => tunnel.hasRoom(TlpClass.Posted) && tunnel.hasRoom(TlpClass.NonPosted) && tunnel.hasRoom(TlpClass.Completion);
    const feed = () => {
      while (up() && room() && stream.count < spec.count) tunnel.submit(stream.next(), TRAFFIC_SLOT);
      if (stream.count < spec.count) this.scheduler.at(this.scheduler.now + 2_000, feed);
      else this.scheduler.at(this.scheduler.now + 2_000, () => this.watchDone(flow));
    };
    feed();
  }

  /** A tunnel threw a TLP away when its session ended: a test TLP is aborted by removal for its flow (sent from that tunnel, or `received` by it). */
  private discarded(tlp: Uint8Array, slot: number, tunnel: TunnelEngine, received: boolean): void {
    if (slot !== TRAFFIC_SLOT) return;
    const flow = received ? this.inbound.get(tunnel) : this.flows.find((f) => f.tunnel === tunnel);
    flow?.checker.abort(tlp);
  }

  private watchDone(flow: Flow): void {
    if (flow.checker.unique < flow.spec.count) {
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
      counters: () => this.audit.countersReported(name),
      // A host card's link to its server's root port goes down with its power and comes up with it.
      power: (_card, on) => {
        for (const server of this.servers) if (server.host === name) server.rc.setLink(on);
      },
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

  /**
   * The card's flash: from DIR/CARD.flash when a flash directory is given (written with the
   * factory image when new), else in memory with the factory image. The factory also writes
   * the configuration record of `link` when the flash holds no valid one; a record already
   * there (a group change a station made) stays.
   */
  private flashFor(name: string, link: LinkConfig | undefined): Flash {
    let flash: Flash;
    if (!this.options.flashDir) {
      flash = Flash.erased();
      installImage(flash, this.factoryFirmware().image);
    } else {
      mkdirSync(this.options.flashDir, { recursive: true });
      const file = Flash.file(join(this.options.flashDir, `${name}.flash`));
      flash = file.flash;
      if (file.created) installImage(flash, this.factoryFirmware().image);
      this.stopHooks.push(() => flash.close());
    }
    if (link && !readConfigRecord(flash)) writeFactoryConfig(flash, link);
    return flash;
  }

  /** The scenario's firmware.wasm, read once, and its image as the factory installs it: signed with the development key. */
  private factoryFirmware(): { payload: Uint8Array; image: Uint8Array } {
    if (!this.factory) {
      const payload = readFileSync(this.options.engineOptions.firmware);
      this.factory = { payload, image: developmentImage(payload) };
    }
    return this.factory;
  }

  /** A file holding `payload` for the engine: the scenario's firmware file itself when it is that. */
  private firmwareFile(payload: Uint8Array): string {
    const { firmware } = this.options.engineOptions;
    return Buffer.compare(this.factoryFirmware().payload, payload) === 0 ? firmware : firmwareFile(payload);
  }

  async run(): Promise<RunSummary> {
    const { scenario } = this.options;
    const duration = this.options.durationNs ?? scenario.durationNs;
    scenario.cards.forEach((spec, i) => {
      const card = this.cards[i];
      this.scheduler.at(spec.powerOnNs, () => card.powerOn(ResetCause.PowerOn));
    });
    for (const action of scenario.actions ?? []) {
      if (action.atNs <= duration) this.scheduler.at(action.atNs, () => this.act(action));
    }
    if (this.options.console !== undefined) {
      const { servers, endpoints } = await ConsoleServers.open(this.cards, this.options.console, (action) => this.scheduler.at(this.scheduler.realTimeNow(), action));
      this.stopHooks.push(() => servers.close());
      this.options.onConsoles?.(endpoints);
      this.scheduler.realTime(true);
    }
    if (this.options.manage !== undefined) {
      if (!this.management) throw new Error(`management port: scenario ${scenario.name} has none (a scenario's \`management\` switch port)`);
      const { endpoint, close } = await this.management.serve(this.options.manage, (action) => this.scheduler.at(this.scheduler.realTimeNow(), action));
      this.stopHooks.push(close);
      this.options.onManage?.(endpoint);
      this.scheduler.realTime(true);
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
    if (this.options.lspci) {
      const file = this.options.lspci;
      this.stopHooks.push(async () => {
        for (const server of this.servers) {
          const name = this.servers.length === 1 ? file : file.replace(/(\.txt)?$/, `.${server.name}$1`);
          const result: { dump?: string | Error } = {};
          spawn(lspciDump(server.os), (r) => (result.dump = r));
          while (result.dump === undefined) await this.scheduler.run(this.scheduler.now + 1_000_000);
          if (result.dump instanceof Error) throw result.dump;
          writeFileSync(name, result.dump);
        }
      });
    }
    scenario.traffic.forEach((spec, i) => {
      if (spec.startNs <= duration) this.scheduler.at(spec.startNs, () => this.startTraffic(spec, i));
    });
    await this.scheduler.run(duration);
    this.stopping = true;
    // The cards' statistics over the simulated time, taken now: the stop hooks (an lspci dump) and
    // the counters' collection below run the soft-cores on past it.
    const stats = this.cards.map((card) => card.statsNow());
    // So are the NVMe loads: past it, a load that starts a round sees the run stopping and ends.
    const nvme = new Map([...this.nvmeStats].map(([run, load]) => [run, { ...load, endedNs: run.endedNs }]));
    // And the longest request wait: a request still waiting has waited until now.
    const hold = this.worstHold();
    for (const hook of this.stopHooks) await hook(this);
    // Collect each firmware's own counters before powering the cards off: the report comes when the
    // soft-core has run the query's batch (and whatever it was busy with), within a watchdog period.
    const asked = this.cards.filter((card) => card.state === "running");
    for (const card of asked) {
      card.firmwareCounters = null;
      card.post({ kind: "countersQuery" });
    }
    const deadline = this.scheduler.now + WATCHDOG_TIMEOUT_NS;
    await this.scheduler.run(this.scheduler.now);
    while (asked.some((card) => card.state === "running" && card.firmwareCounters === null) && this.scheduler.now < deadline) {
      await this.scheduler.run(this.scheduler.now + COUNTERS_POLL_NS);
    }
    const summary = this.summary(Number.isFinite(duration) ? duration : this.scheduler.now, stats, nvme, hold);
    for (const card of this.cards) await card.powerOff();
    for (const fd of this.files.splice(0)) closeSync(fd);
    return summary;
  }

  /** Carries out a scenario action (checked by checkScenario before the run), or one a tool injects during the run (tools/sim/faults.ts). */
  async act(action: ActionSpec): Promise<void> {
    const net = (what: string, text: string) => this.timeline.add({ timeNs: this.scheduler.now, card: what, source: "net", text, level: "info" });
    switch (action.kind) {
      case "reboot":
        return this.card(action.card).reset(ResetCause.Software);
      case "power-cut":
        return this.card(action.card).powerCut();
      case "power-on":
        return this.card(action.card).powerOn(ResetCause.PowerOn);
      case "assign": {
        const card = this.card(action.card);
        const assignment = this.audit.assigning(action.card, action.group);
        this.management!.assign(card.config.serial, action.group, (text, level) =>
          this.timeline.add({ timeNs: this.scheduler.now, card: "station", source: "manage", text, level }), (error) => this.audit.assigned(assignment, error));
        return;
      }
      case "pull-cable":
      case "plug-cable": {
        const pull = action.kind === "pull-cable";
        this.network.link(action.cable).hold("pulled", pull);
        net(action.cable, pull ? "cable pulled" : `cable plugged back${this.network.link(action.cable).up ? "" : " (the link stays down: a switch port is failed)"}`);
        return;
      }
      case "fail-port":
      case "restore-port": {
        const fail = action.kind === "fail-port";
        const link = this.network.linkAt(action.switch, action.port);
        link?.hold(`${action.switch}:${action.port}`, fail);
        net(action.switch, `port ${action.port} ${fail ? "failed" : "restored"}${link ? `: cable ${link.id} ${link.up ? "up" : "down"}` : ", nothing plugged into it"}`);
        return;
      }
      case "fail-switch":
      case "restore-switch": {
        const fail = action.kind === "fail-switch";
        const links = Array.from({ length: this.network.switch(action.switch).portCount }, (_, port) => this.network.linkAt(action.switch, port)).filter((l) => l !== null);
        for (const link of links) link.hold(action.switch, fail);
        net(action.switch, `${fail ? "switch failed" : "switch restored"}: ${links.filter((l) => l.up).length} of ${links.length} cables up`);
        return;
      }
      default:
        throw new Error(`scenario ${this.options.scenario.name}: cannot do ${describeAction(action)}`);
    }
  }

  private card(name: string): Card {
    const card = this.cards.find((c) => c.name === name);
    if (!card) throw new Error(`scenario ${this.options.scenario.name}: no card named ${name}`);
    return card;
  }

  /** NVMe bytes written, read back and found equal so far, by every server's load (a live figure, for throughput over time). */
  nvmeVerifiedBytes(): number {
    let bytes = 0;
    for (const stats of this.nvmeStats.values()) bytes += stats.verifiedBytes;
    return bytes;
  }

  /** The chassis devices that are PCIe endpoints, each with where it sits. */
  private endpoints(): { where: string; device: Endpoint }[] {
    const out: { where: string; device: Endpoint }[] = [];
    for (const [chassis, root] of this.chassisRoots) {
      for (let slot = 0; slot < root.slots; slot++) {
        const device = root.device(slot);
        if (device instanceof Endpoint) out.push({ where: `${chassis} slot ${slot}`, device });
      }
    }
    return out;
  }

  /** The longest wait of any request so far, the servers' and the chassis devices' DMA reads, with whose it was; null before the first. */
  private worstHold(): { hold: RequestHold; who: string } | null {
    const holds = [
      ...this.servers.map((server) => ({ who: server.name, hold: server.rc.worstHold() })),
      ...this.endpoints().map(({ where, device }) => ({ who: where, hold: device.worstHold() })),
    ];
    let worst: { hold: RequestHold; who: string } | null = null;
    for (const { who, hold } of holds) if (hold && (worst === null || hold.ns > worst.hold.ns)) worst = { hold, who };
    return worst;
  }

  private summary(duration: number, stats: CardStats[], nvme: Map<NvmeRun, NvmeLoadStats & Pick<NvmeRun, "endedNs">>, hold: { hold: RequestHold; who: string } | null): RunSummary {
    let nvmeErrors = 0;
    for (const [run, stats] of nvme) {
      Object.assign(run, {
        ended: stats.ended, endedNs: stats.endedNs, bytesVerified: stats.verifiedBytes, commands: stats.commands, commandsAborted: stats.aborted,
        errors: stats.errors, mismatches: stats.mismatches,
      });
      nvmeErrors += stats.errors + stats.mismatches;
    }
    const cards = this.cards.map((card, i) => ({
      name: card.name,
      role: card.config.role === CardRole.Host ? ("host" as const) : ("chassis" as const),
      serial: `0x${card.config.serial.toString(16).padStart(8, "0")}`,
      firmware: card.firmwareVersion,
      state: card.state,
      linkStates: this.linkStates.get(card.name)!,
      stats: stats[i],
      uart: { ...card.uart.stats },
      firmwareCounters: card.firmwareCounters,
      ...(card.config.role === CardRole.Chassis ? { owners: this.audit.owners.get(card.name) ?? [] } : {}),
      ports: this.portSummaries(card.name),
      paths: this.pathSummaries(card.name),
    }));
    const invariants = this.audit.finish(duration);
    if (this.attacker) {
      const { accepted, uncounted } = this.audit.attack;
      if (accepted) invariants.push(`${accepted} frame(s) of the rogue station accepted (validated with a new PN, or delivering a TLP)`);
      if (uncounted) invariants.push(`${uncounted} frame(s) of the rogue station reached a card and no counter of it counted them`);
      if (this.attacker.stats.tlpsRecovered) invariants.push(`the rogue station read ${this.attacker.stats.tlpsRecovered} TLP(s) off the wire`);
    }
    return {
      scenario: this.options.scenario.name,
      seed: this.options.seed,
      engine: this.options.engine,
      softcoreMhz: this.softcore.mhz,
      simulatedNs: duration,
      cards,
      tlps: {
        sent: this.flows.reduce((n, f) => n + f.stream.count, 0),
        delivered: this.flows.reduce((n, f) => n + f.checker.unique, 0),
        // Per flow: sent and never delivered, neither still held by its two tunnels (queued, on
        // the way, held for reordering) nor discarded when its session ended.
        lost: this.flows.reduce((n, f) => n + f.checker.lost([...f.tunnel.tlpsToSend(TRAFFIC_SLOT), ...f.end.tlpsHeld(TRAFFIC_SLOT)]), 0),
        duplicated: this.flows.reduce((n, f) => n + f.checker.duplicates, 0),
        reordered: this.flows.reduce((n, f) => n + f.checker.misordered, 0),
        abortedByRemoval: this.flows.reduce((n, f) => n + f.checker.abortedByRemoval(), 0),
      },
      hostCompletionTimeouts: this.servers.reduce((n, s) => n + s.rc.counters.completionTimeouts, 0),
      deviceCompletionTimeouts: this.endpoints().reduce((n, e) => n + e.device.counters.completionTimeouts, 0),
      worstRequestNs: hold?.hold.ns ?? 0,
      worstRequest: hold ? `${hold.who}: ${hold.hold.what}, issued at ${(hold.hold.sinceNs / 1e9).toFixed(6)} s` : "",
      dataVerificationErrors: this.dataErrors + nvmeErrors,
      hotplugEvents: Object.fromEntries(cards.filter((c) => c.role === "host").map((c) => {
        const counters = this.servers.filter((s) => s.host === c.name).map((s) => s.os.hotplugCounters());
        return [c.name, { removals: counters.reduce((n, h) => n + h.removals, 0), insertions: counters.reduce((n, h) => n + h.insertions, 0) }];
      })),
      servers: this.servers.map((s) => ({
        ...s.summary, errorCompletions: s.rc.counters.errorCompletions, requestsOutstanding: s.rc.outstandingRequests, configReads: latencies(s.rc.configReadNs),
      })),
      firmwareTraps: cards.reduce((n, c) => n + c.stats.traps, 0),
      mailboxErrors: cards.reduce((n, c) => n + c.stats.mailboxErrors, 0),
      macsec: this.macsecSummary(),
      switches: this.switchSummaries(),
      ...(this.attacker ? { attack: { ...this.attacker.stats, sent: { ...this.attacker.stats.sent }, ...this.audit.attack } } : {}),
      crossDeliveries: this.audit.crossDeliveries,
      unresetHandovers: this.audit.unresetHandovers,
      assignments: this.audit.assignments.map((a) => ({ ...a })),
      invariants,
    };
  }
}
