// Built-in scenarios: which cards exist, when they power on, how long the run lasts.

import { createHash } from "node:crypto";
import { CardRole, LogLevel, MacsecSetting } from "../../board/map/mailbox.ts";
import { LINK_PROTOCOL_MAX, LinkTiming, AckPolicy } from "../../board/map/link.ts";
import type { LinkConfig as CableConfig } from "./net/link.ts";
import type { SwitchConfig } from "./net/switch.ts";
import type { LinkConfig } from "../../board/mailbox-codec.ts";
import type { AttackerSpec } from "./attacker.ts";
import type { TrafficMix } from "./traffic.ts";
import { fleetScenario, FLEET, FLEET_DUAL } from "./fleet.ts";

export interface CardSpec {
  name: string;
  role: CardRole;
  serial: number;
  slots: number;
  powerOnNs: number;
  /**
   * The link section of the card's flash configuration: the scenario's `link` with these
   * fields changed; `installation` names the pairing key (see pairingKey). null: no
   * configuration, so the card's link stays disabled.
   */
  link?: (Partial<Omit<LinkConfig, "pairingKey" | "adminKey">> & { installation?: string }) | null;
}

/** A cable between two cards, or between a card and a switch port. */
/** A cable end: a card's port 0 by the card's name, a card's port, or a switch port. */
export type CableEnd = string | { card: string; port: number } | { switch: string; port: number };

/** The card and port a cable end names, or null for a switch port. */
export function cardEnd(end: CableEnd): { card: string; port: number } | null {
  if (typeof end === "string") return { card: end, port: 0 };
  return "card" in end ? end : null;
}

export interface CableSpec {
  id: string;
  a: CableEnd;
  b: CableEnd;
  config: Omit<CableConfig, "seed">;
}

/** An Ethernet switch; cables name its ports. */
export interface SwitchSpec {
  name: string;
  config: SwitchConfig;
}

/**
 * Something that happens during the run, at `atNs` (docs/scenarios.md#actions):
 * - reboot: a card's software reset; power-cut: its power is lost (a flash operation stops
 *   halfway); power-on: power back;
 * - assign: the management station moves a card to `group` (SetGroup; the scenario needs `management`);
 * - pull-cable / plug-cable: cable `cable` is pulled (the link goes down for both ends) and plugged back;
 * - fail-port / restore-port: port `port` of switch `switch` stops (its PHY: the link on that
 *   port goes down for both ends) and comes back;
 * - fail-switch / restore-switch: switch `switch` loses power (every port's link goes down, and
 *   with it what the switch had learned) and boots again.
 * A link is up while nothing holds it down: a pulled cable stays down while its switch port is
 * restored, and the other way round.
 */
export type ActionSpec = CardAction | AssignAction | CableAction | PortAction | SwitchAction;

export interface CardAction {
  atNs: number;
  kind: "reboot" | "power-cut" | "power-on";
  card: string;
}

export interface AssignAction {
  atNs: number;
  kind: "assign";
  card: string;
  /** The new group, 1..4094, not the management VLAN. */
  group: number;
}

export interface CableAction {
  atNs: number;
  kind: "pull-cable" | "plug-cable";
  /** A cable's id, or "management" for the management station's. */
  cable: string;
}

export interface PortAction {
  atNs: number;
  kind: "fail-port" | "restore-port";
  switch: string;
  port: number;
}

export interface SwitchAction {
  atNs: number;
  kind: "fail-switch" | "restore-switch";
  switch: string;
}

/** Every action kind, in the order docs/scenarios.md lists them. */
export const ACTION_KINDS = ["reboot", "power-cut", "power-on", "assign", "pull-cable", "plug-cable", "fail-port", "restore-port", "fail-switch", "restore-switch"] as const satisfies readonly ActionSpec["kind"][];

/** TLPs from one card to another through their tunnel, `count` of them from `startNs`, as fast as the tunnel takes them. */
export interface TrafficSpec {
  from: string;
  to: string;
  count: number;
  startNs: number;
  payload: number;
  mix: TrafficMix;
}

/** A device in a chassis slot. */
export interface DeviceSpec {
  chassis: string;
  slot: number;
  kind: "dma-test" | "graphics" | "keyboard-mouse" | "nvme";
  /**
   * keyboard-mouse: text typed at the chassis, one character (and a mouse move) every intervalNs
   * from startNs, or, when no driver has the device reporting then, from the moment one does.
   */
  typing?: { text: string; startNs: number; intervalNs: number };
  /**
   * nvme: the verified write and read-back load the server runs on it from each binding:
   * commands in flight, blocks of 512 bytes per command, and how often each worker starts a
   * round (0: back to back). Default NVME_LOAD.
   */
  load?: NvmeLoadSpec;
}

export interface NvmeLoadSpec {
  queueDepth: number;
  blocksPerCommand: number;
  intervalNs: number;
}

/** A paced load: one 32 KiB write and read-back every millisecond (0.5 Gb/s of verified I/O). */
export const NVME_LOAD: NvmeLoadSpec = { queueDepth: 1, blocksPerCommand: 64, intervalNs: 1_000_000 };

/**
 * A server with the host card `host` in its root port. Its OS enumerates at `enumerateNs`
 * and then runs the drivers of the devices it finds.
 */
export interface ServerSpec {
  name: string;
  host: string;
  enumerateNs: number;
}

export interface Scenario {
  name: string;
  description: string;
  durationNs: number;
  logLevel: LogLevel;
  cards: CardSpec[];
  cables: CableSpec[];
  switches?: SwitchSpec[];
  actions?: ActionSpec[];
  /** The flash configuration every card starts from; the pairing key comes from `installation`. */
  link: Omit<LinkConfig, "pairingKey" | "adminKey"> & { installation: string };
  traffic: TrafficSpec[];
  devices: DeviceSpec[];
  servers: ServerSpec[];
  /** The cards' UART line rate (default 115 200 baud). */
  uartBaud?: number;
  /** A management station's cable to this switch port (docs/management.md): tools/sim/management-port.ts. */
  management?: { switch: string; port: number };
  /** A rogue station on this switch port, which must be the switch's mirror port (docs/scenarios.md#attack): tools/sim/attacker.ts. */
  attacker?: AttackerSpec;
}

/**
 * The link configuration a card leaves the factory with (docs/link.md): group 100,
 * management on VLAN 4000, the newest protocol, both acknowledgement policies, standard Ethernet MTU, 256-byte payloads,
 * the timers justified in docs/link.md, and MACsec on the data path (GCM-AES-XPN-128).
 */
export const DEFAULT_LINK: Scenario["link"] = {
  group: 100,
  protocolMax: LINK_PROTOCOL_MAX,
  ackPolicies: AckPolicy.Selective | AckPolicy.GoBackN,
  mtu: 1500,
  maxPayload: 256,
  keepaliveNs: LinkTiming.KeepaliveNs,
  silenceNs: LinkTiming.SilenceNs,
  graceNs: LinkTiming.GraceNs,
  managementVlan: 4000,
  macsec: MacsecSetting.Xpn128,
  installation: "default",
};

/** The 32-byte pairing key of an installation: SHA-256 of its name (simulated installations only). */
export function pairingKey(installation: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(`iov pairing key: ${installation}`).digest());
}

/** The 32-byte admin key of an installation, which authenticates management requests: SHA-256 of its name (simulated installations only). */
export function adminKey(installation: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(`iov admin key: ${installation}`).digest());
}

/** The CONFIG record card `spec` of `scenario` boots with, or undefined when it has none. */
export function cardLink(scenario: Scenario, spec: CardSpec): LinkConfig | undefined {
  if (spec.link === null) return undefined;
  const { installation, ...fields } = { ...scenario.link, ...spec.link };
  return { ...fields, pairingKey: pairingKey(installation), adminKey: adminKey(installation) };
}


/**
 * The default pair with a second cable between the cards' Ethernet ports 1, pulled at 300 ms for
 * 200 ms under load instead of the first: the session rides on its first path meanwhile (docs/scenarios.md#dual).
 */
function dualScenario(base: Scenario): Scenario {
  return {
    ...base,
    name: "dual",
    description: "the default pair with two cables, one between the cards' Ethernet ports 0 and one between their ports 1 (10 m each): the tunnel pairs on one, joins the other as a second path and carries DATA on both; at 300 ms the second cable is pulled for 200 ms under NVMe load and test traffic: its path goes silent, what it carried goes on the first, and the server sees nothing (no hot-plug event, no completion timeout); plugged back, the path carries again",
    cables: [
      { id: "cable0", a: "host", b: "chassis", config: { lengthM: 10 } },
      { id: "cable1", a: { card: "host", port: 1 }, b: { card: "chassis", port: 1 }, config: { lengthM: 10, outages: [{ downAtNs: 300_000_000, upAtNs: 500_000_000 }] } },
    ],
    traffic: base.traffic.map((t) => ({ ...t, count: 3 * t.count })),
    devices: base.devices.map((d) => (d.kind === "nvme" ? { ...d, load: { queueDepth: 8, blocksPerCommand: 64, intervalNs: 0 } } : d)),
  };
}

export const SCENARIOS: Record<string, Scenario> = {
  default: {
    name: "default",
    description: "a server's host card and a chassis card 100 m apart (10GbE, 0.1 % frame loss) find each other, pair and bring their tunnel up; the server enumerates the remote graphics adapter, DMA test device, keyboard/mouse and NVMe drive, draws on the remote screen, runs verified DMA and a verified NVMe load and reads what is typed, while test traffic crosses both ways; at 300 ms the cable is pulled for 200 ms, under NVMe load: a surprise removal, then a hot-plug insertion, and the load resumes",
    durationNs: 1e9,
    logLevel: LogLevel.Info,
    cards: [
      { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 2, powerOnNs: 0 },
      { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 4, powerOnNs: 250_000 },
    ],
    cables: [{ id: "cable", a: "host", b: "chassis", config: { lengthM: 100, aToB: { loss: 0.001 }, bToA: { loss: 0.001 }, outages: [{ downAtNs: 300_000_000, upAtNs: 500_000_000 }] } }],
    link: { ...DEFAULT_LINK, mtu: 9000 },
    traffic: [
      // The tunnel is up about 110 ms after power-on at the soft-core's 100 MHz (docs/softcore.md).
      { from: "host", to: "chassis", count: 100_000, startNs: 150_000_000, payload: 256, mix: { posted: 1, nonPosted: 0, completion: 0 } },
      { from: "chassis", to: "host", count: 20_000, startNs: 150_000_000, payload: 64, mix: { posted: 6, nonPosted: 1, completion: 3 } },
    ],
    devices: [
      { chassis: "chassis", slot: 0, kind: "graphics" },
      { chassis: "chassis", slot: 1, kind: "dma-test" },
      { chassis: "chassis", slot: 2, kind: "keyboard-mouse", typing: { text: "hello from the chassis", startNs: 200_000_000, intervalNs: 1_000_000 } },
      { chassis: "chassis", slot: 3, kind: "nvme" },
    ],
    servers: [{ name: "server", host: "host", enumerateNs: 2_000_000 }],
  },
  console: {
    name: "console",
    description: "a quiet pair for interactive use with --console: a server's host card paired with a chassis card that holds a graphics adapter and a DMA test device, no test traffic; attach to a card's console, look around, update its firmware",
    durationNs: 3600e9,
    logLevel: LogLevel.Info,
    cards: [
      { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 2, powerOnNs: 0 },
      { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 2, powerOnNs: 0 },
    ],
    cables: [{ id: "cable", a: "host", b: "chassis", config: { lengthM: 10 } }],
    link: { ...DEFAULT_LINK, mtu: 9000, keepaliveNs: 1_000_000, silenceNs: 8_000_000, graceNs: 50_000_000 },
    traffic: [],
    devices: [
      { chassis: "chassis", slot: 0, kind: "graphics" },
      { chassis: "chassis", slot: 1, kind: "dma-test" },
    ],
    servers: [{ name: "server", host: "host", enumerateNs: 2_000_000 }],
  },
  handover: {
    name: "handover",
    description: "two servers, each with a host card (groups 100 and 200), and a chassis card with a graphics adapter and a DMA test device, all on one switch; the chassis starts in group 100 with the first server. A management station sits on the switch's fourth port (a trunk of the management VLAN only): run with --manage and hand the chassis over with `iov manage assign 0x20000001 --group 200`",
    durationNs: 3600e9,
    logLevel: LogLevel.Info,
    cards: [
      { name: "host1", role: CardRole.Host, serial: 0x1000_0001, slots: 2, powerOnNs: 0 },
      { name: "host2", role: CardRole.Host, serial: 0x1000_0002, slots: 2, powerOnNs: 0, link: { group: 200 } },
      { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 2, powerOnNs: 0 },
    ],
    cables: ["host1", "host2", "chassis"].map((name, port) => ({ id: `cable-${name}`, a: name, b: { switch: "switch", port }, config: { lengthM: 10 } })),
    switches: [{ name: "switch", config: { ports: [{ mode: "trunk" }, { mode: "trunk" }, { mode: "trunk" }, { mode: "trunk", allowed: [DEFAULT_LINK.managementVlan] }] } }],
    management: { switch: "switch", port: 3 },
    link: { ...DEFAULT_LINK, mtu: 9000, keepaliveNs: 1_000_000, silenceNs: 8_000_000, graceNs: 50_000_000 },
    traffic: [],
    devices: [
      { chassis: "chassis", slot: 0, kind: "graphics" },
      { chassis: "chassis", slot: 1, kind: "dma-test" },
    ],
    servers: [
      { name: "server1", host: "host1", enumerateNs: 2_000_000 },
      { name: "server2", host: "host2", enumerateNs: 2_000_000 },
    ],
  },
  attack: {
    name: "attack",
    description: "the default pair on a switch whose third port mirrors every frame to a rogue station; from 150 ms the station reads every frame for TLPs, and every 20 µs forges a DATA frame of the live session with the next PN, sends a DATA frame in clear, flips a bit of a frame just seen (FCS recomputed), replays a recorded frame, or, once the cable pull has made the cards pair again, replays a frame of their earlier session; MACsec must drop and count every one, and the servers and the test traffic see nothing of it",
    durationNs: 1e9,
    logLevel: LogLevel.Info,
    cards: [
      { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 2, powerOnNs: 0 },
      { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 4, powerOnNs: 250_000 },
    ],
    cables: [
      { id: "cable-host", a: "host", b: { switch: "switch", port: 0 }, config: { lengthM: 10, outages: [{ downAtNs: 300_000_000, upAtNs: 500_000_000 }] } },
      { id: "cable-chassis", a: "chassis", b: { switch: "switch", port: 1 }, config: { lengthM: 10 } },
    ],
    switches: [{ name: "switch", config: { ports: [{ mode: "trunk" }, { mode: "trunk" }, { mode: "trunk" }], mirror: 2 } }],
    attacker: { switch: "switch", port: 2, startNs: 150_000_000, intervalNs: 20_000 },
    link: { ...DEFAULT_LINK, mtu: 9000 },
    traffic: [
      { from: "host", to: "chassis", count: 100_000, startNs: 150_000_000, payload: 256, mix: { posted: 1, nonPosted: 0, completion: 0 } },
      { from: "chassis", to: "host", count: 20_000, startNs: 150_000_000, payload: 64, mix: { posted: 6, nonPosted: 1, completion: 3 } },
    ],
    devices: [
      { chassis: "chassis", slot: 0, kind: "graphics" },
      { chassis: "chassis", slot: 1, kind: "dma-test" },
      { chassis: "chassis", slot: 2, kind: "keyboard-mouse", typing: { text: "hello from the chassis", startNs: 200_000_000, intervalNs: 1_000_000 } },
      { chassis: "chassis", slot: 3, kind: "nvme" },
    ],
    servers: [{ name: "server", host: "host", enumerateNs: 2_000_000 }],
  },
  get dual(): Scenario {
    return dualScenario(SCENARIOS.default);
  },
  get "dual-switch"(): Scenario {
    const dual = dualScenario(SCENARIOS.default);
    const trunks = { ports: [{ mode: "trunk" as const }, { mode: "trunk" as const }] };
    return {
      ...dual,
      name: "dual-switch",
      description: "the dual pair with each Ethernet port on its own switch (ports 0 on switch a, ports 1 on switch b, 10 m cables); the tunnel pairs through one switch and joins a path through the other; at 300 ms switch b loses power (both its links go down) and at 500 ms it is back: the session rides on switch a meanwhile, and the server sees nothing",
      switches: [{ name: "switch-a", config: trunks }, { name: "switch-b", config: trunks }],
      cables: (["host", "chassis"] as const).flatMap((card, i) => [0, 1].map((port) => ({
        id: `${card}-eth${port}`, a: { card, port }, b: { switch: port === 0 ? "switch-a" : "switch-b", port: i }, config: { lengthM: 10 },
      }))),
      actions: [
        { atNs: 300_000_000, kind: "fail-switch", switch: "switch-b" },
        { atNs: 500_000_000, kind: "restore-switch", switch: "switch-b" },
      ],
    };
  },
  get asym(): Scenario {
    const dual = dualScenario(SCENARIOS.default);
    return {
      ...dual,
      name: "asym",
      description: "the dual pair with paths of different lengths and quality: 10 m between the cards' ports 0, 2 km with 1 % frame loss each way between their ports 1; the tunnel carries DATA on both, the reorder buffer absorbs their different delays, and what the long path loses goes again on either",
      cables: [
        { id: "cable0", a: "host", b: "chassis", config: { lengthM: 10 } },
        { id: "cable1", a: { card: "host", port: 1 }, b: { card: "chassis", port: 1 }, config: { lengthM: 2000, aToB: { loss: 0.01 }, bToA: { loss: 0.01 } } },
      ],
    };
  },
  /** 256 servers, 64 chassis, leaf and spine switches, a schedule of moves and failures (tools/sim/fleet.ts); built when asked for. */
  get fleet(): Scenario {
    return fleetScenario(FLEET);
  },
  /** The fleet with every card dual-homed to a leaf in each of two fabrics (tools/sim/fleet.ts). */
  get "fleet-dual"(): Scenario {
    return fleetScenario(FLEET_DUAL);
  },
};

/** Locally administered unicast MAC derived from the card serial: 02:10:xx:xx:xx:xx. */
export function macFor(serial: number): Uint8Array {
  return Uint8Array.of(0x02, 0x10, serial >>> 24, (serial >>> 16) & 0xff, (serial >>> 8) & 0xff, serial & 0xff);
}

export interface PairOptions {
  durationNs: number;
  lengthM?: number;
  /** Frame loss on the path, both directions. */
  loss?: number;
  /** Cable outages of the chassis card's cable. */
  outages?: { downAtNs: number; upAtNs?: number }[];
  /** Through a switch (trunk ports): the far end of a cut cable sees silence, not carrier loss. */
  switched?: boolean;
  host?: Partial<CardSpec>;
  chassis?: Partial<CardSpec>;
  /** More cards on the switch (switched only). */
  others?: CardSpec[];
  /** A management station on one more switch port, a trunk of the management VLAN only (implies switched). */
  management?: boolean;
  traffic?: TrafficSpec[];
  actions?: ActionSpec[];
}

/**
 * A host card and a chassis card (one slot each, no devices or servers) for link tests and
 * benchmarks: a direct cable, or a switch with a cable per card; both power on at 0.
 */
export function pairScenario(o: PairOptions): Scenario {
  const cards: CardSpec[] = [
    { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 1, powerOnNs: 0, ...o.host },
    { name: "chassis", role: CardRole.Chassis, serial: 0x2000_0001, slots: 1, powerOnNs: 0, ...o.chassis },
    ...(o.others ?? []),
  ];
  const cable = (outages?: PairOptions["outages"]) => ({
    lengthM: o.lengthM ?? 10,
    ...(o.loss ? { aToB: { loss: o.loss }, bToA: { loss: o.loss } } : {}),
    ...(outages ? { outages } : {}),
  });
  const switched = o.switched || o.management || (o.others?.length ?? 0) > 0;
  const link = { ...DEFAULT_LINK, mtu: 9000 };
  const ports = cards.map(() => ({ mode: "trunk" as const }));
  return {
    name: "pair",
    description: "a host card and a chassis card",
    durationNs: o.durationNs,
    logLevel: LogLevel.Info,
    cards,
    cables: switched
      ? cards.map((c, port) => ({ id: `cable-${c.name}`, a: c.name, b: { switch: "switch", port }, config: cable(c.name === "chassis" ? o.outages : undefined) }))
      : [{ id: "cable", a: "host", b: "chassis", config: cable(o.outages) }],
    switches: switched ? [{ name: "switch", config: { ports: o.management ? [...ports, { mode: "trunk" as const, allowed: [link.managementVlan] }] : ports } }] : [],
    ...(o.management ? { management: { switch: "switch", port: cards.length } } : {}),
    actions: o.actions ?? [],
    link,
    traffic: o.traffic ?? [],
    devices: [],
    servers: [],
  };
}

export interface HotplugOptions {
  durationNs: number;
  /** Outages of the first chassis card's cable: pulled at downAtNs, plugged back at upAtNs (never, if absent). */
  pulls: { downAtNs: number; upAtNs?: number }[];
  /** A second chassis card on the same host card, through a switch with the first; its cable is never pulled. */
  twoChassis?: boolean;
  lengthM?: number;
  /** The NVMe disks' load (default NVME_LOAD). */
  load?: NvmeLoadSpec;
}

/**
 * A server whose host card pairs with a chassis card holding an NVMe drive (slot 0) and a
 * DMA test device (slot 1), optionally a second chassis card with another NVMe drive; the
 * first chassis card's cable is pulled and plugged back as `pulls` says. A direct cable
 * reports the pull as loss of carrier; through the switch the host card sees silence.
 */
export function hotplugScenario(o: HotplugOptions): Scenario {
  const chassis = ["chassis", ...(o.twoChassis ? ["chassis2"] : [])];
  const cards: CardSpec[] = [
    { name: "host", role: CardRole.Host, serial: 0x1000_0001, slots: 2, powerOnNs: 0 },
    ...chassis.map((name, i) => ({ name, role: CardRole.Chassis, serial: 0x2000_0001 + i, slots: 2, powerOnNs: 0 })),
  ];
  const cable = (name: string) => ({ lengthM: o.lengthM ?? 10, ...(name === "chassis" ? { outages: o.pulls } : {}) });
  return {
    name: "hotplug",
    description: "a server, its host card and chassis cards with NVMe drives; a chassis card's cable is pulled and plugged back",
    durationNs: o.durationNs,
    logLevel: LogLevel.Info,
    cards,
    cables: o.twoChassis
      ? cards.map((c, port) => ({ id: `cable-${c.name}`, a: c.name, b: { switch: "switch", port }, config: cable(c.name) }))
      : [{ id: "cable", a: "host", b: "chassis", config: cable("chassis") }],
    switches: o.twoChassis ? [{ name: "switch", config: { ports: cards.map(() => ({ mode: "trunk" as const })) } }] : [],
    link: { ...DEFAULT_LINK, mtu: 9000 },
    traffic: [],
    devices: [
      { chassis: "chassis", slot: 0, kind: "nvme", ...(o.load ? { load: o.load } : {}) },
      { chassis: "chassis", slot: 1, kind: "dma-test" },
      ...(o.twoChassis ? [{ chassis: "chassis2", slot: 0, kind: "nvme" as const, ...(o.load ? { load: o.load } : {}) }] : []),
    ],
    servers: [{ name: "server", host: "host", enumerateNs: 2_000_000 }],
  };
}
