// The Redfish schema versions the service speaks (DMTF DSP8010 2024.4) and the messages of the
// Base registry it answers errors with (DSP0266 "Error responses"). docs/redfish.md maps each
// product concept to its resource.

/** The DSP0266 version the service implements, as ServiceRoot.RedfishVersion. */
export const REDFISH_VERSION = "1.20.0";

/** Each resource type with the schema version its payloads follow. */
export const TYPES = {
  ServiceRoot: "ServiceRoot.v1_17_0",
  Fabric: "Fabric.v1_3_2",
  Zone: "Zone.v1_6_3",
  Endpoint: "Endpoint.v1_8_2",
  Chassis: "Chassis.v1_26_0",
  UpdateService: "UpdateService.v1_15_0",
  SoftwareInventory: "SoftwareInventory.v1_10_2",
  TaskService: "TaskService.v1_2_1",
  Task: "Task.v1_7_4",
  EventService: "EventService.v1_10_3",
  EventDestination: "EventDestination.v1_15_1",
  Event: "Event.v1_11_0",
  SessionService: "SessionService.v1_2_0",
  Session: "Session.v1_8_0",
  Message: "Message.v1_3_0",
} as const;

export type ResourceType = keyof typeof TYPES;

/** `#Zone.v1_6_3.Zone` */
export function odataType(type: ResourceType): string {
  return `#${TYPES[type]}.${type}`;
}

/** `#ZoneCollection.ZoneCollection` */
export function collectionType(member: string): string {
  return `#${member}Collection.${member}Collection`;
}

/** The Base registry version whose messages errors carry (MessageId `Base.1.20.Key`). */
export const BASE_REGISTRY = "Base.1.20";

export type Severity = "OK" | "Warning" | "Critical";

interface MessageSpec {
  /** The text, with %1, %2 for the arguments. */
  message: string;
  severity: Severity;
  resolution: string;
}

/** The Base.1.20.0 messages the service uses, with the registry's own texts (DSP8011 2024.4, registries/Base.1.20.0.json). */
export const BASE_MESSAGES = {
  MalformedJSON: {
    message: "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
    severity: "Critical",
    resolution: "Ensure that the request body is valid JSON and resubmit the request.",
  },
  PropertyUnknown: {
    message: "The property %1 is not in the list of valid properties for the resource.",
    severity: "Warning",
    resolution: "Remove the unknown property from the request body and resubmit the request if the operation failed.",
  },
  PropertyNotWritable: {
    message: "The property %1 is a read-only property and cannot be assigned a value.",
    severity: "Warning",
    resolution: "Remove the property from the request body and resubmit the request if the operation failed.",
  },
  PropertyValueTypeError: {
    message: "The value '%1' for the property %2 is not a type that the property can accept.",
    severity: "Warning",
    resolution: "Correct the value for the property in the request body and resubmit the request if the operation failed.",
  },
  PropertyValueIncorrect: {
    message: "The property '%1' with the requested value of '%2' could not be written because the value does not meet the constraints of the implementation.",
    severity: "Warning",
    resolution: "None.",
  },
  ActionParameterMissing: {
    message: "The action %1 requires the parameter %2 to be present in the request body.",
    severity: "Critical",
    resolution: "Supply the action with the required parameter in the request body when the request is resubmitted.",
  },
  ActionParameterUnknown: {
    message: "The action %1 was submitted with the invalid parameter %2.",
    severity: "Warning",
    resolution: "Correct the invalid action parameter and resubmit the request if the operation failed.",
  },
  ResourceNotFound: {
    message: "The requested resource of type %1 named '%2' was not found.",
    severity: "Critical",
    resolution: "Provide a valid resource identifier and resubmit the request.",
  },
  ResourceMissingAtURI: {
    message: "The resource at the URI '%1' was not found.",
    severity: "Critical",
    resolution: "Place a valid resource at the URI or correct the URI and resubmit the request.",
  },
  OperationNotAllowed: {
    message: "The HTTP method is not allowed on this resource.",
    severity: "Critical",
    resolution: "None.",
  },
  PreconditionFailed: {
    message: "The ETag supplied did not match the ETag required to change this resource.",
    severity: "Critical",
    resolution: "Try the operation again using the appropriate ETag.",
  },
  ResourceInUse: {
    message: "The change to the requested resource failed because the resource is in use or in transition.",
    severity: "Warning",
    resolution: "Remove the condition and resubmit the request if the operation failed.",
  },
  NoOperation: {
    message: "The request body submitted contain no data to act upon and no changes to the resource took place.",
    severity: "Warning",
    resolution: "Add properties in the JSON object and resubmit the request.",
  },
  GeneralError: {
    message: "A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.",
    severity: "Critical",
    resolution: "None.",
  },
} as const satisfies Record<string, MessageSpec>;

export type BaseMessageKey = keyof typeof BASE_MESSAGES;

/** A Message object (Message.v1_3_0) of the Base registry. */
export interface RedfishMessage {
  "@odata.type": string;
  MessageId: string;
  Message: string;
  MessageArgs: string[];
  MessageSeverity: Severity;
  Resolution: string;
  RelatedProperties?: string[];
}

export function baseMessage(key: BaseMessageKey, args: string[] = [], relatedProperties?: string[]): RedfishMessage {
  const spec: MessageSpec = BASE_MESSAGES[key];
  return {
    "@odata.type": odataType("Message"),
    MessageId: `${BASE_REGISTRY}.${key}`,
    Message: spec.message.replace(/%(\d)/g, (_, n: string) => args[Number(n) - 1] ?? ""),
    MessageArgs: args,
    MessageSeverity: spec.severity,
    Resolution: spec.resolution,
    ...(relatedProperties ? { RelatedProperties: relatedProperties } : {}),
  };
}

/** The error response body (DSP0266 "Error responses"): the first message's id and text, and every message. */
export function errorBody(messages: RedfishMessage[]): { error: { code: string; message: string; "@Message.ExtendedInfo": RedfishMessage[] } } {
  const [first] = messages;
  return { error: { code: first.MessageId, message: first.Message, "@Message.ExtendedInfo": messages } };
}

/** The messages events carry, from the registries of DSP8011 2024.4 (Fabric.1.0.2, ResourceEvent.1.4.2, TaskEvent.1.0.4). */
export const EVENT_MESSAGES = {
  "Fabric.1.0.DownstreamLinkEstablished": { message: "Switch '%1' downstream link is established on port '%2'.", severity: "OK" },
  "Fabric.1.0.DownstreamLinkDropped": { message: "Switch '%1' downstream link has gone down on port '%2'.", severity: "Warning" },
  "Fabric.1.0.UpstreamLinkEstablished": { message: "Switch '%1' upstream link is established on port '%2'.", severity: "OK" },
  "Fabric.1.0.UpstreamLinkDropped": { message: "Switch '%1' upstream link has gone down on port '%2'.", severity: "Warning" },
  "Fabric.1.0.PortDegraded": { message: "Switch '%1' port '%2' is in a degraded state.", severity: "Warning" },
  "Fabric.1.0.PortOK": { message: "Switch '%1' port '%2' has returned to a functional state.", severity: "OK" },
  "Fabric.1.0.PortAutomaticallyEnabled": { message: "Switch '%1' port '%2' was automatically enabled.", severity: "OK" },
  "Fabric.1.0.PortAutomaticallyDisabled": { message: "Switch '%1' port '%2' was automatically disabled.", severity: "OK" },
  "Fabric.1.0.ZoneModified": { message: "Zone '%1' in fabric '%2' was modified.", severity: "OK" },
  "Fabric.1.0.EndpointCreated": { message: "Endpoint '%1' was created in fabric '%2'.", severity: "OK" },
  "Fabric.1.0.EndpointModified": { message: "Endpoint '%1' in fabric '%2' was modified.", severity: "OK" },
  "ResourceEvent.1.4.ResourceStatusChangedOK": { message: "The health of resource '%1' has changed to %2.", severity: "OK" },
  "ResourceEvent.1.4.ResourceStatusChangedWarning": { message: "The health of resource '%1' has changed to %2.", severity: "Warning" },
  "ResourceEvent.1.4.ResourceStatusChangedCritical": { message: "The health of resource '%1' has changed to %2.", severity: "Critical" },
  "TaskEvent.1.0.TaskStarted": { message: "The task with Id '%1' has started.", severity: "OK" },
  "TaskEvent.1.0.TaskCompletedOK": { message: "The task with Id '%1' has completed.", severity: "OK" },
  "TaskEvent.1.0.TaskAborted": { message: "The task with Id '%1' has completed with errors.", severity: "Critical" },
  "TaskEvent.1.0.TaskProgressChanged": { message: "The task with Id '%1' has changed to progress %2 percent complete.", severity: "OK" },
} as const satisfies Record<string, { message: string; severity: Severity }>;

export type EventMessageId = keyof typeof EVENT_MESSAGES;

/** The text of event message `id` with its arguments. */
export function eventText(id: EventMessageId, args: string[]): string {
  return EVENT_MESSAGES[id].message.replace(/%(\d)/g, (_, n: string) => args[Number(n) - 1] ?? "");
}

/** Event message `id` as a Message object, for a Task's Messages. */
export function registryMessage(id: EventMessageId, args: string[]): RedfishMessage {
  return { "@odata.type": odataType("Message"), MessageId: id, Message: eventText(id, args), MessageArgs: args, MessageSeverity: EVENT_MESSAGES[id].severity, Resolution: "None." };
}
