// Fleet topologies: many servers and chassis on a two-tier switched network. Each server's
// host card and each chassis card hangs off a leaf switch (trunk port, every VLAN); every
// leaf has one uplink to the spine, and the management station sits on the spine (a trunk of
// the management VLAN only). Chassis i starts in the group of server i, so the first
// `chassis` servers each get one chassis; the others keep discovering in their own group
// until a chassis is assigned to them. The built-in `fleet` scenario is fleetScenario(FLEET).

import { CardRole, LogLevel } from "../../board/map/mailbox.ts";
import { DEFAULT_LINK, type ActionSpec, type CableSpec, type CardSpec, type DeviceSpec, type NvmeLoadSpec, type Scenario, type ServerSpec, type SwitchSpec } from "./scenarios.ts";

export interface FleetOptions {
  servers: number;
  chassis: number;
  /** Cards per leaf switch (its other port is the uplink). */
  portsPerLeaf: number;
  durationNs: number;
  /** Cable length from a card to its leaf, and from a leaf to the spine. */
  accessM?: number;
  uplinkM?: number;
  /**
   * Every card dual-homed: its Ethernet port 1 on a leaf of a second fabric (leaves `leafLb`
   * under `spine-b`, the same cabling), so that a session's two paths share no switch.
   */
  dualHomed?: boolean;
  /** The schedule of actions; default fleetSchedule(options). */
  actions?: ActionSpec[];
}

/**
 * The built-in fleet: 256 servers, 64 chassis, 16 leaves of 20 card ports under one spine,
 * 0.9 simulated seconds: time for the schedule's last moves to finish (at 100 MHz their
 * servers verify NVMe reads again from about 830 ms) and under a minute of wall time (50 to
 * 70 ms a simulated millisecond on one core).
 */
export const FLEET: FleetOptions = { servers: 256, chassis: 64, portsPerLeaf: 20, durationNs: 900e6 };

/** The built-in dual-homed fleet (`fleet-dual`): the fleet with each card's second port in fabric B. */
export const FLEET_DUAL: FleetOptions = { ...FLEET, dualHomed: true };

/** Each NVMe drive's load: one 4 KiB write and read-back a millisecond, verified. */
export const FLEET_LOAD: NvmeLoadSpec = { queueDepth: 1, blocksPerCommand: 8, intervalNs: 1_000_000 };

/** Group of server i's host card: 1000 + i (VLAN IDs 1000..), clear of the default group 100. */
export function fleetGroup(server: number): number {
  return 1000 + server;
}

export const hostName = (i: number) => `host${i}`;
export const chassisName = (i: number) => `chassis${i}`;
export const serverName = (i: number) => `server${i}`;
export const cableName = (card: string, port = 0) => `cable-${card}${port === 0 ? "" : `-${port}`}`;
/** Leaf `l` of fabric A (the cards' ports 0) or B (their ports 1, in a dual-homed fleet). */
export const leafName = (l: number, port = 0) => `leaf${l}${port === 0 ? "" : "b"}`;

/**
 * When the fleet has settled and the default schedule begins: every card paired and every
 * server with a chassis verifying NVMe reads. At the soft-core's 100 MHz (docs/softcore.md) a
 * card pairs about 105 ms after power-on. A server whose enumeration reached the slot after that
 * binds the drive at once (its first reads verified at about 195 ms); one that scanned the slot
 * before has its pciehp find the drive when it probes the slot (150 to 190 ms: enumeration waits
 * on the host card's soft-core) and configure it some 127 ms later, at up to about 320 ms.
 */
export const FLEET_SETTLED_NS = 400e6;

/** When the default schedule acts (docs/scenarios.md#the-built-in-fleet): from FLEET_SETTLED_NS, 50 ms apart. */
export const FLEET_TIMES = {
  assignNs: FLEET_SETTLED_NS,
  pullNs: FLEET_SETTLED_NS + 50e6,
  failPortNs: FLEET_SETTLED_NS + 100e6,
  plugNs: FLEET_SETTLED_NS + 150e6,
  restorePortNs: FLEET_SETTLED_NS + 200e6,
  rebootNs: FLEET_SETTLED_NS + 200e6,
  assignBackNs: FLEET_SETTLED_NS + 250e6,
} as const;

/** The leaf switches a fleet of these options has. */
export function fleetLeaves(o: Pick<FleetOptions, "servers" | "chassis" | "portsPerLeaf">): number {
  return Math.ceil((o.servers + o.chassis) / o.portsPerLeaf);
}

/** The leaf port of card number `index` (hosts first, then chassis cards) for its Ethernet port `ethPort`: cards are dealt over the leaves in turn. */
function leafPort(index: number, leaves: number, ethPort = 0): { switch: string; port: number } {
  return { switch: leafName(index % leaves, ethPort), port: Math.floor(index / leaves) };
}

/** How many chassis the default schedule moves: one per eight, 1..8. */
export function fleetMoves(o: Pick<FleetOptions, "chassis">): number {
  return Math.max(1, Math.min(8, Math.floor(o.chassis / 8)));
}

/**
 * The default schedule (FLEET_TIMES), once the fleet has settled and while every other chassis
 * carries its NVMe load: chassis 0..m-1 (m = fleetMoves) are assigned to waiting servers
 * chassis..chassis+m-1 at 400 ms and the first half of them back to their first servers at
 * 650 ms; chassis m's cable is pulled at 450 ms and plugged back at 550 ms; the leaf port of
 * server m+1's host card fails at 500 ms and comes back at 600 ms; chassis m+2 reboots at
 * 600 ms. At 100 MHz a move takes some 180 ms until the new server's NVMe load verifies its
 * first read (45 ms of it the card's flash write, 127 ms pciehp's waits before it configures
 * the device), a cable or port back some 130 ms; a rebooted chassis card's server sees nothing
 * (its new firmware adopts the sessions the fabric kept: docs/registers.md). A dual-homed fleet
 * fails and restores the whole leaf of fabric A that server m+1's host card hangs off rather than
 * its port; there the pulled cable and the failed leaf cost the servers nothing (their sessions go
 * on over fabric B).
 */
export function fleetSchedule(o: Pick<FleetOptions, "servers" | "chassis" | "portsPerLeaf" | "dualHomed">): ActionSpec[] {
  const m = fleetMoves(o);
  if (o.chassis < m + 3 || o.servers < o.chassis + m) {
    throw new Error(`fleet: the schedule needs at least ${m + 3} chassis and ${m} servers waiting for one (${o.servers} servers, ${o.chassis} chassis)`);
  }
  const t = FLEET_TIMES;
  const port = leafPort(m + 1, fleetLeaves(o));
  return [
    ...Array.from({ length: m }, (_, k): ActionSpec => ({ atNs: t.assignNs, kind: "assign", card: chassisName(k), group: fleetGroup(o.chassis + k) })),
    { atNs: t.pullNs, kind: "pull-cable", cable: cableName(chassisName(m)) },
    ...(o.dualHomed
      ? [
        { atNs: t.failPortNs, kind: "fail-switch", switch: port.switch },
        { atNs: t.plugNs, kind: "plug-cable", cable: cableName(chassisName(m)) },
        { atNs: t.restorePortNs, kind: "restore-switch", switch: port.switch },
      ] satisfies ActionSpec[]
      : [
        { atNs: t.failPortNs, kind: "fail-port", switch: port.switch, port: port.port },
        { atNs: t.plugNs, kind: "plug-cable", cable: cableName(chassisName(m)) },
        { atNs: t.restorePortNs, kind: "restore-port", switch: port.switch, port: port.port },
      ] satisfies ActionSpec[]),
    { atNs: t.rebootNs, kind: "reboot", card: chassisName(m + 2) },
    ...Array.from({ length: Math.ceil(m / 2) }, (_, k): ActionSpec => ({ atNs: t.assignBackNs, kind: "assign", card: chassisName(k), group: fleetGroup(k) })),
  ];
}

export function fleetScenario(o: FleetOptions): Scenario {
  if (o.chassis > o.servers) throw new Error(`fleet: ${o.chassis} chassis for ${o.servers} servers; at most one each`);
  if (fleetGroup(o.servers - 1) >= DEFAULT_LINK.managementVlan) throw new Error(`fleet: ${o.servers} servers need VLAN IDs up to ${fleetGroup(o.servers - 1)}, past the management VLAN ${DEFAULT_LINK.managementVlan}`);
  const cards: CardSpec[] = [];
  for (let i = 0; i < o.servers; i++) {
    cards.push({ name: hostName(i), role: CardRole.Host, serial: 0x1000_0000 + i, slots: 1, powerOnNs: 0, link: { group: fleetGroup(i) } });
  }
  for (let i = 0; i < o.chassis; i++) {
    cards.push({ name: chassisName(i), role: CardRole.Chassis, serial: 0x2000_0000 + i, slots: 1, powerOnNs: 0, link: { group: fleetGroup(i) } });
  }
  const leaves = fleetLeaves(o);
  const trunks = (n: number) => Array.from({ length: n }, () => ({ mode: "trunk" as const }));
  const fabrics = o.dualHomed ? [0, 1] : [0];
  const switches: SwitchSpec[] = [
    { name: "spine", config: { ports: [...trunks(leaves), { mode: "trunk" as const, allowed: [DEFAULT_LINK.managementVlan] }] } },
    ...Array.from({ length: leaves }, (_, l) => ({ name: leafName(l), config: { ports: trunks(o.portsPerLeaf + 1) } })),
    ...(o.dualHomed ? [
      { name: "spine-b", config: { ports: trunks(leaves) } },
      ...Array.from({ length: leaves }, (_, l) => ({ name: leafName(l, 1), config: { ports: trunks(o.portsPerLeaf + 1) } })),
    ] : []),
  ];
  const cables: CableSpec[] = [];
  for (const f of fabrics) {
    for (let l = 0; l < leaves; l++) {
      cables.push({ id: `uplink${l}${f === 0 ? "" : "b"}`, a: { switch: leafName(l, f), port: o.portsPerLeaf }, b: { switch: f === 0 ? "spine" : "spine-b", port: l }, config: { lengthM: o.uplinkM ?? 30 } });
    }
  }
  // Deal hosts and chassis over the leaves in turn, so that a pair mostly crosses the spine.
  for (const f of fabrics) {
    cards.forEach((card, i) => cables.push({ id: cableName(card.name, f), a: { card: card.name, port: f }, b: leafPort(i, leaves, f), config: { lengthM: o.accessM ?? 5 } }));
  }
  const devices: DeviceSpec[] = Array.from({ length: o.chassis }, (_, i) => ({ chassis: chassisName(i), slot: 0, kind: "nvme" as const, load: FLEET_LOAD }));
  const servers: ServerSpec[] = Array.from({ length: o.servers }, (_, i) => ({ name: serverName(i), host: hostName(i), enumerateNs: 2_000_000 }));
  return {
    name: o.dualHomed ? "fleet-dual" : "fleet",
    description: o.dualHomed
      ? `${o.servers} servers and ${o.chassis} chassis cards with an NVMe drive each under a light verified load, every card dual-homed: port 0 on one of ${leaves} leaves under the spine with the management station, port 1 on one of ${leaves} leaves of a second fabric; chassis i starts in server i's group. ` +
        `The schedule moves chassis to waiting servers and some back, pulls a chassis card's first cable and plugs it back, fails a leaf of the first fabric and restores it, and reboots a chassis card; the pull and the leaf failure cost no server anything; the world checks the fleet invariants throughout (docs/scenarios.md)`
      : `${o.servers} servers and ${o.chassis} chassis cards with an NVMe drive each under a light verified load, on ${leaves} leaf switches under one spine with the management station; chassis i starts in server i's group. ` +
        `The schedule moves chassis to waiting servers and some back, pulls a cable and plugs it back, fails a leaf port and restores it, and reboots a chassis card; the world checks the fleet invariants throughout (docs/scenarios.md)`,
    durationNs: o.durationNs,
    logLevel: LogLevel.Warn,
    cards,
    cables,
    switches,
    management: { switch: "spine", port: leaves },
    // Keepalives every millisecond: the fleet's links are idle most of the time.
    link: { ...DEFAULT_LINK, mtu: 9000, keepaliveNs: 1_000_000, silenceNs: 8_000_000, graceNs: 50_000_000 },
    traffic: [],
    devices,
    servers,
    actions: o.actions ?? fleetSchedule(o),
  };
}
