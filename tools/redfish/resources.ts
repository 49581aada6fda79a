// The installation as Redfish resources: what the management station knows of each card (its
// last report) turned into the Fabric, its Endpoints and Zones, each card's Chassis and its
// firmware in the UpdateService. Pure functions of the station's view, so that every payload
// follows from the cards' own reports and nothing else. docs/redfish.md has the mapping.

import { LinkState } from "../../board/map/link.ts";
import { BootFlag, CardRole } from "../../board/map/mailbox.ts";
import { formatMac } from "../../board/ethernet/frame.ts";
import { formatFirmware, formatSerial, MACSEC_DROP_NAMES, REPLY_COUNTER_NAMES, type ManageReply } from "../../board/manage-codec.ts";
import { collectionType, odataType } from "./schema.ts";

export const ROOT = "/redfish/v1";

/** A card as the station last heard it. */
export interface CardView {
  /** Its last report (Discover or Status reply). */
  report: ManageReply;
  /** Whether it answered the station's last poll. */
  reachable: boolean;
}

/** What the service shows: the installation's name (the Fabric's Id) and its cards. */
export interface InstallationView {
  fabric: string;
  cards: readonly CardView[];
}

export type Json = { [key: string]: unknown };

const link = (uri: string) => ({ "@odata.id": uri });

/** A card's Id in every collection: its serial, 8 hex digits. */
export function cardId(serial: number): string {
  return formatSerial(serial).slice(2);
}

export const fabricUri = (v: InstallationView) => `${ROOT}/Fabrics/${v.fabric}`;
export const endpointUri = (v: InstallationView, serial: number) => `${fabricUri(v)}/Endpoints/${cardId(serial)}`;
export const zoneUri = (v: InstallationView, group: number) => `${fabricUri(v)}/Zones/${group}`;
export const chassisUri = (serial: number) => `${ROOT}/Chassis/${cardId(serial)}`;
export const firmwareUri = (serial: number) => `${ROOT}/UpdateService/FirmwareInventory/${cardId(serial)}`;

const isHost = (c: CardView) => c.report.sender.role === CardRole.Host;
const roleName = (c: CardView) => (isHost(c) ? "host card" : "chassis card");

/** The groups the cards are in, ascending: each is a Zone. */
export function groups(v: InstallationView): number[] {
  return [...new Set(v.cards.map((c) => c.report.group))].sort((a, b) => a - b);
}

/**
 * Status (Resource.Status): a card that did not answer the last poll is offline and Critical; one
 * whose link is recovering, or with a silent Ethernet path, is Warning; otherwise OK.
 */
export function cardStatus(c: CardView): { State: string; Health: string } {
  if (!c.reachable) return { State: "UnavailableOffline", Health: "Critical" };
  const r = c.report;
  const recovering = r.linkStates.some((s) => s === LinkState.Recovery);
  const silent = r.paths?.some((p) => p.silent.length > 0) ?? false;
  return { State: "Enabled", Health: recovering || silent ? "Warning" : "OK" };
}

const WORST = ["OK", "Warning", "Critical"];
function rollup(statuses: { Health: string }[]): string {
  return WORST[Math.max(0, ...statuses.map((s) => WORST.indexOf(s.Health)))];
}

function collection(uri: string, member: string, name: string, members: string[]): Json {
  return {
    "@odata.id": uri,
    "@odata.type": collectionType(member),
    Name: name,
    Members: members.map(link),
    "Members@odata.count": members.length,
  };
}

export function fabricCollection(v: InstallationView): Json {
  return collection(`${ROOT}/Fabrics`, "Fabric", "Fabrics", [fabricUri(v)]);
}

export function fabric(v: InstallationView): Json {
  const statuses = v.cards.map(cardStatus);
  return {
    "@odata.id": fabricUri(v),
    "@odata.type": odataType("Fabric"),
    Id: v.fabric,
    Name: `IOV installation ${v.fabric}`,
    Description: "The PCIe hierarchy the cards extend over Ethernet: each server's host card and the chassis cards in its group",
    FabricType: "PCIe",
    MaxZones: 4094,
    Status: { State: "Enabled", Health: rollup(statuses), HealthRollup: rollup(statuses) },
    Endpoints: link(`${fabricUri(v)}/Endpoints`),
    Zones: link(`${fabricUri(v)}/Zones`),
  };
}

export function endpointCollection(v: InstallationView): Json {
  return collection(`${fabricUri(v)}/Endpoints`, "Endpoint", "Endpoints", v.cards.map((c) => endpointUri(v, c.report.sender.serial)));
}

/** A card as an Endpoint: a host card initiates (its server's root complex), a chassis card is the target. */
export function endpoint(v: InstallationView, c: CardView): Json {
  const r = c.report;
  const serial = r.sender.serial;
  return {
    "@odata.id": endpointUri(v, serial),
    "@odata.type": odataType("Endpoint"),
    Id: cardId(serial),
    Name: `${roleName(c)} ${formatSerial(serial)}`,
    EndpointProtocol: "PCIe",
    Identifiers: [{ DurableName: formatMac(r.sender.mac).toUpperCase(), DurableNameFormat: "MACAddress" }],
    ConnectedEntities: isHost(c) ? [{ EntityType: "RootComplex", EntityRole: "Initiator" }] : [],
    Status: cardStatus(c),
    Links: {
      Zones: [link(zoneUri(v, r.group))],
      "Zones@odata.count": 1,
      Chassis: [link(chassisUri(serial))],
      "Chassis@odata.count": 1,
    },
  };
}

export function zoneCollection(v: InstallationView): Json {
  return collection(`${fabricUri(v)}/Zones`, "Zone", "Zones", groups(v).map((g) => zoneUri(v, g)));
}

/** A group as a Zone: its host card and the chassis cards it owns. */
export function zone(v: InstallationView, group: number): Json {
  const members = v.cards.filter((c) => c.report.group === group).sort((a, b) => Number(isHost(b)) - Number(isHost(a)) || a.report.sender.serial - b.report.sender.serial);
  const statuses = members.map(cardStatus);
  return {
    "@odata.id": zoneUri(v, group),
    "@odata.type": odataType("Zone"),
    Id: String(group),
    Name: `group ${group}`,
    Description: `The cards in group ${group} (VLAN ${group}): a server's host card and the chassis cards it owns`,
    ZoneType: "ZoneOfEndpoints",
    Status: { State: "Enabled", Health: rollup(statuses), HealthRollup: rollup(statuses) },
    Links: {
      Endpoints: members.map((c) => link(endpointUri(v, c.report.sender.serial))),
      "Endpoints@odata.count": members.length,
    },
    Actions: {
      "#Zone.AddEndpoint": { target: `${zoneUri(v, group)}/Actions/Zone.AddEndpoint` },
    },
  };
}

export function chassisCollection(v: InstallationView): Json {
  return collection(`${ROOT}/Chassis`, "Chassis", "Chassis", v.cards.map((c) => chassisUri(c.report.sender.serial)));
}

/** Redfish names properties in PascalCase: `rttNs` is `RttNs`. */
function pascalKeys(o: object): Json {
  return Object.fromEntries(Object.entries(o).map(([k, value]) => [k[0].toUpperCase() + k.slice(1), value]));
}

/** A card as a Chassis: what a field engineer looks at first, with its counters since its boot. */
export function chassis(v: InstallationView, c: CardView): Json {
  const r = c.report;
  const serial = r.sender.serial;
  return {
    "@odata.id": chassisUri(serial),
    "@odata.type": odataType("Chassis"),
    Id: cardId(serial),
    Name: `${roleName(c)} ${formatSerial(serial)}`,
    ChassisType: "Card",
    SerialNumber: formatSerial(serial),
    Status: cardStatus(c),
    Links: { Endpoints: [link(endpointUri(v, serial))], "Endpoints@odata.count": 1 },
    Oem: {
      IOV: {
        Role: isHost(c) ? "Host" : "Chassis",
        Group: r.group,
        BootId: formatSerial(r.sender.bootId),
        Slots: r.slots,
        SlotsPresent: Array.from({ length: r.slots }, (_, s) => s).filter((s) => (r.slotsPresent >> s) & 1),
        LinkPorts: r.linkStates.map((state, port) => ({
          Port: port,
          LinkState: LinkState[state] ?? String(state),
          PeerSerial: r.peerSerials[port] ? formatSerial(r.peerSerials[port]) : null,
          Paths: r.paths?.[port]?.on.map((e) => ({
            EthernetPort: e,
            Silent: r.paths![port].silent.includes(e),
            ...(r.paths![port].health ? pascalKeys(r.paths![port].health![e]) : {}),
          })) ?? [],
        })),
        Counters: pascalKeys(Object.fromEntries(REPLY_COUNTER_NAMES.map((n) => [n, r.counters[n]]))),
        MacsecDrops: r.macsecDrops ? pascalKeys(Object.fromEntries(MACSEC_DROP_NAMES.map((n) => [n, r.macsecDrops![n]]))) : null,
      },
    },
  };
}

export function updateService(): Json {
  return {
    "@odata.id": `${ROOT}/UpdateService`,
    "@odata.type": odataType("UpdateService"),
    Id: "UpdateService",
    Name: "Update service",
    Description: "The firmware each card runs; cards are flashed over their console (iov flash)",
    ServiceEnabled: false,
    FirmwareInventory: link(`${ROOT}/UpdateService/FirmwareInventory`),
    Actions: {},
  };
}

export function firmwareCollection(v: InstallationView): Json {
  return collection(`${ROOT}/UpdateService/FirmwareInventory`, "SoftwareInventory", "Firmware inventory", v.cards.map((c) => firmwareUri(c.report.sender.serial)));
}

/** The firmware a card runs: its version, the flash slot it booted from, and whether it runs on trial. */
export function firmware(c: CardView): Json {
  const r = c.report;
  const serial = r.sender.serial;
  const trial = (r.bootFlags & BootFlag.Trial) !== 0;
  return {
    "@odata.id": firmwareUri(serial),
    "@odata.type": odataType("SoftwareInventory"),
    Id: cardId(serial),
    Name: `firmware of ${roleName(c)} ${formatSerial(serial)}`,
    Version: formatFirmware(r.firmware),
    Updateable: true,
    Status: cardStatus(c),
    RelatedItem: [link(chassisUri(serial))],
    "RelatedItem@odata.count": 1,
    Oem: { IOV: { BootSlot: r.bootSlot, Trial: trial } },
  };
}
