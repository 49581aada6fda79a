// The card's UART (8N1): the console line. Both directions run at the line's pace, one
// character every 10 bit times.
//
// Receive: characters from the line fill a FIFO; the firmware gets them as UART_RX when
// RX_THRESHOLD have arrived or, for a shorter tail, after RX_TIMEOUT_CHARS character
// times of silence (a 16550-style receive timeout). While the soft-core is not running
// (reset, halted) received characters are dropped and counted.
// Transmit: what the firmware (or the boot ROM) writes is queued and leaves at the baud
// rate; the line side sees it in pieces of at most TX_PIECE characters, each when its last
// character has gone out. Past TX_QUEUE_MAX queued characters, more are dropped and counted.

import type { Scheduler } from "./scheduler.ts";

export const DEFAULT_BAUD = 115_200;
export const RX_THRESHOLD = 16;
export const RX_TIMEOUT_CHARS = 4;
export const TX_PIECE = 16;
export const TX_QUEUE_MAX = 16 * 1024;

export interface UartStats {
  rxBytes: number;
  txBytes: number;
  /** Characters that arrived while nothing was reading them. */
  rxDropped: number;
  /** Characters refused because the transmit queue was full. */
  txDropped: number;
}

export class Uart {
  readonly stats: UartStats = { rxBytes: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
  /** Where received characters go; null while the soft-core is not running. */
  receiver: ((bytes: Uint8Array) => void) | null = null;
  /** The line's far end: a terminal, a socket, a test. */
  line: ((bytes: Uint8Array) => void) | null = null;
  readonly charNs: number;
  private rxQueue: number[] = [];
  private rxFifo: number[] = [];
  private rxBusyUntil = 0;
  private rxTimer: number | null = null;
  private rxClock: number | null = null;
  private txQueue: number[] = [];
  private txClock: number | null = null;

  constructor(private readonly scheduler: Scheduler, readonly baud = DEFAULT_BAUD) {
    this.charNs = Math.round(10e9 / baud);
  }

  /** Characters arriving from the line's far end. */
  receive(bytes: Uint8Array): void {
    for (const b of bytes) this.rxQueue.push(b);
    if (this.rxClock === null) this.clockIn();
  }

  /** Characters to send (the firmware's UART_TX, the boot ROM's lines). */
  transmit(bytes: Uint8Array): void {
    const room = TX_QUEUE_MAX - this.txQueue.length;
    if (bytes.length > room) this.stats.txDropped += bytes.length - room;
    for (const b of bytes.subarray(0, Math.max(room, 0))) this.txQueue.push(b);
    if (this.txClock === null && this.txQueue.length) this.clockOut();
  }

  /** Reset of the soft-core side: the receive FIFO is emptied; the line keeps its pace. */
  reset(): void {
    this.stats.rxDropped += this.rxFifo.length;
    this.rxFifo = [];
    if (this.rxTimer !== null) this.scheduler.cancel(this.rxTimer);
    this.rxTimer = null;
  }

  /** Moves the next character off the line into the FIFO after one character time. */
  private clockIn(): void {
    const start = Math.max(this.scheduler.now, this.rxBusyUntil);
    this.rxBusyUntil = start + this.charNs;
    this.rxClock = this.scheduler.at(this.rxBusyUntil, () => {
      this.rxClock = null;
      this.rxFifo.push(this.rxQueue.shift()!);
      this.stats.rxBytes++;
      if (this.rxFifo.length >= RX_THRESHOLD) this.deliver();
      else this.armTimeout();
      if (this.rxQueue.length) this.clockIn();
    });
  }

  private armTimeout(): void {
    if (this.rxTimer !== null) this.scheduler.cancel(this.rxTimer);
    this.rxTimer = this.scheduler.at(this.scheduler.now + RX_TIMEOUT_CHARS * this.charNs, () => {
      this.rxTimer = null;
      this.deliver();
    });
  }

  private deliver(): void {
    if (this.rxTimer !== null) this.scheduler.cancel(this.rxTimer);
    this.rxTimer = null;
    const bytes = Uint8Array.from(this.rxFifo);
    this.rxFifo = [];
    if (bytes.length === 0) return;
    if (this.receiver) this.receiver(bytes);
    else this.stats.rxDropped += bytes.length;
  }

  private clockOut(): void {
    const piece = this.txQueue.splice(0, TX_PIECE);
    this.txClock = this.scheduler.at(this.scheduler.now + piece.length * this.charNs, () => {
      this.txClock = null;
      this.stats.txBytes += piece.length;
      this.line?.(Uint8Array.from(piece));
      if (this.txQueue.length) this.clockOut();
    });
  }
}
