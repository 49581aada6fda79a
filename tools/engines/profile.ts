// Where a recorded mailbox stream spends the firmware's instructions: batch by batch through a
// metered copy (meter.ts) with one counter per function, grouped by what each batch carried and
// by function. `iov trace profile` prints it.

import { MessageReader, decodeEvent } from "../../board/mailbox-codec.ts";
import { HEADER_SIZE } from "../../board/map/mailbox.ts";
import { FabricEventKind } from "../../board/map/registers.ts";
import { meterModule, PROFILE_PREFIX } from "./meter.ts";
import { InProcessFirmware } from "./inprocess.ts";
import { firmwareFile } from "./index.ts";

export interface BatchGroup {
  /** The kinds of event the batches carried besides TIME and SYNC, e.g. "fabricEvent RttChanged + timerFired". */
  carries: string;
  batches: number;
  instructions: number;
  max: number;
}

export interface Profile {
  batches: number;
  instructions: number;
  compiledBytes: number;
  groups: BatchGroup[];
  /** Instructions per function index, largest first. */
  functions: { index: number; instructions: number }[];
}

function kindOf(event: ReturnType<typeof decodeEvent>): string {
  if (event.kind === "fabricEvent") return `fabricEvent ${FabricEventKind[event.event] ?? event.event}`;
  return event.kind;
}

/** Runs `events` (a whole NAME.in) batch by batch through a profiling copy of `firmware`. */
export function profileTrace(firmware: Uint8Array, events: Uint8Array): Profile {
  const f = new InProcessFirmware({ firmware: firmwareFile(meterModule(firmware, { profile: true })) });
  const reader = new MessageReader("events");
  reader.push(events);
  const groups = new Map<string, BatchGroup>();
  let start = 0;
  let carries = new Set<string>();
  let before = 0n;
  let batches = 0;
  for (const raw of reader.all()) {
    if (raw.framing) continue;
    const event = decodeEvent(raw);
    if (event.kind !== "sync") {
      if (event.kind !== "time") carries.add(kindOf(event));
      continue;
    }
    const end = raw.offset + HEADER_SIZE + raw.length;
    f.feed(events.subarray(start, end));
    start = end;
    batches++;
    const now = f.instructions!;
    const cost = Number(now - before);
    before = now;
    const key = [...carries].sort().join(" + ") || "(nothing)";
    const group = groups.get(key) ?? { carries: key, batches: 0, instructions: 0, max: 0 };
    group.batches++;
    group.instructions += cost;
    group.max = Math.max(group.max, cost);
    groups.set(key, group);
    carries = new Set();
  }
  const functions = f.globals(PROFILE_PREFIX)
    .map(([name, value]) => ({ index: Number(name.slice(PROFILE_PREFIX.length)), instructions: Number(value) }))
    .filter((fn) => fn.instructions > 0)
    .sort((a, b) => b.instructions - a.instructions);
  return {
    batches,
    instructions: Number(f.instructions),
    compiledBytes: Number(f.compiledBytes),
    groups: [...groups.values()].sort((a, b) => b.instructions - a.instructions),
    functions,
  };
}
