// The Redfish service's view of a simulated installation: the station polls the cards of the
// handover scenario on virtual time, hands the chassis card to the other server, and reports
// each change as the event a Redfish client would get.

import { test } from "node:test";
import assert from "node:assert/strict";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS } from "../../tools/sim/scenarios.ts";
import { Installation } from "../../tools/redfish/installation.ts";
import { zone } from "../../tools/redfish/resources.ts";
import { FIRMWARE } from "./helpers.ts";

test("the station's view follows a handover: cards found, zones modified, the chassis card's links down and up again with the new server", async () => {
  const w = new World({ scenario: { ...SCENARIOS.handover, durationNs: 8e9 }, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE } });
  const installation = new Installation(w.management!.client(), "handover", w.management!.clock, { intervalMs: 100, answerMs: 50 });
  const events: string[] = [];
  installation.onChange((changes) => {
    for (const c of changes) events.push(`${(w.scheduler.now / 1e9).toFixed(1)} ${c.messageId.replace(/\.\d+\.\d+\./, " ")} ${c.args.join(" ")}`);
  });
  let assigned: string | null = null;
  w.scheduler.at(300e6, () => installation.start());
  w.scheduler.at(1e9, () => {
    installation.assign(0x2000_0001, 200).then((r) => (assigned = `group ${r.group}`), (e: Error) => (assigned = e.message));
  });
  await w.run();
  installation.stop();
  assert.equal(assigned, "group 200");
  // The first poll finds the three cards; their sessions were up before it.
  assert.deepEqual(events.slice(0, 3).map((e) => e.slice(4)), ["Fabric EndpointCreated 10000001 handover", "Fabric EndpointCreated 10000002 handover", "Fabric EndpointCreated 20000001 handover"]);
  // Then the handover, in one poll once the old server has let the chassis go (its pciehp takes
  // 5 s for an orderly removal): each link port's session, and the chassis card's zone.
  const handover = events.slice(3);
  assert.deepEqual(handover.map((e) => e.slice(4)), [
    "Fabric DownstreamLinkDropped 0x10000001 0",
    "Fabric DownstreamLinkEstablished 0x10000002 0",
    "Fabric ZoneModified 100 handover",
    "Fabric ZoneModified 200 handover",
    "Fabric UpstreamLinkDropped 0x20000001 0",
    "Fabric UpstreamLinkEstablished 0x20000001 0",
  ], events.join("\n"));
  assert.ok(handover.every((e) => Number(e.slice(0, 3)) > 6), events.join("\n"));
  const view = installation.view();
  const members = (group: number) => (zone(view, group) as { Links: { Endpoints: { "@odata.id": string }[] } }).Links.Endpoints.map((e) => e["@odata.id"].split("/").pop());
  assert.deepEqual(members(100), ["10000001"]);
  assert.deepEqual(members(200), ["10000002", "20000001"]);
  assert.ok(view.cards.every((c) => c.reachable));
});
