// One simulated card (no link, no server) with its console scripted in virtual time:
// lines typed at given times, everything the card sends collected, and an XMODEM sender
// (tools/console/xmodem.ts) on the same line for updates. The sender is asynchronous code;
// after each piece the card transmits, the simulation pauses at that instant until the
// sender has answered, so the run stays a function of its script and seed.

import { World } from "../../../tools/sim/world.ts";
import { CardRole, LogLevel } from "../../../board/map/mailbox.ts";
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
}

export interface ConsoleScript {
  durationNs: number;
  seed?: number;
  /** Lines typed (CR appended) at these times. */
  lines?: { atNs: number; text: string }[];
  /** Type `update` at this time and send `image` with XMODEM. */
  update?: { atNs: number; image: Uint8Array };
  actions?: Omit<CardAction, "card">[];
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
  card.uart.line = (bytes) => {
    text += decoder.decode(bytes);
    for (const listener of listeners) listener(bytes);
    // Let the far end (the sender's promise chain) answer at this same virtual instant.
    if (listeners.length) world.scheduler.at(world.scheduler.now, () => new Promise((resolve) => setImmediate(resolve)));
  };
  const run: ConsoleRun = { world, card, output: () => text, transfer: {} };
  const abort = new AbortController();
  const type = (s: string) => card.uart.receive(new TextEncoder().encode(s));
  for (const { atNs, text: line } of script.lines ?? []) world.scheduler.at(atNs, () => type(line + "\r"));
  if (script.update) {
    const { image } = script.update;
    world.scheduler.at(script.update.atNs, () => {
      type("update\r");
      sendXmodem({ write: async (bytes) => card.uart.receive(bytes), onData: (cb) => listeners.push(cb) }, image, { signal: abort.signal })
        .then((result) => (run.transfer.result = result), (error: Error) => (run.transfer.error = error));
    });
  }
  world.stopHooks.push(() => {
    script.atEnd?.(run);
    abort.abort();
  });
  await world.run();
  return run;
}
