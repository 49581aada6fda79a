// `iov console`: the terminal joined to the card's console line. On a terminal, keys go to
// the card as they are typed (raw mode, so Ctrl-C reaches the card) until Ctrl-] quits.
// With stdin from a pipe or a file it sends that, prints the card's answers until stdin
// ends and `--linger` milliseconds more, then exits: `printf 'status\r' | iov console …`.

import { setTimeout as sleep } from "node:timers/promises";
import { openPort, PortError, type ConsolePort } from "../console/port.ts";
import { CliError } from "./args.ts";

export interface ConsoleFlags {
  port: string;
  baud: number;
  /** Milliseconds to keep printing after piped stdin ends. */
  linger: number;
}

/** Ctrl-]: what telnet uses to leave a session; the card never needs it. */
const QUIT = 0x1d;

export async function runConsole(flags: ConsoleFlags): Promise<void> {
  const port = await openPort(flags.port, { baud: flags.baud }).catch((error) => {
    throw error instanceof PortError ? new CliError(error.message) : error;
  });
  port.onData((bytes) => process.stdout.write(bytes));
  const closed = new Promise<Error>((resolve) => {
    port.onClose((error) => resolve(new CliError(error ? error.message : `${port.name}: the line was closed by the other end`)));
  });
  const stop = new AbortController();
  const done = process.stdin.isTTY ? interactive(port) : piped(port, flags.linger, stop.signal);
  const outcome = await Promise.race([done.then(() => null, (error: Error) => new CliError(error.message)), closed]);
  stop.abort();
  await port.close();
  if (outcome) throw outcome;
}

/** Raw keys to the card until Ctrl-], stdin's end, or a signal; the terminal's mode is restored in every case. */
async function interactive(port: ConsolePort): Promise<void> {
  const stdin = process.stdin;
  stdin.setRawMode(true);
  const restore = () => stdin.setRawMode(false);
  process.once("exit", restore);
  process.stderr.write(`connected to ${port.name}; press Ctrl-] to quit\r\n`);
  let stop = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      stop = resolve;
      process.once("SIGTERM", stop);
      process.once("SIGHUP", stop);
      stdin.on("end", stop);
      port.onClose(stop);
      stdin.on("data", (chunk: Buffer) => {
        const quit = chunk.indexOf(QUIT);
        const keys = quit < 0 ? chunk : chunk.subarray(0, quit);
        if (keys.length > 0) port.write(new Uint8Array(keys)).catch(reject);
        if (quit >= 0) resolve();
      });
    });
  } finally {
    restore();
    process.removeListener("exit", restore);
    process.removeListener("SIGTERM", stop);
    process.removeListener("SIGHUP", stop);
    stdin.pause();
    process.stderr.write("\r\n");
  }
}

/** stdin to the card, then `linger` ms more of the card's output; `signal` ends it early. */
async function piped(port: ConsolePort, linger: number, signal: AbortSignal): Promise<void> {
  signal.addEventListener("abort", () => process.stdin.destroy(), { once: true });
  for await (const chunk of process.stdin) await port.write(new Uint8Array(chunk as Buffer));
  await sleep(linger, undefined, { signal });
}
