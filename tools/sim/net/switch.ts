// A store-and-forward learning Ethernet switch with 802.1Q VLANs (docs/network.md).
//
// Each switch port is plugged into one end of a Link; that link end is the port's egress
// queue and buffer (its bufferBytes, tail drop and counters), so the switch itself holds
// frames only during its fixed forwarding latency. A received frame is checked (size, FCS),
// classified into a VLAN by the ingress port's mode, its source learned, then sent to the
// learned port or flooded to every other member of its VLAN, re-tagged per egress port.
//
// The MAC table is one Map per VLAN (indexed by VID in an array) from the 48-bit MAC as a
// number to a mutable {port, seen} entry; aging is checked when an entry is looked up.
//
// Congestion (docs/network.md#congestion), both optional: a shared packet buffer, where an egress
// queue may grow to a dynamic threshold of α times the buffer still free (Choudhury and Hahne, as
// datacenter switch ASICs do) and a frame past it is dropped; and ECN marking on the egress queue
// a frame joins, WRED-style between two thresholds (DCTCP: both the same), as the 802.1Q tag's DEI
// bit (the frame's one bit a switch may rewrite that MACsec leaves outside its ICV). Every port
// counts its drops and marks and keeps a histogram of the queue depth each frame found.
//
// Priority flow control (IEEE 802.1Qbb, docs/network.md#priority-flow-control), optional, with the
// shared buffer: the switch then keeps its egress queues itself, one FIFO per priority and port,
// and hands a port's cable one frame at a time, highest priority first, passing over priorities
// the device at the other end has paused. A frame of a lossless priority is never dropped by the
// buffer's threshold: it counts against its ingress port and priority instead, and when those
// hold xoffBytes the switch sends that port a PFC frame pausing the priority (refreshed while it
// stays above xonBytes, lifted below it). What the sender still sends meanwhile lands in a headroom
// sized from the port's cable; a frame beyond it is dropped and counted (headroomDrops), which a
// right headroom never does. MAC Control frames are consumed, never forwarded.

import {
  DEI_BIT, congestionMarked, ETHERTYPE_VLAN, MIN_FRAME, VLAN_TAG_SIZE, WIRE_OVERHEAD, FCS_SIZE, fcsValid, formatMac, isMulticast, isTagged, macKey, maxFrameSize, vlanOf, writeFcs,
} from "../../../board/ethernet/frame.ts";
import type { EthernetPort, PortDevice } from "../../../board/ethernet/port.ts";
import type { Scheduler } from "../../../board/scheduler.ts";
import { FrameRing } from "./ring.ts";
import type { LinkPort } from "./link.ts";
import { MAX_QUANTA, PRIORITIES, PauseState, decodePfc, encodePfc, isMacControl, pauseNs, priorityOf } from "../../../board/ethernet/pfc.ts";
import { deriveStream } from "./impairments.ts";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import type { JumpableRandomGenerator } from "pure-rand/types/JumpableRandomGenerator";

export const SWITCH_DEFAULTS = {
  /** IEEE 802.1D default aging time: 300 s. */
  agingNs: 300e9,
  /** Lookup and crossbar after the last bit is in, typical of store-and-forward switches: 1 µs. */
  forwardingLatencyNs: 1000,
  /** Largest payload accepted (jumbo frames). */
  mtu: 9216,
} as const;

/** Untagged port in one VLAN; tagged frames arriving on it are dropped. */
export interface AccessPortConfig {
  mode: "access";
  /** Port VLAN ID, 1..4094. Default 1. */
  pvid?: number;
}

/** Tagged port carrying a set of VLANs; untagged frames belong to the native VLAN if there is one. */
export interface TrunkPortConfig {
  mode: "trunk";
  /** VIDs carried, 1..4094. Default: all. The native VLAN is always allowed. */
  allowed?: readonly number[];
  /** VLAN of untagged frames, sent untagged on egress. Default: none (untagged frames are dropped). */
  native?: number;
}

export type SwitchPortConfig = AccessPortConfig | TrunkPortConfig;

/** A packet buffer shared by every egress queue of the switch. */
export interface SharedBufferConfig {
  /** Bytes of packet memory. */
  bytes: number;
  /** Dynamic threshold: an egress queue may hold up to alpha × (bytes − bytes queued in all). Default 1. */
  alpha?: number;
}

/**
 * ECN marking on egress (WRED on the instantaneous queue, as DCTCP uses it): a frame that finds
 * kMinBytes or more queued ahead of it is marked with probability rising linearly from 0 to pMax
 * at kMaxBytes, and always from kMaxBytes on. kMinBytes = kMaxBytes is DCTCP's single threshold K.
 */
export interface EcnConfig {
  kMinBytes: number;
  kMaxBytes: number;
  /** Default 1. */
  pMax?: number;
}

/** 802.1Qbb priority flow control on every port (needs a shared buffer). */
export interface PfcConfig {
  /** The lossless priorities (802.1p PCP values, 0..7): PFC pauses their senders instead of dropping. */
  priorities: readonly number[];
  /** Bytes of one ingress port's frames of one lossless priority held in the switch past which it pauses the sender (XOFF). Default 32 KiB. */
  xoffBytes?: number;
  /** Bytes at or below which it lets the sender go again (XON). Default xoffBytes / 2. */
  xonBytes?: number;
}

export interface SwitchConfig {
  ports: SwitchPortConfig[];
  /** A shared buffer (default: none; each egress queue is its cable end's own buffer, tail drop). */
  buffer?: SharedBufferConfig;
  /** ECN marking of tagged frames as DEI (default: none). */
  ecn?: EcnConfig;
  /** Priority flow control (default: none, every priority lossy). */
  pfc?: PfcConfig;
  agingNs?: number;
  forwardingLatencyNs?: number;
  mtu?: number;
  /**
   * A mirror (SPAN destination) port: every valid frame any other port receives also leaves,
   * unchanged, on this port. What the mirror port itself receives is forwarded as usual but its
   * source addresses are not learned (a SPAN destination with ingress forwarding and learning
   * off), so a station there can send as any address without drawing that address's traffic.
   */
  mirror?: number;
}

export interface SwitchCounters {
  rxFrames: number;
  rxBytes: number;
  /** Shorter than 64 bytes. */
  runts: number;
  /** Longer than the MTU allows. */
  oversize: number;
  badFcs: number;
  /** Tagged frames on an access port. */
  taggedOnAccess: number;
  /** Tagged frames with a VID the trunk does not carry, and untagged frames on a trunk without a native VLAN. */
  vlanNotAllowed: number;
  /** Known unicast frames sent to one port. */
  forwarded: number;
  /** Unknown unicast, broadcast and multicast frames flooded in their VLAN. */
  flooded: number;
  /** Frames whose destination was learned on the port they came in on. */
  filtered: number;
  /** Frames handed to egress ports (one per copy). */
  txFrames: number;
  /** Frames an egress port refused (queue full or link down). */
  egressDrops: number;
  /** New MAC table entries. */
  learned: number;
  /** Entries that moved to another port. */
  moved: number;
  /** Entries found expired at lookup. */
  aged: number;
  /** Entries removed because their port lost carrier. */
  flushed: number;
  /** Frames copied to the mirror port. */
  mirrored: number;
  /** Frames the shared buffer refused: their queue was at its dynamic threshold (also in egressDrops). */
  bufferDrops: number;
  /** Frames marked congestion-experienced (DEI set). */
  ecnMarked: number;
  /** MAC Control frames received (PFC among them): consumed, never forwarded. */
  macControl: number;
  /** PFC frames sent that pause a priority (XOFF, and its refreshes). */
  pauseSent: number;
  /** PFC frames sent that let a priority go again (XON). */
  resumeSent: number;
  /** PFC frames received and honoured on egress. */
  pauseReceived: number;
  /** Lossless frames past their ingress port's XOFF threshold and headroom, dropped (also in egressDrops). */
  headroomDrops: number;
}

export interface SwitchPortCounters {
  rxFrames: number;
  txFrames: number;
  egressDrops: number;
  /** Of egressDrops, refused by the shared buffer's threshold. */
  bufferDrops: number;
  ecnMarked: number;
  /** PFC frames this port sent to pause its sender (XOFF and refreshes), and to let it go (XON). */
  pauseSent: number;
  resumeSent: number;
  /** PFC frames this port received from the device at its other end. */
  pauseReceived: number;
  /** Lossless frames that came in on this port past its XOFF threshold and headroom, dropped. */
  headroomDrops: number;
  /**
   * The egress queue depth each frame handed to this port found ahead of it: [lowest depth of the
   * bucket in bytes, frames] for each QueueHistogram bucket that has any, shallowest first.
   */
  queueDepths: [number, number][];
}

/**
 * A histogram of byte counts with 8 buckets per power of two (about 12 % wide): bucket 0 holds 0,
 * bucket i > 0 the depths from lowerBound(i) to lowerBound(i + 1) − 1.
 */
export const QueueHistogram = {
  SUB: 8,
  BUCKETS: 8 * 26,
  bucket(bytes: number): number {
    if (bytes < QueueHistogram.SUB) return bytes;
    const e = 31 - Math.clz32(bytes); // 2^e <= bytes
    const sub = (bytes >>> (e - 3)) & 7;
    return Math.min((e - 2) * 8 + sub, QueueHistogram.BUCKETS - 1);
  },
  lowerBound(bucket: number): number {
    if (bucket < QueueHistogram.SUB) return bucket;
    const e = Math.floor(bucket / 8) + 2;
    return (8 + (bucket % 8)) * 2 ** (e - 3);
  },
  /** The depth at or below which `p` % of the frames found the queue, as the upper edge of its bucket (0 with no frames), from SwitchPortCounters.queueDepths. */
  percentile(depths: readonly [number, number][], p: number): number {
    const total = depths.reduce((n, [, frames]) => n + frames, 0);
    if (total === 0) return 0;
    let seen = 0;
    for (const [low, frames] of depths) {
      seen += frames;
      if (seen >= (p / 100) * total) return QueueHistogram.lowerBound(QueueHistogram.bucket(low) + 1) - 1;
    }
    return 0;
  },
};

interface MacEntry {
  port: number;
  seen: number;
}

const MAX_VID = 4094;
/** Pipeline entries carry egress + ingress × PORT_SPAN. */
const PORT_SPAN = 65536;

function checkVid(vid: number, what: string): number {
  if (!(Number.isInteger(vid) && vid >= 1 && vid <= MAX_VID)) throw new RangeError(`${what}: VID must be 1..4094, got ${vid}`);
  return vid;
}

export const PFC_DEFAULTS = {
  xoffBytes: 32 * 1024,
} as const;

/**
 * The headroom a port needs for one lossless priority: what may still arrive after its ingress
 * crossed XOFF. The switch may be sending a largest frame when it decides (the PFC frame waits
 * behind it), the PFC frame crosses the cable, the sender may have just started a largest frame
 * of its own, and what it sent meanwhile is still on the cable and in the switch's forwarding
 * pipeline: 2 largest frames + the PFC frame + the cable's round trip + the pipeline, in bytes
 * at the port's rate. Real ports add their PHY's and MAC's own response times (802.3 allows 8192
 * and 30 720 bit times at 10 Gb/s); the model's MACs stop at the next frame boundary.
 */
export function pfcHeadroom(rateBps: number, cableLatencyPs: number, mtu: number, forwardingLatencyNs: number): number {
  const largest = maxFrameSize(mtu, true) + WIRE_OVERHEAD;
  const cable = Math.ceil((2 * cableLatencyPs * rateBps) / 8e12);
  const pipeline = Math.ceil((forwardingLatencyNs * rateBps) / 8e9);
  return 2 * largest + MIN_FRAME + WIRE_OVERHEAD + cable + pipeline;
}

class SwitchPort implements PortDevice {
  ethernet: LinkPort | null = null;
  readonly counters: Omit<SwitchPortCounters, "queueDepths"> = {
    rxFrames: 0, txFrames: 0, egressDrops: 0, bufferDrops: 0, ecnMarked: 0, pauseSent: 0, resumeSent: 0, pauseReceived: 0, headroomDrops: 0,
  };
  /** Frames per QueueHistogram bucket of the depth they found. */
  readonly depths = new Array<number>(QueueHistogram.BUCKETS).fill(0);
  readonly access: boolean;
  /** Access: the PVID. Trunk: the native VLAN or 0. */
  readonly untaggedVid: number;
  readonly allowed: Uint8Array;
  /** With PFC: the egress FIFOs by priority (x: the ingress port of each frame), kept by the switch. */
  queues: FrameRing[] | null = null;
  /** With PFC: bytes in each egress FIFO, and in all. */
  readonly queuedBytes = new Float64Array(PRIORITIES);
  queued = 0;
  peakQueued = 0;
  /** With PFC: what the device at the other end has paused of this port's egress. */
  readonly pause = new PauseState();
  /** With PFC: bytes of lossless frames that came in on this port and are still in the switch, by priority. */
  readonly held = new Float64Array(PRIORITIES);
  /** With PFC: the priorities this port has paused at its sender (XOFF sent, no XON yet). */
  xoff = 0;
  refreshHandle = 0;
  /** With PFC: pfcHeadroom() of this port's cable, set when plugged. */
  headroom = 0;
  /** Source address of the PFC frames this port sends. */
  readonly address: Uint8Array;
  transmitIdle?: () => void;

  constructor(private readonly owner: EthernetSwitch, readonly index: number, config: SwitchPortConfig) {
    const where = `switch ${owner.name} port ${index}`;
    this.allowed = new Uint8Array(4096);
    if (config.mode === "access") {
      this.access = true;
      this.untaggedVid = checkVid(config.pvid ?? 1, where);
      this.allowed[this.untaggedVid] = 1;
    } else if (config.mode === "trunk") {
      this.access = false;
      this.untaggedVid = config.native === undefined ? 0 : checkVid(config.native, where);
      if (config.allowed === undefined) this.allowed.fill(1, 1, MAX_VID + 1);
      else for (const vid of config.allowed) this.allowed[checkVid(vid, where)] = 1;
      if (this.untaggedVid) this.allowed[this.untaggedVid] = 1;
    } else {
      throw new RangeError(`${where}: mode must be "access" or "trunk"`);
    }
    this.address = Uint8Array.of(0x02, 0x5c, 0, 0, index >> 8, index & 0xff);
  }

  /** PFC: the switch keeps this port's egress queues and sends on its cable when `pump` finds it idle. */
  keepQueues(pump: () => void): void {
    this.queues = Array.from({ length: PRIORITIES }, () => new FrameRing());
    this.transmitIdle = pump;
  }

  /** Egress tagging: true when frames of `vid` leave this port tagged. */
  tags(vid: number): boolean {
    return !this.access && vid !== this.untaggedVid;
  }

  receive(frame: Uint8Array): void {
    this.owner.ingress(frame, this);
  }

  carrier(up: boolean): void {
    if (up) return;
    this.owner.flushPort(this.index);
    if (this.queues !== null) this.owner.flushQueues(this);
  }
}

export class EthernetSwitch {
  readonly agingNs: number;
  readonly forwardingLatencyNs: number;
  readonly mtu: number;
  readonly counters: SwitchCounters = {
    rxFrames: 0, rxBytes: 0, runts: 0, oversize: 0, badFcs: 0, taggedOnAccess: 0, vlanNotAllowed: 0, forwarded: 0,
    flooded: 0, filtered: 0, txFrames: 0, egressDrops: 0, learned: 0, moved: 0, aged: 0, flushed: 0, mirrored: 0, bufferDrops: 0, ecnMarked: 0,
    macControl: 0, pauseSent: 0, resumeSent: 0, pauseReceived: 0, headroomDrops: 0,
  };
  private readonly buffer: Required<SharedBufferConfig> | null;
  private readonly ecn: Required<EcnConfig> | null;
  /** PFC: the lossless priorities as a bit mask, and the thresholds. */
  private readonly pfc: { lossless: number; xoffBytes: number; xonBytes: number } | null;
  private readonly markRng: JumpableRandomGenerator;
  private readonly mirror: number;
  private readonly ports: SwitchPort[];
  private readonly tables: (Map<number, MacEntry> | undefined)[] = new Array(4096);
  private readonly members: (Int32Array | undefined)[] = new Array(4096);
  // Frames inside the switch: x = due time (ns), y = egress port.
  private readonly pipeline = new FrameRing();
  private pipelineHandle = 0;
  private readonly pipelineAction = () => this.egress();

  constructor(private readonly scheduler: Scheduler, readonly name: string, config: SwitchConfig, seed = 0) {
    this.agingNs = config.agingNs ?? SWITCH_DEFAULTS.agingNs;
    this.forwardingLatencyNs = config.forwardingLatencyNs ?? SWITCH_DEFAULTS.forwardingLatencyNs;
    this.mtu = config.mtu ?? SWITCH_DEFAULTS.mtu;
    if (!(this.agingNs > 0)) throw new RangeError(`switch ${name}: agingNs must be > 0`);
    if (!(Number.isSafeInteger(this.forwardingLatencyNs) && this.forwardingLatencyNs >= 0)) throw new RangeError(`switch ${name}: forwardingLatencyNs must be a non-negative integer`);
    this.ports = config.ports.map((port, i) => new SwitchPort(this, i, port));
    this.mirror = config.mirror ?? -1;
    const b = config.buffer;
    if (b !== undefined && !(Number.isSafeInteger(b.bytes) && b.bytes > 0 && (b.alpha === undefined || b.alpha > 0))) {
      throw new RangeError(`switch ${name}: buffer.bytes must be a positive integer and buffer.alpha above 0`);
    }
    this.buffer = b === undefined ? null : { bytes: b.bytes, alpha: b.alpha ?? 1 };
    const e = config.ecn;
    if (e !== undefined && !(e.kMinBytes >= 0 && e.kMaxBytes >= e.kMinBytes && (e.pMax === undefined || (e.pMax > 0 && e.pMax <= 1)))) {
      throw new RangeError(`switch ${name}: ecn needs 0 <= kMinBytes <= kMaxBytes and pMax in (0, 1]`);
    }
    this.ecn = e === undefined ? null : { kMinBytes: e.kMinBytes, kMaxBytes: e.kMaxBytes, pMax: e.pMax ?? 1 };
    this.markRng = deriveStream(seed, `${name}/ecn`);
    const f = config.pfc;
    if (f !== undefined) {
      const xoff = f.xoffBytes ?? PFC_DEFAULTS.xoffBytes;
      const xon = f.xonBytes ?? Math.floor(xoff / 2);
      if (this.buffer === null) throw new RangeError(`switch ${name}: pfc needs a shared buffer`);
      if (!(f.priorities.length > 0 && f.priorities.every((p) => Number.isInteger(p) && p >= 0 && p < PRIORITIES))) throw new RangeError(`switch ${name}: pfc.priorities must list priorities 0..7`);
      if (!(Number.isSafeInteger(xoff) && xoff > 0 && Number.isSafeInteger(xon) && xon >= 0 && xon < xoff)) throw new RangeError(`switch ${name}: pfc needs 0 <= xonBytes < xoffBytes`);
      this.pfc = { lossless: f.priorities.reduce((m, p) => m | (1 << p), 0), xoffBytes: xoff, xonBytes: xon };
      for (const port of this.ports) port.keepQueues(() => this.pump(port));
    } else this.pfc = null;
    if (config.mirror !== undefined && !this.ports[config.mirror]) throw new RangeError(`switch ${name}: mirror port ${config.mirror} is not one of its ${this.ports.length} ports`);
  }

  get portCount(): number {
    return this.ports.length;
  }

  /** Plugs port `index` into a cable end: the switch receives from it and sends on it. */
  plug(index: number, port: LinkPort): void {
    const p = this.ports[index];
    if (!p) throw new RangeError(`switch ${this.name} has no port ${index}`);
    if (p.ethernet) throw new Error(`switch ${this.name} port ${index} is already plugged`);
    p.ethernet = port;
    p.headroom = pfcHeadroom(port.rateBps, port.link.latencyPs, this.mtu, this.forwardingLatencyNs);
    port.attach(p);
    this.members.fill(undefined);
  }

  /** The cable end port `index` is plugged into: its egress queue. */
  cableEnd(index: number): EthernetPort | null {
    return this.ports[index]?.ethernet ?? null;
  }

  /** Bytes waiting to leave port `index`: in the switch's own queues (with PFC), or in its cable end's. */
  egressQueuedBytes(index: number): number {
    const p = this.ports[index];
    if (p.queues !== null) return p.queued;
    return p.ethernet !== null && p.ethernet.busy ? p.ethernet.queuedBytes : 0;
  }

  /** The most bytes that ever waited to leave port `index`. */
  egressPeakBytes(index: number): number {
    const p = this.ports[index];
    return p.queues !== null ? p.peakQueued : p.ethernet?.counters.peakQueuedBytes ?? 0;
  }

  plugged(index: number): boolean {
    return this.ports[index]?.ethernet != null;
  }

  /** The port a MAC was learned on in a VLAN, or undefined (unknown or aged out). */
  lookup(mac: Uint8Array, vid: number): number | undefined {
    const entry = this.tables[vid]?.get(macKey(mac));
    return entry && this.scheduler.now - entry.seen < this.agingNs ? entry.port : undefined;
  }

  /** The live MAC table, sorted by VLAN then MAC. */
  macTable(): { vid: number; mac: string; port: number; ageNs: number }[] {
    const now = this.scheduler.now;
    const out: { vid: number; mac: string; port: number; ageNs: number; key: number }[] = [];
    this.tables.forEach((table, vid) => {
      for (const [key, entry] of table ?? []) {
        if (now - entry.seen >= this.agingNs) continue;
        const bytes = new Uint8Array(6);
        for (let i = 5, k = key; i >= 0; i--, k = Math.floor(k / 256)) bytes[i] = k % 256;
        out.push({ vid, mac: formatMac(bytes), port: entry.port, ageNs: now - entry.seen, key });
      }
    });
    out.sort((x, y) => x.vid - y.vid || x.key - y.key);
    return out.map(({ key: _key, ...rest }) => rest);
  }

  portCounters(index: number): SwitchPortCounters {
    const p = this.ports[index];
    const queueDepths: [number, number][] = [];
    p.depths.forEach((frames, bucket) => frames > 0 && queueDepths.push([QueueHistogram.lowerBound(bucket), frames]));
    return { ...p.counters, queueDepths };
  }

  snapshot(): SwitchCounters & { ports: SwitchPortCounters[] } {
    return { ...this.counters, ports: this.ports.map((p) => this.portCounters(p.index)) };
  }

  /** Called by a port when a frame has arrived in full. */
  ingress(frame: Uint8Array, port: SwitchPort): void {
    const c = this.counters;
    const len = frame.length;
    c.rxFrames++;
    c.rxBytes += len;
    port.counters.rxFrames++;
    if (len < MIN_FRAME) {
      c.runts++;
      return;
    }
    const tagged = isTagged(frame);
    if (len > maxFrameSize(this.mtu, tagged)) {
      c.oversize++;
      return;
    }
    if (!fcsValid(frame)) {
      c.badFcs++;
      return;
    }
    if (isMacControl(frame)) {
      c.macControl++;
      if (this.pfc !== null) this.paused(frame, port);
      return;
    }
    if (this.mirror >= 0 && port.index !== this.mirror) {
      c.mirrored++;
      this.queue(frame, this.mirror, port.index);
    }
    let vid: number;
    if (port.access) {
      if (tagged) {
        c.taggedOnAccess++;
        return;
      }
      vid = port.untaggedVid;
    } else {
      vid = tagged ? vlanOf(frame) : port.untaggedVid;
      if (vid === 0 || port.allowed[vid] === 0) {
        c.vlanNotAllowed++;
        return;
      }
    }
    let table = this.tables[vid];
    if (table === undefined) table = this.tables[vid] = new Map();
    const now = this.scheduler.now;
    if (!isMulticast(frame, 6) && port.index !== this.mirror) {
      const src = macKey(frame, 6);
      const entry = table.get(src);
      if (entry === undefined) {
        table.set(src, { port: port.index, seen: now });
        c.learned++;
      } else {
        if (now - entry.seen >= this.agingNs) c.learned++;
        else if (entry.port !== port.index) c.moved++;
        entry.port = port.index;
        entry.seen = now;
      }
    }
    if (!isMulticast(frame, 0)) {
      const dst = macKey(frame, 0);
      const entry = table.get(dst);
      if (entry !== undefined) {
        if (now - entry.seen < this.agingNs) {
          if (entry.port === port.index) {
            c.filtered++;
            return;
          }
          c.forwarded++;
          const out = this.ports[entry.port];
          this.queue(this.rewrite(frame, tagged, vid, out.tags(vid)), entry.port, port.index);
          return;
        }
        table.delete(dst);
        c.aged++;
      }
    }
    c.flooded++;
    const members = this.members[vid] ?? this.memberList(vid);
    let untaggedCopy: Uint8Array | null = null;
    let taggedCopy: Uint8Array | null = null;
    for (let k = 0; k < members.length; k++) {
      const index = members[k];
      if (index === port.index) continue;
      if (this.ports[index].tags(vid)) {
        if (taggedCopy === null) taggedCopy = this.rewrite(frame, tagged, vid, true);
        this.queue(taggedCopy, index, port.index);
      } else {
        if (untaggedCopy === null) untaggedCopy = this.rewrite(frame, tagged, vid, false);
        this.queue(untaggedCopy, index, port.index);
      }
    }
  }

  /** Removes every MAC entry learned on a port (its link went down). */
  flushPort(index: number): void {
    for (const table of this.tables) {
      if (!table) continue;
      for (const [key, entry] of table) {
        if (entry.port === index) {
          table.delete(key);
          this.counters.flushed++;
        }
      }
    }
  }

  /** The plugged ports carrying `vid`, cached until the next plug(). */
  private memberList(vid: number): Int32Array {
    const list = Int32Array.from(this.ports.filter((p) => p.allowed[vid] === 1 && p.ethernet !== null), (p) => p.index);
    this.members[vid] = list;
    return list;
  }

  /** The frame as it leaves a port that does (tag) or does not tag `vid`: shared if unchanged. */
  private rewrite(frame: Uint8Array, tagged: boolean, vid: number, tag: boolean): Uint8Array {
    if (tag === tagged) return frame; // a trunk-to-trunk frame keeps its tag, PCP and DEI
    let out: Uint8Array;
    if (tag) {
      out = new Uint8Array(frame.length + VLAN_TAG_SIZE);
      out.set(frame.subarray(0, 12), 0);
      out[12] = ETHERTYPE_VLAN >> 8;
      out[13] = ETHERTYPE_VLAN & 0xff;
      out[14] = vid >> 8; // PCP 0, DEI 0
      out[15] = vid & 0xff;
      out.set(frame.subarray(12, frame.length - FCS_SIZE), 16);
    } else {
      // Untagging may leave a runt: pad with zeros to the 64-byte minimum, as a MAC does.
      out = new Uint8Array(Math.max(frame.length - VLAN_TAG_SIZE, MIN_FRAME));
      out.set(frame.subarray(0, 12), 0);
      out.set(frame.subarray(16, frame.length - FCS_SIZE), 12);
    }
    writeFcs(out);
    return out;
  }

  /** Hands a frame that came in on port `from` to egress port `index` after the forwarding latency. */
  private queue(frame: Uint8Array, index: number, from: number): void {
    if (this.forwardingLatencyNs === 0) {
      this.transmit(frame, index, from);
      return;
    }
    const due = this.scheduler.now + this.forwardingLatencyNs;
    this.pipeline.push(frame, due, from * PORT_SPAN + index);
    if (this.pipelineHandle === 0) this.pipelineHandle = this.scheduler.at(due, this.pipelineAction);
  }

  // Constant latency keeps the pipeline in time order: only its head is ever scheduled.
  private egress(): void {
    this.pipelineHandle = 0;
    const pipe = this.pipeline;
    const now = this.scheduler.now;
    while (pipe.size > 0 && pipe.x[pipe.head] <= now) {
      const ports = pipe.y[pipe.head];
      this.transmit(pipe.shift(), ports % PORT_SPAN, Math.floor(ports / PORT_SPAN));
    }
    if (pipe.size > 0 && this.pipelineHandle === 0) this.pipelineHandle = this.scheduler.at(pipe.x[pipe.head], this.pipelineAction);
  }

  private transmit(frame: Uint8Array, index: number, from: number): void {
    const port = this.ports[index];
    const eth = port.ethernet;
    if (eth === null) {
      this.drop(port);
      return;
    }
    if (this.pfc !== null) {
      this.enqueue(frame, port, this.ports[from]);
      return;
    }
    const depth = eth.busy ? eth.queuedBytes : 0;
    if (!this.fits(port, depth, frame.length)) return;
    if (eth.send(this.found(frame, port, depth))) this.taken(port);
    else this.drop(port);
  }

  /** The shared buffer's dynamic threshold: whether a frame of `len` bytes that finds `depth` queued ahead of it may join; if not it is dropped and counted. */
  private fits(port: SwitchPort, depth: number, len: number): boolean {
    if (this.buffer === null || depth + len <= this.buffer.alpha * (this.buffer.bytes - this.bufferedBytes())) return true;
    this.counters.bufferDrops++;
    port.counters.bufferDrops++;
    this.drop(port);
    return false;
  }

  /** Counts the depth a frame joining `port`'s queue found, and returns it marked if ECN marks at that depth. */
  private found(frame: Uint8Array, port: SwitchPort, depth: number): Uint8Array {
    port.depths[QueueHistogram.bucket(depth)]++;
    return this.ecn !== null && this.marks(depth) && isTagged(frame) ? this.markDei(frame, port) : frame;
  }

  private taken(port: SwitchPort): void {
    this.counters.txFrames++;
    port.counters.txFrames++;
  }

  private drop(port: SwitchPort): void {
    this.counters.egressDrops++;
    port.counters.egressDrops++;
  }

  /** Bytes waiting in every egress queue: the shared buffer in use. */
  private bufferedBytes(): number {
    let bytes = 0;
    for (const p of this.ports) bytes += this.egressQueuedBytes(p.index);
    return bytes;
  }

  /**
   * PFC: a frame from port `from` joins `port`'s egress FIFO of its priority. A lossy frame meets
   * the shared buffer's threshold; a lossless one counts against what `from` holds of its
   * priority, pausing the sender past XOFF, dropped only past XOFF and the headroom.
   */
  private enqueue(frame: Uint8Array, port: SwitchPort, from: SwitchPort): void {
    const pfc = this.pfc!;
    const priority = priorityOf(frame);
    const bit = 1 << priority;
    const len = frame.length;
    const depth = port.queuedBytes[priority];
    if (pfc.lossless & bit) {
      if (from.held[priority] + len > pfc.xoffBytes + from.headroom) {
        this.counters.headroomDrops++;
        from.counters.headroomDrops++;
        this.drop(port);
        return;
      }
      from.held[priority] += len;
      if (from.held[priority] > pfc.xoffBytes && !(from.xoff & bit)) this.pauseSender(from, priority);
    } else if (!this.fits(port, depth, len)) return;
    port.queues![priority].push(this.found(frame, port, depth), from.index, 0);
    port.queuedBytes[priority] += len;
    port.queued += len;
    if (port.queued > port.peakQueued) port.peakQueued = port.queued;
    this.taken(port);
    this.pump(port);
  }

  /** PFC: when `port`'s cable is idle, sends the head of its highest priority FIFO that is not paused. */
  private pump(port: SwitchPort): void {
    const eth = port.ethernet;
    if (eth === null || port.queued === 0 || eth.busy) return;
    const now = this.scheduler.now;
    const queues = port.queues!;
    for (let p = PRIORITIES - 1; p >= 0; p--) {
      const q = queues[p];
      if (q.size === 0 || port.pause.paused(p, now)) continue;
      const from = this.ports[q.x[q.head]];
      const frame = q.shift();
      this.dequeued(port, from, p, frame.length);
      if (!eth.send(frame)) this.drop(port);
      return;
    }
  }

  /** PFC: a frame of `priority` from `from` has left `port`'s FIFO; below XON the sender may go again. */
  private dequeued(port: SwitchPort, from: SwitchPort, priority: number, len: number): void {
    port.queuedBytes[priority] -= len;
    port.queued -= len;
    const bit = 1 << priority;
    if (!(this.pfc!.lossless & bit)) return;
    from.held[priority] -= len;
    if (from.xoff & bit && from.held[priority] <= this.pfc!.xonBytes) {
      from.xoff &= ~bit;
      this.counters.resumeSent++;
      from.counters.resumeSent++;
      this.sendPfc(from, bit, 0);
    }
  }

  /** PFC: pauses `port`'s sender for `priority` for the longest time one frame asks, refreshed at half of it while above XON. */
  private pauseSender(port: SwitchPort, priority: number): void {
    port.xoff |= 1 << priority;
    this.counters.pauseSent++;
    port.counters.pauseSent++;
    this.sendPfc(port, 1 << priority, MAX_QUANTA);
    if (port.refreshHandle === 0) this.armRefresh(port);
  }

  private armRefresh(port: SwitchPort): void {
    const half = Math.floor(pauseNs(MAX_QUANTA, port.ethernet!.rateBps) / 2);
    port.refreshHandle = this.scheduler.at(this.scheduler.now + half, () => {
      port.refreshHandle = 0;
      if (port.xoff === 0 || port.ethernet === null) return;
      this.counters.pauseSent++;
      port.counters.pauseSent++;
      this.sendPfc(port, port.xoff, MAX_QUANTA);
      this.armRefresh(port);
    });
  }

  private sendPfc(port: SwitchPort, enable: number, quanta: number): void {
    port.ethernet?.send(encodePfc(port.address, { enable, quanta: new Array<number>(PRIORITIES).fill(quanta) }));
  }

  /** PFC: a PFC frame from the device at `port`'s other end pauses or releases that port's egress priorities. */
  private paused(frame: Uint8Array, port: SwitchPort): void {
    const request = decodePfc(frame);
    if (request === null || port.ethernet === null) return;
    this.counters.pauseReceived++;
    port.counters.pauseReceived++;
    const ends = port.pause.apply(request, this.scheduler.now, port.ethernet.rateBps);
    if (ends > 0) this.scheduler.at(ends, port.transmitIdle!);
    this.pump(port);
  }

  /** PFC, link down: what waits in `port`'s FIFOs is lost, its pauses end both ways. */
  flushQueues(port: SwitchPort): void {
    port.queues!.forEach((q, p) => {
      while (q.size > 0) {
        const from = this.ports[q.x[q.head]];
        this.dequeued(port, from, p, q.shift().length);
        this.drop(port);
      }
    });
    port.pause.clear();
    port.xoff = 0;
  }

  /** Whether a frame that finds `depth` bytes queued ahead of it is marked (WRED between kMin and kMax). */
  private marks(depth: number): boolean {
    const { kMinBytes, kMaxBytes, pMax } = this.ecn!;
    if (depth < kMinBytes) return false;
    if (depth >= kMaxBytes) return true;
    return uniformFloat64(this.markRng) < (pMax * (depth - kMinBytes)) / (kMaxBytes - kMinBytes);
  }

  /** A copy of a tagged frame with DEI set (congestion experienced) and its FCS recomputed; counted. */
  private markDei(frame: Uint8Array, port: SwitchPort): Uint8Array {
    this.counters.ecnMarked++;
    port.counters.ecnMarked++;
    if (congestionMarked(frame)) return frame;
    const out = frame.slice();
    out[14] |= DEI_BIT;
    writeFcs(out);
    return out;
  }
}
