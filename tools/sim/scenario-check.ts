// The checks a scenario passes before a world is built from it (docs/scenarios.md): every
// name it refers to exists, no switch port or card has two cables, every action names a
// card, cable or switch port there is. A failure is one ScenarioError whose message names
// the field as a path into the scenario, `cables[3].b.switch: no switch named "leaf9"`,
// the same path a scenario file has (tools/sim/scenario-file.ts).

import { CardRole, MAX_SLOTS } from "../../board/map/mailbox.ts";
import { LINK_PROTOCOL_MAX, LINK_PROTOCOL_MIN, SILENCE_MIN_KEEPALIVES } from "../../board/map/link.ts";
import { MAX_TUNNELS, MTU_MAX, MTU_MIN, PORTS } from "../../board/map/registers.ts";
import { validateImpairments } from "./net/impairments.ts";
import { PFC_DEFAULTS } from "./net/switch.ts";
import { maxFrameSize } from "../../board/ethernet/frame.ts";
import { cardEnd, type Scenario, type CableSpec, type ActionSpec } from "./scenarios.ts";

/** An egress buffer must hold at least the largest frame a cable can carry: tagged, at MTU_MAX, FCS included. */
const LARGEST_FRAME = maxFrameSize(MTU_MAX, true);

/** The name of the management station's cable (tools/sim/management-port.ts). */
const MANAGEMENT_CABLE = "management";
/** Chassis slot that scenario test traffic uses (world.ts TRAFFIC_SLOT). */
const TRAFFIC_SLOT = 7;

/**
 * A scenario that cannot run: `path` names the field (`cables[3].b.switch`), `reason` says
 * what is wrong with it, `source` where the scenario came from (a file, a built-in's name).
 */
export class ScenarioError extends Error {
  constructor(readonly path: string, readonly reason: string, readonly source?: string) {
    super([source, path, reason].filter(Boolean).join(": "));
    this.name = "ScenarioError";
  }
}

/** How an action reads in an error: `pull-cable at 0.3 s`. */
export function describeAction(action: ActionSpec): string {
  return `${action.kind} at ${Number.isFinite(action.atNs) ? action.atNs / 1e9 : action.atNs} s`;
}

const isVid = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 4094;
const isTime = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const quote = (s: string) => JSON.stringify(s);

/** Throws a ScenarioError for the first thing in `s` that would stop it from running as written. */
export function checkScenario(s: Scenario): void {
  const fail = (path: string, reason: string): never => {
    throw new ScenarioError(path, reason);
  };
  if (!(s.durationNs > 0)) fail("durationNs", `must be above 0, got ${s.durationNs}`);

  // The link configuration every card starts from, and each card's changes to it.
  const checkLink = (path: string, link: Partial<Scenario["link"]>) => {
    const at = (key: string) => (path ? `${path}.${key}` : key);
    if (link.group !== undefined && !isVid(link.group)) fail(at("group"), `must be a VLAN ID, 1..4094, got ${link.group}`);
    if (link.managementVlan !== undefined && !isVid(link.managementVlan)) fail(at("managementVlan"), `must be a VLAN ID, 1..4094, got ${link.managementVlan}`);
    if (link.protocolMax !== undefined && !(Number.isInteger(link.protocolMax) && link.protocolMax >= LINK_PROTOCOL_MIN && link.protocolMax <= LINK_PROTOCOL_MAX)) {
      fail(at("protocolMax"), `must be ${LINK_PROTOCOL_MIN}..${LINK_PROTOCOL_MAX}, got ${link.protocolMax}`);
    }
    if (link.ackPolicies !== undefined && !(Number.isInteger(link.ackPolicies) && link.ackPolicies >= 1 && link.ackPolicies <= 3)) fail(at("ackPolicies"), "must name at least one acknowledgement policy");
    if (link.mtu !== undefined && !(Number.isInteger(link.mtu) && link.mtu >= MTU_MIN && link.mtu <= MTU_MAX)) fail(at("mtu"), `must be ${MTU_MIN}..${MTU_MAX}, got ${link.mtu}`);
    if (link.maxPayload !== undefined && !([128, 256, 512, 1024, 2048, 4096].includes(link.maxPayload))) fail(at("maxPayload"), `must be a power of two, 128..4096, got ${link.maxPayload}`);
    for (const key of ["keepaliveNs", "silenceNs", "graceNs"] as const) {
      const v = link[key];
      if (v !== undefined && !(isTime(v) && v >= 1000 && v <= 0xffff_ffff)) fail(at(key), `must be 1 µs..4.29 s in ns, got ${v}`);
    }
  };
  checkLink("link", s.link);
  const linkOf = (spec: Scenario["cards"][number]) => ({ ...s.link, ...(spec.link ?? {}) });
  const groupCheck = (path: string, l: Scenario["link"]) => {
    if (l.group === l.managementVlan) fail(`${path}.group`, `group ${l.group} is the management VLAN`);
    if (l.silenceNs < SILENCE_MIN_KEEPALIVES * l.keepaliveNs) fail(`${path}.silenceNs`, `must be at least ${SILENCE_MIN_KEEPALIVES} keepalive intervals (${SILENCE_MIN_KEEPALIVES * l.keepaliveNs} ns), got ${l.silenceNs}`);
    if (l.graceNs < l.silenceNs) fail(`${path}.graceNs`, `must be at least silenceNs (${l.silenceNs} ns), got ${l.graceNs}`);
  };
  groupCheck("link", s.link);

  // Cards.
  const cards = new Map<string, { role: CardRole; slots: number; index: number }>();
  const serials = new Map<number, string>();
  s.cards.forEach((card, i) => {
    const path = `cards[${i}]`;
    if (typeof card.name !== "string" || card.name === "") fail(`${path}.name`, "must be a non-empty string");
    if (cards.has(card.name)) fail(`${path}.name`, `a second card named ${quote(card.name)}`);
    if (card.role !== CardRole.Host && card.role !== CardRole.Chassis) fail(`${path}.role`, "must be host or chassis");
    if (!(Number.isInteger(card.serial) && card.serial > 0 && card.serial < 0xffff_ffff)) fail(`${path}.serial`, `must be 1..0xfffffffe, got ${card.serial}`);
    const twin = serials.get(card.serial);
    if (twin !== undefined) fail(`${path}.serial`, `0x${card.serial.toString(16).padStart(8, "0")} is card ${quote(twin)}'s too (a serial is a card's MAC address)`);
    const max = card.role === CardRole.Host ? MAX_TUNNELS : MAX_SLOTS;
    if (!(Number.isInteger(card.slots) && card.slots >= 1 && card.slots <= max)) fail(`${path}.slots`, `must be 1..${max}, got ${card.slots}`);
    if (!isTime(card.powerOnNs)) fail(`${path}.powerOnNs`, `must be a time in ns, got ${card.powerOnNs}`);
    if (card.link) {
      checkLink(`${path}.link`, card.link);
      groupCheck(`${path}.link`, linkOf(card));
    }
    cards.set(card.name, { role: card.role, slots: card.slots, index: i });
    serials.set(card.serial, card.name);
  });
  const card = (path: string, name: string, role?: CardRole) => {
    const found = cards.get(name);
    if (!found) fail(path, `no card named ${quote(name)}`);
    if (role !== undefined && found!.role !== role) fail(path, `${quote(name)} is a ${found!.role === CardRole.Host ? "host" : "chassis"} card, not a ${role === CardRole.Host ? "host" : "chassis"} card`);
    return found!;
  };

  // Switches, cables and the management station's cable.
  const switches = new Map<string, number>();
  (s.switches ?? []).forEach((sw, i) => {
    const path = `switches[${i}]`;
    if (typeof sw.name !== "string" || sw.name === "") fail(`${path}.name`, "must be a non-empty string");
    if (switches.has(sw.name)) fail(`${path}.name`, `a second switch named ${quote(sw.name)}`);
    if (sw.name === MANAGEMENT_CABLE) fail(`${path}.name`, `${quote(MANAGEMENT_CABLE)} is the management station's cable`);
    if (!Array.isArray(sw.config.ports) || sw.config.ports.length === 0) fail(`${path}.config.ports`, "a switch needs at least one port");
    sw.config.ports.forEach((port, p) => {
      const at = `${path}.config.ports[${p}]`;
      if (port.mode === "access") {
        if (port.pvid !== undefined && !isVid(port.pvid)) fail(`${at}.pvid`, `must be a VLAN ID, 1..4094, got ${port.pvid}`);
      } else if (port.mode === "trunk") {
        port.allowed?.forEach((vid, k) => isVid(vid) || fail(`${at}.allowed[${k}]`, `must be a VLAN ID, 1..4094, got ${vid}`));
        if (port.native !== undefined && !isVid(port.native)) fail(`${at}.native`, `must be a VLAN ID, 1..4094, got ${port.native}`);
      } else fail(`${at}.mode`, `must be "access" or "trunk"`);
    });
    if (sw.config.agingNs !== undefined && !(sw.config.agingNs > 0)) fail(`${path}.config.agingNs`, "must be above 0");
    if (sw.config.forwardingLatencyNs !== undefined && !isTime(sw.config.forwardingLatencyNs)) fail(`${path}.config.forwardingLatencyNs`, "must be a time in ns");
    const buffer = sw.config.buffer;
    if (buffer && !(buffer.alpha === undefined || buffer.alpha > 0)) fail(`${path}.config.buffer.alpha`, `must be above 0, got ${buffer.alpha}`);
    const ecn = sw.config.ecn;
    if (ecn && ecn.kMaxBytes < ecn.kMinBytes) fail(`${path}.config.ecn.kMaxBytes`, `must be at least kMinBytes (${ecn.kMinBytes}), got ${ecn.kMaxBytes}`);
    if (ecn && ecn.pMax !== undefined && !(ecn.pMax > 0)) fail(`${path}.config.ecn.pMax`, `must be above 0 (at most 1), got ${ecn.pMax}`);
    const pfc = sw.config.pfc;
    if (pfc && !buffer) fail(`${path}.config.pfc`, "needs a shared buffer (config.buffer): priority flow control works in one");
    if (pfc && pfc.priorities.length === 0) fail(`${path}.config.pfc.priorities`, "must name at least one priority, 0..7");
    if (pfc && pfc.xonBytes !== undefined && !(pfc.xonBytes < (pfc.xoffBytes ?? PFC_DEFAULTS.xoffBytes))) {
      fail(`${path}.config.pfc.xonBytes`, `must be below xoffBytes (${pfc.xoffBytes ?? PFC_DEFAULTS.xoffBytes}), got ${pfc.xonBytes}`);
    }
    if (sw.config.mtu !== undefined && !(Number.isInteger(sw.config.mtu) && sw.config.mtu >= 576 && sw.config.mtu <= 16000)) fail(`${path}.config.mtu`, `must be 576..16000, got ${sw.config.mtu}`);
    if (sw.config.mirror !== undefined && !(Number.isInteger(sw.config.mirror) && sw.config.mirror >= 0 && sw.config.mirror < sw.config.ports.length)) {
      fail(`${path}.config.mirror`, `must be one of the switch's ports, 0..${sw.config.ports.length - 1}, got ${sw.config.mirror}`);
    }
    switches.set(sw.name, sw.config.ports.length);
  });
  const usedPorts = new Map<string, string>();
  const cabled = new Map<string, string>();
  const cables = new Set<string>();
  const plug = (path: string, end: CableSpec["a"], what: string) => {
    const onCard = cardEnd(end);
    if (onCard) {
      const at = typeof end === "string" ? path : `${path}.card`;
      card(at, onCard.card);
      if (!(Number.isInteger(onCard.port) && onCard.port >= 0 && onCard.port < PORTS)) fail(`${path}.port`, `a card has ports 0..${PORTS - 1}, not ${onCard.port}`);
      const key = `${onCard.card}:${onCard.port}`;
      const other = cabled.get(key);
      if (other) fail(at, `port ${onCard.port} of card ${quote(onCard.card)} already has ${other}`);
      cabled.set(key, what);
      return;
    }
    if (typeof end === "string" || !("switch" in end)) return;
    if (!switches.has(end.switch)) fail(`${path}.switch`, `no switch named ${quote(end.switch)}`);
    const ports = switches.get(end.switch)!;
    if (!(Number.isInteger(end.port) && end.port >= 0 && end.port < ports)) fail(`${path}.port`, `switch ${quote(end.switch)} has ports 0..${ports - 1}, not ${end.port}`);
    const key = `${end.switch}:${end.port}`;
    const other = usedPorts.get(key);
    if (other) fail(`${path}.port`, `port ${end.port} of switch ${quote(end.switch)} already has ${other}`);
    usedPorts.set(key, what);
  };
  s.cables.forEach((cable, i) => {
    const path = `cables[${i}]`;
    if (typeof cable.id !== "string" || cable.id === "") fail(`${path}.id`, "must be a non-empty string");
    if (cables.has(cable.id)) fail(`${path}.id`, `a second cable named ${quote(cable.id)}`);
    if (cable.id === MANAGEMENT_CABLE) fail(`${path}.id`, `${quote(MANAGEMENT_CABLE)} is the management station's cable`);
    if (switches.has(cable.id)) fail(`${path}.id`, `${quote(cable.id)} is a switch's name too`);
    cables.add(cable.id);
    plug(`${path}.a`, cable.a, `cable ${quote(cable.id)}`);
    plug(`${path}.b`, cable.b, `cable ${quote(cable.id)}`);
    const c = cable.config;
    if (c.rateBps !== undefined && !(c.rateBps > 0 && Number.isInteger(1e12 / c.rateBps))) fail(`${path}.config.rateBps`, `must be a rate with a whole number of ps per bit (1e9, 10e9, 25e9, 40e9...), got ${c.rateBps}`);
    if (c.lengthM !== undefined && !(c.lengthM >= 0 && Number.isFinite(c.lengthM))) fail(`${path}.config.lengthM`, `must be 0 or more, got ${c.lengthM}`);
    if (c.phyLatencyNs !== undefined && !(c.phyLatencyNs >= 0 && Number.isFinite(c.phyLatencyNs))) fail(`${path}.config.phyLatencyNs`, `must be 0 or more, got ${c.phyLatencyNs}`);
    for (const side of ["a", "b"] as const) {
      const b = c[side]?.bufferBytes;
      if (b !== undefined && !(Number.isSafeInteger(b) && b >= LARGEST_FRAME)) fail(`${path}.config.${side}.bufferBytes`, `must hold at least one largest frame, ${LARGEST_FRAME} bytes, got ${b}`);
    }
    for (const dir of ["aToB", "bToA"] as const) {
      const imp = c[dir];
      if (!imp) continue;
      try {
        validateImpairments(imp, "");
      } catch (error) {
        fail(`${path}.config.${dir}`, (error as Error).message.replace(/^: /, ""));
      }
    }
    let last = 0;
    (c.outages ?? []).forEach((o, k) => {
      const at = `${path}.config.outages[${k}]`;
      if (!(isTime(o.downAtNs) && o.downAtNs >= last)) fail(`${at}.downAtNs`, `must be a time in ns at or after ${last} (outages in order, not overlapping)`);
      if (o.upAtNs === undefined) last = Infinity;
      else if (!(isTime(o.upAtNs) && o.upAtNs > o.downAtNs)) fail(`${at}.upAtNs`, `must be a time in ns after downAtNs (${o.downAtNs})`);
      else last = o.upAtNs;
    });
  });
  if (s.management) plug("management", { switch: s.management.switch, port: s.management.port }, "the management station's cable");
  if (s.attacker) {
    plug("attacker", { switch: s.attacker.switch, port: s.attacker.port }, "the rogue station's cable");
    const mirror = (s.switches ?? []).find((sw) => sw.name === s.attacker!.switch)?.config.mirror;
    if (mirror !== s.attacker.port) fail("attacker.port", `must be its switch's mirror port (switch ${quote(s.attacker.switch)} mirrors to ${mirror ?? "no port"}), got ${s.attacker.port}`);
    if (!(isTime(s.attacker.intervalNs) && s.attacker.intervalNs >= 1000)) fail("attacker.intervalNs", `must be at least 1 µs, got ${s.attacker.intervalNs}`);
    if (!isTime(s.attacker.startNs)) fail("attacker.startNs", "must be a time in ns");
    if (s.attacker.endNs !== undefined && !(isTime(s.attacker.endNs) && s.attacker.endNs > s.attacker.startNs)) fail("attacker.endNs", "must be a time in ns after startNs");
  }

  // Devices, servers, traffic.
  const slotsTaken = new Set<string>();
  const trafficTo = new Set((s.traffic ?? []).flatMap((t) => [t.from, t.to]));
  s.devices.forEach((device, i) => {
    const path = `devices[${i}]`;
    const chassis = card(`${path}.chassis`, device.chassis, CardRole.Chassis);
    if (!(Number.isInteger(device.slot) && device.slot >= 0 && device.slot < chassis.slots)) fail(`${path}.slot`, `chassis ${quote(device.chassis)} has slots 0..${chassis.slots - 1}, not ${device.slot}`);
    if (device.slot === TRAFFIC_SLOT && trafficTo.has(device.chassis)) fail(`${path}.slot`, `slot ${TRAFFIC_SLOT} carries the test traffic of ${quote(device.chassis)}`);
    const key = `${device.chassis}:${device.slot}`;
    if (slotsTaken.has(key)) fail(`${path}.slot`, `slot ${device.slot} of ${quote(device.chassis)} already holds a device`);
    slotsTaken.add(key);
    if (!["dma-test", "graphics", "keyboard-mouse", "nvme"].includes(device.kind)) fail(`${path}.kind`, "must be dma-test, graphics, keyboard-mouse or nvme");
    if (device.typing && device.kind !== "keyboard-mouse") fail(`${path}.typing`, "only a keyboard-mouse device types");
    if (device.typing && !(isTime(device.typing.startNs) && isTime(device.typing.intervalNs) && device.typing.intervalNs > 0)) fail(`${path}.typing`, "needs startNs and a positive intervalNs");
    if (device.load && device.kind !== "nvme") fail(`${path}.load`, "only an nvme device has a load");
    const load = device.load;
    if (load) {
      if (!(Number.isInteger(load.queueDepth) && load.queueDepth >= 1 && load.queueDepth <= 64)) fail(`${path}.load.queueDepth`, `must be 1..64, got ${load.queueDepth}`);
      if (!(Number.isInteger(load.blocksPerCommand) && load.blocksPerCommand >= 1 && load.blocksPerCommand <= 256)) fail(`${path}.load.blocksPerCommand`, `must be 1..256, got ${load.blocksPerCommand}`);
      if (!isTime(load.intervalNs)) fail(`${path}.load.intervalNs`, `must be a time in ns, got ${load.intervalNs}`);
    }
  });
  const serverNames = new Set<string>();
  const hosts = new Map<string, string>();
  s.servers.forEach((server, i) => {
    const path = `servers[${i}]`;
    if (typeof server.name !== "string" || server.name === "") fail(`${path}.name`, "must be a non-empty string");
    if (serverNames.has(server.name)) fail(`${path}.name`, `a second server named ${quote(server.name)}`);
    serverNames.add(server.name);
    card(`${path}.host`, server.host, CardRole.Host);
    const other = hosts.get(server.host);
    if (other) fail(`${path}.host`, `host card ${quote(server.host)} is already in server ${quote(other)}`);
    hosts.set(server.host, server.name);
    if (!isTime(server.enumerateNs)) fail(`${path}.enumerateNs`, `must be a time in ns, got ${server.enumerateNs}`);
  });
  (s.traffic ?? []).forEach((t, i) => {
    const path = `traffic[${i}]`;
    const from = card(`${path}.from`, t.from);
    const to = card(`${path}.to`, t.to);
    if (t.from === t.to) fail(`${path}.to`, "traffic goes between two cards");
    if (from.role === to.role) fail(`${path}.to`, `traffic crosses a tunnel, between a host card and a chassis card; ${quote(t.from)} and ${quote(t.to)} are both ${from.role === CardRole.Host ? "host" : "chassis"} cards`);
    if (!(Number.isSafeInteger(t.count) && t.count >= 0)) fail(`${path}.count`, `must be a whole number, got ${t.count}`);
    if (!isTime(t.startNs)) fail(`${path}.startNs`, `must be a time in ns, got ${t.startNs}`);
    if (!(Number.isInteger(t.payload) && t.payload >= 0 && t.payload <= 4096 && t.payload % 4 === 0)) fail(`${path}.payload`, `must be 0..4096 bytes, a multiple of 4, got ${t.payload}`);
    const { posted, nonPosted, completion } = t.mix;
    if (![posted, nonPosted, completion].every((w) => Number.isFinite(w) && w >= 0) || posted + nonPosted + completion <= 0) fail(`${path}.mix`, "needs weights of 0 or more, not all 0");
  });
  if (s.uartBaud !== undefined && !(Number.isInteger(s.uartBaud) && s.uartBaud > 0)) fail("uartBaud", `must be a positive whole number, got ${s.uartBaud}`);

  // Actions: every reference checked now, not when the action falls due.
  (s.actions ?? []).forEach((action, i) => {
    const path = `actions[${i}]`;
    const what = ` (${describeAction(action)})`;
    if (!isTime(action.atNs)) fail(`${path}.atNs`, `must be a time in ns, got ${action.atNs}`);
    switch (action.kind) {
      case "reboot":
      case "power-cut":
      case "power-on":
        if (!cards.has(action.card)) fail(`${path}.card`, `no card named ${quote(action.card)}${what}`);
        break;
      case "assign": {
        if (!cards.has(action.card)) fail(`${path}.card`, `no card named ${quote(action.card)}${what}`);
        if (!s.management) fail(path, `an assign needs the scenario's management station (\`management\`)${what}`);
        if (!isVid(action.group)) fail(`${path}.group`, `must be a group, 1..4094, got ${action.group}${what}`);
        if (action.group === s.link.managementVlan) fail(`${path}.group`, `${action.group} is the management VLAN${what}`);
        break;
      }
      case "pull-cable":
      case "plug-cable":
        if (!cables.has(action.cable) && !(action.cable === MANAGEMENT_CABLE && s.management)) fail(`${path}.cable`, `no cable named ${quote(action.cable)}${what}`);
        break;
      case "fail-port":
      case "restore-port": {
        if (!switches.has(action.switch)) fail(`${path}.switch`, `no switch named ${quote(action.switch)}${what}`);
        const ports = switches.get(action.switch)!;
        if (!(Number.isInteger(action.port) && action.port >= 0 && action.port < ports)) fail(`${path}.port`, `switch ${quote(action.switch)} has ports 0..${ports - 1}, not ${action.port}${what}`);
        if (!usedPorts.has(`${action.switch}:${action.port}`)) fail(`${path}.port`, `nothing is plugged into port ${action.port} of switch ${quote(action.switch)}${what}`);
        break;
      }
      case "fail-switch":
      case "restore-switch":
        if (!switches.has(action.switch)) fail(`${path}.switch`, `no switch named ${quote(action.switch)}${what}`);
        break;
      default:
        fail(`${path}.kind`, `unknown action ${quote((action as { kind: string }).kind)}`);
    }
  });
}
