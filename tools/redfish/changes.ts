// What changed between two reports of a card, as the Redfish events the service streams: a
// link port's session up or down (for the server behind a host card, a hot-plug insertion or
// removal), a session in recovery and back, an Ethernet path that went silent or came back,
// a card's group (its zone), the devices in a chassis card's slots, a card that stopped or
// started answering. Registries: Fabric.1.0, ResourceEvent.1.4 (tools/redfish/schema.ts).

import { LinkState } from "../../board/map/link.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import { formatSerial } from "../../board/manage-codec.ts";
import { EVENT_MESSAGES, eventText, type EventMessageId, type Severity } from "./schema.ts";
import { cardId, cardStatus, chassisUri, endpointUri, zoneUri, type CardView, type InstallationView } from "./resources.ts";

/** One change, as an Event record's message and the resource it is about. */
export interface Change {
  messageId: EventMessageId;
  args: string[];
  message: string;
  severity: Severity;
  /** OriginOfCondition: the resource whose state changed. */
  origin: string;
}

function change(messageId: EventMessageId, args: string[], origin: string): Change {
  return { messageId, args, message: eventText(messageId, args), severity: EVENT_MESSAGES[messageId].severity, origin };
}

const up = (s: LinkState | undefined) => s === LinkState.Active || s === LinkState.Recovery;

/** The events that take a card from `before` (undefined: never heard before) to `after`. */
export function changes(v: InstallationView, before: CardView | undefined, after: CardView): Change[] {
  const r = after.report;
  const serial = r.sender.serial;
  const name = formatSerial(serial);
  const endpoint = endpointUri(v, serial);
  // A card heard for the first time is new to the service, whatever its links have been doing.
  if (!before) return [change("Fabric.1.0.EndpointCreated", [cardId(serial), v.fabric], endpoint)];
  const out: Change[] = [];
  const b = before.report;
  const health = [cardStatus(before).Health, cardStatus(after).Health];
  if (health[0] !== health[1]) {
    const id = `ResourceEvent.1.4.ResourceStatusChanged${health[1]}` as EventMessageId;
    out.push(change(id, [chassisUri(serial), health[1]], chassisUri(serial)));
  }
  if (!after.reachable) return out;
  if (b.group !== r.group) {
    for (const group of [b.group, r.group]) out.push(change("Fabric.1.0.ZoneModified", [String(group), v.fabric], zoneUri(v, group)));
  }
  const host = r.sender.role === CardRole.Host;
  r.linkStates.forEach((state, port) => {
    // Up in both reports with another peer: the session went down and another came up in between.
    const was = up(state) && up(b.linkStates[port]) && r.peerSerials[port] !== b.peerSerials[port] ? LinkState.Down : b.linkStates[port];
    const where = [name, String(port)];
    if (up(state) && up(b.linkStates[port]) && was === LinkState.Down) {
      out.push(change(host ? "Fabric.1.0.DownstreamLinkDropped" : "Fabric.1.0.UpstreamLinkDropped", where, endpoint));
    }
    if (up(state) && !up(was)) out.push(change(host ? "Fabric.1.0.DownstreamLinkEstablished" : "Fabric.1.0.UpstreamLinkEstablished", where, endpoint));
    if (!up(state) && up(was)) out.push(change(host ? "Fabric.1.0.DownstreamLinkDropped" : "Fabric.1.0.UpstreamLinkDropped", where, endpoint));
    if (state === LinkState.Recovery && was === LinkState.Active) out.push(change("Fabric.1.0.PortDegraded", where, endpoint));
    if (state === LinkState.Active && was === LinkState.Recovery) out.push(change("Fabric.1.0.PortOK", where, endpoint));
    const paths = r.paths?.[port];
    const had = b.paths?.[port];
    if (!paths || !up(state)) return;
    for (const e of [0, 1]) {
      const path = [name, `${port} eth${e}`];
      const on = paths.on.includes(e);
      const wasOn = up(was) && (had?.on.includes(e) ?? false);
      if (on && !wasOn && up(was)) out.push(change("Fabric.1.0.PortAutomaticallyEnabled", path, chassisUri(serial)));
      if (!on && wasOn) out.push(change("Fabric.1.0.PortAutomaticallyDisabled", path, chassisUri(serial)));
      const silent = paths.silent.includes(e);
      const wasSilent = wasOn && (had?.silent.includes(e) ?? false);
      if (silent && !wasSilent) out.push(change("Fabric.1.0.PortDegraded", path, chassisUri(serial)));
      if (!silent && wasSilent && on) out.push(change("Fabric.1.0.PortOK", path, chassisUri(serial)));
    }
  });
  if (!host && b.slotsPresent !== r.slotsPresent) out.push(change("Fabric.1.0.EndpointModified", [cardId(serial), v.fabric], endpoint));
  return out;
}
