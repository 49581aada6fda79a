// `iov flash`: writes a firmware image to a card through its console line. It checks the
// image, gets the console's prompt, starts `update`, sends the image with XMODEM, and
// follows what the card prints (its checks, the boot ROM's trial boot, the new firmware's
// confirmation) until the update is confirmed or fails. docs/console.md describes the lines.

import { readFileSync } from "node:fs";
import { formatVersion, inspectImage, isDefect, type ImageInfo } from "../../board/image.ts";
import { openPort, parsePortSpec, PortError } from "../console/port.ts";
import { ConsoleSession, type ConsoleEvent } from "../console/session.ts";
import { sendXmodem, XmodemError, type XmodemResult } from "../console/xmodem.ts";
import { CliError } from "./args.ts";
import { Progress } from "./progress.ts";

export interface FlashFlags {
  port: string;
  baud: number;
  /** Seconds for the whole update, from the prompt to the confirmation. */
  timeout: number;
  quiet?: boolean;
}

const CTRL_C = 0x03;
const PROMPT_WAIT_MS = 5000;
/** After the card cancels a transfer, how long to wait for its reason. */
const REASON_WAIT_MS = 3000;
const READY = /^update: ready for xmodem\b/i;

/** What the update waits for: a line, the prompt, or the time running out (closing and Ctrl-C end it). */
type Heard = Exclude<ConsoleEvent, { kind: "closed" } | { kind: "aborted" }>;

/** A failure reported by the card or the line, shown as `iov: flash failed: …`. */
class FlashFailed extends Error {}

export async function runFlash(file: string, flags: FlashFlags): Promise<void> {
  try {
    parsePortSpec(flags.port, flags.baud);
  } catch (error) {
    throw portProblem(error);
  }
  const image = readImage(file);
  const checked = inspectImage(image);
  if (isDefect(checked)) throw new CliError(`${file}: ${checked.reason}`);
  const port = await openPort(flags.port, { baud: flags.baud }).catch((error) => {
    throw portProblem(error);
  });
  const show = flags.quiet ? () => {} : (line: string) => process.stdout.write(`card: ${line}\n`);
  const session = new ConsoleSession(port, show);
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once("SIGINT", onSigint);
  const started = Date.now();
  try {
    const { slot, reported } = await update(session, image, checked.info, flags, interrupt.signal);
    const version = formatVersion(checked.info.version);
    process.stdout.write(`flashed ${file} (${version} build ${hex(checked.info.buildId)}) to ${port.name}: ` +
      `confirmed in slot ${slot} after ${((Date.now() - started) / 1000).toFixed(1)} s` +
      `${reported === version ? "" : ` (but the card confirmed ${reported})`}\n`);
  } catch (error) {
    if (error instanceof FlashFailed) throw new CliError(`flash failed: ${error.message}`);
    throw error;
  } finally {
    process.removeListener("SIGINT", onSigint);
    await port.close();
  }
}

function readImage(file: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CliError(`cannot read image '${file}': no such file`);
    if (code === "EISDIR") throw new CliError(`cannot read image '${file}': it is a directory`);
    throw new CliError(`cannot read image '${file}': ${code ?? (error as Error).message}`);
  }
}

function portProblem(error: unknown): Error {
  return error instanceof PortError ? new CliError(error.message) : (error as Error);
}

/** The whole update; returns the slot the image was confirmed in and the version the card confirmed. */
async function update(session: ConsoleSession, image: Uint8Array, info: ImageInfo, flags: FlashFlags, signal: AbortSignal): Promise<{ slot: number; reported: string }> {
  const port = session.port;
  const deadline = Date.now() + flags.timeout * 1000;
  const next = async (until: number): Promise<Heard> => {
    const event = await session.next(until, signal);
    if (event.kind === "aborted") throw new FlashFailed("interrupted");
    if (event.kind === "closed") throw new FlashFailed(`${port.name}: the line closed${event.error ? ` (${event.error.message})` : ""}${lastWords(session)}`);
    return event;
  };

  const send = (data: string | Uint8Array) => session.send(data).catch((error: Error) => {
    throw new FlashFailed(error.message);
  });
  await send(Uint8Array.of(CTRL_C, 0x0d));
  const promptBy = Date.now() + PROMPT_WAIT_MS;
  for (let event = await next(promptBy); event.kind !== "prompt"; event = await next(promptBy)) {
    if (event.kind === "timeout") throw new CliError(`no console prompt on ${port.name} within 5 s (is the card on? is the baud rate right?)`);
  }

  session.handOverAfter(READY);
  await send("update\r");
  let slot = await untilReady(next, session, deadline, flags.timeout);
  const result = await transfer(session, image, flags, signal, next);
  const version = formatVersion(info.version);
  let checkedOut = false;
  let rebooted = false;
  for (;;) {
    const event = await next(deadline);
    if (event.kind === "timeout") throw new FlashFailed(`no confirmation from the card within ${flags.timeout} s${lastWords(session)}`);
    if (event.kind === "prompt") {
      if (!checkedOut) throw new FlashFailed(`the card took ${result.bytes} bytes but did not start the new image${lastWords(session)}`);
      continue;
    }
    const text = event.text;
    let match: RegExpExecArray | null;
    if ((match = /^update: (refused|cancelled): (.*)$/.exec(text))) {
      throw new FlashFailed(match[1] === "refused" ? `the card refused the image: ${match[2]}` : `the update was cancelled: ${match[2]}`);
    } else if ((match = /^update: image (\S+) build ([0-9a-f]+) checks out\b/.exec(text))) {
      if (match[1] !== version || match[2] !== hex(info.buildId)) {
        throw new FlashFailed(`the card checked image ${match[1]} build ${match[2]}, not the one sent (${version} build ${hex(info.buildId)})`);
      }
      checkedOut = true;
    } else if ((match = /^boot: slot (\d+): (refused|rolled back): (.*)$/.exec(text))) {
      throw new FlashFailed(`the boot ROM ${match[2]} slot ${match[1]}: ${match[3]}`);
    } else if (/^boot: no bootable image/.test(text)) {
      throw new FlashFailed("the boot ROM found no bootable image; the card is halted");
    } else if ((match = /^boot: starting slot (\d+) \(([^)]*)\)( on trial)?$/.exec(text)) && checkedOut) {
      if (!match[3]) throw new FlashFailed(`the card started slot ${match[1]} (${match[2]}) instead of the new image`);
      slot = Number(match[1]);
      rebooted = true;
    } else if ((match = /^update: image (\S+) confirmed$/.exec(text)) && rebooted) {
      return { slot, reported: match[1] };
    }
  }
}

/** From `update` to the card's ready line; returns the slot it erased. */
async function untilReady(next: (until: number) => Promise<Heard>, session: ConsoleSession, deadline: number, timeout: number): Promise<number> {
  let echoed = false;
  let slot = -1;
  for (;;) {
    const event = await next(deadline);
    if (event.kind === "timeout") throw new FlashFailed(`the card did not get ready for the transfer within ${timeout} s${lastWords(session)}`);
    if (event.kind === "prompt") {
      if (echoed) throw new FlashFailed(`the card did not start the update${lastWords(session)}`);
      continue;
    }
    const text = event.text;
    const erasing = /^update: erasing slot (\d+)\b/.exec(text);
    if (erasing) slot = Number(erasing[1]);
    else if (READY.test(text)) return slot;
    else if (text.startsWith("update: ")) throw new FlashFailed(text.slice("update: ".length));
    else if (/^iov> .*update$/.test(text)) echoed = true;
  }
}

/** XMODEM with a progress bar; when the card cancels, its reason. */
async function transfer(session: ConsoleSession, image: Uint8Array, flags: FlashFlags, signal: AbortSignal,
  next: (until: number) => Promise<Heard>): Promise<XmodemResult> {
  const progress = flags.quiet ? null : new Progress(image.length, { label: "sending" });
  const lineGone = new AbortController();
  session.port.onClose(() => lineGone.abort());
  try {
    const result = await sendXmodem(session.xmodemLine(), image, {
      signal: AbortSignal.any([signal, lineGone.signal]),
      onProgress: (sent) => progress?.update(sent),
    });
    const resent = result.retries ? `, ${result.retries} sent again` : "";
    progress?.done(`${result.blocks} XMODEM blocks (${result.mode === "crc" ? "CRC-16" : "checksum"})${resent}`);
    session.takeBack(result.trailing);
    return result;
  } catch (error) {
    progress?.done("stopped");
    if (!(error instanceof XmodemError)) throw new FlashFailed((error as Error).message);
    session.takeBack(error.trailing);
    if (signal.aborted) throw new FlashFailed("interrupted; the card was told to cancel the transfer");
    if (lineGone.signal.aborted) throw new FlashFailed(`${session.port.name}: the line closed during the transfer`);
    const until = Date.now() + REASON_WAIT_MS;
    for (let event = await next(until); event.kind === "line"; event = await next(until)) {
      const cancelled = /^update: (cancelled|refused): (.*)$/.exec(event.text);
      if (cancelled) throw new FlashFailed(`the card ${cancelled[1]} the transfer: ${cancelled[2]}`);
    }
    throw new FlashFailed(`XMODEM transfer failed: ${error.message}`);
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex");

function lastWords(session: ConsoleSession): string {
  return session.lastLine ? ` (last line from the card: "${session.lastLine}")` : "";
}
