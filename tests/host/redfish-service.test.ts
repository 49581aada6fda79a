// The Redfish service's HTTP answers (tools/redfish/service.ts), through its request handler,
// against a scripted station: resources, ETags, every refusal with its status and Base message,
// and an assignment's Task from the 202 to its completion.

import { test } from "node:test";
import assert from "node:assert/strict";
import { LinkState, ManageOp, ManageStatus } from "../../board/map/link.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import type { ManageReply } from "../../board/manage-codec.ts";
import { ManageError } from "../../tools/manage/client.ts";
import { Installation, type Station } from "../../tools/redfish/installation.ts";
import { RedfishService } from "../../tools/redfish/service.ts";

function report(role: CardRole, serial: number, group: number): ManageReply {
  const ports = role === CardRole.Host ? 2 : 1;
  return {
    destination: new Uint8Array(6), source: new Uint8Array(6), vlan: 4000,
    sender: { role, serial, bootId: 1, mac: Uint8Array.of(2, 0x10, 0x10, 0, 0, serial & 0xff) },
    headerGroup: group, op: ManageOp.Discover, status: ManageStatus.Ok, group, counter: 1n,
    firmware: { major: 1, minor: 0, patch: 0 }, slots: 2, bootSlot: 0, bootFlags: 0, slotsPresent: 0,
    ports, linkStates: new Array(ports).fill(LinkState.Discover), peerSerials: new Array(ports).fill(0),
    counters: { linkUps: 0, linkDowns: 0, recoveries: 0, authFailures: 0, hotplugEvents: 0, manageRequests: 0, manageAuthFailures: 0, manageReplays: 0 },
    macsecDrops: null, paths: null,
  };
}

/** A station whose cards answer what `cards` holds; setGroup calls are kept, to be settled by the test. */
class ScriptedStation implements Station {
  cards = new Map<number, ManageReply>();
  calls: { serial: number; group: number; resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(replies: ManageReply[]) {
    for (const r of replies) this.cards.set(r.sender.serial, r);
  }

  async discover(): Promise<ManageReply[]> {
    return [...this.cards.values()];
  }

  setGroup(serial: number, group: number): Promise<ManageReply> {
    return new Promise((resolve, reject) => {
      this.calls.push({ serial, group, resolve: () => resolve({ ...this.cards.get(serial)!, op: ManageOp.SetGroup, group }), reject });
    });
  }

  /** The card reports its new group from now on (its old server has released it). */
  moved(serial: number, group: number): void {
    this.cards.set(serial, { ...this.cards.get(serial)!, group });
  }
}

const HOST1 = 0x1000_0001;
const HOST2 = 0x1000_0002;
const CHASSIS = 0x2000_0001;

async function service() {
  const station = new ScriptedStation([report(CardRole.Host, HOST1, 100), report(CardRole.Host, HOST2, 200), report(CardRole.Chassis, CHASSIS, 100)]);
  const installation = new Installation(station, "lab", { now: () => 0, after: () => () => {} });
  await installation.poll();
  const svc = new RedfishService({ installation });
  const request = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await svc.app.request(path, {
      method, headers: { "Content-Type": "application/json", ...headers },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    const json = response.headers.get("Content-Type")?.includes("json") && text ? JSON.parse(text) : text;
    return { status: response.status, headers: response.headers, json };
  };
  return { station, installation, request };
}

const ZONE = "/redfish/v1/Fabrics/lab/Zones";
const EP = "/redfish/v1/Fabrics/lab/Endpoints";
const members = (zone: { Links: { Endpoints: { "@odata.id": string }[] } }) => zone.Links.Endpoints.map((e) => e["@odata.id"].split("/").pop());

test("the service root, /redfish and the OData documents answer as DSP0266 has them, with OData-Version on every response", async () => {
  const { request } = await service();
  assert.deepEqual((await request("GET", "/redfish")).json, { v1: "/redfish/v1/" });
  for (const path of ["/redfish/v1", "/redfish/v1/"]) {
    const root = await request("GET", path);
    assert.equal(root.status, 200);
    assert.equal(root.headers.get("OData-Version"), "4.0");
    assert.equal(root.json["@odata.type"], "#ServiceRoot.v1_17_0.ServiceRoot");
    assert.deepEqual(root.json.Fabrics, { "@odata.id": "/redfish/v1/Fabrics" });
  }
  const odata = await request("GET", "/redfish/v1/odata");
  assert.equal(odata.json["@odata.context"], "/redfish/v1/$metadata");
  const metadata = await request("GET", "/redfish/v1/$metadata");
  assert.match(metadata.headers.get("Content-Type")!, /^application\/xml/);
  assert.match(metadata.json, /<edmx:Include Namespace="Zone.v1_6_3"\/>/);
  assert.match(metadata.json, /<EntityContainer Name="Service" Extends="ServiceRoot.v1_17_0.ServiceContainer"\/>/);
});

test("each resource carries an ETag that is its @odata.etag, and a zone lists its host card and chassis cards", async () => {
  const { request } = await service();
  const zone = await request("GET", `${ZONE}/100`);
  assert.equal(zone.status, 200);
  assert.match(zone.headers.get("ETag")!, /^"[0-9a-f]{16}"$/);
  assert.equal(zone.json["@odata.etag"], zone.headers.get("ETag"));
  assert.deepEqual(members(zone.json), ["10000001", "20000001"]);
  assert.equal((await request("GET", `${EP}/20000001`)).json.Name, "chassis card 0x20000001");
  assert.equal((await request("GET", "/redfish/v1/Chassis/10000001")).json.ChassisType, "Card");
  assert.equal((await request("GET", "/redfish/v1/UpdateService/FirmwareInventory/10000001")).json.Version, "1.0.0");
});

test("unknown resources are 404 and unsupported methods 405 with Allow, each with its Base message", async () => {
  const { request } = await service();
  const cases: [string, string, number, string, string?][] = [
    ["GET", "/redfish/v1/Nothing", 404, "Base.1.20.ResourceMissingAtURI"],
    ["GET", "/redfish/v1/Fabrics/other", 404, "Base.1.20.ResourceNotFound"],
    ["GET", `${ZONE}/300`, 404, "Base.1.20.ResourceNotFound"],
    ["GET", `${ZONE}/0100`, 404, "Base.1.20.ResourceNotFound"],
    ["GET", `${EP}/30000001`, 404, "Base.1.20.ResourceNotFound"],
    ["GET", "/redfish/v1/TaskService/Tasks/1", 404, "Base.1.20.ResourceNotFound"],
    ["DELETE", `${ZONE}/100`, 405, "Base.1.20.OperationNotAllowed", "GET, HEAD, PATCH"],
    ["POST", "/redfish/v1/Chassis", 405, "Base.1.20.OperationNotAllowed", "GET, HEAD"],
    ["GET", `${ZONE}/100/Actions/Zone.AddEndpoint`, 405, "Base.1.20.OperationNotAllowed", "POST"],
  ];
  for (const [method, path, status, id, allow] of cases) {
    const r = await request(method, path);
    assert.equal(r.status, status, `${method} ${path}`);
    assert.equal(r.json.error.code, id, `${method} ${path}`);
    assert.equal(r.json.error["@Message.ExtendedInfo"][0].MessageId, id);
    assert.equal(r.headers.get("Allow"), allow ?? null, `${method} ${path}`);
    assert.equal(r.headers.get("OData-Version"), "4.0");
  }
});

test("a PATCH the service refuses gets the Redfish error and status, and never reaches a card", async () => {
  const { request, station } = await service();
  const link = (id: string) => ({ "@odata.id": `${EP}/${id}` });
  const { json: zone } = await request("GET", `${ZONE}/200`);
  const cases: [string, unknown, Record<string, string>, number, string[]][] = [
    ["malformed JSON", "{\"Links\": ", {}, 400, ["MalformedJSON"]],
    ["not an object", "[1]", {}, 400, ["MalformedJSON"]],
    ["an unknown property", { Colour: "red" }, {}, 400, ["PropertyUnknown"]],
    ["a read-only property and an unknown one", { Name: "x", Links: { Foo: [] } }, {}, 400, ["PropertyNotWritable", "PropertyUnknown"]],
    ["nothing to do", {}, {}, 400, ["NoOperation"]],
    ["Endpoints not a list", { Links: { Endpoints: "all" } }, {}, 400, ["PropertyValueTypeError"]],
    ["an endpoint of another fabric", { Links: { Endpoints: [link("10000002"), { "@odata.id": "/redfish/v1/Fabrics/other/Endpoints/20000001" }] } }, {}, 400, ["ResourceMissingAtURI"]],
    ["an endpoint that does not exist", { Links: { Endpoints: [link("10000002"), link("20000009")] } }, {}, 400, ["ResourceMissingAtURI"]],
    ["two host cards", { Links: { Endpoints: [link("10000002"), link("10000001")] } }, {}, 400, ["PropertyValueIncorrect"]],
    ["a card leaving without joining another zone", { Links: { Endpoints: [link("10000001")] } }, {}, 400, ["PropertyValueIncorrect"]],
    ["a stale ETag", { Links: { Endpoints: [link("10000002"), link("20000001")] } }, { "If-Match": "\"0000000000000000\"" }, 412, ["PreconditionFailed"]],
  ];
  for (const [what, body, headers, status, ids] of cases) {
    const path = what === "a card leaving without joining another zone" ? `${ZONE}/100` : `${ZONE}/200`;
    const r = await request("PATCH", path, body, headers);
    assert.equal(r.status, status, what);
    assert.deepEqual(r.json.error["@Message.ExtendedInfo"].map((m: { MessageId: string }) => m.MessageId), ids.map((id) => `Base.1.20.${id}`), what);
    assert.ok(r.json.error.message.length > 0);
  }
  assert.equal(zone["@odata.etag"], (await request("GET", `${ZONE}/200`)).json["@odata.etag"], "the zone did not change");
  assert.deepEqual(station.calls, [], "no request reached a card");
});

test("a PATCH that moves a chassis card starts a Task: 202 and its monitor, 409 for the same card meanwhile, done when the card reports its new zone", async () => {
  const { request, station, installation } = await service();
  const { json: zone } = await request("GET", `${ZONE}/200`);
  const body = { Links: { Endpoints: [{ "@odata.id": `${EP}/10000002` }, { "@odata.id": `${EP}/20000001` }] } };
  const started = await request("PATCH", `${ZONE}/200`, body, { "If-Match": zone["@odata.etag"] });
  assert.equal(started.status, 202);
  const monitor = started.headers.get("Location")!;
  assert.equal(monitor, "/redfish/v1/TaskService/TaskMonitors/1");
  assert.equal(started.json["@odata.type"], "#Task.v1_7_4.Task");
  assert.equal(started.json.TaskState, "Running");
  assert.deepEqual(station.calls.map((c) => [c.serial, c.group]), [[CHASSIS, 200]], "one request to the card");

  const again = await request("POST", `${ZONE}/200/Actions/Zone.AddEndpoint`, { Endpoint: { "@odata.id": `${EP}/20000001` } });
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, "Base.1.20.ResourceInUse");
  assert.equal(station.calls.length, 1);

  assert.equal((await request("GET", monitor)).status, 202);
  station.calls[0].resolve();
  await new Promise((r) => setImmediate(r));
  const task = await request("GET", "/redfish/v1/TaskService/Tasks/1");
  assert.deepEqual([task.json.TaskState, task.json.PercentComplete], ["Running", 50], "confirmed, not yet moved");
  station.moved(CHASSIS, 200);
  await installation.poll();
  const done = await request("GET", monitor);
  assert.equal(done.status, 200);
  assert.deepEqual(members(done.json), ["10000002", "20000001"]);
  const finished = await request("GET", "/redfish/v1/TaskService/Tasks/1");
  assert.deepEqual([finished.json.TaskState, finished.json.TaskStatus, finished.json.PercentComplete], ["Completed", "OK", 100]);
  assert.equal(finished.json.Messages.at(-1).MessageId, "TaskEvent.1.0.TaskCompletedOK");
  assert.equal(finished.json.Payload.HttpOperation, "PATCH");
  assert.deepEqual((await request("GET", "/redfish/v1/TaskService/Tasks")).json["Members@odata.count"], 1);
});

test("a card that refuses or does not answer ends the Task in an Exception whose monitor answers with the error", async () => {
  const { request, station } = await service();
  const started = await request("POST", `${ZONE}/200/Actions/Zone.AddEndpoint`, { Endpoint: { "@odata.id": `${EP}/20000001` } });
  assert.equal(started.status, 202);
  station.calls[0].reject(new ManageError("card 0x20000001 refused the group change to 200: busy", "refused", CHASSIS, ManageStatus.Busy));
  await new Promise((r) => setImmediate(r));
  const monitor = await request("GET", started.headers.get("Location")!);
  assert.equal(monitor.status, 400);
  assert.equal(monitor.json.error.code, "TaskEvent.1.0.TaskAborted");
  assert.match(monitor.json.error["@Message.ExtendedInfo"][0].Resolution, /refused the group change to 200: busy/);
  const task = await request("GET", "/redfish/v1/TaskService/Tasks/1");
  assert.deepEqual([task.json.TaskState, task.json.TaskStatus], ["Exception", "Critical"]);
  // The card is free again.
  assert.equal((await request("POST", `${ZONE}/200/Actions/Zone.AddEndpoint`, { Endpoint: { "@odata.id": `${EP}/20000001` } })).status, 202);
});

test("a poll that fails is counted and the next one goes ahead", async () => {
  const station = new ScriptedStation([report(CardRole.Host, HOST1, 100)]);
  let fail = true;
  const discover = station.discover.bind(station);
  station.discover = () => (fail ? ((fail = false), Promise.reject(new Error("write after close"))) : discover());
  const timers: (() => void)[] = [];
  const installation = new Installation(station, "lab", { now: () => 0, after: (_ms, cb) => (timers.push(cb), () => {}) });
  installation.start();
  await new Promise((r) => setImmediate(r));
  assert.equal(installation.failedPolls, 1);
  assert.equal(installation.view().cards.length, 0);
  timers.shift()!();
  await new Promise((r) => setImmediate(r));
  installation.stop();
  assert.equal(installation.view().cards.length, 1, "the next poll found the card");
});
