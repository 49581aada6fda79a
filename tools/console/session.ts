// A conversation with the card's console, for tools that drive it: what the card prints
// arrives as events (a line, the prompt, the line closing) to wait for one at a time, and
// for a file transfer the line can be handed over, byte for byte, to XMODEM and taken back.

import { ConsoleLines, PROMPT } from "./lines.ts";
import type { ConsolePort } from "./port.ts";
import type { XmodemLine } from "./xmodem.ts";

export type ConsoleEvent =
  | { kind: "line"; text: string }
  | { kind: "prompt" }
  | { kind: "closed"; error?: Error }
  | { kind: "timeout" }
  | { kind: "aborted" };

export class ConsoleSession {
  private readonly events: ConsoleEvent[] = [];
  private waiter: ((event: ConsoleEvent) => void) | null = null;
  private readonly lines: ConsoleLines;
  private promptSeen = false;
  private handOverPattern: RegExp | null = null;
  private raw: Uint8Array[] | null = null;
  private rawSink: ((bytes: Uint8Array) => void) | null = null;
  /** The last non-empty line the card printed. */
  lastLine = "";

  /** `onLine` sees every line as it comes (to show it), before it is queued. */
  constructor(readonly port: ConsolePort, private readonly onLine: (line: string) => void = () => {}) {
    this.lines = new ConsoleLines((line) => this.line(line));
    port.onData((bytes) => this.receive(bytes));
    port.onClose((error) => this.queue({ kind: "closed", error }));
  }

  /** Sends text (ASCII) or bytes to the card. */
  send(data: string | Uint8Array): Promise<void> {
    return this.port.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /**
   * The next event; `timeout` when nothing comes before `deadline` (a Date.now() value),
   * `aborted` when `signal` fires first.
   */
  next(deadline: number, signal?: AbortSignal): Promise<ConsoleEvent> {
    if (signal?.aborted) return Promise.resolve({ kind: "aborted" });
    if (this.events.length > 0) return Promise.resolve(this.events.shift()!);
    return new Promise((resolve) => {
      const done = (event: ConsoleEvent) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.waiter = null;
        resolve(event);
      };
      const onAbort = () => done({ kind: "aborted" });
      const timer = setTimeout(() => done({ kind: "timeout" }), Math.max(0, deadline - Date.now()));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiter = done;
    });
  }

  /**
   * From the end of the first line matching `pattern` on, the card's bytes are no longer
   * read as text: they wait for xmodemLine()'s reader. Set it before the card can print
   * that line.
   */
  handOverAfter(pattern: RegExp): void {
    this.handOverPattern = pattern;
  }

  /** The line for an XMODEM transfer, once handOverAfter's line has come. */
  xmodemLine(): XmodemLine {
    return {
      write: (bytes) => this.port.write(bytes),
      onData: (cb) => {
        this.rawSink = cb;
        for (const chunk of this.raw?.splice(0) ?? []) cb(chunk);
      },
    };
  }

  /** After the transfer: `trailing` (what the transfer did not consume) and all that follows is text again. */
  takeBack(trailing: Uint8Array): void {
    this.raw = null;
    this.rawSink = null;
    this.receive(trailing);
  }

  private receive(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) {
      if (this.raw) {
        const rest = bytes.slice(i);
        if (this.rawSink) this.rawSink(rest);
        else this.raw.push(rest);
        return;
      }
      this.lines.feed(bytes[i]);
      const atPrompt = this.lines.partial === PROMPT;
      if (atPrompt && !this.promptSeen) this.queue({ kind: "prompt" });
      this.promptSeen = atPrompt;
    }
  }

  private line(text: string): void {
    this.promptSeen = false;
    if (text !== "") {
      this.lastLine = text;
      this.onLine(text);
    }
    this.queue({ kind: "line", text });
    if (this.handOverPattern?.test(text)) {
      this.handOverPattern = null;
      this.raw = [];
    }
  }

  private queue(event: ConsoleEvent): void {
    if (this.waiter) this.waiter(event);
    else this.events.push(event);
  }
}
