// XMODEM sender, as the XMODEM/YMODEM protocol reference (Chuck Forsberg, 1988) describes
// it: the receiver asks with 'C' (CRC-16) or NAK (8-bit checksum); the sender answers with
// numbered blocks, 1024 bytes (STX) in CRC mode and 128 bytes (SOH) for a short tail or in
// checksum mode, padded with 0x1A; each block is sent again after a NAK or a timeout, and
// the transfer ends with EOT. Two CAN in a row from the receiver cancel it.

export const SOH = 0x01;
export const STX = 0x02;
export const EOT = 0x04;
export const ACK = 0x06;
export const NAK = 0x15;
export const CAN = 0x18;
/** 'C': the receiver asks for CRC-16 mode. */
export const CRC_REQUEST = 0x43;
/** Fills the last block after the data (CP/M's end-of-file, Ctrl-Z). */
export const PAD = 0x1a;

/** Sends of one block (or of EOT) before the sender gives up. */
export const MAX_TRIES = 10;

/** What the sender needs of a line: a console port, a child's pipes, a test's script. */
export interface XmodemLine {
  write(bytes: Uint8Array): Promise<void>;
  onData(cb: (bytes: Uint8Array) => void): void;
}

export interface XmodemOptions {
  /** After each acknowledged block: data bytes delivered so far, of `total`. */
  onProgress?(sent: number, total: number): void;
  /** How long to wait for the answer to a block or to EOT before sending it again (default 10 s). */
  timeoutMs?: number;
  /** How long to wait for the receiver's first 'C' or NAK (default 60 s). */
  startTimeoutMs?: number;
  /** Aborts the transfer: the receiver is told with CAN CAN. */
  signal?: AbortSignal;
}

export interface XmodemResult {
  mode: "crc" | "checksum";
  /** Blocks acknowledged. */
  blocks: number;
  /** Blocks and EOTs sent again after a NAK or a timeout (not the second EOT a receiver asks for by NAKing the first). */
  retries: number;
  /** Data bytes delivered, without the padding. */
  bytes: number;
  /** What the receiver sent after acknowledging EOT (a console's next lines). */
  trailing: Uint8Array;
}

/** A transfer that failed; `trailing` holds what the receiver sent after the point of failure. */
export class XmodemError extends Error {
  constructor(message: string, readonly trailing: Uint8Array = new Uint8Array(0)) {
    super(message);
  }
}

/** CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection ("123456789" gives 0x31c3). */
export function crc16xmodem(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The 8-bit arithmetic sum of the bytes (checksum mode). */
export function checksum8(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum += b;
  return sum & 0xff;
}

/** Block `number` (taken mod 256) carrying `data` padded to `size` bytes, with its check value. */
export function makeBlock(number: number, data: Uint8Array, size: 128 | 1024, mode: "crc" | "checksum"): Uint8Array {
  const block = new Uint8Array(3 + size + (mode === "crc" ? 2 : 1));
  block[0] = size === 1024 ? STX : SOH;
  block[1] = number & 0xff;
  block[2] = 0xff - (number & 0xff);
  const body = block.subarray(3, 3 + size);
  body.fill(PAD);
  body.set(data);
  if (mode === "crc") {
    const crc = crc16xmodem(body);
    block[3 + size] = crc >> 8;
    block[4 + size] = crc & 0xff;
  } else {
    block[3 + size] = checksum8(body);
  }
  return block;
}

/** Bytes from the line, one at a time, each with a deadline. */
class Inbox {
  private readonly bytes: number[] = [];
  private waiter: ((b: number | null) => void) | null = null;
  private timer: NodeJS.Timeout | undefined;
  closed = false;

  push(chunk: Uint8Array): void {
    if (this.closed) return;
    for (const b of chunk) this.bytes.push(b);
    this.wake();
  }

  /** The next byte, or null when `ms` pass first or the transfer was aborted. */
  next(ms: number, signal?: AbortSignal): Promise<number | null> {
    if (this.bytes.length > 0) return Promise.resolve(this.bytes.shift()!);
    if (signal?.aborted) return Promise.resolve(null);
    return new Promise((resolve) => {
      const onAbort = () => this.settle(null);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiter = (b) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(b);
      };
      this.timer = setTimeout(() => this.settle(null), ms);
    });
  }

  /** Drops what has arrived and not been read (stale answers before a resend). */
  clear(): void {
    this.bytes.length = 0;
  }

  /** Stops listening; returns what arrived and was not read. */
  close(): Uint8Array {
    this.closed = true;
    return Uint8Array.from(this.bytes.splice(0));
  }

  private wake(): void {
    if (this.waiter && this.bytes.length > 0) this.settle(this.bytes.shift()!);
  }

  private settle(b: number | null): void {
    const waiter = this.waiter;
    if (!waiter) return;
    this.waiter = null;
    clearTimeout(this.timer);
    waiter(b);
  }
}

type Answer = "ack" | "nak" | "cancel" | "timeout" | "abort";

/**
 * Sends `data` to an XMODEM receiver on `line`: waits for its 'C' or NAK (anything else
 * before it, console text for one, is ignored), sends the blocks and EOT. Rejects with an
 * XmodemError when the receiver cancels, a block or EOT goes unacknowledged MAX_TRIES
 * times (the receiver is then sent CAN CAN), nothing asks for the data in time, or
 * `signal` aborts.
 */
export async function sendXmodem(line: XmodemLine, data: Uint8Array, o: XmodemOptions = {}): Promise<XmodemResult> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const inbox = new Inbox();
  line.onData((chunk) => inbox.push(chunk));
  const fail = (message: string): never => {
    throw new XmodemError(message, inbox.close());
  };
  const cancel = async (message: string): Promise<never> => {
    await line.write(Uint8Array.of(CAN, CAN)).catch(() => {}); // a line that is gone needs no cancel
    return fail(message);
  };

  const mode = await waitForStart(inbox, o.startTimeoutMs ?? 60_000, o.signal);
  if (mode === "abort") return cancel("transfer aborted");
  if (mode === "cancel") return fail("the receiver cancelled before the transfer began");
  if (mode === "timeout") return fail(`no receiver: nothing asked for the data (no 'C' or NAK) within ${formatMs(o.startTimeoutMs ?? 60_000)}`);
  inbox.clear(); // further requests queued while the sender was not listening would read as NAKs

  let retries = 0;
  let blocks = 0;
  let offset = 0;
  const send = async (packet: Uint8Array, what: string, first: boolean): Promise<void> => {
    for (let tries = 1; ; tries++) {
      await line.write(packet);
      const answer = await waitForAnswer(inbox, timeoutMs, o.signal, first ? CRC_REQUEST : -1);
      if (answer === "ack") return;
      if (answer === "abort") await cancel("transfer aborted");
      if (answer === "cancel") fail(`the receiver cancelled the transfer at ${what}`);
      if (tries === MAX_TRIES) await cancel(`${what} was not acknowledged after ${MAX_TRIES} tries (last: ${answer === "nak" ? "NAK" : "no answer"})`);
      // Receivers NAK the first EOT on purpose (a lone EOT could be line noise): not a retry.
      if (!(packet[0] === EOT && answer === "nak" && tries === 1)) retries++;
      inbox.clear();
    }
  };

  while (offset < data.length) {
    const size = mode === "crc" && data.length - offset > 128 ? 1024 : 128;
    const chunk = data.subarray(offset, offset + size);
    const number = blocks + 1;
    await send(makeBlock(number, chunk, size, mode), `block ${number}`, blocks === 0);
    blocks++;
    offset += chunk.length;
    o.onProgress?.(offset, data.length);
  }
  await send(Uint8Array.of(EOT), "EOT", false);
  return { mode, blocks, retries, bytes: data.length, trailing: inbox.close() };
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** The receiver's first 'C' (CRC mode) or NAK (checksum mode). */
function waitForStart(inbox: Inbox, ms: number, signal: AbortSignal | undefined): Promise<"crc" | "checksum" | "cancel" | "timeout" | "abort"> {
  return waitFor(inbox, ms, signal, (b) => (b === CRC_REQUEST ? "crc" : b === NAK ? "checksum" : null));
}

/**
 * The receiver's answer to what was just sent: ACK, NAK, two CAN in a row, or silence for
 * `ms`. `alsoNak` ('C' for the first block) counts as NAK: a receiver that missed the
 * first block asks again. Other bytes are line noise and are skipped.
 */
function waitForAnswer(inbox: Inbox, ms: number, signal: AbortSignal | undefined, alsoNak: number): Promise<Answer> {
  return waitFor(inbox, ms, signal, (b) => (b === ACK ? "ack" : b === NAK || b === alsoNak ? "nak" : null));
}

/** Reads bytes until `meaning` names one, two CAN come in a row, `ms` pass, or `signal` aborts. */
async function waitFor<T>(inbox: Inbox, ms: number, signal: AbortSignal | undefined, meaning: (b: number) => T | null): Promise<T | "cancel" | "timeout" | "abort"> {
  const deadline = Date.now() + ms;
  let cans = 0;
  for (;;) {
    const b = await inbox.next(Math.max(0, deadline - Date.now()), signal);
    if (signal?.aborted) return "abort";
    if (b === null) return "timeout";
    const meant = meaning(b);
    if (meant !== null) return meant;
    cans = b === CAN ? cans + 1 : 0;
    if (cans === 2) return "cancel";
  }
}
