// The fault matrix (`iov faults`, docs/faults.md): fault families, each run over many seeds
// on the default scenario under NVMe load and test traffic, and a verdict per run that counts
// every broken promise once: TLPs lost, duplicated or reordered, completion timeouts (the
// server's and the chassis devices' DMA reads), hot-plug events the fault does not imply, data
// verification errors, firmware traps, devices that did not come back, violated invariants,
// and the longest any request waited for its completion against HOLD_BUDGET_NS.
//
// A cell (family, seed) is a pure function of the two: the seed is the world's and the fault
// plan's random stream's, and seedFor() derives it from the family's name and the cell's
// index, so `iov sim --fault FAMILY --seed SEED` replays a cell exactly. The faults start when
// the run is ready (both cards Active and warm, the server done enumerating and its NVMe load
// verifying) and their times are drawn relative to that moment: pairing and enumeration take
// the soft-cores' batches, not a fixed time.

import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker, parentPort, workerData } from "node:worker_threads";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { World } from "./world.ts";
import { SCENARIOS, type Scenario, type TrafficSpec } from "./scenarios.ts";
import type { RunSummary } from "./summary.ts";
import type { ImpairmentConfig } from "./net/impairments.ts";
import { LINK_DEFAULTS, type Link } from "./net/link.ts";
import type { SwitchPortConfig } from "./net/switch.ts";
import { sendXmodem } from "../console/xmodem.ts";
import { LinkState, LinkTiming, ControlType } from "../../board/map/link.ts";
import { CardRole, ResetCause } from "../../board/map/mailbox.ts";
import { BOARD_ID, CardReg, TunnelReg, WATCHDOG_TIMEOUT_NS, SECY_BASE, SECY_STRIDE, SecyReg } from "../../board/map/registers.ts";
import { buildImage, developmentKey } from "../../board/image.ts";
import { decodeControl } from "../../board/link-codec.ts";
import type { Card } from "../../board/card.ts";
import { SlotState } from "../server/pciehp.ts";
import { FIRMWARE } from "../paths.ts";

const MS = 1_000_000;
const US = 1_000;

/**
 * The longest any request may wait for its completion: safely inside the server's 50 ms
 * completion timeout, with the 20 ms grace window (docs/link.md) and the time to answer what it
 * held well inside it.
 */
export const HOLD_BUDGET_NS = 45 * MS;
/** Seeds per family when `--seeds` is not given. */
export const DEFAULT_SEEDS = 50;

/** The grace window of the cards' default configuration: outages shorter than it are ridden out. */
const GRACE_NS = LinkTiming.GraceNs;
/**
 * An outage at least this long may legitimately outlast the grace window: it runs from the
 * fabric's detection (carrier at once, silence after 200 µs) and the firmware's batch (up to 1 ms),
 * and a frame must be heard again before it ends.
 */
const MAY_GO_DOWN_NS = GRACE_NS - 2 * MS;
/**
 * Gaps between outages: this long or more the link is back for its resume and then stays up for
 * LinkTiming.StableNs, so each outage is a train of its own; this short or less (the resume is
 * not even taken yet), they are one train.
 */
const SEPARATE_GAP_NS = 3 * MS;
const CHAINED_GAP_NS = 200 * US;
/** The run goes on at least this long after a fault the server should not notice: what was held drains, what timed out would have. */
const QUIET_NS = 100 * MS;
/**
 * ... and this long after one it may notice: the cards pair again (a reboot takes about 85 ms),
 * pciehp waits 120 ms before it configures the device, then the drivers bind and the NVMe load
 * verifies again (docs/scenarios.md: "a cable or port back some 130 ms").
 */
const SETTLE_NS = 450 * MS;
/**
 * A session that ends must begin again within this: the hysteresis penalty after a grace expiry
 * (up to 256 ms: docs/link.md) and a pairing (about 85 ms after a reboot) fit with room to spare.
 */
const BACK_WITHIN_NS = 1000 * MS;
/** From a session's start: pciehp's 120 ms of waits, the configuration, the drivers and the NVMe load's first verified read. */
const AFTER_UP_NS = 250 * MS;
/** A management move also writes the card's flash (45 ms) and waits for the station's answer. */
const MOVE_SETTLE_NS = 600 * MS;
/** The NVMe load verifies a 32 KiB write every millisecond: a drive that verified nothing in this long before the end has stopped. */
const STALL_WINDOW_NS = 20 * MS;
/** Pairing, the server's enumeration and the first NVMe read take about 250 ms; a run not ready by then is a failure. */
const READY_BY_NS = 1500 * MS;
/** No run goes on past this, whatever its faults asked for. */
const RUN_CAP_NS = 6000 * MS;
/** How often the run looks whether it is ready. */
const READY_POLL_NS = 1 * MS;
/**
 * The cards' console line rate in the update families: faster than the 115 200 baud default, so
 * that the soft-core's work on each block, not the line, sets the pace (about 40 ms a 1 KiB block).
 */
const UPDATE_BAUD = 1_000_000;
/** An update from `update` to the trial reset: the erase (16 sectors of 45 ms), 33 blocks of about 40 ms, the checks; with a margin. */
const UPDATE_NS = 2500 * MS;
/** Kicks stop at most a watchdog period before it resets the card; the run waits that long, and a little more, for the reset. */
const WATCHDOG_WAIT_NS = WATCHDOG_TIMEOUT_NS + 100 * MS;
/** The XMODEM sender's own timeouts are wall-clock: long enough never to fire, so the run stays a function of its seed. */
const XMODEM_TIMEOUT_MS = 3_600_000;

/** Test traffic both ways through the tunnel from the moment the run is ready: every class, so that ordering is checked too. */
const TRAFFIC: TrafficSpec[] = [
  { from: "host", to: "chassis", count: 60_000, startNs: 0, payload: 256, mix: { posted: 4, nonPosted: 1, completion: 1 } },
  { from: "chassis", to: "host", count: 15_000, startNs: 0, payload: 64, mix: { posted: 2, nonPosted: 1, completion: 3 } },
];

/** The seeded stream a cell draws its faults from. */
export class Draw {
  private readonly rng: RandomGenerator;

  constructor(seed: number) {
    // Another stream than the world's (seeded with the same value): the faults drawn do not move with the world's own draws.
    this.rng = xoroshiro128plus((seed ^ 0x5fa1_7ed5) >>> 0);
  }

  /** A whole number in [lo, hi]. */
  int(lo: number, hi: number): number {
    return uniformInt(this.rng, lo, hi);
  }

  /** A number in [lo, hi), in millionths of the range. */
  real(lo: number, hi: number): number {
    return lo + ((hi - lo) * this.int(0, 999_999)) / 1_000_000;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
}

/** How a family changes the default scenario. */
export interface Shape {
  /** Through a switch (host card on port 0, chassis card on port 1) with the management station on port 2, rather than a direct cable. */
  switched?: boolean;
  /** Impairments of both directions of the chassis card's cable, for the whole run, merged with the default scenario's (a `loss` replaces its 0.1 %). */
  impairments?: ImpairmentConfig;
  /** The cards' console line rate. */
  uartBaud?: number;
  /** A rogue station on a fourth switch port, the switch's mirror port (implies switched; docs/scenarios.md#attack). */
  attacker?: boolean;
  /** A second cable, between the cards' Ethernet ports 1 (`cable1`): the session joins it as a second path (docs/link.md#paths). */
  dual?: boolean;
  /**
   * Through a switch (implies switched) that congests: the chassis card's cable at `rateBps`, the
   * switch with a shared buffer of `bufferBytes` (dynamic threshold alpha 1) and ECN marking from
   * `kBytes` of queue (docs/congestion.md); with `pfcXoffBytes`, 802.1Qbb priority flow control on
   * priority 0 (the tunnels') that pauses a sender past that many bytes of its frames in the switch.
   */
  congested?: { rateBps: number; bufferBytes: number; kBytes: number; pfcXoffBytes?: number };
}

/** What a family's faults can do and must tell, while the run goes on. */
export interface FaultContext {
  readonly world: World;
  readonly draw: Draw;
  /** The chassis card's cable. */
  readonly cable: Link;
  card(name: "host" | "chassis"): Card;
  /** Runs `action` `afterNs` from now (the scheduler waits for a promise it returns); the run goes on at least QUIET_NS past it. */
  after(afterNs: number, action: () => void | Promise<void>): void;
  /** Something the server may see: at most one removal and one insertion of each slot that held a device when the faults began. */
  disrupt(what: string): void;
  /** The run goes on at least `ns` from now. */
  settle(ns: number): void;
  /**
   * The run does not end until the returned function is called (then it goes on QUIET_NS more) or
   * `maxNs` have passed: for a fault that waits for something (an update's phase, a watchdog).
   */
  keepAlive(maxNs: number): () => void;
  /** A line of the cell's account: what happened, with its time from the moment the faults began. */
  note(text: string): void;
  /** The run could not do what its family is about (the fault never came to pass): a failure of the cell. */
  fail(reason: string): void;
  /** Runs `check` when the run ends, before the verdict (a fault that was to come and never did). */
  atEnd(check: () => void): void;
  /** Calls `listener` with the cause whenever card `name` comes out of a reset or powers on (a reboot, its watchdog, an update's trial). */
  onReset(name: "host" | "chassis", listener: (cause: ResetCause) => void): void;
  /** The link state of card `name`'s tunnel 0 now. */
  state(name: "host" | "chassis"): LinkState;
}

export interface FaultPlan {
  shape?: Shape;
  /** Watches the world from time 0, before the faults begin (what a replay needs to have seen). */
  prepare?(world: World): void;
  /** Starts the faults at the moment the run is ready (now). */
  start(ctx: FaultContext): void;
}

export interface FaultFamily {
  name: string;
  /** What it injects, one sentence (`iov faults --list`, docs/faults.md). */
  injects: string;
  /** The hot-plug events it legitimately implies, one sentence. */
  allows: string;
  /** The cell's plan, its values drawn from `draw`. */
  plan(draw: Draw): FaultPlan;
}

const ms = (ns: number) => `${(ns / MS).toFixed(3)} ms`;

/** Takes `cable` down for `durationNs`, `afterNs` from now; an outage that may outlast the grace window is a disruption. */
function outage(ctx: FaultContext, cable: Link, afterNs: number, durationNs: number, disruptive: boolean): void {
  ctx.after(afterNs, () => {
    ctx.note(`${cable.id} down for ${ms(durationNs)}`);
    if (disruptive) ctx.disrupt(`an outage of ${ms(durationNs)}`);
    cable.hold("fault", true);
  });
  ctx.after(afterNs + durationNs, () => {
    cable.hold("fault", false);
    ctx.settle(disruptive ? SETTLE_NS : QUIET_NS);
  });
}

/** `count` outages of `cable`, each `lengths` long with `gaps` between them (ranges in ns), from `afterNs` on; returns when the last ends. */
function flapTrain(ctx: FaultContext, cable: Link, o: { count: number; lengths: [number, number]; gaps: [number, number]; afterNs: number; disruptive: (lengthNs: number) => boolean }): number {
  let at = o.afterNs;
  for (let i = 0; i < o.count; i++) {
    if (i > 0) at += ctx.draw.int(...o.gaps);
    const length = ctx.draw.int(...o.lengths);
    outage(ctx, cable, at, length, o.disruptive(length));
    at += length;
  }
  return at;
}

/**
 * Reboots `card` now. Its new firmware adopts a session in Active or Recovery (docs/registers.md,
 * "What survives a reset"): nobody sees it. A handshake is lost with the old firmware: in
 * Configure the peer may already be Active with it (it has sent READY), and losing it then costs
 * the server its slots.
 */
function reboot(ctx: FaultContext, card: "host" | "chassis", why: string): Promise<void> {
  const state = ctx.state(card);
  ctx.note(`${card} card reboots ${why} (its tunnel ${LinkState[state]})`);
  if (state === LinkState.Configure) ctx.disrupt(`the ${card} card's reboot in ${LinkState[state]}`);
  ctx.settle(SETTLE_NS);
  return ctx.card(card).reset(ResetCause.Software);
}

/**
 * Calls `then` once, `delayNs` after card `watched`'s tunnel 0 first enters `state` from now
 * on (or fails the cell when it never does).
 */
function whenEnters(ctx: FaultContext, watched: "host" | "chassis", state: LinkState, delayNs: number, then: () => void | Promise<void>): void {
  let armed = true;
  ctx.world.onLinkStateChange((card, tunnel, entered) => {
    if (!armed || card !== watched || tunnel !== 0 || entered !== state) return;
    armed = false;
    ctx.after(delayNs, then);
  });
  ctx.atEnd(() => {
    if (armed) ctx.fail(`the ${watched} card's tunnel never entered ${LinkState[state]}`);
  });
}

/**
 * Types `update` at card `name`'s console and sends it the running image as the next patch
 * version with XMODEM; `onOutput` sees everything the card prints. The transfer is aborted when
 * the card loses power or the run ends.
 */
function update(ctx: FaultContext, name: "host" | "chassis", onOutput: (text: string) => void): { abort(): void } {
  const card = ctx.card(name);
  const booted = card.booted;
  if (!booted) throw new Error(`${name} card: nothing booted to update`);
  const { major, minor, patch } = booted.info.version;
  const image = buildImage(booted.payload, { boardId: BOARD_ID, version: { major, minor, patch: patch + 1 }, key: developmentKey() });
  const scheduler = ctx.world.scheduler;
  const listeners: ((bytes: Uint8Array) => void)[] = [];
  const decoder = new TextDecoder("latin1");
  const abort = new AbortController();
  let text = "";
  card.uart.line = (bytes) => {
    text += decoder.decode(bytes);
    onOutput(text);
    for (const listener of listeners) listener(bytes);
    // The sender answers at this same virtual instant: the scheduler waits until its promise chain has run.
    if (listeners.length) scheduler.at(scheduler.now, () => new Promise((resolve) => setImmediate(resolve)));
  };
  card.uart.receive(new TextEncoder().encode("update\r"));
  sendXmodem({ write: async (bytes) => card.uart.receive(bytes), onData: (cb) => listeners.push(cb) }, image,
    { signal: abort.signal, timeoutMs: XMODEM_TIMEOUT_MS, startTimeoutMs: XMODEM_TIMEOUT_MS })
    .then((result) => ctx.note(`${name} card: image sent, ${result.blocks} blocks`), (error: Error) => ctx.note(`${name} card: transfer ended: ${error.message}`));
  ctx.world.stopHooks.push(() => abort.abort());
  return { abort: () => abort.abort() };
}

const TRAINING = [LinkState.Discover, LinkState.Negotiate, LinkState.Authenticate, LinkState.Configure, LinkState.Active, LinkState.Recovery] as const;

/**
 * Reboots `victim` when `watched`'s tunnel enters a training state drawn from `states`: the
 * Recovery of a short flap, or a state of the training that follows a pull past the grace window.
 */
function rebootInState(watched: "host" | "chassis", victim: "host" | "chassis", states: readonly LinkState[], delays: [number, number]) {
  return (draw: Draw): FaultPlan => {
    const state = draw.pick(states);
    const delay = draw.int(...delays);
    return {
      start: (ctx) => {
        const at = draw.int(0, 10 * MS);
        const length = state === LinkState.Recovery ? draw.int(1 * MS, 10 * MS) : draw.int(30 * MS, 60 * MS);
        outage(ctx, ctx.cable, at, length, length >= MAY_GO_DOWN_NS);
        ctx.after(at, () => whenEnters(ctx, watched, state, delay, () =>
          reboot(ctx, victim, `${ms(delay)} after the ${watched} card's tunnel entered ${LinkState[state]}`)));
      },
    };
  };
}

/** Bursty loss or reordering for the whole run, and a cable pull on either side of the grace window under it. */
function impairedPull(impairments: (draw: Draw) => ImpairmentConfig) {
  return (draw: Draw): FaultPlan => ({
    shape: { impairments: impairments(draw) },
    start: (ctx) => {
      const length = draw.int(1 * MS, 60 * MS);
      outage(ctx, ctx.cable, draw.int(0, 10 * MS), length, length >= MAY_GO_DOWN_NS);
    },
  });
}

/** Impairments alone, for the whole run: the run's QUIET_NS after the moment it is ready carries the traffic through them. */
function impaired(impairments: (draw: Draw) => ImpairmentConfig) {
  return (draw: Draw): FaultPlan => ({ shape: { impairments: impairments(draw) }, start: () => {} });
}

/** The management station moves `card` to `group`, `afterNs` from now, as a scenario's assign action does. */
function assignAt(ctx: FaultContext, afterNs: number, card: "host" | "chassis", group: number): void {
  ctx.after(afterNs, () => {
    ctx.note(`${card} card assigned to group ${group}`);
    ctx.settle(MOVE_SETTLE_NS);
    return ctx.world.act({ atNs: ctx.world.scheduler.now, kind: "assign", card, group });
  });
}

/** `card`'s power cut under load, 0..10 ms after the run is ready, and its power back 30..200 ms later. */
function powerCut(card: "host" | "chassis") {
  return (draw: Draw): FaultPlan => ({
    start: (ctx) => {
      const at = draw.int(0, 10 * MS);
      const off = draw.int(30 * MS, 200 * MS);
      ctx.after(at, () => {
        ctx.note(`${card} card's power cut for ${ms(off)}`);
        ctx.disrupt(`the ${card} card's power cut`);
        return ctx.card(card).powerCut();
      });
      ctx.after(at + off, () => {
        ctx.settle(SETTLE_NS);
        ctx.card(card).powerOn(ResetCause.PowerOn);
      });
    },
  });
}

/** A group no card starts in and that is not the management VLAN. */
const otherGroup = (draw: Draw) => draw.int(101, 3999);

/**
 * What a cut in each phase of an update waits for on the card's console, and how long the phase
 * lasts about (the boot ROM also prints "confirmed" for an image at each boot: the firmware's
 * line is the confirmation).
 */
const UPDATE_PHASES = [
  { phase: "erase", marker: /update: erasing slot/, spanNs: 720 * MS },
  { phase: "write", marker: /update: ready for xmodem/, spanNs: 1300 * MS },
  { phase: "verify", marker: /update: received/, spanNs: 30 * MS },
  { phase: "trial", marker: /boot: starting slot \d \(\S+\) on trial/, spanNs: 1000 * MS },
  { phase: "confirm", marker: /update: image \S+ confirmed/, spanNs: 5 * MS },
] as const;

export const FAMILIES: FaultFamily[] = [
  {
    name: "flap-train-below",
    injects: `2..8 cable outages of 1 µs..${GRACE_NS / MS - 4} ms with gaps of ${SEPARATE_GAP_NS / MS}..10 ms, on the direct cable`,
    allows: "nothing: each outage is an outage train of its own (the link stays up a while between them), inside the grace window",
    plan: (draw) => ({ start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(2, 8), lengths: [1 * US, GRACE_NS - 4 * MS], gaps: [SEPARATE_GAP_NS, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }) }),
  },
  {
    name: "flap-train-below-switched",
    injects: `2..8 outages of 1 µs..${GRACE_NS / MS - 4} ms with gaps of ${SEPARATE_GAP_NS / MS}..10 ms of the chassis card's cable to a switch (the host card sees silence, not carrier)`,
    allows: "nothing: each outage is an outage train of its own, inside the grace window",
    plan: (draw) => ({ shape: { switched: true }, start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(2, 8), lengths: [1 * US, GRACE_NS - 4 * MS], gaps: [SEPARATE_GAP_NS, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }) }),
  },
  {
    name: "flap-train-chained",
    injects: `2..8 cable outages of 1 µs..19 ms with resumes of 1..${CHAINED_GAP_NS / US} µs between them: one outage train (docs/link.md, "The hold bound")`,
    allows: `a removal and an insertion of each occupied slot if the train may outlast the grace window (from its first outage to its last, ${MAY_GO_DOWN_NS / MS} ms or more), else nothing`,
    plan: (draw) => ({
      start: (ctx) => {
        const from = draw.int(0, 10 * MS);
        const end = flapTrain(ctx, ctx.cable, { count: draw.int(2, 8), lengths: [1 * US, 19 * MS], gaps: [1 * US, CHAINED_GAP_NS], afterNs: from, disruptive: () => false });
        if (end - from >= MAY_GO_DOWN_NS) ctx.disrupt(`an outage train of ${ms(end - from)}`);
      },
    }),
  },
  {
    name: "flap-train-at",
    injects: "2..8 cable outages of 19..21 ms (the grace window, ±1 ms) with gaps of 1 µs..2 ms",
    allows: "a removal and an insertion of each occupied slot per outage, at most",
    plan: (draw) => ({ start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(2, 8), lengths: [GRACE_NS - 1 * MS, GRACE_NS + 1 * MS], gaps: [1 * US, 2 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => true }) }),
  },
  {
    name: "flap-train-above",
    injects: "2..4 cable outages of 30..100 ms with gaps of 1 µs..10 ms",
    allows: "a removal and an insertion of each occupied slot per outage, at most",
    plan: (draw) => ({ start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(2, 4), lengths: [30 * MS, 100 * MS], gaps: [1 * US, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => true }) }),
  },
  {
    name: "rekey-flaps",
    injects: "MACsec rekeys every 16..256 frames (the SecY's RekeyFrames) under traffic, and 2..6 cable outages of 1 µs..16 ms with gaps of 5..10 ms",
    allows: "nothing: every outage is inside the grace window, and no frame is lost or refused across a key switch",
    plan: (draw) => ({
      start: (ctx) => {
        const every = draw.int(16, 256);
        ctx.note(`rekey every ${every} frames`);
        secyEverywhere(ctx, SecyReg.RekeyFrames, every);
        flapTrain(ctx, ctx.cable, { count: draw.int(2, 6), lengths: [1 * US, 16 * MS], gaps: [SEPARATE_GAP_NS, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false });
      },
    }),
  },
  {
    name: "rekey-host-reboot",
    injects: "MACsec rekeys every 16..256 frames under traffic, and a host card reboot 0..20 ms into it (a key derivation under way is lost with the firmware)",
    allows: "nothing: the new firmware adopts the session and its keys; rekeying goes on once it has the next key",
    plan: (draw) => ({
      start: (ctx) => {
        secyEverywhere(ctx, SecyReg.RekeyFrames, draw.int(16, 256));
        ctx.after(draw.int(0, 20 * MS), () => reboot(ctx, "host", "while rekeying"));
      },
    }),
  },
  {
    name: "attacker-flaps",
    injects: "a rogue station on the switch's mirror port forging, altering and replaying frames every 20 µs (docs/scenarios.md#attack), and 2..6 outages of 1 µs..16 ms of the chassis card's cable",
    allows: "nothing: none of its frames gets through, and every outage is inside the grace window",
    plan: (draw) => ({
      shape: { attacker: true },
      start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(2, 6), lengths: [1 * US, 16 * MS], gaps: [SEPARATE_GAP_NS, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }),
    }),
  },
  {
    name: "loss-bursts",
    injects: "Gilbert-Elliott loss both ways for the whole run (bursts of 2..10 frames, 0.1..5 % of frames), and a cable pull of 1..60 ms under it",
    allows: "a removal and an insertion of each occupied slot if the pull may outlast the grace window (18 ms or more), else nothing",
    plan: impairedPull((draw) => ({ gilbertElliott: { p: draw.real(0.0005, 0.005), r: draw.real(0.1, 0.5), lossGood: 0, lossBad: 1 } })),
  },
  {
    name: "reorder",
    injects: "1..10 % of frames held back 1..50 µs both ways for the whole run, and a cable pull of 1..60 ms under it",
    allows: "a removal and an insertion of each occupied slot if the pull may outlast the grace window (18 ms or more), else nothing",
    plan: impairedPull((draw) => ({ reorder: { probability: draw.real(0.01, 0.1), delayNs: draw.int(1 * US, 50 * US) } })),
  },
  {
    name: "duplicate-frames",
    injects: "1..10 % of frames delivered twice, both ways, for the whole run",
    allows: "nothing",
    plan: impaired((draw) => ({ duplication: draw.real(0.01, 0.1) })),
  },
  {
    name: "corrupt-frames",
    injects: "0.1..5 % of frames with one bit flipped (the FCS catches them), both ways, for the whole run",
    allows: "nothing",
    plan: impaired((draw) => ({ corruption: draw.real(0.001, 0.05) })),
  },
  {
    name: "loss-steady",
    injects: "1..5 % random frame loss both ways for the whole run",
    allows: "nothing",
    plan: impaired((draw) => ({ loss: draw.real(0.01, 0.05) })),
  },
  {
    name: "chassis-reboot-in-state",
    injects: "a chassis card reboot when its tunnel enters a state drawn from Discover, Negotiate, Authenticate, Configure, Active (the training after a 30..60 ms cable pull) or Recovery (a 1..10 ms flap)",
    allows: "a removal and an insertion of each occupied slot for the pull, and for the reboot if it came in Configure (a session in Active or Recovery is adopted), at most",
    plan: rebootInState("chassis", "chassis", TRAINING, [0, 100 * US]),
  },
  {
    name: "host-reboot-in-state",
    injects: "a host card reboot when its tunnel enters a state drawn from Discover, Negotiate, Authenticate, Configure, Active (the training after a 30..60 ms cable pull) or Recovery (a 1..10 ms flap)",
    allows: "a removal and an insertion of each occupied slot for the pull, and for the reboot if it came in Configure (a session in Active or Recovery is adopted), at most",
    plan: rebootInState("host", "host", TRAINING, [0, 100 * US]),
  },
  {
    name: "chassis-reboot-host-training",
    injects: "a chassis card reboot 0..1 ms after the host card's tunnel enters Negotiate, Authenticate or Configure in the training after a 30..60 ms cable pull",
    allows: "a removal and an insertion of each occupied slot for the pull, and for the reboot if the chassis card was in Configure (a session in Active is adopted), at most",
    plan: rebootInState("host", "chassis", [LinkState.Negotiate, LinkState.Authenticate, LinkState.Configure], [0, 1 * MS]),
  },
  {
    name: "chassis-power-cut",
    injects: "the chassis card's power cut under NVMe load and traffic, back 30..200 ms later",
    allows: "a removal and an insertion of each occupied slot, at most",
    plan: powerCut("chassis"),
  },
  {
    name: "host-power-cut",
    injects: "the host card's power cut under NVMe load and traffic, back 30..200 ms later",
    allows: "a removal and an insertion of each occupied slot, at most: the server's root port slot (its link goes down with the card: the switch and every device below it go) and the chassis slots",
    plan: powerCut("host"),
  },
  {
    name: "path-flaps",
    injects: "2..8 outages of 1 µs..100 ms of the second cable (the session's joined path) with gaps of 1 µs..10 ms, the first cable in",
    allows: "nothing: the session goes on its first path",
    plan: (draw) => ({ shape: { dual: true }, start: (ctx) => void flapTrain(ctx, ctx.world.network.link("cable1"), { count: draw.int(2, 8), lengths: [1 * US, 100 * MS], gaps: [1 * US, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }) }),
  },
  {
    name: "first-path-flaps",
    injects: "2..8 outages of 1 µs..100 ms of the first cable (the path the handshake made, which carries the CONTROL frames) with gaps of 1 µs..10 ms, the second cable in",
    allows: "nothing: the session goes on its joined path",
    plan: (draw) => ({ shape: { dual: true }, start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(2, 8), lengths: [1 * US, 100 * MS], gaps: [1 * US, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }) }),
  },
  {
    name: "congested-switch",
    injects: `the chassis card's cable at 2.5 or 5 Gb/s through a switch with a shared buffer of 32..256 KiB and ECN marking from 4..32 KiB of queue, so that the host card's 10 Gb/s bursts queue, are marked and may be dropped; and 0..3 outages of 1 µs..${GRACE_NS / MS - 4} ms of that cable`,
    allows: "nothing: congestion control and selective repeat absorb the queue and the drops, each outage is inside the grace window",
    plan: (draw) => ({
      shape: { congested: { rateBps: draw.int(1, 2) * 2.5e9, bufferBytes: draw.int(32, 256) * 1024, kBytes: draw.int(4, 32) * 1024 } },
      start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(0, 3), lengths: [1 * US, GRACE_NS - 4 * MS], gaps: [SEPARATE_GAP_NS, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }),
    }),
  },
  {
    name: "lossless-switch",
    injects: `the chassis card's cable at 2.5 or 5 Gb/s through a switch with 802.1Qbb priority flow control on the tunnels' priority, pausing the host card past 8..32 KiB of its frames, in a shared buffer of 32..256 KiB with ECN marking from 4..32 KiB; and 0..3 outages of 1 µs..${GRACE_NS / MS - 4} ms of that cable, which empty the paused queue`,
    allows: "nothing: the pauses hold the host card's frames back instead of dropping them, and its short queues hold the server's TLPs; each outage is inside the grace window",
    plan: (draw) => ({
      shape: { congested: { rateBps: draw.int(1, 2) * 2.5e9, bufferBytes: draw.int(32, 256) * 1024, kBytes: draw.int(4, 32) * 1024, pfcXoffBytes: draw.int(8, 32) * 1024 } },
      start: (ctx) => void flapTrain(ctx, ctx.cable, { count: draw.int(0, 3), lengths: [1 * US, GRACE_NS - 4 * MS], gaps: [SEPARATE_GAP_NS, 10 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false }),
    }),
  },
  {
    name: "switch-port-failure",
    injects: "the switch port of the host or the chassis card fails for 1..60 ms during traffic",
    allows: "a removal and an insertion of each occupied slot if the failure may outlast the grace window (18 ms or more), else nothing",
    plan: (draw) => ({
      shape: { switched: true },
      start: (ctx) => {
        const port = draw.int(0, 1);
        const at = draw.int(0, 10 * MS);
        const length = draw.int(1 * MS, 60 * MS);
        const disruptive = length >= MAY_GO_DOWN_NS;
        ctx.after(at, () => {
          ctx.note(`switch port ${port} (${port === 0 ? "host" : "chassis"} card) fails for ${ms(length)}`);
          if (disruptive) ctx.disrupt(`a port failure of ${ms(length)}`);
          return ctx.world.act({ atNs: ctx.world.scheduler.now, kind: "fail-port", switch: "switch", port });
        });
        ctx.after(at + length, () => {
          ctx.settle(disruptive ? SETTLE_NS : QUIET_NS);
          return ctx.world.act({ atNs: ctx.world.scheduler.now, kind: "restore-port", switch: "switch", port });
        });
      },
    }),
  },
  {
    name: "vlan-change",
    injects: "both cards moved to another group (their VLAN) by the management station, 0..20 ms apart in either order, during traffic",
    allows: "a removal and an insertion of each occupied slot, at most",
    plan: (draw) => ({
      shape: { switched: true },
      start: (ctx) => {
        const group = otherGroup(draw);
        const first = draw.pick(["host", "chassis"] as const);
        const at = draw.int(0, 10 * MS);
        const apart = draw.int(0, 20 * MS);
        ctx.disrupt(`the move to group ${group}`);
        assignAt(ctx, at, first, group);
        assignAt(ctx, at + apart, first === "host" ? "chassis" : "host", group);
      },
    }),
  },
  {
    name: "reassign",
    injects: "the chassis card moved to another group during traffic and back to its host card's 100..300 ms later",
    allows: "a removal and an insertion of each occupied slot, at most",
    plan: (draw) => ({
      shape: { switched: true },
      start: (ctx) => {
        const group = otherGroup(draw);
        const at = draw.int(0, 10 * MS);
        const away = draw.int(100 * MS, 300 * MS);
        const home = SCENARIOS.default.link.group;
        ctx.disrupt(`the move to group ${group} and back`);
        assignAt(ctx, at, "chassis", group);
        assignAt(ctx, at + away, "chassis", home);
      },
    }),
  },
  {
    name: "manage-during-flaps",
    injects: "the management station asks each card for its status, a request every 1..5 ms after the last answer (20 ms before a retry), while the chassis card's cable flaps 2..4 times for 1 µs..2 ms with gaps of 0.5..2 ms",
    allows: "nothing: the whole train of outages is inside one grace window",
    plan: (draw) => ({
      shape: { switched: true },
      start: (ctx) => {
        const end = flapTrain(ctx, ctx.cable, { count: draw.int(2, 4), lengths: [1 * US, 2 * MS], gaps: [500 * US, 2 * MS], afterNs: draw.int(0, 10 * MS), disruptive: () => false });
        const gap = draw.int(1 * MS, 5 * MS);
        const until = ctx.world.scheduler.now + end + 20 * MS;
        for (const name of ["host", "chassis"] as const) {
          // A client per card, so that one waiting for an answer lost in an outage does not stop the other.
          const client = ctx.world.management!.client({ tryMs: 20 });
          const tally = { answered: 0, failed: 0 };
          const ask = () => {
            if (ctx.world.scheduler.now > until) return ctx.note(`management: ${tally.answered} status request(s) to the ${name} card answered, ${tally.failed} not`);
            client.status(ctx.card(name).config.serial).then(() => tally.answered++, () => tally.failed++).finally(() => ctx.after(gap, ask));
          };
          ask();
          ctx.world.stopHooks.push(() => client.close());
        }
      },
    }),
  },
  {
    name: "host-reboot",
    injects: "the host card reboots under NVMe load and traffic",
    allows: "nothing: its new firmware adopts the switch and the session (docs/registers.md, \"What survives a reset\")",
    plan: (draw) => ({ start: (ctx) => ctx.after(draw.int(0, 20 * MS), () => reboot(ctx, "host", "under load")) }),
  },
  {
    name: "host-watchdog",
    injects: "the host card's firmware stops kicking its watchdog under load (its kicks are lost at the register), which resets the card 0.75..1 s later",
    allows: "nothing: its new firmware adopts the switch and the session",
    plan: (draw) => ({
      start: (ctx) => {
        const card = ctx.card("host");
        const fabric = card.fabric!;
        const write = fabric.writeRegister;
        let starving = false;
        fabric.writeRegister = (address, value) => (starving && address === CardReg.WatchdogKick ? true : write(address, value));
        let release = () => {};
        ctx.onReset("host", (cause) => {
          if (!starving || cause !== ResetCause.Watchdog) return;
          starving = false;
          ctx.note("host card reset by its watchdog");
          ctx.settle(SETTLE_NS);
          release();
        });
        ctx.after(draw.int(0, 20 * MS), () => {
          ctx.note("host card's watchdog kicks lost from now on");
          starving = true;
          release = ctx.keepAlive(WATCHDOG_WAIT_NS);
          ctx.atEnd(() => {
            if (starving) ctx.fail(`the host card's watchdog did not reset it within ${ms(WATCHDOG_WAIT_NS)} of its last kick`);
          });
        });
      },
    }),
  },
  {
    name: "host-update-trial",
    injects: "the host card is updated over its console under load (XMODEM at 1 Mbaud) and resets into the trial of the new image",
    allows: "nothing: the image on trial adopts the switch and the session",
    plan: (draw) => ({
      shape: { uartBaud: UPDATE_BAUD },
      start: (ctx) => ctx.after(draw.int(0, 20 * MS), () => {
        let reset = false;
        const release = ctx.keepAlive(UPDATE_NS);
        ctx.onReset("host", (cause) => {
          if (reset || cause !== ResetCause.Update) return;
          reset = true;
          ctx.note("host card resets into its trial");
          ctx.settle(SETTLE_NS);
          release();
        });
        ctx.note("host card: `update` typed");
        update(ctx, "host", () => {});
        ctx.atEnd(() => {
          if (!reset) ctx.fail(`the update did not reset the host card into its trial within ${ms(UPDATE_NS)}`);
        });
      }),
    }),
  },
  {
    name: "both-reboot",
    injects: "both cards reboot 0..5 ms apart, in either order, under load",
    allows: "nothing: each card's new firmware adopts its sessions (and the host card's its switch)",
    plan: (draw) => ({
      start: (ctx) => {
        const at = draw.int(0, 20 * MS);
        const apart = draw.int(0, 5 * MS);
        const first = draw.pick(["host", "chassis"] as const);
        ctx.after(at, () => {
          ctx.note(`${first} card reboots`);
          ctx.settle(SETTLE_NS);
          return ctx.card(first).reset(ResetCause.Software);
        });
        const second = first === "host" ? "chassis" : "host";
        ctx.after(at + apart, () => {
          ctx.note(`${second} card reboots`);
          ctx.settle(SETTLE_NS);
          return ctx.card(second).reset(ResetCause.Software);
        });
      },
    }),
  },
  {
    name: "update-power-cut",
    injects: "the chassis card is updated over its console under load and its power is cut in a phase drawn from erase, write, verify, trial and confirm, back 10..50 ms later",
    allows: "a removal and an insertion of each occupied slot for the cut, and for the trial reset if it came first, at most",
    plan: (draw) => {
      const { phase, marker, spanNs } = draw.pick(UPDATE_PHASES);
      const into = draw.int(0, spanNs);
      const off = draw.int(10 * MS, 50 * MS);
      return {
        shape: { uartBaud: UPDATE_BAUD },
        start: (ctx) => ctx.after(draw.int(0, 20 * MS), () => {
          const chassis = ctx.card("chassis");
          let cut = false;
          let trial = false;
          ctx.onReset("chassis", (cause) => {
            if (cut || trial || cause !== ResetCause.Update) return;
            trial = true;
            ctx.note("chassis card resets into its trial");
            ctx.disrupt("the chassis card's trial reset");
          });
          ctx.note(`chassis card: \`update\` typed; power cut ${ms(into)} into its ${phase} phase`);
          const release = ctx.keepAlive(UPDATE_NS + 1000 * MS);
          let armed = true;
          const transfer = update(ctx, "chassis", (text) => {
            if (!armed || !marker.test(text)) return;
            armed = false;
            release();
            ctx.after(into, () => {
              cut = true;
              transfer.abort();
              ctx.note(`chassis card's power cut for ${ms(off)}`);
              ctx.disrupt("the chassis card's power cut");
              return chassis.powerCut();
            });
            ctx.after(into + off, () => {
              ctx.settle(SETTLE_NS);
              chassis.powerOn(ResetCause.PowerOn);
            });
          });
          ctx.atEnd(() => {
            if (armed) ctx.fail(`the chassis card's console never showed the ${phase} phase (${marker.source})`);
          });
        }),
      };
    },
  },
  {
    name: "stale-discover",
    injects: "the chassis card loses power for 1..10 ms (a new boot ID); 1..3 multicast DISCOVERs it sent before (its old boot ID) are replayed into the host card's port 0..150 ms after the new session is up, 1..20 ms apart",
    allows: "a removal and an insertion of each occupied slot for the power cut, at most; nothing for the replayed frames",
    plan: (draw) => {
      // The chassis card's multicast DISCOVERs as the host card's port received them, until its power cut.
      const recorded: Uint8Array[] = [];
      let recording = true;
      return {
        prepare: (world) => {
          const cable = world.network.link("cable");
          const tap = cable.tap;
          cable.tap = (frame, to) => {
            tap?.(frame, to);
            const control = recording ? decodeControl(frame) : null;
            if (control?.type === ControlType.Discover && control.role === CardRole.Chassis && (control.destination[0] & 1) === 1) recorded.push(frame.slice());
          };
        },
        start: (ctx) => {
          const at = draw.int(0, 10 * MS);
          const delay = draw.int(0, 150 * MS);
          const apart = Array.from({ length: draw.int(1, 3) }, () => draw.int(1 * MS, 20 * MS));
          const off = draw.int(1 * MS, 10 * MS);
          ctx.after(at, () => {
            recording = false;
            whenEnters(ctx, "chassis", LinkState.Active, delay, () => {
              const frame = recorded.at(-1);
              if (!frame) return ctx.fail("no DISCOVER of the chassis card was seen before its power cut");
              let when = 0;
              for (const gap of apart) {
                ctx.after(when, () => {
                  ctx.note("a DISCOVER the chassis card sent before its power cut is replayed into the host card's port");
                  ctx.settle(SETTLE_NS);
                  ctx.world.fabrics.get("host")!.mac.receive(frame);
                });
                when += gap;
              }
            });
            ctx.note(`chassis card's power cut for ${ms(off)}`);
            ctx.disrupt("the chassis card's power cut");
            ctx.after(off, () => {
              ctx.settle(SETTLE_NS);
              ctx.card("chassis").powerOn(ResetCause.PowerOn);
            });
            return ctx.card("chassis").powerCut();
          });
        },
      };
    },
  },
];

/** The families by name, in matrix order. */
export const FAMILY_NAMES: string[] = FAMILIES.map((f) => f.name);

/** The family named `name`; throws, listing them, for one that does not exist. */
export function family(name: string): FaultFamily {
  const found = FAMILIES.find((f) => f.name === name);
  if (!found) throw new UnknownFamily(name);
  return found;
}

export class UnknownFamily extends Error {
  constructor(readonly family: string) {
    super(`unknown fault family '${family}'; the families are ${FAMILY_NAMES.join(", ")}`);
  }
}

/** The seed of cell `index` of family `name`: the first 32 bits of SHA-256("name#index"), a value `iov sim --seed` takes. */
export function seedFor(name: string, index: number): number {
  return createHash("sha256").update(`${name}#${index}`).digest().readUInt32BE(0);
}

/** The command that replays a cell exactly. */
export function replayCommand(name: string, seed: number): string {
  return `npx iov sim --fault ${name} --seed ${seed}`;
}

/** The default scenario as a family runs it: no scheduled outage, traffic started when the run is ready, and the family's changes. */
export function faultScenario(name: string, shape: Shape = {}): Scenario {
  const base = SCENARIOS.default;
  const cable = base.cables[0].config;
  // Keys typed while a slot is removed never reach the server, which the typing check would count
  // as a data error: the keyboard stays, without a typist.
  const devices = base.devices.map(({ typing: _, ...device }) => device);
  const lengthM = cable.lengthM ?? LINK_DEFAULTS.lengthM;
  const config = { lengthM, aToB: { ...cable.aToB, ...shape.impairments }, bToA: { ...cable.bToA, ...shape.impairments } };
  const scenario: Scenario = {
    ...base,
    name: `fault ${name}`,
    description: `the default scenario without its cable pull, under fault family ${name} (docs/faults.md)`,
    durationNs: RUN_CAP_NS,
    devices,
    traffic: [],
    actions: [],
    cables: [
      { id: "cable", a: "host", b: "chassis", config },
      ...(shape.dual ? [{ id: "cable1", a: { card: "host", port: 1 }, b: { card: "chassis", port: 1 }, config: { lengthM } }] : []),
    ],
    ...(shape.uartBaud ? { uartBaud: shape.uartBaud } : {}),
  };
  if (!shape.switched && !shape.attacker && !shape.congested) return scenario;
  // Half the cable on each side of the switch; the station on a trunk of the management VLAN only;
  // a rogue station on the mirror port.
  const ports: SwitchPortConfig[] = [{ mode: "trunk" }, { mode: "trunk" }, { mode: "trunk", allowed: [base.link.managementVlan] }];
  return {
    ...scenario,
    cables: [
      { id: "cable-host", a: "host", b: { switch: "switch", port: 0 }, config: { lengthM: lengthM / 2 } },
      { id: "cable-chassis", a: "chassis", b: { switch: "switch", port: 1 }, config: { ...config, lengthM: lengthM / 2, ...(shape.congested ? { rateBps: shape.congested.rateBps } : {}) } },
    ],
    switches: [{
      name: "switch",
      config: shape.attacker ? { ports: [...ports, { mode: "trunk" }], mirror: 3 }
        : shape.congested ? {
          ports, buffer: { bytes: shape.congested.bufferBytes }, ecn: { kMinBytes: shape.congested.kBytes, kMaxBytes: shape.congested.kBytes },
          ...(shape.congested.pfcXoffBytes ? { pfc: { priorities: [0], xoffBytes: shape.congested.pfcXoffBytes } } : {}),
        }
        : { ports },
    }],
    management: { switch: "switch", port: 2 },
    ...(shape.attacker ? { attacker: { ...SCENARIOS.attack.attacker!, switch: "switch", port: 3, startNs: 0 } } : {}),
  };
}

/** Writes the SecY register `reg` of every tunnel of both cards: what a lab engineer does to make rekeys frequent. */
function secyEverywhere(ctx: FaultContext, reg: SecyReg, value: number): void {
  for (const name of ["host", "chassis"] as const) {
    const fabric = ctx.world.fabrics.get(name)!;
    for (let t = 0; t < fabric.tunnels.length; t++) {
      if (!fabric.writeRegister(SECY_BASE + t * SECY_STRIDE + reg, value)) ctx.fail(`the ${name} card refused SecY register 0x${reg.toString(16)} = ${value}`);
    }
  }
}

/** One count per column of the matrix: the broken promises, the TLPs aborted by a removal (legitimate), the longest hold. */
export interface CellCounts {
  /** Test TLPs delivered, each checked once, in order (not a broken promise: what the run carried). */
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  abortedByRemoval: number;
  /** The servers' requests and the chassis devices' DMA reads that timed out. */
  completionTimeouts: number;
  /** Hot-plug events beyond what the family's faults imply. */
  spuriousHotplug: number;
  dataErrors: number;
  /** Firmware traps and mailbox errors. */
  traps: number;
  /** Cards not running at the end, slots whose device did not come back, an NVMe load that stopped, a fault that never came to pass. */
  unrecovered: number;
  invariants: number;
  worstHoldNs: number;
}

export interface CellResult {
  family: string;
  index: number;
  seed: number;
  counts: CellCounts;
  /** The request that waited longest, and whose it was (empty when none was issued). */
  worstHold: string;
  /** What the run did, in order, with times from the moment the faults began. */
  account: string[];
  /** Why the cell failed, one line each; empty when it kept every promise. */
  reasons: string[];
  /** Wall-clock time of the run: this machine's, the only figure that is not a function of the seed. */
  wallMs: number;
}

/** What judge() weighs: the run's summary, and what the cell saw from the moment the faults began. */
export interface Observation {
  summary: Pick<RunSummary, "tlps" | "hostCompletionTimeouts" | "deviceCompletionTimeouts" | "dataVerificationErrors" | "firmwareTraps" | "mailboxErrors" | "invariants" | "worstRequestNs" | "worstRequest">;
  /** The servers' hot-plug events from then on; `slot` is "server:physical slot". */
  hotplug: { slot: string; change: "removal" | "insertion" | "insertionFailed" }[];
  /** The slots that held a device then. */
  occupied: string[];
  /** What the faults did that the server may see: each allows one removal and one insertion of an occupied slot. */
  disruptions: string[];
  /** Why the system did not come back, or the fault did not happen, one line each. */
  unrecovered: string[];
}

/** The counts of a cell and the reasons it failed: every broken promise once, in the column it belongs to. */
export function judge(o: Observation): { counts: CellCounts; reasons: string[] } {
  const s = o.summary;
  const reasons: string[] = [];
  const { lost, duplicated, reordered, abortedByRemoval } = s.tlps;
  if (lost) reasons.push(`${lost} test TLP(s) lost`);
  if (duplicated) reasons.push(`${duplicated} test TLP(s) duplicated`);
  if (reordered) reasons.push(`${reordered} test TLP(s) out of order`);
  const completionTimeouts = s.hostCompletionTimeouts + s.deviceCompletionTimeouts;
  if (completionTimeouts) reasons.push(`${completionTimeouts} completion timeout(s): ${s.hostCompletionTimeouts} of the server's requests, ${s.deviceCompletionTimeouts} of the devices' DMA reads`);
  // Per slot: removals and insertions (failed ones included) beyond one of each per disruption,
  // none on a slot that held no device. Slots that went the same way share a reason.
  let spuriousHotplug = 0;
  const bySlot = new Map<string, string[]>();
  for (const slot of [...new Set([...o.occupied, ...o.hotplug.map((h) => h.slot)])].sort()) {
    const budget = o.occupied.includes(slot) ? o.disruptions.length : 0;
    const removals = o.hotplug.filter((h) => h.slot === slot && h.change === "removal").length;
    const insertions = o.hotplug.filter((h) => h.slot === slot && h.change !== "removal").length;
    const extra = Math.max(0, removals - budget) + Math.max(0, insertions - budget);
    if (extra === 0) continue;
    spuriousHotplug += extra;
    const why = `${removals} removal(s) and ${insertions} insertion(s), at most ${budget} of each allowed` +
      (budget ? ` (${o.disruptions.join("; ")})` : o.occupied.includes(slot) ? " (nothing the server should see)" : " (it held no device)");
    bySlot.set(why, [...(bySlot.get(why) ?? []), slot]);
  }
  if (spuriousHotplug) reasons.push(`${spuriousHotplug} spurious hot-plug event(s): ${[...bySlot].map(([why, slots]) => `slot(s) ${slots.join(", ")}: ${why}`).join("; ")}`);
  if (s.dataVerificationErrors) reasons.push(`${s.dataVerificationErrors} data verification error(s)`);
  const traps = s.firmwareTraps + s.mailboxErrors;
  if (traps) reasons.push(`${s.firmwareTraps} firmware trap(s), ${s.mailboxErrors} mailbox error(s)`);
  for (const why of o.unrecovered) reasons.push(`not recovered: ${why}`);
  for (const invariant of s.invariants) reasons.push(`invariant: ${invariant}`);
  if (s.worstRequestNs > HOLD_BUDGET_NS) reasons.push(`a request waited ${ms(s.worstRequestNs)}, over the ${ms(HOLD_BUDGET_NS)} budget: ${s.worstRequest}`);
  return {
    counts: {
      delivered: s.tlps.delivered, lost, duplicated, reordered, abortedByRemoval, completionTimeouts, spuriousHotplug, dataErrors: s.dataVerificationErrors, traps,
      unrecovered: o.unrecovered.length, invariants: s.invariants.length, worstHoldNs: s.worstRequestNs,
    },
    reasons,
  };
}

/**
 * One cell's run: the scenario its family's plan asks for, the faults started when the run is
 * ready, and the verdict at the end. attach() it to a World built on `scenario` with an endless
 * duration: the cell stops the run when its faults have settled.
 */
export class FaultCell {
  readonly scenario: Scenario;
  private readonly plan: FaultPlan;
  private readonly draw: Draw;
  private readyNs: number | null = null;
  private occupied: string[] = [];
  private readonly disruptions: string[] = [];
  private readonly account: string[] = [];
  private readonly unrecovered: string[] = [];
  private readonly checks: (() => void)[] = [];
  /** keepAlive()s not yet released: the run does not end while there are any. */
  private readonly alive = new Set<object>();
  /** When the run ends, as the faults have asked so far; and the NVMe bytes verified STALL_WINDOW_NS before it. */
  private endNs = 0;
  private verifiedBefore = 0;
  private ended = false;

  constructor(readonly family: FaultFamily, readonly seed: number) {
    this.draw = new Draw(seed);
    this.plan = family.plan(this.draw);
    this.scenario = faultScenario(family.name, this.plan.shape);
  }

  attach(world: World): void {
    this.plan.prepare?.(world);
    world.startHooks.push(() => {
      world.whenActive(["host", "chassis"], () => this.waitReady(world));
      world.scheduler.at(READY_BY_NS, () => {
        if (this.readyNs !== null) return;
        this.unrecovered.push(`the run was not ready within ${ms(READY_BY_NS)}: both cards Active and warm, the server done enumerating and verifying NVMe reads`);
        this.stop(world);
      });
      world.scheduler.at(RUN_CAP_NS, () => {
        if (this.ended) return;
        this.unrecovered.push(`the run reached its cap of ${ms(RUN_CAP_NS)}`);
        this.stop(world);
      });
    });
  }

  /**
   * Polls until the cards are warm and Active and every server has enumerated, has every chassis
   * device in a slot that is on, with no slot on its way on or off (a link that bounced before may
   * still be bringing one back: its insertion is not the faults'), and has verified an NVMe read;
   * then starts the traffic and the faults.
   */
  private waitReady(world: World): void {
    let scanned = 0;
    const enumerated = new Set<string>();
    const poll = () => {
      const entries = world.timeline.entries;
      for (; scanned < entries.length; scanned++) {
        const e = entries[scanned];
        if (e.source === "os" && e.text.startsWith("enumeration done")) enumerated.add(e.card);
      }
      const warm = world.softcore.mhz === 0 || world.cards.every((c) => c.stats.warmNs !== null);
      const serving = world.servers.every((s) => enumerated.has(s.name) && s.summary.nvme.some((r) => r.firstVerifiedNs !== null && r.ended === "running"));
      const still = world.servers.every((s) => s.os.hotplug.every((c) => c.state === SlotState.On || c.state === SlotState.Off));
      const complete = still && this.slotsWithDevices(world, false).length === this.scenario.devices.length;
      const active = (["host", "chassis"] as const).every((name) => world.fabrics.get(name)!.tunnels[0].readRegister(TunnelReg.LinkState) === LinkState.Active);
      if (warm && serving && complete && active) this.ready(world);
      else world.scheduler.at(world.scheduler.now + READY_POLL_NS, poll);
    };
    poll();
  }

  private ready(world: World): void {
    const now = world.scheduler.now;
    this.readyNs = now;
    this.occupied = this.slotsWithDevices(world);
    TRAFFIC.forEach((spec, i) => world.startTraffic(spec, i, { whileUp: true }));
    this.account.push(`ready at ${(now / 1e9).toFixed(6)} s; ${this.occupied.length} slot(s) with a device; traffic starts`);
    const card = (name: "host" | "chassis") => world.cards.find((c) => c.name === name)!;
    // Every reset ends in a power-on with its cause, whichever part of the card it reset.
    const resets = new Map<string, ((cause: ResetCause) => void)[]>();
    for (const name of ["host", "chassis"] as const) {
      const target = card(name);
      const powerOn = target.powerOn.bind(target);
      target.powerOn = (cause = ResetCause.PowerOn, ...rest) => {
        powerOn(cause, ...rest);
        for (const listener of resets.get(name) ?? []) listener(cause);
      };
    }
    const ctx: FaultContext = {
      world,
      draw: this.draw,
      cable: world.network.link(this.scenario.switches?.length ? "cable-chassis" : "cable"),
      card,
      after: (afterNs, action) => {
        world.scheduler.at(world.scheduler.now + afterNs, action);
        this.settle(world, afterNs + QUIET_NS);
      },
      disrupt: (what) => void this.disruptions.push(what),
      settle: (ns) => this.settle(world, ns),
      note: (text) => void this.account.push(`+${ms(world.scheduler.now - now)}: ${text}`),
      fail: (reason) => void this.unrecovered.push(reason),
      atEnd: (check) => void this.checks.push(check),
      keepAlive: (maxNs) => {
        const token = {};
        this.alive.add(token);
        const release = () => {
          if (this.alive.delete(token)) this.settle(world, QUIET_NS);
        };
        world.scheduler.at(world.scheduler.now + maxNs, release);
        return release;
      },
      onReset: (name, listener) => void resets.set(name, [...(resets.get(name) ?? []), listener]),
      state: (name) => world.fabrics.get(name)!.tunnels[0].readRegister(TunnelReg.LinkState) as LinkState,
    };
    // Whatever the faults planned, a session that ends holds the run open until one begins again
    // (within BACK_WITHIN_NS), and then the server is given the time to bring the devices back
    // before the end judges whether it did. A resume after Recovery is no new session.
    let waiting: (() => void) | null = null;
    world.onLinkStateChange((_card, tunnel, state) => {
      if (tunnel !== 0) return;
      if (state === LinkState.Down) waiting ??= ctx.keepAlive(BACK_WITHIN_NS);
      if (state !== LinkState.Active || waiting === null) return;
      this.settle(world, AFTER_UP_NS);
      waiting();
      waiting = null;
    });
    for (const server of world.servers) {
      server.os.onEvent((event) => {
        if (event.kind === "hotplug") this.settle(world, QUIET_NS);
      });
    }
    this.settle(world, QUIET_NS);
    this.plan.start(ctx);
  }

  /** "server:slot" of every hot-plug slot below which the server sees a function now. */
  /**
   * The hot-plug slots with something below them, as "server:slot": the chassis slots bound to
   * the host card's downstream ports, and (`rootPort`) the server's root port slot the host card
   * itself sits in.
   */
  private slotsWithDevices(world: World, rootPort = true): string[] {
    return world.servers.flatMap((s) => s.os.hotplug
      .filter((c) => (rootPort || c.port.bus !== 0) && s.os.functionsBelow(c.port).length > 0)
      .map((c) => `${s.name}:${c.slotName}`));
  }

  /** The run lasts at least `ns` from now: the end moves out, with the sample of the NVMe load STALL_WINDOW_NS before it. */
  private settle(world: World, ns: number): void {
    const end = world.scheduler.now + ns;
    if (end <= this.endNs) return;
    this.endNs = end;
    world.scheduler.at(end - STALL_WINDOW_NS, () => {
      if (this.endNs === end) this.verifiedBefore = world.nvmeVerifiedBytes();
    });
    world.scheduler.at(end, () => {
      if (this.endNs === end && this.alive.size === 0) this.finish(world);
    });
  }

  /** The end: what did not come back, then the run stops. */
  private finish(world: World): void {
    this.account.push(`+${ms(world.scheduler.now - this.readyNs!)}: the run ends`);
    for (const check of this.checks) check();
    if (world.nvmeVerifiedBytes() === this.verifiedBefore) this.unrecovered.push(`the server's NVMe load verified nothing in the run's last ${ms(STALL_WINDOW_NS)}`);
    const now = new Set(this.slotsWithDevices(world));
    for (const slot of this.occupied) if (!now.has(slot)) this.unrecovered.push(`slot ${slot} held a device when the faults began and holds none at the end`);
    this.stop(world);
  }

  private stop(world: World): void {
    this.ended = true;
    world.scheduler.stop();
  }

  /** The cell's counts and reasons from the run's summary (cards not running at the end are not recovered either). */
  verdict(summary: RunSummary): Omit<CellResult, "family" | "index" | "seed" | "wallMs"> {
    const ready = this.readyNs ?? Infinity;
    const hotplug = summary.servers.flatMap((s) => s.hotplug.filter((h) => h.timeNs >= ready).map((h) => ({ slot: `${s.name}:${h.slot}`, change: h.change })));
    const unrecovered = [...this.unrecovered, ...summary.cards.filter((c) => c.state !== "running").map((c) => `card ${c.name} is ${c.state} at the end`)];
    const { counts, reasons } = judge({ summary, hotplug, occupied: this.occupied, disruptions: this.disruptions, unrecovered });
    return { counts, worstHold: summary.worstRequest, account: this.account, reasons };
  }
}

/** A cell's verdict for `iov sim --fault`: what the run did and its counts (its reasons are the exit status's). */
export function formatVerdict(name: string, seed: number, v: Pick<CellResult, "counts" | "account" | "reasons" | "worstHold">): string {
  const c = v.counts;
  return [
    `fault ${name}, seed ${seed}: ${v.reasons.length === 0 ? "every promise kept" : `${v.reasons.length} broken promise(s)`}`,
    ...v.account.map((line) => `  ${line}`),
    `  ${c.lost} lost, ${c.duplicated} duplicated, ${c.reordered} reordered, ${c.abortedByRemoval} aborted by removal, ${c.completionTimeouts} completion timeouts, ` +
      `${c.spuriousHotplug} spurious hot-plug events, ${c.dataErrors} data errors, ${c.traps} traps, ${c.unrecovered} unrecovered, ${c.invariants} invariants violated`,
    `  worst hold ${ms(c.worstHoldNs)} (budget ${ms(HOLD_BUDGET_NS)})${v.worstHold ? `: ${v.worstHold}` : ""}`,
  ].join("\n");
}

/** Runs cell `index` of `family` in this thread. A run that throws is a failed cell that says so, not the end of the matrix. */
export async function runCell(name: string, index: number, firmware: string = FIRMWARE): Promise<CellResult> {
  const started = performance.now();
  const seed = seedFor(name, index);
  const cell = new FaultCell(family(name), seed);
  try {
    const world = new World({ scenario: cell.scenario, seed, engine: "node", engineOptions: { firmware }, durationNs: Infinity, print: null });
    cell.attach(world);
    const summary = await world.run();
    return { family: name, index, seed, ...cell.verdict(summary), wallMs: performance.now() - started };
  } catch (error) {
    const counts = { ...row(name, []).counts, unrecovered: 1 };
    return { family: name, index, seed, counts, worstHold: "", account: [], reasons: [`the run threw: ${(error as Error).message}`], wallMs: performance.now() - started };
  }
}

/** A family's row of the matrix: its cells' counts added up, the longest hold of any of them, and the cells that failed. */
export interface FamilyRow {
  family: string;
  runs: number;
  counts: CellCounts;
  /** The cell with the longest hold, and that request. */
  worstHold: string;
  /** Mean wall-clock time of a run, ms. */
  wallMs: number;
  failed: CellResult[];
}

/** The columns that count broken promises: a non-zero total fails the matrix. */
export const BROKEN: (keyof CellCounts)[] = ["lost", "duplicated", "reordered", "completionTimeouts", "spuriousHotplug", "dataErrors", "traps", "unrecovered", "invariants"];

/** Adds up `cells` (of one family, or all of them: `name` is the row's). */
export function row(name: string, cells: CellResult[]): FamilyRow {
  const counts: CellCounts = { delivered: 0, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0, completionTimeouts: 0, spuriousHotplug: 0, dataErrors: 0, traps: 0, unrecovered: 0, invariants: 0, worstHoldNs: 0 };
  let worst: CellResult | null = null;
  for (const cell of cells) {
    for (const key of Object.keys(counts) as (keyof CellCounts)[]) if (key !== "worstHoldNs") counts[key] += cell.counts[key];
    if (worst === null || cell.counts.worstHoldNs > worst.counts.worstHoldNs) worst = cell;
  }
  counts.worstHoldNs = worst?.counts.worstHoldNs ?? 0;
  return {
    family: name, runs: cells.length, counts,
    worstHold: worst ? `${worst.family} seed ${worst.seed}: ${worst.worstHold}` : "",
    wallMs: cells.length ? cells.reduce((n, c) => n + c.wallMs, 0) / cells.length : 0,
    failed: cells.filter((c) => c.reasons.length > 0),
  };
}

/** The matrix of `cells`: one row per family, in the order they come, and the totals. */
export function matrix(cells: CellResult[]): { rows: FamilyRow[]; totals: FamilyRow } {
  const names = [...new Set(cells.map((c) => c.family))];
  return { rows: names.map((name) => row(name, cells.filter((c) => c.family === name))), totals: row("total", cells) };
}

/** Whether the matrix kept every promise: every broken-promise total zero, every hold within the budget. */
export function passed(totals: FamilyRow): boolean {
  return BROKEN.every((key) => totals.counts[key] === 0) && totals.counts.worstHoldNs <= HOLD_BUDGET_NS;
}

/** The table's columns, each a title and its cell for a row: the text table and the report's Markdown table both come from here. */
const COLUMNS: { title: string; cell: (r: FamilyRow) => string }[] = [
  { title: "family", cell: (r) => r.family },
  { title: "runs", cell: (r) => String(r.runs) },
  { title: "TLPs delivered", cell: (r) => String(r.counts.delivered) },
  { title: "lost", cell: (r) => String(r.counts.lost) },
  { title: "duplicated", cell: (r) => String(r.counts.duplicated) },
  { title: "reordered", cell: (r) => String(r.counts.reordered) },
  { title: "aborted by removal", cell: (r) => String(r.counts.abortedByRemoval) },
  { title: "completion timeouts", cell: (r) => String(r.counts.completionTimeouts) },
  { title: "spurious hot-plug", cell: (r) => String(r.counts.spuriousHotplug) },
  { title: "data errors", cell: (r) => String(r.counts.dataErrors) },
  { title: "traps", cell: (r) => String(r.counts.traps) },
  { title: "unrecovered", cell: (r) => String(r.counts.unrecovered) },
  { title: "invariants", cell: (r) => String(r.counts.invariants) },
  { title: "worst hold (ms)", cell: (r) => `${(r.counts.worstHoldNs / MS).toFixed(1)}${r.counts.worstHoldNs > HOLD_BUDGET_NS ? " !" : ""}` },
  { title: "wall s/run", cell: (r) => (r.wallMs / 1000).toFixed(2) },
];

function cells(m: { rows: FamilyRow[]; totals: FamilyRow }): string[][] {
  return [...m.rows, m.totals].map((r) => COLUMNS.map((c) => c.cell(r)));
}

/** The matrix as a text table, one row per family and the totals, for a terminal. */
export function formatMatrix(m: { rows: FamilyRow[]; totals: FamilyRow }): string {
  const body = cells(m);
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...body.map((r) => r[i].length)));
  const line = (values: string[]) => values.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join("  ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(COLUMNS.map((c) => c.title)), rule, ...body.slice(0, -1).map(line), rule, line(body[body.length - 1])].join("\n");
}

/** The same table in Markdown, for bench/report.md. */
export function matrixMarkdown(m: { rows: FamilyRow[]; totals: FamilyRow }): string {
  const body = cells(m);
  const row = (values: string[]) => `| ${values.join(" | ")} |`;
  return [
    row(COLUMNS.map((c) => c.title)),
    `|${COLUMNS.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...body.slice(0, -1).map((values) => row([`\`${values[0]}\``, ...values.slice(1)])),
    row(body[body.length - 1].map((v) => `**${v}**`)),
  ].join("\n");
}

/** One line per failing cell: its reasons and the command that replays it. */
export function formatFailures(m: { rows: FamilyRow[] }): string[] {
  return m.rows.flatMap((r) => r.failed.map((c) => `${c.family} #${c.index}: ${c.reasons.join("; ")}; replay: ${replayCommand(c.family, c.seed)}`));
}

/** The matrix as JSON: the budget, each family's totals and cells (each with its replay command), the totals, and whether it passed. */
export function matrixJson(m: { rows: FamilyRow[]; totals: FamilyRow }, all: CellResult[], seeds: number): object {
  return {
    holdBudgetNs: HOLD_BUDGET_NS,
    seedsPerFamily: seeds,
    passed: passed(m.totals),
    families: m.rows.map((r) => ({
      family: r.family,
      injects: FAMILIES.find((f) => f.name === r.family)?.injects,
      allows: FAMILIES.find((f) => f.name === r.family)?.allows,
      runs: r.runs, counts: r.counts, worstHold: r.worstHold, wallMs: r.wallMs,
      cells: all.filter((c) => c.family === r.family).map((c) => ({ ...c, replay: replayCommand(c.family, c.seed) })),
    })),
    totals: { runs: m.totals.runs, counts: m.totals.counts, worstHold: m.totals.worstHold, wallMs: m.totals.wallMs },
  };
}

export interface MatrixOptions {
  families: string[];
  seeds: number;
  /** Worker threads; 1 runs every cell in this thread. The results do not depend on it. */
  jobs: number;
  firmware?: string;
  /** Told as each cell finishes. */
  onCell?: (done: number, total: number, cell: CellResult) => void;
}

/** Every cell of `families` × `seeds`, on `jobs` worker threads; the results in matrix order whatever order they finished in. */
export async function runMatrix(o: MatrixOptions): Promise<CellResult[]> {
  const tasks = o.families.flatMap((name) => Array.from({ length: o.seeds }, (_, index) => ({ name, index })));
  const results: CellResult[] = new Array(tasks.length);
  const firmware = o.firmware ?? FIRMWARE;
  let done = 0;
  const finished = (i: number, result: CellResult) => {
    results[i] = result;
    o.onCell?.(++done, tasks.length, result);
  };
  if (o.jobs <= 1) {
    for (const [i, { name, index }] of tasks.entries()) finished(i, await runCell(name, index, firmware));
    return results;
  }
  let next = 0;
  const work = (worker: Worker) => new Promise<void>((resolve, reject) => {
    const give = () => {
      if (next >= tasks.length) return resolve();
      const i = next++;
      worker.postMessage({ i, ...tasks[i] });
    };
    worker.on("message", (message: { i: number; result: CellResult }) => {
      finished(message.i, message.result);
      give();
    });
    worker.on("error", reject);
    worker.on("exit", (code) => reject(new Error(`a fault matrix worker exited with code ${code} before the matrix was done`)));
    give();
  });
  const workers = Array.from({ length: Math.min(o.jobs, tasks.length) }, () => new Worker(new URL("./fault-worker.mjs", import.meta.url), { workerData: { firmware } }));
  try {
    await Promise.all(workers.map(work));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}

/** The number of workers `iov faults` uses when not told: one per CPU. */
export function defaultJobs(): number {
  return availableParallelism();
}

/** A worker thread's loop (tools/sim/fault-worker.mjs): runs each cell it is given and answers with its result. */
export function serveCells(): void {
  const port = parentPort!;
  const { firmware } = workerData as { firmware: string };
  port.on("message", async (task: { i: number; name: string; index: number }) => {
    port.postMessage({ i: task.i, result: await runCell(task.name, task.index, firmware) });
  });
}
