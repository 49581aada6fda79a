// One simulated card (no link, no server) with its console scripted in virtual time:
// lines typed at given times after the console's first prompt, everything the card sends
// collected, and an XMODEM sender (tools/console/xmodem.ts) on the same line for updates. The
// sender is asynchronous code; after each piece the card transmits, the simulation pauses at
// that instant until the sender has answered, so the run stays a function of its script and seed.
//
// The script waits for the console rather than for a fixed time: at the soft-cores' 100 MHz the
// card loads its module and runs its boot batch before it prints its banner and prompt (about
// 50 ms after power-on), and what the firmware does depends on the clock.

import { World } from "../../../tools/sim/world.ts";
import { CardRole, LogLevel, ResetCause } from "../../../board/map/mailbox.ts";
import { DEFAULT_LINK, type CardAction, type Scenario } from "../../../tools/sim/scenarios.ts";
import { sendXmodem, type XmodemResult } from "../../../tools/console/xmodem.ts";
import type { Card } from "../../../board/card.ts";
import { FIRMWARE, WASM3 } from "../helpers.ts";
import type { EngineKind } from "../../../tools/engines/index.ts";

export const MS = 1_000_000;

export interface ConsoleRun {
  world: World;
  card: Card;
  /** Everything the card sent on its UART, as text. */
  output(): string;
  /** The XMODEM transfer's outcome, once one was started and ended. */
  transfer: { result?: XmodemResult; error?: Error };
  /** When the console's first prompt was out (its last character sent), and when `update` was typed. */
  promptNs: number | null;
  updateNs: number | null;
}

export interface ConsoleScript {
  /** The run's length; with endAfterUpdateNs, the most it may take. */
  durationNs: number;
  seed?: number;
  /** Lines typed (CR appended), each `afterNs` after the console's first prompt is out. */
  lines?: { afterNs: number; text: string }[];
  /** Type `update` as soon as the console's first prompt is out, and send `image` with XMODEM. */
  update?: { image: Uint8Array };
  /** Scenario actions, at their atNs. */
  actions?: Omit<CardAction, "card">[];
  /** With `update`: power cuts and power-ons this long after `update` was typed. */
  afterUpdate?: { kind: "power-cut" | "power-on"; afterNs: number }[];
  /** With `update`: the run ends this long after `update` was typed. */
  endAfterUpdateNs?: number;
  flashDir?: string;
  engine?: EngineKind;
  /** Runs before the cards are powered off, with the world still live. */
  atEnd?: (run: ConsoleRun) => void;
}

export function singleCardScenario(durationNs: number, actions: Omit<CardAction, "card">[] = []): Scenario {
  return {
    name: "console", description: "one card, no link", durationNs, logLevel: LogLevel.Info,
    cards: [{ name: "card", role: CardRole.Host, serial: 0x1000_0001, slots: 1, powerOnNs: 0, link: null }],
    cables: [], link: DEFAULT_LINK, traffic: [], devices: [], servers: [],
    actions: actions.map((a) => ({ ...a, card: "card" })),
  };
}

export async function runConsole(script: ConsoleScript): Promise<ConsoleRun> {
  const world = new World({
    scenario: singleCardScenario(script.durationNs, script.actions), seed: script.seed ?? 1, engine: script.engine ?? "node",
    engineOptions: { firmware: FIRMWARE, wasm3: WASM3 }, flashDir: script.flashDir,
  });
  const card = world.cards[0];
  const decoder = new TextDecoder("latin1");
  let text = "";
  const listeners: ((bytes: Uint8Array) => void)[] = [];
  const run: ConsoleRun = { world, card, output: () => text, transfer: {}, promptNs: null, updateNs: null };
  const abort = new AbortController();
  const type = (s: string) => card.uart.receive(new TextEncoder().encode(s));
  const { scheduler } = world;
  /** What the script does once the console's first prompt is out. */
  const atPrompt = (): void => {
    for (const { afterNs, text: line } of script.lines ?? []) scheduler.at(scheduler.now + afterNs, () => type(line + "\r"));
    if (!script.update) return;
    const { image } = script.update;
    run.updateNs = scheduler.now;
    type("update\r");
    sendXmodem({ write: async (bytes) => card.uart.receive(bytes), onData: (cb) => listeners.push(cb) }, image, { signal: abort.signal })
      .then((result) => (run.transfer.result = result), (error: Error) => (run.transfer.error = error));
    for (const { kind, afterNs } of script.afterUpdate ?? []) {
      scheduler.at(scheduler.now + afterNs, () => (kind === "power-cut" ? card.powerCut() : card.powerOn(ResetCause.PowerOn)));
    }
    if (script.endAfterUpdateNs !== undefined) scheduler.at(scheduler.now + script.endAfterUpdateNs, () => scheduler.stop());
  };
  card.uart.line = (bytes) => {
    text += decoder.decode(bytes);
    for (const listener of listeners) listener(bytes);
    // Let the far end (the sender's promise chain) answer at this same virtual instant.
    if (listeners.length) scheduler.at(scheduler.now, () => new Promise((resolve) => setImmediate(resolve)));
    if (run.promptNs === null && text.endsWith("iov> ")) {
      run.promptNs = scheduler.now;
      scheduler.at(scheduler.now, atPrompt);
    }
  };
  world.stopHooks.push(() => {
    script.atEnd?.(run);
    abort.abort();
  });
  await world.run();
  return run;
}
