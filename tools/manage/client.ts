// The management station (docs/management.md): asks cards who and how they are and moves
// them between groups, over any FrameTransport, on any clock (the wall clock for `iov
// manage`, the simulator's virtual time inside a world).
//
// It keeps its identity (a locally administered MAC 02:4d:47:xx:xx:xx, a serial and a boot
// ID) and a request counter that only grows; it learns each card's address and boot ID from
// its replies. A request unanswered within `tryMs` is sent again, with a new counter (the card
// refuses a counter it has seen), `tries` times in all; then the client discovers the card
// again (it may have rebooted, with a new boot ID) and tries once more as many times.
// Replies whose tag does not verify, or that answer no outstanding request, are dropped and
// counted.

import { randomBytes } from "node:crypto";
import { ALL_CARDS, ManageOp, ManageStatus } from "../../board/map/link.ts";
import { CONTROL_MULTICAST } from "../../board/link-codec.ts";
import { decodeReply, encodeRequest, formatSerial, ManageFrameError, STATUS_TEXT, type ManageReply } from "../../board/manage-codec.ts";
import type { FrameTransport } from "./transport.ts";

/** Time for the client: milliseconds, and one-shot timers. */
export interface Clock {
  now(): number;
  /** Calls `cb` after `ms` milliseconds; returns what cancels it. */
  after(ms: number, cb: () => void): () => void;
}

export const wallClock: Clock = {
  now: () => Date.now(),
  after: (ms, cb) => {
    const timer = setTimeout(cb, ms);
    return () => clearTimeout(timer);
  },
};

/** Who the station is on the wire. */
export interface StationIdentity {
  mac: Uint8Array;
  serial: number;
  bootId: number;
}

/** A station identity: 02:4d:47 ("MG") and the low 24 bits of the serial; serial and boot ID from `random` (default: the system's). */
export function stationIdentity(random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))): StationIdentity {
  const bytes = random(8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  let serial = view.getUint32(0);
  if (serial === 0 || serial === ALL_CARDS) serial = 0x4d47_0001;
  const bootId = view.getUint32(4) || 1;
  return { mac: Uint8Array.of(0x02, 0x4d, 0x47, (serial >>> 16) & 0xff, (serial >>> 8) & 0xff, serial & 0xff), serial, bootId };
}

/** The station's request counter, which only grows; share one between clients that speak for one station. */
export class RequestCounter {
  constructor(private value: bigint) {}

  /** Starts from the wall clock, in milliseconds since the epoch × 1000, so that a later run starts above an earlier one. */
  static fromWallClock(): RequestCounter {
    return new RequestCounter(BigInt(Date.now()) * 1000n);
  }

  next(): bigint {
    return this.value++;
  }

  peek(): bigint {
    return this.value;
  }
}

export type ManageErrorKind = "no-answer" | "refused";

/** A request that failed: no answer (after the retries and a re-discovery), or a card's refusal (with its status). */
export class ManageError extends Error {
  constructor(message: string, readonly kind: ManageErrorKind, readonly serial: number, readonly status?: ManageStatus) {
    super(message);
    this.name = "ManageError";
  }
}

export interface ManageClientOptions {
  transport: FrameTransport;
  clock: Clock;
  /** The installation's admin key (32 bytes). */
  key: Uint8Array;
  /** The management VLAN, or null to send untagged frames (a transport that tags them itself). Default 4000. */
  vlan?: number | null;
  station?: StationIdentity;
  counter?: RequestCounter;
  /** Sends of a request before the card is discovered again. Default 3. */
  tries?: number;
  /** How long each send waits for the answer. Default 200 ms. */
  tryMs?: number;
}

/** What the station knows of a card: where it is and which boot it runs. */
export interface KnownCard {
  serial: number;
  mac: Uint8Array;
  bootId: number;
  /** The latest reply from it. */
  last: ManageReply;
}

export interface ClientStats {
  /** Requests sent. */
  requests: number;
  /** Replies accepted. */
  replies: number;
  /** Replies addressed to the station whose tag did not verify. */
  badTags: number;
  /** Authentic replies that answer no outstanding request (late, duplicated, replayed). */
  unexpected: number;
  /** Management frames addressed to the station that are malformed or of another type. */
  malformed: number;
}

/** A request in flight, by its counter: what it asked, and who waits for the answer. */
interface Pending {
  op: ManageOp;
  target: number;
  onReply: (reply: ManageReply) => void;
}

export const DEFAULT_TRIES = 3;
export const DEFAULT_TRY_MS = 200;
export const DEFAULT_VLAN = 4000;

export class ManageClient {
  readonly station: StationIdentity;
  readonly counter: RequestCounter;
  readonly cards = new Map<number, KnownCard>();
  readonly stats: ClientStats = { requests: 0, replies: 0, badTags: 0, unexpected: 0, malformed: 0 };
  private readonly pending = new Map<bigint, Pending>();
  private readonly transport: FrameTransport;
  private readonly clock: Clock;
  private readonly key: Uint8Array;
  private readonly vlan: number | null;
  private readonly tries: number;
  private readonly tryMs: number;
  private closed = false;

  constructor(o: ManageClientOptions) {
    this.transport = o.transport;
    this.clock = o.clock;
    this.key = o.key;
    this.vlan = o.vlan === undefined ? DEFAULT_VLAN : o.vlan;
    this.station = o.station ?? stationIdentity();
    this.counter = o.counter ?? RequestCounter.fromWallClock();
    this.tries = o.tries ?? DEFAULT_TRIES;
    this.tryMs = o.tryMs ?? DEFAULT_TRY_MS;
    this.transport.onFrame((frame) => this.receive(frame));
  }

  /**
   * Asks every card (a Discover to the multicast address, sent again halfway through) and
   * collects the replies for `timeoutMs`: one per card, the latest, in serial order.
   */
  discover(timeoutMs: number): Promise<ManageReply[]> {
    const found = new Map<number, ManageReply>();
    const counters: bigint[] = [];
    const collect = (reply: ManageReply) => found.set(reply.sender.serial, reply);
    const ask = () => counters.push(this.send(ManageOp.Discover, ALL_CARDS, 0, null, collect));
    ask();
    const again = timeoutMs >= 2 ? this.clock.after(Math.floor(timeoutMs / 2), ask) : null;
    return new Promise((resolve) => {
      this.clock.after(timeoutMs, () => {
        again?.();
        for (const c of counters) this.pending.delete(c);
        resolve([...found.values()].sort((a, b) => a.sender.serial - b.sender.serial));
      });
    });
  }

  /** The card's report. Throws ManageError when it does not answer. */
  async status(serial: number): Promise<ManageReply> {
    return (await this.ask(ManageOp.Status, serial, 0)).reply;
  }

  /**
   * Moves the card to `group`. Resolves with its Ok reply; throws ManageError when it does
   * not answer or refuses (Busy, BadGroup, FlashFailed). A Busy answer to a retry, after an
   * earlier send went unanswered, may mean that send is the change in progress: the card's
   * status is polled until it shows the group, for up to `settleMs`.
   */
  async setGroup(serial: number, group: number, settleMs = 2000): Promise<ManageReply> {
    const { reply, sends } = await this.ask(ManageOp.SetGroup, serial, group);
    if (reply.status === ManageStatus.Busy && sends > 1) {
      // An earlier send went through: the card answers it only once the new group is in its
      // flash (a sector erase, 45 ms on a card, longer in a simulation slower than real time).
      const deadline = this.clock.now() + settleMs;
      for (;;) {
        const now = await this.status(serial);
        if (now.group === group) return { ...now, op: ManageOp.SetGroup, status: ManageStatus.Ok };
        if (this.clock.now() >= deadline) break;
        await new Promise<void>((resolve) => this.clock.after(this.tryMs, resolve));
      }
    }
    if (reply.status !== ManageStatus.Ok) {
      throw new ManageError(`card ${formatSerial(serial)} refused the group change to ${group}: ${STATUS_TEXT[reply.status] ?? `status ${reply.status}`}`,
        "refused", serial, reply.status);
    }
    return reply;
  }

  /** Finds one card (a Discover addressed to its serial): its address and boot ID. Throws ManageError when it does not answer. */
  async find(serial: number): Promise<KnownCard> {
    const answer = await this.exchange((onReply) => this.send(ManageOp.Discover, serial, 0, null, onReply));
    if (!answer) {
      throw new ManageError(`card ${formatSerial(serial)} did not answer a discovery (${this.tries} tries, ${this.tryMs} ms each): ` +
        `is it on, on the management VLAN${this.vlan === null ? "" : ` ${this.vlan}`}, with this admin key?`, "no-answer", serial);
    }
    return this.cards.get(serial)!;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    this.transport.close();
  }

  /** One request to one card: `tries` sends; if none is answered, the card is discovered again and as many more. */
  private async ask(op: ManageOp, serial: number, newGroup: number): Promise<{ reply: ManageReply; sends: number }> {
    if (serial === ALL_CARDS || serial === 0) throw new RangeError(`${formatSerial(serial)} names no single card`);
    let card = this.cards.get(serial) ?? await this.find(serial);
    const first = await this.exchange((onReply) => this.send(op, serial, newGroup, card, onReply));
    if (first) return first;
    this.cards.delete(serial);
    card = await this.find(serial);
    const second = await this.exchange((onReply) => this.send(op, serial, newGroup, card, onReply));
    if (second) return { reply: second.reply, sends: second.sends + this.tries };
    throw new ManageError(`card ${formatSerial(serial)} did not answer ${ManageOp[op]} (${2 * this.tries} tries, ${this.tryMs} ms each, ` +
      "discovered again in between)", "no-answer", serial);
  }

  /**
   * Up to `tries` sends of one request, each with its own counter, each waiting `tryMs`; a
   * late answer to an earlier send counts. Resolves with the first answer, or null.
   */
  private async exchange(send: (onReply: (reply: ManageReply) => void) => bigint): Promise<{ reply: ManageReply; sends: number } | null> {
    let answer: ManageReply | null = null;
    let wake = () => {};
    const counters: bigint[] = [];
    const onReply = (reply: ManageReply) => {
      answer ??= reply;
      wake();
    };
    try {
      for (let i = 0; i < this.tries && !this.closed; i++) {
        counters.push(send(onReply));
        await new Promise<void>((resolve) => {
          const cancel = this.clock.after(this.tryMs, () => resolve());
          wake = () => {
            cancel();
            resolve();
          };
        });
        if (answer) return { reply: answer, sends: counters.length };
      }
      return null;
    } finally {
      for (const c of counters) this.pending.delete(c);
    }
  }

  /** Builds, registers and sends one request; returns its counter. */
  private send(op: ManageOp, target: number, newGroup: number, card: KnownCard | null, onReply: (reply: ManageReply) => void): bigint {
    const counter = this.counter.next();
    this.pending.set(counter, { op, target, onReply });
    const frame = encodeRequest({
      destination: card ? card.mac : CONTROL_MULTICAST, source: this.station.mac, vlan: this.vlan,
      op, newGroup, target, bootId: op === ManageOp.Discover || !card ? 0 : card.bootId, counter,
      station: { serial: this.station.serial, bootId: this.station.bootId },
    }, this.key);
    this.stats.requests++;
    if (!this.closed) this.transport.send(frame);
    return counter;
  }

  private receive(frame: Uint8Array): void {
    if (frame.length < 14 || !sameMac(frame, 0, this.station.mac)) return;
    let reply: ManageReply;
    try {
      reply = decodeReply(frame, this.key);
    } catch (error) {
      if (!(error instanceof ManageFrameError)) throw error;
      if (error.problem === "bad-tag") this.stats.badTags++;
      else if (error.problem !== "not-control") this.stats.malformed++;
      return;
    }
    const pending = this.pending.get(reply.counter);
    if (!pending || reply.vlan !== this.vlan || reply.op !== pending.op || (pending.target !== ALL_CARDS && reply.sender.serial !== pending.target)) {
      this.stats.unexpected++;
      return;
    }
    this.stats.replies++;
    // A Discover answers once per card; any other request once.
    if (pending.target !== ALL_CARDS) this.pending.delete(reply.counter);
    this.cards.set(reply.sender.serial, { serial: reply.sender.serial, mac: reply.source, bootId: reply.sender.bootId, last: reply });
    pending.onReply(reply);
  }
}

function sameMac(frame: Uint8Array, at: number, mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (frame[at + i] !== mac[i]) return false;
  return true;
}
