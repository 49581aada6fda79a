import { test } from "node:test";
import assert from "node:assert/strict";
import { LinkState, ManageOp, ManageStatus } from "../../board/map/link.ts";
import { BootFlag, CardRole } from "../../board/map/mailbox.ts";
import type { ManageReply } from "../../board/manage-codec.ts";
import { changes } from "../../tools/redfish/changes.ts";
import {
  chassis, chassisCollection, endpoint, endpointCollection, fabric, firmware, firmwareCollection, groups, zone, zoneCollection,
  type CardView, type InstallationView, type Json,
} from "../../tools/redfish/resources.ts";

/** A card's report as the station decodes it. */
function card(role: CardRole, serial: number, group: number, o: Partial<ManageReply> = {}, reachable = true): CardView {
  const host = role === CardRole.Host;
  const ports = host ? 2 : 1;
  const report: ManageReply = {
    destination: new Uint8Array(6), source: new Uint8Array(6), vlan: 4000,
    sender: { role, serial, bootId: 0x1234_5678, mac: Uint8Array.of(2, 0x10, host ? 0x10 : 0x20, 0, 0, serial & 0xff) },
    headerGroup: group,
    op: ManageOp.Status, status: ManageStatus.Ok, group, counter: 7n,
    firmware: { major: 1, minor: 4, patch: 2 }, slots: host ? 2 : 4, bootSlot: 1, bootFlags: 0, slotsPresent: host ? 0 : 0b0101,
    ports, linkStates: new Array(ports).fill(LinkState.Active), peerSerials: new Array(ports).fill(0),
    counters: { linkUps: 1, linkDowns: 0, recoveries: 0, authFailures: 0, hotplugEvents: 2, manageRequests: 3, manageAuthFailures: 0, manageReplays: 0 },
    macsecDrops: { badIcv: 0, late: 0, unknownAn: 0, unknownSci: 0, inClear: 0, badTag: 0 },
    paths: new Array(ports).fill(null).map(() => ({ on: [0], silent: [], health: [{ rttNs: 7100, txFrames: 10, rxFrames: 9, resent: 0 }, { rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }] })),
    ...o,
  };
  return { report, reachable };
}

const view = (cards: CardView[]): InstallationView => ({ fabric: "lab", cards });
const ids = (links: unknown) => (links as { "@odata.id": string }[]).map((l) => l["@odata.id"]);

const host1 = card(CardRole.Host, 0x1000_0001, 100);
const host2 = card(CardRole.Host, 0x1000_0002, 200);
const chassisA = card(CardRole.Chassis, 0x2000_0001, 100);
const chassisB = card(CardRole.Chassis, 0x2000_0002, 100);
const lab = view([chassisB, host2, chassisA, host1]);

test("each group is a Zone whose endpoints are its host card, then its chassis cards", () => {
  assert.deepEqual(groups(lab), [100, 200]);
  assert.deepEqual(ids(zoneCollection(lab).Members), ["/redfish/v1/Fabrics/lab/Zones/100", "/redfish/v1/Fabrics/lab/Zones/200"]);
  const z = zone(lab, 100) as { Links: { Endpoints: unknown; "Endpoints@odata.count": number }; ZoneType: string };
  assert.equal(z.ZoneType, "ZoneOfEndpoints");
  assert.deepEqual(ids(z.Links.Endpoints), ["10000001", "20000001", "20000002"].map((id) => `/redfish/v1/Fabrics/lab/Endpoints/${id}`));
  assert.equal(z.Links["Endpoints@odata.count"], 3);
  assert.deepEqual(ids((zone(lab, 200) as { Links: { Endpoints: unknown } }).Links.Endpoints), ["/redfish/v1/Fabrics/lab/Endpoints/10000002"]);
});

test("a host card is an initiator on its server's root complex, a chassis card a target; each links its zone and chassis", () => {
  const h = endpoint(lab, host1) as Json & { ConnectedEntities: Json[]; Links: { Zones: unknown; Chassis: unknown } };
  assert.deepEqual(h.ConnectedEntities, [{ EntityType: "RootComplex", EntityRole: "Initiator" }]);
  assert.equal(h.EndpointProtocol, "PCIe");
  assert.deepEqual(h.Identifiers, [{ DurableName: "02:10:10:00:00:01", DurableNameFormat: "MACAddress" }]);
  assert.deepEqual(ids(h.Links.Zones), ["/redfish/v1/Fabrics/lab/Zones/100"]);
  assert.deepEqual(ids(h.Links.Chassis), ["/redfish/v1/Chassis/10000001"]);
  const c = endpoint(lab, chassisA) as Json & { Links: { Zones: unknown } };
  assert.equal(c.Name, "chassis card 0x20000001");
  assert.deepEqual(ids(c.Links.Zones), ["/redfish/v1/Fabrics/lab/Zones/100"]);
});

test("health: a card that stopped answering is offline and Critical, a recovering link or a silent path is a Warning, and zones and the fabric roll up the worst", () => {
  const silent = card(CardRole.Chassis, 0x2000_0003, 200, {
    paths: [{ on: [0, 1], silent: [1], health: null }],
  });
  const recovering = card(CardRole.Host, 0x1000_0003, 300, { linkStates: [LinkState.Recovery, LinkState.Discover] });
  const gone = card(CardRole.Chassis, 0x2000_0004, 300, {}, false);
  const v = view([host1, chassisA, host2, silent, recovering, gone]);
  const status = (j: Json) => j.Status as { State: string; Health: string };
  assert.deepEqual(status(endpoint(v, host1)), { State: "Enabled", Health: "OK" });
  assert.deepEqual(status(endpoint(v, silent)), { State: "Enabled", Health: "Warning" });
  assert.deepEqual(status(endpoint(v, recovering)), { State: "Enabled", Health: "Warning" });
  assert.deepEqual(status(chassis(v, gone)), { State: "UnavailableOffline", Health: "Critical" });
  assert.equal(status(zone(v, 100)).Health, "OK");
  assert.equal(status(zone(v, 200)).Health, "Warning");
  assert.equal(status(zone(v, 300)).Health, "Critical");
  assert.equal(status(fabric(v)).Health, "Critical");
  assert.equal(status(fabric(view([host1, chassisA]))).Health, "OK");
});

test("a card's Chassis carries what it reported: link ports, paths with their figures, counters and MACsec drops in Redfish's PascalCase", () => {
  const c = chassis(lab, card(CardRole.Chassis, 0x2000_0001, 100, { peerSerials: [0x1000_0001] })) as { ChassisType: string; Oem: { IOV: Json } };
  assert.equal(c.ChassisType, "Card");
  const oem = c.Oem.IOV;
  assert.equal(oem.Role, "Chassis");
  assert.deepEqual(oem.SlotsPresent, [0, 2]);
  assert.deepEqual(oem.LinkPorts, [{
    Port: 0, LinkState: "Active", PeerSerial: "0x10000001",
    Paths: [{ EthernetPort: 0, Silent: false, RttNs: 7100, TxFrames: 10, RxFrames: 9, Resent: 0 }],
  }]);
  assert.deepEqual(oem.Counters, { LinkUps: 1, LinkDowns: 0, Recoveries: 0, AuthFailures: 0, HotplugEvents: 2, ManageRequests: 3, ManageAuthFailures: 0, ManageReplays: 0 });
  assert.deepEqual(oem.MacsecDrops, { BadIcv: 0, Late: 0, UnknownAn: 0, UnknownSci: 0, InClear: 0, BadTag: 0 });
  const old = chassis(lab, card(CardRole.Chassis, 0x2000_0001, 100, { macsecDrops: null, paths: null })) as { Oem: { IOV: { MacsecDrops: unknown; LinkPorts: { Paths: unknown }[] } } };
  assert.equal(old.Oem.IOV.MacsecDrops, null, "a firmware that reports none");
  assert.deepEqual(old.Oem.IOV.LinkPorts[0].Paths, []);
});

test("each card's firmware is a FirmwareInventory entry with its version, boot slot and trial state", () => {
  const trial = card(CardRole.Host, 0x1000_0001, 100, { bootFlags: BootFlag.Trial, firmware: { major: 2, minor: 0, patch: 11 } });
  const f = firmware(trial) as Json & { Oem: { IOV: Json }; RelatedItem: unknown };
  assert.equal(f.Version, "2.0.11");
  assert.deepEqual(f.Oem.IOV, { BootSlot: 1, Trial: true });
  assert.deepEqual(ids(f.RelatedItem), ["/redfish/v1/Chassis/10000001"]);
  assert.deepEqual(ids(firmwareCollection(lab).Members).length, 4);
});

test("every resource has its @odata.id, a versioned @odata.type, Id and Name; collections count their members", () => {
  const resources: Json[] = [
    fabric(lab), endpointCollection(lab), zoneCollection(lab), chassisCollection(lab), firmwareCollection(lab),
    ...lab.cards.flatMap((c) => [endpoint(lab, c), chassis(lab, c), firmware(c)]), ...groups(lab).map((g) => zone(lab, g)),
  ];
  for (const r of resources) {
    assert.match(String(r["@odata.id"]), /^\/redfish\/v1\/\S+$/);
    if ("Members" in r) {
      assert.match(String(r["@odata.type"]), /^#(\w+)Collection\.\1Collection$/);
      assert.equal(r["Members@odata.count"], (r.Members as unknown[]).length);
    } else {
      assert.match(String(r["@odata.type"]), /^#(\w+)\.v\d+_\d+_\d+\.\1$/, String(r["@odata.id"]));
      assert.equal(typeof r.Id, "string");
    }
    assert.equal(typeof r.Name, "string");
  }
});

const said = (before: CardView | undefined, after: CardView) => changes(lab, before, after).map((c) => `${c.messageId.replace(/\.\d+\.\d+\./, " ")}: ${c.message} [${c.origin}]`);

test("a card heard for the first time is a new endpoint, and nothing else", () => {
  assert.deepEqual(said(undefined, host1), ["Fabric EndpointCreated: Endpoint '10000001' was created in fabric 'lab'. [/redfish/v1/Fabrics/lab/Endpoints/10000001]"]);
});

test("sessions that come up and go down are the host card's downstream and the chassis card's upstream links; recovery degrades the port", () => {
  const discovering = card(CardRole.Host, 0x1000_0001, 100, { linkStates: [LinkState.Discover, LinkState.Discover], paths: null });
  assert.deepEqual(said(discovering, host1), [
    "Fabric DownstreamLinkEstablished: Switch '0x10000001' downstream link is established on port '0'. [/redfish/v1/Fabrics/lab/Endpoints/10000001]",
    "Fabric DownstreamLinkEstablished: Switch '0x10000001' downstream link is established on port '1'. [/redfish/v1/Fabrics/lab/Endpoints/10000001]",
  ]);
  const recovering = card(CardRole.Chassis, 0x2000_0001, 100, { linkStates: [LinkState.Recovery] });
  assert.deepEqual(said(chassisA, recovering), [
    "ResourceEvent ResourceStatusChangedWarning: The health of resource '/redfish/v1/Chassis/20000001' has changed to Warning. [/redfish/v1/Chassis/20000001]",
    "Fabric PortDegraded: Switch '0x20000001' port '0' is in a degraded state. [/redfish/v1/Fabrics/lab/Endpoints/20000001]",
  ]);
  assert.deepEqual(said(recovering, chassisA).slice(1), ["Fabric PortOK: Switch '0x20000001' port '0' has returned to a functional state. [/redfish/v1/Fabrics/lab/Endpoints/20000001]"]);
  const down = card(CardRole.Chassis, 0x2000_0001, 100, { linkStates: [LinkState.Down], paths: null });
  assert.deepEqual(said(recovering, down).slice(1), ["Fabric UpstreamLinkDropped: Switch '0x20000001' upstream link has gone down on port '0'. [/redfish/v1/Fabrics/lab/Endpoints/20000001]"]);
});

test("an Ethernet path that joins, goes silent, is heard again and leaves, within a session", () => {
  const paths = (on: number[], silent: number[]) => card(CardRole.Chassis, 0x2000_0001, 100, { paths: [{ on, silent, health: null }] });
  const one = paths([0], []);
  const two = paths([0, 1], []);
  const silent = paths([0, 1], [1]);
  assert.deepEqual(said(one, two), ["Fabric PortAutomaticallyEnabled: Switch '0x20000001' port '0 eth1' was automatically enabled. [/redfish/v1/Chassis/20000001]"]);
  assert.deepEqual(said(two, silent).slice(1), ["Fabric PortDegraded: Switch '0x20000001' port '0 eth1' is in a degraded state. [/redfish/v1/Chassis/20000001]"]);
  assert.deepEqual(said(silent, two).slice(1), ["Fabric PortOK: Switch '0x20000001' port '0 eth1' has returned to a functional state. [/redfish/v1/Chassis/20000001]"]);
  assert.deepEqual(said(two, one), ["Fabric PortAutomaticallyDisabled: Switch '0x20000001' port '0 eth1' was automatically disabled. [/redfish/v1/Chassis/20000001]"]);
  assert.deepEqual(said(one, one), [], "no change, no event");
});

test("a group change modifies both zones; a device in a chassis slot modifies its endpoint; a card that stops answering turns Critical, once", () => {
  const moved = card(CardRole.Chassis, 0x2000_0001, 200, { linkStates: [LinkState.Discover], paths: null });
  assert.deepEqual(said(chassisA, moved).filter((s) => s.includes("Zone")), [
    "Fabric ZoneModified: Zone '100' in fabric 'lab' was modified. [/redfish/v1/Fabrics/lab/Zones/100]",
    "Fabric ZoneModified: Zone '200' in fabric 'lab' was modified. [/redfish/v1/Fabrics/lab/Zones/200]",
  ]);
  const emptied = card(CardRole.Chassis, 0x2000_0001, 100, { slotsPresent: 0b0001 });
  assert.deepEqual(said(chassisA, emptied), ["Fabric EndpointModified: Endpoint '20000001' in fabric 'lab' was modified. [/redfish/v1/Fabrics/lab/Endpoints/20000001]"]);
  const gone = { ...chassisA, reachable: false };
  assert.deepEqual(said(chassisA, gone), ["ResourceEvent ResourceStatusChangedCritical: The health of resource '/redfish/v1/Chassis/20000001' has changed to Critical. [/redfish/v1/Chassis/20000001]"]);
  assert.deepEqual(said(gone, gone), []);
  assert.deepEqual(said(gone, chassisA), ["ResourceEvent ResourceStatusChangedOK: The health of resource '/redfish/v1/Chassis/20000001' has changed to OK. [/redfish/v1/Chassis/20000001]"]);
});

test("a session that ended and another that began between two polls, with another peer, is a link dropped and established", () => {
  const withHost = (peer: number) => card(CardRole.Chassis, 0x2000_0001, 100, { peerSerials: [peer] });
  assert.deepEqual(said(withHost(0x1000_0001), withHost(0x1000_0002)), [
    "Fabric UpstreamLinkDropped: Switch '0x20000001' upstream link has gone down on port '0'. [/redfish/v1/Fabrics/lab/Endpoints/20000001]",
    "Fabric UpstreamLinkEstablished: Switch '0x20000001' upstream link is established on port '0'. [/redfish/v1/Fabrics/lab/Endpoints/20000001]",
  ]);
  assert.deepEqual(said(withHost(0x1000_0001), withHost(0x1000_0001)), []);
});
