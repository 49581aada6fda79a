// Wires devices, links and switches together by name. A link's name is its stable identity:
// its impairment streams derive from the network seed and that name (impairments.ts), so a
// scenario can add or reorder links without changing what happens on the others.

import type { PortDevice } from "../../../board/ethernet/port.ts";
import type { Scheduler } from "../../../board/scheduler.ts";
import { Link, type DirectionCounters, type LinkConfig, type LinkPort } from "./link.ts";
import { EthernetSwitch, type SwitchConfig, type SwitchCounters, type SwitchPortCounters } from "./switch.ts";

/** A switch port, by switch name or object. */
export interface SwitchEndpoint {
  switch: string | EthernetSwitch;
  port: number;
}

/** What a cable end is plugged into: a device, a switch port, or nothing yet (attach later). */
export type Endpoint = PortDevice | SwitchEndpoint | null;

export interface NetworkCounters {
  links: Record<string, { up: boolean; aToB: DirectionCounters; bToA: DirectionCounters }>;
  switches: Record<string, SwitchCounters & { ports: SwitchPortCounters[] }>;
}

export class Network {
  readonly links = new Map<string, Link>();
  readonly switches = new Map<string, EthernetSwitch>();
  /** The link plugged into each switch port, by "switch:port". */
  private readonly portLinks = new Map<string, Link>();

  constructor(readonly scheduler: Scheduler, readonly seed = 0) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  }

  addSwitch(name: string, config: SwitchConfig): EthernetSwitch {
    this.claim(name);
    const sw = new EthernetSwitch(this.scheduler, name, config, this.seed);
    this.switches.set(name, sw);
    return sw;
  }

  /** Lays cable `id` between `a` and `b`. Devices are attached; switch ports are plugged. */
  connect(id: string, a: Endpoint, b: Endpoint, config: Omit<LinkConfig, "seed"> = {}): Link {
    this.claim(id);
    const plugA = this.resolve(a);
    const plugB = this.resolve(b);
    const link = new Link(this.scheduler, id, { ...config, seed: this.seed });
    this.links.set(id, link);
    plugA(link.a);
    plugB(link.b);
    for (const end of [a, b]) {
      if (end !== null && !("receive" in end)) this.portLinks.set(`${typeof end.switch === "string" ? end.switch : end.switch.name}:${end.port}`, link);
    }
    return link;
  }

  /** The link plugged into port `port` of switch `name`, or null when nothing is. */
  linkAt(name: string, port: number): Link | null {
    this.switch(name);
    return this.portLinks.get(`${name}:${port}`) ?? null;
  }

  link(id: string): Link {
    const link = this.links.get(id);
    if (!link) throw new Error(`no link named ${id}`);
    return link;
  }

  switch(name: string): EthernetSwitch {
    const sw = this.switches.get(name);
    if (!sw) throw new Error(`no switch named ${name}`);
    return sw;
  }

  /** Every counter, as plain data for a run summary (links and switches in creation order). */
  counters(): NetworkCounters {
    const links: NetworkCounters["links"] = {};
    const switches: NetworkCounters["switches"] = {};
    for (const [id, link] of this.links) links[id] = link.counters();
    for (const [name, sw] of this.switches) switches[name] = sw.snapshot();
    return { links, switches };
  }

  private claim(name: string): void {
    if (this.links.has(name) || this.switches.has(name)) throw new Error(`the network already has a link or switch named ${name}`);
  }

  /** Checks an endpoint and returns what plugs a cable end into it. */
  private resolve(endpoint: Endpoint): (port: LinkPort) => void {
    if (endpoint === null) return () => {};
    if ("receive" in endpoint) return (port) => port.attach(endpoint);
    const sw = typeof endpoint.switch === "string" ? this.switch(endpoint.switch) : endpoint.switch;
    const index = endpoint.port;
    if (!(Number.isInteger(index) && index >= 0 && index < sw.portCount)) throw new RangeError(`switch ${sw.name} has no port ${index}`);
    if (sw.plugged(index)) throw new Error(`switch ${sw.name} port ${index} is already plugged`);
    return (port) => sw.plug(index, port);
  }
}
