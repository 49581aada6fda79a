// The management station as a DMTF Redfish service (DSP0266): the installation's resources
// (tools/redfish/resources.ts) over HTTP, assignment by a PATCH of a zone's Links.Endpoints or its
// Zone.AddEndpoint action, answered with a Task that completes when the card reports its new
// group, and Redfish error bodies with the status DSP0266 gives each refusal. Nothing a request
// is refused for reaches a card. HTTP itself is Hono's (hono, @hono/node-server).

import { createHash } from "node:crypto";
import { Hono, type Context } from "hono";
import { CardRole } from "../../board/map/mailbox.ts";
import { formatSerial } from "../../board/manage-codec.ts";
import { ManageError } from "../manage/client.ts";
import type { Installation } from "./installation.ts";
import {
  ROOT, cardId, chassis, chassisCollection, endpoint, endpointCollection, fabric, fabricCollection, firmware, firmwareCollection,
  groups, updateService, zone, zoneCollection, type CardView, type Json,
} from "./resources.ts";
import { REDFISH_VERSION, TYPES, baseMessage, collectionType, errorBody, odataType, registryMessage, type BaseMessageKey, type RedfishMessage } from "./schema.ts";

/** A request the service refuses: its status and the messages of the error body. */
export class RedfishError extends Error {
  constructor(readonly status: 400 | 404 | 405 | 409 | 412, readonly messages: RedfishMessage[], readonly allow?: string[]) {
    super(messages[0].Message);
  }

  static of(status: RedfishError["status"], key: BaseMessageKey, args: string[] = [], related?: string[]): RedfishError {
    return new RedfishError(status, [baseMessage(key, args, related)]);
  }
}

type TaskState = "Running" | "Completed" | "Exception";

interface Task {
  id: number;
  state: TaskState;
  startTime: Date;
  endTime: Date | null;
  serial: number;
  group: number;
  messages: RedfishMessage[];
  /** The request that started it: DSP0266 Task.Payload. */
  payload: { HttpOperation: string; TargetUri: string; JsonBody: string };
}

export interface ServiceOptions {
  installation: Installation;
  /** The wall clock, for task times. */
  now?: () => Date;
  /** How long finished tasks stay readable. Default 1 hour. */
  keepTasksMs?: number;
}

/** A strong ETag of a payload: its hash. */
export function etagOf(body: Json): string {
  return `"${createHash("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 16)}"`;
}

const link = (uri: string) => ({ "@odata.id": uri });

/** A resource as the answer: its ETag in the header and as `@odata.etag`. */
function resource(c: Context, body: Json): Response {
  const etag = etagOf(body);
  c.header("ETag", etag);
  return c.json({ ...body, "@odata.etag": etag }, 200);
}

/** The schemas the service's payloads use, for $metadata. */
function metadata(): string {
  const refs = Object.values(TYPES).map((versioned) => {
    const [namespace] = versioned.split(".");
    return `  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/${namespace}_v1.xml">\n    <edmx:Include Namespace="${namespace}"/>\n    <edmx:Include Namespace="${versioned}"/>\n  </edmx:Reference>`;
  });
  const collections = ["Fabric", "Zone", "Endpoint", "Chassis", "SoftwareInventory", "Task"].map((c) =>
    `  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/${c}Collection_v1.xml">\n    <edmx:Include Namespace="${c}Collection"/>\n  </edmx:Reference>`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
${[...refs, ...collections].join("\n")}
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="${TYPES.ServiceRoot}.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`;
}

export class RedfishService {
  readonly app: Hono;
  private readonly installation: Installation;
  private readonly now: () => Date;
  private readonly keepTasksMs: number;
  private readonly tasks = new Map<number, Task>();
  private nextTask = 1;

  constructor(o: ServiceOptions) {
    this.installation = o.installation;
    this.now = o.now ?? (() => new Date());
    this.keepTasksMs = o.keepTasksMs ?? 3_600_000;
    this.app = this.routes();
  }

  private get fabricId(): string {
    return this.installation.fabric;
  }

  private routes(): Hono {
    const app = new Hono({ strict: false });
    app.use("*", async (c, next) => {
      await next();
      c.header("OData-Version", "4.0");
      c.header("Cache-Control", "no-cache");
    });
    app.onError((error, c) => this.refuse(c, error));
    app.notFound((c) => this.refuse(c, RedfishError.of(404, "ResourceMissingAtURI", [new URL(c.req.url).pathname])));

    app.get("/redfish", (c) => c.json({ v1: "/redfish/v1/" }));
    const F = "/redfish/v1/Fabrics/:fabric";
    const resources: [string, (c: Context) => Json][] = [
      ["/redfish/v1", () => this.serviceRoot()],
      ["/redfish/v1/odata", () => this.odata()],
      ["/redfish/v1/Fabrics", () => fabricCollection(this.view())],
      [F, (c) => (this.fabricOf(c), fabric(this.view()))],
      [`${F}/Endpoints`, (c) => (this.fabricOf(c), endpointCollection(this.view()))],
      [`${F}/Endpoints/:card`, (c) => (this.fabricOf(c), endpoint(this.view(), this.cardOf(c, "Endpoint")))],
      [`${F}/Zones`, (c) => (this.fabricOf(c), zoneCollection(this.view()))],
      [`${F}/Zones/:zone`, (c) => this.zoneOf(c).body],
      ["/redfish/v1/Chassis", () => chassisCollection(this.view())],
      ["/redfish/v1/Chassis/:card", (c) => chassis(this.view(), this.cardOf(c, "Chassis"))],
      ["/redfish/v1/UpdateService", () => updateService()],
      ["/redfish/v1/UpdateService/FirmwareInventory", () => firmwareCollection(this.view())],
      ["/redfish/v1/UpdateService/FirmwareInventory/:card", (c) => firmware(this.cardOf(c, "SoftwareInventory"))],
      ["/redfish/v1/TaskService", () => this.taskService()],
      ["/redfish/v1/TaskService/Tasks", () => this.taskCollection()],
      ["/redfish/v1/TaskService/Tasks/:task", (c) => this.taskResource(this.taskOf(c))],
    ];
    app.get("/redfish/v1/$metadata", (c) => c.body(metadata(), 200, { "Content-Type": "application/xml" }));
    app.get("/redfish/v1/TaskService/TaskMonitors/:task", (c) => this.monitor(c));
    for (const [path, get] of resources) {
      app.get(path, (c) => resource(c, get(c)));
    }
    app.patch(`${F}/Zones/:zone`, (c) => this.patchZone(c));
    app.post(`${F}/Zones/:zone/Actions/Zone.AddEndpoint`, (c) => this.addEndpoint(c));
    // Everything else on a resource that exists: 405 with the methods it takes.
    const allowed = new Map<string, string[]>([...resources.map(([path]) => [path, ["GET", "HEAD"]] as [string, string[]]),
      ["/redfish", ["GET", "HEAD"]], ["/redfish/v1/$metadata", ["GET", "HEAD"]], ["/redfish/v1/TaskService/TaskMonitors/:task", ["GET", "HEAD"]],
      [`${F}/Zones/:zone/Actions/Zone.AddEndpoint`, ["POST"]]]);
    allowed.set(`${F}/Zones/:zone`, ["GET", "HEAD", "PATCH"]);
    for (const [path, methods] of allowed) {
      app.all(path, (c) => {
        throw new RedfishError(405, [baseMessage("OperationNotAllowed")], methods);
      });
    }
    return app;
  }

  private refuse(c: Context, error: Error): Response {
    if (!(error instanceof RedfishError)) {
      const internal = baseMessage("GeneralError");
      return c.json(errorBody([{ ...internal, Message: `${internal.Message} ${error.message}` }]), 500);
    }
    if (error.allow) c.header("Allow", error.allow.join(", "));
    return c.json(errorBody(error.messages), error.status);
  }

  private view() {
    return this.installation.view();
  }

  private fabricOf(c: Context): void {
    const id = c.req.param("fabric");
    if (id !== this.fabricId) throw RedfishError.of(404, "ResourceNotFound", ["Fabric", id ?? ""]);
  }

  private cardOf(c: Context, type: string): CardView {
    const id = c.req.param("card") ?? "";
    const card = /^[0-9a-f]{8}$/.test(id) ? this.installation.card(parseInt(id, 16)) : undefined;
    if (!card) throw RedfishError.of(404, "ResourceNotFound", [type, id]);
    return card;
  }

  private zoneOf(c: Context): { group: number; body: Json } {
    this.fabricOf(c);
    const id = c.req.param("zone") ?? "";
    const group = /^[1-9][0-9]{0,3}$/.test(id) ? Number(id) : NaN;
    if (!groups(this.view()).includes(group)) throw RedfishError.of(404, "ResourceNotFound", ["Zone", id]);
    return { group, body: zone(this.view(), group) };
  }

  private taskOf(c: Context): Task {
    const id = c.req.param("task") ?? "";
    const task = this.tasks.get(Number(id));
    if (!task || String(task.id) !== id) throw RedfishError.of(404, "ResourceNotFound", ["Task", id]);
    return task;
  }

  private serviceRoot(): Json {
    return {
      "@odata.id": `${ROOT}/`,
      "@odata.type": odataType("ServiceRoot"),
      Id: "RootService",
      Name: "IOV management service",
      RedfishVersion: REDFISH_VERSION,
      Product: "IOV management station",
      Vendor: "IOV",
      Fabrics: link(`${ROOT}/Fabrics`),
      Chassis: link(`${ROOT}/Chassis`),
      UpdateService: link(`${ROOT}/UpdateService`),
      Tasks: link(`${ROOT}/TaskService`),
      Links: {},
    };
  }

  private odata(): Json {
    const singletons = [["Fabrics", "Fabrics"], ["Chassis", "Chassis"], ["UpdateService", "UpdateService"], ["Tasks", "TaskService"]];
    return {
      "@odata.id": `${ROOT}/odata`,
      "@odata.context": `${ROOT}/$metadata`,
      value: [{ name: "Service", kind: "Singleton", url: `${ROOT}/` }, ...singletons.map(([name, path]) => ({ name, kind: "Singleton", url: `${ROOT}/${path}` }))],
    };
  }

  // ---- Assignment ------------------------------------------------------------------------------

  /** PATCH of a zone: Links.Endpoints, the zone's new members. */
  private async patchZone(c: Context): Promise<Response> {
    const { group, body } = this.zoneOf(c);
    const request = await this.jsonBody(c);
    const unknown = Object.keys(request).filter((k) => !k.startsWith("@odata."));
    const errors: RedfishMessage[] = [];
    for (const key of unknown) {
      if (key === "Links") continue;
      errors.push(key in body ? baseMessage("PropertyNotWritable", [key], [`/${key}`]) : baseMessage("PropertyUnknown", [key], [`/${key}`]));
    }
    const links = request.Links;
    if (links !== undefined) {
      if (typeof links !== "object" || links === null || Array.isArray(links)) errors.push(baseMessage("PropertyValueTypeError", [JSON.stringify(links), "Links"], ["/Links"]));
      else {
        for (const key of Object.keys(links)) {
          if (key === "Endpoints") continue;
          const writable = key in (body.Links as Json) ? "PropertyNotWritable" : "PropertyUnknown";
          errors.push(baseMessage(writable, [`Links/${key}`], [`/Links/${key}`]));
        }
      }
    }
    if (errors.length) throw new RedfishError(400, errors);
    const endpoints = (links as Json | undefined)?.Endpoints;
    if (endpoints === undefined) throw RedfishError.of(400, "NoOperation");
    this.ifMatch(c, etagOf(body));
    const members = this.members(endpoints, "/Links/Endpoints");
    return this.move(c, group, members, "PATCH", JSON.stringify(request));
  }

  /** Zone.AddEndpoint: `{"Endpoint": {"@odata.id": ...}}`, the zone's members and that one. */
  private async addEndpoint(c: Context): Promise<Response> {
    const { group, body } = this.zoneOf(c);
    const request = await this.jsonBody(c);
    const action = "Zone.AddEndpoint";
    const unknown = Object.keys(request).filter((k) => k !== "Endpoint" && k !== "ZoneETag" && k !== "EndpointETag");
    if (unknown.length) throw new RedfishError(400, unknown.map((k) => baseMessage("ActionParameterUnknown", [action, k], [`/${k}`])));
    if (request.Endpoint === undefined) throw new RedfishError(400, [baseMessage("ActionParameterMissing", [action, "Endpoint"], ["/Endpoint"])]);
    if (typeof request.ZoneETag === "string" && request.ZoneETag !== etagOf(body)) throw RedfishError.of(412, "PreconditionFailed");
    const current = (body.Links as { Endpoints: { "@odata.id": string }[] }).Endpoints;
    const members = this.members([...current, request.Endpoint], "/Endpoint");
    return this.move(c, group, members, "POST", JSON.stringify(request));
  }

  private async jsonBody(c: Context): Promise<Json> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await c.req.text());
    } catch {
      throw RedfishError.of(400, "MalformedJSON");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw RedfishError.of(400, "MalformedJSON");
    return parsed as Json;
  }

  /** If-Match: the resource's current ETag (or `*`), weak or strong; absent is taken as a match. */
  private ifMatch(c: Context, etag: string): void {
    const header = c.req.header("If-Match");
    if (header === undefined) return;
    const tags = header.split(",").map((t) => t.trim().replace(/^W\//, ""));
    if (!tags.includes("*") && !tags.includes(etag)) throw RedfishError.of(412, "PreconditionFailed");
  }

  /** The cards a list of endpoint links names, each an endpoint of this fabric, once. */
  private members(list: unknown, pointer: string): CardView[] {
    if (!Array.isArray(list)) throw RedfishError.of(400, "PropertyValueTypeError", [JSON.stringify(list), pointer.slice(1)], [pointer]);
    const out: CardView[] = [];
    list.forEach((item, i) => {
      const uri = typeof item === "object" && item !== null ? (item as Json)["@odata.id"] : undefined;
      const where = list.length > 1 || pointer.endsWith("s") ? `${pointer}/${i}` : pointer;
      if (typeof uri !== "string") throw RedfishError.of(400, "PropertyValueTypeError", [JSON.stringify(item), where.slice(1)], [where]);
      const match = new RegExp(`^${ROOT}/Fabrics/([^/]+)/Endpoints/([0-9a-f]{8})/?$`).exec(uri);
      const card = match && match[1] === this.fabricId ? this.installation.card(parseInt(match[2], 16)) : undefined;
      if (!card) throw RedfishError.of(400, "ResourceMissingAtURI", [uri], [where]);
      if (!out.includes(card)) out.push(card);
    });
    return out;
  }

  /**
   * Checks that `members` is what zone `group` can become: its host card stays (host cards stay
   * with their server), at most one host card, and the chassis cards in it now stay or move; the
   * chassis cards that join are moved there, each a Task.
   */
  private move(c: Context, group: number, members: CardView[], operation: string, json: string): Response {
    const pointer = operation === "PATCH" ? "/Links/Endpoints" : "/Endpoint";
    const now = this.view().cards.filter((card) => card.report.group === group);
    const hosts = members.filter((card) => card.report.sender.role === CardRole.Host);
    const value = members.map((card) => cardId(card.report.sender.serial)).join(",");
    const incorrect = (why: string) => new RedfishError(400, [{ ...baseMessage("PropertyValueIncorrect", [pointer.slice(1), value], [pointer]), Resolution: why }]);
    if (hosts.length > 1) throw incorrect("A zone is one server's: it holds at most one host card.");
    if (hosts.some((h) => h.report.group !== group)) throw incorrect("A host card stays with its server: it cannot join another zone.");
    const leaving = now.filter((card) => !members.includes(card));
    if (leaving.length) throw incorrect(`A card leaves a zone only by joining another: PATCH the zone it joins (${leaving.map((l) => formatSerial(l.report.sender.serial)).join(", ")}).`);
    const joining = members.filter((card) => card.report.group !== group);
    if (joining.length === 0) {
      return resource(c, zone(this.view(), group));
    }
    if (joining.length > 1) throw incorrect("One request moves one chassis card: send one per card.");
    const [card] = joining;
    const serial = card.report.sender.serial;
    if ([...this.tasks.values()].some((t) => t.serial === serial && t.state === "Running")) throw RedfishError.of(409, "ResourceInUse");
    const task = this.start(serial, group, { HttpOperation: operation, TargetUri: new URL(c.req.url).pathname, JsonBody: json });
    c.header("Location", `${ROOT}/TaskService/TaskMonitors/${task.id}`);
    return c.json(this.taskResource(task), 202);
  }

  private start(serial: number, group: number, payload: Task["payload"]): Task {
    this.expire();
    const task: Task = { id: this.nextTask++, state: "Running", startTime: this.now(), endTime: null, serial, group, messages: [], payload };
    this.tasks.set(task.id, task);
    const finish = (state: TaskState, message: RedfishMessage) => {
      task.state = state;
      task.endTime = this.now();
      task.messages.push(message);
      unsubscribe();
    };
    // Done when the card reports the new group: its old host card has let it go.
    const unsubscribe = this.installation.onChange(() => {
      if (task.state === "Running" && this.installation.card(serial)?.report.group === group) finish("Completed", registryMessage("TaskEvent.1.0.TaskCompletedOK", [String(task.id)]));
    });
    this.installation.assign(serial, group).then(
      () => {
        if (task.state === "Running") task.messages.push(registryMessage("TaskEvent.1.0.TaskProgressChanged", [String(task.id), "50"]));
      },
      (error: Error) => {
        if (task.state !== "Running") return;
        const why = error instanceof ManageError ? error.message : `${error.name}: ${error.message}`;
        finish("Exception", { ...registryMessage("TaskEvent.1.0.TaskAborted", [String(task.id)]), Resolution: `${why}.` });
      },
    );
    return task;
  }

  /** Forgets finished tasks older than keepTasksMs. */
  private expire(): void {
    const now = this.now().getTime();
    for (const [id, task] of this.tasks) if (task.endTime && now - task.endTime.getTime() > this.keepTasksMs) this.tasks.delete(id);
  }

  private monitor(c: Context): Response {
    const task = this.taskOf(c);
    if (task.state === "Running") {
      c.header("Location", `${ROOT}/TaskService/TaskMonitors/${task.id}`);
      c.header("Retry-After", "1");
      return c.json(this.taskResource(task), 202);
    }
    if (task.state === "Exception") return c.json(errorBody(task.messages.filter((m) => m.MessageSeverity === "Critical")), 400);
    return resource(c, zone(this.view(), task.group));
  }

  private taskService(): Json {
    return {
      "@odata.id": `${ROOT}/TaskService`,
      "@odata.type": odataType("TaskService"),
      Id: "TaskService",
      Name: "Task service",
      ServiceEnabled: true,
      CompletedTaskOverWritePolicy: "Oldest",
      Tasks: link(`${ROOT}/TaskService/Tasks`),
      Status: { State: "Enabled", Health: "OK" },
    };
  }

  private taskCollection(): Json {
    this.expire();
    const members = [...this.tasks.keys()].map((id) => link(`${ROOT}/TaskService/Tasks/${id}`));
    return { "@odata.id": `${ROOT}/TaskService/Tasks`, "@odata.type": collectionType("Task"), Name: "Tasks", Members: members, "Members@odata.count": members.length };
  }

  private taskResource(task: Task): Json {
    const health = task.state === "Exception" ? "Critical" : "OK";
    return {
      "@odata.id": `${ROOT}/TaskService/Tasks/${task.id}`,
      "@odata.type": odataType("Task"),
      Id: String(task.id),
      Name: `Move card ${formatSerial(task.serial)} to zone ${task.group}`,
      TaskState: task.state,
      TaskStatus: health,
      StartTime: task.startTime.toISOString(),
      ...(task.endTime ? { EndTime: task.endTime.toISOString() } : {}),
      // Half way once the card has confirmed its new group; done when it reports it.
      PercentComplete: task.state === "Running" ? (task.messages.length ? 50 : 0) : 100,
      TaskMonitor: `${ROOT}/TaskService/TaskMonitors/${task.id}`,
      Payload: { ...task.payload, HttpHeaders: [] },
      Messages: task.messages,
    };
  }
}
