// Scenario files (docs/scenarios.md): a whole scenario as JSON, read by `iov sim --scenario
// PATH.json`. The format is the Scenario type of scenarios.ts field for field, with names for
// what the type keeps as numbers (roles, log levels, acknowledgement policies), serials also
// in hex ("0x20000001"), and times also with a unit ("300ms"). Reading checks every value's
// type and range, refuses unknown keys, then runs checkScenario(); the first problem is one
// ScenarioError naming the JSON path: `cables[3].b.switch: no switch named "leaf9"`.
// scenarioToJson() writes a scenario in the same format.

import { readFileSync } from "node:fs";
import { CardRole, LogLevel, MacsecSetting } from "../../board/map/mailbox.ts";
import type { AttackerSpec } from "./attacker.ts";
import { AckPolicy } from "../../board/map/link.ts";
import { ACTION_KINDS, DEFAULT_LINK, type ActionSpec, type CableSpec, type CardSpec, type DeviceSpec, type Scenario, type ServerSpec, type SwitchSpec, type TrafficSpec } from "./scenarios.ts";
import { checkScenario, ScenarioError } from "./scenario-check.ts";
import type { SwitchConfig, SwitchPortConfig } from "./net/switch.ts";
import type { ImpairmentConfig } from "./net/impairments.ts";
import type { LinkConfig as CableConfig } from "./net/link.ts";
import { PORTS } from "../../board/map/registers.ts";

export { ScenarioError };

type Read<T> = (value: unknown, path: string) => T;

const fail = (path: string, reason: string): never => {
  throw new ScenarioError(path, reason);
};
const join = (path: string, key: string) => (path ? `${path}.${key}` : key);
const shown = (v: unknown) => (v === undefined ? "nothing" : typeof v === "string" ? JSON.stringify(v) : Array.isArray(v) ? "a list" : v === null ? "null" : typeof v === "object" ? "an object" : String(v));

const string: Read<string> = (v, path) => (typeof v === "string" ? v : fail(path, `expected a string, got ${shown(v)}`));
const name: Read<string> = (v, path) => (string(v, path) !== "" ? (v as string) : fail(path, "expected a name, got an empty string"));

function number(min = -Infinity, max = Infinity): Read<number> {
  return (v, path) => {
    if (typeof v !== "number" || !Number.isFinite(v)) fail(path, `expected a number, got ${shown(v)}`);
    if ((v as number) < min || (v as number) > max) fail(path, `expected ${min}..${max}, got ${v}`);
    return v as number;
  };
}

function integer(min = 0, max = Number.MAX_SAFE_INTEGER): Read<number> {
  return (v, path) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v)) fail(path, `expected a whole number, got ${shown(v)}`);
    if ((v as number) < min || (v as number) > max) fail(path, `expected ${min}..${max}, got ${v}`);
    return v as number;
  };
}

const UNITS: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9 };

/** A time in ns: a whole number of ns, or a string with a unit ("300ms", "2.5s", "10us"). */
const time: Read<number> = (v, path) => {
  if (typeof v === "number") return integer()(v, path);
  if (typeof v !== "string") fail(path, `expected a time (ns, or a string such as "300ms"), got ${shown(v)}`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*$/.exec(v as string);
  if (!m) fail(path, `expected a time such as "2s", "300ms", "10us" or "500ns", got ${shown(v)}`);
  const ns = Math.round(Number(m![1]) * UNITS[m![2]]);
  if (!Number.isSafeInteger(ns)) fail(path, `time ${shown(v)} is too long`);
  return ns;
};

/** A serial: a number, or hex digits with 0x ("0x20000001"). */
const serial: Read<number> = (v, path) => {
  if (typeof v === "string" && /^0x[0-9a-f]{1,8}$/i.test(v)) return parseInt(v.slice(2), 16);
  if (typeof v === "number") return integer(1, 0xffff_fffe)(v, path);
  return fail(path, `expected a serial such as "0x20000001", got ${shown(v)}`);
};

function oneOf<T extends string>(values: readonly T[]): Read<T> {
  return (v, path) => (values.includes(v as T) ? (v as T) : fail(path, `expected one of ${values.map((x) => JSON.stringify(x)).join(", ")}, got ${shown(v)}`));
}

function list<T>(item: Read<T>): Read<T[]> {
  return (v, path) => (Array.isArray(v) ? v.map((x, i) => item(x, `${path}[${i}]`)) : fail(path, `expected a list, got ${shown(v)}`));
}

type Fields<T> = { [K in keyof T]-?: [Read<Exclude<T[K], undefined>>, "required" | "optional"] };

/** An object with exactly these keys (the optional ones may be missing); anything else is an error. */
function object<T>(fields: Fields<T>): Read<T> {
  const keys = Object.keys(fields);
  return (v, path) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(path, `expected an object, got ${shown(v)}`);
    const input = v as Record<string, unknown>;
    for (const key of Object.keys(input)) {
      if (!(key in fields)) fail(join(path, key), `unknown key (expected ${keys.length > 1 ? "one of " : ""}${keys.join(", ")})`);
    }
    const out: Record<string, unknown> = {};
    for (const [key, [read, need]] of Object.entries(fields) as [string, [Read<unknown>, string]][]) {
      if (input[key] === undefined) {
        if (need === "required") fail(join(path, key), "missing");
        continue;
      }
      out[key] = read(input[key], join(path, key));
    }
    return out as T;
  };
}

const required = <T>(read: Read<T>): [Read<T>, "required"] => [read, "required"];
const optional = <T>(read: Read<T>): [Read<T>, "optional"] => [read, "optional"];

// ---- the scenario -------------------------------------------------------------------------

const ROLES = { host: CardRole.Host, chassis: CardRole.Chassis } as const;
const LOG_LEVELS = { error: LogLevel.Error, warn: LogLevel.Warn, info: LogLevel.Info, debug: LogLevel.Debug } as const;
const ACK_POLICIES = { selective: AckPolicy.Selective, "go-back-n": AckPolicy.GoBackN } as const;
const DEVICE_KINDS = ["dma-test", "graphics", "keyboard-mouse", "nvme"] as const;
/** ConfigBody.Macsec by name: "off" sends the data path in clear (and pairs only with a card set the same way). */
export const MACSEC_SETTINGS = { "gcm-aes-xpn-128": MacsecSetting.Xpn128, "gcm-aes-xpn-256": MacsecSetting.Xpn256, off: MacsecSetting.Off } as const;

const ackPolicies: Read<number> = (v, path) => {
  const names = list(oneOf(Object.keys(ACK_POLICIES) as (keyof typeof ACK_POLICIES)[]))(v, path);
  if (names.length === 0) fail(path, "expected at least one policy");
  return names.reduce((bits, n) => bits | ACK_POLICIES[n], 0);
};

type LinkFields = Partial<Scenario["link"]>;
const linkFields: Fields<LinkFields> = {
  group: optional(integer(1, 4094)),
  protocolMax: optional(integer(0, 255)),
  ackPolicies: optional(ackPolicies),
  mtu: optional(integer(0, 65535)),
  maxPayload: optional(integer(0, 65535)),
  keepaliveNs: optional(time),
  silenceNs: optional(time),
  graceNs: optional(time),
  managementVlan: optional(integer(1, 4094)),
  macsec: optional((v, path) => MACSEC_SETTINGS[oneOf(Object.keys(MACSEC_SETTINGS) as (keyof typeof MACSEC_SETTINGS)[])(v, path)]),
  installation: optional(name),
};
const link = object<LinkFields>(linkFields);
const cardLinkRead: Read<CardSpec["link"]> = (v, path) => (v === null ? null : link(v, path));

const card = object<CardSpec>({
  name: required(name),
  role: required((v, path) => ROLES[oneOf(Object.keys(ROLES) as (keyof typeof ROLES)[])(v, path)]),
  serial: required(serial),
  slots: required(integer(1, 8)),
  powerOnNs: optional(time),
  link: optional(cardLinkRead as Read<Exclude<CardSpec["link"], undefined>>),
});

const switchEnd = object<{ switch: string; port: number }>({ switch: required(name), port: required(integer(0, 4095)) });
const cardPort = object<{ card: string; port: number }>({ card: required(name), port: required(integer(0, PORTS - 1)) });
const cableEnd: Read<CableSpec["a"]> = (v, path) => {
  if (typeof v === "string") return name(v, path);
  return v !== null && typeof v === "object" && "card" in v ? cardPort(v, path) : switchEnd(v, path);
};

const impairments = object<ImpairmentConfig>({
  loss: optional(number(0, 1)),
  gilbertElliott: optional(object<NonNullable<ImpairmentConfig["gilbertElliott"]>>({
    p: required(number(0, 1)), r: required(number(0, 1)), lossGood: optional(number(0, 1)), lossBad: optional(number(0, 1)),
  })),
  corruption: optional(number(0, 1)),
  duplication: optional(number(0, 1)),
  reorder: optional(object<NonNullable<ImpairmentConfig["reorder"]>>({ probability: required(number(0, 1)), delayNs: required(time) })),
});
const linkEnd = object<NonNullable<CableConfig["a"]>>({ name: optional(name), bufferBytes: optional(integer()) });
const cableConfig = object<CableSpec["config"]>({
  rateBps: optional(number(1)),
  lengthM: optional(number(0)),
  phyLatencyNs: optional(number(0)),
  a: optional(linkEnd),
  b: optional(linkEnd),
  aToB: optional(impairments),
  bToA: optional(impairments),
  outages: optional(list(object<{ downAtNs: number; upAtNs?: number }>({ downAtNs: required(time), upAtNs: optional(time) }))),
});
const cable = object<CableSpec>({ id: required(name), a: required(cableEnd), b: required(cableEnd), config: optional(cableConfig) });

const accessPort = object<Extract<SwitchPortConfig, { mode: "access" }>>({ mode: required(oneOf(["access"] as const)), pvid: optional(integer(1, 4094)) });
const trunkPort = object<Extract<SwitchPortConfig, { mode: "trunk" }>>({
  mode: required(oneOf(["trunk"] as const)), allowed: optional(list(integer(1, 4094))), native: optional(integer(1, 4094)),
});
const switchPort: Read<SwitchPortConfig> = (v, path) => {
  const mode = (v as { mode?: unknown } | null)?.mode;
  if (typeof v === "object" && v !== null && mode === "access") return accessPort(v, path);
  if (typeof v === "object" && v !== null && mode === "trunk") return trunkPort(v, path);
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(path, `expected an object, got ${shown(v)}`);
  return fail(join(path, "mode"), mode === undefined ? `missing ("access" or "trunk")` : `expected "access" or "trunk", got ${shown(mode)}`);
};
const switchSpec = object<SwitchSpec>({
  name: required(name),
  config: required(object<SwitchSpec["config"]>({
    ports: required(list(switchPort)), agingNs: optional(time), forwardingLatencyNs: optional(time), mtu: optional(integer(0, 65535)), mirror: optional(integer(0, 255)),
    buffer: optional(object<NonNullable<SwitchConfig["buffer"]>>({ bytes: required(integer(1)), alpha: optional(number(0)) })),
    ecn: optional(object<NonNullable<SwitchConfig["ecn"]>>({ kMinBytes: required(integer(0)), kMaxBytes: required(integer(0)), pMax: optional(number(0, 1)) })),
    pfc: optional(object<NonNullable<SwitchConfig["pfc"]>>({ priorities: required(list(integer(0, 7))), xoffBytes: optional(integer(1)), xonBytes: optional(integer(0)) })),
  })),
});

const device = object<DeviceSpec>({
  chassis: required(name),
  slot: required(integer(0, 7)),
  kind: required(oneOf(DEVICE_KINDS)),
  typing: optional(object<NonNullable<DeviceSpec["typing"]>>({ text: required(string), startNs: required(time), intervalNs: required(time) })),
  load: optional(object<NonNullable<DeviceSpec["load"]>>({ queueDepth: required(integer(1, 64)), blocksPerCommand: required(integer(1, 256)), intervalNs: required(time) })),
});

const server = object<ServerSpec>({ name: required(name), host: required(name), enumerateNs: optional(time) });

const traffic = object<TrafficSpec>({
  from: required(name), to: required(name), count: required(integer()), startNs: required(time), payload: required(integer(0, 4096)),
  mix: required(object<TrafficSpec["mix"]>({ posted: required(number(0)), nonPosted: required(number(0)), completion: required(number(0)) })),
});

const ACTION_FIELDS = {
  card: { atNs: required(time), kind: required(oneOf(ACTION_KINDS)), card: required(name) },
  assign: { atNs: required(time), kind: required(oneOf(ACTION_KINDS)), card: required(name), group: required(integer(1, 4094)) },
  cable: { atNs: required(time), kind: required(oneOf(ACTION_KINDS)), cable: required(name) },
  port: { atNs: required(time), kind: required(oneOf(ACTION_KINDS)), switch: required(name), port: required(integer(0, 4095)) },
  switch: { atNs: required(time), kind: required(oneOf(ACTION_KINDS)), switch: required(name) },
};
const action: Read<ActionSpec> = (v, path) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(path, `expected an object, got ${shown(v)}`);
  const kind = oneOf(ACTION_KINDS)((v as { kind?: unknown }).kind, join(path, "kind"));
  const fields = kind === "assign" ? ACTION_FIELDS.assign : kind === "pull-cable" || kind === "plug-cable" ? ACTION_FIELDS.cable
    : kind === "fail-port" || kind === "restore-port" ? ACTION_FIELDS.port
    : kind === "fail-switch" || kind === "restore-switch" ? ACTION_FIELDS.switch : ACTION_FIELDS.card;
  return object<ActionSpec>(fields as unknown as Fields<ActionSpec>)(v, path);
};

interface ScenarioJson {
  name: string;
  description?: string;
  durationNs: number;
  logLevel?: LogLevel;
  link?: LinkFields;
  cards: CardSpec[];
  cables?: CableSpec[];
  switches?: SwitchSpec[];
  servers?: ServerSpec[];
  devices?: DeviceSpec[];
  traffic?: TrafficSpec[];
  actions?: ActionSpec[];
  management?: { switch: string; port: number };
  attacker?: AttackerSpec;
  uartBaud?: number;
}

const scenarioRead = object<ScenarioJson>({
  name: required(name),
  description: optional(string),
  durationNs: required(time),
  logLevel: optional((v, path) => LOG_LEVELS[oneOf(Object.keys(LOG_LEVELS) as (keyof typeof LOG_LEVELS)[])(v, path)]),
  link: optional(link),
  cards: required(list(card)),
  cables: optional(list(cable)),
  switches: optional(list(switchSpec)),
  servers: optional(list(server)),
  devices: optional(list(device)),
  traffic: optional(list(traffic)),
  actions: optional(list(action)),
  management: optional(switchEnd),
  attacker: optional(object<AttackerSpec>({
    switch: required(name), port: required(integer(0, 255)), startNs: required(time), endNs: optional(time), intervalNs: required(time),
  })),
  uartBaud: optional(integer(1, 100_000_000)),
});

/** Defaults of what a scenario file may leave out (docs/scenarios.md). */
export const FILE_DEFAULTS = { powerOnNs: 0, enumerateNs: 2_000_000, logLevel: LogLevel.Info } as const;

/** A scenario from parsed JSON: checked field by field, then as a whole (checkScenario). */
export function parseScenario(json: unknown): Scenario {
  const s = scenarioRead(json, "");
  const scenario: Scenario = {
    name: s.name,
    description: s.description ?? "",
    durationNs: s.durationNs,
    logLevel: s.logLevel ?? FILE_DEFAULTS.logLevel,
    link: { ...DEFAULT_LINK, ...s.link },
    cards: s.cards.map((c) => ({ ...c, powerOnNs: c.powerOnNs ?? FILE_DEFAULTS.powerOnNs })),
    cables: (s.cables ?? []).map((c) => ({ ...c, config: c.config ?? {} })),
    switches: s.switches ?? [],
    servers: (s.servers ?? []).map((v) => ({ ...v, enumerateNs: v.enumerateNs ?? FILE_DEFAULTS.enumerateNs })),
    devices: s.devices ?? [],
    traffic: s.traffic ?? [],
    actions: s.actions ?? [],
    ...(s.management ? { management: s.management } : {}),
    ...(s.attacker ? { attacker: s.attacker } : {}),
    ...(s.uartBaud !== undefined ? { uartBaud: s.uartBaud } : {}),
  };
  checkScenario(scenario);
  return scenario;
}

/** A scenario from JSON text; a syntax error names its line and column. */
export function parseScenarioText(text: string): Scenario {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message.replace(/\s+/g, " ");
    const at = /position (\d+)/.exec(message);
    if (!at) throw new ScenarioError("", `not valid JSON: ${message}`);
    const before = text.slice(0, Number(at[1]));
    const line = before.split("\n").length;
    const column = Number(at[1]) - before.lastIndexOf("\n");
    throw new ScenarioError("", `not valid JSON at line ${line}, column ${column}: ${message.replace(/ in JSON at position \d+.*$/, "")}`);
  }
  return parseScenario(json);
}

/** A scenario file; every problem is an Error with one line, `FILE: path: reason`. */
export function loadScenarioFile(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ScenarioError("", `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, file);
  }
  try {
    return parseScenarioText(text);
  } catch (error) {
    if (error instanceof ScenarioError) throw new ScenarioError(error.path, error.reason, file);
    throw error;
  }
}

// ---- writing ------------------------------------------------------------------------------

/** A time in ns as the largest unit that divides it ("300ms"), or ns. */
export function formatDuration(ns: number): string | number {
  for (const [unit, size] of [["s", 1e9], ["ms", 1e6], ["us", 1e3]] as const) if (ns >= size && ns % size === 0) return `${ns / size}${unit}`;
  return ns;
}

const nameOf = <T extends Record<string, number>>(table: T, value: number) => Object.keys(table).find((k) => table[k] === value)!;

/** A scenario in the file format (parseScenario(scenarioToJson(s)) gives back s). */
export function scenarioToJson(s: Scenario): object {
  const t = formatDuration;
  const linkJson = (l: Partial<Scenario["link"]>) => ({
    ...l,
    ...(l.ackPolicies !== undefined ? { ackPolicies: Object.entries(ACK_POLICIES).filter(([, bit]) => l.ackPolicies! & bit).map(([n]) => n) } : {}),
    ...(l.keepaliveNs !== undefined ? { keepaliveNs: t(l.keepaliveNs) } : {}),
    ...(l.silenceNs !== undefined ? { silenceNs: t(l.silenceNs) } : {}),
    ...(l.graceNs !== undefined ? { graceNs: t(l.graceNs) } : {}),
    ...(l.macsec !== undefined ? { macsec: nameOf(MACSEC_SETTINGS, l.macsec) } : {}),
  });
  return {
    name: s.name,
    description: s.description,
    durationNs: t(s.durationNs),
    logLevel: nameOf(LOG_LEVELS, s.logLevel),
    link: linkJson(s.link),
    cards: s.cards.map((c) => ({
      name: c.name, role: nameOf(ROLES, c.role), serial: `0x${c.serial.toString(16).padStart(8, "0")}`, slots: c.slots, powerOnNs: t(c.powerOnNs),
      ...(c.link === null ? { link: null } : c.link ? { link: linkJson(c.link) } : {}),
    })),
    switches: s.switches ?? [],
    cables: s.cables.map((c) => ({
      ...c,
      config: { ...c.config, ...(c.config.outages ? { outages: c.config.outages.map((o) => ({ downAtNs: t(o.downAtNs), ...(o.upAtNs !== undefined ? { upAtNs: t(o.upAtNs) } : {}) })) } : {}) },
    })),
    ...(s.management ? { management: s.management } : {}),
    ...(s.attacker ? { attacker: { ...s.attacker, startNs: t(s.attacker.startNs), intervalNs: t(s.attacker.intervalNs), ...(s.attacker.endNs !== undefined ? { endNs: t(s.attacker.endNs) } : {}) } } : {}),
    servers: s.servers.map((v) => ({ ...v, enumerateNs: t(v.enumerateNs) })),
    devices: s.devices.map((d) => ({
      ...d,
      ...(d.typing ? { typing: { ...d.typing, startNs: t(d.typing.startNs), intervalNs: t(d.typing.intervalNs) } } : {}),
      ...(d.load ? { load: { ...d.load, intervalNs: t(d.load.intervalNs) } } : {}),
    })),
    traffic: s.traffic.map((x) => ({ ...x, startNs: t(x.startNs) })),
    actions: (s.actions ?? []).map((a) => ({ ...a, atNs: t(a.atNs) })),
    ...(s.uartBaud !== undefined ? { uartBaud: s.uartBaud } : {}),
  };
}
