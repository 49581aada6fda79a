// What survives a reset of the soft-core (docs/registers.md, "What survives a reset"): the
// state the server owns and the sessions the fabric carries on, written to the card's retained
// RAM at the end of each batch that changed it (RETAIN), and given back to the next firmware
// after BOOT (RETAINED), which adopts it instead of starting from nothing. A power cut clears
// the retained RAM, and so does nothing here.
//
// The layout is this firmware's own: a header (magic, LAYOUT, the link's boot ID and DISCOVER
// count), the switch's bindings, the ports' configuration space (the DWs the tables define), and
// the link ports' records. An image whose LAYOUT differs does not adopt.

import { RETAIN_BYTES, RetainBody, CardRole } from "../board/map/mailbox";
import { SWITCH_PORTS } from "../board/map/pcie";
import { MAX_TUNNELS } from "../board/map/registers";
import * as tx from "./abi/tx";
import * as log from "./log";
import * as frames from "./link/frames";
import * as link from "./link/link";
import { SAVED as PORT_SAVED } from "./link/port";
import * as config from "./pcie/config";
import { role } from "./link/config";
import * as vswitch from "./pcie/switch";
import * as manage from "./manage/manage";

/** "IOVr", little-endian. */
const MAGIC: u32 = 0x7256_4f49;
/** Bump with any change to what a region holds or where. */
const LAYOUT: u32 = 3;

export enum At {
  Header = 0, //   u32 MAGIC, u32 LAYOUT, u32 boot ID, u32 DISCOVERs sent, u64 last management counter accepted, u32 1 if one was, u32 0
  Switch = 32, //  vswitch.SAVED bytes
  Spaces = 464, // config.SAVED bytes per switch port
  Ports = 1760, // PORT_SAVED bytes per link port
  End = 3872,
}

const HEADER_BYTES: i32 = At.Switch;
const header = memory.data(HEADER_BYTES);
const staging = memory.data(RETAIN_BYTES);

// Dirty regions, one bit each: header, switch, then the switch ports' spaces, then the link ports.
const HEADER: u32 = 1;
const SWITCH: u32 = 2;
const SPACE0: i32 = 2;
const PORT0: i32 = SPACE0 + SWITCH_PORTS;
let dirty: u32 = 0;

/** RETAINED bytes still to come, the offset of the next, and whether the last adoption took. */
let left: i32 = 0;
let next: i32 = 0;
let adoptedState = false;

export function reset(): void {
  dirty = 0;
  left = 0;
  next = 0;
  adoptedState = false;
}

export function headerChanged(): void {
  dirty |= HEADER;
}

export function switchChanged(): void {
  dirty |= SWITCH;
}

export function spaceChanged(port: i32): void {
  dirty |= 1 << (SPACE0 + port);
}

export function portChanged(index: i32): void {
  dirty |= 1 << (PORT0 + index);
}

/** At the end of a batch: each region changed in it goes to the retained RAM, whole. */
export function flush(): void {
  // While the last firmware's state is still coming, the retained RAM is still that state.
  if (dirty == 0 || left > 0) return;
  if ((dirty & HEADER) != 0) {
    store<u32>(header, MAGIC);
    store<u32>(header, LAYOUT, 4);
    store<u32>(header, frames.bootId, 8);
    store<u32>(header, link.discovers(), 12);
    store<u64>(header, manage.lastAccepted(), 16);
    store<u32>(header, manage.anyAccepted() as u32, 24);
    tx.retain(At.Header, header, HEADER_BYTES);
  }
  if ((dirty & SWITCH) != 0) vswitch.save(At.Switch);
  for (let port = 0; port < SWITCH_PORTS; port++) {
    if ((dirty & (1 << (SPACE0 + port))) != 0) tx.retain(At.Spaces + port * config.SAVED, config.saved(port), config.SAVED);
  }
  for (let index = 0; index < MAX_TUNNELS; index++) {
    if ((dirty & (1 << (PORT0 + index))) != 0) tx.retain(At.Ports + index * PORT_SAVED, link.saved(index), PORT_SAVED);
  }
  dirty = 0;
}

/** BOOT said `bytes` of retained RAM follow (0 after power-on). */
export function expect(bytes: i32): void {
  left = bytes;
  next = 0;
  // Regions the last firmware never wrote (a link port it did not use) read as zeros: as after power-on.
  memory.fill(staging, 0, RETAIN_BYTES);
}

/** True once the state retained by the last firmware has been adopted. */
export function adopted(): bool {
  return adoptedState;
}

/** RETAINED bytes announced by BOOT are still to come. */
export function expecting(): bool {
  return left > 0;
}

/** `bytes` at `offset` are the next of those announced, and no more than are left. */
export function fits(offset: i32, bytes: i32): bool {
  return offset == next && bytes <= left;
}

/** Keeps a RETAINED event's bytes (check() passed); with the last of them, adopts what they hold. */
export function receive(body: usize, length: i32): void {
  const bytes = length - RetainBody.Data;
  memory.copy(staging + next, body + RetainBody.Data, bytes);
  next += bytes;
  left -= bytes;
  if (left > 0) return;
  adopt();
  vswitch.setReady(true);
}

function adopt(): void {
  if (next < HEADER_BYTES || load<u32>(staging) != MAGIC || load<u32>(staging, 4) != LAYOUT) {
    log.warn();
    log.str("retained: ");
    log.dec(next);
    log.str(" bytes of another layout or firmware; not adopted");
    log.end();
    if (role == CardRole.Host) vswitch.init();
    return;
  }
  adoptedState = true;
  frames.setBootId(load<u32>(staging, 8));
  link.restore(staging + At.Ports, load<u32>(staging, 12));
  manage.restore(load<u64>(staging, 16), load<u32>(staging, 24) != 0);
  for (let port = 0; port < SWITCH_PORTS; port++) config.restore(port, staging + At.Spaces + port * config.SAVED);
  vswitch.restore(staging + At.Switch);
  // What was adopted is what the retained RAM holds: nothing to write back.
  dirty = 0;
}

// Compile-time layout checks.
assert(At.Spaces == At.Switch + vswitch.SAVED);
assert(At.Ports == At.Spaces + SWITCH_PORTS * config.SAVED);
assert(At.End == At.Ports + MAX_TUNNELS * PORT_SAVED);
assert(At.End <= RETAIN_BYTES);
