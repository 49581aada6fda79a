// Cards that answer management requests as docs/management.md says the firmware does, built
// on the codec's card side (decodeRequest, encodeReply), on a fake management network in
// virtual time: the station's FrameTransport, per-frame latency, and hooks to lose,
// duplicate or alter frames. For the client's and the CLI's tests, independent of the
// firmware.

import { ALL_CARDS, LinkState, ManageOp, ManageStatus } from "../../../board/map/link.ts";
import { CardRole } from "../../../board/map/mailbox.ts";
import { decodeRequest, encodeReply, ManageFrameError, MACSEC_DROP_NAMES, REPLY_COUNTER_NAMES, type DecodedRequest, type ReplyCounters, type MacsecDrops, type PortPaths } from "../../../board/manage-codec.ts";
import { CONTROL_MULTICAST } from "../../../board/link-codec.ts";
import { macFor } from "../../../tools/sim/scenarios.ts";
import type { Clock } from "../../../tools/manage/client.ts";
import type { FrameTransport } from "../../../tools/manage/transport.ts";

/** Why a fake card dropped a request. */
export type Refusal = "not-for-me" | "bad-tag" | "malformed" | "stale-boot" | "old-counter" | "off";

export interface FakeCardOptions {
  serial: number;
  role?: CardRole;
  group?: number;
  key: Uint8Array;
  vlan?: number;
  bootId?: number;
  slots?: number;
}

const sameMac = (a: Uint8Array, b: Uint8Array) => a.length >= 6 && b.length >= 6 && a.subarray(0, 6).every((x, i) => x === b[i]);

export class FakeCard {
  readonly serial: number;
  readonly role: CardRole;
  readonly mac: Uint8Array;
  group: number;
  key: Uint8Array;
  vlan: number;
  bootId: number;
  slots: number;
  on = true;
  /** The highest counter accepted in this boot, or -1. */
  lastCounter = -1n;
  /** The status SetGroup answers with (Ok: the group changes). */
  setGroupStatus = ManageStatus.Ok;
  /** Ports: link state and peer serial of each. */
  linkStates: LinkState[];
  peerSerials: number[];
  counters: ReplyCounters = Object.fromEntries(REPLY_COUNTER_NAMES.map((n) => [n, 0])) as ReplyCounters;
  /** null: a firmware that reports no MACsec drops (its replies are 124 bytes). */
  macsecDrops: MacsecDrops | null = Object.fromEntries(MACSEC_DROP_NAMES.map((n) => [n, 0])) as MacsecDrops;
  /** Each port's paths; null: a firmware that reports none (its replies are 148 bytes). */
  paths: PortPaths[] | null = null;
  /** Every request accepted, and every one refused with the reason. */
  readonly accepted: DecodedRequest[] = [];
  readonly refused: Refusal[] = [];
  /** Rewrites a reply's fields before it is encoded (to test the station's checks). */
  tamper: ((reply: Parameters<typeof encodeReply>[0]) => void) | null = null;
  /** Another key for the reply's tag (a card of another installation). */
  replyKey: Uint8Array | null = null;

  constructor(o: FakeCardOptions) {
    this.serial = o.serial;
    this.role = o.role ?? CardRole.Chassis;
    this.mac = macFor(o.serial);
    this.group = o.group ?? 100;
    this.key = o.key;
    this.vlan = o.vlan ?? 4000;
    this.bootId = o.bootId ?? ((o.serial * 2654435761) >>> 0 || 1);
    this.slots = o.slots ?? 2;
    const ports = this.role === CardRole.Chassis ? 1 : this.slots;
    this.linkStates = Array.from({ length: ports }, () => LinkState.Discover);
    this.peerSerials = Array.from({ length: ports }, () => 0);
  }

  /** A reset: a new boot ID, the replay window starts again. */
  reboot(bootId: number): void {
    this.bootId = bootId;
    this.lastCounter = -1n;
  }

  /** The card's answer to `frame`, or null (refused or not for it). */
  answer(frame: Uint8Array): Uint8Array | null {
    if (!this.on) return this.refuse("off");
    if (!sameMac(frame, this.mac) && !sameMac(frame, CONTROL_MULTICAST)) return null;
    let request: DecodedRequest;
    try {
      request = decodeRequest(frame, this.key);
    } catch (error) {
      if (!(error instanceof ManageFrameError)) throw error;
      if (error.problem === "not-control" || error.problem === "wrong-type") return null;
      if (error.problem === "bad-tag") this.counters.manageAuthFailures++;
      return this.refuse(error.problem === "bad-tag" ? "bad-tag" : "malformed");
    }
    if (request.vlan !== this.vlan) return this.refuse("not-for-me");
    if (request.target !== ALL_CARDS && request.target !== this.serial) return this.refuse("not-for-me");
    if (request.op !== ManageOp.Discover && request.target === ALL_CARDS) return this.refuse("malformed");
    if (!(request.bootId === this.bootId || (request.bootId === 0 && request.op === ManageOp.Discover))) {
      this.counters.manageReplays++;
      return this.refuse("stale-boot");
    }
    if (request.counter <= this.lastCounter) {
      this.counters.manageReplays++;
      return this.refuse("old-counter");
    }
    this.lastCounter = request.counter;
    this.accepted.push(request);
    this.counters.manageRequests++;
    let status = ManageStatus.Ok;
    if (request.op === ManageOp.SetGroup) {
      if (request.newGroup < 1 || request.newGroup > 4094 || request.newGroup === this.vlan) status = ManageStatus.BadGroup;
      else status = this.setGroupStatus;
      if (status === ManageStatus.Ok) this.group = request.newGroup;
    }
    const reply: Parameters<typeof encodeReply>[0] = {
      destination: request.source, source: this.mac, vlan: this.vlan,
      op: request.op, status, group: this.group, counter: request.counter,
      firmware: { major: 0, minor: 1, patch: 0 }, slots: this.slots, bootSlot: 0, bootFlags: 0,
      slotsPresent: this.role === CardRole.Chassis ? 0b01 : 0, ports: this.linkStates.length,
      linkStates: this.linkStates, peerSerials: this.peerSerials, counters: { ...this.counters }, macsecDrops: this.macsecDrops && { ...this.macsecDrops },
      paths: this.paths && this.macsecDrops ? this.paths.map((p) => ({ on: [...p.on], silent: [...p.silent], health: p.health && p.health.map((h) => ({ ...h })) })) : null,
      card: { role: this.role, serial: this.serial, bootId: this.bootId, group: this.group },
    };
    this.tamper?.(reply);
    return encodeReply(reply, this.replyKey ?? this.key);
  }

  private refuse(reason: Refusal): null {
    this.refused.push(reason);
    return null;
  }
}

/** Which way a frame goes on the fake network. */
export type Direction = "request" | "reply";

/**
 * The fake management network: the station's transport, cards behind it. Every frame takes
 * `latencyMs`; `drop` loses a frame, `copies` duplicates it.
 */
export class FakeManagementNet {
  readonly cards: FakeCard[] = [];
  latencyMs = 0.05;
  drop: (frame: Uint8Array, direction: Direction) => boolean = () => false;
  copies: (frame: Uint8Array, direction: Direction) => number = () => 1;
  /** Every frame the station sent. */
  readonly sent: Uint8Array[] = [];
  private readonly listeners: ((frame: Uint8Array) => void)[] = [];

  constructor(private readonly clock: Clock) {}

  add(card: FakeCard): FakeCard {
    this.cards.push(card);
    return card;
  }

  /** The station's end. */
  transport(): FrameTransport {
    return {
      send: (frame) => {
        this.sent.push(frame);
        this.carry(frame, "request", () => {
          for (const card of this.cards) {
            const reply = card.answer(frame);
            if (reply) this.carry(reply, "reply", () => this.deliver(reply));
          }
        });
      },
      onFrame: (cb) => this.listeners.push(cb),
      close: () => {},
    };
  }

  /** Sends a frame to the station as if from the network. */
  deliver(frame: Uint8Array): void {
    for (const cb of this.listeners) cb(frame);
  }

  private carry(frame: Uint8Array, direction: Direction, arrive: () => void): void {
    if (this.drop(frame, direction)) return;
    for (let i = 0; i < this.copies(frame, direction); i++) this.clock.after(this.latencyMs, arrive);
  }
}
